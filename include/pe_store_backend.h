/*
 * pe_store_backend.h: what a store backend implements, and the helpers it may use.
 * For backends (src/store/pe_store_<name>*.c) and for the glue that makes their handles only;
 * callers of the store include pe_store.h. No httpd, apr_dbd or libmongoc header here.
 *
 * A backend is a const pe_store_ops_t: one function per operation of pe_store.h, with exactly
 * the parameter list of the public function. The front end (src/store/pe_store.c) clears the
 * error, refuses a handle without a connection, calls the op, retries once after
 * PE_STORE_EIO (see pe_store.h), and logs the failure once; an op does none of that itself.
 * An op reports a failure with pe_store_fail() and a taken unique value with
 * pe_store_set_conflict(); it allocates results in pe_store_pool(st). Every op must keep the
 * concurrency semantics documented in pe_store.h with one atomic write where it says so
 * (conditional update, find-and-modify; never read-then-write).
 */
#ifndef PE_STORE_BACKEND_H
#define PE_STORE_BACKEND_H

#include "pe_store.h"

#include <apr_pools.h>

typedef struct pe_store_ops_t {
    const char *name; /* "sqlite3", "pgsql", "mongodb": the backend as logs and tests name it */

    /* Lifecycle (optional, NULL when not needed). */
    /**
     * After an op failed with PE_STORE_EIO: make the connection usable again in place (drop
     * per-connection caches, reset a broken link). PE_STORE_OK: the op is retried on this
     * connection; anything else: the handle's reconnect hook (if any) is asked for another.
     * NULL: the op is retried on the same connection as it is.
     */
    pe_store_status_e (*reset)(pe_store_t *st);

    /* Schema (SQL) or collections and indexes (MongoDB) */
    pe_store_status_e (*schema_apply)(pe_store_t *st, int *applied);

    /* Users */
    pe_store_status_e (*user_create)(pe_store_t *st, const pe_user_t *u);
    pe_store_status_e (*user_by_id)(pe_store_t *st, const char *id, pe_user_t **out);
    pe_store_status_e (*user_by_email)(pe_store_t *st, const char *email, pe_user_t **out);
    pe_store_status_e (*user_by_key_digest)(pe_store_t *st, const char *digest, pe_user_t **out);
    pe_store_status_e (*user_update_profile)(pe_store_t *st, const char *id, const char *name, const char *about_me,
                                             const char *hobbies, apr_time_t now);
    pe_store_status_e (*user_set_api_key)(pe_store_t *st, const char *id, const char *digest, const char *prefix,
                                          const char *enc, apr_time_t now);
    pe_store_status_e (*user_set_email)(pe_store_t *st, const char *id, const char *email, int is_verified,
                                        apr_time_t now);
    pe_store_status_e (*user_set_password)(pe_store_t *st, const char *id, const char *hash, apr_time_t now);
    pe_store_status_e (*user_login_reserve)(pe_store_t *st, const char *id, apr_time_t now, int max,
                                            apr_time_t lock, int *attempt, apr_time_t *locked_until);
    pe_store_status_e (*user_login_ok)(pe_store_t *st, const char *id, apr_time_t now);
    pe_store_status_e (*user_delete)(pe_store_t *st, const pe_user_t *u, const char *reason, const char *deleted_by,
                                     apr_time_t now);

    /* Sessions */
    pe_store_status_e (*session_create)(pe_store_t *st, const pe_session_t *s);
    pe_store_status_e (*session_by_token)(pe_store_t *st, const char *digest, apr_time_t now, pe_session_t **out);
    pe_store_status_e (*session_rotate)(pe_store_t *st, const char *refresh_digest, const char *new_token_digest,
                                        const char *new_refresh_digest, apr_time_t expires_at,
                                        apr_time_t refresh_expires_at, apr_time_t now, pe_session_t **out);
    pe_store_status_e (*session_delete)(pe_store_t *st, const char *token_digest);
    pe_store_status_e (*session_delete_all)(pe_store_t *st, pe_principal_kind_e kind, const char *principal_id,
                                            const char *keep_id);

    /* Security events */
    pe_store_status_e (*event)(pe_store_t *st, const char *event_type, pe_principal_kind_e kind,
                               const char *principal_id, const char *username, const char *ip, const json_t *details,
                               const char *severity, apr_time_t now);
    pe_store_status_e (*event_count)(pe_store_t *st, const char *event_type, const char *principal_id, long *count);

    /* Credits */
    pe_store_status_e (*credits_take)(pe_store_t *st, const char *user_id, apr_int64_t today, apr_time_t now);
    pe_store_status_e (*credits_refund)(pe_store_t *st, const char *user_id, apr_int64_t day);
    pe_store_status_e (*credits_get)(pe_store_t *st, const char *user_id, apr_int64_t today, apr_int64_t *limit,
                                     apr_int64_t *reset);
    pe_store_status_e (*credits_take_n)(pe_store_t *st, const char *user_id, apr_int64_t n, apr_int64_t today,
                                        apr_time_t now);
    pe_store_status_e (*credits_refund_n)(pe_store_t *st, const char *user_id, apr_int64_t n, apr_int64_t day);

    /* Conversation logs */
    pe_store_status_e (*msglog_insert)(pe_store_t *st, const pe_message_log_t *recs, int n);
    pe_store_status_e (*msglog_count)(pe_store_t *st, const char *user_id, long *count);

    /* System prompts */
    pe_store_status_e (*system_prompt_get)(pe_store_t *st, const char *r_type, const char **prompt);
    pe_store_status_e (*system_prompt_set)(pe_store_t *st, const char *r_type, const char *prompt,
                                           const char *updated_by, apr_time_t now);

    /* Address lists */
    pe_store_status_e (*iplist_active)(pe_store_t *st, pe_iplist_e which, apr_time_t now, apr_array_header_t **out);
    pe_store_status_e (*iplist_add)(pe_store_t *st, pe_iplist_e which, const pe_ipentry_t *e);
    pe_store_status_e (*iplist_remove)(pe_store_t *st, pe_iplist_e which, apr_int64_t id);

    /* Operators */
    pe_store_status_e (*staff_create)(pe_store_t *st, const pe_staff_t *s);
    pe_store_status_e (*staff_by_id)(pe_store_t *st, pe_principal_kind_e kind, const char *id, pe_staff_t **out);
    pe_store_status_e (*staff_by_username)(pe_store_t *st, pe_principal_kind_e kind, const char *username,
                                           pe_staff_t **out);
    pe_store_status_e (*staff_list)(pe_store_t *st, pe_principal_kind_e kind, apr_array_header_t **out);
    pe_store_status_e (*staff_set_password)(pe_store_t *st, pe_principal_kind_e kind, const char *id,
                                            const char *hash, apr_time_t now);
    pe_store_status_e (*staff_login_reserve)(pe_store_t *st, pe_principal_kind_e kind, const char *id, apr_time_t now,
                                             int max, apr_time_t lock, int *attempt, apr_time_t *locked_until);
    pe_store_status_e (*staff_login_ok)(pe_store_t *st, pe_principal_kind_e kind, const char *id, apr_time_t now);
    pe_store_status_e (*staff_set_active)(pe_store_t *st, pe_principal_kind_e kind, const char *id, int active,
                                          apr_time_t now);
    pe_store_status_e (*staff_delete)(pe_store_t *st, pe_principal_kind_e kind, const char *id);
    pe_store_status_e (*user_update)(pe_store_t *st, const char *id, const pe_user_change_t *ch, apr_time_t now);
    pe_store_status_e (*user_list)(pe_store_t *st, const pe_user_query_t *q, apr_array_header_t **out, long *total);
    pe_store_status_e (*event_list)(pe_store_t *st, const char *event_type, const char *severity,
                                    const char *principal_id, long offset, long limit, apr_array_header_t **out,
                                    long *total);
    pe_store_status_e (*msglog_list)(pe_store_t *st, const char *user_id, long offset, long limit,
                                     apr_array_header_t **out, long *total);
    pe_store_status_e (*system_prompt_reset)(pe_store_t *st, const char *r_type);
    pe_store_status_e (*msglog_usage)(pe_store_t *st, apr_time_t since, long *requests, apr_int64_t *tokens);
    pe_store_status_e (*msglog_top_users)(pe_store_t *st, apr_time_t since, int limit, apr_array_header_t **out);
    /* Monitoring */
    pe_store_status_e (*ping)(pe_store_t *st);
    pe_store_status_e (*usage)(pe_store_t *st, const char *user_id, apr_time_t since, apr_time_t until,
                               pe_usage_t *out);
    /* E-mail verification */
    pe_store_status_e (*email_send_take)(pe_store_t *st, const char *user_id, apr_int64_t day, int limit,
                                         int *sends);
    pe_store_status_e (*email_send_release)(pe_store_t *st, const char *user_id, apr_int64_t day);
    pe_store_status_e (*email_code_set)(pe_store_t *st, const char *user_id, const char *digest,
                                        apr_time_t expires_at);
    pe_store_status_e (*email_code_attempt)(pe_store_t *st, const char *user_id, apr_time_t now, int max,
                                            const char **digest, int *attempts);
    pe_store_status_e (*email_code_use)(pe_store_t *st, const char *user_id, const char *email, const char *digest,
                                        apr_time_t now);
    /* API-usage records */
    pe_store_status_e (*api_usage_insert)(pe_store_t *st, const pe_api_usage_t *recs, int n);
    pe_store_status_e (*api_usage_purge)(pe_store_t *st, apr_time_t before, int limit, long *removed);
    pe_store_status_e (*api_usage_sum)(pe_store_t *st, const char *user_id, apr_time_t since, apr_time_t until,
                                       pe_api_usage_sum_t *out);
    pe_store_status_e (*api_usage_get)(pe_store_t *st, const char *request_id, pe_api_usage_t **out);
} pe_store_ops_t;

