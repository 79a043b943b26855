/* test_core_http.c: JSON helpers, route matching, capped buffers, config value parsing. */
#include "pe_buf.h"
#include "pe_json.h"
#include "pe_parse.h"
#include "pe_route.h"
#include "pe_test.h"
#include "pe_util.h"

#include <string.h>

static int h1, h2, h3, h4;
static const pe_route_t routes[] = {
    {PE_M_GET, "/", PE_G_CORE, &h1},
    {PE_M_GET, "/health", PE_G_CORE, &h2},
    {PE_M_GET | PE_M_PUT, "/v1/users/profile", PE_G_USERS, &h3},
    {PE_M_GET, "/v1/admin-panel/users/stats", PE_G_ADMIN, &h1},
    {PE_M_GET | PE_M_DELETE, "/v1/admin-panel/users/{user_id}", PE_G_ADMIN, &h4},
    {PE_M_POST, "/v1/admin-panel/users/{user_id}/regenerate-api-key", PE_G_ADMIN, &h2},
};
#define NR ((int)(sizeof(routes) / sizeof(routes[0])))

START_TEST(route_literal_and_method)
{
    pe_route_match_t m;

    ck_assert_int_eq(pe_route_match(pe_tp, routes, NR, PE_G_ALL, PE_M_GET, "/health", &m), PE_ROUTE_OK);
    ck_assert_ptr_eq(m.route->handler, &h2);
    ck_assert_int_eq(pe_route_match(pe_tp, routes, NR, PE_G_ALL, PE_M_HEAD, "/health", &m), PE_ROUTE_OK);
    ck_assert_int_eq(pe_route_match(pe_tp, routes, NR, PE_G_ALL, PE_M_POST, "/health", &m), PE_ROUTE_BAD_METHOD);
    ck_assert_str_eq(pe_route_allow_header(pe_tp, m.allowed), "GET, HEAD");
    ck_assert_int_eq(pe_route_match(pe_tp, routes, NR, PE_G_ALL, PE_M_POST, "/v1/users/profile", &m),
                     PE_ROUTE_BAD_METHOD);
    ck_assert_str_eq(pe_route_allow_header(pe_tp, m.allowed), "GET, HEAD, PUT");
    ck_assert_int_eq(pe_route_match(pe_tp, routes, NR, PE_G_ALL, PE_M_GET, "/healthz", &m), PE_ROUTE_NOT_FOUND);
    ck_assert_int_eq(pe_route_match(pe_tp, routes, NR, PE_G_ALL, PE_M_GET, "/health/", &m), PE_ROUTE_NOT_FOUND);
    ck_assert_int_eq(pe_route_match(pe_tp, routes, NR, PE_G_ALL, 0, "/health", &m), PE_ROUTE_BAD_METHOD);
}
END_TEST

START_TEST(route_params_and_order)
{
    pe_route_match_t m;

    ck_assert_int_eq(pe_route_match(pe_tp, routes, NR, PE_G_ALL, PE_M_GET, "/v1/admin-panel/users/stats", &m),
                     PE_ROUTE_OK);
    ck_assert_ptr_eq(m.route->handler, &h1); /* literal listed first wins */
    ck_assert_int_eq(pe_route_match(pe_tp, routes, NR, PE_G_ALL, PE_M_DELETE, "/v1/admin-panel/users/42", &m),
                     PE_ROUTE_OK);
    ck_assert_ptr_eq(m.route->handler, &h4);
    ck_assert_str_eq(pe_route_param(&m, "user_id"), "42");
    ck_assert_ptr_null(pe_route_param(&m, "nope"));
    ck_assert_int_eq(pe_route_match(pe_tp, routes, NR, PE_G_ALL, PE_M_POST,
                                    "/v1/admin-panel/users/a-b/regenerate-api-key", &m),
                     PE_ROUTE_OK);
    ck_assert_str_eq(pe_route_param(&m, "user_id"), "a-b");
    /* an empty segment never matches a placeholder */
    ck_assert_int_eq(pe_route_match(pe_tp, routes, NR, PE_G_ALL, PE_M_GET, "/v1/admin-panel/users/", &m),
                     PE_ROUTE_NOT_FOUND);
    ck_assert_int_eq(pe_route_match(pe_tp, routes, NR, PE_G_ALL, PE_M_GET, "/v1/admin-panel/users/1/2", &m),
                     PE_ROUTE_NOT_FOUND);
}
END_TEST

