/*
 * pe_h_batch.c: POST /v1/batch/process (group batch, SPEC 8 with the fixes of 16.1 items 2-4 and
 * 16.2 item 36).
 *
 *   read + validate every task (pe_batch_parse, through the completion parser) -> the user's
 *   r_type and level rights for every task (403) -> take the credits of ALL tasks in one
 *   conditional write (429, nothing taken) -> run the tasks (parallel: at most PEBatchMaxParallel
 *   at once on worker threads; else one after another); each task: research (when enabled), the
 *   upstream body, the per-user response cache, the upstream call -> refund exactly the failed
 *   tasks -> 200 with the results in task order.
 * Task errors carry a public message and a code, never the upstream's or libcurl's text (that is
 * logged). Tasks are not written to the conversation log (SPEC 8).
 */
#include "pe_auth.h"
#include "pe_batch.h"
#include "pe_cachekey.h"
#include "pe_completion.h"
#include "pe_config.h"
#include "pe_credits.h"
#include "pe_handlers.h"
#include "pe_json.h"
#include "pe_log.h"
#include "pe_prompts_ap.h"
#include "pe_research_ap.h"

#include <apr_strings.h>

/* What every task of one batch shares (read-only while the tasks run). */
typedef struct pe_bx_t {
    server_rec *s;
    const pe_enhance_conf_t *ec;
    pe_upstream_conf_t uc;
    pe_cache_t *cache;      /* per-user response cache, or NULL */
    const char *scope;      /* "user:<id>" */
    apr_interval_time_t cache_ttl;
    const char *request_id; /* for the log lines of the tasks */
    const char *prompts[8]; /* stored system prompt by r_type, read before the tasks run */
} pe_bx_t;

/* Fail a task with a public message and code. */
static void pe_bx_fail(pe_batch_task_t *t, const char *code, const char *msg)
{
    t->success = 0;
    t->error_code = code;
    t->error = msg;
}

/* Take a parsed chat.completion as the task's answer. */
static void pe_bx_answer(pe_batch_task_t *t, json_t *reply)
{
    json_t *total = json_object_get(json_object_get(reply, "usage"), "total_tokens");

    t->response = reply;
    t->tokens = json_is_integer(total) ? (apr_int64_t)json_integer_value(total) : 0;
    t->success = 1;
}

