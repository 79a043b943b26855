/*
 * pe_store_dbd.c: the store backend on apr_dbd (mod_dbd's connections): SQLite and PostgreSQL.
 * This file: the statements, a handle's connection, the statement helpers and the schema;
 * the operations are in pe_store_dbd_users.c and pe_store_dbd_usage.c.
 *
 * NB: statements are prepared lazily, on first use on a connection, into that connection's
 * statement hash; for PostgreSQL without a server-side name (apr_dbd_pgsql then runs them
 * with PQexecParams), so a connection that libpq reset after a server restart has no stale
 * prepared statements. mod_dbd's own config-time preparation cannot be used here: it
 * prepares when a connection is made, which fails before the schema exists.
 */
#include "pe_store_dbd_int.h"
#include "pe_logno.h"

#include "pe_schema_sql.h"

#include <apr_strings.h>
#include <stdlib.h>
#include <string.h>

static const struct {
    const char *label;
    const char *sql;
} pe_q[Q_COUNT] = {
    [Q_USER_INSERT] = {"pe_user_insert",
                       "INSERT INTO pe_users (" USER_COLS ") VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, "
                       "%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"},
    [Q_USER_BY_ID] = {"pe_user_by_id", "SELECT " USER_COLS " FROM pe_users WHERE id = %s"},
    [Q_USER_BY_EMAIL] = {"pe_user_by_email", "SELECT " USER_COLS " FROM pe_users WHERE email = %s"},
    [Q_USER_BY_KEY] = {"pe_user_by_key", "SELECT " USER_COLS " FROM pe_users WHERE api_key_digest = %s"},
    [Q_USER_PROFILE] = {"pe_user_profile",
                        "UPDATE pe_users SET name = COALESCE(%s, name), about_me = COALESCE(%s, about_me), "
                        "hobbies = COALESCE(%s, hobbies), updated_at = %s WHERE id = %s"},
    [Q_USER_SET_KEY] = {"pe_user_set_key",
                        "UPDATE pe_users SET api_key_digest = %s, api_key_prefix = %s, api_key_enc = %s, "
                        "updated_at = %s WHERE id = %s"},
    [Q_USER_SET_EMAIL] = {"pe_user_set_email",
                          "UPDATE pe_users SET email = %s, is_verified = %s, updated_at = %s WHERE id = %s"},
    [Q_USER_SET_PASSWORD] = {"pe_user_set_password",
                             "UPDATE pe_users SET password_hash = %s, failed_logins = 0, locked_until = 0, "
                             "updated_at = %s WHERE id = %s"},
    [Q_USER_FAIL_READ] = {"pe_user_fail_read", "SELECT failed_logins, locked_until FROM pe_users WHERE id = %s"},
    /* One guarded statement: only an unlocked account (no lock, or an expired one, after which the
     * counter starts again, SPEC 16.2 item 28) gets the attempt, and the attempt that reaches the
     * maximum locks at once. */
#define LOGIN_RESERVE_SET                                                                          \
    "SET failed_logins = CASE WHEN locked_until > 0 THEN 1 ELSE failed_logins + 1 END, locked_until = CASE WHEN " \
    "(CASE WHEN locked_until > 0 THEN 1 ELSE failed_logins + 1 END) >= CAST(%s AS INTEGER) THEN CAST(%s AS BIGINT) " \
    "ELSE 0 END WHERE "
#define LOGIN_RESERVE_END " AND locked_until <= CAST(%s AS BIGINT) RETURNING failed_logins, locked_until"
    [Q_USER_LOGIN_RESERVE] = {"pe_user_login_reserve", "UPDATE pe_users " LOGIN_RESERVE_SET "id = %s" LOGIN_RESERVE_END},
    /* The same for operators (pe_dbd_login_reserve). */
    [Q_STAFF_LOGIN_RESERVE] = {"pe_staff_login_reserve",
                               "UPDATE pe_staff " LOGIN_RESERVE_SET "kind = %s AND id = %s" LOGIN_RESERVE_END},
    [Q_USER_LOGIN_OK] = {"pe_user_login_ok",
                         "UPDATE pe_users SET failed_logins = 0, locked_until = 0, last_login = %s, "
                         "last_activity = %s WHERE id = %s"},
    [Q_USER_ARCHIVE] = {"pe_user_archive",
                        "INSERT INTO pe_deleted_users (id, original_user_id, username, name, email, user_type, "
                        "time_created, subscription_plan, deletion_reason, deleted_at, deleted_by) VALUES (%s, %s, "
                        "%s, %s, %s, %s, %s, %s, %s, %s, %s)"},
    [Q_USER_DELETE] = {"pe_user_delete", "DELETE FROM pe_users WHERE id = %s"},
    [Q_MSGLOG_DELETE_USER] = {"pe_msglog_delete_user", "DELETE FROM pe_message_logs WHERE user_id = %s"},
    [Q_SESS_INSERT] = {"pe_sess_insert",
                       "INSERT INTO pe_sessions (" SESS_COLS ") VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"},
    [Q_SESS_BY_TOKEN] = {"pe_sess_by_token",
                         "SELECT " SESS_COLS " FROM pe_sessions WHERE token_digest = %s AND expires_at > %s"},
    [Q_SESS_TOUCH] = {"pe_sess_touch", "UPDATE pe_sessions SET last_used = %s WHERE id = %s"},
    [Q_SESS_ROTATE] = {"pe_sess_rotate",
                       "UPDATE pe_sessions SET token_digest = %s, refresh_digest = %s, expires_at = %s, "
                       "refresh_expires_at = %s, last_used = %s WHERE refresh_digest = %s AND refresh_expires_at > %s"},
    [Q_SESS_BY_REFRESHED] = {"pe_sess_by_refreshed", "SELECT " SESS_COLS " FROM pe_sessions WHERE refresh_digest = %s"},
    [Q_SESS_DELETE] = {"pe_sess_delete", "DELETE FROM pe_sessions WHERE token_digest = %s"},
    [Q_SESS_DELETE_ALL] = {"pe_sess_delete_all",
                           "DELETE FROM pe_sessions WHERE principal_kind = %s AND principal_id = %s"},
    [Q_SESS_DELETE_ALL_BUT] = {"pe_sess_delete_all_but",
                               "DELETE FROM pe_sessions WHERE principal_kind = %s AND principal_id = %s AND id <> %s"},
    [Q_EVENT_INSERT] = {"pe_event_insert",
                        "INSERT INTO pe_security_events (event_type, principal_kind, principal_id, username, "
                        "ip_address, details, severity, created_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"},
    [Q_EVENT_COUNT] = {"pe_event_count", "SELECT COUNT(*) FROM pe_security_events WHERE event_type = %s"},
    [Q_EVENT_COUNT_PRINCIPAL] = {"pe_event_count_principal",
                                 "SELECT COUNT(*) FROM pe_security_events WHERE event_type = %s AND principal_id = %s"},
    /* NB: one statement decides and writes, so concurrent takes cannot oversell (the row lock
     * in PostgreSQL re-checks the WHERE on the new row version; SQLite serialises writers).
     * The CASE folds the lazy daily reset into the same write. */
    [Q_CREDITS_TAKE] = {"pe_credits_take",
                        "UPDATE pe_users SET conv_limit = (CASE WHEN reset_day < %s AND conv_reset > 0 THEN "
                        "conv_reset ELSE conv_limit END) - 1, reset_day = CASE WHEN reset_day < %s THEN %s ELSE "
                        "reset_day END, last_activity = %s WHERE id = %s AND is_active = 1 AND (CASE WHEN "
                        "reset_day < %s AND conv_reset > 0 THEN conv_reset ELSE conv_limit END) > 0"},
    [Q_CREDITS_REFUND] = {"pe_credits_refund",
                          "UPDATE pe_users SET conv_limit = conv_limit + 1 WHERE id = %s AND reset_day = %s"},
    [Q_CREDITS_GET] = {"pe_credits_get", "SELECT conv_limit, conv_reset, reset_day FROM pe_users WHERE id = %s"},
    [Q_MSGLOG_COUNT] = {"pe_msglog_count", "SELECT COUNT(*) FROM pe_message_logs"},
    [Q_MSGLOG_COUNT_USER] = {"pe_msglog_count_user", "SELECT COUNT(*) FROM pe_message_logs WHERE user_id = %s"},
    /* NB: a batch takes all its credits in one conditional write, like Q_CREDITS_TAKE: either every
     * credit or none (the lazy daily reset folded in the same way). The count is a text parameter:
     * CAST it, because SQLite orders any integer below any text. */
    [Q_CREDITS_TAKE_N] = {"pe_credits_take_n",
                          "UPDATE pe_users SET conv_limit = (CASE WHEN reset_day < %s AND conv_reset > 0 THEN "
                          "conv_reset ELSE conv_limit END) - CAST(%s AS INTEGER), reset_day = CASE WHEN reset_day < %s "
                          "THEN %s ELSE reset_day END, last_activity = %s WHERE id = %s AND is_active = 1 AND (CASE "
                          "WHEN reset_day < %s AND conv_reset > 0 THEN conv_reset ELSE conv_limit END) >= "
                          "CAST(%s AS INTEGER)"},
    [Q_CREDITS_REFUND_N] = {"pe_credits_refund_n",
                            "UPDATE pe_users SET conv_limit = conv_limit + CAST(%s AS INTEGER) WHERE id = %s AND "
                            "reset_day = %s"},
    [Q_PROMPT_GET] = {"pe_prompt_get", "SELECT prompt FROM pe_system_prompts WHERE r_type = %s"},
    [Q_PROMPT_DEL] = {"pe_prompt_del", "DELETE FROM pe_system_prompts WHERE r_type = %s"},
    [Q_PROMPT_INS] = {"pe_prompt_ins",
                      "INSERT INTO pe_system_prompts (r_type, prompt, updated_by, updated_at) VALUES (%s, %s, %s, %s)"},
    /* Address lists: Q_BLOCKED_* and Q_WHITELIST_* in the same order (pe_iplist_e picks the row). */
    [Q_BLOCKED_ACTIVE] =
        {"pe_blocked_active",
         "SELECT id, network, reason, created_by, created_at, expires_at, is_active FROM pe_blocked_ips "
         "WHERE is_active = 1 AND (expires_at = 0 OR expires_at > %s) ORDER BY id"},
    [Q_BLOCKED_INS] = {"pe_blocked_ins",
                       "INSERT INTO pe_blocked_ips (network, reason, created_by, created_at, expires_at, is_active) "
                       "VALUES (%s, %s, %s, %s, %s, %s)"},
    [Q_BLOCKED_DEL] = {"pe_blocked_del", "DELETE FROM pe_blocked_ips WHERE id = %s"},
    [Q_WHITELIST_ACTIVE] = {"pe_whitelist_active",
                            "SELECT id, network, description, created_by, created_at, expires_at, is_active FROM "
                            "pe_ip_whitelist WHERE is_active = 1 AND (expires_at = 0 OR expires_at > %s) ORDER BY id"},
    [Q_WHITELIST_INS] = {"pe_whitelist_ins",
                         "INSERT INTO pe_ip_whitelist (network, description, created_by, created_at, expires_at, "
                         "is_active) VALUES (%s, %s, %s, %s, %s, %s)"},
    [Q_WHITELIST_DEL] = {"pe_whitelist_del", "DELETE FROM pe_ip_whitelist WHERE id = %s"},
    /* Operators: every statement names the kind, so an id of one kind never finds the other. */
    [Q_STAFF_INSERT] = {"pe_staff_insert",
                        "INSERT INTO pe_staff (" STAFF_COLS ") VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, "
                        "%s, %s, %s, %s)"},
    [Q_STAFF_BY_ID] = {"pe_staff_by_id", "SELECT " STAFF_COLS " FROM pe_staff WHERE kind = %s AND id = %s"},
    [Q_STAFF_BY_NAME] = {"pe_staff_by_name", "SELECT " STAFF_COLS " FROM pe_staff WHERE kind = %s AND username = %s"},
    [Q_STAFF_LIST] = {"pe_staff_list", "SELECT " STAFF_COLS " FROM pe_staff WHERE kind = %s ORDER BY created_at, id"},
    [Q_STAFF_SET_PASSWORD] = {"pe_staff_set_password",
                              "UPDATE pe_staff SET password_hash = %s, failed_logins = 0, locked_until = 0, "
                              "updated_at = %s WHERE kind = %s AND id = %s"},
    [Q_STAFF_FAIL_READ] = {"pe_staff_fail_read",
                           "SELECT failed_logins, locked_until FROM pe_staff WHERE kind = %s AND id = %s"},
    /* The last active super-administrator (pe_dbd_staff_set_active): a transaction first takes
     * a lock that every such change takes (SQLite: a write, which takes the database's write
     * lock; PostgreSQL: one transaction-scoped advisory lock; row locks on the super-admins, in
     * heap or even in id order, deadlocked among 16 racers), so the guard's EXISTS of the next
     * statement sees every other change committed. */
    [Q_STAFF_SUPER_LOCK] = {"pe_staff_super_lock",
                            "UPDATE pe_staff SET is_super = is_super WHERE kind = %s AND is_super = 1 AND "
                            "is_active = 1"},
    [Q_STAFF_SUPER_LOCK_PG] = {"pe_staff_super_lock_pg",
                               "SELECT pg_advisory_xact_lock(72010002)"},
#define STAFF_NOT_LAST_SUPER                                                                       \
    "(is_super = 0 OR is_active = 0 OR EXISTS (SELECT 1 FROM pe_staff o WHERE o.kind = pe_staff.kind AND " \
    "o.is_super = 1 AND o.is_active = 1 AND o.id <> pe_staff.id))"
    [Q_STAFF_SET_ACTIVE] = {"pe_staff_set_active",
                            "UPDATE pe_staff SET is_active = CAST(%s AS SMALLINT), updated_at = %s WHERE kind = %s "
                            "AND id = %s AND (CAST(%s AS INTEGER) = 1 OR " STAFF_NOT_LAST_SUPER ")"},
    [Q_STAFF_DELETE] = {"pe_staff_delete",
                        "DELETE FROM pe_staff WHERE kind = %s AND id = %s AND " STAFF_NOT_LAST_SUPER},
    /* An operator's change of a user: a NULL parameter leaves its column as it is. */
    [Q_USER_UPDATE] = {"pe_user_update",
                       "UPDATE pe_users SET name = COALESCE(%s, name), about_me = COALESCE(%s, about_me), "
                       "hobbies = COALESCE(%s, hobbies), user_type = COALESCE(%s, user_type), subscription_plan = "
                       "COALESCE(%s, subscription_plan), access_rtype = COALESCE(%s, access_rtype), level = "
                       "COALESCE(%s, level), additional_notes = COALESCE(%s, additional_notes), credits_main = "
                       "COALESCE(CAST(%s AS BIGINT), credits_main), credits_reset = COALESCE(CAST(%s AS BIGINT), "
                       "credits_reset), conv_limit = COALESCE(CAST(%s AS BIGINT), conv_limit), conv_reset = "
                       "COALESCE(CAST(%s AS BIGINT), conv_reset), is_active = COALESCE(CAST(%s AS SMALLINT), "
                       "is_active), is_verified = COALESCE(CAST(%s AS SMALLINT), is_verified), updated_at = %s "
                       "WHERE id = %s"},
    /* Operators' lists: the filters of pe_user_query_t; '' or -1 means any (see pe_store_dbd_lists.c). */
#define USER_FILTER                                                                                \
    "(%s = '' OR LOWER(username) LIKE %s ESCAPE '!' OR LOWER(email) LIKE %s ESCAPE '!' OR LOWER(name) LIKE %s "  \
    "ESCAPE '!') AND (%s = '' OR email = %s) AND (%s = '' OR username = %s) AND (%s = '' OR subscription_plan = " \
    "%s) AND (CAST(%s AS INTEGER) < 0 OR is_verified = CAST(%s AS INTEGER)) AND (CAST(%s AS INTEGER) < 0 OR "     \
    "is_active = CAST(%s AS INTEGER))"
#define USER_LIST(label, order)                                                                    \
    {label, "SELECT " USER_COLS " FROM pe_users WHERE " USER_FILTER " ORDER BY " order                    \
            " LIMIT CAST(%s AS INTEGER) OFFSET CAST(%s AS INTEGER)"}
    [Q_USER_LIST_FIRST + 0] = USER_LIST("pe_user_list_cd", "created_at DESC, id DESC"),
    [Q_USER_LIST_FIRST + 1] = USER_LIST("pe_user_list_ca", "created_at ASC, id ASC"),
    [Q_USER_LIST_FIRST + 2] = USER_LIST("pe_user_list_ud", "username DESC, id DESC"),
    [Q_USER_LIST_FIRST + 3] = USER_LIST("pe_user_list_ua", "username ASC, id ASC"),
    [Q_USER_LIST_FIRST + 4] = USER_LIST("pe_user_list_ed", "email DESC, id DESC"),
    [Q_USER_LIST_FIRST + 5] = USER_LIST("pe_user_list_ea", "email ASC, id ASC"),
    [Q_USER_LIST_FIRST + 6] = USER_LIST("pe_user_list_ld", "last_login DESC, id DESC"),
    [Q_USER_LIST_FIRST + 7] = USER_LIST("pe_user_list_la", "last_login ASC, id ASC"),
    [Q_USER_COUNT_Q] = {"pe_user_count_q", "SELECT COUNT(*) FROM pe_users WHERE " USER_FILTER},
#define EVENT_FILTER "(%s = '' OR event_type = %s) AND (%s = '' OR severity = %s) AND (%s = '' OR principal_id = %s)"
    [Q_EVENT_LIST] = {"pe_event_list",
                      "SELECT id, event_type, principal_kind, principal_id, username, ip_address, details, severity, "
                      "created_at FROM pe_security_events WHERE " EVENT_FILTER " ORDER BY created_at DESC, id DESC "
                      "LIMIT CAST(%s AS INTEGER) OFFSET CAST(%s AS INTEGER)"},
    [Q_EVENT_COUNT_Q] = {"pe_event_count_q", "SELECT COUNT(*) FROM pe_security_events WHERE " EVENT_FILTER},
    [Q_MSGLOG_LIST] = {"pe_msglog_list",
                       "SELECT request_id, user_id, username, model, r_type, research_enabled, messages, response, "
                       "status, tokens_used, processing_time_ms, ip_address, created_at FROM pe_message_logs WHERE "
                       "user_id = %s ORDER BY created_at DESC, id DESC LIMIT CAST(%s AS INTEGER) OFFSET CAST(%s AS "
                       "INTEGER)"},
    [Q_MSGLOG_USAGE] = {"pe_msglog_usage",
                        "SELECT COUNT(*), COALESCE(SUM(tokens_used), 0) FROM pe_message_logs WHERE created_at >= %s"},
    [Q_MSGLOG_TOP] = {"pe_msglog_top",
                      "SELECT user_id, MAX(username), COUNT(*), COALESCE(SUM(tokens_used), 0) FROM pe_message_logs "
                      "WHERE created_at >= %s GROUP BY user_id ORDER BY COUNT(*) DESC, user_id LIMIT CAST(%s AS "
                      "INTEGER)"},
    [Q_STAFF_LOGIN_OK] = {"pe_staff_login_ok",
                          "UPDATE pe_staff SET failed_logins = 0, locked_until = 0, last_login = %s WHERE kind = %s "
                          "AND id = %s"},
    /* Monitoring (pe_store_dbd_monitor.c): a user's figures, or everyone's when the id is ''. */
    [Q_PING] = {"pe_ping", "SELECT COUNT(*) FROM pe_system_prompts"},
    [Q_USAGE_SUM] = {"pe_usage_sum", "SELECT COUNT(*), COALESCE(SUM(tokens_used), 0), COALESCE(SUM(processing_time_ms), 0) "
                     "FROM pe_message_logs WHERE (%s = '' OR user_id = %s) AND created_at >= %s AND created_at < %s"},
    [Q_USAGE_DAYS] = {"pe_usage_days", "SELECT created_at / 86400000000, COUNT(*), COALESCE(SUM(tokens_used), 0) FROM "
                      "pe_message_logs WHERE (%s = '' OR user_id = %s) AND created_at >= %s AND created_at < %s "
                      "GROUP BY created_at / 86400000000 ORDER BY 1"},
    [Q_USAGE_RTYPES] = {"pe_usage_rtypes", "SELECT r_type, COUNT(*) FROM pe_message_logs WHERE (%s = '' OR user_id = %s) "
                        "AND created_at >= %s AND created_at < %s GROUP BY r_type ORDER BY r_type"},
    /* NB: e-mail verification (pe_store_dbd_email.c): each decision is the WHERE of one UPDATE, so
     * concurrent sends and attempts are counted exactly (see Q_CREDITS_TAKE). */
    [Q_EMAIL_SEND_TAKE] = {"pe_email_send_take",
                           "UPDATE pe_users SET email_sends = CASE WHEN email_send_day < %s THEN 1 ELSE "
                           "email_sends + 1 END, email_send_day = CASE WHEN email_send_day < %s THEN %s ELSE "
                           "email_send_day END WHERE id = %s AND (email_send_day < %s OR email_sends < %s)"},
    [Q_EMAIL_SEND_READ] = {"pe_email_send_read", "SELECT email_sends, email_send_day FROM pe_users WHERE id = %s"},
    [Q_EMAIL_SEND_RELEASE] = {"pe_email_send_release",
                              "UPDATE pe_users SET email_sends = email_sends - 1 WHERE id = %s AND "
                              "email_send_day = %s AND email_sends > 0"},
    [Q_EMAIL_CODE_SET] = {"pe_email_code_set",
                          "UPDATE pe_users SET email_code_digest = %s, email_code_expires = %s, "
                          "email_code_attempts = 0 WHERE id = %s"},
    /* NB: RETURNING: the digest read is the one the attempt was counted against, even when a new
     * code replaces it at the same moment. */
    [Q_EMAIL_CODE_ATTEMPT] = {"pe_email_code_attempt",
                              "UPDATE pe_users SET email_code_attempts = email_code_attempts + 1 WHERE id = %s "
                              "AND email_code_digest <> '' AND email_code_expires > %s AND email_code_attempts < %s "
                              "RETURNING email_code_digest, email_code_attempts"},
    [Q_EMAIL_CODE_READ] = {"pe_email_code_read",
                           "SELECT email_code_digest, email_code_expires, email_code_attempts FROM pe_users "
                           "WHERE id = %s"},
    [Q_EMAIL_CODE_USE] = {"pe_email_code_use",
                          "UPDATE pe_users SET is_verified = 1, email_code_digest = '', email_code_attempts = 0, "
                          "updated_at = %s WHERE id = %s AND email = %s AND email_code_digest = %s AND "
                          "email_code_expires > %s"},
    /* API-usage records: the retention removes the oldest rows first, at most a bound per call. */
    [Q_API_USAGE_PURGE] = {"pe_api_usage_purge",
                           "DELETE FROM pe_api_usage WHERE id IN (SELECT id FROM pe_api_usage WHERE created_at < "
                           "CAST(%s AS BIGINT) ORDER BY created_at LIMIT CAST(%s AS INTEGER))"},
    [Q_API_USAGE_SUM] = {"pe_api_usage_sum",
                         "SELECT COUNT(*), COALESCE(SUM(response_time_ms), 0), COALESCE(SUM(tokens_used), 0) FROM "
                         "pe_api_usage WHERE (%s = '' OR user_id = %s) AND created_at >= %s AND created_at < %s"},
    [Q_API_USAGE_GET] = {"pe_api_usage_get", "SELECT " API_USAGE_COLS " FROM pe_api_usage WHERE request_id = %s"},
};

