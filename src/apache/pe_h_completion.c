/*
 * pe_h_completion.c: POST /v1/prompt/completions (group prompt), POST /v1/chat/completions and
 * GET /v1/models (group openai).
 *
 * One pipeline for both completion routes:
 *   read + validate (pe_enhance) -> the user's r_type and level rights (403) -> upstream body ->
 *   take one credit (429) -> research (the body rebuilt with it) -> cache (per user) -> upstream
 *   (retries, streaming) ->
 *   answer; a failed upstream call gives the credit back exactly once; log_transaction queues the
 *   conversation log from the note left here. X-PE-Overhead-Ms: the time spent here, upstream excluded.
 */
#include "pe_auth.h"
#include "pe_cachekey.h"
#include "pe_completion.h"
#include "pe_config.h"
#include "pe_credits.h"
#include "pe_handlers.h"
#include "pe_log.h"
#include "pe_monitor_ap.h"
#include "pe_prompts_ap.h"
#include "pe_sse.h"

#include "http_protocol.h"
#include "http_request.h"
#include <apr_strings.h>

/* One completion in progress. */
typedef struct cpl_t {
    request_rec *r;
    pe_req_t *rq;
    pe_user_t *user;
    pe_store_t *st;
    apr_int64_t day;
    int taken, refunded;
    apr_interval_time_t upstream_time;
    apr_time_t upstream_start; /* when the upstream call began (0: not yet) */
    pe_completion_note_t *note;
} cpl_t;

/* X-PE-Overhead-Ms: elapsed time of this request minus the upstream's share, in ms. */
static void set_overhead(cpl_t *c)
{
    apr_interval_time_t t = apr_time_now() - c->rq->started - c->upstream_time;

    /* A stream starts answering during the upstream call: count up to the call's start. */
    if (c->upstream_start && !c->upstream_time)
        t = c->upstream_start - c->rq->started;

    if (t < 0)
        t = 0;
    pe_met_observe(PE_MET_OVERHEAD_SECONDS, t);
    apr_table_setn(c->r->err_headers_out, "X-PE-Overhead-Ms",
                   apr_psprintf(c->r->pool, "%.2f", (double)t / 1000.0));
}

/* Give the credit back, once, when it was taken. */
static void refund(cpl_t *c)
{
    pe_store_status_e rs;

    if (!c->taken || c->refunded)
        return;
    c->refunded = 1;
    rs = pe_store_credits_refund(c->st, c->user->id, c->day);
    if (rs == PE_STORE_EIO)
        pe_rlog(c->r, APLOG_ERR, 0, PE_LOGNO(41002) "the credit of a failed completion could not be given back: %s",
                pe_store_error(c->st) ? pe_store_error(c->st) : "store error");
    else if (rs == PE_STORE_NOTFOUND)
        pe_rlog(c->r, APLOG_DEBUG, 0, PE_LOGNO(41003) "no credit given back: the daily reset happened meanwhile");
}

/* An error answer: the credit (if taken) goes back first. Returns DONE. */
static int fail(cpl_t *c, int status, const char *code, const json_t *extra, const char *msg)
{
    refund(c);
    set_overhead(c);
    return pe_http_error_ex(c->r, status, code, extra, "%s", msg);
}

/* Is name in a comma- or space-separated list? */
static int in_list(const char *list, const char *name)
{
    apr_size_t n = strlen(name);
    const char *p = list;

    while (p && *p) {
        const char *e;

        while (*p == ',' || *p == ' ')
            p++;
        e = p;
        while (*e && *e != ',' && *e != ' ')
            e++;
        if ((apr_size_t)(e - p) == n && !strncmp(p, name, n))
            return 1;
        p = e;
    }
    return 0;
}

/* The user's highest level (an unknown value counts as low). */
static pe_level_t user_level(const pe_user_t *u)
{
    pe_level_t l = PE_LEVEL_LOW;

    if (u->level)
        pe_enhance_level_parse(u->level, &l);
    return l;
}

