/* test_sse.c: SSE parsing under every chunk split, line endings, comments, caps, usage extraction. */
#include "pe_sse.h"
#include "pe_buf.h"
#include "pe_test.h"

#include <apr_strings.h>
#include <string.h>

/* Collects events as one text log: "event|id|done|data" lines with data escaped. */
typedef struct collect_t {
    pe_buf_t log;
    int stop_after; /* return APR_EGENERAL from this event on (0: never) */
    int n;
    pe_sse_usage_t usage;
    int usage_rc;
} collect_t;

/* Append s escaped (\n, \r, \\ and NUL visible). */
static void put_escaped(pe_buf_t *b, const char *s, apr_size_t n)
{
    apr_size_t i;

    for (i = 0; i < n; i++) {
        if (s[i] == '\n')
            pe_buf_append(b, "\\n", 2);
        else if (s[i] == '\r')
            pe_buf_append(b, "\\r", 2);
        else if (s[i] == '\\')
            pe_buf_append(b, "\\\\", 2);
        else if (s[i] == '\0')
            pe_buf_append(b, "\\0", 2);
        else
            pe_buf_append(b, s + i, 1);
    }
}

/* The event callback. */
static apr_status_t on_event(void *baton, const pe_sse_event_t *ev)
{
    collect_t *c = baton;
    const char *head = apr_psprintf(c->log.pool, "%s|%s|%d|", ev->event, ev->id ? ev->id : "(none)", ev->done);

    c->n++;
    ck_assert_int_eq(ev->data[ev->data_len], '\0');
    pe_buf_append(&c->log, head, strlen(head));
    put_escaped(&c->log, ev->data, ev->data_len);
    pe_buf_append(&c->log, "\n", 1);
    if (!ev->done && ev->data_len && ev->data[0] == '{') {
        int rc = pe_sse_chunk_usage(ev->data, ev->data_len, &c->usage);
        if (rc != 0)
            c->usage_rc = rc;
    }
    if (c->stop_after && c->n >= c->stop_after)
        return APR_EGENERAL;
    return APR_SUCCESS;
}

/* Parse s in the pieces given by cut points cuts[0..ncuts) (ascending); return the log. */
static const char *parse_cuts(apr_pool_t *p, const char *s, apr_size_t len, const apr_size_t *cuts, int ncuts,
                              apr_size_t max, apr_status_t *rv, apr_status_t *fin)
{
    collect_t *c = apr_pcalloc(p, sizeof(*c));
    pe_sse_parser_t *ps;
    apr_size_t at = 0;
    int i;

    pe_buf_init(&c->log, p, 1 << 20);
    pe_buf_append(&c->log, "", 0);
    ps = pe_sse_create(p, max, on_event, c);
    *rv = APR_SUCCESS;
    for (i = 0; i <= ncuts && *rv == APR_SUCCESS; i++) {
        apr_size_t end = i < ncuts ? cuts[i] : len;
        *rv = pe_sse_feed(ps, s + at, end - at);
        at = end;
    }
    *fin = pe_sse_finish(ps);
    return c->log.data;
}

/* Parse in one piece. */
static const char *parse_whole(apr_pool_t *p, const char *s, apr_size_t len, apr_size_t max, apr_status_t *rv,
                               apr_status_t *fin)
{
    return parse_cuts(p, s, len, NULL, 0, max, rv, fin);
}

/* Mixed line endings, BOM, comments, ids, multi-line data, empty data, events without data. */
static const char stream1[] = "\xef\xbb\xbf: comment at start\r\n"
                              "data: {\"a\":1}\r\n"
                              "\r\n"
                              "event: update\n"
                              "id: 7\n"
                              "data: line1\n"
                              "data:line2\n"
                              "data:  two\n"
                              "\n"
                              ": keepalive\r"
                              "data\r"
                              "\r"
                              "id\n"
                              "data: after empty id\r\n"
                              "retry: 100\r\n"
                              "unknown: x\r\n"
                              "\r\n"
                              "event: no-data\n"
                              "\n"
                              "data: [DONE]\n"
                              "\n";

static const char expect1[] = "message|(none)|0|{\"a\":1}\n"
                              "update|7|0|line1\\nline2\\n two\n"
                              "message|7|0|\n"
                              "message||0|after empty id\n"
                              "message||1|[DONE]\n";

START_TEST(events_and_fields)
{
    apr_status_t rv, fin;
    const char *log = parse_whole(pe_tp, stream1, sizeof(stream1) - 1, 0, &rv, &fin);

    ck_assert_int_eq(rv, APR_SUCCESS);
    ck_assert_int_eq(fin, APR_SUCCESS);
    ck_assert_str_eq(log, expect1);
}
END_TEST