static const pe_store_ops_t pe_store_sqlite3_ops, pe_store_pgsql_ops;

/* ----------------------------------------------------------------------------------------- */
/* Handles and connections */

static pe_dbd_conn_t *conn_make(apr_pool_t *p, const apr_dbd_driver_t *driver, apr_dbd_t *handle, apr_hash_t *prepared,
                                apr_pool_t *conn_pool)
{
    pe_dbd_conn_t *c;

    if (!driver || !handle)
        return NULL;
    c = apr_pcalloc(p, sizeof(*c));
    c->driver = driver;
    c->handle = handle;
    c->prepared = prepared;
    c->conn_pool = conn_pool;
    c->pgsql = strcmp(apr_dbd_name(driver), "pgsql") == 0;
    return c;
}

pe_store_t *pe_store_dbd_make(apr_pool_t *p, const apr_dbd_driver_t *driver, apr_dbd_t *handle, apr_hash_t *prepared,
                              apr_pool_t *conn_pool)
{
    pe_dbd_conn_t *c = conn_make(p, driver, handle, prepared, conn_pool);

    /* NB: a handle without a connection yet is named for SQLite until it gets one. */
    return pe_store_make(p, c && c->pgsql ? &pe_store_pgsql_ops : &pe_store_sqlite3_ops, c);
}

