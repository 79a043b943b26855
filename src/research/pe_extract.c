/* pe_extract.c: title and readable text of a page, through libxml2's HTML parser. */
#include "pe_extract.h"
#include "pe_buf.h"

#include <apr_lib.h>
#include <apr_strings.h>
#include <apr_tables.h>

#include <libxml/HTMLparser.h>
#include <libxml/parser.h>
#include <libxml/tree.h>

#include <limits.h>
#include <string.h>
#include <strings.h>

/* Pending separator before the next visible character, weakest first. */
enum { EX_SEP_NONE = 0, EX_SEP_SPACE, EX_SEP_LINE, EX_SEP_PARA };

/* How an element affects the text. */
enum { EX_EL_INLINE = 0, EX_EL_SKIP, EX_EL_PARA, EX_EL_LINE, EX_EL_CELL };

/* The text being built: a capped buffer plus the separator state. */
typedef struct ex_out_t {
    pe_buf_t buf;
    apr_size_t max; /* most bytes of text */
    int sep;        /* pending EX_SEP_* */
    int nl;         /* line breaks in the current white-space run (plain text only) */
    int plain;      /* 1: blank lines are paragraph breaks */
    int full;       /* 1: max reached, stop */
} ex_out_t;

static const char *const ex_skip[] = {"script", "style",  "noscript", "template", "nav",    "header", "footer",
                                      "aside",  "form",   "svg",      "math",     "iframe", "object", "embed",
                                      "canvas", "button", "select",   "textarea", "head",   "title",  NULL};
static const char *const ex_para[] = {"address", "article", "blockquote", "body",   "caption", "center",  "dd",
                                      "details", "dialog",  "div",        "dl",     "dt",      "fieldset", "figcaption",
                                      "figure",  "h1",      "h2",         "h3",     "h4",      "h5",      "h6",
                                      "hr",      "html",    "legend",     "main",   "ol",      "p",       "pre",
                                      "section", "summary", "table",      "tbody",  "tfoot",   "thead",   "ul",
                                      NULL};
static const char *const ex_line[] = {"br", "li", "tr", NULL};
static const char *const ex_cell[] = {"td", "th", NULL};

/* Initialise libxml2 once, before threads. */
void pe_extract_init(void)
{
    xmlInitParser();
}

/* Whether name is in the NULL-terminated list. */
static int ex_in(const char *const *list, const char *name)
{
    for (; *list; list++)
        if (strcasecmp(*list, name) == 0)
            return 1;
    return 0;
}

/* The text of a simple attribute value, or NULL (present without a value gives ""). */
static const char *ex_attr(const xmlNode *n, const char *name, int *present)
{
    xmlAttrPtr a = xmlHasProp((xmlNodePtr)n, BAD_CAST name);

    *present = a != NULL;
    if (!a)
        return NULL;
    if (a->children && a->children->type == XML_TEXT_NODE && a->children->content)
        return (const char *)a->children->content;
    return "";
}

/* Whether v contains needle (lower case, no spaces) ignoring case and white space in v. */
static int ex_css_has(const char *v, const char *needle)
{
    for (; *v; v++) {
        const char *s = v, *t = needle;

        while (*t) {
            while (*s && apr_isspace(*s))
                s++;
            if (!*s || apr_tolower(*s) != *t)
                break;
            s++;
            t++;
        }
        if (!*t)
            return 1;
    }
    return 0;
}

/* Whether the element is hidden by markup (hidden, aria-hidden, inline display:none). */
static int ex_hidden(const xmlNode *n)
{
    int present;
    const char *v;

    if (!n->properties)
        return 0;
    ex_attr(n, "hidden", &present);
    if (present)
        return 1;
    v = ex_attr(n, "aria-hidden", &present);
    if (v && strcasecmp(v, "true") == 0)
        return 1;
    v = ex_attr(n, "style", &present);
    if (v && (ex_css_has(v, "display:none") || ex_css_has(v, "visibility:hidden")))
        return 1;
    return 0;
}

