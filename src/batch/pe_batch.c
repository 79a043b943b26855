/* pe_batch.c: batch validation, the bounded task runner and the batch response (see pe_batch.h). */
#include "pe_batch.h"
#include "pe_valid.h"
#include "pe_crypto.h"
#include "pe_json.h"
#include "pe_thread.h"

#include <apr_atomic.h>
#include <apr_strings.h>
#include <apr_thread_mutex.h>
#include <apr_thread_proc.h>

#include <string.h>

const char pe_batch_instruction[] =
    "Enhance the prompt above as instructed. Do not ask questions; answer with the improved prompt only.";

/* Task fields copied into the task's completion request. */
static const char *const batch_task_fields[] = {"r_type",           "temperature",      "max_tokens", "top_p",
                                                "frequency_penalty", "presence_penalty", "stop",       NULL};
/* Every member a task and the request accept; another one is a 422 (docs/api.md). */
static const char *const batch_task_keys[] = {"prompt",           "r_type",           "temperature", "max_tokens",
                                              "top_p",            "frequency_penalty", "presence_penalty",
                                              "stop",             NULL};
static const char *const batch_keys[] = {"batch", "level", "enable_research", "research_depth", "parallel", NULL};

/* A boolean member with a default; -1 when present but not a boolean. */
static int batch_bool(const json_t *o, const char *key, int dflt)
{
    const json_t *v = json_object_get(o, key);

    if (!v || json_is_null(v))
        return dflt;
    return json_is_boolean(v) ? json_is_true(v) : -1;
}

/* Validate one task by building its completion request body and parsing it like any completion. */
static int batch_task(apr_pool_t *p, const pe_enhance_conf_t *conf, const json_t *body, const json_t *task, int i,
                      pe_batch_task_t *t, const char **err)
{
    const json_t *prompt = json_object_get(task, "prompt");
    json_t *cb = pe_json_object(p);
    const char *e = NULL;
    int k, rc;

    if (!json_is_object(task)) {
        *err = apr_psprintf(p, "batch[%d] must be an object", i);
        return 422;
    }
    if ((e = pe_valid_unknown(p, task, batch_task_keys)) != NULL) {
        *err = apr_psprintf(p, "batch[%d]: unknown field %s: expected prompt, r_type, temperature, max_tokens, "
                            "top_p, frequency_penalty, presence_penalty, stop", i, e);
        return 422;
    }
    if (!json_is_string(prompt) || json_string_length(prompt) == 0) {
        *err = apr_psprintf(p, "batch[%d].prompt is required and must be a non-empty string", i);
        return 422;
    }
    if (json_string_length(prompt) > PE_BATCH_PROMPT_MAX) {
        *err = apr_psprintf(p, "batch[%d].prompt is longer than %d bytes", i, PE_BATCH_PROMPT_MAX);
        return 422;
    }
    t->index = i;
    t->prompt = apr_pstrmemdup(p, json_string_value(prompt), json_string_length(prompt));
    if (memchr(t->prompt, '\0', json_string_length(prompt))) {
        *err = apr_psprintf(p, "batch[%d].prompt must not contain NUL", i);
        return 422;
    }
    json_object_set_new(cb, "prompt", json_string(apr_pstrcat(p, t->prompt, "\n\n", pe_batch_instruction, NULL)));
    json_object_set(cb, "level", json_object_get(body, "level"));
    json_object_set_new(cb, "r_type", json_string("bpe"));
    json_object_set_new(cb, "temperature", json_real(PE_ENHANCE_DEFAULT_TEMPERATURE));
    for (k = 0; batch_task_fields[k]; k++) {
        json_t *v = json_object_get(task, batch_task_fields[k]);

        /* NB: an explicit null r_type means no style; a null sampling field means "not sent" */
        if (v)
            json_object_set(cb, batch_task_fields[k], v);
    }
    json_object_set(cb, "ai_research", json_object_get(body, "enable_research"));
    json_object_set(cb, "research_depth", json_object_get(body, "research_depth"));
    rc = pe_enhance_parse_prompt(p, conf, cb, &t->req, &e);
    if (rc != 0) {
        *err = apr_psprintf(p, "batch[%d]: %s", i, e ? e : "invalid task");
        return 422;
    }
    return 0;
}

