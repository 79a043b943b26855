/*
 * pe_store_dbd_int.h: what the files of the dbd backend share (statements by number, the
 * connection state of a handle, statement helpers). Private to src/store/pe_store_dbd*.c.
 */
#ifndef PE_STORE_DBD_INT_H
#define PE_STORE_DBD_INT_H

#include "pe_store_dbd.h"

/* Every statement the backend uses; the SQL is in pe_store_dbd.c (%s are the parameters). */
typedef enum {
    Q_USER_INSERT,
    Q_USER_BY_ID,
    Q_USER_BY_EMAIL,
    Q_USER_BY_KEY,
    Q_USER_PROFILE,
    Q_USER_SET_KEY,
    Q_USER_SET_EMAIL,
    Q_USER_SET_PASSWORD,
    Q_USER_FAIL_READ,
    Q_USER_LOGIN_OK,
    Q_USER_LOGIN_RESERVE,
    Q_USER_ARCHIVE,
    Q_USER_DELETE,
    Q_MSGLOG_DELETE_USER,
    Q_SESS_INSERT,
    Q_SESS_BY_TOKEN,
    Q_SESS_TOUCH,
    Q_SESS_ROTATE,
    Q_SESS_BY_REFRESHED,
    Q_SESS_DELETE,
    Q_SESS_DELETE_ALL,
    Q_SESS_DELETE_ALL_BUT,
    Q_EVENT_INSERT,
    Q_EVENT_COUNT,
    Q_EVENT_COUNT_PRINCIPAL,
    Q_CREDITS_TAKE,
    Q_CREDITS_REFUND,
    Q_CREDITS_GET,
    Q_MSGLOG_COUNT,
    Q_MSGLOG_COUNT_USER,
    Q_CREDITS_TAKE_N,
    Q_CREDITS_REFUND_N,
    Q_PROMPT_GET,
    Q_PROMPT_DEL,
    Q_PROMPT_INS,
    Q_BLOCKED_ACTIVE,
    Q_BLOCKED_INS,
    Q_BLOCKED_DEL,
    Q_WHITELIST_ACTIVE,
    Q_WHITELIST_INS,
    Q_WHITELIST_DEL,
    Q_STAFF_INSERT,
    Q_STAFF_BY_ID,
    Q_STAFF_BY_NAME,
    Q_STAFF_LIST,
    Q_STAFF_SET_PASSWORD,
    Q_STAFF_FAIL_READ,
    Q_STAFF_LOGIN_RESERVE,
    Q_STAFF_SUPER_LOCK,
    Q_STAFF_SUPER_LOCK_PG,
    Q_STAFF_SET_ACTIVE,
    Q_STAFF_DELETE,
    Q_STAFF_LOGIN_OK,
    Q_USER_UPDATE,
    /* operators' lists: Q_USER_LIST_FIRST + 2 * sort key + ascending (pe_store_dbd_lists.c) */
    Q_USER_LIST_FIRST,
    Q_USER_LIST_LAST = Q_USER_LIST_FIRST + 7,
    Q_USER_COUNT_Q,
    Q_EVENT_LIST,
    Q_EVENT_COUNT_Q,
    Q_MSGLOG_LIST,
    Q_MSGLOG_USAGE,
    Q_MSGLOG_TOP,
    Q_PING,
    Q_USAGE_SUM,
    Q_USAGE_DAYS,
    Q_USAGE_RTYPES,
    Q_EMAIL_SEND_TAKE,
    Q_EMAIL_SEND_READ,
    Q_EMAIL_SEND_RELEASE,
    Q_EMAIL_CODE_SET,
    Q_EMAIL_CODE_ATTEMPT,
    Q_EMAIL_CODE_READ,
    Q_EMAIL_CODE_USE,
    /* API-usage records (pe_store_dbd_apiusage.c) */
    Q_API_USAGE_PURGE,
    Q_API_USAGE_SUM,
    Q_API_USAGE_GET,
    Q_COUNT
} pe_q_e;