/* The same question twice (the second answered from the thread's last answer) and questions that
 * differ in one part only get the answers of a walk of the table. */
START_TEST(route_repeated_questions)
{
    static const pe_route_t other[] = {{PE_M_POST, "/health", PE_G_CORE, &h3}};
    pe_route_match_t m;
    int i;

    for (i = 0; i < 2; i++) {
        ck_assert_int_eq(pe_route_match(pe_tp, routes, NR, PE_G_ALL, PE_M_PUT, "/v1/users/profile", &m), PE_ROUTE_OK);
        ck_assert_ptr_eq(m.route->handler, &h3);
        ck_assert_int_eq(m.nparams, 0);
        ck_assert_str_eq(pe_route_allow_header(pe_tp, m.allowed), "GET, HEAD, PUT");
    }
    ck_assert_int_eq(pe_route_match(pe_tp, routes, NR, PE_G_USERS, PE_M_POST, "/v1/users/profile", &m),
                     PE_ROUTE_BAD_METHOD);
    ck_assert_int_eq(pe_route_match(pe_tp, routes, NR, PE_G_CORE, PE_M_POST, "/v1/users/profile", &m),
                     PE_ROUTE_NOT_FOUND);
    ck_assert_int_eq(pe_route_match(pe_tp, routes, NR, PE_G_CORE, PE_M_POST, "/v1/users/profile", &m),
                     PE_ROUTE_NOT_FOUND);
    ck_assert_int_eq(pe_route_match(pe_tp, routes, NR, PE_G_CORE, PE_M_POST, "/health", &m), PE_ROUTE_BAD_METHOD);
    ck_assert_int_eq(pe_route_match(pe_tp, other, 1, PE_G_CORE, PE_M_POST, "/health", &m), PE_ROUTE_OK);
    ck_assert_ptr_eq(m.route->handler, &h3);
    ck_assert_int_eq(pe_route_match(pe_tp, routes, NR - 1, PE_G_CORE, PE_M_GET, "/health", &m), PE_ROUTE_OK);
    ck_assert_int_eq(pe_route_match(pe_tp, routes, 1, PE_G_CORE, PE_M_GET, "/health", &m), PE_ROUTE_NOT_FOUND);
    /* placeholders: every answer has its own values */
    for (i = 0; i < 2; i++) {
        ck_assert_int_eq(pe_route_match(pe_tp, routes, NR, PE_G_ALL, PE_M_GET, i ? "/v1/admin-panel/users/7"
                                                                                 : "/v1/admin-panel/users/6", &m),
                         PE_ROUTE_OK);
        ck_assert_str_eq(pe_route_param(&m, "user_id"), i ? "7" : "6");
    }
    ck_assert_int_eq(pe_route_match(pe_tp, routes, NR, PE_G_ALL, PE_M_GET, "/v1/admin-panel/users/7", &m), PE_ROUTE_OK);
    ck_assert_str_eq(pe_route_param(&m, "user_id"), "7");
}
END_TEST

