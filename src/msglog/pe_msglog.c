/*
 * pe_msglog.c: the per-process conversation-log queue and its writer thread (see pe_msglog.h).
 */
#include "pe_msglog.h"
#include "pe_logno.h"
#include "pe_metrics.h"
#include "pe_thread.h"

#include <apr_allocator.h>
#include <apr_thread_cond.h>
#include <apr_thread_mutex.h>
#include <apr_thread_proc.h>
#include <stdlib.h>
#include <string.h>

/* A queued record: one allocation holding the node and its strings. */
typedef struct node_t {
    struct node_t *next;
    apr_time_t queued_at;
    pe_message_log_t rec;
} node_t;

/* An API-usage record's slot in the ring: the record and its strings, copied in place. */
typedef struct uslot_t {
    apr_time_t queued_at;
    pe_api_usage_t rec; /* its strings point into the arrays below */
    char request_id[64], user_id[33], key_prefix[17], endpoint[128], method[16], ip_address[48], user_agent[256];
} uslot_t;

struct pe_msglog_t {
    apr_pool_t *pool;
    pe_msglog_conf_t conf;
    pe_msglog_write_fn *fn;
    void *baton;
    apr_thread_mutex_t *mutex;
    apr_thread_cond_t *cond;
    apr_thread_t *thread;
    node_t *head, *tail;
    int count;
    int stopping, stopped, flush_now;
    apr_time_t deadline; /* when stopping: give up writing after this */
    pe_msglog_stats_t stats;
    apr_time_t last_drop_log;
    uslot_t *ring;      /* API-usage records: conf.usage_max slots, uhead the oldest */
    int uhead, ucount;
    apr_time_t last_write; /* the last call of the write function (tidy_every) */
    int tidy_due;          /* the next write_batch calls the function even with nothing */
};

/* Make a queue. */
apr_status_t pe_msglog_create(apr_pool_t *p, const pe_msglog_conf_t *conf, pe_msglog_write_fn *fn, void *baton,
                              pe_msglog_t **out)
{
    pe_msglog_t *q = apr_pcalloc(p, sizeof(*q));
    apr_status_t rv;

    q->pool = p;
    q->conf = *conf;
    if (q->conf.max_records < 1)
        q->conf.max_records = 1;
    if (q->conf.batch < 1)
        q->conf.batch = 1;
    if (q->conf.interval <= 0)
        q->conf.interval = apr_time_from_sec(1);
    if (q->conf.retry <= 0)
        q->conf.retry = q->conf.interval;
    if (q->conf.watch_every <= 0)
        q->conf.watch_every = apr_time_from_msec(100);
    q->fn = fn;
    q->baton = baton;
    if (q->conf.usage_max > 0)
        q->ring = apr_palloc(p, sizeof(*q->ring) * (apr_size_t)q->conf.usage_max);
    q->last_write = apr_time_now();
    if ((rv = apr_thread_mutex_create(&q->mutex, APR_THREAD_MUTEX_DEFAULT, p)) != APR_SUCCESS ||
        (rv = apr_thread_cond_create(&q->cond, p)) != APR_SUCCESS)
        return rv;
    *out = q;
    return APR_SUCCESS;
}

/* Bytes of s to keep (cut at max, not inside a UTF-8 sequence). */
static apr_size_t keep_len(const char *s, apr_size_t max)
{
    apr_size_t n = s ? strlen(s) : 0;

    if (!max || n <= max)
        return n;
    n = max;
    while (n > 0 && ((unsigned char)s[n] & 0xc0) == 0x80)
        n--;
    return n;
}

/* Copy src (n bytes) to *cursor as a NUL-terminated string; returns the copy. */
static const char *put_str(char **cursor, const char *src, apr_size_t n)
{
    char *d = *cursor;

    if (!src)
        return NULL;
    memcpy(d, src, n);
    d[n] = '\0';
    *cursor = d + n + 1;
    return d;
}