void pe_store_dbd_attach(pe_store_t *st, const apr_dbd_driver_t *driver, apr_dbd_t *handle, apr_hash_t *prepared,
                         apr_pool_t *conn_pool)
{
    pe_store_set_conn(st, conn_make(pe_store_pool(st), driver, handle, prepared, conn_pool));
}

#define PE_CONN_READY PE_DBD_LABEL_PREFIX "_conn_ready"

/*
 * Once per connection: SQLite waits for a busy database instead of failing at once (several
 * children write the same file), uses write-ahead logging so readers do not block writers, and
 * syncs at checkpoints (synchronous NORMAL) rather than at every commit.
 */
void pe_dbd_conn_init(pe_store_t *st)
{
    pe_dbd_conn_t *c = DBD(st);
    int n;

    if (apr_hash_get(c->prepared, PE_CONN_READY, APR_HASH_KEY_STRING))
        return;
    if (!c->pgsql) {
        apr_dbd_query(c->driver, c->handle, &n, "PRAGMA busy_timeout = 10000");
        apr_dbd_query(c->driver, c->handle, &n, "PRAGMA journal_mode = WAL");
        /* With WAL, NORMAL syncs at checkpoints, not at every commit: the database stays
         * consistent after a crash; a power loss may undo the last commits. */
        apr_dbd_query(c->driver, c->handle, &n, "PRAGMA synchronous = NORMAL");
    }
    apr_hash_set(c->prepared, PE_CONN_READY, APR_HASH_KEY_STRING, (void *)1);
}