/* Column lists of the users and sessions tables, in the order the row readers expect. */
#define USER_COLS                                                                                                      \
    "id, username, name, email, password_hash, about_me, hobbies, user_type, subscription_plan, "                      \
    "credits_main, credits_reset, conv_limit, conv_reset, reset_day, access_rtype, level, "                            \
    "additional_notes, api_key_digest, api_key_prefix, api_key_enc, is_active, is_verified, "                          \
    "failed_logins, locked_until, created_at, updated_at, last_login, last_activity"
#define SESS_COLS                                                                                                      \
    "id, principal_kind, principal_id, token_digest, refresh_digest, expires_at, refresh_expires_at, "                 \
    "ip_address, user_agent, created_at, last_used"
#define STAFF_COLS                                                                                 \
    "id, kind, username, name, email, password_hash, is_super, staff_level, created_by, is_active, "   \
    "failed_logins, locked_until, created_at, updated_at, last_login"
#define STAFF_NCOLS 15
#define USER_NCOLS 28
#define SESS_NCOLS 11

/* A handle's connection (pe_store_conn): mod_dbd's connection, or a test's. */
typedef struct pe_dbd_conn_t {
    const apr_dbd_driver_t *driver;
    apr_dbd_t *handle;
    apr_hash_t *prepared;  /* the connection's statement cache (mod_dbd's ap_dbd_t.prepared) */
    apr_pool_t *conn_pool; /* lives as long as the connection: prepared statements go here */
    int pgsql;             /* the driver is PostgreSQL's (else SQLite's) */
} pe_dbd_conn_t;

#define DBD(st) ((pe_dbd_conn_t *)pe_store_conn(st))

/* Statement labels of the backend start with this (mod_dbd's hash may hold other modules'). */
#define PE_DBD_LABEL_PREFIX "pe_"

/** Once per connection: SQLite's pragmas. */
void pe_dbd_conn_init(pe_store_t *st);
/** Run a write; *rows (may be NULL) gets the affected row count. A unique violation is CONFLICT. */
pe_store_status_e pe_dbd_exec(pe_store_t *st, pe_q_e q, int *rows, int nargs, const char **args);
/** One write that must change a row: NOTFOUND when none changed. */
pe_store_status_e pe_dbd_update(pe_store_t *st, pe_q_e q, int nargs, const char **a);
/** Run a query and keep every row: an array of `const char *[ncols]` in the handle's pool. */
pe_store_status_e pe_dbd_select_rows(pe_store_t *st, pe_q_e q, int nargs, const char **args, int ncols,
                                     apr_array_header_t **rows);
/** Run a query and keep the first row; NOTFOUND when there is none. */
pe_store_status_e pe_dbd_select(pe_store_t *st, pe_q_e q, int nargs, const char **args, int ncols, const char **cols);
/** Transactions: begin, and end committing unless rs says an operation failed (then rs again). */
pe_store_status_e pe_dbd_tx_begin(pe_store_t *st, apr_dbd_transaction_t **tx);
pe_store_status_e pe_dbd_tx_end(pe_store_t *st, apr_dbd_transaction_t *tx, pe_store_status_e rs);
/** A statement's error as the handle's failure: CONFLICT (naming the field) or EIO. */
pe_store_status_e pe_dbd_fail(pe_store_t *st, const char *what, int rv);

const char *pe_dbd_i64(apr_pool_t *p, apr_int64_t v);
apr_int64_t pe_dbd_to64(const char *s);
const char *pe_dbd_s0(const char *s);

/* API-usage records (pe_store_dbd_apiusage.c) */
#define API_USAGE_COLS                                                                             \
    "request_id, user_id, key_prefix, endpoint, method, status_code, response_time_ms, tokens_used, ip_address, " \
    "user_agent, created_at, date"
#define API_USAGE_NCOLS 12
pe_store_status_e pe_dbd_api_usage_insert(pe_store_t *st, const pe_api_usage_t *recs, int n);
pe_store_status_e pe_dbd_api_usage_purge(pe_store_t *st, apr_time_t before, int limit, long *removed);
pe_store_status_e pe_dbd_api_usage_sum(pe_store_t *st, const char *user_id, apr_time_t since, apr_time_t until,
                                       pe_api_usage_sum_t *out);
pe_store_status_e pe_dbd_api_usage_get(pe_store_t *st, const char *request_id, pe_api_usage_t **out);