/* Queue a copy. */
apr_status_t pe_msglog_put(pe_msglog_t *q, const pe_message_log_t *rec)
{
    const char *strs[9] = {rec->request_id, rec->user_id, rec->username, rec->model, rec->r_type,
                           rec->messages,   rec->response, rec->ip_address, NULL};
    apr_size_t lens[9], total = sizeof(node_t);
    node_t *n;
    char *cur;
    int i;
    apr_time_t now = apr_time_now();

    for (i = 0; i < 8; i++) {
        lens[i] = (i == 5 || i == 6) ? keep_len(strs[i], q->conf.max_field) : (strs[i] ? strlen(strs[i]) : 0);
        total += lens[i] + 1;
    }
    apr_thread_mutex_lock(q->mutex);
    if (q->stopped || q->stopping) {
        apr_thread_mutex_unlock(q->mutex);
        return APR_EOF;
    }
    if (q->count >= q->conf.max_records) {
        int log_it = now - q->last_drop_log > apr_time_from_sec(60);

        q->stats.dropped++;
        pe_met_inc(PE_MET_MSGLOG_ROWS, PE_MET_ROWS_DROPPED, 0);
        if (log_it)
            q->last_drop_log = now;
        apr_thread_mutex_unlock(q->mutex);
        if (log_it)
            pe_clog(PE_LOG_WARNING, 0,
                    PE_LOGNO(44001) "message log queue full (%d records): records are dropped", q->conf.max_records);
        return APR_ENOSPC;
    }
    apr_thread_mutex_unlock(q->mutex);

    if (!(n = malloc(total)))
        return APR_ENOMEM;
    memset(n, 0, sizeof(*n));
    n->rec = *rec;
    n->queued_at = now;
    cur = (char *)(n + 1);
    n->rec.request_id = put_str(&cur, strs[0], lens[0]);
    n->rec.user_id = put_str(&cur, strs[1], lens[1]);
    n->rec.username = put_str(&cur, strs[2], lens[2]);
    n->rec.model = put_str(&cur, strs[3], lens[3]);
    n->rec.r_type = put_str(&cur, strs[4], lens[4]);
    n->rec.messages = put_str(&cur, strs[5], lens[5]);
    n->rec.response = put_str(&cur, strs[6], lens[6]);
    n->rec.ip_address = put_str(&cur, strs[7], lens[7]);

    apr_thread_mutex_lock(q->mutex);
    if (q->stopped || q->stopping) {
        apr_thread_mutex_unlock(q->mutex);
        free(n);
        return APR_EOF;
    }
    if (q->tail)
        q->tail->next = n;
    else
        q->head = n;
    q->tail = n;
    q->count++;
    q->stats.queued++;
    pe_met_gauge_add(q->conf.slot, PE_MET_MSGLOG_QUEUE, 1);
    if (q->count >= q->conf.batch)
        apr_thread_cond_signal(q->cond);
    apr_thread_mutex_unlock(q->mutex);
    return APR_SUCCESS;
}

/* Copy src into a slot's field of size n (cut, not inside a UTF-8 sequence); NULL stays NULL. */
static const char *slot_str(char *dst, apr_size_t n, const char *src)
{
    apr_size_t k;

    if (!src)
        return NULL;
    k = keep_len(src, n - 1);
    memcpy(dst, src, k);
    dst[k] = '\0';
    return dst;
}

/* Queue a copy of an API-usage record: one slot of the ring, filled under the lock. */
apr_status_t pe_msglog_put_usage(pe_msglog_t *q, const pe_api_usage_t *rec)
{
    uslot_t *u;
    apr_time_t now = apr_time_now();
    int log_it = 0;

    apr_thread_mutex_lock(q->mutex);
    if (q->stopped || q->stopping) {
        apr_thread_mutex_unlock(q->mutex);
        return APR_EOF;
    }
    if (q->ucount >= q->conf.usage_max) {
        q->stats.u_dropped++;
        pe_met_inc(PE_MET_USAGELOG_ROWS, PE_MET_ROWS_DROPPED, 0);
        if ((log_it = q->ring && now - q->last_drop_log > apr_time_from_sec(60)))
            q->last_drop_log = now;
        apr_thread_mutex_unlock(q->mutex);
        if (log_it)
            pe_clog(PE_LOG_WARNING, 0,
                    PE_LOGNO(44006) "API-usage record queue full (%d records): records are dropped",
                    q->conf.usage_max);
        return APR_ENOSPC;
    }
    u = &q->ring[(q->uhead + q->ucount) % q->conf.usage_max];
    u->queued_at = now;
    u->rec = *rec;
    u->rec.request_id = slot_str(u->request_id, sizeof(u->request_id), rec->request_id);
    u->rec.user_id = slot_str(u->user_id, sizeof(u->user_id), rec->user_id);
    u->rec.key_prefix = slot_str(u->key_prefix, sizeof(u->key_prefix), rec->key_prefix);
    u->rec.endpoint = slot_str(u->endpoint, sizeof(u->endpoint), rec->endpoint);
    u->rec.method = slot_str(u->method, sizeof(u->method), rec->method);
    u->rec.ip_address = slot_str(u->ip_address, sizeof(u->ip_address), rec->ip_address);
    u->rec.user_agent = slot_str(u->user_agent, sizeof(u->user_agent), rec->user_agent);
    q->ucount++;
    q->stats.u_queued++;
    pe_met_gauge_add(q->conf.slot, PE_MET_USAGELOG_QUEUE, 1);
    if (q->ucount >= q->conf.batch)
        apr_thread_cond_signal(q->cond);
    apr_thread_mutex_unlock(q->mutex);
    return APR_SUCCESS;
}

