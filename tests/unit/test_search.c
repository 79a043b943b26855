/* test_search.c: search providers: request building, answer parsing, and parallel searches against the fake. */
#include "pe_fakeproc.h"
#include "pe_search.h"
#include "pe_test.h"

#include <apr_strings.h>

#include <string.h>

/* A SearxNG configuration for url. */
static pe_search_conf_t sx(const char *url)
{
    pe_search_conf_t c;

    memset(&c, 0, sizeof(c));
    c.url = url;
    return c;
}

/* Parse body with a provider; returns the error, hits in *out. */
static const char *parse(const pe_search_provider_t *prov, const pe_search_conf_t *c, const char *body,
                         apr_array_header_t **out)
{
    *out = apr_array_make(pe_tp, 4, sizeof(pe_search_hit_t));
    return prov->parse(pe_tp, c, body, strlen(body), *out);
}

#define HIT(a, i) (&APR_ARRAY_IDX((a), (i), pe_search_hit_t))

START_TEST(searxng_request)
{
    pe_search_conf_t c = sx("http://127.0.0.1:8888/search");
    pe_fetch_req_t q;

    ck_assert_ptr_null(pe_search_searxng.request(pe_tp, &c, "bees & wasps/ü", &q));
    ck_assert_str_eq(q.url, "http://127.0.0.1:8888/search?q=bees%20%26%20wasps%2F%C3%BC&format=json&safesearch=1"
                            "&pageno=1");
    ck_assert_ptr_null(q.method);
    ck_assert_str_eq(q.headers[0], "Accept: application/json");
    c.url = "http://127.0.0.1:8888/search?engines=wikipedia";
    c.language = "de";
    ck_assert_ptr_null(pe_search_searxng.request(pe_tp, &c, "x", &q));
    ck_assert_str_eq(q.url, "http://127.0.0.1:8888/search?engines=wikipedia&q=x&format=json&safesearch=1&pageno=1"
                            "&language=de");
    ck_assert_str_eq(pe_search_searxng.request(pe_tp, &c, "", &q), "empty query");
    c.url = NULL;
    ck_assert_str_eq(pe_search_searxng.request(pe_tp, &c, "x", &q), "no search URL configured");
}
END_TEST

START_TEST(searxng_parse)
{
    pe_search_conf_t c = sx("http://s/search");
    apr_array_header_t *h;
    const char *body = "{\"query\":\"q\",\"results\":["
                       "{\"url\":\"https://a.example.org/1\",\"title\":\"One\",\"content\":\"first\"},"
                       "{\"url\":\"ftp://a.example.org/x\",\"title\":\"ftp\"},"
                       "{\"url\":\"javascript:alert(1)\"},"
                       "{\"title\":\"no url\"},"
                       "\"not an object\","
                       "{\"url\":\"https://a.example.org/1\",\"title\":\"dup\"},"
                       "{\"url\":\"HTTP://b.example.org/2\",\"content\":null}"
                       "],\"answers\":[]}";

    ck_assert_ptr_null(parse(&pe_search_searxng, &c, body, &h));
    ck_assert_int_eq(h->nelts, 2);
    ck_assert_str_eq(HIT(h, 0)->url, "https://a.example.org/1");
    ck_assert_str_eq(HIT(h, 0)->title, "One");
    ck_assert_str_eq(HIT(h, 0)->snippet, "first");
    ck_assert_str_eq(HIT(h, 1)->url, "HTTP://b.example.org/2");
    ck_assert_str_eq(HIT(h, 1)->title, "");
    ck_assert_str_eq(HIT(h, 1)->snippet, "");

    /* cap */
    c.max_results = 1;
    ck_assert_ptr_null(parse(&pe_search_searxng, &c, body, &h));
    ck_assert_int_eq(h->nelts, 1);

    ck_assert_str_eq(parse(&pe_search_searxng, &c, "{\"results\":{}}", &h), "answer has no results array");
    ck_assert_str_eq(parse(&pe_search_searxng, &c, "<html>blocked</html>", &h), "answer is not valid JSON");
    ck_assert_str_eq(parse(&pe_search_searxng, &c, "[1,2]", &h), "answer is not a JSON object");
    ck_assert_str_eq(parse(&pe_search_searxng, &c, "", &h), "empty answer");
    ck_assert_ptr_null(parse(&pe_search_searxng, &c, "{\"results\":[]}", &h));
    ck_assert_int_eq(h->nelts, 0);
}
END_TEST

START_TEST(long_titles_are_cut_at_a_character_boundary)
{
    pe_search_conf_t c = sx("http://s/search");
    apr_array_header_t *h;
    char *title = apr_palloc(pe_tp, 2 * PE_SEARCH_TITLE_MAX + 1);
    int i;

    /* "é" is two bytes: an odd cap would split one */
    for (i = 0; i < PE_SEARCH_TITLE_MAX; i++)
        memcpy(title + 2 * i, "\xc3\xa9", 2);
    title[2 * PE_SEARCH_TITLE_MAX] = '\0';
    ck_assert_ptr_null(parse(&pe_search_searxng, &c,
                             apr_psprintf(pe_tp, "{\"results\":[{\"url\":\"http://x.example.com/\",\"title\":\"a%s\"}]}",
                                          title),
                             &h));
    ck_assert_int_eq(h->nelts, 1);
    ck_assert_uint_le(strlen(HIT(h, 0)->title), PE_SEARCH_TITLE_MAX);
    ck_assert_uint_eq(strlen(HIT(h, 0)->title) % 2, 1); /* "a" + whole "é"s */
    ck_assert_str_eq(pe_search_text_cut(pe_tp, NULL, 3), "");
    ck_assert_str_eq(pe_search_text_cut(pe_tp, "abc", 3), "abc");
    ck_assert_str_eq(pe_search_text_cut(pe_tp, "ab\xc3\xa9", 3), "ab");
}
END_TEST

