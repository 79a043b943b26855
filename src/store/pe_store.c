/*
 * pe_store.c: the store's backend-neutral front end: every public operation dispatches
 * through the handle's ops table; the single retry after an I/O failure, ids, principal kinds
 * and the one log line of a failure live here, so that no backend repeats them.
 */
#include "pe_store_backend.h"
#include "pe_logno.h"
#include "pe_metrics.h"

#include <apr_strings.h>
#include <openssl/rand.h>
#include <stdarg.h>
#include <string.h>

struct pe_store_t {
    apr_pool_t *pool; /* results and messages */
    const pe_store_ops_t *ops;
    void *conn;           /* the backend's connection state; NULL: none */
    const char *error;    /* after PE_STORE_EIO */
    const char *conflict; /* after PE_STORE_CONFLICT */
    pe_store_reconnect_fn *reconnect;
    void *baton;
    int retried; /* the current operation's one retry is used */
};

/* ----------------------------------------------------------------------------------------- */
/* For backends and makers */

pe_store_t *pe_store_make(apr_pool_t *p, const pe_store_ops_t *ops, void *conn)
{
    pe_store_t *st = apr_pcalloc(p, sizeof(*st));

    st->pool = p;
    st->ops = ops;
    st->conn = conn;
    return st;
}

void *pe_store_conn(pe_store_t *st)
{
    return st->conn;
}

void pe_store_set_conn(pe_store_t *st, void *conn)
{
    st->conn = conn;
}

apr_pool_t *pe_store_pool(pe_store_t *st)
{
    return st->pool;
}

pe_store_status_e pe_store_fail(pe_store_t *st, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    st->error = apr_pvsprintf(st->pool, fmt, ap);
    va_end(ap);
    return PE_STORE_EIO;
}

pe_store_status_e pe_store_set_conflict(pe_store_t *st, const char *field)
{
    st->conflict = field;
    return PE_STORE_CONFLICT;
}

void pe_store_set_reconnect(pe_store_t *st, pe_store_reconnect_fn *fn, void *baton)
{
    st->reconnect = fn;
    st->baton = baton;
}

/* ----------------------------------------------------------------------------------------- */
/* For callers */

const char *pe_store_error(const pe_store_t *st)
{
    return st ? st->error : "no store";
}

const char *pe_store_conflict(const pe_store_t *st)
{
    return st ? st->conflict : NULL;
}

const char *pe_store_backend_name(const pe_store_t *st)
{
    return st->ops->name;
}

const char *pe_principal_kind_name(pe_principal_kind_e k)
{
    switch (k) {
    case PE_PRINCIPAL_USER:
        return "user";
    case PE_PRINCIPAL_ADMIN:
        return "admin";
    case PE_PRINCIPAL_SUPPORT:
        return "support";
    default:
        return "";
    }
}

pe_principal_kind_e pe_principal_kind_parse(const char *s)
{
    if (!s)
        return PE_PRINCIPAL_NONE;
    if (!strcmp(s, "user"))
        return PE_PRINCIPAL_USER;
    if (!strcmp(s, "admin"))
        return PE_PRINCIPAL_ADMIN;
    if (!strcmp(s, "support"))
        return PE_PRINCIPAL_SUPPORT;
    return PE_PRINCIPAL_NONE;
}

/* 24 hex characters from the CSPRNG. */
const char *pe_store_new_id(apr_pool_t *p)
{
    static const char hx[] = "0123456789abcdef";
    unsigned char b[12];
    char *s = apr_palloc(p, 25);
    int i;

    if (RAND_bytes(b, sizeof(b)) != 1)
        return NULL;
    for (i = 0; i < 12; i++) {
        s[2 * i] = hx[b[i] >> 4];
        s[2 * i + 1] = hx[b[i] & 15];
    }
    s[24] = '\0';
    return s;
}

/* ----------------------------------------------------------------------------------------- */
/* Dispatch */