/* When the oldest queued record (of either kind) was queued; 0 when none. Lock held. */
static apr_time_t oldest(const pe_msglog_t *q)
{
    apr_time_t t = q->head ? q->head->queued_at : 0;

    if (q->ucount && (!t || q->ring[q->uhead].queued_at < t))
        t = q->ring[q->uhead].queued_at;
    return t;
}

/* Write the first up to `batch` records; they leave the queue only when written. Lock not held. */
static apr_status_t write_batch(pe_msglog_t *q, apr_pool_t *bp)
{
    pe_message_log_t *recs;
    pe_api_usage_t *urecs = NULL;
    node_t *n, *first;
    int k = 0, i, ku, uhead;
    apr_status_t rv;

    apr_thread_mutex_lock(q->mutex);
    first = q->head;
    for (n = first; n && k < q->conf.batch; n = n->next)
        k++;
    ku = q->ucount < q->conf.batch ? q->ucount : q->conf.batch;
    uhead = q->uhead;
    /* NB: only this thread removes records, so the first k nodes and ku slots stay put while we
     * write them; producers only append at the tail. The slots' records are copied under the
     * lock all the same (a producer fills the slot after them under it). */
    if (ku) {
        urecs = apr_palloc(bp, sizeof(*urecs) * (apr_size_t)ku);
        for (i = 0; i < ku; i++)
            urecs[i] = q->ring[(uhead + i) % q->conf.usage_max].rec;
    }
    if (!k && !ku && !q->tidy_due) {
        apr_thread_mutex_unlock(q->mutex);
        return APR_SUCCESS;
    }
    q->tidy_due = 0;
    apr_thread_mutex_unlock(q->mutex);
    recs = apr_palloc(bp, sizeof(*recs) * (apr_size_t)(k ? k : 1));
    for (i = 0, n = first; i < k; i++, n = n->next)
        recs[i] = n->rec;
    rv = q->fn(q->baton, bp, recs, k, urecs, ku);
    apr_thread_mutex_lock(q->mutex);
    q->last_write = apr_time_now();
    if (rv == APR_SUCCESS && ku) {
        q->uhead = (q->uhead + ku) % q->conf.usage_max;
        q->ucount -= ku;
        q->stats.u_written += (apr_uint64_t)ku;
        pe_met_gauge_add(q->conf.slot, PE_MET_USAGELOG_QUEUE, -ku);
        pe_met_add(PE_MET_USAGELOG_ROWS, PE_MET_ROWS_WRITTEN, 0, (apr_uint64_t)ku);
    }
    if (rv == APR_SUCCESS) {
        for (i = 0; i < k; i++) {
            n = q->head;
            q->head = n->next;
            free(n);
        }
        if (!q->head)
            q->tail = NULL;
        q->count -= k;
        q->stats.written += (apr_uint64_t)k;
        pe_met_gauge_add(q->conf.slot, PE_MET_MSGLOG_QUEUE, -k);
        pe_met_add(PE_MET_MSGLOG_ROWS, PE_MET_ROWS_WRITTEN, 0, (apr_uint64_t)k);
    }
    else {
        q->stats.failed++;
    }
    apr_thread_mutex_unlock(q->mutex);
    return rv;
}