START_TEST(route_groups)
{
    pe_route_match_t m;

    ck_assert_int_eq(pe_route_match(pe_tp, routes, NR, PE_G_USERS, PE_M_GET, "/health", &m), PE_ROUTE_NOT_FOUND);
    ck_assert_int_eq(pe_route_match(pe_tp, routes, NR, PE_G_USERS, PE_M_GET, "/v1/users/profile", &m), PE_ROUTE_OK);
    ck_assert_uint_eq(pe_route_group_bit("admin-panel"), PE_G_ADMIN);
    ck_assert_uint_eq(pe_route_group_bit("all"), PE_G_ALL);
    ck_assert_uint_eq(pe_route_group_bit("all") & PE_G_DIAG, 0);
    ck_assert_uint_eq(pe_route_group_bit("openapi"), PE_G_OPENAPI);
    ck_assert_uint_eq(pe_route_group_bit("all") & PE_G_OPENAPI, PE_G_OPENAPI);
    ck_assert_ptr_nonnull(strstr(pe_route_group_names(), " openapi "));
    ck_assert_uint_eq(pe_route_group_bit("admin"), PE_G_SYSADMIN); /* /v1/admin/..., in "all" */
    ck_assert_uint_eq(pe_route_group_bit("all") & PE_G_SYSADMIN, PE_G_SYSADMIN);
    ck_assert_uint_eq(pe_route_group_bit("admin-pane"), 0);
    ck_assert_uint_eq(pe_route_method_bit("GET"), PE_M_GET);
    ck_assert_uint_eq(pe_route_method_bit("get"), 0);
    ck_assert_uint_eq(pe_route_method_bit("TRACE"), 0);
}
END_TEST

START_TEST(json_strict_parse)
{
    json_t *j;
    const char *err;

    ck_assert_int_eq(pe_json_parse(pe_tp, "{\"a\":1}", 7, &j, &err), 0);
    ck_assert_int_eq(json_integer_value(json_object_get(j, "a")), 1);
    ck_assert_int_eq(pe_json_parse(pe_tp, "{\"a\":1,\"a\":2}", 13, &j, &err), -1);
    ck_assert_ptr_nonnull(strstr(err, "duplicate"));
    ck_assert_int_eq(pe_json_parse(pe_tp, "{\"a\":1} x", 9, &j, &err), -1);
    ck_assert_int_eq(pe_json_parse(pe_tp, "{\"a\":", 5, &j, &err), -1);
    ck_assert_ptr_nonnull(strstr(err, "line 1"));
    ck_assert_int_eq(pe_json_parse(pe_tp, "", 0, &j, &err), -1);
    ck_assert_int_eq(pe_json_parse(pe_tp, "\"\\u0000\"", 8, &j, &err), -1);
    /* NUL in a string: a clean message, not the decoder's flag name */
    ck_assert_int_eq(pe_json_parse(pe_tp, "{\"a\":\"x\\u0000y\"}", 17, &j, &err), -1);
    ck_assert_msg(strstr(err, "\\u0000 (NUL)") != NULL, "%s", err);
    ck_assert_msg(strstr(err, "JSON_") == NULL, "%s", err);
    ck_assert_int_eq(pe_json_parse(pe_tp, "{\"s\":\"\xff\"}", 9, &j, &err), -1);
}
END_TEST

START_TEST(json_depth_limit)
{
    char deep[200], ok[200];
    json_t *j;
    const char *err;
    int i;

    for (i = 0; i < 33; i++)
        deep[i] = '[';
    for (i = 0; i < 33; i++)
        deep[33 + i] = ']';
    ck_assert_int_eq(pe_json_parse(pe_tp, deep, 66, &j, &err), -1);
    ck_assert_ptr_nonnull(strstr(err, "deeper"));
    for (i = 0; i < 32; i++)
        ok[i] = '[';
    for (i = 0; i < 32; i++)
        ok[32 + i] = ']';
    ck_assert_int_eq(pe_json_parse(pe_tp, ok, 64, &j, &err), 0);
    ck_assert_int_eq(pe_json_depth(j), 32);
}
END_TEST