/* Whether user u may use req's r_type and level (shared with the batch route). */
int pe_completion_check_rights(apr_pool_t *p, const pe_user_t *u, const pe_enhance_req_t *req, const char **code,
                               const char **msg)
{
    pe_level_t max = user_level(u);

    if (req->rtype != PE_RTYPE_NONE && !in_list(u->access_rtype, pe_enhance_rtype_name(req->rtype))) {
        *code = "RTYPE_NOT_ALLOWED";
        *msg = apr_psprintf(p, "r_type '%s' is not enabled for this account (allowed: %s)",
                            pe_enhance_rtype_name(req->rtype), *u->access_rtype ? u->access_rtype : "none");
        return HTTP_FORBIDDEN;
    }
    if (req->level > max) {
        *code = "LEVEL_NOT_ALLOWED";
        *msg = apr_psprintf(p, "level '%s' is above this account's level '%s'", pe_enhance_level_name(req->level),
                            pe_enhance_level_name(max));
        return HTTP_FORBIDDEN;
    }
    return OK;
}

/* 403 unless the user may use this r_type and level. */
static int check_rights(cpl_t *c, const pe_enhance_req_t *req)
{
    const char *code, *msg;
    int rc = pe_completion_check_rights(c->r->pool, c->user, req, &code, &msg);

    return rc == OK ? OK : fail(c, rc, code, NULL, msg);
}

/* Take one credit; 429 CREDITS_EXHAUSTED (with limits) when none is left. */
static int take_credit(cpl_t *c)
{
    pe_srv_conf_t *sc = pe_config_srv(c->r->server);
    int hour = pe_srv_credit_reset_hour(sc);
    apr_time_t now = apr_time_now();
    pe_store_status_e rs;

    c->day = pe_credits_day(now, hour);
    rs = pe_store_credits_take(c->st, c->user->id, c->day, now);
    if (rs == PE_STORE_OK) {
        c->taken = 1;
        return OK;
    }
    if (rs == PE_STORE_EMPTY) {
        apr_int64_t limit = 0, reset = 0;
        apr_time_t next = pe_credits_next_reset(now, hour);
        json_t *extra = pe_json_object(c->r->pool);

        pe_store_credits_get(c->st, c->user->id, c->day, &limit, &reset);
        json_object_set_new(extra, "limits", pe_credits_limits_json(limit, reset, next));
        apr_table_setn(c->r->err_headers_out, "Retry-After",
                       apr_psprintf(c->r->pool, "%" APR_INT64_T_FMT, (apr_int64_t)apr_time_sec(next - now) + 1));
        return fail(c, HTTP_TOO_MANY_REQUESTS, "CREDITS_EXHAUSTED", extra, "Insufficient conversation credits");
    }
    return fail(c, HTTP_SERVICE_UNAVAILABLE, "STORE_UNAVAILABLE", NULL, "the user store is unavailable");
}

/* Map a failed upstream call to 502/504 (the credit goes back). */
static int upstream_failed(cpl_t *c, const pe_upstream_result_t *res)
{
    json_t *extra = pe_json_object(c->r->pool);

    pe_rlog(c->r, res->outcome == PE_UP_HTTP && res->status < 500 ? APLOG_WARNING : APLOG_ERR, 0,
            PE_LOGNO(41004) "upstream call failed: %s, status %ld, %d attempt(s)%s%s", pe_upstream_outcome_name(res->outcome),
            res->status, res->attempts, res->error ? ": " : "", res->error ? res->error : "");
    /* Retries as a whole (docs/api.md, "Errors and retries"): the gateway retries what may pass
     * on a second try (network errors, 429, 5xx) itself. Once it has, or when the upstream's
     * refusal is not transient, a client's retries would only multiply the upstream calls. */
    if (res->attempts > 1 || !(res->outcome == PE_UP_TIMEOUT || pe_upstream_retryable(res->outcome, res->status) ||
                               (res->outcome == PE_UP_HTTP && res->status == 408)))
        apr_table_setn(c->r->err_headers_out, "x-should-retry", "false");
    json_object_set_new(extra, "upstream_attempts", json_integer(res->attempts));
    if (res->status)
        json_object_set_new(extra, "upstream_status", json_integer(res->status));
    switch (res->outcome) {
    case PE_UP_TIMEOUT:
        return fail(c, HTTP_GATEWAY_TIME_OUT, "UPSTREAM_TIMEOUT", extra, "the AI service did not answer in time");
    case PE_UP_HTTP:
        return fail(c, HTTP_BAD_GATEWAY, "UPSTREAM_ERROR", extra,
                    apr_psprintf(c->r->pool, "the AI service answered with status %ld", res->status));
    case PE_UP_TOO_LARGE:
        return fail(c, HTTP_BAD_GATEWAY, "UPSTREAM_ERROR", extra, "the AI service's answer is too large");
    case PE_UP_INTERNAL:
        return fail(c, HTTP_BAD_GATEWAY, "UPSTREAM_ERROR", extra, "the AI service is not usable (configuration)");
    default:
        return fail(c, HTTP_BAD_GATEWAY, "UPSTREAM_ERROR", extra, "the AI service could not be reached");
    }
}

