/*
 * pe_http.h: request plumbing for handlers: the request context, JSON responses,
 * the one error envelope and body reading with a limit.
 */
#ifndef PE_HTTP_H
#define PE_HTTP_H

#include "httpd.h"
#include "pe_json.h"
#include "pe_route.h"

/* Error codes carried in "error_code" (docs/api.md lists them). */
#define PE_E_BAD_REQUEST "BAD_REQUEST"
#define PE_E_INVALID_JSON "INVALID_JSON"
#define PE_E_BODY_TOO_LARGE "BODY_TOO_LARGE"
#define PE_E_UNSUPPORTED_MEDIA "UNSUPPORTED_MEDIA_TYPE"
#define PE_E_NOT_FOUND "NOT_FOUND"
#define PE_E_METHOD "METHOD_NOT_ALLOWED"
#define PE_E_INTERNAL "INTERNAL_ERROR"
#define PE_E_TIMEOUT "REQUEST_TIMEOUT"

struct pe_principal_t;

/** Per-request state, kept in r->request_config of the main request. */
typedef struct pe_req_t {
    const char *request_id; /* also r->log_id and the X-Request-ID header */
    apr_time_t started;
    int auth_done;                     /* the bearer was looked at (principal may be NULL) */
    struct pe_principal_t *principal;  /* who is calling, once authenticated */
    struct pe_store_t *store;          /* the request's store handle, made on first use */
    /* An error a hook returned as a status: the error filter renders it as JSON. */
    const char *err_code, *err_msg;
    json_t *err_extra;
    int err_status; /* the status the hook meant (httpd may answer another, see the filter) */
    int body_sent; /* the handler wrote its own response */
    struct pe_access_req_t *access; /* the access layer's decisions (rate-limit headers) */
    int shape; /* error shape of this route: 0 not known yet, 1 the envelope, 2 OpenAI's */
    /* The route the handler dispatched to, and the request_rec it matched for (log_transaction
     * reuses it instead of matching the table again; another request_rec, e.g. after an internal
     * redirect, matches anew). */
    const pe_route_t *route;
    const void *route_for;
    apr_int64_t tokens; /* tokens a route without a completion note used (batch): the API-usage record */
} pe_req_t;

/** The request context, created on first use (which also sets X-Request-ID). */
pe_req_t *pe_req_get(request_rec *r);

/** The request context if it exists (never creates it), else NULL. */
pe_req_t *pe_req_find(request_rec *r);

/** What a route handler receives. */
typedef struct pe_ctx_t {
    request_rec *r;
    pe_req_t *rq;
    const pe_route_match_t *match;
} pe_ctx_t;

/** A route handler: writes its response and returns OK (or DONE after an error it sent). */
typedef int pe_handler_fn(pe_ctx_t *cx);

/**
 * Note an error for a hook that returns a status instead of writing a body (check_authn,
 * authz, access_checker); the error filter renders it as the envelope. Returns status.
 */
int pe_http_fail(request_rec *r, int status, const char *code, const json_t *extra, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

/**
 * Whether this module is r's content handler: `SetHandler promptenchanter` (evaluated as core's
 * fixups will, since before them r->handler is not set yet), or a handler set otherwise.
 * Usable in any hook, also before fixups (access_checker).
 */
int pe_http_handler_is_ours(request_rec *r);

/**
 * Whether r is on a route of the openai group (/v1/chat/completions, /v1/models...) that this
 * location serves: its errors take OpenAI's shape ({"error":{message,type,code,param}}).
 */
int pe_http_openai_route(request_rec *r);

/** insert_error_filter hook: httpd-made error pages of PromptEnchanter locations become JSON. */
void pe_http_insert_error_filter(request_rec *r);

/**
 * Whether a request that httpd's core refused before mapping it (so it still has the server's
 * default configuration) lies in a section with SetHandler promptenchanter, judged from its URI
 * path (src/apache/pe_errloc.c). 0 when it was mapped, or its request line could not be read.
 */
int pe_errloc_is_ours(request_rec *r);

/** Register the error filter (register_hooks). */
void pe_http_register_filters(void);

/** UTC ISO-8601 with microseconds and Z; JSON null for 0. */
json_t *pe_http_time(apr_pool_t *p, apr_time_t t);

/** Send j with status; JSON headers, Content-Length. Returns OK. */
int pe_http_send_json(request_rec *r, int status, const json_t *j);

/** Send the error envelope; extra (may be NULL) is merged into details. Returns DONE. */
int pe_http_error_ex(request_rec *r, int status, const char *code, const json_t *extra, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
#define pe_http_error(r, status, code, ...) pe_http_error_ex((r), (status), (code), NULL, __VA_ARGS__)

/**
 * Read the request body as a JSON object, enforcing Content-Type (415), PEMaxBodySize (413,
 * also for chunked bodies, counted while streaming) and strict JSON (400).
 * @return OK with *out set, or DONE after the error response was sent
 */
int pe_http_read_json(request_rec *r, json_t **out);

#endif