/* The writer: waits for a full batch, the interval, a flush request or stop. */
static void *APR_THREAD_FUNC writer(apr_thread_t *t, void *data)
{
    pe_msglog_t *q = data;
    apr_pool_t *bp;
    apr_time_t last_fail_log = 0;
    apr_uint64_t gen = pe_metrics_flush_gen(q->conf.watch);

    apr_pool_create(&bp, apr_thread_pool_get(t));
    for (;;) {
        int due, stopping, flushing;
        apr_status_t rv;

        apr_thread_mutex_lock(q->mutex);
        for (;;) {
            apr_time_t now = apr_time_now();
            apr_interval_time_t wait = q->conf.interval;

            stopping = q->stopping;
            if (q->conf.watch && pe_metrics_flush_gen(q->conf.watch) != gen) {
                /* every process's queue was asked to flush (POST /v1/monitoring/flush-logs) */
                gen = pe_metrics_flush_gen(q->conf.watch);
                q->flush_now = 1;
            }
            due = q->count >= q->conf.batch || q->ucount >= q->conf.batch || q->flush_now || stopping ||
                  (oldest(q) && now - oldest(q) >= q->conf.interval) ||
                  (q->conf.tidy_every > 0 && now - q->last_write >= q->conf.tidy_every);
            if (due) {
                q->tidy_due = q->conf.tidy_every > 0 && now - q->last_write >= q->conf.tidy_every;
                break;
            }
            if (oldest(q))
                wait = q->conf.interval - (now - oldest(q));
            if (q->conf.tidy_every > 0 && q->conf.tidy_every - (now - q->last_write) < wait)
                wait = q->conf.tidy_every - (now - q->last_write);
            if (q->conf.watch && wait > q->conf.watch_every)
                wait = q->conf.watch_every;
            apr_thread_cond_timedwait(q->cond, q->mutex, wait > 0 ? wait : 1000);
        }
        flushing = q->flush_now;
        q->flush_now = 0;
        apr_thread_mutex_unlock(q->mutex);

        /* Write until the queue holds less than a batch (or nothing, when flushing or stopping);
         * with nothing queued this is the tidy call (tidy_every). */
        do {
            rv = write_batch(q, bp);
            apr_pool_clear(bp);
            if (rv != APR_SUCCESS)
                break;
            apr_thread_mutex_lock(q->mutex);
            due = (q->head || q->ucount) && (q->count >= q->conf.batch || q->ucount >= q->conf.batch ||
                                             q->stopping || flushing);
            stopping = q->stopping;
            apr_thread_mutex_unlock(q->mutex);
        } while (due && (!stopping || apr_time_now() < q->deadline));

        if (stopping) {
            apr_thread_mutex_lock(q->mutex);
            if ((!q->head && !q->ucount) || apr_time_now() >= q->deadline) {
                apr_thread_mutex_unlock(q->mutex);
                break;
            }
            apr_thread_mutex_unlock(q->mutex);
        }
        if (rv != APR_SUCCESS) {
            apr_time_t now = apr_time_now();
            apr_interval_time_t pause = q->conf.retry;

            if (now - last_fail_log > apr_time_from_sec(60)) {
                last_fail_log = now;
                pe_clog(PE_LOG_WARNING, rv,
                        PE_LOGNO(44002) "message log: a batch could not be written; it stays queued and is retried");
            }
            if (stopping) {
                /* Keep trying while the budget lasts, in short steps. */
                if (pause > apr_time_from_msec(200))
                    pause = apr_time_from_msec(200);
                if (now + pause >= q->deadline)
                    break;
            }
            apr_thread_mutex_lock(q->mutex);
            if (!q->stopping || stopping)
                apr_thread_cond_timedwait(q->cond, q->mutex, pause);
            apr_thread_mutex_unlock(q->mutex);
        }
    }
    apr_pool_destroy(bp);
    /* NB: return rather than apr_thread_exit (pthread_exit unwinds the stack, which sanitizers
     * and some C libraries handle badly); apr_thread_join works either way. */
    return NULL;
}

