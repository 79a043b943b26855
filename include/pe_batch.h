/*
 * pe_batch.h: batch processing core (SPEC 8, with the fixes of SPEC 16.1 items 2-4 and 16.2 item
 * 36): request validation, a bounded task runner and the response (httpd-free).
 *
 * A batch is 1..max tasks sharing level and research settings; each task becomes one
 * /v1/prompt/completions request whose single user message is the task's prompt, a blank line and
 * PE_BATCH_INSTRUCTION, validated by pe_enhance_parse_prompt like any completion. The glue takes
 * the credits of all tasks at once, runs the tasks with pe_batch_run (each task's work is the
 * caller's function: research, upstream call), refunds exactly the failed ones and answers with
 * pe_batch_response, results in task order.
 *
 * Threads: with parallel set, at most max_parallel tasks run at the same time, each on its own
 * APR thread with its own pool. The pools of one batch share one allocator that has a mutex, so
 * creating, using and destroying them from several threads is safe; nothing else is shared. The
 * task function must only touch its task (and thread-safe services: the upstream handle pool,
 * shared-memory caches).
 */
#ifndef PE_BATCH_H
#define PE_BATCH_H

#include "pe_enhance.h"

#include <apr_pools.h>
#include <apr_time.h>
#include <jansson.h>

/** Most tasks in a batch unless configured (SPEC 8). */
#define PE_BATCH_MAX_TASKS 50
/** Tasks run at once unless configured (SPEC 8: BATCH_MAX_PARALLEL_TASKS). */
#define PE_BATCH_PARALLEL 10
/** Longest task prompt, in bytes. */
#define PE_BATCH_PROMPT_MAX (64 * 1024)

/** The sentence added to every task's prompt (SPEC 8 step 5). */
extern const char pe_batch_instruction[];

/** One task and, after pe_batch_run, its outcome. */
typedef struct pe_batch_task_t {
    int index;              /**< position in the request (0-based) */
    const char *prompt;     /**< the task's prompt as sent (the research query) */
    pe_enhance_req_t req;   /**< the validated completion request */
    apr_pool_t *pool;       /**< the task's own pool during pe_batch_run (NULL before and in sequential mode it
                                 is a subpool of the batch pool) */
    /* outcome, set by the task function */
    int success;            /**< 1 when the task produced an answer */
    json_t *response;       /**< the upstream chat.completion (a reference the task holds), or NULL */
    const char *error;      /**< public message when it failed (no internals) */
    const char *error_code; /**< machine-readable reason when it failed */
    apr_int64_t tokens;     /**< usage.total_tokens of the answer (0 when absent) */
    json_t *research;       /**< research metadata of the task, or NULL */
    apr_interval_time_t elapsed; /**< the task's time (set by pe_batch_run) */
} pe_batch_task_t;

/** A validated batch. */
typedef struct pe_batch_t {
    pe_batch_task_t *tasks;
    int n;
    pe_level_t level;
    int research;       /**< enable_research */
    pe_depth_t depth;   /**< research_depth */
    int parallel;       /**< parallel (default true) */
} pe_batch_t;

/**
 * Validate a POST /v1/batch/process body: {batch:[{prompt, r_type (default "bpe"), temperature
 * (default 0.7), max_tokens, top_p, frequency_penalty, presence_penalty, stop}], level (required),
 * enable_research (false), research_depth ("basic"), parallel (true)}.
 * @param conf      enhancement settings (models), may be NULL
 * @param max_tasks most tasks allowed (<= 0: PE_BATCH_MAX_TASKS)
 * @param out       the batch in p
 * @param err       on failure a message in p naming the field ("batch[2].prompt ...")
 * @return 0; 400 for an empty or too large batch ("Batch cannot be empty", "Batch size cannot
 *         exceed N tasks"); 422 for any other invalid field
 */
int pe_batch_parse(apr_pool_t *p, const pe_enhance_conf_t *conf, const json_t *body, int max_tasks,
                   pe_batch_t *out, const char **err);

/**
 * The work of one task: fill t's outcome fields. Runs on a worker thread in parallel mode.
 * @param baton the caller's
 * @param t     the task; allocate only from t->pool
 */
typedef void pe_batch_task_fn(void *baton, pe_batch_task_t *t);

/** Figures of one run. */
typedef struct pe_batch_stats_t {
    int threads;    /**< worker threads started (0 in sequential mode) */
    int max_active; /**< most tasks running at the same time */
    int succeeded;  /**< tasks with success set */
    apr_interval_time_t elapsed; /**< wall time */
} pe_batch_stats_t;

/**
 * Run every task: in parallel mode on min(n, max_parallel) threads, tasks taken in order; else one
 * after another in the calling thread. Returns when all tasks are done.
 * @param p            pool of the batch (the task pools are made under it)
 * @param max_parallel <= 0: PE_BATCH_PARALLEL
 * @param st           figures (may be NULL)
 * @return APR_SUCCESS, or the error of making a thread or pool (then the tasks not run are failed
 *         with error_code "INTERNAL_ERROR")
 */
apr_status_t pe_batch_run(apr_pool_t *p, pe_batch_t *b, int max_parallel, pe_batch_task_fn *fn, void *baton,
                          pe_batch_stats_t *st);

/** Number of tasks that did not succeed. */
int pe_batch_failed(const pe_batch_t *b);

/**
 * The response (SPEC 8): {batch_id, total_tasks, successful_tasks, failed_tasks, results:[{task_index,
 * success, response, error, error_code, processing_time_ms, tokens_used, research?}], total_tokens_used,
 * total_processing_time_ms, created_at, parallel, credits:{charged, refunded}}.
 * @param created_at a JSON string for created_at (taken over), or NULL for null
 * @return an object owned by p
 */
json_t *pe_batch_response(apr_pool_t *p, const pe_batch_t *b, const char *batch_id, apr_interval_time_t wall,
                          json_t *created_at, int charged, int refunded);

/**
 * A new batch id: "batch_<unix seconds>_<11 URL-safe random characters>".
 * @return the id in p, or NULL when no random bytes could be had
 */
const char *pe_batch_id(apr_pool_t *p, apr_time_t now);

#endif