START_TEST(json_error_envelope)
{
    json_t *extra = pe_json_bind(pe_tp, json_pack("{s:i}", "retry_after", 5));
    json_t *e = pe_json_error(pe_tp, "too many", "RATE_LIMITED", "abc", extra);
    const char *s = pe_json_dump(pe_tp, e, NULL);

    ck_assert(json_is_false(json_object_get(e, "success")));
    ck_assert_str_eq(pe_json_str(e, "message"), "too many");
    ck_assert_str_eq(pe_json_str(e, "error"), "too many");
    ck_assert_str_eq(pe_json_str(e, "error_code"), "RATE_LIMITED");
    ck_assert_str_eq(pe_json_str(json_object_get(e, "details"), "request_id"), "abc");
    ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(e, "details"), "retry_after")), 5);
    ck_assert_ptr_null(json_object_get(extra, "request_id")); /* extra untouched */
    ck_assert_ptr_nonnull(strstr(s, "\"success\":false"));
    /* a message that is not UTF-8 still yields a complete envelope */
    e = pe_json_error(pe_tp, "bad \xff", "X", "id", NULL);
    ck_assert_ptr_nonnull(pe_json_str(e, "message"));
}
END_TEST

/* OpenAI's error shape: extras kept inside "error", param null unless a field is named. */
START_TEST(json_error_openai)
{
    json_t *extra = pe_json_bind(pe_tp, json_pack("{s:{s:s}}", "limits", "resets_at", "2026-11-24T00:00:00Z"));
    json_t *o = pe_json_error_openai(pe_tp, "Insufficient conversation credits", "insufficient_quota",
                                     "CREDITS_EXHAUSTED", NULL, "rid", extra);
    json_t *e = json_object_get(o, "error");

    ck_assert_int_eq(json_object_size(o), 1);
    ck_assert_str_eq(pe_json_str(e, "message"), "Insufficient conversation credits");
    ck_assert_str_eq(pe_json_str(e, "type"), "insufficient_quota");
    ck_assert_str_eq(pe_json_str(e, "code"), "CREDITS_EXHAUSTED");
    ck_assert(json_is_null(json_object_get(e, "param")));
    ck_assert_str_eq(pe_json_str(e, "request_id"), "rid");
    ck_assert_str_eq(pe_json_str(json_object_get(e, "limits"), "resets_at"), "2026-11-24T00:00:00Z");
    o = pe_json_error_openai(pe_tp, "m", "invalid_request_error", "VALIDATION_ERROR", "temperature", "r", NULL);
    ck_assert_str_eq(pe_json_str(json_object_get(o, "error"), "param"), "temperature");

    ck_assert_str_eq(pe_json_error_openai_type(429, "CREDITS_EXHAUSTED"), "insufficient_quota");
    ck_assert_str_eq(pe_json_error_openai_type(429, "RATE_LIMITED"), "rate_limit_error");
    ck_assert_str_eq(pe_json_error_openai_type(401, "INVALID_API_KEY"), "authentication_error");
    ck_assert_str_eq(pe_json_error_openai_type(403, "IP_BLOCKED"), "permission_error");
    ck_assert_str_eq(pe_json_error_openai_type(422, "VALIDATION_ERROR"), "invalid_request_error");
    ck_assert_str_eq(pe_json_error_openai_type(502, "UPSTREAM_ERROR"), "upstream_error");
    ck_assert_str_eq(pe_json_error_openai_type(503, "STORE_UNAVAILABLE"), "server_error");

    ck_assert_str_eq(pe_json_error_param(pe_tp, "temperature must be a number between 0 and 2"), "temperature");
    ck_assert_str_eq(pe_json_error_param(pe_tp, "messages[0].content must be a string"), "messages[0].content");
    ck_assert_ptr_null(pe_json_error_param(pe_tp, "Messages cannot be empty"));
    ck_assert_ptr_null(pe_json_error_param(pe_tp, "unknown r_type 'x': expected one of bpe"));
    ck_assert_ptr_null(pe_json_error_param(pe_tp, " must x"));

    ck_assert_int_eq(pe_json_error_retry(429, "CREDITS_EXHAUSTED"), 0);
    ck_assert_int_eq(pe_json_error_retry(429, "RATE_LIMITED"), -1);
    ck_assert_int_eq(pe_json_error_retry(422, "VALIDATION_ERROR"), 0);
    ck_assert_int_eq(pe_json_error_retry(401, "INVALID_API_KEY"), 0);
    ck_assert_int_eq(pe_json_error_retry(409, "CONFLICT"), 0);
    ck_assert_int_eq(pe_json_error_retry(408, "REQUEST_TIMEOUT"), -1);
    ck_assert_int_eq(pe_json_error_retry(503, "STORE_UNAVAILABLE"), -1);
    ck_assert_int_eq(pe_json_error_retry(502, "UPSTREAM_ERROR"), -1);
    ck_assert_int_eq(pe_json_error_retry(502, "UPSTREAM_INVALID"), 0);
    ck_assert_int_eq(pe_json_error_retry(503, "UPSTREAM_NOT_CONFIGURED"), 0);
}
END_TEST

