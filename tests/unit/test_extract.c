/* test_extract.c: readable text from HTML (libxml2) and plain text. */
#include "pe_extract.h"
#include "pe_test.h"

#include <apr_strings.h>

#include <string.h>

#define BIG 100000

/* Whether s[0..n) is valid UTF-8 (an independent check of the output). */
static int valid_utf8(const char *s, apr_size_t n)
{
    const unsigned char *u = (const unsigned char *)s;
    apr_size_t i = 0;

    while (i < n) {
        apr_size_t k, j;

        if (u[i] < 0x80) {
            i++;
            continue;
        }
        if (u[i] >= 0xc2 && u[i] <= 0xdf)
            k = 2;
        else if (u[i] >= 0xe0 && u[i] <= 0xef)
            k = 3;
        else if (u[i] >= 0xf0 && u[i] <= 0xf4)
            k = 4;
        else
            return 0;
        if (i + k > n)
            return 0;
        for (j = 1; j < k; j++)
            if ((u[i + j] & 0xc0) != 0x80)
                return 0;
        i += k;
    }
    return 1;
}

/* Extract s (NUL-terminated) with cap max; check the invariants every result must meet. */
static pe_extract_t ex(const char *s, apr_size_t max)
{
    pe_extract_t r;

    ck_assert_int_eq(pe_extract_html(pe_tp, s, strlen(s), NULL, max, &r), APR_SUCCESS);
    ck_assert_ptr_nonnull(r.title);
    ck_assert_ptr_nonnull(r.text);
    ck_assert_uint_eq(strlen(r.text), r.text_len);
    ck_assert_uint_le(r.text_len, max);
    ck_assert(valid_utf8(r.text, r.text_len));
    ck_assert(valid_utf8(r.title, strlen(r.title)));
    if (r.text_len) {
        ck_assert(r.text[0] != ' ' && r.text[0] != '\n');
        ck_assert(r.text[r.text_len - 1] != ' ' && r.text[r.text_len - 1] != '\n');
        ck_assert_ptr_null(strstr(r.text, "  "));
        ck_assert_ptr_null(strstr(r.text, "\n\n\n"));
        ck_assert_ptr_null(strstr(r.text, " \n"));
        ck_assert_ptr_null(strstr(r.text, "\n "));
    }
    return r;
}

START_TEST(title_and_main)
{
    pe_extract_t r = ex("<!DOCTYPE html><html><head><title>  Hello &amp;\n welcome </title>"
                        "<script>var leak = 'SCRIPT';</script><style>.x{color:red}/*STYLE*/</style></head>"
                        "<body><nav>Menu Home NAV</nav><header>HEADER banner</header>"
                        "<main><h1>Heading</h1><p>First   para\n  text.</p>"
                        "<p>Second&nbsp;para &eacute;t&eacute; &#x263A; &lt;tag&gt; &quot;q&quot;</p></main>"
                        "<aside>ASIDE</aside><footer>FOOTER</footer></body></html>",
                        BIG);

    ck_assert_str_eq(r.title, "Hello & welcome");
    ck_assert_str_eq(r.text, "Heading\n\nFirst para text.\n\nSecond para \xc3\xa9t\xc3\xa9 \xe2\x98\xba <tag> \"q\"");
    ck_assert_int_eq(r.from, PE_EXTRACT_FROM_MAIN);
    ck_assert_int_eq(r.truncated, 0);
}
END_TEST

START_TEST(body_without_dropped_elements)
{
    pe_extract_t r = ex("<html><head><title>T</title><noscript>NOSCRIPT-HEAD</noscript></head><body>"
                        "<script>SCRIPT</script><style>STYLE</style><noscript>NOSCRIPT</noscript>"
                        "<nav><a href=/>NAV</a></nav><header>HEADER</header><footer>FOOTER</footer>"
                        "<aside>ASIDE</aside><form><label>FORM</label><input value=INPUT></form>"
                        "<svg><title>SVGTITLE</title><text>SVG</text></svg><iframe>IFRAME</iframe>"
                        "<template><p>TEMPLATE</p></template><button>BUTTON</button>"
                        "<select><option>OPTION</option></select><textarea>TEXTAREA</textarea>"
                        "<!-- COMMENT --><p>Visible one.</p><div>Visible <b>two</b>.</div>"
                        "<p hidden>HIDDEN1</p><div aria-hidden=\"true\">HIDDEN2</div>"
                        "<span style=\"color:red; DISPLAY : none\">HIDDEN3</span>"
                        "<p style='visibility:hidden'>HIDDEN4</p><div aria-hidden=false>Visible three</div>"
                        "</body></html>",
                        BIG);
    static const char *gone[] = {"SCRIPT", "STYLE",    "NOSCRIPT", "NAV",     "HEADER",  "FOOTER",
                                 "ASIDE",  "FORM",     "INPUT",    "SVG",     "IFRAME",  "TEMPLATE",
                                 "BUTTON", "OPTION",   "TEXTAREA", "COMMENT", "HIDDEN",  NULL};
    int i;

    for (i = 0; gone[i]; i++)
        ck_assert_msg(strstr(r.text, gone[i]) == NULL, "\"%s\" leaked into \"%s\"", gone[i], r.text);
    ck_assert_str_eq(r.text, "Visible one.\n\nVisible two.\n\nVisible three");
    ck_assert_str_eq(r.title, "T");
    ck_assert_int_eq(r.from, PE_EXTRACT_FROM_BODY);
}
END_TEST