/* How an element node affects the text. */
static int ex_kind(const xmlNode *n)
{
    const char *name = (const char *)n->name;

    if (!name || ex_in(ex_skip, name) || ex_hidden(n))
        return EX_EL_SKIP;
    if (ex_in(ex_para, name))
        return EX_EL_PARA;
    if (ex_in(ex_line, name))
        return EX_EL_LINE;
    if (ex_in(ex_cell, name))
        return EX_EL_CELL;
    return EX_EL_INLINE;
}

/* Decode one UTF-8 sequence; returns its length, *cp = UINT_MAX for an invalid byte (length 1). */
static apr_size_t ex_utf8(const unsigned char *s, apr_size_t n, unsigned int *cp)
{
    unsigned int c = s[0], lo = 0x80, hi = 0xbf;
    apr_size_t len, i;

    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    if (c >= 0xc2 && c <= 0xdf) {
        len = 2;
        c &= 0x1f;
    }
    else if (c >= 0xe0 && c <= 0xef) {
        len = 3;
        lo = c == 0xe0 ? 0xa0 : 0x80; /* no overlong forms */
        hi = c == 0xed ? 0x9f : 0xbf; /* no surrogates */
        c &= 0x0f;
    }
    else if (c >= 0xf0 && c <= 0xf4) {
        len = 4;
        lo = c == 0xf0 ? 0x90 : 0x80;
        hi = c == 0xf4 ? 0x8f : 0xbf; /* nothing above U+10FFFF */
        c &= 0x07;
    }
    else {
        *cp = UINT_MAX;
        return 1;
    }
    if (n < len || s[1] < lo || s[1] > hi) {
        *cp = UINT_MAX;
        return 1;
    }
    for (i = 1; i < len; i++) {
        if (s[i] < 0x80 || s[i] > 0xbf) {
            *cp = UINT_MAX;
            return 1;
        }
        c = (c << 6) | (s[i] & 0x3f);
    }
    *cp = c;
    return len;
}

/* Whether cp is white space that collapses to one space. */
static int ex_space(unsigned int cp)
{
    return cp == ' ' || cp == '\t' || cp == '\n' || cp == '\r' || cp == '\f' || cp == '\v' || cp == 0xa0
           || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200a) || cp == 0x2028 || cp == 0x2029 || cp == 0x202f
           || cp == 0x205f || cp == 0x3000;
}

/* Whether cp is dropped: controls, bidi controls, invisible format characters. */
static int ex_dropped(unsigned int cp)
{
    return cp < 0x20 || (cp >= 0x7f && cp <= 0x9f) || cp == 0x061c || cp == 0x200b || cp == 0x200e
           || cp == 0x200f || (cp >= 0x202a && cp <= 0x202e) || cp == 0x2060 || (cp >= 0x2066 && cp <= 0x2069)
           || cp == 0xfeff;
}

/* Raise the pending separator. */
static void ex_sep(ex_out_t *o, int sep)
{
    if (sep > o->sep)
        o->sep = sep;
}

/* Append one visible character, preceded by the pending separator; stop at the cap. */
static void ex_put(ex_out_t *o, const unsigned char *c, apr_size_t k)
{
    static const char *const seps[] = {"", " ", "\n", "\n\n"};
    apr_size_t sl = o->buf.len ? strlen(seps[o->sep]) : 0;

    if (o->full)
        return;
    if (o->buf.len + sl + k > o->max) {
        /* NB: whole characters only, so the text always ends on a UTF-8 boundary */
        o->full = 1;
        return;
    }
    if (sl)
        pe_buf_append(&o->buf, seps[o->sep], sl);
    pe_buf_append(&o->buf, c, k);
    o->sep = EX_SEP_NONE;
}