/*
 * The reset op, after an I/O failure: our statements are dropped from the connection's cache
 * (prepared again on next use), and apr_dbd_check_conn resets a PostgreSQL connection that
 * failed after a server restart (libpq's PQreset; our statements are unnamed, so nothing on
 * the server is stale). EIO when the connection cannot be made usable (the server is down):
 * the handle's maker may then give it back and take another.
 */
static pe_store_status_e dbd_reset(pe_store_t *st)
{
    pe_dbd_conn_t *c = DBD(st);
    apr_hash_index_t *hi;
    int rv;

    for (hi = apr_hash_first(pe_store_pool(st), c->prepared); hi; hi = apr_hash_next(hi)) {
        const void *key;

        apr_hash_this(hi, &key, NULL, NULL);
        if (!strncmp(key, PE_DBD_LABEL_PREFIX, sizeof(PE_DBD_LABEL_PREFIX) - 1))
            apr_hash_set(c->prepared, key, APR_HASH_KEY_STRING, NULL);
    }
    rv = apr_dbd_check_conn(c->driver, pe_store_pool(st), c->handle);
    if (rv != APR_SUCCESS && rv != APR_ENOTIMPL)
        return pe_store_fail(st, "the connection cannot be reset: %s", apr_dbd_error(c->driver, c->handle, rv));
    return PE_STORE_OK;
}

