/* test_msglog.c: the conversation-log queue: batching by size and interval, failed writes kept
 * and retried, flush on stop, bounded queue, time-bounded stop, text cut, puts after stop. */
#include "pe_metrics.h"
#include "pe_msglog.h"
#include "pe_test.h"

#include <apr_shm.h>
#include <apr_strings.h>
#include <apr_thread_mutex.h>
#include <string.h>
#include <unistd.h>

/* The fake store: records request ids; fails the first `fail` writes. */
typedef struct sink_t {
    apr_thread_mutex_t *mu;
    int writes, fails_left, rows, max_batch, urows, empty_calls, mixed;
    char uids[64][16];
    char last_ua[300];
    char last_messages[64];
    char ids[64][16];
} sink_t;

static apr_status_t sink_write(void *baton, apr_pool_t *p, const pe_message_log_t *recs, int n,
                               const pe_api_usage_t *usage, int nu)
{
    sink_t *s = baton;
    int i;

    apr_thread_mutex_lock(s->mu);
    s->writes++;
    if (!n && !nu)
        s->empty_calls++;
    if (s->fails_left > 0) {
        s->fails_left--;
        apr_thread_mutex_unlock(s->mu);
        return APR_EGENERAL;
    }
    if (n > s->max_batch)
        s->max_batch = n;
    for (i = 0; i < n; i++) {
        if (s->rows < 64)
            apr_cpystrn(s->ids[s->rows], recs[i].request_id, sizeof(s->ids[0]));
        s->rows++;
        if (recs[i].messages)
            apr_cpystrn(s->last_messages, recs[i].messages, sizeof(s->last_messages));
    }
    if (n && nu)
        s->mixed++;
    for (i = 0; i < nu; i++) {
        if (s->urows < 64)
            apr_cpystrn(s->uids[s->urows], usage[i].request_id, sizeof(s->uids[0]));
        s->urows++;
        apr_cpystrn(s->last_ua, usage[i].user_agent ? usage[i].user_agent : "(null)", sizeof(s->last_ua));
    }
    apr_thread_mutex_unlock(s->mu);
    return APR_SUCCESS;
}

static int rows(sink_t *s)
{
    int n;

    apr_thread_mutex_lock(s->mu);
    n = s->rows;
    apr_thread_mutex_unlock(s->mu);
    return n;
}

/* Wait up to ms for the sink to hold n rows. */
static int wait_rows(sink_t *s, int n, int ms)
{
    while (ms > 0 && rows(s) < n) {
        usleep(10000);
        ms -= 10;
    }
    return rows(s);
}

static pe_msglog_t *make(sink_t *s, int max, int batch, int interval_ms)
{
    pe_msglog_conf_t c;
    pe_msglog_t *q;

    memset(s, 0, sizeof(*s));
    apr_thread_mutex_create(&s->mu, APR_THREAD_MUTEX_DEFAULT, pe_tp);
    memset(&c, 0, sizeof(c));
    c.max_records = max;
    c.batch = batch;
    c.interval = apr_time_from_msec(interval_ms);
    c.retry = apr_time_from_msec(20);
    c.max_field = 10;
    ck_assert_int_eq(pe_msglog_create(pe_tp, &c, sink_write, s, &q), APR_SUCCESS);
    return q;
}

static apr_status_t put(pe_msglog_t *q, int i)
{
    pe_message_log_t r;

    memset(&r, 0, sizeof(r));
    r.request_id = apr_psprintf(pe_tp, "r%d", i);
    r.user_id = "u";
    r.messages = "[\"0123456789abcdef\"]";
    r.response = "ok";
    r.status = 200;
    return pe_msglog_put(q, &r);
}

