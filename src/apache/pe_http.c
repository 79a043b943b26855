/*
 * pe_http.c: the request context, JSON responses, the error envelope and request bodies.
 */
#include "pe_config.h"
#include "pe_buf.h"
#include "pe_hooks.h"
#include "pe_http.h"
#include "pe_log.h"
#include "pe_util.h"

#include "http_protocol.h"
#include "http_request.h"
#include "util_filter.h"
#include "http_core.h"
#include <apr_strings.h>

/* A request id: mod_unique_id's when loaded, else 16 random bytes in base64url (22 chars). */
static const char *pe_request_id(request_rec *r)
{
    const char *id = apr_table_get(r->subprocess_env, "UNIQUE_ID");
    unsigned char b[16];

    if (id && *id)
        return id;
    ap_random_insecure_bytes(b, sizeof(b));
    return pe_base64url(r->pool, b, sizeof(b));
}

/* The main request's context; created once, which also sets X-Request-ID. */
pe_req_t *pe_req_get(request_rec *r)
{
    request_rec *m = r;
    pe_req_t *rq;

    while (m->main)
        m = m->main;
    while (m->prev)
        m = m->prev;
    rq = ap_get_module_config(m->request_config, &promptenchanter_module);
    if (!rq) {
        rq = apr_pcalloc(m->pool, sizeof(*rq));
        rq->started = apr_time_now();
        rq->request_id = pe_request_id(m);
        if (!m->log_id)
            m->log_id = rq->request_id;
        ap_set_module_config(m->request_config, &promptenchanter_module, rq);
        /* err_headers_out: the header survives error responses (set once: httpd moves it to
         * headers_out when it sends an error, and a second copy would be sent too). */
        apr_table_setn(m->err_headers_out, "X-Request-ID", rq->request_id);
    }
    return rq;
}

/* The main request's context when one was made (never makes one). */
pe_req_t *pe_req_peek(request_rec *r)
{
    while (r->main)
        r = r->main;
    while (r->prev)
        r = r->prev;
    return ap_get_module_config(r->request_config, &promptenchanter_module);
}

/* Send a JSON value. */
int pe_http_send_json(request_rec *r, int status, const json_t *j)
{
    size_t len;
    char *body = pe_json_dump(r->pool, j, &len);

    r->status = status;
    ap_set_content_type(r, "application/json; charset=utf-8");
    apr_table_setn(r->headers_out, "X-Content-Type-Options", "nosniff");
    apr_table_setn(r->headers_out, "Cache-Control", "no-store");
    ap_set_content_length(r, (apr_off_t)len);
    if (!r->header_only)
        ap_rwrite(body, (int)len, r);
    return OK;
}

/* Is r on an OpenAI-compatible route (the openai group, as this location serves it)? */
int pe_http_openai_route(request_rec *r)
{
    pe_req_t *rq = pe_req_get(r);

    if (!rq->shape) {
        unsigned groups = PE_G_OPENAI & (unsigned)pe_dir_api_groups(pe_config_dir(r));
        const char *path = groups ? pe_handler_route_path(r) : NULL;
        pe_route_match_t m;

        rq->shape = path && pe_route_match(r->pool, pe_routes, pe_routes_count, groups,
                                           pe_route_method_bit(r->method), path, &m) != PE_ROUTE_NOT_FOUND
                        ? 2
                        : 1;
    }
    return rq->shape == 2;
}

/*
 * The body of an error answer, in the route's shape, and the retry advice in `headers`:
 * x-should-retry: false where retrying the same request cannot help (the official OpenAI SDKs
 * honour it before Retry-After), unless a handler already decided.
 */
