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
    int writes, fails_left, rows, max_batch;
    char last_messages[64];
    char ids[64][16];
} sink_t;

static apr_status_t sink_write(void *baton, apr_pool_t *p, const pe_message_log_t *recs, int n)
{
    sink_t *s = baton;
    int i;

    apr_thread_mutex_lock(s->mu);
    s->writes++;
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
    suite_add_tcase(s, tc);
    return s;
}