/* Send an upstream JSON body as it is (unknown fields pass through). */
static int send_raw(cpl_t *c, const char *body, apr_size_t len, const char *cache_state)
{
    request_rec *r = c->r;

    r->status = HTTP_OK;
    ap_set_content_type(r, "application/json; charset=utf-8");
    apr_table_setn(r->headers_out, "X-Content-Type-Options", "nosniff");
    apr_table_setn(r->headers_out, "Cache-Control", "no-store");
    apr_table_setn(r->headers_out, "X-PE-Cache", cache_state);
    pe_met_inc(PE_MET_CACHE, PE_MET_CACHE_RESPONSE, *cache_state == 'h' ? PE_MET_HIT : *cache_state == 'm' ? PE_MET_MISS : PE_MET_BYPASS);
    set_overhead(c);
    ap_set_content_length(r, (apr_off_t)len);
    if (!r->header_only)
        ap_rwrite(body, (int)len, r);
    return OK;
}

/* Note the answer text and tokens of a chat.completion for the conversation log. */
static void note_answer(cpl_t *c, const json_t *reply)
{
    json_t *choices = json_object_get(reply, "choices");
    json_t *usage = json_object_get(reply, "usage");
    json_t *msg = json_object_get(json_array_get(choices, 0), "message");
    json_t *content = json_object_get(msg, "content");
    json_t *total = json_object_get(usage, "total_tokens");

    if (json_is_string(content))
        c->note->response = apr_pstrdup(c->r->pool, json_string_value(content));
    if (json_is_integer(total))
        c->note->tokens = (apr_int64_t)json_integer_value(total);
}

/* ---- streaming ---- */

typedef struct stream_t {
    cpl_t *c;
    pe_sse_parser_t *ps;
    int started, want_usage, client_gone;
    int done;     /* the upstream sent [DONE] */
    int finished; /* a choice carried a finish_reason */
    pe_buf_t text;
} stream_t;

/* First event: the SSE response headers. */
static void stream_start(stream_t *s)
{
    request_rec *r = s->c->r;

    r->status = HTTP_OK;
    ap_set_content_type(r, "text/event-stream; charset=utf-8");
    apr_table_setn(r->headers_out, "Cache-Control", "no-cache");
    apr_table_setn(r->headers_out, "X-Accel-Buffering", "no");
    apr_table_setn(r->headers_out, "X-Content-Type-Options", "nosniff");
    apr_table_setn(r->headers_out, "X-PE-Cache", "bypass");
    set_overhead(s->c); /* for a stream: the time before the upstream answered */
    s->started = 1;
}

/* Write and flush; notices a client that went away. */
static apr_status_t stream_write(stream_t *s, const char *d, apr_size_t n, int flush)
{
    request_rec *r = s->c->r;

    if (ap_rwrite(d, (int)n, r) < 0 || (flush && ap_rflush(r) < 0) || r->connection->aborted) {
        s->client_gone = 1;
        return APR_ECONNABORTED;
    }
    return APR_SUCCESS;
}