/* The ops, by entity file. */
pe_store_status_e pe_dbd_user_create(pe_store_t *st, const pe_user_t *u);
pe_store_status_e pe_dbd_user_by_id(pe_store_t *st, const char *id, pe_user_t **out);
pe_store_status_e pe_dbd_user_by_email(pe_store_t *st, const char *email, pe_user_t **out);
pe_store_status_e pe_dbd_user_by_key_digest(pe_store_t *st, const char *digest, pe_user_t **out);
pe_store_status_e pe_dbd_user_update_profile(pe_store_t *st, const char *id, const char *name, const char *about_me,
                                             const char *hobbies, apr_time_t now);
pe_store_status_e pe_dbd_user_set_api_key(pe_store_t *st, const char *id, const char *digest, const char *prefix,
                                          const char *enc, apr_time_t now);
pe_store_status_e pe_dbd_user_set_email(pe_store_t *st, const char *id, const char *email, int is_verified,
                                        apr_time_t now);
pe_store_status_e pe_dbd_user_set_password(pe_store_t *st, const char *id, const char *hash, apr_time_t now);
/**
 * The login reservation of users and operators: q_reserve takes max, now + lock, the account's
 * key (nkey values: id, or kind and id) and now; q_read takes the key and gives failed_logins,
 * locked_until.
 */
pe_store_status_e pe_dbd_login_reserve(pe_store_t *st, pe_q_e q_reserve, pe_q_e q_read, int nkey, const char **key,
                                       apr_time_t now, int max, apr_time_t lock, int *attempt,
                                       apr_time_t *locked_until);
pe_store_status_e pe_dbd_user_login_reserve(pe_store_t *st, const char *id, apr_time_t now, int max, apr_time_t lock,
                                            int *attempt, apr_time_t *locked_until);
pe_store_status_e pe_dbd_user_login_ok(pe_store_t *st, const char *id, apr_time_t now);
pe_store_status_e pe_dbd_user_delete(pe_store_t *st, const pe_user_t *u, const char *reason, const char *deleted_by,
                                     apr_time_t now);
pe_store_status_e pe_dbd_session_create(pe_store_t *st, const pe_session_t *s);
pe_store_status_e pe_dbd_session_by_token(pe_store_t *st, const char *digest, apr_time_t now, pe_session_t **out);
pe_store_status_e pe_dbd_session_rotate(pe_store_t *st, const char *refresh_digest, const char *new_token_digest,
                                        const char *new_refresh_digest, apr_time_t expires_at,
                                        apr_time_t refresh_expires_at, apr_time_t now, pe_session_t **out);
pe_store_status_e pe_dbd_session_delete(pe_store_t *st, const char *token_digest);
pe_store_status_e pe_dbd_session_delete_all(pe_store_t *st, pe_principal_kind_e kind, const char *principal_id,
                                            const char *keep_id);
pe_store_status_e pe_dbd_event(pe_store_t *st, const char *event_type, pe_principal_kind_e kind,
                               const char *principal_id, const char *username, const char *ip, const json_t *details,
                               const char *severity, apr_time_t now);
pe_store_status_e pe_dbd_event_count(pe_store_t *st, const char *event_type, const char *principal_id, long *count);
pe_store_status_e pe_dbd_credits_take(pe_store_t *st, const char *user_id, apr_int64_t today, apr_time_t now);
pe_store_status_e pe_dbd_credits_refund(pe_store_t *st, const char *user_id, apr_int64_t day);
pe_store_status_e pe_dbd_credits_get(pe_store_t *st, const char *user_id, apr_int64_t today, apr_int64_t *limit,
                                     apr_int64_t *reset);
pe_store_status_e pe_dbd_msglog_insert(pe_store_t *st, const pe_message_log_t *recs, int n);
pe_store_status_e pe_dbd_msglog_count(pe_store_t *st, const char *user_id, long *count);
pe_store_status_e pe_dbd_credits_take_n(pe_store_t *st, const char *user_id, apr_int64_t n, apr_int64_t today,
                                        apr_time_t now);