/* Before an op: clear the last outcome; refuse a handle without a connection or an op. */
static pe_store_status_e call_begin(pe_store_t *st, int has_op, const char *op)
{
    st->error = NULL;
    st->conflict = NULL;
    st->retried = 0;
    if (!has_op)
        return pe_store_fail(st, "the %s backend has no %s operation", st->ops->name, op);
    if (!st->conn)
        return pe_store_fail(st, "no connection to the %s store", st->ops->name);
    return PE_STORE_OK;
}

/*
 * After an I/O failure: may the op run once more, and on which connection? The one retry of
 * an operation runs on the same connection when the backend's reset repairs it (a PostgreSQL
 * connection that failed after a server restart is reset by libpq), else on the connection the
 * maker's reconnect hook gives, which gives the broken one back first (pe_store_backend.h).
 */
static int call_recover(pe_store_t *st, const char *op)
{
    const char *why = st->error ? st->error : "error";
    int ok;

    if (st->retried)
        return 0;
    st->retried = 1;
    ok = !st->ops->reset || st->ops->reset(st) == PE_STORE_OK;
    if (!ok && st->reconnect) {
        /* NB: detached first: nothing uses the broken connection while the hook gives it back */
        st->conn = NULL;
        ok = st->reconnect(st, st->baton) == APR_SUCCESS && st->conn;
    }
    if (ok) {
        pe_clog(PE_LOG_WARNING, 0, PE_LOGNO(30003) "store: %s retried (%s) after: %s", op, st->ops->name, why);
        st->error = NULL;
    }
    return ok;
}

static pe_store_status_e call_end(pe_store_t *st, pe_store_status_e rs, const char *op, int level)
{
    if (rs == PE_STORE_EIO) {
        if (!st->error)
            st->error = "unknown error";
        pe_clog(level, 0, PE_LOGNO(30002) "store: %s failed (%s): %s", op, st->ops->name, st->error);
        pe_met_inc(PE_MET_STORE_ERRORS, 0, 0);
    }
    return rs;
}

/* Add n to a counter (pe_metrics.h) when rs is PE_STORE_OK; returns rs. */
static pe_store_status_e count_ok(pe_store_status_e rs, pe_metric_e metric, apr_int64_t n)
{
    if (rs == PE_STORE_OK)
        pe_met_add(metric, 0, 0, (apr_uint64_t)n);
    return rs;
}

/* Dispatch, one retry after EIO, then return fin (an expression of rs_). NB: GNU ## drops the
 * comma of an op without arguments (ping). */