/* The statement for q on this connection, prepared on first use. */
static apr_dbd_prepared_t *stmt_get(pe_store_t *st, pe_q_e q)
{
    pe_dbd_conn_t *c = DBD(st);
    apr_dbd_prepared_t *stmt = apr_hash_get(c->prepared, pe_q[q].label, APR_HASH_KEY_STRING);
    int rv;

    if (stmt)
        return stmt;
    pe_dbd_conn_init(st);
    /* NB: a NULL label keeps PostgreSQL statements unnamed (see the file comment). */
    rv = apr_dbd_prepare(c->driver, c->conn_pool, c->handle, pe_q[q].sql, c->pgsql ? NULL : pe_q[q].label, &stmt);
    if (rv != 0) {
        pe_store_fail(st, "cannot prepare %s: %s", pe_q[q].label, apr_dbd_error(c->driver, c->handle, rv));
        return NULL;
    }
    apr_hash_set(c->prepared, pe_q[q].label, APR_HASH_KEY_STRING, stmt);
    return stmt;
}

/* Classify a failed statement: a unique violation names its field; the rest is EIO. */
pe_store_status_e pe_dbd_fail(pe_store_t *st, const char *what, int rv)
{
    const char *msg = apr_dbd_error(DBD(st)->driver, DBD(st)->handle, rv);

    if (!msg)
        msg = "unknown error";
    if (strstr(msg, "UNIQUE constraint failed") || strstr(msg, "duplicate key value")) {
        if (strstr(msg, "username"))
            return pe_store_set_conflict(st, "username");
        if (strstr(msg, "email"))
            return pe_store_set_conflict(st, "email");
        if (strstr(msg, "api_key"))
            return pe_store_set_conflict(st, "api_key");
        if (strstr(msg, "request_id"))
            return pe_store_set_conflict(st, "request_id");
        return pe_store_set_conflict(st, "id");
    }
    return pe_store_fail(st, "%s: %s", what, msg);
}