static json_t *error_body(request_rec *r, apr_table_t *headers, int status, const char *code, const char *msg,
                          const json_t *extra)
{
    pe_req_t *rq = pe_req_get(r);

    if (pe_json_error_retry(status, code) == 0 && !apr_table_get(r->err_headers_out, "x-should-retry") &&
        !apr_table_get(r->headers_out, "x-should-retry"))
        apr_table_setn(headers, "x-should-retry", "false");
    if (pe_http_openai_route(r))
        return pe_json_error_openai(r->pool, msg, pe_json_error_openai_type(status, code), code,
                                    status == 400 || status == 422 ? pe_json_error_param(r->pool, msg) : NULL,
                                    rq->request_id, extra);
    return pe_json_error(r->pool, msg, code, rq->request_id, extra);
}

/* Send the error answer (the envelope, or OpenAI's shape on its routes). */
int pe_http_error_ex(request_rec *r, int status, const char *code, const json_t *extra, const char *fmt, ...)
{
    va_list ap;
    const char *msg;

    va_start(ap, fmt);
    msg = apr_pvsprintf(r->pool, fmt, ap);
    va_end(ap);
    pe_rlog(r, APLOG_DEBUG, 0, PE_LOGNO(00101) "%d %s: %s", status, code, msg);
    pe_http_send_json(r, status, error_body(r, r->err_headers_out, status, code, msg, extra));
    return DONE;
}

/* application/json, with or without parameters such as charset. */
static int pe_is_json_type(const char *ct)
{
    apr_size_t n = sizeof("application/json") - 1;

    if (!ct || strncasecmp(ct, "application/json", n) != 0)
        return 0;
    ct += n;
    while (*ct == ' ' || *ct == '\t')
        ct++;
    return *ct == '\0' || *ct == ';';
}

/* Read, bound and parse a JSON object body; see pe_http.h. */
int pe_http_read_json(request_rec *r, json_t **out)
{
    pe_dir_conf_t *dc = pe_config_dir(r);
    apr_off_t max = pe_dir_max_body(dc);
    const char *cl = apr_table_get(r->headers_in, "Content-Length");
    apr_bucket_brigade *bb;
    pe_buf_t buf;
    const char *err;
    int seen_eos = 0;

    *out = NULL;
    if (!pe_is_json_type(apr_table_get(r->headers_in, "Content-Type")))
        return pe_http_error(r, HTTP_UNSUPPORTED_MEDIA_TYPE, PE_E_UNSUPPORTED_MEDIA,
                             "Content-Type must be application/json");
    if (cl && apr_atoi64(cl) > max) {
        /* Refuse before reading; closing the connection spares reading the rest. */
        r->connection->keepalive = AP_CONN_CLOSE;
        return pe_http_error(r, HTTP_REQUEST_ENTITY_TOO_LARGE, PE_E_BODY_TOO_LARGE,
                             "request body is larger than %" APR_OFF_T_FMT " bytes", max);
    }
    pe_buf_init(&buf, r->pool, (apr_size_t)max);
    bb = apr_brigade_create(r->pool, r->connection->bucket_alloc);
    /* NB: read until EOS whatever the framing: for chunked bodies r->remaining is 0. */
    while (!seen_eos) {
        apr_bucket *b;
        apr_status_t rv = ap_get_brigade(r->input_filters, bb, AP_MODE_READBYTES, APR_BLOCK_READ,
                                         HUGE_STRING_LEN);

        if (rv != APR_SUCCESS) {
            int st = ap_map_http_request_error(rv, HTTP_BAD_REQUEST);

            r->connection->keepalive = AP_CONN_CLOSE;
            if (st == HTTP_REQUEST_ENTITY_TOO_LARGE)
                return pe_http_error(r, st, PE_E_BODY_TOO_LARGE, "request body is too large");
            if (st == HTTP_REQUEST_TIME_OUT)
                return pe_http_error(r, st, PE_E_TIMEOUT, "timed out reading the request body");
            return pe_http_error(r, HTTP_BAD_REQUEST, PE_E_BAD_REQUEST, "the request body could not be read");
        }
        for (b = APR_BRIGADE_FIRST(bb); b != APR_BRIGADE_SENTINEL(bb); b = APR_BUCKET_NEXT(b)) {
            const char *data;
            apr_size_t n;

            if (APR_BUCKET_IS_EOS(b)) {
                seen_eos = 1;
                break;
            }
            if (APR_BUCKET_IS_METADATA(b))
                continue;
            if (apr_bucket_read(b, &data, &n, APR_BLOCK_READ) != APR_SUCCESS) {
                r->connection->keepalive = AP_CONN_CLOSE;
                return pe_http_error(r, HTTP_BAD_REQUEST, PE_E_BAD_REQUEST, "the request body could not be read");
            }
            if (pe_buf_append(&buf, data, n) != APR_SUCCESS) {
                r->connection->keepalive = AP_CONN_CLOSE;
                return pe_http_error(r, HTTP_REQUEST_ENTITY_TOO_LARGE, PE_E_BODY_TOO_LARGE,
                                     "request body is larger than %" APR_OFF_T_FMT " bytes", max);
            }
        }
        apr_brigade_cleanup(bb);
    }
    if (pe_json_parse(r->pool, buf.data ? buf.data : "", buf.len, out, &err) != 0)
        return pe_http_error(r, HTTP_BAD_REQUEST, PE_E_INVALID_JSON, "%s", err);
    if (!json_is_object(*out)) {
        *out = NULL;
        return pe_http_error(r, HTTP_BAD_REQUEST, PE_E_INVALID_JSON, "the request body must be a JSON object");
    }
    return OK;
}