/* One task (on a worker thread in parallel mode): research, body, cache, upstream. */
static void pe_bx_task(void *baton, pe_batch_task_t *t)
{
    pe_bx_t *bx = baton;
    apr_pool_t *p = t->pool;
    pe_enhance_research_t e;
    pe_upstream_result_t res;
    pe_research_t rr;
    json_t *up, *reply;
    const char *err, *key = NULL, *text;
    char *cached;
    apr_size_t clen;
    size_t len;
    int nres = 0;

    if (t->req.ai_research) {
        apr_status_t rv = pe_research_for(p, bx->s, t->prompt, t->req.depth, &rr);

        t->research = pe_research_meta(p, &rr);
        if (rv != APR_ENOTIMPL)
            nres = pe_research_for_enhance(&rr, &e);
    }
    if (pe_enhance_build(p, bx->ec, &t->req, ((unsigned)t->req.rtype < 8) ? bx->prompts[t->req.rtype] : NULL,
                         nres ? &e : NULL, nres, &up, &err) != 0) {
        pe_bx_fail(t, "VALIDATION_ERROR", err ? err : "the task is not valid");
        return;
    }
    if (bx->cache) {
        key = pe_cachekey_completion(p, "response", bx->scope, &t->req,
                                     pe_enhance_system_prompt(t->req.rtype, ((unsigned)t->req.rtype < 8)
                                                                                ? bx->prompts[t->req.rtype]
                                                                                : NULL),
                                     nres ? &e : NULL, nres);
        const char *hbody, *htext;
        apr_size_t hlen;
        apr_int64_t htokens;

        if (key && pe_cache_get(bx->cache, p, key, apr_time_now(), &cached, &clen, NULL) == APR_SUCCESS &&
            pe_cache_reply_unpack(p, cached, clen, &hbody, &hlen, &htext, &htokens) == 0 &&
            pe_json_parse(p, hbody, hlen, &reply, &err) == 0 && json_is_object(reply)) {
            pe_bx_answer(t, reply);
            return;
        }
    }
    text = pe_json_dump(p, up, &len);
    pe_upstream_post(p, pe_completion_handles(), &bx->uc, text, len, NULL, NULL, &res);
    if (res.outcome != PE_UP_OK) {
        pe_clog(PE_LOG_WARNING, 0,
                PE_LOGNO(62001) "batch %s: task %d: upstream call failed: %s, status %ld, %d attempt(s)%s%s",
                bx->request_id, t->index, pe_upstream_outcome_name(res.outcome), res.status, res.attempts,
                res.error ? ": " : "", res.error ? res.error : "");
        if (res.outcome == PE_UP_TIMEOUT)
            pe_bx_fail(t, "UPSTREAM_TIMEOUT", "the AI service did not answer in time");
        else if (res.outcome == PE_UP_HTTP)
            pe_bx_fail(t, "UPSTREAM_ERROR", apr_psprintf(p, "the AI service answered with status %ld", res.status));
        else
            pe_bx_fail(t, "UPSTREAM_ERROR", "the AI service could not be reached");
        return;
    }
    if (pe_json_parse(p, res.body.data ? res.body.data : "", res.body.len, &reply, &err) != 0 ||
        !json_is_object(reply) || json_array_size(json_object_get(reply, "choices")) == 0) {
        pe_clog(PE_LOG_WARNING, 0, PE_LOGNO(62002) "batch %s: task %d: the upstream answer is not a chat.completion "
                "(%" APR_SIZE_T_FMT " bytes)", bx->request_id, t->index, res.body.len);
        pe_bx_fail(t, "UPSTREAM_INVALID", "the AI service sent an invalid answer");
        return;
    }
    pe_bx_answer(t, reply);
    if (key) {
        /* the same record as the completion routes store (pe_cache.h): text and tokens first */
        json_t *content = json_object_get(json_object_get(json_array_get(json_object_get(reply, "choices"), 0),
                                                          "message"), "content");

        if ((cached = pe_cache_reply_pack(p, res.body.data, res.body.len,
                                          json_is_string(content) ? json_string_value(content) : NULL, t->tokens,
                                          &clen)))
            pe_cache_set(bx->cache, key, cached, clen, bx->cache_ttl, apr_time_now(), NULL);
    }
}

/* 429 when the user has fewer credits than tasks (nothing was taken). */
static int pe_bx_no_credits(request_rec *r, pe_store_t *st, const char *uid, int n, apr_int64_t day, int hour)
{
    apr_int64_t limit = 0, reset = 0;
    apr_time_t now = apr_time_now(), next = pe_credits_next_reset(now, hour);
    json_t *extra = pe_json_object(r->pool);

    pe_store_credits_get(st, uid, day, &limit, &reset);
    json_object_set_new(extra, "required_credits", json_integer(n));
    json_object_set_new(extra, "available_credits", json_integer(limit > 0 ? limit : 0));
    json_object_set_new(extra, "limits", pe_credits_limits_json(limit, reset, next));
    apr_table_setn(r->err_headers_out, "Retry-After",
                   apr_psprintf(r->pool, "%" APR_INT64_T_FMT, (apr_int64_t)apr_time_sec(next - now) + 1));
    return pe_http_error_ex(r, HTTP_TOO_MANY_REQUESTS, "CREDITS_EXHAUSTED", extra,
                            "Insufficient conversation credits. Need %d, have %" APR_INT64_T_FMT, n,
                            limit > 0 ? limit : 0);
}