pe_store_status_e pe_dbd_exec(pe_store_t *st, pe_q_e q, int *rows, int nargs, const char **args)
{
    apr_dbd_prepared_t *stmt = stmt_get(st, q);
    int n = 0, rv;

    if (!stmt)
        return PE_STORE_EIO;
    rv = apr_dbd_pquery(DBD(st)->driver, pe_store_pool(st), DBD(st)->handle, &n, stmt, nargs, args);
    if (rv != 0)
        return pe_dbd_fail(st, pe_q[q].label, rv);
    if (rows)
        *rows = n;
    return PE_STORE_OK;
}

pe_store_status_e pe_dbd_update(pe_store_t *st, pe_q_e q, int nargs, const char **a)
{
    int rows = 0;
    pe_store_status_e rs = pe_dbd_exec(st, q, &rows, nargs, a);

    return (rs == PE_STORE_OK && rows == 0) ? PE_STORE_NOTFOUND : rs;
}

pe_store_status_e pe_dbd_select_rows(pe_store_t *st, pe_q_e q, int nargs, const char **args, int ncols,
                                     apr_array_header_t **rows)
{
    pe_dbd_conn_t *c = DBD(st);
    apr_pool_t *p = pe_store_pool(st);
    apr_dbd_prepared_t *stmt = stmt_get(st, q);
    apr_dbd_results_t *res = NULL;
    apr_dbd_row_t *row = NULL;
    int rv, i;

    *rows = apr_array_make(p, 4, sizeof(const char **));
    if (!stmt)
        return PE_STORE_EIO;
    /* NB: buffered (random-access) results: with sequential ones apr_dbd_pgsql reports a
     * failure only when rows are fetched, where it looks like "no rows". */
    rv = apr_dbd_pselect(c->driver, p, c->handle, &res, stmt, 1, nargs, args);
    if (rv != 0)
        return pe_dbd_fail(st, pe_q[q].label, rv);
    /* NB: drain to the end; breaking out early leaves the statement unfinished (mod_authn_dbd). */
    while (apr_dbd_get_row(c->driver, p, res, &row, -1) == 0) {
        const char **cols = apr_pcalloc(p, (apr_size_t)ncols * sizeof(*cols));

        for (i = 0; i < ncols; i++) {
            const char *v = apr_dbd_get_entry(c->driver, row, i);
            cols[i] = v ? apr_pstrdup(p, v) : NULL;
        }
        APR_ARRAY_PUSH(*rows, const char **) = cols;
    }
    return PE_STORE_OK;
}

pe_store_status_e pe_dbd_select(pe_store_t *st, pe_q_e q, int nargs, const char **args, int ncols, const char **cols)
{
    apr_array_header_t *rows;
    pe_store_status_e rs = pe_dbd_select_rows(st, q, nargs, args, ncols, &rows);

    if (rs != PE_STORE_OK)
        return rs;
    if (!rows->nelts)
        return PE_STORE_NOTFOUND;
    memcpy(cols, APR_ARRAY_IDX(rows, 0, const char **), (apr_size_t)ncols * sizeof(*cols));
    return PE_STORE_OK;
}

const char *pe_dbd_i64(apr_pool_t *p, apr_int64_t v)
{
    return apr_psprintf(p, "%" APR_INT64_T_FMT, v);
}

apr_int64_t pe_dbd_to64(const char *s)
{
    return s ? apr_atoi64(s) : 0;
}

const char *pe_dbd_s0(const char *s)
{
    return s ? s : "";
}

pe_store_status_e pe_dbd_tx_begin(pe_store_t *st, apr_dbd_transaction_t **tx)
{
    pe_dbd_conn_t *c = DBD(st);
    int rv;

    *tx = NULL;
    /* NB: the connection's set-up first: apr_dbd_sqlite3 skips every statement of a transaction
     * after one failed, and SQLite refuses "PRAGMA journal_mode" inside a transaction. */
    pe_dbd_conn_init(st);
    rv = apr_dbd_transaction_start(c->driver, pe_store_pool(st), c->handle, tx);
    if (rv != 0)
        return pe_store_fail(st, "cannot begin a transaction: %s", apr_dbd_error(c->driver, c->handle, rv));
    apr_dbd_transaction_mode_set(c->driver, *tx, APR_DBD_TRANSACTION_ROLLBACK);
    return PE_STORE_OK;
}