pe_store_status_e pe_dbd_credits_refund_n(pe_store_t *st, const char *user_id, apr_int64_t n, apr_int64_t day);
pe_store_status_e pe_dbd_system_prompt_get(pe_store_t *st, const char *r_type, const char **prompt);
pe_store_status_e pe_dbd_system_prompt_set(pe_store_t *st, const char *r_type, const char *prompt,
                                           const char *updated_by, apr_time_t now);
pe_store_status_e pe_dbd_iplist_active(pe_store_t *st, pe_iplist_e which, apr_time_t now, apr_array_header_t **out);
pe_store_status_e pe_dbd_iplist_add(pe_store_t *st, pe_iplist_e which, const pe_ipentry_t *e);
pe_store_status_e pe_dbd_iplist_remove(pe_store_t *st, pe_iplist_e which, apr_int64_t id);
pe_store_status_e pe_dbd_staff_create(pe_store_t *st, const pe_staff_t *s);
pe_store_status_e pe_dbd_staff_by_id(pe_store_t *st, pe_principal_kind_e kind, const char *id, pe_staff_t **out);
pe_store_status_e pe_dbd_staff_by_username(pe_store_t *st, pe_principal_kind_e kind, const char *username, pe_staff_t **out);
pe_store_status_e pe_dbd_staff_list(pe_store_t *st, pe_principal_kind_e kind, apr_array_header_t **out);
pe_store_status_e pe_dbd_staff_set_password(pe_store_t *st, pe_principal_kind_e kind, const char *id, const char *hash, apr_time_t now);
pe_store_status_e pe_dbd_staff_login_reserve(pe_store_t *st, pe_principal_kind_e kind, const char *id, apr_time_t now,
                                             int max, apr_time_t lock, int *attempt, apr_time_t *locked_until);
pe_store_status_e pe_dbd_staff_set_active(pe_store_t *st, pe_principal_kind_e kind, const char *id, int active,
                                          apr_time_t now);
pe_store_status_e pe_dbd_staff_delete(pe_store_t *st, pe_principal_kind_e kind, const char *id);
pe_store_status_e pe_dbd_user_update(pe_store_t *st, const char *id, const pe_user_change_t *ch, apr_time_t now);
pe_store_status_e pe_dbd_user_list(pe_store_t *st, const pe_user_query_t *q, apr_array_header_t **out, long *total);
pe_store_status_e pe_dbd_event_list(pe_store_t *st, const char *event_type, const char *severity, const char *principal_id, long offset, long limit, apr_array_header_t **out, long *total);
pe_store_status_e pe_dbd_msglog_list(pe_store_t *st, const char *user_id, long offset, long limit, apr_array_header_t **out, long *total);
/** A row of USER_COLS as a user (pe_store_dbd_users.c). */
pe_user_t *pe_dbd_user_from_cols(apr_pool_t *p, const char **c);
pe_store_status_e pe_dbd_system_prompt_reset(pe_store_t *st, const char *r_type);
pe_store_status_e pe_dbd_msglog_usage(pe_store_t *st, apr_time_t since, long *requests, apr_int64_t *tokens);
pe_store_status_e pe_dbd_msglog_top_users(pe_store_t *st, apr_time_t since, int limit, apr_array_header_t **out);
pe_store_status_e pe_dbd_staff_login_ok(pe_store_t *st, pe_principal_kind_e kind, const char *id, apr_time_t now);
pe_store_status_e pe_dbd_ping(pe_store_t *st);
pe_store_status_e pe_dbd_usage(pe_store_t *st, const char *user_id, apr_time_t since, apr_time_t until,
                               pe_usage_t *out);
pe_store_status_e pe_dbd_email_send_take(pe_store_t *st, const char *user_id, apr_int64_t day, int limit,
                                         int *sends);
pe_store_status_e pe_dbd_email_send_release(pe_store_t *st, const char *user_id, apr_int64_t day);
pe_store_status_e pe_dbd_email_code_set(pe_store_t *st, const char *user_id, const char *digest,
                                        apr_time_t expires_at);
pe_store_status_e pe_dbd_email_code_attempt(pe_store_t *st, const char *user_id, apr_time_t now, int max,
                                            const char **digest, int *attempts);
pe_store_status_e pe_dbd_email_code_use(pe_store_t *st, const char *user_id, const char *email,
                                        const char *digest, apr_time_t now);

#endif