START_TEST(buf_cap)
{
    pe_buf_t b;
    char chunk[1000];
    int i;

    memset(chunk, 'x', sizeof(chunk));
    pe_buf_init(&b, pe_tp, 4500);
    for (i = 0; i < 4; i++)
        ck_assert_int_eq(pe_buf_append(&b, chunk, sizeof(chunk)), APR_SUCCESS);
    ck_assert_int_eq(pe_buf_append(&b, chunk, sizeof(chunk)), APR_ENOSPC);
    ck_assert_uint_eq(b.len, 4000);
    ck_assert_int_eq(pe_buf_append(&b, chunk, 500), APR_SUCCESS);
    ck_assert_uint_eq(b.len, 4500);
    ck_assert_int_eq(b.data[4500], '\0');
    ck_assert_int_eq(pe_buf_append(&b, chunk, 1), APR_ENOSPC);
    ck_assert_int_eq(pe_buf_append(&b, chunk, 0), APR_SUCCESS);
    ck_assert_int_eq(pe_buf_append(&b, chunk, (apr_size_t)-1), APR_ENOSPC);
}
END_TEST

START_TEST(parse_values)
{
    apr_off_t sz;
    long n;
    long long ms;

    ck_assert_ptr_null(pe_parse_size(pe_tp, "64K", 1 << 30, &sz));
    ck_assert_int_eq(sz, 65536);
    ck_assert_ptr_null(pe_parse_size(pe_tp, "1M", 1 << 30, &sz));
    ck_assert_int_eq(sz, 1048576);
    ck_assert_ptr_null(pe_parse_size(pe_tp, "2mb", 1 << 30, &sz));
    ck_assert_ptr_null(pe_parse_size(pe_tp, "100", 1 << 30, &sz));
    ck_assert_int_eq(sz, 100);
    ck_assert_ptr_nonnull(pe_parse_size(pe_tp, "0", 1 << 30, &sz));
    ck_assert_ptr_nonnull(pe_parse_size(pe_tp, "-1", 1 << 30, &sz));
    ck_assert_ptr_nonnull(pe_parse_size(pe_tp, "10Q", 1 << 30, &sz));
    ck_assert_ptr_nonnull(pe_parse_size(pe_tp, "2G", 1 << 30, &sz));
    ck_assert_ptr_nonnull(pe_parse_size(pe_tp, "99999999999999999999", 1 << 30, &sz));
    ck_assert_ptr_nonnull(pe_parse_size(pe_tp, "", 1 << 30, &sz));
    ck_assert_ptr_null(pe_parse_int(pe_tp, "5", 1, 10, &n));
    ck_assert_int_eq(n, 5);
    ck_assert_ptr_nonnull(pe_parse_int(pe_tp, "11", 1, 10, &n));
    ck_assert_ptr_nonnull(pe_parse_int(pe_tp, "5x", 1, 10, &n));
    ck_assert_ptr_null(pe_parse_duration_ms(pe_tp, "15m", 0, 86400000LL, &ms));
    ck_assert_int_eq(ms, 900000);
    ck_assert_ptr_null(pe_parse_duration_ms(pe_tp, "250ms", 0, 86400000LL, &ms));
    ck_assert_int_eq(ms, 250);
    ck_assert_ptr_null(pe_parse_duration_ms(pe_tp, "30", 0, 86400000LL, &ms));
    ck_assert_int_eq(ms, 30000);
    ck_assert_ptr_nonnull(pe_parse_duration_ms(pe_tp, "2d", 0, 86400000LL, &ms));
    ck_assert_ptr_nonnull(pe_parse_duration_ms(pe_tp, "5 s", 0, 86400000LL, &ms));
    ck_assert_ptr_null(pe_parse_http_url(pe_tp, "http://127.0.0.1:9/v1/chat/completions"));
    ck_assert_ptr_null(pe_parse_http_url(pe_tp, "https://api.example.com/v1"));
    ck_assert_ptr_nonnull(pe_parse_http_url(pe_tp, "ftp://x/"));
    ck_assert_ptr_nonnull(pe_parse_http_url(pe_tp, "/relative"));
    ck_assert_ptr_nonnull(pe_parse_http_url(pe_tp, "http://a b/"));
}
END_TEST