/* POST /v1/batch/process. */
int pe_h_batch_process(pe_ctx_t *cx)
{
    request_rec *r = cx->r;
    pe_srv_conf_t *sc = pe_config_srv(r->server);
    int hour = pe_srv_credit_reset_hour(sc);
    const pe_user_t *u;
    pe_batch_stats_t bst;
    pe_store_status_e rs;
    pe_store_t *st;
    pe_batch_t b;
    pe_bx_t bx;
    json_t *body;
    const char *err, *code, *msg;
    apr_time_t now = apr_time_now();
    apr_int64_t day;
    int rc, i, failed, refunded = 0;

    if (!cx->rq->principal || !cx->rq->principal->user)
        return pe_http_error(r, HTTP_UNAUTHORIZED, "AUTH_REQUIRED", "an API key is required");
    u = cx->rq->principal->user;
    if ((rc = pe_http_read_json(r, &body)) != OK)
        return rc;
    memset(&bx, 0, sizeof(bx));
    bx.s = r->server;
    bx.ec = pe_completion_enhance_conf(r->pool, r->server);
    if ((rc = pe_batch_parse(r->pool, bx.ec, body, pe_srv_batch_max_tasks(sc), &b, &err)) != 0)
        return pe_http_error(r, rc, rc == HTTP_BAD_REQUEST ? "BAD_REQUEST" : "VALIDATION_ERROR", "%s", err);
    for (i = 0; i < b.n; i++) {
        if ((rc = pe_completion_check_rights(r->pool, u, &b.tasks[i].req, &code, &msg)) != OK)
            return pe_http_error(r, rc, code, "batch[%d]: %s", i, msg);
    }
    if (!pe_srv_upstream_url(sc) || !pe_completion_handles())
        return pe_http_error(r, HTTP_SERVICE_UNAVAILABLE, "UPSTREAM_NOT_CONFIGURED", "no AI service is configured");
    if (!(st = pe_auth_store(r)))
        return pe_http_error(r, HTTP_SERVICE_UNAVAILABLE, "STORE_UNAVAILABLE", "the user store is unavailable");

    /* All credits at once, or none (SPEC 16.1 items 3-4). */
    day = pe_credits_day(now, hour);
    rs = pe_store_credits_take_n(st, u->id, b.n, day, now);
    if (rs == PE_STORE_EMPTY)
        return pe_bx_no_credits(r, st, u->id, b.n, day, hour);
    if (rs != PE_STORE_OK)
        return pe_http_error(r, HTTP_SERVICE_UNAVAILABLE, "STORE_UNAVAILABLE", "the user store is unavailable");

    pe_completion_upstream_conf(r->server, 0, &bx.uc);
    bx.cache = pe_srv_cache_on(sc) ? pe_completion_cache() : NULL;
    bx.cache_ttl = apr_time_from_msec(pe_srv_cache_ttl_ms(sc));
    bx.scope = apr_pstrcat(r->pool, "user:", u->id, NULL);
    bx.request_id = cx->rq->request_id;
    /* NB: the tasks have no request (worker threads): their stored prompts are read here. */
    for (i = 0; i < b.n; i++) {
        unsigned t = (unsigned)b.tasks[i].req.rtype;

        if (t < 8 && !bx.prompts[t])
            bx.prompts[t] = pe_prompts_get(r, b.tasks[i].req.rtype);
    }
    pe_batch_run(r->pool, &b, pe_srv_batch_parallel(sc), pe_bx_task, &bx, &bst);

    /* Exactly the failed tasks' credits go back. */
    failed = pe_batch_failed(&b);
    if (failed > 0) {
        rs = pe_store_credits_refund_n(st, u->id, failed, day);
        if (rs == PE_STORE_OK)
            refunded = failed;
        else if (rs == PE_STORE_EIO)
            pe_rlog(r, APLOG_ERR, 0, PE_LOGNO(62003) "batch: the credits of %d failed task(s) could not be given back: %s",
                    failed, pe_store_error(st) ? pe_store_error(st) : "store error");
    }
    for (i = 0; i < b.n; i++) /* the request's tokens, for its API-usage record */
        cx->rq->tokens += b.tasks[i].success ? b.tasks[i].tokens : 0;
    pe_rlog(r, APLOG_INFO, 0,
            PE_LOGNO(62004) "batch: %d task(s), %d failed, %s, %d at once at most, %" APR_TIME_T_FMT " ms", b.n, failed,
            b.parallel ? "parallel" : "sequential", bst.max_active, apr_time_as_msec(bst.elapsed));
    return pe_http_send_json(r, HTTP_OK,
                             pe_batch_response(r->pool, &b, pe_batch_id(r->pool, now), apr_time_now() - now,
                                               pe_http_time(r->pool, now), b.n, refunded));
}