START_TEST(test_batch_by_size)
{
    sink_t s;
    pe_msglog_t *q = make(&s, 100, 3, 10000);
    pe_msglog_stats_t st;
    int i;

    ck_assert_int_eq(pe_msglog_start(q), APR_SUCCESS);
    for (i = 0; i < 3; i++)
        ck_assert_int_eq(put(q, i), APR_SUCCESS);
    ck_assert_int_eq(wait_rows(&s, 3, 2000), 3);
    ck_assert_str_eq(s.ids[0], "r0");
    ck_assert_str_eq(s.ids[2], "r2");
    ck_assert_int_eq(s.max_batch, 3);
    /* text cut at max_field */
    ck_assert_str_eq(s.last_messages, "[\"01234567");
    ck_assert_int_eq(pe_msglog_stop(q, apr_time_from_sec(2)), APR_SUCCESS);
    pe_msglog_stats(q, &st);
    ck_assert_int_eq(st.written, 3);
    ck_assert_int_eq(st.pending, 0);
    ck_assert_int_eq(put(q, 9), APR_EOF);
}
END_TEST

START_TEST(test_batch_by_interval)
{
    sink_t s;
    pe_msglog_t *q = make(&s, 100, 50, 300);
    apr_time_t t0 = apr_time_now();

    ck_assert_int_eq(pe_msglog_start(q), APR_SUCCESS);
    ck_assert_int_eq(put(q, 1), APR_SUCCESS);
    usleep(100000);
    ck_assert_int_eq(rows(&s), 0); /* not before the interval */
    ck_assert_int_eq(wait_rows(&s, 1, 2000), 1);
    ck_assert_int_ge(apr_time_now() - t0, apr_time_from_msec(250));
    ck_assert_int_eq(pe_msglog_stop(q, apr_time_from_sec(2)), APR_SUCCESS);
}
END_TEST

START_TEST(test_failed_writes_are_kept)
{
    sink_t s;
    pe_msglog_t *q = make(&s, 100, 2, 50);
    pe_msglog_stats_t st;

    s.fails_left = 2;
    ck_assert_int_eq(pe_msglog_start(q), APR_SUCCESS);
    ck_assert_int_eq(put(q, 1), APR_SUCCESS);
    ck_assert_int_eq(put(q, 2), APR_SUCCESS);
    ck_assert_int_eq(wait_rows(&s, 2, 3000), 2);
    pe_msglog_stats(q, &st);
    ck_assert_int_eq(st.failed, 2);
    ck_assert_int_eq(st.written, 2);
    ck_assert_int_eq(pe_msglog_stop(q, apr_time_from_sec(2)), APR_SUCCESS);
}
END_TEST

START_TEST(test_stop_writes_everything)
{
    sink_t s;
    pe_msglog_t *q = make(&s, 1000, 7, 60000);
    pe_msglog_stats_t st;
    int i;

    ck_assert_int_eq(pe_msglog_start(q), APR_SUCCESS);
    for (i = 0; i < 250; i++)
        ck_assert_int_eq(put(q, i), APR_SUCCESS);
    ck_assert_int_eq(pe_msglog_stop(q, apr_time_from_sec(5)), APR_SUCCESS);
    ck_assert_int_eq(rows(&s), 250);
    pe_msglog_stats(q, &st);
    ck_assert_int_eq(st.written, 250);
    ck_assert_int_eq(st.lost, 0);
    ck_assert_int_le(s.max_batch, 7);
    ck_assert_int_eq(pe_msglog_stop(q, apr_time_from_sec(1)), APR_SUCCESS); /* twice is fine */
}
END_TEST

START_TEST(test_stop_without_thread)
{
    sink_t s;
    pe_msglog_t *q = make(&s, 100, 10, 60000);

    ck_assert_int_eq(put(q, 1), APR_SUCCESS);
    ck_assert_int_eq(put(q, 2), APR_SUCCESS);
    ck_assert_int_eq(pe_msglog_stop(q, apr_time_from_sec(1)), APR_SUCCESS);
    ck_assert_int_eq(rows(&s), 2);
}
END_TEST