START_TEST(brave_request_and_parse)
{
    pe_search_conf_t c = sx("https://api.search.example/res/v1/web/search");
    pe_fetch_req_t q;
    apr_array_header_t *h;

    ck_assert_str_eq(pe_search_brave.request(pe_tp, &c, "x", &q), "no search API key configured");
    c.key = "secret-token";
    c.max_results = 5;
    ck_assert_ptr_null(pe_search_brave.request(pe_tp, &c, "tide tables", &q));
    ck_assert_str_eq(q.url, "https://api.search.example/res/v1/web/search?q=tide%20tables&count=5&safesearch=moderate");
    ck_assert_str_eq(q.headers[1], "X-Subscription-Token: secret-token");
    ck_assert_ptr_null(q.headers[2]);
    ck_assert_ptr_null(parse(&pe_search_brave, &c,
                             "{\"web\":{\"results\":[{\"url\":\"https://t.example.org/\",\"title\":\"Tides\","
                             "\"description\":\"tables\"}]}}",
                             &h));
    ck_assert_int_eq(h->nelts, 1);
    ck_assert_str_eq(HIT(h, 0)->snippet, "tables");
    ck_assert_ptr_null(parse(&pe_search_brave, &c, "{\"query\":{}}", &h));
    ck_assert_int_eq(h->nelts, 0);
    ck_assert_str_eq(parse(&pe_search_brave, &c, "{\"web\":[]}", &h), "answer has no web.results array");
    ck_assert_ptr_eq(pe_search_provider("SearXNG"), &pe_search_searxng);
    ck_assert_ptr_eq(pe_search_provider("brave"), &pe_search_brave);
    ck_assert_ptr_null(pe_search_provider("google"));
    ck_assert_ptr_null(pe_search_provider(NULL));
}
END_TEST

static pe_fake_t fx_search;
static int fx_ok;

/* The fake search, with results pointing at a web base nobody fetches here. */
static void fx_setup(void)
{
    const char *a[] = {"tests/fakes/fake_search.py", "--web-base", "http://127.0.0.2:9", NULL};

    fx_ok = pe_fake_start(&fx_search, a) == 0;
}

/* Stop it. */
static void fx_teardown(void)
{
    pe_fake_stop(&fx_search);
}

START_TEST(parallel_searches_against_the_fake)
{
    pe_search_conf_t c = sx(NULL);
    pe_search_out_t out[4];
    const char *qs[4] = {"bees [[fake:delay_ms=700]]", "tides [[fake:delay_ms=700]]",
                         "broken [[fake:status=500]]", "junk [[fake:fault=invalid_json]]"};
    long long t0;

    ck_assert_msg(fx_ok, "fake_search.py did not start");
    c.url = apr_psprintf(pe_tp, "http://127.0.0.1:%d/search", fx_search.port);
    t0 = pe_fake_now_ms();
    ck_assert_int_eq(pe_search_run(pe_tp, &c, NULL, qs, 4, out), 2);
    if (!pe_fake_slow_env())
        ck_assert_msg(pe_fake_now_ms() - t0 < 1300, "two searches of 700 ms took %lld ms", pe_fake_now_ms() - t0);
    ck_assert_ptr_null(out[0].error);
    ck_assert_int_eq(out[0].hits->nelts, 5);
    ck_assert_str_eq(HIT(out[0].hits, 0)->url, "http://127.0.0.2:9/article.html");
    ck_assert_str_eq(HIT(out[0].hits, 0)->title, "Honeybee Navigation and the Waggle Dance");
    ck_assert_int_eq(out[0].http_status, 200);
    ck_assert_ptr_null(out[1].error);
    ck_assert_ptr_nonnull(strstr(out[2].error, "HTTP status 500"));
    ck_assert_int_eq(out[2].hits->nelts, 0);
    ck_assert_str_eq(out[3].error, "answer is not valid JSON");

    /* a dead provider */
    c.url = "http://127.0.0.1:9/search";
    ck_assert_int_eq(pe_search_run(pe_tp, &c, NULL, qs, 1, out), 0);
    ck_assert_ptr_nonnull(strstr(out[0].error, "search provider:"));
    /* no configuration at all */
    ck_assert_int_eq(pe_search_run(pe_tp, NULL, NULL, qs, 1, out), 0);
    ck_assert_str_eq(out[0].error, "no search configured");
}
END_TEST

Suite *pe_suite_search(void)
{
    Suite *s = suite_create("search");
    TCase *tc = pe_tcase("providers");
    TCase *live = pe_tcase("live");

    tcase_add_test(tc, searxng_request);
    tcase_add_test(tc, searxng_parse);
    tcase_add_test(tc, long_titles_are_cut_at_a_character_boundary);
    tcase_add_test(tc, brave_request_and_parse);
    suite_add_tcase(s, tc);
    tcase_add_unchecked_fixture(live, fx_setup, fx_teardown);
    tcase_add_test(live, parallel_searches_against_the_fake);
    suite_add_tcase(s, live);
    return s;
}