/* One upstream event: checked, noted, passed on (data lines kept as they are). */
static apr_status_t stream_event(void *baton, const pe_sse_event_t *ev)
{
    stream_t *s = baton;
    request_rec *r = s->c->r;
    json_t *j, *choices, *usage, *delta;
    const char *line, *end, *data;
    apr_status_t rv;

    if (!s->started)
        stream_start(s);
    if (ev->done) {
        s->done = 1;
        return stream_write(s, "data: [DONE]\n\n", 14, 1);
    }
    j = json_loadb(ev->data, ev->data_len, 0, NULL);
    if (!json_is_object(j)) {
        json_decref(j);
        pe_rlog(r, APLOG_DEBUG, 0, PE_LOGNO(41005) "an upstream event that is not a JSON object was dropped");
        return APR_SUCCESS;
    }
    choices = json_object_get(j, "choices");
    usage = json_object_get(j, "usage");
    if (json_is_object(usage) && json_is_integer(json_object_get(usage, "total_tokens")))
        s->c->note->tokens = (apr_int64_t)json_integer_value(json_object_get(usage, "total_tokens"));
    if (json_is_string(json_object_get(json_array_get(choices, 0), "finish_reason")))
        s->finished = 1;
    if (json_is_object(usage))
        pe_monitor_usage(s->c->note->model, s->c->note->r_type, usage);
    delta = json_object_get(json_object_get(json_array_get(choices, 0), "delta"), "content");
    if (json_is_string(delta))
        pe_buf_append(&s->text, json_string_value(delta), json_string_length(delta));
    /* We asked for usage; a client that did not gets no usage-only chunk. */
    if (!s->want_usage && json_is_array(choices) && json_array_size(choices) == 0 && json_is_object(usage)) {
        json_decref(j);
        return APR_SUCCESS;
    }
    json_decref(j);
    if (ev->event && strcmp(ev->event, "message") != 0) {
        line = apr_pstrcat(r->pool, "event: ", ev->event, "\n", NULL);
        if ((rv = stream_write(s, line, strlen(line), 0)) != APR_SUCCESS)
            return rv;
    }
    for (data = ev->data; ; data = end + 1) {
        end = memchr(data, '\n', ev->data_len - (apr_size_t)(data - ev->data));
        if ((rv = stream_write(s, "data: ", 6, 0)) != APR_SUCCESS ||
            (rv = stream_write(s, data, end ? (apr_size_t)(end - data) : ev->data_len - (apr_size_t)(data - ev->data),
                               0)) != APR_SUCCESS ||
            (rv = stream_write(s, "\n", 1, 0)) != APR_SUCCESS)
            return rv;
        if (!end)
            break;
    }
    return stream_write(s, "\n", 1, 1);
}

/* curl data callback: bytes into the SSE parser. */
static apr_status_t stream_data(void *baton, const char *data, apr_size_t len)
{
    stream_t *s = baton;

    return pe_sse_feed(s->ps, data, len);
}

/* Cut off after the first event: tell the client in the stream, give the credit back. */
static int stream_broke_off(cpl_t *c, stream_t *s, const pe_upstream_result_t *res, const char *why)
{
    static const char ev[] = "data: {\"error\":{\"message\":\"the AI service's stream broke off\","
                             "\"type\":\"upstream_error\",\"code\":\"UPSTREAM_ERROR\",\"param\":null}}\n\n";

    pe_rlog(c->r, APLOG_WARNING, 0, PE_LOGNO(41008) "the upstream stream broke off: %s%s%s",
            pe_upstream_outcome_name(res->outcome), why ? ": " : "", why ? why : "");
    refund(c);
    stream_write(s, ev, sizeof(ev) - 1, 1);
    return OK;
}