START_TEST(test_full_queue_drops)
{
    sink_t s;
    pe_msglog_t *q = make(&s, 5, 100, 60000);
    pe_msglog_stats_t st;
    int i;

    for (i = 0; i < 5; i++)
        ck_assert_int_eq(put(q, i), APR_SUCCESS);
    ck_assert_int_eq(put(q, 5), APR_ENOSPC);
    ck_assert_int_eq(put(q, 6), APR_ENOSPC);
    pe_msglog_stats(q, &st);
    ck_assert_int_eq(st.dropped, 2);
    ck_assert_int_eq(st.pending, 5);
    ck_assert_int_eq(pe_msglog_stop(q, apr_time_from_sec(1)), APR_SUCCESS);
}
END_TEST

START_TEST(test_stop_is_time_bounded)
{
    sink_t s;
    pe_msglog_t *q = make(&s, 100, 10, 60000);
    pe_msglog_stats_t st;
    apr_time_t t0;

    s.fails_left = 1000000;
    ck_assert_int_eq(pe_msglog_start(q), APR_SUCCESS);
    ck_assert_int_eq(put(q, 1), APR_SUCCESS);
    ck_assert_int_eq(put(q, 2), APR_SUCCESS);
    t0 = apr_time_now();
    ck_assert_int_eq(pe_msglog_stop(q, apr_time_from_msec(300)), APR_TIMEUP);
    ck_assert_int_lt(apr_time_now() - t0, apr_time_from_msec(1000));
    pe_msglog_stats(q, &st);
    ck_assert_int_eq(st.lost, 2);
    ck_assert_int_ge(st.failed, 1);
}
END_TEST

/* A flush asked through the shared flush generation writes the whole queue (more than a batch)
 * well before the interval; the process's gauge follows the queue. */
START_TEST(test_flush_generation_watched)
{
    sink_t s;
    pe_msglog_t *q;
    pe_msglog_conf_t c;
    apr_shm_t *shm;
    pe_metrics_t *m;
    pe_met_proc_t *slot;
    int i;

    ck_assert_int_eq(apr_shm_create(&shm, pe_metrics_size(), NULL, pe_tp), APR_SUCCESS);
    m = pe_metrics_init(apr_shm_baseaddr_get(shm));
    slot = pe_metrics_proc_attach(m, (apr_int64_t)getpid());
    memset(&s, 0, sizeof(s));
    apr_thread_mutex_create(&s.mu, APR_THREAD_MUTEX_DEFAULT, pe_tp);
    memset(&c, 0, sizeof(c));
    c.max_records = 100;
    c.batch = 4;
    c.interval = apr_time_from_sec(600);
    c.watch = m;
    c.watch_every = apr_time_from_msec(20);
    c.slot = slot;
    ck_assert_int_eq(pe_msglog_create(pe_tp, &c, sink_write, &s, &q), APR_SUCCESS);
    ck_assert_int_eq(pe_msglog_start(q), APR_SUCCESS);
    ck_assert(pe_msglog_running(q));
    for (i = 0; i < 3; i++)
        ck_assert_int_eq(put(q, i), APR_SUCCESS);
    ck_assert_int_eq(pe_metrics_gauge_sum(m, PE_MET_MSGLOG_QUEUE, NULL), 3);
    usleep(100000);
    ck_assert_int_eq(rows(&s), 0); /* less than a batch, long interval: nothing written yet */
    for (i = 3; i < 6; i++)
        ck_assert_int_eq(put(q, i), APR_SUCCESS);
    ck_assert_int_eq(wait_rows(&s, 4, 2000), 4); /* a full batch is written as usual */
    ck_assert_int_eq(pe_metrics_gauge_sum(m, PE_MET_MSGLOG_QUEUE, NULL), 2);
    for (i = 6; i < 15; i++)
        ck_assert_int_eq(put(q, i), APR_SUCCESS);
    pe_metrics_flush_request(m);
    ck_assert_int_eq(wait_rows(&s, 15, 2000), 15);
    ck_assert_int_eq(pe_metrics_gauge_sum(m, PE_MET_MSGLOG_QUEUE, NULL), 0);
    ck_assert_int_eq(pe_msglog_stop(q, apr_time_from_sec(2)), APR_SUCCESS);
    ck_assert(!pe_msglog_running(q));
    pe_metrics_proc_detach(slot);
}
END_TEST