/* Start the writer thread on a pool with its own allocator. */
apr_status_t pe_msglog_start(pe_msglog_t *q)
{
    apr_allocator_t *alloc;
    apr_pool_t *tp;
    apr_threadattr_t *ta;
    apr_status_t rv;

    if ((rv = apr_allocator_create(&alloc)) != APR_SUCCESS)
        return rv;
    apr_allocator_max_free_set(alloc, 1024 * 1024);
    if ((rv = apr_pool_create_ex(&tp, q->pool, NULL, alloc)) != APR_SUCCESS) {
        apr_allocator_destroy(alloc);
        return rv;
    }
    apr_allocator_owner_set(alloc, tp);
    apr_pool_tag(tp, "pe_msglog");
    if ((rv = apr_threadattr_create(&ta, tp)) != APR_SUCCESS)
        return rv;
    return pe_thread_create(&q->thread, ta, writer, q, tp);
}

/* Ask for a write of what is queued. */
void pe_msglog_flush_soon(pe_msglog_t *q)
{
    apr_thread_mutex_lock(q->mutex);
    q->flush_now = 1;
    apr_thread_cond_signal(q->cond);
    apr_thread_mutex_unlock(q->mutex);
}

/* Stop, write what is left within budget, join. */
apr_status_t pe_msglog_stop(pe_msglog_t *q, apr_interval_time_t budget)
{
    apr_status_t trv;
    node_t *n;
    int left, uleft;

    apr_thread_mutex_lock(q->mutex);
    if (q->stopped) {
        apr_thread_mutex_unlock(q->mutex);
        return APR_SUCCESS;
    }
    q->stopping = 1;
    q->deadline = apr_time_now() + budget;
    apr_thread_cond_signal(q->cond);
    apr_thread_mutex_unlock(q->mutex);
    if (q->thread) {
        apr_thread_join(&trv, q->thread);
        q->thread = NULL;
    }
    else {
        apr_pool_t *bp;

        apr_pool_create(&bp, q->pool);
        while ((q->head || q->ucount) && apr_time_now() < q->deadline && write_batch(q, bp) == APR_SUCCESS)
            apr_pool_clear(bp);
        apr_pool_destroy(bp);
    }
    apr_thread_mutex_lock(q->mutex);
    q->stopped = 1;
    left = q->count;
    while ((n = q->head)) {
        q->head = n->next;
        free(n);
    }
    q->tail = NULL;
    q->count = 0;
    q->stats.lost += (apr_uint64_t)left;
    pe_met_gauge_add(q->conf.slot, PE_MET_MSGLOG_QUEUE, -left);
    pe_met_add(PE_MET_MSGLOG_ROWS, PE_MET_ROWS_LOST, 0, (apr_uint64_t)left);
    uleft = q->ucount;
    q->ucount = 0;
    q->stats.u_lost += (apr_uint64_t)uleft;
    pe_met_gauge_add(q->conf.slot, PE_MET_USAGELOG_QUEUE, -uleft);
    pe_met_add(PE_MET_USAGELOG_ROWS, PE_MET_ROWS_LOST, 0, (apr_uint64_t)uleft);
    apr_thread_mutex_unlock(q->mutex);
    if (uleft)
        pe_clog(PE_LOG_ERR, 0,
                PE_LOGNO(44007) "API-usage log: %d records could not be written before the process exited", uleft);
    if (left) {
        pe_clog(PE_LOG_ERR, 0,
                PE_LOGNO(44003) "message log: %d records could not be written before the process exited", left);
        return APR_TIMEUP;
    }
    return uleft ? APR_TIMEUP : APR_SUCCESS;
}

/* Whether the writer thread runs (started and not stopped). */
int pe_msglog_running(pe_msglog_t *q)
{
    int r;

    apr_thread_mutex_lock(q->mutex);
    r = q->thread != NULL && !q->stopping && !q->stopped;
    apr_thread_mutex_unlock(q->mutex);
    return r;
}

/* Read the counters. */
void pe_msglog_stats(pe_msglog_t *q, pe_msglog_stats_t *st)
{
    apr_thread_mutex_lock(q->mutex);
    *st = q->stats;
    st->pending = q->count;
    st->u_pending = q->ucount;
    apr_thread_mutex_unlock(q->mutex);
}