START_TEST(every_split_gives_same_events)
{
    static const char *streams[] = {stream1,
                                    "data: a\r\rdata: b\r\r",
                                    "data: x\r\n\r\ndata: y\r\n\r\n",
                                    "data: one\n\ndata: two\n\n",
                                    "id: 1\r\ndata: a\r\ndata: b\r\n\r\ndata: c\rdata: d\r\r",
                                    "data: a\n\r\ndata: b\r\n\n"};
    size_t si;

    for (si = 0; si < sizeof(streams) / sizeof(streams[0]); si++) {
        const char *s = streams[si];
        apr_size_t len = strlen(s), k, m;
        apr_status_t rv, fin;
        apr_pool_t *sub;
        const char *whole;
        char *expect;

        apr_pool_create(&sub, pe_tp);
        whole = parse_whole(pe_tp, s, len, 0, &rv, &fin);
        ck_assert_int_eq(rv, APR_SUCCESS);
        ck_assert_int_eq(fin, APR_SUCCESS);
        expect = apr_pstrdup(pe_tp, whole);

        /* two pieces, at every position */
        for (k = 0; k <= len; k++) {
            const char *log = parse_cuts(sub, s, len, &k, 1, 0, &rv, &fin);
            ck_assert_msg(strcmp(log, expect) == 0, "stream %u split at %u:\n%s", (unsigned)si, (unsigned)k, log);
            ck_assert_int_eq(fin, APR_SUCCESS);
            apr_pool_clear(sub);
        }
        /* three pieces, every pair of positions (empty pieces included) */
        for (k = 0; k <= len; k++)
            for (m = k; m <= len; m++) {
                apr_size_t cuts[2] = {k, m};
                const char *log = parse_cuts(sub, s, len, cuts, 2, 0, &rv, &fin);
                ck_assert_msg(strcmp(log, expect) == 0, "stream %u split at %u,%u", (unsigned)si, (unsigned)k,
                              (unsigned)m);
                apr_pool_clear(sub);
            }
        /* one byte at a time */
        {
            apr_size_t *cuts = apr_palloc(sub, len * sizeof(*cuts));
            for (k = 0; k < len; k++)
                cuts[k] = k;
            ck_assert_str_eq(parse_cuts(sub, s, len, cuts, (int)len, 0, &rv, &fin), expect);
        }
        apr_pool_destroy(sub);
    }
}
END_TEST

/* Parse a string literal in one piece with the default cap (rv, fin in scope). */
#define PW(lit) parse_whole(pe_tp, (lit), sizeof(lit) - 1, 0, &rv, &fin)

START_TEST(line_endings)
{
    apr_status_t rv, fin;

    /* CR alone ends a line; CRLF is one ending; LF CR is two */
    ck_assert_str_eq(PW("data: a\r\rdata: b\r\r"), "message|(none)|0|a\nmessage|(none)|0|b\n");
    ck_assert_str_eq(PW("data: a\r\ndata: b\r\n\r\n"), "message|(none)|0|a\\nb\n");
    ck_assert_str_eq(PW("data: a\n\rdata: b\n\n"),
                     "message|(none)|0|a\nmessage|(none)|0|b\n");
    /* a BOM is skipped only at the very start */
    ck_assert_str_eq(PW("\xef\xbb\xbf" "data: a\n\n\xef\xbb\xbf" "data: b\n\n"),
                     "message|(none)|0|a\n");
    /* a colon in the value is kept; only one leading space is removed */
    ck_assert_str_eq(PW("data: a: b\n\n"), "message|(none)|0|a: b\n");
    /* an id with NUL is ignored, the previous id stays */
    ck_assert_str_eq(PW("id: 1\ndata: a\n\nid: 2\0x\ndata: b\n\n"),
                     "message|1|0|a\nmessage|1|0|b\n");
    /* NUL inside data is carried through with its length */
    ck_assert_str_eq(PW("data: a\0b\n\n"), "message|(none)|0|a\\0b\n");
    ck_assert_int_eq(rv, APR_SUCCESS);
}
END_TEST

START_TEST(comments_only_and_finish)
{
    apr_status_t rv, fin;

    ck_assert_str_eq(PW(": ping\n: ping\r\n:\r\n\n"), "");
    ck_assert_int_eq(fin, APR_SUCCESS);
    ck_assert_str_eq(PW(""), "");
    ck_assert_int_eq(fin, APR_SUCCESS);
    /* truncated streams are reported, and their partial event is not delivered */
    ck_assert_str_eq(PW("data: a\n\ndata: x\n"), "message|(none)|0|a\n");
    ck_assert_int_eq(fin, APR_INCOMPLETE);
    PW("data: x");
    ck_assert_int_eq(fin, APR_INCOMPLETE);
    PW("event: e\n");
    ck_assert_int_eq(fin, APR_INCOMPLETE);
    PW("data: x\r");
    ck_assert_int_eq(fin, APR_INCOMPLETE);
    PW("data: x\n\r");
    ck_assert_int_eq(fin, APR_SUCCESS);
}
END_TEST