#define PE_STORE_CALL_FIN(fin, st, op, ...)                                                        \
    do {                                                                                           \
        pe_store_status_e rs_ = call_begin((st), (st)->ops->op != NULL, #op);                      \
        if (rs_ == PE_STORE_OK) {                                                                  \
            rs_ = (st)->ops->op((st), ##__VA_ARGS__);                                              \
            if (rs_ == PE_STORE_EIO && call_recover((st), #op))                                    \
                rs_ = (st)->ops->op((st), ##__VA_ARGS__);                                          \
        }                                                                                          \
        return fin;                                                                                \
    } while (0)

/* The body of every public operation: dispatch, one retry after EIO, one log line (at level). */
#define PE_STORE_CALL_AT(level, st, op, ...) PE_STORE_CALL_FIN(call_end((st), rs_, #op, (level)), st, op, __VA_ARGS__)

#define PE_STORE_CALL(st, op, ...) PE_STORE_CALL_AT(PE_LOG_ERR, st, op, __VA_ARGS__)

/* PE_STORE_CALL that adds n to a counter when the op succeeds. */
#define PE_STORE_CALL_COUNTED(metric, n, st, op, ...)                                              \
    PE_STORE_CALL_FIN(count_ok(call_end((st), rs_, #op, PE_LOG_ERR), (metric), (n)), st, op, __VA_ARGS__)

/* ----------------------------------------------------------------------------------------- */
/* Operations (outputs are cleared first, so a failure leaves them empty on every backend) */

pe_store_status_e pe_store_schema_apply(pe_store_t *st, int *applied)
{
    *applied = 0;
    /* NB: debug: siblings starting together may collide; the maker retries and reports the last. */
    PE_STORE_CALL_AT(PE_LOG_DEBUG, st, schema_apply, applied);
}

pe_store_status_e pe_store_user_create(pe_store_t *st, const pe_user_t *u)
{
    PE_STORE_CALL(st, user_create, u);
}

pe_store_status_e pe_store_user_by_id(pe_store_t *st, const char *id, pe_user_t **out)
{
    *out = NULL;
    PE_STORE_CALL(st, user_by_id, id, out);
}

pe_store_status_e pe_store_user_by_email(pe_store_t *st, const char *email, pe_user_t **out)
{
    *out = NULL;
    PE_STORE_CALL(st, user_by_email, email, out);
}

pe_store_status_e pe_store_user_by_key_digest(pe_store_t *st, const char *digest, pe_user_t **out)
{
    *out = NULL;
    PE_STORE_CALL(st, user_by_key_digest, digest, out);
}

pe_store_status_e pe_store_user_update_profile(pe_store_t *st, const char *id, const char *name, const char *about_me,
                                               const char *hobbies, apr_time_t now)
{
    PE_STORE_CALL(st, user_update_profile, id, name, about_me, hobbies, now);
}

pe_store_status_e pe_store_user_set_api_key(pe_store_t *st, const char *id, const char *digest, const char *prefix,
                                            const char *enc, apr_time_t now)
{
    PE_STORE_CALL(st, user_set_api_key, id, digest, prefix, enc, now);
}

pe_store_status_e pe_store_user_set_email(pe_store_t *st, const char *id, const char *email, int is_verified,
                                          apr_time_t now)
{
    PE_STORE_CALL(st, user_set_email, id, email, is_verified, now);
}

pe_store_status_e pe_store_user_set_password(pe_store_t *st, const char *id, const char *hash, apr_time_t now)
{
    PE_STORE_CALL(st, user_set_password, id, hash, now);
}

pe_store_status_e pe_store_user_login_reserve(pe_store_t *st, const char *id, apr_time_t now, int max,
                                              apr_time_t lock, int *attempt, apr_time_t *locked_until)
{
    *attempt = 0;
    *locked_until = 0;
    PE_STORE_CALL(st, user_login_reserve, id, now, max, lock, attempt, locked_until);
}

pe_store_status_e pe_store_user_login_ok(pe_store_t *st, const char *id, apr_time_t now)
{
    PE_STORE_CALL(st, user_login_ok, id, now);
}

pe_store_status_e pe_store_user_delete(pe_store_t *st, const pe_user_t *u, const char *reason, const char *deleted_by,
                                       apr_time_t now)
{
    PE_STORE_CALL(st, user_delete, u, reason, deleted_by, now);
}

pe_store_status_e pe_store_session_create(pe_store_t *st, const pe_session_t *s)
{
    PE_STORE_CALL(st, session_create, s);
}

pe_store_status_e pe_store_session_by_token(pe_store_t *st, const char *digest, apr_time_t now, pe_session_t **out)
{
    *out = NULL;
    PE_STORE_CALL(st, session_by_token, digest, now, out);
}

pe_store_status_e pe_store_session_rotate(pe_store_t *st, const char *refresh_digest, const char *new_token_digest,
                                          const char *new_refresh_digest, apr_time_t expires_at,
                                          apr_time_t refresh_expires_at, apr_time_t now, pe_session_t **out)
{
    *out = NULL;
    PE_STORE_CALL(st, session_rotate, refresh_digest, new_token_digest, new_refresh_digest, expires_at,
                  refresh_expires_at, now, out);
}

pe_store_status_e pe_store_session_delete(pe_store_t *st, const char *token_digest)
{
    PE_STORE_CALL(st, session_delete, token_digest);
}

pe_store_status_e pe_store_session_delete_all(pe_store_t *st, pe_principal_kind_e kind, const char *principal_id,
                                              const char *keep_id)
{
    PE_STORE_CALL(st, session_delete_all, kind, principal_id, keep_id);
}

pe_store_status_e pe_store_event(pe_store_t *st, const char *event_type, pe_principal_kind_e kind,
                                 const char *principal_id, const char *username, const char *ip, const json_t *details,
                                 const char *severity, apr_time_t now)
{
    PE_STORE_CALL(st, event, event_type, kind, principal_id, username, ip, details, severity, now);
}

pe_store_status_e pe_store_event_count(pe_store_t *st, const char *event_type, const char *principal_id, long *count)
{
    *count = 0;
    PE_STORE_CALL(st, event_count, event_type, principal_id, count);
}

pe_store_status_e pe_store_credits_take(pe_store_t *st, const char *user_id, apr_int64_t today, apr_time_t now)
{
    PE_STORE_CALL_COUNTED(PE_MET_CREDITS_TAKEN, 1, st, credits_take, user_id, today, now);
}

pe_store_status_e pe_store_credits_refund(pe_store_t *st, const char *user_id, apr_int64_t day)
{
    PE_STORE_CALL_COUNTED(PE_MET_CREDITS_REFUNDED, 1, st, credits_refund, user_id, day);
}

pe_store_status_e pe_store_credits_get(pe_store_t *st, const char *user_id, apr_int64_t today, apr_int64_t *limit,
                                       apr_int64_t *reset)
{
    *limit = *reset = 0;
    PE_STORE_CALL(st, credits_get, user_id, today, limit, reset);
}

pe_store_status_e pe_store_credits_take_n(pe_store_t *st, const char *user_id, apr_int64_t n, apr_int64_t today,
                                          apr_time_t now)
{
    if (n <= 0)
        return PE_STORE_OK;
    PE_STORE_CALL_COUNTED(PE_MET_CREDITS_TAKEN, n, st, credits_take_n, user_id, n, today, now);
}

pe_store_status_e pe_store_credits_refund_n(pe_store_t *st, const char *user_id, apr_int64_t n, apr_int64_t day)
{
    if (n <= 0)
        return PE_STORE_OK;
    PE_STORE_CALL_COUNTED(PE_MET_CREDITS_REFUNDED, n, st, credits_refund_n, user_id, n, day);
}

pe_store_status_e pe_store_msglog_insert(pe_store_t *st, const pe_message_log_t *recs, int n)
{
    if (n <= 0)
        return PE_STORE_OK;
    PE_STORE_CALL(st, msglog_insert, recs, n);
}

pe_store_status_e pe_store_msglog_count(pe_store_t *st, const char *user_id, long *count)
{
    *count = 0;
    PE_STORE_CALL(st, msglog_count, user_id, count);
}

pe_store_status_e pe_store_system_prompt_get(pe_store_t *st, const char *r_type, const char **prompt)
{
    *prompt = NULL;
    PE_STORE_CALL(st, system_prompt_get, r_type, prompt);
}

pe_store_status_e pe_store_system_prompt_set(pe_store_t *st, const char *r_type, const char *prompt,
                                             const char *updated_by, apr_time_t now)
{
    PE_STORE_CALL(st, system_prompt_set, r_type, prompt, updated_by, now);
}

pe_store_status_e pe_store_iplist_active(pe_store_t *st, pe_iplist_e which, apr_time_t now, apr_array_header_t **out)
{
    *out = apr_array_make(st->pool, 1, sizeof(pe_ipentry_t));
    PE_STORE_CALL(st, iplist_active, which, now, out);
}

pe_store_status_e pe_store_iplist_add(pe_store_t *st, pe_iplist_e which, const pe_ipentry_t *e)
{
    PE_STORE_CALL(st, iplist_add, which, e);
}

pe_store_status_e pe_store_iplist_remove(pe_store_t *st, pe_iplist_e which, apr_int64_t id)
{
    PE_STORE_CALL(st, iplist_remove, which, id);
}

pe_store_status_e pe_store_staff_create(pe_store_t *st, const pe_staff_t *s)
{
    PE_STORE_CALL(st, staff_create, s);
}

pe_store_status_e pe_store_staff_by_id(pe_store_t *st, pe_principal_kind_e kind, const char *id, pe_staff_t **out)
{
    *out = NULL;
    PE_STORE_CALL(st, staff_by_id, kind, id, out);
}

pe_store_status_e pe_store_staff_by_username(pe_store_t *st, pe_principal_kind_e kind, const char *username,
                                             pe_staff_t **out)
{
    *out = NULL;
    PE_STORE_CALL(st, staff_by_username, kind, username, out);
}

pe_store_status_e pe_store_staff_list(pe_store_t *st, pe_principal_kind_e kind, apr_array_header_t **out)
{
    *out = apr_array_make(st->pool, 4, sizeof(pe_staff_t *));
    PE_STORE_CALL(st, staff_list, kind, out);
}

pe_store_status_e pe_store_staff_set_password(pe_store_t *st, pe_principal_kind_e kind, const char *id,
                                              const char *hash, apr_time_t now)
{
    PE_STORE_CALL(st, staff_set_password, kind, id, hash, now);
}

pe_store_status_e pe_store_staff_login_reserve(pe_store_t *st, pe_principal_kind_e kind, const char *id,
                                               apr_time_t now, int max, apr_time_t lock, int *attempt,
                                               apr_time_t *locked_until)
{
    *attempt = 0;
    *locked_until = 0;
    PE_STORE_CALL(st, staff_login_reserve, kind, id, now, max, lock, attempt, locked_until);
}

pe_store_status_e pe_store_staff_login_ok(pe_store_t *st, pe_principal_kind_e kind, const char *id, apr_time_t now)
{
    PE_STORE_CALL(st, staff_login_ok, kind, id, now);
}

pe_store_status_e pe_store_staff_set_active(pe_store_t *st, pe_principal_kind_e kind, const char *id, int active,
                                            apr_time_t now)
{
    PE_STORE_CALL(st, staff_set_active, kind, id, active ? 1 : 0, now);
}

pe_store_status_e pe_store_staff_delete(pe_store_t *st, pe_principal_kind_e kind, const char *id)
{
    PE_STORE_CALL(st, staff_delete, kind, id);
}

pe_store_status_e pe_store_user_update(pe_store_t *st, const char *id, const pe_user_change_t *ch, apr_time_t now)
{
    PE_STORE_CALL(st, user_update, id, ch, now);
}

pe_store_status_e pe_store_user_list(pe_store_t *st, const pe_user_query_t *q, apr_array_header_t **out, long *total)
{
    *out = apr_array_make(st->pool, 16, sizeof(pe_user_t *));
    *total = 0;
    PE_STORE_CALL(st, user_list, q, out, total);
}

pe_store_status_e pe_store_event_list(pe_store_t *st, const char *event_type, const char *severity,
                                      const char *principal_id, long offset, long limit, apr_array_header_t **out,
                                      long *total)
{
    *out = apr_array_make(st->pool, 16, sizeof(pe_event_t *));
    *total = 0;
    PE_STORE_CALL(st, event_list, event_type, severity, principal_id, offset, limit, out, total);
}

pe_store_status_e pe_store_msglog_list(pe_store_t *st, const char *user_id, long offset, long limit,
                                       apr_array_header_t **out, long *total)
{
    *out = apr_array_make(st->pool, 16, sizeof(pe_message_log_t *));
    *total = 0;
    PE_STORE_CALL(st, msglog_list, user_id, offset, limit, out, total);
}

pe_store_status_e pe_store_system_prompt_reset(pe_store_t *st, const char *r_type)
{
    PE_STORE_CALL(st, system_prompt_reset, r_type);
}

pe_store_status_e pe_store_msglog_usage(pe_store_t *st, apr_time_t since, long *requests, apr_int64_t *tokens)
{
    *requests = 0;
    *tokens = 0;
    PE_STORE_CALL(st, msglog_usage, since, requests, tokens);
}

pe_store_status_e pe_store_msglog_top_users(pe_store_t *st, apr_time_t since, int limit, apr_array_header_t **out)
{
    *out = apr_array_make(st->pool, limit > 0 ? limit : 1, sizeof(pe_usage_row_t *));
    PE_STORE_CALL(st, msglog_top_users, since, limit, out);
}

pe_store_status_e pe_store_ping(pe_store_t *st)
{
    PE_STORE_CALL_FIN(call_end((st), rs_, "ping", PE_LOG_DEBUG), st, ping);
}

pe_store_status_e pe_store_usage(pe_store_t *st, const char *user_id, apr_time_t since, apr_time_t until,
                                 pe_usage_t *out)
{
    memset(out, 0, sizeof(*out));
    out->days = apr_array_make(st->pool, 8, sizeof(pe_usage_day_t));
    out->r_types = apr_array_make(st->pool, 8, sizeof(pe_usage_rtype_t));
    PE_STORE_CALL(st, usage, user_id, since, until, out);
}

pe_store_status_e pe_store_email_send_take(pe_store_t *st, const char *user_id, apr_int64_t day, int limit,
                                           int *sends)
{
    *sends = 0;
    PE_STORE_CALL(st, email_send_take, user_id, day, limit, sends);
}

pe_store_status_e pe_store_email_send_release(pe_store_t *st, const char *user_id, apr_int64_t day)
{
    PE_STORE_CALL(st, email_send_release, user_id, day);
}

pe_store_status_e pe_store_email_code_set(pe_store_t *st, const char *user_id, const char *digest,
                                          apr_time_t expires_at)
{
    PE_STORE_CALL(st, email_code_set, user_id, digest, expires_at);
}

pe_store_status_e pe_store_email_code_attempt(pe_store_t *st, const char *user_id, apr_time_t now, int max,
                                              const char **digest, int *attempts)
{
    *digest = NULL;
    *attempts = 0;
    PE_STORE_CALL(st, email_code_attempt, user_id, now, max, digest, attempts);
}

pe_store_status_e pe_store_email_code_use(pe_store_t *st, const char *user_id, const char *email,
                                          const char *digest, apr_time_t now)
{
    PE_STORE_CALL(st, email_code_use, user_id, email, digest, now);
}

pe_store_status_e pe_store_api_usage_insert(pe_store_t *st, const pe_api_usage_t *recs, int n)
{
    if (n <= 0)
        return PE_STORE_OK;
    PE_STORE_CALL(st, api_usage_insert, recs, n);
}

pe_store_status_e pe_store_api_usage_purge(pe_store_t *st, apr_time_t before, int limit, long *removed)
{
    *removed = 0;
    if (limit <= 0)
        return PE_STORE_OK;
    PE_STORE_CALL(st, api_usage_purge, before, limit, removed);
}

pe_store_status_e pe_store_api_usage_sum(pe_store_t *st, const char *user_id, apr_time_t since, apr_time_t until,
                                         pe_api_usage_sum_t *out)
{
    memset(out, 0, sizeof(*out));
    PE_STORE_CALL(st, api_usage_sum, user_id, since, until, out);
}

pe_store_status_e pe_store_api_usage_get(pe_store_t *st, const char *request_id, pe_api_usage_t **out)
{
    *out = NULL;
    PE_STORE_CALL(st, api_usage_get, request_id, out);
}