/* The streamed completion. */
static int run_stream(cpl_t *c, const pe_upstream_conf_t *uc, const char *body, apr_size_t len, int want_usage)
{
    request_rec *r = c->r;
    stream_t s;
    pe_upstream_result_t res;
    apr_status_t rv;

    memset(&s, 0, sizeof(s));
    s.c = c;
    s.want_usage = want_usage;
    s.ps = pe_sse_create(r->pool, 0, stream_event, &s);
    pe_buf_init(&s.text, r->pool, (apr_size_t)pe_srv_msglog_max_record(pe_config_srv(r->server)));
    c->upstream_start = apr_time_now();
    rv = pe_upstream_post(r->pool, pe_completion_handles(), uc, body, len, stream_data, &s, &res);
    c->upstream_time = res.elapsed;
    c->note->response = s.text.data ? s.text.data : "";
    if (rv == APR_SUCCESS && s.started) {
        /* A body framed by the connection's close ends "successfully" wherever the upstream
         * stopped: the answer is whole only with [DONE], or (an upstream that omits it) with a
         * finish_reason and no event left half-sent. Anything else broke off. */
        apr_status_t fin = pe_sse_finish(s.ps);

        if (s.done)
            return OK;
        if (s.finished && fin == APR_SUCCESS) {
            stream_write(&s, "data: [DONE]\n\n", 14, 1);
            return OK;
        }
        if (fin == APR_INCOMPLETE)
            pe_rlog(r, APLOG_INFO, 0, PE_LOGNO(41006) "the upstream stream ended inside an event");
        return stream_broke_off(c, &s, &res, "the stream ended before its last event");
    }
    if (s.client_gone) {
        /* The credit stays used: the client had the answer until it left. */
        pe_rlog(r, APLOG_INFO, 0, PE_LOGNO(41007) "the client went away during a stream; upstream transfer stopped");
        r->connection->keepalive = AP_CONN_CLOSE;
        return OK;
    }
    if (!s.started) {
        if (rv == APR_SUCCESS) {
            pe_upstream_result_t empty = res;

            empty.outcome = PE_UP_NETWORK;
            empty.error = "the stream had no event";
            return upstream_failed(c, &empty);
        }
        if (res.outcome == PE_UP_ABORTED) {
            apr_table_setn(r->err_headers_out, "x-should-retry", "false");
            return fail(c, HTTP_BAD_GATEWAY, "UPSTREAM_ERROR", NULL, "the AI service sent an invalid event stream");
        }
        return upstream_failed(c, &res);
    }
    return stream_broke_off(c, &s, &res, res.error);
}

/* ---- the pipeline ---- */

/* Research on the last user message, when asked for and available. */
static void research(cpl_t *c, const pe_enhance_req_t *req, pe_enhance_research_t **res, int *n)
{
    pe_completion_research_fn *fn = pe_completion_research();
    const char *q;

    *res = NULL;
    *n = 0;
    if (!req->ai_research)
        return;
    if (!fn || !(q = pe_enhance_research_query(c->r->pool, req))) {
        pe_rlog(c->r, APLOG_DEBUG, 0, PE_LOGNO(41009) "ai_research asked for but not available; answering without");
        return;
    }
    if (fn(c->r, q, req->depth, res, n) != APR_SUCCESS)
        *n = 0;
    c->note->research = *n > 0;
}