START_TEST(articles_and_fallbacks)
{
    pe_extract_t r;

    r = ex("<body><p>chrome</p><article><h2>A1</h2><p>one</p><article>nested</article></article>"
           "<div>between</div><article><p>A2 two</p></article></body>",
           BIG);
    ck_assert_str_eq(r.text, "A1\n\none\n\nnested\n\nA2 two");
    ck_assert_int_eq(r.from, PE_EXTRACT_FROM_ARTICLE);

    /* main wins over article */
    r = ex("<body><article>ART</article><main>MAIN <article>inner</article></main></body>", BIG);
    ck_assert_str_eq(r.text, "MAIN\n\ninner");
    ck_assert_int_eq(r.from, PE_EXTRACT_FROM_MAIN);

    /* an empty main (a script-rendered app) falls back to the body */
    r = ex("<body><div>Loading the body</div><main><script>render()</script></main></body>", BIG);
    ck_assert_str_eq(r.text, "Loading the body");
    ck_assert_int_eq(r.from, PE_EXTRACT_FROM_BODY);

    /* a hidden main is not the main */
    r = ex("<body><main hidden>secret</main><p>shown</p></body>", BIG);
    ck_assert_str_eq(r.text, "shown");

    /* a main inside a dropped element is not found */
    r = ex("<body><template><main>TPL</main></template><p>real</p></body>", BIG);
    ck_assert_str_eq(r.text, "real");

    /* nothing readable */
    r = ex("<html><head><title>Only a title</title></head><body><script>x()</script></body></html>", BIG);
    ck_assert_str_eq(r.title, "Only a title");
    ck_assert_str_eq(r.text, "");
    ck_assert_int_eq(r.from, PE_EXTRACT_FROM_NONE);
}
END_TEST

START_TEST(whitespace_and_blocks)
{
    pe_extract_t r;

    r = ex("<p>  a \t\n\r b  </p>", BIG);
    ck_assert_str_eq(r.text, "a b");
    r = ex("<p>bo<b>ld</b><i>it</i> x</p>", BIG);
    ck_assert_str_eq(r.text, "boldit x");
    r = ex("<p>line one<br>line two<br/><br>line three</p>", BIG);
    ck_assert_str_eq(r.text, "line one\nline two\nline three");
    r = ex("<ul><li>first</li><li>second</li></ul><p>after</p>", BIG);
    ck_assert_str_eq(r.text, "first\nsecond\n\nafter");
    r = ex("<table><tr><td>a</td><td>b</td></tr><tr><th>c</th><td>d</td></tr></table>", BIG);
    ck_assert_str_eq(r.text, "a b\nc d");
    r = ex("<div><div><div>deep</div></div></div><h2>  Title  </h2><div>\n\n</div><p>x</p>", BIG);
    ck_assert_str_eq(r.text, "deep\n\nTitle\n\nx");
    r = ex("<p>a&nbsp;&nbsp;&nbsp;b&#x2003;c&#12288;d</p>", BIG);
    ck_assert_str_eq(r.text, "a b c d");
    r = ex("<pre>  keep\n\n  code  </pre>", BIG);
    ck_assert_str_eq(r.text, "keep code");
}
END_TEST

START_TEST(control_and_bidi_dropped)
{
    pe_extract_t r;

    r = ex("<p>&#x202E;evil&#x202C; zero&#x200B;width &#xFEFF;bom &#x2066;iso&#x2069; &#x200F;rlm</p>", BIG);
    ck_assert_str_eq(r.text, "evil zerowidth bom iso rlm");
    r = ex("<p>a&#x85;b&#x9F;c&#127;d</p>", BIG);
    ck_assert_ptr_null(strchr(r.text, 0x7f));
    ck_assert_ptr_null(strstr(r.text, "\xc2\x85"));
    ck_assert_ptr_null(strstr(r.text, "\xc2\x9f"));
    r = ex("<p>a\x01" "b\x1b[31mc</p>", BIG);
    ck_assert_ptr_null(strchr(r.text, 0x01));
    ck_assert_ptr_null(strchr(r.text, 0x1b));
    /* joiners used by real scripts stay */
    r = ex("<p>\xe2\x80\x8d</p><p>x</p>", BIG);
    ck_assert_str_eq(r.text, "\xe2\x80\x8d\n\nx");
}
END_TEST