/* Range errors name the bounds in the directives' own units (apr_psprintf has no %lld). */
START_TEST(parse_range_messages)
{
    long long ms;
    const char *e = pe_parse_duration_ms(pe_tp, "2d", 1000, 86400000LL, &ms);

    ck_assert_ptr_nonnull(e);
    ck_assert_str_eq(e, "'2d' is out of range (1s to 1d)");
    e = pe_parse_duration_ms(pe_tp, "10ms", 250, 90000, &ms);
    ck_assert_str_eq(e, "'10ms' is out of range (250ms to 90s)");
    e = pe_parse_duration_ms(pe_tp, "0", 60000, 5400000, &ms);
    ck_assert_str_eq(e, "'0' is out of range (1m to 90m)");
    e = pe_parse_duration_ms(pe_tp, "5h", 0, 3600000, &ms);
    ck_assert_str_eq(e, "'5h' is out of range (0ms to 1h)");
}
END_TEST

START_TEST(hex_and_base64url)
{
    unsigned char k[4], b[] = {0xfb, 0xff, 0x00};

    ck_assert_str_eq(pe_hex_encode(pe_tp, (const unsigned char *)"\x01\xab", 2), "01ab");
    ck_assert_int_eq(pe_hex_decode("01ABff00", k, 4), 0);
    ck_assert_int_eq(k[1], 0xab);
    ck_assert_int_eq(pe_hex_decode("01ABff0", k, 4), -1);
    ck_assert_int_eq(pe_hex_decode("01ABff0g", k, 4), -1);
    ck_assert_str_eq(pe_base64url(pe_tp, b, 3), "-_8A");
    ck_assert_str_eq(pe_base64url(pe_tp, b, 2), "-_8");
    ck_assert_str_eq(pe_base64url(pe_tp, b, 1), "-w");
    ck_assert_str_eq(pe_base64url(pe_tp, b, 0), "");
}
END_TEST

Suite *pe_suite_core_http(void)
{
    Suite *s = suite_create("core_http");
    TCase *tc = pe_tcase("core");

    tcase_add_test(tc, route_literal_and_method);
    tcase_add_test(tc, route_params_and_order);
    tcase_add_test(tc, route_repeated_questions);
    tcase_add_test(tc, route_groups);
    tcase_add_test(tc, json_strict_parse);
    tcase_add_test(tc, json_depth_limit);
    tcase_add_test(tc, json_error_envelope);
    tcase_add_test(tc, json_error_openai);
    tcase_add_test(tc, buf_cap);
    tcase_add_test(tc, parse_values);
    tcase_add_test(tc, parse_range_messages);
    tcase_add_test(tc, hex_and_base64url);
    suite_add_tcase(s, tc);
    return s;
}
