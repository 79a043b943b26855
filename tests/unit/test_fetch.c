/*
 * test_fetch.c: the parallel fetcher against real servers on loopback (tests/fakes): parallelism
 * and its bound, the byte cap (plain, chunked, gzip bomb), content types, statuses, redirects
 * (followed, counted, re-vetted: a redirect to 127.0.0.1 or 169.254.169.254 never reaches a
 * socket, checked with a canary listener), connect-time address checks, timeouts and the deadline.
 *
 * The pages are served on 127.0.0.2 and only that server's port is allow-listed, so the canary on
 * 127.0.0.1 stands for any internal service.
 */
#include "pe_fetch.h"
#include "pe_fakeproc.h"
#include "pe_test.h"

#include <apr_strings.h>

#include <stdio.h>
#include <string.h>

static pe_fakeset_t fx;

/* Start the canary, pages and search once for the test case. */
static void fx_setup(void)
{
    pe_fakeset_start(&fx);
}

/* Stop them. */
static void fx_teardown(void)
{
    pe_fakeset_stop(&fx);
}

/* URL of a path on the fake web server. */
static const char *web(const char *path)
{
    return apr_psprintf(pe_tp, "http://127.0.0.2:%d%s", fx.web.port, path);
}

/* The guarded options the research pipeline uses, with the fixture server's port on 127.0.0.2 allowed. */
static pe_fetch_opts_t page_opts(void)
{
    pe_fetch_opts_t o;
    pe_ssrf_allow_list_t *allow = NULL;
    pe_ssrf_policy_t *pol = apr_pcalloc(pe_tp, sizeof(*pol));

    ck_assert_msg(fx.ok, "the fakes did not start (python3 tests/fakes/*.py)");
    ck_assert_ptr_null(pe_ssrf_allow_parse(pe_tp, apr_psprintf(pe_tp, "127.0.0.2:%d", fx.web.port), &allow));
    pol->allow = allow;
    memset(&o, 0, sizeof(o));
    o.guarded = 1;
    o.policy = pol;
    o.truncate = 1;
    o.content_types = pe_fetch_page_types;
    return o;
}

/* Fetch one URL; returns its result. */
static pe_fetch_res_t fetch1(const pe_fetch_opts_t *o, const char *url)
{
    pe_fetch_req_t q;
    pe_fetch_res_t r;
    pe_fetch_stats_t st;

    memset(&q, 0, sizeof(q));
    q.url = url;
    ck_assert_int_eq(pe_fetch_all(pe_tp, o, &q, 1, &r, &st), APR_SUCCESS);
    ck_assert_int_eq(st.started, 1);
    return r;
}

START_TEST(parallel_five_slow_pages)
{
    pe_fetch_opts_t o = page_opts();
    pe_fetch_req_t q[5];
    pe_fetch_res_t r[5];
    pe_fetch_stats_t st;
    long long t0;
    int i;

    memset(q, 0, sizeof(q));
    for (i = 0; i < 5; i++)
        q[i].url = web(apr_psprintf(pe_tp, "/slow?ms=1000&id=p%d", i));
    t0 = pe_fake_now_ms();
    ck_assert_int_eq(pe_fetch_all(pe_tp, &o, q, 5, r, &st), APR_SUCCESS);
    for (i = 0; i < 5; i++) {
        ck_assert_int_eq(r[i].status, PE_FETCH_OK);
        ck_assert_int_eq(r[i].http_status, 200);
        ck_assert_str_eq(r[i].content_type, "text/html");
        ck_assert_ptr_nonnull(strstr(r[i].body, apr_psprintf(pe_tp, "SLOW-PAGE-MARKER p%d", i)));
        ck_assert_int_eq((int)strlen(r[i].body), (int)r[i].len);
        ck_assert_int_ge((int)apr_time_as_msec(r[i].elapsed), 950);
    }
    ck_assert_int_eq(st.ok, 5);
    ck_assert_int_eq(st.max_active, 5);
    ck_assert_int_ge((int)(pe_fake_now_ms() - t0), 950);
    if (!pe_fake_slow_env())
        ck_assert_msg(pe_fake_now_ms() - t0 < 2500, "5 pages of 1 s took %lld ms", pe_fake_now_ms() - t0);
}
END_TEST