START_TEST(cap_at_utf8_boundary)
{
    /* "é" is 2 bytes, "€" 3, "😀" 4 */
    pe_extract_t r;
    const char *e5 = "<p>\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9</p>";

    r = ex(e5, 5);
    ck_assert_str_eq(r.text, "\xc3\xa9\xc3\xa9");
    ck_assert_int_eq(r.truncated, 1);
    r = ex(e5, 4);
    ck_assert_str_eq(r.text, "\xc3\xa9\xc3\xa9");
    ck_assert_int_eq(r.truncated, 1);
    r = ex(e5, 10);
    ck_assert_uint_eq(r.text_len, 10);
    ck_assert_int_eq(r.truncated, 0);
    r = ex(e5, 9);
    ck_assert_uint_eq(r.text_len, 8);
    ck_assert_int_eq(r.truncated, 1);
    r = ex("<p>\xe2\x82\xac\xe2\x82\xac</p>", 5);
    ck_assert_str_eq(r.text, "\xe2\x82\xac");
    r = ex("<p>\xf0\x9f\x98\x80</p>", 3);
    ck_assert_str_eq(r.text, "");
    ck_assert_int_eq(r.truncated, 1);
    r = ex("<p>\xf0\x9f\x98\x80</p>", 4);
    ck_assert_str_eq(r.text, "\xf0\x9f\x98\x80");
    ck_assert_int_eq(r.truncated, 0);
    /* a separator is never left dangling at the cut */
    r = ex("<p>abc</p><p>def</p>", 4);
    ck_assert_str_eq(r.text, "abc");
    ck_assert_int_eq(r.truncated, 1);
    r = ex("<p>abc</p><p>def</p>", 5);
    ck_assert_str_eq(r.text, "abc");
    r = ex("<p>abc</p><p>def</p>", 6);
    ck_assert_str_eq(r.text, "abc\n\nd");
    r = ex("<p>abc</p><p>def</p>", 8);
    ck_assert_str_eq(r.text, "abc\n\ndef");
    ck_assert_int_eq(r.truncated, 0);
    r = ex("<p>abc</p>", 0);
    ck_assert_str_eq(r.text, "");
    ck_assert_int_eq(r.truncated, 1);
    /* the title has its own cap, also on a boundary */
    {
        char *t = apr_pstrcat(pe_tp, "<title>", NULL);
        int i;

        for (i = 0; i < 200; i++)
            t = apr_pstrcat(pe_tp, t, "\xc3\xa9", NULL);
        t = apr_pstrcat(pe_tp, "x", t, "</title><p>body</p>", NULL);
        r = ex(t, BIG);
        ck_assert_uint_le(strlen(r.title), PE_EXTRACT_TITLE_MAX);
        ck_assert_uint_ge(strlen(r.title), PE_EXTRACT_TITLE_MAX - 1);
        ck_assert(valid_utf8(r.title, strlen(r.title)));
    }
}
END_TEST