/* Note an error for a hook that returns a status; the error filter renders it. */
int pe_http_fail(request_rec *r, int status, const char *code, const json_t *extra, const char *fmt, ...)
{
    pe_req_t *rq = pe_req_get(r);
    va_list ap;

    va_start(ap, fmt);
    rq->err_msg = apr_pvsprintf(r->pool, fmt, ap);
    va_end(ap);
    rq->err_code = code;
    rq->err_status = status;
    rq->err_extra = extra ? pe_json_bind(r->pool, json_deep_copy(extra)) : NULL;
    pe_rlog(r, APLOG_DEBUG, 0, PE_LOGNO(00102) "%d %s: %s", status, code, rq->err_msg);
    return status;
}

/* UTC ISO-8601 "2026-11-23T18:40:00.123456Z", or null for 0. */
json_t *pe_http_time(apr_pool_t *p, apr_time_t t)
{
    apr_time_exp_t x;

    if (t <= 0)
        return json_null();
    apr_time_exp_gmt(&x, t);
    return json_string(apr_psprintf(p, "%04d-%02d-%02dT%02d:%02d:%02d.%06dZ", x.tm_year + 1900, x.tm_mon + 1,
                                    x.tm_mday, x.tm_hour, x.tm_min, x.tm_sec, x.tm_usec));
}

/* The generic message and code for a status httpd produced itself. */
static void pe_http_default_error(int status, const char **code, const char **msg)
{
    switch (status) {
    case HTTP_BAD_REQUEST: *code = PE_E_BAD_REQUEST; *msg = "bad request"; break;
    case HTTP_UNAUTHORIZED: *code = "AUTH_REQUIRED"; *msg = "Authentication credentials required"; break;
    case HTTP_FORBIDDEN: *code = "FORBIDDEN"; *msg = "access denied"; break;
    case HTTP_NOT_FOUND: *code = PE_E_NOT_FOUND; *msg = "no such route"; break;
    case HTTP_METHOD_NOT_ALLOWED: *code = PE_E_METHOD; *msg = "method not allowed"; break;
    case HTTP_REQUEST_TIME_OUT: *code = PE_E_TIMEOUT; *msg = "timed out reading the request"; break;
    case HTTP_REQUEST_ENTITY_TOO_LARGE: *code = PE_E_BODY_TOO_LARGE; *msg = "request body is too large"; break;
    case HTTP_SERVICE_UNAVAILABLE: *code = "SERVICE_UNAVAILABLE"; *msg = "service temporarily unavailable"; break;
    default:
        *code = status >= 500 ? PE_E_INTERNAL : PE_E_BAD_REQUEST;
        *msg = status >= 500 ? "internal server error" : "request failed";
    }
}