START_TEST(event_size_cap)
{
    apr_status_t rv, fin;
    char *s = apr_palloc(pe_tp, 200);
    pe_sse_parser_t *ps;
    collect_t c;
    int i;

    /* "data:" + 59 bytes is 64 bytes of line: accepted at cap 64; 60 bytes is refused */
    memcpy(s, "data:", 5);
    memset(s + 5, 'a', 60);
    memcpy(s + 64, "\n\n", 2);
    parse_whole(pe_tp, s, 66, 64, &rv, &fin);
    ck_assert_int_eq(rv, APR_SUCCESS);
    ck_assert_int_eq(fin, APR_SUCCESS);
    memcpy(s + 65, "\n\n", 2);
    s[64] = 'a';
    ck_assert_str_eq(parse_whole(pe_tp, s, 67, 64, &rv, &fin), "");
    ck_assert_int_eq(rv, APR_ENOSPC);
    ck_assert_int_eq(fin, APR_ENOSPC);
    /* the same result one byte at a time (the cap counts a line that spans chunks) */
    {
        apr_size_t cuts[67];
        for (i = 0; i < 67; i++)
            cuts[i] = (apr_size_t)i;
        ck_assert_str_eq(parse_cuts(pe_tp, s, 67, cuts, 67, 64, &rv, &fin), "");
        ck_assert_int_eq(rv, APR_ENOSPC);
    }

    /* many small data lines that add up past the cap */
    memset(&c, 0, sizeof(c));
    pe_buf_init(&c.log, pe_tp, 4096);
    ps = pe_sse_create(pe_tp, 64, on_event, &c);
    for (i = 0, rv = APR_SUCCESS; i < 10 && rv == APR_SUCCESS; i++)
        rv = pe_sse_feed(ps, "data: 0123456789\n", 17);
    ck_assert_int_eq(rv, APR_ENOSPC);
    ck_assert_int_lt(i, 10);
    /* failed for good */
    ck_assert_int_eq(pe_sse_feed(ps, "\n", 1), APR_ENOSPC);
    ck_assert_int_eq(pe_sse_feed(ps, "", 0), APR_ENOSPC);
    ck_assert_int_eq(pe_sse_finish(ps), APR_ENOSPC);
    ck_assert_int_eq(c.n, 0);

    /* the cap covers data and the pending line together: 41 bytes of data + a 33-byte comment > 64 */
    ps = pe_sse_create(pe_tp, 64, on_event, &c);
    ck_assert_int_eq(pe_sse_feed(ps, "data: 0123456789012345678901234567890123456789\n", 47), APR_SUCCESS);
    ck_assert_int_eq(pe_sse_feed(ps, ": 0123456789012345678901234567890\n", 34), APR_ENOSPC);
    ps = pe_sse_create(pe_tp, 64, on_event, &c);
    ck_assert_int_eq(pe_sse_feed(ps, "data: 0123456789012345678901234567890123456789\n", 47), APR_SUCCESS);
    ck_assert_int_eq(pe_sse_feed(ps, ": 01234567890123456789\n", 23), APR_SUCCESS);

    /* an endless line without a newline, in pieces: refused once past the cap */
    ps = pe_sse_create(pe_tp, 1024, on_event, &c);
    memset(s, 'x', 100);
    for (i = 0, rv = APR_SUCCESS; i < 1000 && rv == APR_SUCCESS; i++)
        rv = pe_sse_feed(ps, s, 100);
    ck_assert_int_eq(rv, APR_ENOSPC);
    ck_assert_int_eq(i, 11); /* 1000 bytes fit, 1100 do not */

    /* the cap is per event: a long stream of small events is fine */
    ps = pe_sse_create(pe_tp, 64, on_event, &c);
    for (i = 0; i < 5000; i++)
        ck_assert_int_eq(pe_sse_feed(ps, "data: 0123456789\n\n", 18), APR_SUCCESS);
    ck_assert_uint_eq(pe_sse_count(ps), 5000);
}
END_TEST