pe_store_status_e pe_dbd_tx_end(pe_store_t *st, apr_dbd_transaction_t *tx, pe_store_status_e rs)
{
    pe_dbd_conn_t *c = DBD(st);

    /* NB: a failed operation forces the rollback whatever the driver's error state says. */
    apr_dbd_transaction_mode_set(c->driver, tx,
                                 rs == PE_STORE_OK ? APR_DBD_TRANSACTION_COMMIT : APR_DBD_TRANSACTION_ROLLBACK);
    if (apr_dbd_transaction_end(c->driver, pe_store_pool(st), tx) != 0 && rs == PE_STORE_OK)
        return pe_store_fail(st, "the transaction could not be committed: %s", apr_dbd_error(c->driver, c->handle, 1));
    return rs;
}

/* ----------------------------------------------------------------------------------------- */
/* Schema */

/* The versions of one driver's embedded schema, as (version, statements) pairs. */
static int schema_versions(apr_pool_t *p, const char *script, apr_array_header_t **out)
{
    apr_array_header_t *vs = apr_array_make(p, 4, sizeof(apr_array_header_t *));
    apr_array_header_t *cur = NULL;
    char *copy = apr_pstrdup(p, script), *line, *state = NULL;
    const char *stmt = NULL;
    int max = 0;

    for (line = apr_strtok(copy, "\n", &state); line; line = apr_strtok(NULL, "\n", &state)) {
        int v;

        if (sscanf(line, "-- @version %d", &v) == 1) {
            cur = apr_array_make(p, 16, sizeof(const char *));
            APR_ARRAY_PUSH(vs, apr_array_header_t *) = cur;
            max = v;
            continue;
        }
        if (!strncmp(line, "--", 2) || !cur)
            continue;
        stmt = stmt ? apr_pstrcat(p, stmt, "\n", line, NULL) : apr_pstrdup(p, line);
        if (line[strlen(line) - 1] == ';') {
            APR_ARRAY_PUSH(cur, const char *) = stmt;
            stmt = NULL;
        }
    }
    *out = vs;
    return max;
}

static const char *schema_script(pe_store_t *st)
{
    return DBD(st)->pgsql ? pe_schema_pgsql : pe_schema_sqlite3;
}

/* Current version, 0 when none, -1 when it cannot be read. */
static int schema_current(pe_store_t *st)
{
    pe_dbd_conn_t *c = DBD(st);
    apr_dbd_results_t *res = NULL;
    apr_dbd_row_t *row = NULL;
    int v = -1;

    if (apr_dbd_select(c->driver, pe_store_pool(st), c->handle, &res,
                       "SELECT COALESCE(MAX(version), 0) FROM pe_schema_version", 1) != 0)
        return -1;
    while (apr_dbd_get_row(c->driver, pe_store_pool(st), res, &row, -1) == 0) {
        const char *s = apr_dbd_get_entry(c->driver, row, 0);
        if (v < 0)
            v = s ? atoi(s) : 0;
    }
    return v;
}

/* Run one statement of the schema, or fail naming the version. */
static pe_store_status_e schema_query(pe_store_t *st, int v, const char *sql)
{
    pe_dbd_conn_t *c = DBD(st);
    int n, rv = apr_dbd_query(c->driver, c->handle, &n, sql);

    if (rv != 0)
        return pe_store_fail(st, "schema version %d: %s", v, apr_dbd_error(c->driver, c->handle, rv));
    return PE_STORE_OK;
}

/* Apply version v unless another process has, under a lock, in one transaction. */
static pe_store_status_e schema_apply_version(pe_store_t *st, int v, apr_array_header_t *stmts, int *done)
{
    apr_dbd_transaction_t *tx;
    pe_store_status_e rs;
    int i;

    *done = 0;
    if ((rs = pe_dbd_tx_begin(st, &tx)) != PE_STORE_OK)
        return rs;
    /* NB: two nodes may start at once: PostgreSQL serialises them on an advisory lock,
     * SQLite on its write lock; the version is checked again under the lock. */
    if (DBD(st)->pgsql)
        rs = schema_query(st, v, "SELECT pg_advisory_xact_lock(72010001)");
    if (rs == PE_STORE_OK && schema_current(st) >= v)
        return pe_dbd_tx_end(st, tx, PE_STORE_OK);
    for (i = 0; rs == PE_STORE_OK && i < stmts->nelts; i++)
        rs = schema_query(st, v, APR_ARRAY_IDX(stmts, i, const char *));
    if (rs == PE_STORE_OK)
        rs = schema_query(st, v,
                          apr_psprintf(pe_store_pool(st),
                                       "INSERT INTO pe_schema_version (version, "
                                       "applied_at) VALUES (%d, %" APR_INT64_T_FMT ")",
                                       v, (apr_int64_t)apr_time_now()));
    if ((rs = pe_dbd_tx_end(st, tx, rs)) == PE_STORE_OK)
        *done = 1;
    return rs;
}