/* Both completion routes. */
static int completion(pe_ctx_t *cx, int chat)
{
    request_rec *r = cx->r;
    pe_srv_conf_t *sc = pe_config_srv(r->server);
    const pe_enhance_conf_t *ec = pe_completion_enhance_conf(r->pool, r->server);
    pe_cache_t *cache = pe_srv_cache_on(sc) ? pe_completion_cache() : NULL;
    pe_enhance_req_t req;
    pe_enhance_research_t *rs;
    pe_upstream_conf_t uc;
    pe_upstream_result_t res;
    cpl_t c;
    json_t *body, *reply;
    const char *err, *key = NULL, *text, *sysprompt;
    char *cached;
    apr_size_t len, clen;
    int rc, nrs, want_usage = 0;

    memset(&c, 0, sizeof(c));
    c.r = r;
    c.rq = cx->rq;
    if (!c.rq->principal || !c.rq->principal->user)
        return pe_http_error(r, HTTP_UNAUTHORIZED, "AUTH_REQUIRED", "an API key is required");
    c.user = c.rq->principal->user;
    if ((rc = pe_http_read_json(r, &body)) != OK)
        return rc;
    rc = chat ? pe_enhance_parse_chat(r->pool, ec, body, &req, &err) : pe_enhance_parse_prompt(r->pool, ec, body, &req, &err);
    if (rc)
        return fail(&c, rc, rc == HTTP_BAD_REQUEST ? "BAD_REQUEST" : "VALIDATION_ERROR", NULL, err);
    if (chat && req.rtype == PE_RTYPE_NONE) {
        const char *h = apr_table_get(r->headers_in, "X-PE-RType");

        if (h && *h && strcasecmp(h, "none") && pe_enhance_rtype_parse(h, &req.rtype) != 0)
            return fail(&c, HTTP_UNPROCESSABLE_ENTITY, "VALIDATION_ERROR", NULL,
                        "X-PE-RType must be one of bpe, bcot, hcot, react, tot, custom or none");
    }
    if (chat && req.stream) {
        json_t *so = json_object_get(body, "stream_options");
        want_usage = json_is_true(json_object_get(so, "include_usage"));
    }
    if ((rc = check_rights(&c, &req)) != OK)
        return rc;
    c.note = apr_pcalloc(r->pool, sizeof(*c.note));
    c.note->user_id = c.user->id;
    c.note->username = c.user->username;
    c.note->model = req.model;
    c.note->r_type = pe_enhance_rtype_name(req.rtype);
    c.note->messages = pe_json_dump(r->pool, req.messages, &len);
    /* The r_type's stored prompt (custom, or an administrator's override of a built-in). */
    sysprompt = pe_prompts_get(r, req.rtype);
    /* The request is complete without research: refuse a bad one before anything is spent (the
     * upstream body itself is built only on a cache miss: a hit never needs it). */
    if (req.rtype == PE_RTYPE_CUSTOM && !pe_enhance_system_prompt(req.rtype, sysprompt))
        return fail(&c, HTTP_UNPROCESSABLE_ENTITY, "VALIDATION_ERROR", NULL,
                    PE_ENHANCE_NO_CUSTOM_PROMPT);
    if (!pe_srv_upstream_url(sc))
        return fail(&c, HTTP_SERVICE_UNAVAILABLE, "UPSTREAM_NOT_CONFIGURED", NULL, "no AI service is configured");
    if (!(c.st = pe_auth_store(r)))
        return fail(&c, HTTP_SERVICE_UNAVAILABLE, "STORE_UNAVAILABLE", NULL, "the user store is unavailable");
    if ((rc = take_credit(&c)) != OK)
        return rc;
    /* NB: research (model calls, searches, page fetches) only after the credit is taken, so an
     * account without credits cannot make the server do it; a failed completion refunds it. */
    research(&c, &req, &rs, &nrs);
    /* From here on a conversation log is written for this request. */
    pe_completion_note_set(r, c.note);

    /* The cache is per user: the key's scope is the user id (SPEC 16.2 item 33). */
    if (cache && !req.stream) {
        key = pe_cachekey_completion(r->pool, "response", apr_pstrcat(r->pool, "user:", c.user->id, NULL), &req,
                                     pe_enhance_system_prompt(req.rtype, sysprompt), rs, nrs);
        const char *hbody;
        apr_size_t hlen;

        /* NB: a hit sends the stored body as it is, and the log gets the text and tokens stored
         * with it: no parse (the body was checked when it was stored). */
        if (key && pe_cache_get(cache, r->pool, key, apr_time_now(), &cached, &clen, NULL) == APR_SUCCESS &&
            pe_cache_reply_unpack(r->pool, cached, clen, &hbody, &hlen, &c.note->response, &c.note->tokens) == 0)
            return send_raw(&c, hbody, hlen, "hit");
    }

    if ((rc = pe_enhance_build_text(r->pool, ec, &req, sysprompt, rs, nrs, &text, &len, &err)) != 0)
        return fail(&c, rc, "VALIDATION_ERROR", NULL, err);
    pe_completion_upstream_conf(r->server, req.stream, &uc);
    if (!pe_completion_handles())
        return fail(&c, HTTP_SERVICE_UNAVAILABLE, "UPSTREAM_ERROR", NULL, "the AI client is not available");
    if (req.stream)
        return run_stream(&c, &uc, text, len, want_usage);
    pe_upstream_post(r->pool, pe_completion_handles(), &uc, text, len, NULL, NULL, &res);
    c.upstream_time = res.elapsed;
    if (res.outcome != PE_UP_OK)
        return upstream_failed(&c, &res);
    if (pe_json_parse(r->pool, res.body.data ? res.body.data : "", res.body.len, &reply, &err) != 0 ||
        !json_is_object(reply)) {
        pe_rlog(r, APLOG_ERR, 0, PE_LOGNO(41012) "the upstream answer is not a JSON object (%" APR_SIZE_T_FMT " bytes)",
                res.body.len);
        return fail(&c, HTTP_BAD_GATEWAY, "UPSTREAM_INVALID", NULL, "the AI service sent an invalid answer");
    }
    note_answer(&c, reply);
    pe_monitor_usage(c.note->model, c.note->r_type, json_object_get(reply, "usage"));
    if (key && json_array_size(json_object_get(reply, "choices")) > 0 &&
        (cached = pe_cache_reply_pack(r->pool, res.body.data, res.body.len, c.note->response, c.note->tokens, &clen)))
        pe_cache_set(cache, key, cached, clen, apr_time_from_msec(pe_srv_cache_ttl_ms(sc)), apr_time_now(), NULL);
    return send_raw(&c, res.body.data, res.body.len, key ? "miss" : "bypass");
}