/**
 * A handle of backend `ops` on connection `conn` (the backend's own connection state; NULL:
 * no connection, every op answers PE_STORE_EIO). Lives in pool p, where results go.
 */
pe_store_t *pe_store_make(apr_pool_t *p, const pe_store_ops_t *ops, void *conn);

/** The backend's connection state given to pe_store_make() or pe_store_set_conn(). */
void *pe_store_conn(pe_store_t *st);

/** Point the handle at another connection (NULL: none); the reconnect hook calls this. */
void pe_store_set_conn(pe_store_t *st, void *conn);

/** The pool of the handle: results and messages are allocated here. */
apr_pool_t *pe_store_pool(pe_store_t *st);

/** Record the backend's message (printf format) for pe_store_error(); returns PE_STORE_EIO. */
pe_store_status_e pe_store_fail(pe_store_t *st, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/** Record which unique field was taken ("username", "email", "api_key", ...); returns PE_STORE_CONFLICT. */
pe_store_status_e pe_store_set_conflict(pe_store_t *st, const char *field);

/**
 * The maker's hook for the single retry: when the backend's reset cannot repair the connection,
 * the front end detaches the handle from it (pe_store_conn(st) is NULL) and calls the hook. The
 * hook MUST give the broken connection back BEFORE it acquires another (so it keeps its own
 * reference to it, in baton), so that a thread never holds two connections of one pool: with
 * every thread holding one and waiting for a second, the pool would wait forever. It attaches
 * the new one with pe_store_set_conn() (or the backend's own attach) and returns APR_SUCCESS.
 */
typedef apr_status_t pe_store_reconnect_fn(pe_store_t *st, void *baton);

/** Install the reconnect hook (NULL: the retry only uses ops->reset). */
void pe_store_set_reconnect(pe_store_t *st, pe_store_reconnect_fn *fn, void *baton);

#endif
