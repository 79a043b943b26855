/*
 * pe_msglog.h: conversation logs batched per process (httpd-free).
 *
 * Producers (request threads, in log_transaction) copy a record into a bounded in-memory queue
 * and return at once: a full queue drops the record and counts it, it never blocks a worker.
 * One background thread writes the queue in batches through a callback (the glue's store
 * write): when `batch` records are waiting, or when the oldest has waited `interval`, or when
 * asked to (child_stopping). A batch that fails stays queued and is tried again after a pause, so
 * a short database outage loses nothing; the store insert is idempotent by request id, so a batch
 * written twice does not duplicate rows.
 *
 * Stopping (pe_msglog_stop, from a pre-cleanup of the child pool) wakes the thread, which writes
 * everything left within a time budget and exits; the caller joins it. The budget keeps the whole
 * shutdown inside httpd's SIGKILL deadline (9 s after SIGTERM); records still unwritten when it
 * runs out are counted as lost and logged.
 *
 * NB: records are self-contained allocations owned by the queue (one malloc per record), so
 * nothing from a request pool outlives the request.
 *
 * API-usage records (pe_api_usage_t) ride in the same writer and the same batches: each is copied
 * into a slot of a fixed ring made once with the queue (no allocation per record; strings cut
 * to the slot's fields), counted, dropped when the ring is full, flushed by the same triggers
 * and on stop. A write gets both kinds; a failed write keeps both.
 */
#ifndef PE_MSGLOG_H
#define PE_MSGLOG_H

#include <apr_pools.h>
#include <apr_time.h>

#include "pe_store.h"

typedef struct pe_msglog_t pe_msglog_t;

/** Queue settings. */
typedef struct pe_msglog_conf_t {
    int max_records;              /**< most records queued; more are dropped */
    int batch;                    /**< records per write */
    apr_interval_time_t interval; /**< longest a record waits before a write */
    apr_size_t max_field;         /**< messages/response text longer than this is cut (0: no cut) */
    apr_interval_time_t retry;    /**< pause after a failed write (0: interval) */
    struct pe_metrics_t *watch;   /**< a flush generation to watch (pe_metrics.h), or NULL */
    apr_interval_time_t watch_every; /**< how often the writer looks at it (0: 100 ms) */
    struct pe_met_proc_t *slot;   /**< this process's gauge slot: records queued (may be NULL) */
    int usage_max;                /**< API-usage records queued at most (0: none are accepted) */
    apr_interval_time_t tidy_every; /**< call the write with nothing at least this often (0: never) */
} pe_msglog_conf_t;

/**
 * Write one batch. Runs on the background thread. Called with n == 0 and nu == 0 when nothing
 * was written for tidy_every (housekeeping such as a retention purge).
 * @param p a pool for this batch only (cleared after the call)
 * @param usage,nu the API-usage records of the batch
 * @return APR_SUCCESS when the records are stored; anything else keeps them (both kinds) queued
 */
typedef apr_status_t pe_msglog_write_fn(void *baton, apr_pool_t *p, const pe_message_log_t *recs, int n,
                                        const pe_api_usage_t *usage, int nu);

/** Counters (read under the queue lock). */
typedef struct pe_msglog_stats_t {
    apr_uint64_t queued;  /**< records accepted */
    apr_uint64_t written; /**< records written */
    apr_uint64_t dropped; /**< records refused because the queue was full */
    apr_uint64_t failed;  /**< failed writes (the records were kept) */
    apr_uint64_t lost;    /**< records still unwritten when stop ran out of time */
    int pending;          /**< records in the queue now */
    /* API-usage records, counted the same way */
    apr_uint64_t u_queued, u_written, u_dropped, u_lost;
    int u_pending;
} pe_msglog_stats_t;

/**
 * Make a queue on p (the child pool). No thread yet.
 * @return APR_SUCCESS or the mutex/condition error
 */
apr_status_t pe_msglog_create(apr_pool_t *p, const pe_msglog_conf_t *conf, pe_msglog_write_fn *fn, void *baton,
                              pe_msglog_t **out);

/**
 * Start the writer thread (in the child, never before fork). It gets a pool with its own allocator.
 * @return APR_SUCCESS or the thread error
 */
apr_status_t pe_msglog_start(pe_msglog_t *q);

/**
 * Queue a copy of rec (strings copied, long texts cut to max_field).
 * @return APR_SUCCESS, APR_ENOSPC when the queue is full (dropped and counted), APR_EOF after stop,
 *         APR_ENOMEM
 */
apr_status_t pe_msglog_put(pe_msglog_t *q, const pe_message_log_t *rec);

/**
 * Queue a copy of an API-usage record into the ring (strings cut to the slot's fields).
 * @return APR_SUCCESS, APR_ENOSPC when the ring is full (dropped and counted), APR_EOF after stop
 */
apr_status_t pe_msglog_put_usage(pe_msglog_t *q, const pe_api_usage_t *rec);

/** Ask the writer to write what is queued now (child_stopping). */
void pe_msglog_flush_soon(pe_msglog_t *q);

/**
 * Stop: the writer writes what is left within `budget`, then exits and is joined. Later puts are
 * refused. Without a running thread the records are written here, within the same budget.
 * Safe to call twice.
 * @return APR_SUCCESS when nothing was lost, APR_TIMEUP when records were left unwritten
 */
apr_status_t pe_msglog_stop(pe_msglog_t *q, apr_interval_time_t budget);

/** Read the counters. */
void pe_msglog_stats(pe_msglog_t *q, pe_msglog_stats_t *st);

/** Whether the writer thread runs (readiness). */
int pe_msglog_running(pe_msglog_t *q);

#endif
