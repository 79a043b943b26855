/*
 * fuzz_extract.c: readable text from fetched pages (pe_extract_html through libxml2's HTML parser,
 * and pe_extract_plain). The first byte picks the Content-Type charset (low 3 bits: a space means
 * none, '"' ISO-8859-1) and the text cap (bits 3-4: a space means 64 KiB, '0' 7 bytes); the rest
 * is the page.
 *
 * Properties (pe_extract.h): text_len is strlen(text) and at most the cap; the title is at most
 * PE_EXTRACT_TITLE_MAX bytes; both are valid UTF-8 holding no control, bidi or invisible format
 * character, no white space but single separators (" ", "\n" or "\n\n") between visible
 * characters, and none at either end; `from` is NONE exactly when the text is empty.
 */
#define PE_FUZZ_SETUP fuzz_extract_setup
#include "pe_fuzz.h"

#include "pe_extract.h"

static void fuzz_extract_setup(void)
{
    pe_extract_init();
}

/* Decode one code point of valid UTF-8 at s (the caller checked validity); *k gets its length. */
static unsigned int fuzz_cp(const unsigned char *s, size_t *k)
{
    if (s[0] < 0x80)
        return *k = 1, s[0];
    if (s[0] < 0xe0)
        return *k = 2, ((s[0] & 0x1fu) << 6) | (s[1] & 0x3fu);
    if (s[0] < 0xf0)
        return *k = 3, ((s[0] & 0x0fu) << 12) | ((s[1] & 0x3fu) << 6) | (s[2] & 0x3fu);
    return *k = 4, ((s[0] & 0x07u) << 18) | ((s[1] & 0x3fu) << 12) | ((s[2] & 0x3fu) << 6) | (s[3] & 0x3fu);
}

/* A character pe_extract.h says never reaches the text as itself (white space or dropped). */
static int fuzz_hidden_cp(unsigned int c)
{
    return c < 0x20 || (c >= 0x7f && c <= 0xa0) || c == 0x061c || c == 0x1680 || (c >= 0x2000 && c <= 0x200b)
           || c == 0x200e || c == 0x200f || (c >= 0x2028 && c <= 0x202f) || c == 0x205f || c == 0x2060
           || (c >= 0x2066 && c <= 0x2069) || c == 0x3000 || c == 0xfeff;
}

/* The text rules of pe_extract.h on one output string. */
static void fuzz_check_text(const char *t, size_t len)
{
    const unsigned char *s = (const unsigned char *)t;
    size_t i = 0, k;
    int sep = 0; /* the previous character was a separator */

    PE_FUZZ_CHECK(pe_fuzz_utf8_ok(s, len));
    if (len == 0)
        return;
    PE_FUZZ_CHECK(s[0] != ' ' && s[0] != '\n' && s[len - 1] != ' ' && s[len - 1] != '\n');
    while (i < len) {
        unsigned int c = fuzz_cp(s + i, &k);

        if (c == ' ' || c == '\n') {
            /* one separator: " ", "\n" or "\n\n" */
            if (c == '\n' && s[i + 1] == '\n')
                k = 2;
            PE_FUZZ_CHECK(!sep);
            sep = 1;
        }
        else {
            PE_FUZZ_CHECK(!fuzz_hidden_cp(c));
            sep = 0;
        }
        i += k;
    }
}

static void fuzz_check(const pe_extract_t *x, apr_size_t max)
{
    PE_FUZZ_CHECK(x->title && x->text);
    PE_FUZZ_CHECK(strlen(x->text) == x->text_len && x->text_len <= max);
    PE_FUZZ_CHECK(strlen(x->title) <= PE_EXTRACT_TITLE_MAX);
    PE_FUZZ_CHECK((x->from == PE_EXTRACT_FROM_NONE) == (x->text_len == 0));
    fuzz_check_text(x->text, x->text_len);
    fuzz_check_text(x->title, strlen(x->title));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const charsets[] = {NULL, "utf-8", "iso-8859-1", "windows-1252", "shift_jis", "UTF-16LE",
                                           "koi8-r", "no-such-charset"};
    static const apr_size_t caps[] = {64 * 1024, 1, 7, 200};
    apr_pool_t *p;
    pe_extract_t x;
    apr_size_t max;
    apr_status_t rv;

    if (size == 0)
        return 0;
    p = pe_fuzz_pool();
    max = caps[(data[0] >> 3) & 3];
    rv = pe_extract_html(p, (const char *)data + 1, size - 1, charsets[data[0] & 7], max, &x);
    PE_FUZZ_CHECK(rv == APR_SUCCESS || rv == APR_EINVAL);
    fuzz_check(&x, max);
    if (rv == APR_EINVAL)
        PE_FUZZ_CHECK(x.text_len == 0 && !*x.title);

    PE_FUZZ_CHECK(pe_extract_plain(p, (const char *)data + 1, size - 1, max, &x) == APR_SUCCESS);
    fuzz_check(&x, max);
    PE_FUZZ_CHECK(!*x.title && (x.from == PE_EXTRACT_FROM_PLAIN || x.from == PE_EXTRACT_FROM_NONE));
    pe_fuzz_done(p);
    return 0;
}