START_TEST(concurrency_is_bounded)
{
    pe_fetch_opts_t o = page_opts();
    pe_fetch_req_t q[4];
    pe_fetch_res_t r[4];
    pe_fetch_stats_t st;
    long long t0, ms;
    int i;

    o.max_parallel = 2;
    memset(q, 0, sizeof(q));
    for (i = 0; i < 4; i++)
        q[i].url = web(apr_psprintf(pe_tp, "/slow?ms=400&id=b%d", i));
    t0 = pe_fake_now_ms();
    ck_assert_int_eq(pe_fetch_all(pe_tp, &o, q, 4, r, &st), APR_SUCCESS);
    ms = pe_fake_now_ms() - t0;
    for (i = 0; i < 4; i++)
        ck_assert_int_eq(r[i].status, PE_FETCH_OK);
    ck_assert_int_eq(st.max_active, 2);
    ck_assert_int_eq(st.transfers, 4);
    ck_assert_msg(ms >= 780, "two waves of 400 ms took only %lld ms", ms);
}
END_TEST

START_TEST(fixture_page_and_plain_text)
{
    pe_fetch_opts_t o = page_opts();
    pe_fetch_res_t r = fetch1(&o, web("/article.html"));

    ck_assert_int_eq(r.status, PE_FETCH_OK);
    ck_assert_ptr_nonnull(strstr(r.body, "ARTICLE-MAIN-MARKER"));
    ck_assert_str_eq(r.content_type, "text/html");
    ck_assert_str_eq(r.charset, "utf-8");
    ck_assert_int_eq(r.truncated, 0);
    ck_assert_int_eq(r.redirects, 0);
    ck_assert_ptr_null(r.error);

    r = fetch1(&o, web("/notes.txt"));
    ck_assert_int_eq(r.status, PE_FETCH_OK);
    ck_assert_str_eq(r.content_type, "text/plain");
}
END_TEST

START_TEST(huge_page_is_cut_at_the_cap)
{
    pe_fetch_opts_t o = page_opts();
    pe_fetch_res_t r;

    o.max_bytes = 256 * 1024;
    r = fetch1(&o, web("/huge?mb=20"));
    ck_assert_int_eq(r.status, PE_FETCH_OK);
    ck_assert_int_eq(r.truncated, 1);
    ck_assert_uint_eq(r.len, 256 * 1024);
    ck_assert_ptr_nonnull(strstr(r.body, "Huge page filler paragraph"));

    r = fetch1(&o, web("/huge?mb=20&chunked=1"));
    ck_assert_int_eq(r.status, PE_FETCH_OK);
    ck_assert_int_eq(r.truncated, 1);
    ck_assert_uint_eq(r.len, 256 * 1024);

    /* a page under the cap is whole */
    o.max_bytes = 2 * 1024 * 1024;
    r = fetch1(&o, web("/huge?mb=1"));
    ck_assert_int_eq(r.status, PE_FETCH_OK);
    ck_assert_int_eq(r.truncated, 0);
    ck_assert_uint_eq(r.len, 1024 * 1024);

    /* without truncation the page fails */
    o.max_bytes = 64 * 1024;
    o.truncate = 0;
    r = fetch1(&o, web("/huge?mb=20"));
    ck_assert_int_eq(r.status, PE_FETCH_TOO_LARGE);
    ck_assert_uint_eq(r.len, 0);
    ck_assert_str_eq(r.body, "");
}
END_TEST

START_TEST(gzip_bomb_counts_inflated_bytes)
{
    pe_fetch_opts_t o = page_opts();
    pe_fetch_res_t r;

    o.max_bytes = 512 * 1024;
    r = fetch1(&o, web("/bomb.gz?mb=1024"));
    ck_assert_int_eq(r.status, PE_FETCH_OK);
    ck_assert_int_eq(r.truncated, 1);
    ck_assert_uint_eq(r.len, 512 * 1024);
    ck_assert_int_eq(r.body[0], 0); /* inflated zeros, not the compressed bytes */
    ck_assert_msg(apr_time_as_msec(r.elapsed) < 5000, "bomb took %ld ms", (long)apr_time_as_msec(r.elapsed));
}
END_TEST

