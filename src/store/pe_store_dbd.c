/*
 * pe_store_dbd.c: the store on apr_dbd (mod_dbd's connections): SQLite and PostgreSQL.
 *
 * NB: statements are prepared lazily, on first use on a connection, into that connection's
 * statement hash; for PostgreSQL without a server-side name (apr_dbd_pgsql then runs them
 * with PQexecParams), so a connection that libpq reset after a server restart has no stale
 * prepared statements. mod_dbd's own config-time preparation cannot be used here: it
 * prepares when a connection is made, which fails before the schema exists.
 */
#include "pe_store.h"
#include "pe_logno.h"

#include "pe_schema_sql.h"

#include <apr_strings.h>
#include <apr_tables.h>
#include <stdlib.h>
#include <openssl/rand.h>
#include <string.h>

/* Every statement the backend uses; %s are the parameters (apr_dbd syntax). */
typedef enum {
    Q_USER_INSERT, Q_USER_BY_ID, Q_USER_BY_EMAIL, Q_USER_BY_KEY, Q_USER_PROFILE, Q_USER_SET_KEY,
    Q_USER_SET_EMAIL, Q_USER_SET_PASSWORD, Q_USER_FAIL_COUNT, Q_USER_FAIL_LOCK, Q_USER_FAIL_READ,
    Q_USER_LOGIN_OK, Q_USER_ARCHIVE, Q_USER_DELETE, Q_MSGLOG_DELETE_USER,
    Q_SESS_INSERT, Q_SESS_BY_TOKEN, Q_SESS_TOUCH, Q_SESS_ROTATE, Q_SESS_BY_REFRESHED, Q_SESS_DELETE,
    Q_SESS_DELETE_ALL, Q_SESS_DELETE_ALL_BUT, Q_EVENT_INSERT, Q_EVENT_COUNT, Q_EVENT_COUNT_PRINCIPAL,
    Q_CREDITS_TAKE, Q_CREDITS_REFUND, Q_CREDITS_GET, Q_MSGLOG_COUNT, Q_MSGLOG_COUNT_USER,
    Q_CREDITS_TAKE_N, Q_CREDITS_REFUND_N,
    Q_PROMPT_GET, Q_PROMPT_DEL, Q_PROMPT_INS,
    Q_BLOCKED_ACTIVE, Q_BLOCKED_INS, Q_BLOCKED_DEL, Q_WHITELIST_ACTIVE, Q_WHITELIST_INS, Q_WHITELIST_DEL,
    Q_USER_LOGIN_RESERVE,
    Q_COUNT
} pe_q_e;

#define USER_COLS                                                                                  \
    "id, username, name, email, password_hash, about_me, hobbies, user_type, subscription_plan, "     \
    "credits_main, credits_reset, conv_limit, conv_reset, reset_day, access_rtype, level, "           \
    "additional_notes, api_key_digest, api_key_prefix, api_key_enc, is_active, is_verified, "         \
    "failed_logins, locked_until, created_at, updated_at, last_login, last_activity"
#define SESS_COLS                                                                                  \
    "id, principal_kind, principal_id, token_digest, refresh_digest, expires_at, refresh_expires_at, " \
    "ip_address, user_agent, created_at, last_used"

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
    /* The counter starts again after an expired lock (SPEC 16.2 item 28). */
    [Q_USER_FAIL_COUNT] = {"pe_user_fail_count",
                           "UPDATE pe_users SET failed_logins = CASE WHEN locked_until > 0 AND locked_until <= %s "
                           "THEN 1 ELSE failed_logins + 1 END, locked_until = CASE WHEN locked_until > 0 AND "
                           "locked_until <= %s THEN 0 ELSE locked_until END WHERE id = %s"},
    [Q_USER_FAIL_LOCK] = {"pe_user_fail_lock",
                          "UPDATE pe_users SET locked_until = %s WHERE id = %s AND failed_logins >= %s "
                          "AND locked_until = 0"},
    [Q_USER_FAIL_READ] = {"pe_user_fail_read", "SELECT failed_logins, locked_until FROM pe_users WHERE id = %s"},
    /* One guarded statement: only an unlocked account (no lock, or an expired one, after which the
     * counter starts again) gets the attempt, and the attempt that reaches the maximum locks at once. */
    [Q_USER_LOGIN_RESERVE] = {"pe_user_login_reserve",
                              "UPDATE pe_users SET failed_logins = CASE WHEN locked_until > 0 THEN 1 ELSE "
                              "failed_logins + 1 END, locked_until = CASE WHEN (CASE WHEN locked_until > 0 THEN 1 "
                              "ELSE failed_logins + 1 END) >= CAST(%s AS INTEGER) THEN CAST(%s AS BIGINT) ELSE 0 END "
                              "WHERE id = %s AND locked_until <= CAST(%s AS BIGINT) "
                              "RETURNING failed_logins, locked_until"},
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
    [Q_BLOCKED_ACTIVE] = {"pe_blocked_active",
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
};

/* Kind <-> name. */
const char *pe_principal_kind_name(pe_principal_kind_e k)
{
    switch (k) {
    case PE_PRINCIPAL_USER: return "user";
    case PE_PRINCIPAL_ADMIN: return "admin";
    case PE_PRINCIPAL_SUPPORT: return "support";
    default: return "";
    }
}

static pe_principal_kind_e kind_from_name(const char *s)
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

