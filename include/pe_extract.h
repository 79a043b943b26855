/*
 * pe_extract.h: readable text from a fetched page, for the research synthesis prompt.
 *
 * HTML goes through libxml2's HTML parser (htmlReadMemory with HTML_PARSE_RECOVER | NOERROR |
 * NOWARNING | NONET): no hand-written HTML parsing, broken markup is recovered the way libxml2
 * does it, entities are decoded, and the document is freed before returning.
 *
 * What is kept: the <title>, and the text of the first <main>; without one, of every outermost
 * <article>; without those (or when they hold no text), of <body> (plus any content libxml2 left
 * outside it, such as text after </body>, which browsers show too). Never kept: script, style,
 * noscript, template, nav, header, footer, aside, form, svg, math, iframe, object, embed,
 * canvas, button, select, textarea, head, comments, and elements hidden with the hidden
 * attribute, aria-hidden="true" or an inline display:none / visibility:hidden (RELIABILITY R85).
 *
 * Text rules: runs of white space (incl. U+00A0) become one space; block elements (p, div,
 * headings, lists, tables, section, ...) give a paragraph break "\n\n", <br> and list items a
 * "\n", table cells a space; no leading or trailing separator. C0/C1 control characters, bidi
 * controls (U+061C, U+200E/F, U+202A-202E, U+2066-2069), U+200B, U+2060 and U+FEFF are
 * dropped, and so are bytes that are not valid UTF-8. The text is cut to a maximum number of
 * bytes at a character boundary (never in the middle of a UTF-8 sequence).
 */
#ifndef PE_EXTRACT_H
#define PE_EXTRACT_H

#include <apr_errno.h>
#include <apr_pools.h>

/** Longest title kept, in bytes. */
#define PE_EXTRACT_TITLE_MAX 300

/** Where the main text came from. */
typedef enum pe_extract_from_t {
    PE_EXTRACT_FROM_NONE = 0, /**< no text at all */
    PE_EXTRACT_FROM_MAIN,     /**< the first <main> */
    PE_EXTRACT_FROM_ARTICLE,  /**< the outermost <article> elements */
    PE_EXTRACT_FROM_BODY,     /**< <body> and whatever else the document holds outside <head> */
    PE_EXTRACT_FROM_PLAIN     /**< pe_extract_plain(): the input was plain text */
} pe_extract_from_t;

/** Result of an extraction; strings live in the pool given, always NUL-terminated. */
typedef struct pe_extract_t {
    const char *title;      /**< "" when the page has none */
    const char *text;       /**< the readable text ("" when none) */
    apr_size_t text_len;    /**< strlen(text), <= the max given */
    int truncated;          /**< 1 when text was cut at max */
    pe_extract_from_t from; /**< the container the text came from */
} pe_extract_t;

/**
 * Initialise libxml2 once per process before threads run (xmlInitParser); call from the glue's
 * post_config or child_init. Idempotent.
 */
void pe_extract_init(void);

/**
 * Extract title and readable text from an HTML document.
 * @param html     the bytes as fetched (need not be NUL-terminated)
 * @param len      their number (0 gives an empty result)
 * @param encoding the charset from Content-Type, or NULL to let libxml2 use <meta charset> and
 *                 its default (UTF-8, switching to ISO-8859-1 on invalid input)
 * @param max      most bytes of text kept (the title has its own cap PE_EXTRACT_TITLE_MAX)
 * @param out      the result, in p
 * @return APR_SUCCESS; APR_EINVAL when len exceeds INT_MAX or libxml2 builds no document
 *         (out then holds empty strings)
 * NB: the libxml2 document is freed before returning; nothing in out points into it.
 */
apr_status_t pe_extract_html(apr_pool_t *p, const char *html, apr_size_t len, const char *encoding, apr_size_t max,
                             pe_extract_t *out);

/**
 * Normalise a text/plain page with the same character rules: a blank line (two or more line
 * breaks in a run of white space) is a paragraph break, other white space one space.
 * The input is taken as UTF-8 (invalid bytes dropped). title is "".
 * @return APR_SUCCESS
 */
apr_status_t pe_extract_plain(apr_pool_t *p, const char *text, apr_size_t len, apr_size_t max, pe_extract_t *out);

#endif