/* Validate the whole request. */
int pe_batch_parse(apr_pool_t *p, const pe_enhance_conf_t *conf, const json_t *body, int max_tasks,
                   pe_batch_t *out, const char **err)
{
    const json_t *tasks = json_object_get(body, "batch"), *v;
    int i, rc;
    size_t n;

    memset(out, 0, sizeof(*out));
    if (max_tasks <= 0)
        max_tasks = PE_BATCH_MAX_TASKS;
    if (!json_is_object(body)) {
        *err = "the body must be a JSON object";
        return 422;
    }
    if ((*err = pe_valid_unknown(p, body, batch_keys)) != NULL) {
        *err = apr_psprintf(p, "unknown field %s: expected batch, level, enable_research, research_depth, parallel",
                            *err);
        return 422;
    }
    if (!json_is_array(tasks)) {
        *err = "batch is required and must be an array of tasks";
        return 422;
    }
    n = json_array_size(tasks);
    if (n == 0) {
        *err = "Batch cannot be empty";
        return 400;
    }
    if (n > (size_t)max_tasks) {
        *err = apr_psprintf(p, "Batch size cannot exceed %d tasks", max_tasks);
        return 400;
    }
    v = json_object_get(body, "level");
    if (!json_is_string(v) || pe_enhance_level_parse(json_string_value(v), &out->level) != 0) {
        *err = "level is required and must be one of low, medium, high, ultra";
        return 422;
    }
    if ((out->research = batch_bool(body, "enable_research", 0)) < 0) {
        *err = "enable_research must be a boolean";
        return 422;
    }
    if ((out->parallel = batch_bool(body, "parallel", 1)) < 0) {
        *err = "parallel must be a boolean";
        return 422;
    }
    v = json_object_get(body, "research_depth");
    out->depth = PE_DEPTH_BASIC;
    if (v && !json_is_null(v) && (!json_is_string(v) || pe_enhance_depth_parse(json_string_value(v), &out->depth))) {
        *err = "research_depth must be one of basic, medium, high";
        return 422;
    }
    out->n = (int)n;
    out->tasks = apr_pcalloc(p, sizeof(*out->tasks) * n);
    for (i = 0; i < out->n; i++)
        if ((rc = batch_task(p, conf, body, json_array_get(tasks, (size_t)i), i, &out->tasks[i], err)) != 0)
            return rc;
    return 0;
}

/* State shared by the workers of one run. */
typedef struct batch_run_t {
    pe_batch_t *b;
    pe_batch_task_fn *fn;
    void *baton;
    volatile apr_uint32_t next;   /* next task index to take */
    volatile apr_uint32_t active; /* tasks running now */
    volatile apr_uint32_t max_active;
} batch_run_t;

/* Run one task and time it, keeping the running/most-running counts. */
static void batch_one(batch_run_t *run, pe_batch_task_t *t)
{
    apr_time_t t0 = apr_time_now();
    apr_uint32_t now = apr_atomic_inc32(&run->active) + 1, seen;

    /* NB: raise max_active to now unless another thread raised it further */
    while ((seen = apr_atomic_read32(&run->max_active)) < now && apr_atomic_cas32(&run->max_active, now, seen) != seen)
        ;
    run->fn(run->baton, t);
    apr_atomic_dec32(&run->active);
    t->elapsed = apr_time_now() - t0;
}

/* A worker: take the next task until none is left. */
static void *APR_THREAD_FUNC batch_worker(apr_thread_t *th, void *data)
{
    batch_run_t *run = data;
    apr_uint32_t i;

    while ((i = apr_atomic_inc32(&run->next)) < (apr_uint32_t)run->b->n)
        batch_one(run, &run->b->tasks[i]);
    apr_thread_exit(th, APR_SUCCESS);
    return NULL;
}

/* Mark tasks that never ran as failed. */
static void batch_fail_rest(pe_batch_t *b, apr_uint32_t from)
{
    int i;

    for (i = (int)from; i < b->n; i++) {
        if (b->tasks[i].success || b->tasks[i].error)
            continue;
        b->tasks[i].error = "the task could not be started";
        b->tasks[i].error_code = "INTERNAL_ERROR";
    }
}

/*
 * The pool all task and thread pools live under: its own allocator with a mutex, so pools made,
 * used and destroyed on several threads never race (the request pool's allocator has no mutex).
 */
static apr_status_t batch_pool(apr_pool_t *p, apr_pool_t **out)
{
    apr_allocator_t *alloc;
    apr_thread_mutex_t *mx;
    apr_status_t rv;

    if ((rv = apr_thread_mutex_create(&mx, APR_THREAD_MUTEX_DEFAULT, p)) != APR_SUCCESS)
        return rv;
    if ((rv = apr_allocator_create(&alloc)) != APR_SUCCESS)
        return rv;
    apr_allocator_mutex_set(alloc, mx);
    if ((rv = apr_pool_create_ex(out, p, NULL, alloc)) != APR_SUCCESS) {
        apr_allocator_destroy(alloc);
        return rv;
    }
    /* NB: the mutex lives in p, which outlives *out (a subpool is destroyed before its parent's cleanups) */
    apr_allocator_owner_set(alloc, *out);
    return APR_SUCCESS;
}

