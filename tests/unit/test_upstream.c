/* test_upstream.c: retry rules, Retry-After, backoff, and the client against a loopback server
 * (connection reuse, retries on 500, no retry on 400, size cap, timeout, streaming abort). */
#include "pe_test.h"
#include "pe_upstream.h"

#include <apr_strings.h>
#include <apr_thread_proc.h>
#include <arpa/inet.h>
#include <curl/curl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

START_TEST(test_retryable)
{
    ck_assert_int_eq(pe_upstream_retryable(PE_UP_NETWORK, 0), 1);
    ck_assert_int_eq(pe_upstream_retryable(PE_UP_HTTP, 429), 1);
    ck_assert_int_eq(pe_upstream_retryable(PE_UP_HTTP, 500), 1);
    ck_assert_int_eq(pe_upstream_retryable(PE_UP_HTTP, 503), 1);
    ck_assert_int_eq(pe_upstream_retryable(PE_UP_HTTP, 400), 0);
    ck_assert_int_eq(pe_upstream_retryable(PE_UP_HTTP, 401), 0);
    ck_assert_int_eq(pe_upstream_retryable(PE_UP_HTTP, 404), 0);
    ck_assert_int_eq(pe_upstream_retryable(PE_UP_TIMEOUT, 0), 0);
    ck_assert_int_eq(pe_upstream_retryable(PE_UP_TOO_LARGE, 200), 0);
    ck_assert_int_eq(pe_upstream_retryable(PE_UP_ABORTED, 200), 0);
    ck_assert_int_eq(pe_upstream_retryable(PE_UP_OK, 200), 0);
}
END_TEST

START_TEST(test_retry_after)
{
    apr_time_t now = apr_time_from_sec(1700000000);

    ck_assert_int_eq(pe_upstream_retry_after_ms(NULL, now), -1);
    ck_assert_int_eq(pe_upstream_retry_after_ms("", now), -1);
    ck_assert_int_eq(pe_upstream_retry_after_ms("2", now), 2000);
    ck_assert_int_eq(pe_upstream_retry_after_ms(" 0", now), 0);
    ck_assert_int_eq(pe_upstream_retry_after_ms("1.5", now), -1);
    ck_assert_int_eq(pe_upstream_retry_after_ms("soon", now), -1);
    ck_assert_int_eq(pe_upstream_retry_after_ms("99999999999999", now), 86400000L);
    /* 1700000000 = Tue, 14 Nov 2023 22:13:20 GMT */
    ck_assert_int_eq(pe_upstream_retry_after_ms("Tue, 14 Nov 2023 22:13:25 GMT", now), 5000);
    ck_assert_int_eq(pe_upstream_retry_after_ms("Tue, 14 Nov 2023 22:13:00 GMT", now), 0);
}
END_TEST

START_TEST(test_backoff)
{
    pe_upstream_conf_t c;

    memset(&c, 0, sizeof(c));
    c.backoff_ms = 100;
    c.retry_after_max_ms = 1000;
    ck_assert_int_eq(pe_upstream_backoff_ms(&c, 1, -1, 0.0), 100);
    ck_assert_int_eq(pe_upstream_backoff_ms(&c, 2, -1, 0.0), 200);
    ck_assert_int_eq(pe_upstream_backoff_ms(&c, 3, -1, 0.0), 400);
    ck_assert_int_eq(pe_upstream_backoff_ms(&c, 5, -1, 0.0), 1000); /* capped */
    ck_assert_int_eq(pe_upstream_backoff_ms(&c, 40, -1, 0.0), 1000); /* no overflow */
    /* jitter takes at most a quarter off */
    ck_assert_int_eq(pe_upstream_backoff_ms(&c, 1, -1, 0.5), 88);
    ck_assert_int_ge(pe_upstream_backoff_ms(&c, 1, -1, 0.999), 75);
    /* Retry-After wins, capped */
    ck_assert_int_eq(pe_upstream_backoff_ms(&c, 1, 300, 0.5), 300);
    ck_assert_int_eq(pe_upstream_backoff_ms(&c, 1, 5000, 0.0), 1000);
    ck_assert_int_eq(pe_upstream_backoff_ms(&c, 1, 0, 0.0), 0);
}
END_TEST

/* ---- a loopback HTTP/1.1 server: scripted replies, keep-alive, counts connections ---- */

typedef struct script_t {
    const char *replies[8]; /* full responses, in order; the last one repeats */
    int nreplies;
    int hang_ms;            /* sleep before each reply */
    int served, conns;
    int fd, port;
    volatile int stop;
} script_t;