#define PE_ERROR_FILTER "PE_JSON_ERROR"

/*
 * The error filter: httpd writes its HTML error page (ap_send_error_response); this replaces
 * the body with the JSON envelope, using what the hook noted (pe_http_fail) when it did.
 */
static apr_status_t pe_error_filter(ap_filter_t *f, apr_bucket_brigade *bb)
{
    request_rec *r = f->r;
    apr_bucket *b, *next;

    if (!f->ctx) {
        pe_req_t *rq = pe_req_get(r);
        const char *code = rq->err_code, *msg = rq->err_msg;
        size_t len;
        char *body;

        /* An authenticated caller that a Require provider refused: mod_authz_core answers 401
         * unless AuthzSendForbiddenOnFailure is On, but nothing is gained by authenticating
         * again, so send the 403 the provider meant (the status line is not written yet). */
        if (r->status == HTTP_UNAUTHORIZED && rq->err_status == HTTP_FORBIDDEN && rq->principal) {
            r->status = HTTP_FORBIDDEN;
            r->status_line = NULL;
            apr_table_unset(r->headers_out, "WWW-Authenticate");
        }
        if (!code || (rq->err_status && rq->err_status != r->status))
            pe_http_default_error(r->status, &code, &msg);
        body = pe_json_dump(r->pool, error_body(r, r->headers_out, r->status, code, msg, rq->err_extra), &len);
        f->ctx = body;
        ap_set_content_type(r, "application/json; charset=utf-8");
        apr_table_unset(r->headers_out, "Content-Length");
        apr_table_setn(r->headers_out, "X-Content-Type-Options", "nosniff");
        apr_table_setn(r->headers_out, "Cache-Control", "no-store");
        APR_BRIGADE_INSERT_HEAD(bb, apr_bucket_pool_create(body, len, r->pool, f->c->bucket_alloc));
        b = APR_BUCKET_NEXT(APR_BRIGADE_FIRST(bb));
    }
    else {
        b = APR_BRIGADE_FIRST(bb);
    }
    /* Drop httpd's page; keep metadata (EOS, flush). */
    for (; b != APR_BRIGADE_SENTINEL(bb); b = next) {
        next = APR_BUCKET_NEXT(b);
        if (!APR_BUCKET_IS_METADATA(b))
            apr_bucket_delete(b);
    }
    return ap_pass_brigade(f->next, bb);
}

int pe_http_handler_is_ours(request_rec *r)
{
    core_dir_config *cd = ap_get_core_module_config(r->per_dir_config);
    const char *h = r->handler;

    /* NB: SetHandler sets expr_handler; core's fixups evaluate it into r->handler ("none"
     * leaves r->handler alone), so before fixups it has to be evaluated here. */
    if (cd && cd->expr_handler) {
        const char *err = NULL, *v = ap_expr_str_exec(r, cd->expr_handler, &err);

        if (!err && v && strcmp(v, "none") != 0)
            h = v;
    }
    else if (cd && cd->handler && strcmp(cd->handler, "none") != 0) {
        h = cd->handler;
    }
    return h && strcmp(h, "promptenchanter") == 0;
}

/* Is r served by this module (its context exists, or the location's handler is ours)? */
static int pe_http_is_ours(request_rec *r)
{
    request_rec *m = r;

    while (m->main)
        m = m->main;
    while (m->prev)
        m = m->prev;
    if (ap_get_module_config(m->request_config, &promptenchanter_module))
        return 1;
    return pe_http_handler_is_ours(r) || pe_errloc_is_ours(r);
}

void pe_http_insert_error_filter(request_rec *r)
{
    if (pe_http_is_ours(r)) {
        pe_req_get(r);
        ap_add_output_filter(PE_ERROR_FILTER, NULL, r, r->connection);
    }
}

void pe_http_register_filters(void)
{
    ap_register_output_filter(PE_ERROR_FILTER, pe_error_filter, NULL, AP_FTYPE_CONTENT_SET);
}