/* Run all tasks, bounded. */
apr_status_t pe_batch_run(apr_pool_t *p, pe_batch_t *b, int max_parallel, pe_batch_task_fn *fn, void *baton,
                          pe_batch_stats_t *st)
{
    batch_run_t run;
    apr_pool_t *bp;
    apr_thread_t **th;
    apr_threadattr_t *attr;
    apr_status_t rv = APR_SUCCESS;
    apr_time_t t0 = apr_time_now();
    int nthreads, started = 0, i;

    if (st)
        memset(st, 0, sizeof(*st));
    if (!b || !fn || b->n <= 0)
        return b && fn ? APR_SUCCESS : APR_EINVAL;
    memset(&run, 0, sizeof(run));
    run.b = b;
    run.fn = fn;
    run.baton = baton;
    if ((rv = batch_pool(p, &bp)) != APR_SUCCESS) {
        batch_fail_rest(b, 0);
        return rv;
    }
    for (i = 0; i < b->n; i++) {
        if ((rv = apr_pool_create(&b->tasks[i].pool, bp)) != APR_SUCCESS) {
            batch_fail_rest(b, 0);
            return rv;
        }
    }
    if (!b->parallel) {
        for (i = 0; i < b->n; i++)
            batch_one(&run, &b->tasks[i]);
    }
    else {
        nthreads = max_parallel > 0 ? max_parallel : PE_BATCH_PARALLEL;
        if (nthreads > b->n)
            nthreads = b->n;
        th = apr_pcalloc(p, sizeof(*th) * (apr_size_t)nthreads);
        if ((rv = apr_threadattr_create(&attr, bp)) == APR_SUCCESS) {
            for (i = 0; i < nthreads; i++) {
                if ((rv = pe_thread_create(&th[i], attr, batch_worker, &run, bp)) != APR_SUCCESS)
                    break;
                started++;
            }
        }
        if (started == 0) {
            /* NB: no thread could be made: run the batch here rather than fail it */
            while ((i = (int)apr_atomic_inc32(&run.next)) < b->n)
                batch_one(&run, &b->tasks[i]);
        }
        for (i = 0; i < started; i++) {
            apr_status_t trv;

            apr_thread_join(&trv, th[i]);
        }
    }
    if (st) {
        st->threads = started;
        st->max_active = (int)run.max_active;
        st->succeeded = b->n - pe_batch_failed(b);
        st->elapsed = apr_time_now() - t0;
    }
    return APR_SUCCESS;
}

/* Count failed tasks. */
int pe_batch_failed(const pe_batch_t *b)
{
    int i, n = 0;

    for (i = 0; b && i < b->n; i++)
        n += !b->tasks[i].success;
    return n;
}

/* The response object. */
json_t *pe_batch_response(apr_pool_t *p, const pe_batch_t *b, const char *batch_id, apr_interval_time_t wall,
                          json_t *created_at, int charged, int refunded)
{
    json_t *o = pe_json_object(p), *results = json_array();
    apr_int64_t tokens = 0;
    int i, ok = 0;

    for (i = 0; i < b->n; i++) {
        const pe_batch_task_t *t = &b->tasks[i];
        json_t *r = json_object();

        json_object_set_new(r, "task_index", json_integer(t->index));
        json_object_set_new(r, "success", json_boolean(t->success));
        json_object_set(r, "response", t->success && t->response ? t->response : json_null());
        json_object_set_new(r, "error", t->success || !t->error ? json_null() : json_string(t->error));
        json_object_set_new(r, "error_code", t->success || !t->error_code ? json_null() : json_string(t->error_code));
        json_object_set_new(r, "processing_time_ms", json_integer((json_int_t)apr_time_as_msec(t->elapsed)));
        json_object_set_new(r, "tokens_used", json_integer(t->success ? t->tokens : 0));
        if (t->research)
            json_object_set(r, "research", t->research);
        json_array_append_new(results, r);
        if (t->success) {
            ok++;
            tokens += t->tokens;
        }
    }
    json_object_set_new(o, "batch_id", json_string(batch_id ? batch_id : ""));
    json_object_set_new(o, "total_tasks", json_integer(b->n));
    json_object_set_new(o, "successful_tasks", json_integer(ok));
    json_object_set_new(o, "failed_tasks", json_integer(b->n - ok));
    json_object_set_new(o, "results", results);
    json_object_set_new(o, "total_tokens_used", json_integer(tokens));
    json_object_set_new(o, "total_processing_time_ms", json_integer((json_int_t)apr_time_as_msec(wall)));
    json_object_set_new(o, "created_at", created_at ? created_at : json_null());
    json_object_set_new(o, "parallel", json_boolean(b->parallel));
    json_object_set_new(o, "credits", json_pack("{s:i, s:i}", "charged", charged, "refunded", refunded));
    return o;
}

/* "batch_<seconds>_<11 URL-safe characters>". */
const char *pe_batch_id(apr_pool_t *p, apr_time_t now)
{
    static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    const char *rnd;

    if (pe_random_string(p, alphabet, 11, &rnd) != APR_SUCCESS)
        return NULL;
    return apr_psprintf(p, "batch_%" APR_TIME_T_FMT "_%s", apr_time_sec(now), rnd);
}