/* Apply the missing versions, each in its own transaction. */
static pe_store_status_e schema_apply_once(pe_store_t *st, int *applied)
{
    apr_array_header_t *vs;
    pe_store_status_e rs;
    int v, done;

    pe_dbd_conn_init(st);
    rs = schema_query(st, 0,
                      "CREATE TABLE IF NOT EXISTS pe_schema_version (version INTEGER PRIMARY KEY, "
                      "applied_at BIGINT NOT NULL)");
    if (rs != PE_STORE_OK)
        return rs;
    schema_versions(pe_store_pool(st), schema_script(st), &vs);
    for (v = 1; v <= vs->nelts; v++) {
        int cur = schema_current(st);

        if (cur < 0)
            return pe_store_fail(st, "the schema version cannot be read: %s",
                                 apr_dbd_error(DBD(st)->driver, DBD(st)->handle, 1));
        if (cur >= v)
            continue;
        if ((rs = schema_apply_version(st, v, APR_ARRAY_IDX(vs, v - 1, apr_array_header_t *), &done)) != PE_STORE_OK)
            return rs;
        if (done) {
            pe_clog(PE_LOG_NOTICE, 0, PE_LOGNO(30006) "store: schema version %d applied (%s)", v,
                    apr_dbd_name(DBD(st)->driver));
            (*applied)++;
        }
    }
    return PE_STORE_OK;
}

/*
 * The children of a fresh server all start on the schema at once. Each version is checked again
 * under the lock, so a pass that lost a race is safe to repeat; on SQLite a statement prepared
 * before another process's schema change fails with "database schema has changed" (SQLITE_SCHEMA)
 * and a busy lock can outlast the front end's one retry, so a few passes are made here, a little
 * apart (start-up only, never a request).
 */
#define SCHEMA_PASSES 5

static pe_store_status_e dbd_schema_apply(pe_store_t *st, int *applied)
{
    pe_store_status_e rs = PE_STORE_EIO;
    int pass;

    for (pass = 0; pass < SCHEMA_PASSES; pass++) {
        if (pass)
            apr_sleep(apr_time_from_msec(20 * pass));
        if ((rs = schema_apply_once(st, applied)) == PE_STORE_OK)
            break;
    }
    return rs;
}

/* ----------------------------------------------------------------------------------------- */
/* The ops tables: the same functions for both drivers, named apart for logs and tests */

#define PE_DBD_OPS(nm)                                                                                                 \
    {                                                                                                                  \
        .name = nm, .reset = dbd_reset, .schema_apply = dbd_schema_apply, .user_create = pe_dbd_user_create,           \
        .user_by_id = pe_dbd_user_by_id, .user_by_email = pe_dbd_user_by_email,                                        \
        .user_by_key_digest = pe_dbd_user_by_key_digest, .user_update_profile = pe_dbd_user_update_profile,            \
        .user_set_api_key = pe_dbd_user_set_api_key, .user_set_email = pe_dbd_user_set_email,                          \
        .user_set_password = pe_dbd_user_set_password, .user_login_reserve = pe_dbd_user_login_reserve,                \
        .user_login_ok = pe_dbd_user_login_ok, .user_delete = pe_dbd_user_delete,                                      \
        .session_create = pe_dbd_session_create, .session_by_token = pe_dbd_session_by_token,                          \
        .session_rotate = pe_dbd_session_rotate, .session_delete = pe_dbd_session_delete,                              \
        .session_delete_all = pe_dbd_session_delete_all, .event = pe_dbd_event, .event_count = pe_dbd_event_count,     \
        .credits_take = pe_dbd_credits_take, .credits_refund = pe_dbd_credits_refund,                                  \
        .credits_get = pe_dbd_credits_get, .credits_take_n = pe_dbd_credits_take_n,                                    \
        .credits_refund_n = pe_dbd_credits_refund_n, .msglog_insert = pe_dbd_msglog_insert,                            \
        .msglog_count = pe_dbd_msglog_count, .system_prompt_get = pe_dbd_system_prompt_get,                            \
        .system_prompt_set = pe_dbd_system_prompt_set, .iplist_active = pe_dbd_iplist_active,                          \
        .iplist_add = pe_dbd_iplist_add, .iplist_remove = pe_dbd_iplist_remove,                                        \
        .staff_create = pe_dbd_staff_create,                                                                   \
        .staff_by_id = pe_dbd_staff_by_id,                                                                     \
        .staff_by_username = pe_dbd_staff_by_username,                                                         \
        .staff_list = pe_dbd_staff_list,                                                                       \
        .staff_set_password = pe_dbd_staff_set_password,                                                       \
        .staff_login_reserve = pe_dbd_staff_login_reserve,                                                     \
        .staff_login_ok = pe_dbd_staff_login_ok,                                                               \
        .staff_set_active = pe_dbd_staff_set_active, .staff_delete = pe_dbd_staff_delete,                      \
        .user_update = pe_dbd_user_update,                                                                     \
        .user_list = pe_dbd_user_list,                                                                         \
        .event_list = pe_dbd_event_list,                                                                       \
        .msglog_list = pe_dbd_msglog_list,                                                                     \
        .system_prompt_reset = pe_dbd_system_prompt_reset,                                                     \
        .msglog_usage = pe_dbd_msglog_usage,                                                                   \
        .msglog_top_users = pe_dbd_msglog_top_users,                                                           \
        .ping = pe_dbd_ping,                                                                                   \
        .usage = pe_dbd_usage,                                                                                 \
        .email_send_take = pe_dbd_email_send_take, .email_send_release = pe_dbd_email_send_release,                    \
        .email_code_set = pe_dbd_email_code_set, .email_code_attempt = pe_dbd_email_code_attempt,                      \
        .email_code_use = pe_dbd_email_code_use,                                                                       \
        .api_usage_insert = pe_dbd_api_usage_insert, .api_usage_purge = pe_dbd_api_usage_purge,                       \
        .api_usage_sum = pe_dbd_api_usage_sum, .api_usage_get = pe_dbd_api_usage_get,                                  \
    }

static const pe_store_ops_t pe_store_sqlite3_ops = PE_DBD_OPS("sqlite3");
static const pe_store_ops_t pe_store_pgsql_ops = PE_DBD_OPS("pgsql");