START_TEST(callback_can_stop)
{
    collect_t c;
    pe_sse_parser_t *ps;

    memset(&c, 0, sizeof(c));
    pe_buf_init(&c.log, pe_tp, 4096);
    c.stop_after = 2;
    ps = pe_sse_create(pe_tp, 0, on_event, &c);
    ck_assert_int_eq(pe_sse_feed(ps, "data: 1\n\ndata: 2\n\ndata: 3\n\n", 27), APR_EGENERAL);
    ck_assert_int_eq(c.n, 2);
    ck_assert_int_eq(pe_sse_feed(ps, "data: 4\n\n", 9), APR_EGENERAL);
    ck_assert_int_eq(c.n, 2);
    ck_assert_uint_eq(pe_sse_count(ps), 2);
}
END_TEST

START_TEST(openai_stream_with_usage)
{
    static const char s[] =
        "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\","
        "\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"}}],\"usage\":null}\n\n"
        ": keep-alive\n\n"
        "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"choices\":[],\"usage\":{\"prompt_tokens\":12,"
        "\"completion_tokens\":5,\"total_tokens\":17}}\n\n"
        "data: [DONE]\n\n";
    collect_t c;
    pe_sse_parser_t *ps;
    apr_size_t k, len = sizeof(s) - 1;

    for (k = 0; k <= len; k += 7) {
        memset(&c, 0, sizeof(c));
        pe_buf_init(&c.log, pe_tp, 8192);
        ps = pe_sse_create(pe_tp, 0, on_event, &c);
        ck_assert_int_eq(pe_sse_feed(ps, s, k), APR_SUCCESS);
        ck_assert_int_eq(pe_sse_feed(ps, s + k, len - k), APR_SUCCESS);
        ck_assert_int_eq(pe_sse_finish(ps), APR_SUCCESS);
        ck_assert_int_eq(c.n, 3);
        ck_assert_int_eq(c.usage_rc, 1);
        ck_assert_int_eq(c.usage.prompt_tokens, 12);
        ck_assert_int_eq(c.usage.completion_tokens, 5);
        ck_assert_int_eq(c.usage.total_tokens, 17);
        ck_assert_ptr_nonnull(strstr(c.log.data, "message|(none)|1|[DONE]\n"));
    }
}
END_TEST

START_TEST(usage_extraction)
{
    pe_sse_usage_t u;
    const char *d;

#define USAGE(s) pe_sse_chunk_usage((s), strlen(s), &u)
    d = "{\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":4}}";
    ck_assert_int_eq(USAGE(d), 1);
    ck_assert_int_eq(u.total_tokens, 7); /* defaulted */
    ck_assert_int_eq(USAGE("{\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":4,\"total_tokens\":9,"
                           "\"completion_tokens_details\":{\"reasoning_tokens\":2}}}"),
                     1);
    ck_assert_int_eq(u.total_tokens, 9);
    ck_assert_int_eq(USAGE("{\"choices\":[]}"), 0);
    ck_assert_int_eq(USAGE("{\"usage\":null}"), 0);
    ck_assert_int_eq(USAGE("[DONE]"), -1);
    ck_assert_int_eq(USAGE(""), -1);
    ck_assert_int_eq(USAGE("[1]"), -1);
    ck_assert_int_eq(USAGE("{\"usage\":\"lots\"}"), -1);
    ck_assert_int_eq(USAGE("{\"usage\":{\"prompt_tokens\":-1,\"completion_tokens\":4}}"), -1);
    ck_assert_int_eq(USAGE("{\"usage\":{\"prompt_tokens\":1.5,\"completion_tokens\":4}}"), -1);
    ck_assert_int_eq(USAGE("{\"usage\":{\"completion_tokens\":4}}"), -1);
    ck_assert_int_eq(USAGE("{\"usage\":{\"prompt_tokens\":1,\"completion_tokens\":4,\"total_tokens\":\"5\"}}"), -1);
    ck_assert_int_eq(USAGE("{\"usage\":{\"prompt_tokens\":9223372036854775807,\"completion_tokens\":1}}"), -1);
    ck_assert_int_eq(USAGE("{\"usage\":{\"prompt_tokens\":1,\"completion_tokens\":1},\"usage\":null}"), -1);
    ck_assert_int_eq(pe_sse_chunk_usage("{\"usage\":null} trailing", 14, &u), 0); /* length bounds the input */
#undef USAGE
}
END_TEST

/* The sse suite. */
Suite *pe_suite_sse(void)
{
    Suite *s = suite_create("sse");
    TCase *tc = pe_tcase("sse");

    tcase_add_test(tc, events_and_fields);
    tcase_add_test(tc, every_split_gives_same_events);
    tcase_add_test(tc, line_endings);
    tcase_add_test(tc, comments_only_and_finish);
    tcase_add_test(tc, event_size_cap);
    tcase_add_test(tc, callback_can_stop);
    tcase_add_test(tc, openai_stream_with_usage);
    tcase_add_test(tc, usage_extraction);
    suite_add_tcase(s, tc);
    return s;
}