/* Feed text through the character rules. */
static void ex_text(ex_out_t *o, const unsigned char *s, apr_size_t n)
{
    apr_size_t i = 0;

    while (i < n && !o->full) {
        unsigned int cp;
        apr_size_t k = ex_utf8(s + i, n - i, &cp);

        if (cp == UINT_MAX) {
            i += k;
            continue;
        }
        if (ex_space(cp)) {
            if (o->plain && cp == '\n')
                o->nl++;
            ex_sep(o, EX_SEP_SPACE);
        }
        else if (!ex_dropped(cp)) {
            if (o->plain && o->nl >= 2)
                ex_sep(o, EX_SEP_PARA);
            o->nl = 0;
            ex_put(o, s + i, k);
        }
        i += k;
    }
}

/* Separator effect of entering or leaving an element of this kind. */
static void ex_boundary(ex_out_t *o, int kind)
{
    if (kind == EX_EL_PARA)
        ex_sep(o, EX_SEP_PARA);
    else if (kind == EX_EL_LINE)
        ex_sep(o, EX_SEP_LINE);
    else if (kind == EX_EL_CELL)
        ex_sep(o, EX_SEP_SPACE);
}

/*
 * Walk the subtree under root in document order without recursion (deep documents cannot
 * exhaust the stack), emitting text and skipping the elements ex_kind() says to skip.
 */
static void ex_walk(ex_out_t *o, xmlNode *root)
{
    xmlNode *n = root->children;

    while (n && !o->full) {
        int descend = 0;

        if (n->type == XML_ELEMENT_NODE) {
            int kind = ex_kind(n);

            if (kind != EX_EL_SKIP) {
                ex_boundary(o, kind);
                if (n->children)
                    descend = 1;
                else
                    ex_boundary(o, kind);
            }
        }
        else if ((n->type == XML_TEXT_NODE || n->type == XML_CDATA_SECTION_NODE) && n->content) {
            ex_text(o, n->content, strlen((const char *)n->content));
        }
        if (descend) {
            n = n->children;
            continue;
        }
        while (!n->next) {
            n = n->parent;
            if (!n || n == root)
                return;
            ex_boundary(o, ex_kind(n));
        }
        n = n->next;
    }
}

/*
 * Find elements named name under root (not descending into skipped elements or into a match);
 * push them on found (all of them when all is set, else the first) and return the first or NULL.
 */
static xmlNode *ex_find(xmlNode *root, const char *name, int all, apr_array_header_t *found)
{
    xmlNode *n = root->children, *first = NULL;

    while (n) {
        int descend = 0;

        if (n->type == XML_ELEMENT_NODE && n->name) {
            if (strcasecmp((const char *)n->name, name) == 0 && !ex_hidden(n)) {
                if (!first)
                    first = n;
                if (found)
                    APR_ARRAY_PUSH(found, xmlNode *) = n;
                if (!all)
                    return first;
            }
            else if (ex_kind(n) != EX_EL_SKIP && n->children) {
                descend = 1;
            }
        }
        if (descend) {
            n = n->children;
            continue;
        }
        while (!n->next) {
            n = n->parent;
            if (!n || n == root)
                return first;
        }
        n = n->next;
    }
    return first;
}

/* Find the document title: a <title> in <head>, else the first one outside skipped subtrees. */
static xmlNode *ex_find_title(xmlNode *root)
{
    xmlNode *c, *head = NULL;

    /* NB: head is skipped when looking for text, so its title is looked up directly */
    for (c = root->children; c && !head; c = c->next)
        if (c->type == XML_ELEMENT_NODE && c->name && strcasecmp((const char *)c->name, "head") == 0)
            head = c;
    if (head)
        for (c = head->children; c; c = c->next)
            if (c->type == XML_ELEMENT_NODE && c->name && strcasecmp((const char *)c->name, "title") == 0)
                return c;
    return ex_find(root, "title", 0, NULL);
}

/* Initialise an output of at most max bytes. */
static void ex_out_init(ex_out_t *o, apr_pool_t *p, apr_size_t max, int plain)
{
    memset(o, 0, sizeof(*o));
    /* NB: pe_buf's own cap is max too; ex_put checks first, so appends never fail */
    pe_buf_init(&o->buf, p, max);
    o->max = max;
    o->plain = plain;
}