START_TEST(content_types_and_statuses)
{
    pe_fetch_opts_t o = page_opts();
    pe_fetch_res_t r;

    r = fetch1(&o, web("/binary"));
    ck_assert_int_eq(r.status, PE_FETCH_TYPE);
    ck_assert_str_eq(r.content_type, "application/octet-stream");
    ck_assert_uint_eq(r.len, 0);
    r = fetch1(&o, web("/json"));
    ck_assert_int_eq(r.status, PE_FETCH_TYPE);
    r = fetch1(&o, web("/content-type?type=application/pdf"));
    ck_assert_int_eq(r.status, PE_FETCH_TYPE);
    r = fetch1(&o, web("/content-type?type=TEXT/HTML;%20charset=%22ISO-8859-1%22"));
    ck_assert_int_eq(r.status, PE_FETCH_OK);
    ck_assert_str_eq(r.charset, "ISO-8859-1");
    r = fetch1(&o, web("/status/404"));
    ck_assert_int_eq(r.status, PE_FETCH_HTTP);
    ck_assert_int_eq(r.http_status, 404);
    ck_assert_str_eq(r.error, "HTTP status 404");
    r = fetch1(&o, web("/status/503"));
    ck_assert_int_eq(r.status, PE_FETCH_HTTP);
    ck_assert_int_eq(r.http_status, 503);
    /* no allow list of types: anything goes */
    o.content_types = NULL;
    r = fetch1(&o, web("/json"));
    ck_assert_int_eq(r.status, PE_FETCH_OK);
    ck_assert_ptr_nonnull(strstr(r.body, "JSON-BODY-MARKER"));
}
END_TEST

START_TEST(redirects_are_followed_and_counted)
{
    pe_fetch_opts_t o = page_opts();
    pe_fetch_res_t r;

    r = fetch1(&o, web("/redirect/chain/3"));
    ck_assert_int_eq(r.status, PE_FETCH_OK);
    ck_assert_int_eq(r.redirects, 3);
    ck_assert_ptr_nonnull(strstr(r.body, "CHAIN-END-MARKER"));
    ck_assert_str_eq(r.url, web("/redirect/chain/0"));

    r = fetch1(&o, web("/redirect/chain/4"));
    ck_assert_int_eq(r.status, PE_FETCH_REDIRECTS);
    r = fetch1(&o, web("/redirect/loop"));
    ck_assert_int_eq(r.status, PE_FETCH_REDIRECTS);
    ck_assert_int_eq(r.redirects, 4);

    o.max_redirects = -1;
    r = fetch1(&o, web("/redirect/chain/1"));
    ck_assert_int_eq(r.status, PE_FETCH_REDIRECTS);
    ck_assert_int_eq(r.http_status, 302);

    /* a redirect to another allowed page, absolute */
    o.max_redirects = 3;
    r = fetch1(&o, web(apr_psprintf(pe_tp, "/redirect/to?url=%s&status=301", web("/article2.html"))));
    ck_assert_int_eq(r.status, PE_FETCH_OK);
    ck_assert_ptr_nonnull(strstr(r.body, "ARTICLE2-MAIN-MARKER"));
}
END_TEST

START_TEST(redirects_to_internal_addresses_never_connect)
{
    pe_fetch_opts_t o = page_opts();
    pe_fetch_req_t q[5];
    pe_fetch_res_t r[5];
    pe_fetch_stats_t st;
    int i;

    memset(q, 0, sizeof(q));
    q[0].url = web("/redirect/canary");
    q[1].url = web("/redirect/metadata");
    q[2].url = web("/redirect/file");
    q[3].url = web(apr_psprintf(pe_tp, "/redirect/to?url=http://0x7f000001:%d/", fx.canary.port));
    q[4].url = web(apr_psprintf(pe_tp, "/redirect/to?url=http://[::ffff:127.0.0.1]:%d/&status=307", fx.canary.port));
    ck_assert_int_eq(pe_fetch_all(pe_tp, &o, q, 5, r, &st), APR_SUCCESS);
    for (i = 0; i < 5; i++) {
        ck_assert_msg(r[i].status == PE_FETCH_REFUSED, "request %d: %s", i, pe_fetch_status_name(r[i].status));
        ck_assert_int_eq(r[i].redirects, 1);
        ck_assert_ptr_nonnull(strstr(r[i].error, "redirect target refused"));
        ck_assert_uint_eq(r[i].len, 0);
    }
    ck_assert_ptr_nonnull(strstr(r[0].error, "loopback"));
    ck_assert_ptr_nonnull(strstr(r[1].error, "169.254.169.254"));
    ck_assert_ptr_nonnull(strstr(r[2].error, "scheme"));
    ck_assert_int_eq((int)st.refused, 5);
    usleep(200000);
    ck_assert_int_eq(pe_fake_read_count(fx.count_file) <= 0, 1);
}
END_TEST