/* Wait until c is readable; 0 when the server is told to stop (checked every 50 ms). */
static int wait_readable(const script_t *s, int c)
{
    struct pollfd pf;

    pf.fd = c;
    pf.events = POLLIN;
    while (!s->stop) {
        pf.revents = 0;
        if (poll(&pf, 1, 50) != 0)
            return 1;
    }
    return 0;
}

/* Read one request (headers + Content-Length body); 0 on EOF or stop. */
static int read_request(const script_t *s, int c)
{
    char buf[65536];
    size_t n = 0;
    char *hdr_end = NULL;
    long clen = 0;

    while (!hdr_end) {
        ssize_t k = wait_readable(s, c) ? read(c, buf + n, sizeof(buf) - 1 - n) : 0;
        if (k <= 0)
            return 0;
        n += (size_t)k;
        buf[n] = '\0';
        hdr_end = strstr(buf, "\r\n\r\n");
    }
    {
        char *cl = strcasestr(buf, "Content-Length:");
        if (cl)
            clen = atol(cl + 15);
    }
    while ((long)(n - (size_t)(hdr_end + 4 - buf)) < clen) {
        ssize_t k = wait_readable(s, c) ? read(c, buf + n, sizeof(buf) - 1 - n) : 0;
        if (k <= 0)
            return 0;
        n += (size_t)k;
    }
    return 1;
}

/* The server thread. */
static void *APR_THREAD_FUNC serve(apr_thread_t *t, void *data)
{
    script_t *s = data;

    while (!s->stop) {
        int c = accept(s->fd, NULL, NULL);
        if (c < 0)
            break;
        s->conns++;
        while (read_request(s, c)) {
            int i = s->served < s->nreplies ? s->served : s->nreplies - 1;
            const char *r = s->replies[i];
            s->served++;
            if (s->hang_ms)
                usleep((useconds_t)s->hang_ms * 1000);
            if (write(c, r, strlen(r)) < 0)
                break;
        }
        close(c);
    }
    return NULL;
}