START_TEST(broken_and_hostile_input)
{
    pe_extract_t r;
    char *deep;
    apr_size_t i, n = 20000;
    static const char junk[] = "\xff\xfe\x00<p>abc\x00" "def</p>\xc3<b>\xe2\x82</b>";

    r = ex("<div><p>unclosed <b>bold <i>it</div><p>next", BIG);
    ck_assert_ptr_nonnull(strstr(r.text, "unclosed bold it"));
    ck_assert_ptr_nonnull(strstr(r.text, "next"));
    r = ex("<<<>>>&&&;&#xZZ;&bogus; </p></p></html><p>tail", BIG);
    ck_assert_ptr_nonnull(strstr(r.text, "tail"));
    r = ex("<p>a</b></i></div>b<script>unterminated", BIG);
    ck_assert_ptr_nonnull(strstr(r.text, "a"));
    ck_assert_ptr_null(strstr(r.text, "unterminated"));
    r = ex("<p>x</p></body></html><p>after the end</p>", BIG);
    ck_assert_str_eq(r.text, "x\n\nafter the end");
    r = ex("plain words, no tags", BIG);
    ck_assert_str_eq(r.text, "plain words, no tags");

    /* bytes that are not UTF-8 and embedded NULs: no crash, valid output */
    ck_assert_int_eq(pe_extract_html(pe_tp, junk, sizeof(junk) - 1, NULL, BIG, &r), APR_SUCCESS);
    ck_assert(valid_utf8(r.text, r.text_len));

    /* nesting: kept at 200 levels; far deeper input (libxml2 stops adding nodes at depth 256
     * without HTML_PARSE_HUGE) must still return cleanly, and the walk is iterative */
    deep = apr_palloc(pe_tp, n * 10 + 64);
    deep[0] = '\0';
    for (i = 0; i < 100; i++)
        strcat(deep, "<div><b>");
    strcat(deep, "core");
    r = ex(deep, BIG);
    ck_assert_str_eq(r.text, "core");
    deep[0] = '\0';
    {
        char *w = deep;

        for (i = 0; i < n; i++) {
            memcpy(w, "<div><b>", 8);
            w += 8;
        }
        memcpy(w, "core", 5);
    }
    ck_assert_int_eq(pe_extract_html(pe_tp, deep, strlen(deep), NULL, BIG, &r), APR_SUCCESS);
    ck_assert(valid_utf8(r.text, r.text_len));

    /* empty input */
    ck_assert_int_eq(pe_extract_html(pe_tp, "", 0, NULL, BIG, &r), APR_SUCCESS);
    ck_assert_str_eq(r.text, "");
    ck_assert_str_eq(r.title, "");
    ck_assert_int_eq(r.from, PE_EXTRACT_FROM_NONE);
    ck_assert_int_eq(pe_extract_html(pe_tp, NULL, 10, NULL, BIG, &r), APR_SUCCESS);
}
END_TEST

START_TEST(charsets)
{
    pe_extract_t r;
    static const char latin1[] = "<p>caf\xe9 na\xefve</p>";
    static const char meta[] = "<html><head><meta charset=\"iso-8859-1\"><title>\xc9t\xe9</title></head>"
                               "<body><p>caf\xe9</p></body></html>";

    ck_assert_int_eq(pe_extract_html(pe_tp, latin1, sizeof(latin1) - 1, "ISO-8859-1", BIG, &r), APR_SUCCESS);
    ck_assert_str_eq(r.text, "caf\xc3\xa9 na\xc3\xafve");
    ck_assert_int_eq(pe_extract_html(pe_tp, meta, sizeof(meta) - 1, NULL, BIG, &r), APR_SUCCESS);
    ck_assert_str_eq(r.title, "\xc3\x89t\xc3\xa9");
    ck_assert_str_eq(r.text, "caf\xc3\xa9");
    /* UTF-8 by default */
    r = ex("<p>\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e</p>", BIG);
    ck_assert_str_eq(r.text, "\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e");
}
END_TEST

START_TEST(plain_text)
{
    pe_extract_t r;
    static const char txt[] = "  line one\nline two\n\n\npara two\r\n\r\nthree\t four \x01\xe2\x80\xae  \n";

    ck_assert_int_eq(pe_extract_plain(pe_tp, txt, sizeof(txt) - 1, BIG, &r), APR_SUCCESS);
    ck_assert_str_eq(r.text, "line one line two\n\npara two\n\nthree four");
    ck_assert_str_eq(r.title, "");
    ck_assert_int_eq(r.from, PE_EXTRACT_FROM_PLAIN);
    ck_assert_int_eq(pe_extract_plain(pe_tp, "ab\xff\xc3\xa9", 5, 3, &r), APR_SUCCESS);
    ck_assert_str_eq(r.text, "ab");
    ck_assert_int_eq(r.truncated, 1);
    ck_assert_int_eq(pe_extract_plain(pe_tp, " \n\n ", 4, BIG, &r), APR_SUCCESS);
    ck_assert_str_eq(r.text, "");
    ck_assert_int_eq(r.from, PE_EXTRACT_FROM_NONE);
}
END_TEST

Suite *pe_suite_extract(void)
{
    Suite *s = suite_create("extract");
    TCase *tc = pe_tcase("extract");

    pe_extract_init();
    tcase_add_test(tc, title_and_main);
    tcase_add_test(tc, body_without_dropped_elements);
    tcase_add_test(tc, articles_and_fallbacks);
    tcase_add_test(tc, whitespace_and_blocks);
    tcase_add_test(tc, control_and_bidi_dropped);
    tcase_add_test(tc, cap_at_utf8_boundary);
    tcase_add_test(tc, broken_and_hostile_input);
    tcase_add_test(tc, charsets);
    tcase_add_test(tc, plain_text);
    suite_add_tcase(s, tc);
    return s;
}