START_TEST(names_resolving_to_blocked_addresses_are_refused_at_connect)
{
    pe_fetch_opts_t o = page_opts();
    pe_fetch_res_t r;

    /* an allow list names addresses, never names: localhost is refused before any lookup */
    r = fetch1(&o, apr_psprintf(pe_tp, "http://localhost:%d/", fx.web.port));
    ck_assert_int_eq(r.status, PE_FETCH_REFUSED);
    ck_assert_ptr_nonnull(strstr(r.error, "single-label host name"));
    /* the same page by address on a port the list does not name: refused */
    r = fetch1(&o, apr_psprintf(pe_tp, "http://127.0.0.2:%d/", fx.canary.port));
    ck_assert_int_eq(r.status, PE_FETCH_REFUSED);
    /* without one the URL is refused before any lookup */
    o.policy = NULL;
    r = fetch1(&o, web("/article.html"));
    ck_assert_int_eq(r.status, PE_FETCH_REFUSED);
    ck_assert_ptr_nonnull(strstr(r.error, "URL refused"));
    r = fetch1(&o, "ftp://example.com/x");
    ck_assert_int_eq(r.status, PE_FETCH_REFUSED);
    usleep(200000);
    ck_assert_int_eq(pe_fake_read_count(fx.count_file) <= 0, 1);
}
END_TEST

START_TEST(timeouts_and_deadline)
{
    pe_fetch_opts_t o = page_opts();
    pe_fetch_req_t q[3];
    pe_fetch_res_t r[3];
    pe_fetch_stats_t st;
    long long t0;

    o.timeout_ms = 300;
    t0 = pe_fake_now_ms();
    r[0] = fetch1(&o, web("/slow?ms=3000"));
    ck_assert_int_eq(r[0].status, PE_FETCH_TIMEOUT);
    ck_assert_msg(pe_fake_now_ms() - t0 < 2000, "page timeout of 300 ms took %lld ms", pe_fake_now_ms() - t0);

    /* the whole call's deadline: one at a time, the first times out, the others never start */
    o.timeout_ms = 5000;
    o.total_ms = 400;
    o.max_parallel = 1;
    memset(q, 0, sizeof(q));
    q[0].url = web("/slow?ms=3000&id=d0");
    q[1].url = web("/slow?ms=3000&id=d1");
    q[2].url = web("/article.html");
    t0 = pe_fake_now_ms();
    ck_assert_int_eq(pe_fetch_all(pe_tp, &o, q, 3, r, &st), APR_SUCCESS);
    ck_assert_msg(pe_fake_now_ms() - t0 < 2000, "deadline of 400 ms took %lld ms", pe_fake_now_ms() - t0);
    ck_assert_int_eq(r[0].status, PE_FETCH_TIMEOUT);
    ck_assert_int_eq(r[1].status, PE_FETCH_SKIPPED);
    ck_assert_int_eq(r[2].status, PE_FETCH_SKIPPED);
    ck_assert_int_eq(st.started, 1);
}
END_TEST