/* Start the server on a free loopback port. */
static void start_server(script_t *s, apr_thread_t **t)
{
    struct sockaddr_in a;
    socklen_t al = sizeof(a);
    int one = 1;

    s->fd = socket(AF_INET, SOCK_STREAM, 0);
    setsockopt(s->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_int_eq(bind(s->fd, (struct sockaddr *)&a, sizeof(a)), 0);
    ck_assert_int_eq(listen(s->fd, 16), 0);
    getsockname(s->fd, (struct sockaddr *)&a, &al);
    s->port = ntohs(a.sin_port);
    ck_assert_int_eq(apr_thread_create(t, NULL, serve, s, pe_tp), APR_SUCCESS);
}

/* Stop the server thread and wait for it (its accept fails once the socket is shut; a connection
 * it is reading is dropped within 50 ms), so it never outlives the test's script_t. */
static void stop_server(script_t *s, apr_thread_t *t)
{
    apr_status_t trv;

    s->stop = 1;
    shutdown(s->fd, SHUT_RDWR);
    apr_thread_join(&trv, t);
    close(s->fd);
}

#define OK_BODY "{\"id\":\"x\",\"choices\":[],\"extra\":1}"

/* A response with its Content-Length filled in. */
static const char *reply(const char *status, const char *extra, const char *body)
{
    return apr_psprintf(pe_tp, "HTTP/1.1 %s\r\nContent-Type: application/json\r\n%sContent-Length: %d\r\n\r\n%s",
                        status, extra, (int)strlen(body), body);
}

/* A configuration for the test server. */
static pe_upstream_conf_t conf_for(const script_t *s)
{
    pe_upstream_conf_t c;

    memset(&c, 0, sizeof(c));
    c.url = apr_psprintf(pe_tp, "http://127.0.0.1:%d/v1/chat/completions", s->port);
    c.key = "sk-test";
    c.connect_timeout_ms = 2000;
    c.timeout_ms = 5000;
    c.retries = 2;
    c.backoff_ms = 10;
    c.retry_after_max_ms = 200;
    c.max_response = 1024 * 1024;
    return c;
}

START_TEST(test_reuse_and_retry)
{
    script_t s;
    apr_thread_t *t;
    pe_upstream_pool_t *hp;
    pe_upstream_conf_t c;
    pe_upstream_result_t res;

    curl_global_init(CURL_GLOBAL_ALL);
    memset(&s, 0, sizeof(s));
    s.replies[0] = reply("500 Internal Server Error", "", "{\"error\":{}}");
    s.replies[1] = reply("200 OK", "", OK_BODY);
    s.nreplies = 2;
    start_server(&s, &t);
    c = conf_for(&s);
    ck_assert_int_eq(pe_upstream_pool_create(pe_tp, 4, &hp), APR_SUCCESS);

    ck_assert_int_eq(pe_upstream_post(pe_tp, hp, &c, "{}", 2, NULL, NULL, &res), APR_SUCCESS);
    ck_assert_int_eq(res.outcome, PE_UP_OK);
    ck_assert_int_eq(res.attempts, 2);
    ck_assert_int_eq(res.status, 200);
    ck_assert_str_eq(res.body.data, OK_BODY);
    ck_assert_str_eq(res.content_type, "application/json");
    /* a second call reuses the handle and its connection */
    ck_assert_int_eq(pe_upstream_post(pe_tp, hp, &c, "{}", 2, NULL, NULL, &res), APR_SUCCESS);
    ck_assert_int_eq(res.attempts, 1);
    ck_assert_int_eq(s.served, 3);
    ck_assert_int_eq(s.conns, 1);
    ck_assert_uint_eq(pe_upstream_pool_created(hp), 1);
    ck_assert_uint_eq(pe_upstream_pool_idle(hp), 1);
    stop_server(&s, t);
}
END_TEST

START_TEST(test_no_retry_on_400_and_exhausted_429)
{
    script_t s;
    apr_thread_t *t;
    pe_upstream_pool_t *hp;
    pe_upstream_conf_t c;
    pe_upstream_result_t res;
    apr_time_t t0;

    curl_global_init(CURL_GLOBAL_ALL);
    memset(&s, 0, sizeof(s));
    s.replies[0] = reply("400 Bad Request", "", "{\"error\":{\"message\":\"bad\"}}");
    s.nreplies = 1;
    start_server(&s, &t);
    c = conf_for(&s);
    ck_assert_int_eq(pe_upstream_pool_create(pe_tp, 1, &hp), APR_SUCCESS);
    ck_assert_int_eq(pe_upstream_post(pe_tp, hp, &c, "{}", 2, NULL, NULL, &res), APR_EGENERAL);
    ck_assert_int_eq(res.outcome, PE_UP_HTTP);
    ck_assert_int_eq(res.status, 400);
    ck_assert_int_eq(res.attempts, 1);
    ck_assert_ptr_nonnull(strstr(res.body.data, "bad"));

    /* 429 with Retry-After: 0 is retried at once, up to the limit */
    s.replies[0] = reply("429 Too Many Requests", "Retry-After: 0\r\n", "{}");
    t0 = apr_time_now();
    ck_assert_int_eq(pe_upstream_post(pe_tp, hp, &c, "{}", 2, NULL, NULL, &res), APR_EGENERAL);
    ck_assert_int_eq(res.status, 429);
    ck_assert_int_eq(res.attempts, 3);
    ck_assert_int_lt(apr_time_now() - t0, apr_time_from_msec(150));
    ck_assert_int_eq(s.served, 4);
    stop_server(&s, t);
}
END_TEST

START_TEST(test_size_cap_and_timeout)
{
    script_t s;
    apr_thread_t *t;
    pe_upstream_pool_t *hp;
    pe_upstream_conf_t c;
    pe_upstream_result_t res;

    curl_global_init(CURL_GLOBAL_ALL);
    memset(&s, 0, sizeof(s));
    s.replies[0] = reply("200 OK", "", "0123456789012345678901234567890123456789");
    s.nreplies = 1;
    start_server(&s, &t);
    c = conf_for(&s);
    c.max_response = 16;
    ck_assert_int_eq(pe_upstream_pool_create(pe_tp, 1, &hp), APR_SUCCESS);
    ck_assert_int_eq(pe_upstream_post(pe_tp, hp, &c, "{}", 2, NULL, NULL, &res), APR_EGENERAL);
    ck_assert_int_eq(res.outcome, PE_UP_TOO_LARGE);
    ck_assert_int_eq(res.attempts, 1);
    ck_assert_uint_le(res.body.len, 16);

    s.hang_ms = 700;
    c.max_response = 1024;
    c.timeout_ms = 200;
    ck_assert_int_eq(pe_upstream_post(pe_tp, hp, &c, "{}", 2, NULL, NULL, &res), APR_EGENERAL);
    ck_assert_int_eq(res.outcome, PE_UP_TIMEOUT);
    ck_assert_int_eq(res.attempts, 1); /* a timeout is not retried */
    ck_assert_int_lt(res.elapsed, apr_time_from_msec(600));
    stop_server(&s, t);
}
END_TEST

/* Stream callback: collects, and refuses once it has seen `stop_at` bytes. */
typedef struct sink_t {
    char got[256];
    apr_size_t n, stop_at;
} sink_t;

static apr_status_t sink(void *baton, const char *d, apr_size_t len)
{
    sink_t *k = baton;

    if (k->n + len < sizeof(k->got)) {
        memcpy(k->got + k->n, d, len);
        k->n += len;
        k->got[k->n] = '\0';
    }
    return (k->stop_at && k->n >= k->stop_at) ? APR_ECONNABORTED : APR_SUCCESS;
}

START_TEST(test_stream_and_abort)
{
    script_t s;
    apr_thread_t *t;
    pe_upstream_pool_t *hp;
    pe_upstream_conf_t c;
    pe_upstream_result_t res;
    sink_t k;

    curl_global_init(CURL_GLOBAL_ALL);
    memset(&s, 0, sizeof(s));
    s.replies[0] = reply("503 Service Unavailable", "Retry-After: 0\r\n", "{\"error\":1}");
    s.replies[1] = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nContent-Length: 24\r\n\r\n"
                   "data: {\"a\":1}\n\ndata: x\n\n";
    s.nreplies = 2;
    start_server(&s, &t);
    c = conf_for(&s);
    ck_assert_int_eq(pe_upstream_pool_create(pe_tp, 1, &hp), APR_SUCCESS);
    memset(&k, 0, sizeof(k));
    /* the 503 is retried and its body is not streamed; the 200 is */
    ck_assert_int_eq(pe_upstream_post(pe_tp, hp, &c, "{}", 2, sink, &k, &res), APR_SUCCESS);
    ck_assert_int_eq(res.attempts, 2);
    ck_assert_str_eq(k.got, "data: {\"a\":1}\n\ndata: x\n\n");
    ck_assert_uint_eq(res.streamed, 24);
    ck_assert_uint_eq(res.body.len, 0);

    memset(&k, 0, sizeof(k));
    k.stop_at = 1;
    ck_assert_int_eq(pe_upstream_post(pe_tp, hp, &c, "{}", 2, sink, &k, &res), APR_EGENERAL);
    ck_assert_int_eq(res.outcome, PE_UP_ABORTED);
    ck_assert_int_eq(res.attempts, 1);
    stop_server(&s, t);
}
END_TEST

START_TEST(test_refused_is_network_and_retried)
{
    pe_upstream_pool_t *hp;
    pe_upstream_conf_t c;
    pe_upstream_result_t res;
    script_t s;
    struct sockaddr_in a;
    socklen_t al = sizeof(a);
    int fd;

    curl_global_init(CURL_GLOBAL_ALL);
    /* a port that was free a moment ago: nothing listens on it */
    fd = socket(AF_INET, SOCK_STREAM, 0);
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bind(fd, (struct sockaddr *)&a, sizeof(a));
    getsockname(fd, (struct sockaddr *)&a, &al);
    close(fd);
    memset(&s, 0, sizeof(s));
    s.port = ntohs(a.sin_port);
    c = conf_for(&s);
    ck_assert_int_eq(pe_upstream_pool_create(pe_tp, 1, &hp), APR_SUCCESS);
    ck_assert_int_eq(pe_upstream_post(pe_tp, hp, &c, "{}", 2, NULL, NULL, &res), APR_EGENERAL);
    ck_assert_int_eq(res.outcome, PE_UP_NETWORK);
    ck_assert_int_eq(res.attempts, 3);
    ck_assert_int_eq(res.status, 0);
    ck_assert_ptr_nonnull(res.error);
    /* no URL: internal, no attempt */
    c.url = NULL;
    ck_assert_int_eq(pe_upstream_post(pe_tp, hp, &c, "{}", 2, NULL, NULL, &res), APR_EGENERAL);
    ck_assert_int_eq(res.outcome, PE_UP_INTERNAL);
    ck_assert_int_eq(res.attempts, 0);
}
END_TEST

Suite *pe_suite_upstream(void)
{
    Suite *s = suite_create("upstream");
    TCase *tc = pe_tcase("rules");

    tcase_add_test(tc, test_retryable);
    tcase_add_test(tc, test_retry_after);
    tcase_add_test(tc, test_backoff);
    suite_add_tcase(s, tc);
    tc = pe_tcase("client");
    tcase_add_test(tc, test_reuse_and_retry);
    tcase_add_test(tc, test_no_retry_on_400_and_exhausted_429);
    tcase_add_test(tc, test_size_cap_and_timeout);
    tcase_add_test(tc, test_stream_and_abort);
    tcase_add_test(tc, test_refused_is_network_and_retried);
    suite_add_tcase(s, tc);
    return s;
}