/* POST /v1/prompt/completions. */
int pe_h_prompt_completions(pe_ctx_t *cx)
{
    return completion(cx, 0);
}

/* POST /v1/chat/completions. */
int pe_h_chat_completions(pe_ctx_t *cx)
{
    return completion(cx, 1);
}

/* The models of the levels the caller may use, each once, in OpenAI's model shape. */
static json_t *models_list(request_rec *r, const pe_req_t *rq)
{
    const pe_enhance_conf_t *ec = pe_completion_enhance_conf(r->pool, r->server);
    pe_level_t max = rq->principal && rq->principal->user ? user_level(rq->principal->user) : PE_LEVEL_LOW;
    json_t *data = pe_json_bind(r->pool, json_array());
    int l, k;

    for (l = PE_LEVEL_LOW; l <= (int)max; l++) {
        const char *m = pe_enhance_level_model(ec, (pe_level_t)l);
        int seen = 0;

        for (k = PE_LEVEL_LOW; k < l; k++)
            if (!strcmp(m, pe_enhance_level_model(ec, (pe_level_t)k)))
                seen = 1;
        if (!seen)
            json_array_append_new(data, json_pack("{s:s,s:s,s:i,s:s,s:s}", "id", m, "object", "model", "created", 0,
                                                  "owned_by", "promptenchanter", "pe_level",
                                                  pe_enhance_level_name((pe_level_t)l)));
    }
    return data;
}

/* GET /v1/models: the models of the levels this account may use, in OpenAI's list shape. */
int pe_h_models(pe_ctx_t *cx)
{
    json_t *o = pe_json_object(cx->r->pool);

    json_object_set_new(o, "object", json_string("list"));
    json_object_set(o, "data", models_list(cx->r, cx->rq));
    return pe_http_send_json(cx->r, HTTP_OK, o);
}

/* GET /v1/models/{id}: one of those models (404 for any other, as OpenAI answers). */
int pe_h_model_get(pe_ctx_t *cx)
{
    const char *id = pe_route_param(cx->match, "id");
    json_t *data = models_list(cx->r, cx->rq), *m;
    size_t i;

    json_array_foreach(data, i, m) {
        if (id && !strcmp(json_string_value(json_object_get(m, "id")), id))
            return pe_http_send_json(cx->r, HTTP_OK, m);
    }
    return pe_http_error(cx->r, HTTP_NOT_FOUND, "MODEL_NOT_FOUND",
                         "The model '%s' does not exist or this account may not use it", id ? id : "");
}