/* The finished text (never NULL). */
static const char *ex_out_str(ex_out_t *o)
{
    return o->buf.data ? o->buf.data : "";
}

/* Reset the output to empty (when a container gave nothing and the next one is tried). */
static void ex_out_reset(ex_out_t *o)
{
    o->buf.len = 0;
    if (o->buf.data)
        o->buf.data[0] = '\0';
    o->sep = EX_SEP_NONE;
    o->nl = 0;
}

/* Empty result. */
static void ex_empty(pe_extract_t *out)
{
    out->title = "";
    out->text = "";
    out->text_len = 0;
    out->truncated = 0;
    out->from = PE_EXTRACT_FROM_NONE;
}

/* Parse with libxml2 and extract; the document is freed on the one exit path. */
apr_status_t pe_extract_html(apr_pool_t *p, const char *html, apr_size_t len, const char *encoding, apr_size_t max,
                             pe_extract_t *out)
{
    htmlDocPtr doc = NULL;
    xmlNode *root, *title, *container;
    ex_out_t text, t;
    apr_status_t rv = APR_SUCCESS;

    ex_empty(out);
    if (!html || len == 0)
        return APR_SUCCESS;
    if (len > INT_MAX)
        return APR_EINVAL;
    doc = htmlReadMemory(html, (int)len, NULL, encoding,
                         HTML_PARSE_RECOVER | HTML_PARSE_NOERROR | HTML_PARSE_NOWARNING | HTML_PARSE_NONET);
    if (!doc || !(root = xmlDocGetRootElement(doc))) {
        rv = APR_EINVAL;
        goto end;
    }

    title = ex_find_title(root);
    ex_out_init(&t, p, PE_EXTRACT_TITLE_MAX, 0);
    if (title)
        ex_walk(&t, title);
    out->title = ex_out_str(&t);

    ex_out_init(&text, p, max, 0);
    if ((container = ex_find(root, "main", 0, NULL)) != NULL) {
        ex_walk(&text, container);
        if (text.buf.len)
            out->from = PE_EXTRACT_FROM_MAIN;
    }
    if (out->from == PE_EXTRACT_FROM_NONE) {
        apr_array_header_t *arts = apr_array_make(p, 4, sizeof(xmlNode *));
        int i;

        ex_out_reset(&text);
        ex_find(root, "article", 1, arts);
        for (i = 0; i < arts->nelts && !text.full; i++) {
            ex_sep(&text, EX_SEP_PARA);
            ex_walk(&text, APR_ARRAY_IDX(arts, i, xmlNode *));
        }
        if (text.buf.len)
            out->from = PE_EXTRACT_FROM_ARTICLE;
    }
    if (out->from == PE_EXTRACT_FROM_NONE) {
        /* NB: the whole root, not just <body>: libxml2 keeps content found after </body> or
         * </html> outside the body (browsers move it in); head and title are skipped anyway */
        ex_out_reset(&text);
        ex_walk(&text, root);
        if (text.buf.len)
            out->from = PE_EXTRACT_FROM_BODY;
    }
    out->text = ex_out_str(&text);
    out->text_len = text.buf.len;
    out->truncated = text.full;

end:
    if (doc)
        xmlFreeDoc(doc);
    return rv;
}

/* Normalise plain text with the same character rules. */
apr_status_t pe_extract_plain(apr_pool_t *p, const char *s, apr_size_t len, apr_size_t max, pe_extract_t *out)
{
    ex_out_t o;

    ex_empty(out);
    if (!s || len == 0)
        return APR_SUCCESS;
    ex_out_init(&o, p, max, 1);
    ex_text(&o, (const unsigned char *)s, len);
    out->text = ex_out_str(&o);
    out->text_len = o.buf.len;
    out->truncated = o.full;
    out->from = o.buf.len ? PE_EXTRACT_FROM_PLAIN : PE_EXTRACT_FROM_NONE;
    return APR_SUCCESS;
}