static int urows(sink_t *s)
{
    int n;

    apr_thread_mutex_lock(s->mu);
    n = s->urows;
    apr_thread_mutex_unlock(s->mu);
    return n;
}

static apr_status_t put_usage(pe_msglog_t *q, int i, const char *ua)
{
    pe_api_usage_t u;

    memset(&u, 0, sizeof(u));
    u.request_id = apr_psprintf(pe_tp, "u%d", i);
    u.user_id = "0123456789abcdef01234567";
    u.endpoint = "/v1/prompt/completions";
    u.method = "POST";
    u.status = 200;
    u.user_agent = ua;
    return pe_msglog_put_usage(q, &u);
}

/* API-usage records ride in the same batches as conversation logs: counted, written in order by
 * size, cut to the slot (a long user agent), dropped when the ring is full, the process's gauge
 * following the ring; kept after a failed write; written at stop. */
START_TEST(test_usage_records_ride_along)
{
    sink_t s;
    pe_msglog_t *q;
    pe_msglog_conf_t c;
    pe_msglog_stats_t st;
    apr_shm_t *shm;
    pe_metrics_t *m;
    pe_met_proc_t *slot;
    char ua[600];
    int i;

    ck_assert_int_eq(apr_shm_create(&shm, pe_metrics_size(), NULL, pe_tp), APR_SUCCESS);
    m = pe_metrics_init(apr_shm_baseaddr_get(shm));
    slot = pe_metrics_proc_attach(m, (apr_int64_t)getpid());
    memset(ua, 'a', sizeof(ua) - 1);
    ua[sizeof(ua) - 1] = '\0';
    memset(&s, 0, sizeof(s));
    apr_thread_mutex_create(&s.mu, APR_THREAD_MUTEX_DEFAULT, pe_tp);
    memset(&c, 0, sizeof(c));
    c.max_records = 100;
    c.batch = 3;
    c.interval = apr_time_from_sec(600);
    c.retry = apr_time_from_msec(20);
    c.usage_max = 5;
    c.slot = slot;
    ck_assert_int_eq(pe_msglog_create(pe_tp, &c, sink_write, &s, &q), APR_SUCCESS);
    /* before the thread: the ring fills and then drops */
    for (i = 0; i < 5; i++)
        ck_assert_int_eq(put_usage(q, i, i == 4 ? ua : "curl/8"), APR_SUCCESS);
    ck_assert_int_eq(put_usage(q, 5, "x"), APR_ENOSPC);
    ck_assert_int_eq(pe_metrics_gauge_sum(m, PE_MET_USAGELOG_QUEUE, NULL), 5);
    ck_assert_int_eq(put(q, 0), APR_SUCCESS);
    s.fails_left = 1;
    ck_assert_int_eq(pe_msglog_start(q), APR_SUCCESS);
    /* a batch of 3 usage records and the one log is written together; the rest stays below a batch */
    ck_assert_int_eq(wait_rows(&s, 1, 2000), 1);
    while (urows(&s) < 3)
        usleep(10000);
    ck_assert_int_eq(urows(&s), 3);
    ck_assert_int_ge(s.mixed, 1);
    ck_assert_str_eq(s.uids[0], "u0");
    ck_assert_str_eq(s.uids[2], "u2");
    pe_msglog_stats(q, &st);
    ck_assert_int_eq(st.u_pending, 2);
    ck_assert_int_eq(st.u_dropped, 1);
    ck_assert_int_ge(st.failed, 1);
    /* the ring has room again; the slots are reused in order. The sink is held meanwhile: a
     * batch the writer takes once 3 are pending keeps its slots until it is written, so the ring
     * is full at the fourth whenever the writer wakes. */
    apr_thread_mutex_lock(s.mu);
    for (i = 6; i < 9; i++)
        ck_assert_int_eq(put_usage(q, i, NULL), APR_SUCCESS);
    ck_assert_int_eq(put_usage(q, 9, NULL), APR_ENOSPC);
    apr_thread_mutex_unlock(s.mu);
    ck_assert_int_eq(pe_msglog_stop(q, apr_time_from_sec(2)), APR_SUCCESS);
    ck_assert_int_eq(urows(&s), 8);
    ck_assert_str_eq(s.uids[3], "u3");
    ck_assert_str_eq(s.uids[4], "u4");
    ck_assert_str_eq(s.uids[7], "u8");
    ck_assert_str_eq(s.last_ua, "(null)");
    pe_msglog_stats(q, &st);
    ck_assert_int_eq(st.u_queued, 8);
    ck_assert_int_eq(st.u_written, 8);
    ck_assert_int_eq(st.u_dropped, 2);
    ck_assert_int_eq(st.u_lost, 0);
    ck_assert_int_eq(st.u_pending, 0);
    ck_assert_int_eq(pe_metrics_gauge_sum(m, PE_MET_USAGELOG_QUEUE, NULL), 0);
    ck_assert_int_eq(put_usage(q, 10, NULL), APR_EOF);
    pe_metrics_proc_detach(slot);
}
END_TEST