/* A store handle on a connection. */
pe_store_t *pe_store_dbd_make(apr_pool_t *p, const apr_dbd_driver_t *driver, apr_dbd_t *handle,
                              apr_hash_t *prepared, apr_pool_t *conn_pool)
{
    pe_store_t *st = apr_pcalloc(p, sizeof(*st));

    st->pool = p;
    st->driver = driver;
    st->handle = handle;
    st->prepared = prepared;
    st->conn_pool = conn_pool;
    return st;
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

static int is_pgsql(const pe_store_t *st)
{
    return strcmp(apr_dbd_name(st->driver), "pgsql") == 0;
}

#define PE_CONN_READY "pe__conn_ready"

/*
 * Once per connection: SQLite waits for a busy database instead of failing at once (several
 * children write the same file), uses write-ahead logging so readers do not block writers, and
 * syncs at checkpoints (synchronous NORMAL) rather than at every commit.
 */
static void conn_init(pe_store_t *st)
{
    int n;

    if (apr_hash_get(st->prepared, PE_CONN_READY, APR_HASH_KEY_STRING))
        return;
    if (!is_pgsql(st)) {
        apr_dbd_query(st->driver, st->handle, &n, "PRAGMA busy_timeout = 10000");
        apr_dbd_query(st->driver, st->handle, &n, "PRAGMA journal_mode = WAL");
        /* With WAL, NORMAL syncs at checkpoints, not at every commit: the database stays
         * consistent after a crash; a power loss may undo the last commits. */
        apr_dbd_query(st->driver, st->handle, &n, "PRAGMA synchronous = NORMAL");
    }
    apr_hash_set(st->prepared, PE_CONN_READY, APR_HASH_KEY_STRING, (void *)1);
}

/* The statement for q on this connection, prepared on first use. */
static apr_dbd_prepared_t *stmt_get(pe_store_t *st, pe_q_e q)
{
    apr_dbd_prepared_t *stmt = apr_hash_get(st->prepared, pe_q[q].label, APR_HASH_KEY_STRING);
    int rv;

    if (stmt)
        return stmt;
    conn_init(st);
    /* NB: a NULL label keeps PostgreSQL statements unnamed (see the file comment). */
    rv = apr_dbd_prepare(st->driver, st->conn_pool, st->handle, pe_q[q].sql, is_pgsql(st) ? NULL : pe_q[q].label,
                         &stmt);
    if (rv != 0) {
        st->error = apr_pstrdup(st->pool, apr_dbd_error(st->driver, st->handle, rv));
        pe_clog(PE_LOG_ERR, 0, PE_LOGNO(30001) "store: cannot prepare %s: %s", pe_q[q].label, st->error);
        return NULL;
    }
    apr_hash_set(st->prepared, pe_q[q].label, APR_HASH_KEY_STRING, stmt);
    return stmt;
}

/* Classify a failed statement: a unique violation names its field; the rest is EIO. */
static pe_store_status_e fail(pe_store_t *st, pe_q_e q, int rv)
{
    const char *msg = apr_dbd_error(st->driver, st->handle, rv);

    st->error = apr_pstrdup(st->pool, msg ? msg : "unknown error");
    if (msg && (strstr(msg, "UNIQUE constraint failed") || strstr(msg, "duplicate key value"))) {
        if (strstr(msg, "username"))
            st->conflict = "username";
        else if (strstr(msg, "email"))
            st->conflict = "email";
        else if (strstr(msg, "api_key"))
            st->conflict = "api_key";
        else if (strstr(msg, "request_id"))
            st->conflict = "request_id";
        else
            st->conflict = "id";
        return PE_STORE_CONFLICT;
    }
    pe_clog(PE_LOG_ERR, 0, PE_LOGNO(30002) "store: %s failed: %s", pe_q[q].label, st->error);
    return PE_STORE_EIO;
}

/* Run a write; *rows gets the affected row count. */
static pe_store_status_e exec_q(pe_store_t *st, pe_q_e q, int *rows, int nargs, const char **args)
{
    apr_dbd_prepared_t *stmt = stmt_get(st, q);
    int n = 0, rv;

    if (!stmt)
        return PE_STORE_EIO;
    rv = apr_dbd_pquery(st->driver, st->pool, st->handle, &n, stmt, nargs, args);
    if (rv != 0)
        return fail(st, q, rv);
    if (rows)
        *rows = n;
    return PE_STORE_OK;
}

/* Run a query and keep every row: an array of `const char *[ncols]` copies in st->pool. */
static pe_store_status_e select_rows(pe_store_t *st, pe_q_e q, int nargs, const char **args, int ncols,
                                     apr_array_header_t **rows)
{
    apr_dbd_prepared_t *stmt = stmt_get(st, q);
    apr_dbd_results_t *res = NULL;
    apr_dbd_row_t *row = NULL;
    int rv, i;

    *rows = apr_array_make(st->pool, 4, sizeof(const char **));
    if (!stmt)
        return PE_STORE_EIO;
    /* NB: buffered (random-access) results: with sequential ones apr_dbd_pgsql reports a
     * failure only when rows are fetched, where it looks like "no rows". */
    rv = apr_dbd_pselect(st->driver, st->pool, st->handle, &res, stmt, 1, nargs, args);
    if (rv != 0)
        return fail(st, q, rv);
    /* NB: drain to the end; breaking out early leaves the statement unfinished (mod_authn_dbd). */
    while (apr_dbd_get_row(st->driver, st->pool, res, &row, -1) == 0) {
        const char **cols = apr_pcalloc(st->pool, (apr_size_t)ncols * sizeof(*cols));

        for (i = 0; i < ncols; i++) {
            const char *v = apr_dbd_get_entry(st->driver, row, i);
            cols[i] = v ? apr_pstrdup(st->pool, v) : NULL;
        }
        APR_ARRAY_PUSH(*rows, const char **) = cols;
    }
    return PE_STORE_OK;
}

/* Run a query and keep the first row (every row is read, so the driver can clean up). */
static pe_store_status_e select_q(pe_store_t *st, pe_q_e q, int nargs, const char **args, int ncols,
                                  const char **cols)
{
    apr_array_header_t *rows;
    pe_store_status_e rs = select_rows(st, q, nargs, args, ncols, &rows);

    if (rs != PE_STORE_OK)
        return rs;
    if (!rows->nelts)
        return PE_STORE_NOTFOUND;
    memcpy(cols, APR_ARRAY_IDX(rows, 0, const char **), (apr_size_t)ncols * sizeof(*cols));
    return PE_STORE_OK;
}

/*
 * After an I/O failure, decide whether the operation runs again, and where:
 *  1st: on the same connection once check_conn passes (it resets a PostgreSQL connection that
 *       failed after a server restart; our statements are unnamed, so nothing is stale);
 *  2nd: on a new connection from the glue (a connection check_conn cannot repair).
 * Our statements are dropped from the connection's cache so they are prepared again.
 */
static int store_reconnect(pe_store_t *st)
{
    int i, ok;

    if (st->retried >= 2)
        return 0;
    for (i = 0; i < Q_COUNT; i++)
        apr_hash_set(st->prepared, pe_q[i].label, APR_HASH_KEY_STRING, NULL);
    apr_hash_set(st->prepared, PE_CONN_READY, APR_HASH_KEY_STRING, NULL);
    if (st->retried++ == 0 && apr_dbd_check_conn(st->driver, st->pool, st->handle) == APR_SUCCESS)
        ok = 1;
    else
        ok = st->reconnect && st->reconnect(st) == APR_SUCCESS;
    if (ok)
        pe_clog(PE_LOG_WARNING, 0, PE_LOGNO(30003) "store: retrying (%d) after: %s", st->retried,
                st->error ? st->error : "error");
    return ok;
}

#define PE_STORE_RETRY(st, call)                                                                   \
    do {                                                                                           \
        pe_store_status_e rs_ = (call);                                                            \
        while (rs_ == PE_STORE_EIO && store_reconnect(st))                                         \
            rs_ = (call);                                                                          \
        return rs_;                                                                                \
    } while (0)

static const char *i64(apr_pool_t *p, apr_int64_t v)
{
    return apr_psprintf(p, "%" APR_INT64_T_FMT, v);
}

static apr_int64_t to64(const char *s)
{
    return s ? apr_atoi64(s) : 0;
}

/* Transactions: begin, and end committing unless an operation failed. */
static pe_store_status_e tx_begin(pe_store_t *st, apr_dbd_transaction_t **tx)
{
    int rv;

    *tx = NULL;
    rv = apr_dbd_transaction_start(st->driver, st->pool, st->handle, tx);
    if (rv != 0) {
        st->error = apr_pstrdup(st->pool, apr_dbd_error(st->driver, st->handle, rv));
        return PE_STORE_EIO;
    }
    apr_dbd_transaction_mode_set(st->driver, *tx, APR_DBD_TRANSACTION_ROLLBACK);
    return PE_STORE_OK;
}

static pe_store_status_e tx_end(pe_store_t *st, apr_dbd_transaction_t *tx, pe_store_status_e rs)
{
    if (rs != PE_STORE_OK)
        apr_dbd_transaction_mode_set(st->driver, tx, APR_DBD_TRANSACTION_ROLLBACK | APR_DBD_TRANSACTION_IGNORE_ERRORS);
    else
        apr_dbd_transaction_mode_set(st->driver, tx, APR_DBD_TRANSACTION_COMMIT);
    if (rs != PE_STORE_OK) {
        /* Force the rollback whatever the driver's error state says. */
        apr_dbd_transaction_mode_set(st->driver, tx, APR_DBD_TRANSACTION_ROLLBACK);
    }
    if (apr_dbd_transaction_end(st->driver, st->pool, tx) != 0 && rs == PE_STORE_OK)
        return PE_STORE_EIO;
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

static const char *schema_script(const pe_store_t *st)
{
    return is_pgsql(st) ? pe_schema_pgsql : pe_schema_sqlite3;
}

int pe_store_schema_version(void)
{
    apr_pool_t *p;
    apr_array_header_t *vs;
    int v;

    apr_pool_create(&p, NULL);
    v = schema_versions(p, pe_schema_sqlite3, &vs);
    apr_pool_destroy(p);
    return v;
}

/* Current version, 0 when none. */
static int schema_current(pe_store_t *st)
{
    apr_dbd_results_t *res = NULL;
    apr_dbd_row_t *row = NULL;
    int v = -1;

    if (apr_dbd_select(st->driver, st->pool, st->handle, &res,
                       "SELECT COALESCE(MAX(version), 0) FROM pe_schema_version", 1) != 0)
        return -1;
    while (apr_dbd_get_row(st->driver, st->pool, res, &row, -1) == 0) {
        const char *s = apr_dbd_get_entry(st->driver, row, 0);
        if (v < 0)
            v = s ? atoi(s) : 0;
    }
    return v;
}

/* Apply the missing versions, each in its own transaction. */
pe_store_status_e pe_store_schema_apply(pe_store_t *st, int *applied)
{
    apr_array_header_t *vs;
    int n, cur, v;

    *applied = 0;
    conn_init(st);
    if (apr_dbd_query(st->driver, st->handle, &n,
                      "CREATE TABLE IF NOT EXISTS pe_schema_version (version INTEGER PRIMARY KEY, "
                      "applied_at BIGINT NOT NULL)") != 0) {
        st->error = apr_pstrdup(st->pool, apr_dbd_error(st->driver, st->handle, 1));
        pe_clog(PE_LOG_DEBUG, 0, PE_LOGNO(30004) "store: cannot create pe_schema_version: %s", st->error);
        return PE_STORE_EIO;
    }
    schema_versions(st->pool, schema_script(st), &vs);
    for (v = 1; v <= vs->nelts; v++) {
        apr_array_header_t *stmts = APR_ARRAY_IDX(vs, v - 1, apr_array_header_t *);
        apr_dbd_transaction_t *tx;
        pe_store_status_e rs = PE_STORE_OK;
        int i;

        cur = schema_current(st);
        if (cur < 0)
            return PE_STORE_EIO;
        if (cur >= v)
            continue;
        if (tx_begin(st, &tx) != PE_STORE_OK)
            return PE_STORE_EIO;
        /* NB: two nodes may start at once: PostgreSQL serialises them on an advisory lock,
         * SQLite on its write lock; the version is checked again under the lock. */
        if (is_pgsql(st) && apr_dbd_query(st->driver, st->handle, &n, "SELECT pg_advisory_xact_lock(72010001)") != 0)
            rs = PE_STORE_EIO;
        if (rs == PE_STORE_OK && schema_current(st) >= v) {
            tx_end(st, tx, PE_STORE_OK);
            continue;
        }
        for (i = 0; rs == PE_STORE_OK && i < stmts->nelts; i++) {
            int rv = apr_dbd_query(st->driver, st->handle, &n, APR_ARRAY_IDX(stmts, i, const char *));
            if (rv != 0) {
                st->error = apr_pstrdup(st->pool, apr_dbd_error(st->driver, st->handle, rv));
                pe_clog(PE_LOG_DEBUG, 0, PE_LOGNO(30005) "store: schema version %d failed: %s", v, st->error);
                rs = PE_STORE_EIO;
            }
        }
        if (rs == PE_STORE_OK &&
            apr_dbd_query(st->driver, st->handle, &n,
                          apr_psprintf(st->pool, "INSERT INTO pe_schema_version (version, applied_at) VALUES (%d, %"
                                       APR_INT64_T_FMT ")", v, (apr_int64_t)apr_time_now())) != 0)
            rs = PE_STORE_EIO;
        if (tx_end(st, tx, rs) != PE_STORE_OK)
            return PE_STORE_EIO;
        pe_clog(PE_LOG_NOTICE, 0, PE_LOGNO(30006) "store: schema version %d applied (%s)", v,
                apr_dbd_name(st->driver));
        (*applied)++;
    }
    return PE_STORE_OK;
}

/* ----------------------------------------------------------------------------------------- */
/* Users */

#define USER_NCOLS 28

/* A row of USER_COLS -> pe_user_t. */
static pe_user_t *user_from_cols(apr_pool_t *p, const char **c)
{
    pe_user_t *u = apr_pcalloc(p, sizeof(*u));

    u->id = c[0]; u->username = c[1]; u->name = c[2]; u->email = c[3]; u->password_hash = c[4];
    u->about_me = c[5] ? c[5] : ""; u->hobbies = c[6] ? c[6] : ""; u->user_type = c[7];
    u->subscription_plan = c[8];
    u->credits_main = to64(c[9]); u->credits_reset = to64(c[10]); u->conv_limit = to64(c[11]);
    u->conv_reset = to64(c[12]); u->reset_day = to64(c[13]);
    u->access_rtype = c[14] ? c[14] : ""; u->level = c[15]; u->additional_notes = c[16] ? c[16] : "";
    u->api_key_digest = c[17]; u->api_key_prefix = c[18]; u->api_key_enc = c[19];
    u->is_active = (int)to64(c[20]); u->is_verified = (int)to64(c[21]); u->failed_logins = (int)to64(c[22]);
    u->locked_until = to64(c[23]); u->created_at = to64(c[24]); u->updated_at = to64(c[25]);
    u->last_login = to64(c[26]); u->last_activity = to64(c[27]);
    return u;
}

static pe_store_status_e user_create_once(pe_store_t *st, const pe_user_t *u)
{
    apr_pool_t *p = st->pool;
    const char *a[USER_NCOLS] = {
        u->id, u->username, u->name, u->email, u->password_hash, u->about_me ? u->about_me : "",
        u->hobbies ? u->hobbies : "", u->user_type, u->subscription_plan, i64(p, u->credits_main),
        i64(p, u->credits_reset), i64(p, u->conv_limit), i64(p, u->conv_reset), i64(p, u->reset_day),
        u->access_rtype ? u->access_rtype : "", u->level, u->additional_notes ? u->additional_notes : "",
        u->api_key_digest, u->api_key_prefix, u->api_key_enc, i64(p, u->is_active), i64(p, u->is_verified),
        i64(p, u->failed_logins), i64(p, u->locked_until), i64(p, u->created_at), i64(p, u->updated_at),
        i64(p, u->last_login), i64(p, u->last_activity)};

    return exec_q(st, Q_USER_INSERT, NULL, USER_NCOLS, a);
}

pe_store_status_e pe_store_user_create(pe_store_t *st, const pe_user_t *u)
{
    PE_STORE_RETRY(st, user_create_once(st, u));
}

static pe_store_status_e user_by_once(pe_store_t *st, pe_q_e q, const char *key, pe_user_t **out)
{
    const char *c[USER_NCOLS];
    pe_store_status_e rs = select_q(st, q, 1, &key, USER_NCOLS, c);

    *out = (rs == PE_STORE_OK) ? user_from_cols(st->pool, c) : NULL;
    return rs;
}

pe_store_status_e pe_store_user_by_id(pe_store_t *st, const char *id, pe_user_t **out)
{
    PE_STORE_RETRY(st, user_by_once(st, Q_USER_BY_ID, id, out));
}

pe_store_status_e pe_store_user_by_email(pe_store_t *st, const char *email, pe_user_t **out)
{
    PE_STORE_RETRY(st, user_by_once(st, Q_USER_BY_EMAIL, email, out));
}

pe_store_status_e pe_store_user_by_key_digest(pe_store_t *st, const char *digest, pe_user_t **out)
{
    PE_STORE_RETRY(st, user_by_once(st, Q_USER_BY_KEY, digest, out));
}

/* One UPDATE by id; NOTFOUND when no row changed. */
static pe_store_status_e update_once(pe_store_t *st, pe_q_e q, int nargs, const char **a)
{
    int rows = 0;
    pe_store_status_e rs = exec_q(st, q, &rows, nargs, a);

    return (rs == PE_STORE_OK && rows == 0) ? PE_STORE_NOTFOUND : rs;
}

pe_store_status_e pe_store_user_update_profile(pe_store_t *st, const char *id, const char *name,
                                               const char *about_me, const char *hobbies, apr_time_t now)
{
    const char *a[] = {name, about_me, hobbies, i64(st->pool, now), id};
    PE_STORE_RETRY(st, update_once(st, Q_USER_PROFILE, 5, a));
}

pe_store_status_e pe_store_user_set_api_key(pe_store_t *st, const char *id, const char *digest,
                                            const char *prefix, const char *enc, apr_time_t now)
{
    const char *a[] = {digest, prefix, enc, i64(st->pool, now), id};
    PE_STORE_RETRY(st, update_once(st, Q_USER_SET_KEY, 5, a));
}

pe_store_status_e pe_store_user_set_email(pe_store_t *st, const char *id, const char *email, int is_verified,
                                          apr_time_t now)
{
    const char *a[] = {email, is_verified ? "1" : "0", i64(st->pool, now), id};
    PE_STORE_RETRY(st, update_once(st, Q_USER_SET_EMAIL, 4, a));
}

pe_store_status_e pe_store_user_set_password(pe_store_t *st, const char *id, const char *hash, apr_time_t now)
{
    const char *a[] = {hash, i64(st->pool, now), id};
    PE_STORE_RETRY(st, update_once(st, Q_USER_SET_PASSWORD, 3, a));
}

static pe_store_status_e login_failed_once(pe_store_t *st, const char *id, apr_time_t now, int max,
                                           apr_time_t lock, int *failed, apr_time_t *locked_until)
{
    const char *snow = i64(st->pool, now);
    const char *a1[] = {snow, snow, id};
    const char *a2[] = {i64(st->pool, now + lock), id, i64(st->pool, max)};
    const char *c[2];
    pe_store_status_e rs;

    if ((rs = update_once(st, Q_USER_FAIL_COUNT, 3, a1)) != PE_STORE_OK)
        return rs;
    if ((rs = exec_q(st, Q_USER_FAIL_LOCK, NULL, 3, a2)) != PE_STORE_OK)
        return rs;
    if ((rs = select_q(st, Q_USER_FAIL_READ, 1, &id, 2, c)) != PE_STORE_OK)
        return rs;
    *failed = (int)to64(c[0]);
    *locked_until = to64(c[1]);
    return PE_STORE_OK;
}

pe_store_status_e pe_store_user_login_failed(pe_store_t *st, const char *id, apr_time_t now, int max,
                                             apr_time_t lock, int *failed, apr_time_t *locked_until)
{
    PE_STORE_RETRY(st, login_failed_once(st, id, now, max, lock, failed, locked_until));
}

static pe_store_status_e login_reserve_once(pe_store_t *st, const char *id, apr_time_t now, int max,
                                            apr_time_t lock, int *attempt, apr_time_t *locked_until)
{
    const char *snow = i64(st->pool, now);
    const char *a[] = {i64(st->pool, max), i64(st->pool, now + lock), id, snow};
    const char *c[2];
    pe_store_status_e rs = select_q(st, Q_USER_LOGIN_RESERVE, 4, a, 2, c);

    if (rs == PE_STORE_NOTFOUND) {
        /* no row taken: locked, or no such user */
        if ((rs = select_q(st, Q_USER_FAIL_READ, 1, &id, 2, c)) != PE_STORE_OK)
            return rs;
        *attempt = 0;
        *locked_until = to64(c[1]);
        return PE_STORE_EMPTY;
    }
    if (rs != PE_STORE_OK)
        return rs;
    *attempt = (int)to64(c[0]);
    *locked_until = to64(c[1]);
    return PE_STORE_OK;
}

pe_store_status_e pe_store_user_login_reserve(pe_store_t *st, const char *id, apr_time_t now, int max,
                                              apr_time_t lock, int *attempt, apr_time_t *locked_until)
{
    PE_STORE_RETRY(st, login_reserve_once(st, id, now, max, lock, attempt, locked_until));
}

pe_store_status_e pe_store_user_login_ok(pe_store_t *st, const char *id, apr_time_t now)
{
    const char *snow = i64(st->pool, now);
    const char *a[] = {snow, snow, id};
    PE_STORE_RETRY(st, update_once(st, Q_USER_LOGIN_OK, 3, a));
}

static pe_store_status_e user_delete_once(pe_store_t *st, const pe_user_t *u, const char *reason,
                                          const char *deleted_by, apr_time_t now)
{
    apr_dbd_transaction_t *tx;
    pe_store_status_e rs;
    const char *arch[] = {apr_pstrcat(st->pool, "deleted_", u->id, NULL), u->id, u->username, u->name, u->email,
                          u->user_type, i64(st->pool, u->created_at), u->subscription_plan, reason ? reason : "",
                          i64(st->pool, now), deleted_by};
    const char *kind = pe_principal_kind_name(PE_PRINCIPAL_USER);
    const char *sess[] = {kind, u->id};
    const char *uid = u->id;

    if ((rs = tx_begin(st, &tx)) != PE_STORE_OK)
        return rs;
    rs = exec_q(st, Q_USER_ARCHIVE, NULL, 11, arch);
    if (rs == PE_STORE_OK)
        rs = exec_q(st, Q_SESS_DELETE_ALL, NULL, 2, sess);
    if (rs == PE_STORE_OK)
        rs = exec_q(st, Q_MSGLOG_DELETE_USER, NULL, 1, &uid);
    if (rs == PE_STORE_OK)
        rs = update_once(st, Q_USER_DELETE, 1, &uid);
    return tx_end(st, tx, rs);
}

pe_store_status_e pe_store_user_delete(pe_store_t *st, const pe_user_t *u, const char *reason,
                                       const char *deleted_by, apr_time_t now)
{
    PE_STORE_RETRY(st, user_delete_once(st, u, reason, deleted_by, now));
}

/* ----------------------------------------------------------------------------------------- */
/* Sessions */

#define SESS_NCOLS 11

static pe_session_t *sess_from_cols(apr_pool_t *p, const char **c)
{
    pe_session_t *s = apr_pcalloc(p, sizeof(*s));

    s->id = c[0]; s->kind = kind_from_name(c[1]); s->principal_id = c[2]; s->token_digest = c[3];
    s->refresh_digest = c[4]; s->expires_at = to64(c[5]); s->refresh_expires_at = to64(c[6]);
    s->ip_address = c[7]; s->user_agent = c[8]; s->created_at = to64(c[9]); s->last_used = to64(c[10]);
    return s;
}

static pe_store_status_e sess_create_once(pe_store_t *st, const pe_session_t *s)
{
    apr_pool_t *p = st->pool;
    const char *a[SESS_NCOLS] = {s->id, pe_principal_kind_name(s->kind), s->principal_id, s->token_digest,
                                 s->refresh_digest, i64(p, s->expires_at), i64(p, s->refresh_expires_at),
                                 s->ip_address ? s->ip_address : "", s->user_agent ? s->user_agent : "",
                                 i64(p, s->created_at), i64(p, s->last_used)};

    return exec_q(st, Q_SESS_INSERT, NULL, SESS_NCOLS, a);
}

pe_store_status_e pe_store_session_create(pe_store_t *st, const pe_session_t *s)
{
    PE_STORE_RETRY(st, sess_create_once(st, s));
}

static pe_store_status_e sess_by_token_once(pe_store_t *st, const char *digest, apr_time_t now, pe_session_t **out)
{
    const char *c[SESS_NCOLS];
    const char *a[] = {digest, i64(st->pool, now)};
    pe_store_status_e rs = select_q(st, Q_SESS_BY_TOKEN, 2, a, SESS_NCOLS, c);

    *out = NULL;
    if (rs != PE_STORE_OK)
        return rs;
    *out = sess_from_cols(st->pool, c);
    (*out)->last_used = now;
    {
        const char *t[] = {i64(st->pool, now), (*out)->id};
        return exec_q(st, Q_SESS_TOUCH, NULL, 2, t);
    }
}

pe_store_status_e pe_store_session_by_token(pe_store_t *st, const char *digest, apr_time_t now, pe_session_t **out)
{
    PE_STORE_RETRY(st, sess_by_token_once(st, digest, now, out));
}

static pe_store_status_e sess_rotate_once(pe_store_t *st, const char *refresh_digest, const char *ntd,
                                          const char *nrd, apr_time_t exp, apr_time_t rexp, apr_time_t now,
                                          pe_session_t **out)
{
    const char *snow = i64(st->pool, now);
    const char *a[] = {ntd, nrd, i64(st->pool, exp), i64(st->pool, rexp), snow, refresh_digest, snow};
    const char *c[SESS_NCOLS];
    pe_store_status_e rs;

    *out = NULL;
    /* NB: the guarded UPDATE is the arbiter: of concurrent rotations only one matches. */
    if ((rs = update_once(st, Q_SESS_ROTATE, 7, a)) != PE_STORE_OK)
        return rs;
    if ((rs = select_q(st, Q_SESS_BY_REFRESHED, 1, &nrd, SESS_NCOLS, c)) != PE_STORE_OK)
        return rs;
    *out = sess_from_cols(st->pool, c);
    return PE_STORE_OK;
}

pe_store_status_e pe_store_session_rotate(pe_store_t *st, const char *refresh_digest, const char *new_token_digest,
                                          const char *new_refresh_digest, apr_time_t expires_at,
                                          apr_time_t refresh_expires_at, apr_time_t now, pe_session_t **out)
{
    PE_STORE_RETRY(st, sess_rotate_once(st, refresh_digest, new_token_digest, new_refresh_digest, expires_at,
                                        refresh_expires_at, now, out));
}

pe_store_status_e pe_store_session_delete(pe_store_t *st, const char *token_digest)
{
    PE_STORE_RETRY(st, update_once(st, Q_SESS_DELETE, 1, &token_digest));
}

pe_store_status_e pe_store_session_delete_all(pe_store_t *st, pe_principal_kind_e kind, const char *principal_id,
                                              const char *keep_id)
{
    const char *a[] = {pe_principal_kind_name(kind), principal_id, keep_id};

    if (keep_id)
        PE_STORE_RETRY(st, exec_q(st, Q_SESS_DELETE_ALL_BUT, NULL, 3, a));
    PE_STORE_RETRY(st, exec_q(st, Q_SESS_DELETE_ALL, NULL, 2, a));
}

/* ----------------------------------------------------------------------------------------- */
/* Security events */

static pe_store_status_e event_once(pe_store_t *st, const char **a)
{
    return exec_q(st, Q_EVENT_INSERT, NULL, 8, a);
}

pe_store_status_e pe_store_event(pe_store_t *st, const char *event_type, pe_principal_kind_e kind,
                                 const char *principal_id, const char *username, const char *ip,
                                 const json_t *details, const char *severity, apr_time_t now)
{
    char *d = details ? json_dumps(details, JSON_COMPACT) : NULL;
    const char *a[] = {event_type, pe_principal_kind_name(kind), principal_id ? principal_id : "",
                       username ? username : "", ip ? ip : "", d ? apr_pstrdup(st->pool, d) : "{}",
                       severity ? severity : "info", i64(st->pool, now)};

    free(d);
    PE_STORE_RETRY(st, event_once(st, a));
}

static pe_store_status_e event_count_once(pe_store_t *st, const char *type, const char *pid, long *count)
{
    const char *a[] = {type, pid};
    const char *c[1];
    pe_store_status_e rs = select_q(st, pid ? Q_EVENT_COUNT_PRINCIPAL : Q_EVENT_COUNT, pid ? 2 : 1, a, 1, c);

    *count = (rs == PE_STORE_OK) ? (long)to64(c[0]) : 0;
    return rs;
}

pe_store_status_e pe_store_event_count(pe_store_t *st, const char *event_type, const char *principal_id,
                                       long *count)
{
    PE_STORE_RETRY(st, event_count_once(st, event_type, principal_id, count));
}

/* ----------------------------------------------------------------------------------------- */
/* Completion credits */

static pe_store_status_e credits_take_once(pe_store_t *st, const char *user_id, apr_int64_t today, apr_time_t now)
{
    const char *d = i64(st->pool, today);
    const char *a[] = {d, d, d, i64(st->pool, now), user_id, d};
    int rows = 0;
    pe_store_status_e rs = exec_q(st, Q_CREDITS_TAKE, &rows, 6, a);

    if (rs != PE_STORE_OK)
        return rs;
    return rows == 1 ? PE_STORE_OK : PE_STORE_EMPTY;
}

pe_store_status_e pe_store_credits_take(pe_store_t *st, const char *user_id, apr_int64_t today, apr_time_t now)
{
    PE_STORE_RETRY(st, credits_take_once(st, user_id, today, now));
}

pe_store_status_e pe_store_credits_refund(pe_store_t *st, const char *user_id, apr_int64_t day)
{
    const char *a[] = {user_id, i64(st->pool, day)};
    PE_STORE_RETRY(st, update_once(st, Q_CREDITS_REFUND, 2, a));
}

static pe_store_status_e credits_get_once(pe_store_t *st, const char *user_id, apr_int64_t today, apr_int64_t *limit,
                                          apr_int64_t *reset)
{
    const char *c[3];
    pe_store_status_e rs = select_q(st, Q_CREDITS_GET, 1, &user_id, 3, c);

    *limit = *reset = 0;
    if (rs != PE_STORE_OK)
        return rs;
    *limit = to64(c[0]);
    *reset = to64(c[1]);
    if (to64(c[2]) < today && *reset > 0)
        *limit = *reset;
    return PE_STORE_OK;
}

pe_store_status_e pe_store_credits_get(pe_store_t *st, const char *user_id, apr_int64_t today, apr_int64_t *limit,
                                       apr_int64_t *reset)
{
    PE_STORE_RETRY(st, credits_get_once(st, user_id, today, limit, reset));
}

/* ----------------------------------------------------------------------------------------- */
/* Conversation logs */

static const char *s0(const char *s)
{
    return s ? s : "";
}

/* Rows per INSERT statement of a conversation-log batch. */
#define MSGLOG_CHUNK 100
#define MSGLOG_COLS                                                                                \
    "request_id, user_id, username, model, r_type, research_enabled, messages, response, status, "  \
    "tokens_used, processing_time_ms, ip_address, created_at"

/* The k-row INSERT on this connection, prepared on first use (labels pe_msglog_insert_<k>). */
static apr_dbd_prepared_t *msglog_stmt(pe_store_t *st, int k)
{
    const char *label = apr_psprintf(st->pool, "pe_msglog_insert_%d", k);
    apr_dbd_prepared_t *stmt = apr_hash_get(st->prepared, label, APR_HASH_KEY_STRING);
    const char *sql;
    int i, rv;

    if (stmt)
        return stmt;
    conn_init(st);
    sql = "INSERT INTO pe_message_logs (" MSGLOG_COLS ") VALUES ";
    for (i = 0; i < k; i++)
        sql = apr_pstrcat(st->pool, sql, i ? ", " : "", "(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)", NULL);
    sql = apr_pstrcat(st->pool, sql, " ON CONFLICT (request_id) DO NOTHING", NULL);
    label = apr_pstrdup(st->conn_pool, label);
    rv = apr_dbd_prepare(st->driver, st->conn_pool, st->handle, sql, is_pgsql(st) ? NULL : label, &stmt);
    if (rv != 0) {
        st->error = apr_pstrdup(st->pool, apr_dbd_error(st->driver, st->handle, rv));
        pe_clog(PE_LOG_ERR, 0, PE_LOGNO(44010) "store: cannot prepare %s: %s", label, st->error);
        return NULL;
    }
    apr_hash_set(st->prepared, label, APR_HASH_KEY_STRING, stmt);
    return stmt;
}

/*
 * NB: no explicit transaction. apr_dbd_sqlite3 runs every statement of a process under one
 * mutex, and SQLite's busy handler waits while holding it: a multi-statement transaction in one
 * thread and an UPDATE in another thread of the same child would wait for each other until the
 * busy timeout. Each multi-row INSERT is atomic on its own, and a batch written twice after a
 * failure skips the rows it already has (ON CONFLICT), so no transaction is needed.
 */
static pe_store_status_e msglog_insert_once(pe_store_t *st, const pe_message_log_t *recs, int n)
{
    int done = 0;

    while (done < n) {
        int k = n - done > MSGLOG_CHUNK ? MSGLOG_CHUNK : n - done, i, rv, rows = 0;
        apr_dbd_prepared_t *stmt = msglog_stmt(st, k);
        const char **a = apr_palloc(st->pool, sizeof(*a) * 13 * (apr_size_t)k);

        if (!stmt)
            return PE_STORE_EIO;
        for (i = 0; i < k; i++) {
            const pe_message_log_t *m = &recs[done + i];
            const char **r = a + 13 * i;

            r[0] = m->request_id; r[1] = s0(m->user_id); r[2] = s0(m->username); r[3] = s0(m->model);
            r[4] = s0(m->r_type); r[5] = m->research_enabled ? "1" : "0"; r[6] = m->messages ? m->messages : "[]";
            r[7] = s0(m->response); r[8] = i64(st->pool, m->status); r[9] = i64(st->pool, m->tokens_used);
            r[10] = i64(st->pool, m->processing_time_ms); r[11] = s0(m->ip_address);
            r[12] = i64(st->pool, m->created_at);
        }
        rv = apr_dbd_pquery(st->driver, st->pool, st->handle, &rows, stmt, 13 * k, a);
        if (rv != 0) {
            st->error = apr_pstrdup(st->pool, apr_dbd_error(st->driver, st->handle, rv));
            pe_clog(PE_LOG_ERR, 0, PE_LOGNO(44011) "store: a message-log insert of %d rows failed: %s", k, st->error);
            return PE_STORE_EIO;
        }
        done += k;
    }
    return PE_STORE_OK;
}

pe_store_status_e pe_store_msglog_insert(pe_store_t *st, const pe_message_log_t *recs, int n)
{
    PE_STORE_RETRY(st, msglog_insert_once(st, recs, n));
}

static pe_store_status_e msglog_count_once(pe_store_t *st, const char *user_id, long *count)
{
    const char *c[1];
    pe_store_status_e rs = user_id ? select_q(st, Q_MSGLOG_COUNT_USER, 1, &user_id, 1, c)
                                   : select_q(st, Q_MSGLOG_COUNT, 0, NULL, 1, c);

    *count = (rs == PE_STORE_OK) ? (long)to64(c[0]) : 0;
    return rs;
}

pe_store_status_e pe_store_msglog_count(pe_store_t *st, const char *user_id, long *count)
{
    PE_STORE_RETRY(st, msglog_count_once(st, user_id, count));
}

/* ----------------------------------------------------------------------------------------- */
/* Batch credits */

static pe_store_status_e credits_take_n_once(pe_store_t *st, const char *user_id, apr_int64_t n, apr_int64_t today,
                                             apr_time_t now)
{
    const char *d = i64(st->pool, today), *k = i64(st->pool, n);
    const char *a[] = {d, k, d, d, i64(st->pool, now), user_id, d, k};
    int rows = 0;
    pe_store_status_e rs = exec_q(st, Q_CREDITS_TAKE_N, &rows, 8, a);

    if (rs != PE_STORE_OK)
        return rs;
    return rows == 1 ? PE_STORE_OK : PE_STORE_EMPTY;
}

pe_store_status_e pe_store_credits_take_n(pe_store_t *st, const char *user_id, apr_int64_t n, apr_int64_t today,
                                          apr_time_t now)
{
    if (n <= 0)
        return PE_STORE_OK;
    PE_STORE_RETRY(st, credits_take_n_once(st, user_id, n, today, now));
}

pe_store_status_e pe_store_credits_refund_n(pe_store_t *st, const char *user_id, apr_int64_t n, apr_int64_t day)
{
    const char *a[] = {i64(st->pool, n), user_id, i64(st->pool, day)};

    if (n <= 0)
        return PE_STORE_OK;
    PE_STORE_RETRY(st, update_once(st, Q_CREDITS_REFUND_N, 3, a));
}

/* ----------------------------------------------------------------------------------------- */
/* System prompts */

static pe_store_status_e prompt_get_once(pe_store_t *st, const char *r_type, const char **prompt)
{
    const char *c[1];
    pe_store_status_e rs = select_q(st, Q_PROMPT_GET, 1, &r_type, 1, c);

    *prompt = (rs == PE_STORE_OK) ? c[0] : NULL;
    return rs;
}

pe_store_status_e pe_store_system_prompt_get(pe_store_t *st, const char *r_type, const char **prompt)
{
    PE_STORE_RETRY(st, prompt_get_once(st, r_type, prompt));
}

static pe_store_status_e prompt_set_once(pe_store_t *st, const char *r_type, const char *prompt, const char *by,
                                         apr_time_t now)
{
    apr_dbd_transaction_t *tx;
    const char *a[] = {r_type, prompt, by ? by : "", i64(st->pool, now)};
    pe_store_status_e rs;

    /* NB: delete + insert in one transaction: the same on both drivers (no upsert syntax). */
    if ((rs = tx_begin(st, &tx)) != PE_STORE_OK)
        return rs;
    rs = exec_q(st, Q_PROMPT_DEL, NULL, 1, a);
    if (rs == PE_STORE_OK)
        rs = exec_q(st, Q_PROMPT_INS, NULL, 4, a);
    return tx_end(st, tx, rs);
}

pe_store_status_e pe_store_system_prompt_set(pe_store_t *st, const char *r_type, const char *prompt,
                                             const char *updated_by, apr_time_t now)
{
    PE_STORE_RETRY(st, prompt_set_once(st, r_type, prompt, updated_by, now));
}

/* ----------------------------------------------------------------------------------------- */
/* Address lists (access layer) */

/* The statement of a list: the whitelist's come three places after the blocked list's. */
static pe_q_e iplist_q(pe_iplist_e which, pe_q_e blocked_q)
{
    return which == PE_IPLIST_WHITELIST ? (pe_q_e)(blocked_q + (Q_WHITELIST_ACTIVE - Q_BLOCKED_ACTIVE)) : blocked_q;
}

static pe_store_status_e iplist_active_once(pe_store_t *st, pe_iplist_e which, apr_time_t now,
                                            apr_array_header_t **out)
{
    const char *a[] = {i64(st->pool, now)};
    apr_array_header_t *rows;
    pe_store_status_e rs = select_rows(st, iplist_q(which, Q_BLOCKED_ACTIVE), 1, a, 7, &rows);
    int i;

    *out = apr_array_make(st->pool, rows->nelts ? rows->nelts : 1, sizeof(pe_ipentry_t));
    if (rs != PE_STORE_OK)
        return rs;
    for (i = 0; i < rows->nelts; i++) {
        const char **c = APR_ARRAY_IDX(rows, i, const char **);
        pe_ipentry_t *e = &APR_ARRAY_PUSH(*out, pe_ipentry_t);

        e->id = to64(c[0]);
        e->network = s0(c[1]);
        e->note = s0(c[2]);
        e->created_by = s0(c[3]);
        e->created_at = to64(c[4]);
        e->expires_at = to64(c[5]);
        e->is_active = (int)to64(c[6]);
    }
    return PE_STORE_OK;
}

pe_store_status_e pe_store_iplist_active(pe_store_t *st, pe_iplist_e which, apr_time_t now, apr_array_header_t **out)
{
    PE_STORE_RETRY(st, iplist_active_once(st, which, now, out));
}

pe_store_status_e pe_store_iplist_add(pe_store_t *st, pe_iplist_e which, const pe_ipentry_t *e)
{
    const char *a[] = {s0(e->network), s0(e->note), s0(e->created_by), i64(st->pool, e->created_at),
                       i64(st->pool, e->expires_at > 0 ? e->expires_at : 0), e->is_active ? "1" : "0"};

    PE_STORE_RETRY(st, exec_q(st, iplist_q(which, Q_BLOCKED_INS), NULL, 6, a));
}

pe_store_status_e pe_store_iplist_remove(pe_store_t *st, pe_iplist_e which, apr_int64_t id)
{
    const char *a[] = {i64(st->pool, id)};

    PE_STORE_RETRY(st, update_once(st, iplist_q(which, Q_BLOCKED_DEL), 1, a));
}