START_TEST(unguarded_endpoint_and_dead_server)
{
    pe_fetch_opts_t o;
    pe_fetch_res_t r;

    ck_assert_msg(fx.ok, "the fakes did not start");
    memset(&o, 0, sizeof(o));
    r = fetch1(&o, apr_psprintf(pe_tp, "http://127.0.0.1:%d/search?q=bees&format=json", fx.search.port));
    ck_assert_int_eq(r.status, PE_FETCH_OK);
    ck_assert_str_eq(r.content_type, "application/json");
    ck_assert_ptr_nonnull(strstr(r.body, "\"results\""));
    /* a closed port: the canary's control port is open, so use a port the kernel just freed */
    r = fetch1(&o, "http://127.0.0.1:9/");
    ck_assert_int_eq(r.status, PE_FETCH_NETWORK);
    ck_assert_ptr_nonnull(r.error);
    r = fetch1(&o, "file:///etc/passwd");
    ck_assert_int_eq(r.status, PE_FETCH_REFUSED);
    /* POST with headers and body */
    {
        pe_fetch_req_t q;
        static const char *const hdrs[] = {"Content-Type: application/x-www-form-urlencoded", NULL};

        memset(&q, 0, sizeof(q));
        q.url = apr_psprintf(pe_tp, "http://127.0.0.1:%d/search", fx.search.port);
        q.method = "POST";
        q.body = "q=tides&format=json";
        q.body_len = strlen(q.body);
        q.headers = hdrs;
        ck_assert_int_eq(pe_fetch_all(pe_tp, &o, &q, 1, &r, NULL), APR_SUCCESS);
        ck_assert_int_eq(r.status, PE_FETCH_OK);
        ck_assert_ptr_nonnull(strstr(r.body, "\"query\": \"tides\""));
    }
}
END_TEST

START_TEST(content_type_parsing)
{
    const char *t, *cs;

    pe_fetch_parse_content_type(pe_tp, "Text/HTML; Charset=\"UTF-8\"", &t, &cs);
    ck_assert_str_eq(t, "text/html");
    ck_assert_str_eq(cs, "UTF-8");
    pe_fetch_parse_content_type(pe_tp, " text/plain ;format=flowed; charset=latin1 ", &t, &cs);
    ck_assert_str_eq(t, "text/plain");
    ck_assert_str_eq(cs, "latin1");
    pe_fetch_parse_content_type(pe_tp, "application/xhtml+xml", &t, &cs);
    ck_assert_str_eq(t, "application/xhtml+xml");
    ck_assert_ptr_null(cs);
    pe_fetch_parse_content_type(pe_tp, ";charset=", &t, &cs);
    ck_assert_ptr_null(t);
    ck_assert_ptr_null(cs);
    pe_fetch_parse_content_type(pe_tp, NULL, &t, &cs);
    ck_assert_ptr_null(t);
    ck_assert_str_eq(pe_fetch_status_name(PE_FETCH_REFUSED), "refused");
    ck_assert_str_eq(pe_fetch_status_name((pe_fetch_status_e)99), "unknown");
}
END_TEST

START_TEST(bad_arguments)
{
    pe_fetch_res_t r;
    pe_fetch_stats_t st;

    ck_assert_int_eq(pe_fetch_all(pe_tp, NULL, NULL, 1, &r, &st), APR_EINVAL);
    ck_assert_int_eq(pe_fetch_all(pe_tp, NULL, NULL, -1, NULL, NULL), APR_EINVAL);
    ck_assert_int_eq(pe_fetch_all(pe_tp, NULL, NULL, 0, NULL, &st), APR_SUCCESS);
    ck_assert_int_eq(st.started, 0);
}
END_TEST

Suite *pe_suite_fetch(void)
{
    Suite *s = suite_create("fetch");
    TCase *tc = pe_tcase("offline");
    TCase *live = pe_tcase("live");

    tcase_add_test(tc, content_type_parsing);
    tcase_add_test(tc, bad_arguments);
    suite_add_tcase(s, tc);

    tcase_add_unchecked_fixture(live, fx_setup, fx_teardown);
    tcase_add_test(live, parallel_five_slow_pages);
    tcase_add_test(live, concurrency_is_bounded);
    tcase_add_test(live, fixture_page_and_plain_text);
    tcase_add_test(live, huge_page_is_cut_at_the_cap);
    tcase_add_test(live, gzip_bomb_counts_inflated_bytes);
    tcase_add_test(live, content_types_and_statuses);
    tcase_add_test(live, redirects_are_followed_and_counted);
    tcase_add_test(live, redirects_to_internal_addresses_never_connect);
    tcase_add_test(live, names_resolving_to_blocked_addresses_are_refused_at_connect);
    tcase_add_test(live, timeouts_and_deadline);
    tcase_add_test(live, unguarded_endpoint_and_dead_server);
    suite_add_tcase(s, live);
    return s;
}