/* The long user agent is cut to its slot (255 bytes), and a queue with nothing to write still
 * calls the write function every tidy_every (retention). */
START_TEST(test_usage_cut_and_tidy)
{
    sink_t s;
    pe_msglog_t *q;
    pe_msglog_conf_t c;
    char ua[600];
    int i;

    memset(ua, 'b', sizeof(ua) - 1);
    ua[sizeof(ua) - 1] = '\0';
    memset(&s, 0, sizeof(s));
    apr_thread_mutex_create(&s.mu, APR_THREAD_MUTEX_DEFAULT, pe_tp);
    memset(&c, 0, sizeof(c));
    c.max_records = 10;
    c.batch = 1;
    c.interval = apr_time_from_sec(600);
    c.usage_max = 4;
    c.tidy_every = apr_time_from_msec(30);
    ck_assert_int_eq(pe_msglog_create(pe_tp, &c, sink_write, &s, &q), APR_SUCCESS);
    ck_assert_int_eq(pe_msglog_start(q), APR_SUCCESS);
    ck_assert_int_eq(put_usage(q, 1, ua), APR_SUCCESS);
    while (urows(&s) < 1)
        usleep(10000);
    ck_assert_int_eq(strlen(s.last_ua), 255);
    for (i = 0; i < 300; i++) {
        int e;

        apr_thread_mutex_lock(s.mu);
        e = s.empty_calls;
        apr_thread_mutex_unlock(s.mu);
        if (e >= 2)
            break;
        usleep(10000);
    }
    ck_assert_int_ge(s.empty_calls, 2);
    ck_assert_int_eq(pe_msglog_stop(q, apr_time_from_sec(2)), APR_SUCCESS);
}
END_TEST

Suite *pe_suite_msglog(void)
{
    Suite *s = suite_create("msglog");
    TCase *tc = pe_tcase("queue");

    tcase_add_test(tc, test_batch_by_size);
    tcase_add_test(tc, test_batch_by_interval);
    tcase_add_test(tc, test_failed_writes_are_kept);
    tcase_add_test(tc, test_stop_writes_everything);
    tcase_add_test(tc, test_stop_without_thread);
    tcase_add_test(tc, test_full_queue_drops);
    tcase_add_test(tc, test_stop_is_time_bounded);
    tcase_add_test(tc, test_flush_generation_watched);
    tcase_add_test(tc, test_usage_records_ride_along);
    tcase_add_test(tc, test_usage_cut_and_tidy);
    suite_add_tcase(s, tc);
    return s;
}
