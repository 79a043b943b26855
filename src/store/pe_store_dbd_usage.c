/*
 * pe_store_dbd_usage.c: the dbd backend's usage data: credits, conversation logs, system
 * prompts and the access layer's address lists.
 */
#include "pe_store_dbd_int.h"

#include <apr_strings.h>
#include <string.h>

/* Completion credits */

pe_store_status_e pe_dbd_credits_take(pe_store_t *st, const char *user_id, apr_int64_t today, apr_time_t now)
{
    const char *d = pe_dbd_i64(pe_store_pool(st), today);
    const char *a[] = {d, d, d, pe_dbd_i64(pe_store_pool(st), now), user_id, d};
    int rows = 0;
    pe_store_status_e rs = pe_dbd_exec(st, Q_CREDITS_TAKE, &rows, 6, a);

    if (rs != PE_STORE_OK)
        return rs;
    return rows == 1 ? PE_STORE_OK : PE_STORE_EMPTY;
}

pe_store_status_e pe_dbd_credits_refund(pe_store_t *st, const char *user_id, apr_int64_t day)
{
    const char *a[] = {user_id, pe_dbd_i64(pe_store_pool(st), day)};
    return pe_dbd_update(st, Q_CREDITS_REFUND, 2, a);
}

pe_store_status_e pe_dbd_credits_get(pe_store_t *st, const char *user_id, apr_int64_t today, apr_int64_t *limit,
                                     apr_int64_t *reset)
{
    const char *c[3];
    pe_store_status_e rs = pe_dbd_select(st, Q_CREDITS_GET, 1, &user_id, 3, c);

    *limit = *reset = 0;
    if (rs != PE_STORE_OK)
        return rs;
    *limit = pe_dbd_to64(c[0]);
    *reset = pe_dbd_to64(c[1]);
    if (pe_dbd_to64(c[2]) < today && *reset > 0)
        *limit = *reset;
    return PE_STORE_OK;
}

/* ----------------------------------------------------------------------------------------- */
/* Conversation logs */

/* Rows per INSERT statement of a conversation-log batch. */
#define MSGLOG_CHUNK 100
#define MSGLOG_COLS                                                                                                    \
    "request_id, user_id, username, model, r_type, research_enabled, messages, response, status, "                     \
    "tokens_used, processing_time_ms, ip_address, created_at"

/* The k-row INSERT on this connection, prepared on first use (labels pe_msglog_insert_<k>). */
static apr_dbd_prepared_t *msglog_stmt(pe_store_t *st, int k)
{
    const char *label = apr_psprintf(pe_store_pool(st), "pe_msglog_insert_%d", k);
    apr_dbd_prepared_t *stmt = apr_hash_get(DBD(st)->prepared, label, APR_HASH_KEY_STRING);
    const char *sql;
    int i, rv;

    if (stmt)
        return stmt;
    pe_dbd_conn_init(st);
    /* NB: only rows whose user still exists (SPEC 6.7: deleting an account destroys its logs, also
     * those queued or in flight at the time). SQLite runs one writer at a time; on PostgreSQL the
     * user rows are locked FOR SHARE until this statement ends, so a deletion (which removes the
     * user before its logs) either waits for this insert and then removes its rows, or has
     * removed the user first and no row is inserted. VALUES columns are column1..column13 in
     * both; the casts give PostgreSQL the types of untyped parameters. */
    sql = "INSERT INTO pe_message_logs (" MSGLOG_COLS ") SELECT column1, column2, column3, column4, column5, "
          "column6, column7, column8, column9, column10, column11, column12, column13 FROM (VALUES ";
    for (i = 0; i < k; i++)
        sql = apr_pstrcat(pe_store_pool(st), sql, i ? ", " : "",
                          "(%s, %s, %s, %s, %s, CAST(%s AS SMALLINT), %s, %s, CAST(%s AS INTEGER), "
                          "CAST(%s AS BIGINT), CAST(%s AS BIGINT), %s, CAST(%s AS BIGINT))", NULL);
    sql = apr_pstrcat(pe_store_pool(st), sql, ") AS v WHERE EXISTS (SELECT 1 FROM pe_users u WHERE u.id = v.column2",
                      DBD(st)->pgsql ? " FOR SHARE" : "", ") ON CONFLICT (request_id) DO NOTHING", NULL);
    label = apr_pstrdup(DBD(st)->conn_pool, label);
    rv = apr_dbd_prepare(DBD(st)->driver, DBD(st)->conn_pool, DBD(st)->handle, sql, DBD(st)->pgsql ? NULL : label,
                         &stmt);
    if (rv != 0) {
        pe_store_fail(st, "cannot prepare %s: %s", label, apr_dbd_error(DBD(st)->driver, DBD(st)->handle, rv));
        return NULL;
    }
    apr_hash_set(DBD(st)->prepared, label, APR_HASH_KEY_STRING, stmt);
    return stmt;
}

/*
 * NB: no explicit transaction. apr_dbd_sqlite3 runs every statement of a process under one
 * mutex, and SQLite's busy handler waits while holding it: a multi-statement transaction in one
 * thread and an UPDATE in another thread of the same child would wait for each other until the
 * busy timeout. Each multi-row INSERT is atomic on its own, and a batch written twice after a
 * failure skips the rows it already has (ON CONFLICT), so no transaction is needed.
 */
pe_store_status_e pe_dbd_msglog_insert(pe_store_t *st, const pe_message_log_t *recs, int n)
{
    int done = 0;

    while (done < n) {
        int k = n - done > MSGLOG_CHUNK ? MSGLOG_CHUNK : n - done, i, rv, rows = 0;
        apr_dbd_prepared_t *stmt = msglog_stmt(st, k);
        const char **a = apr_palloc(pe_store_pool(st), sizeof(*a) * 13 * (apr_size_t)k);

        if (!stmt)
            return PE_STORE_EIO;
        for (i = 0; i < k; i++) {
            const pe_message_log_t *m = &recs[done + i];
            const char **r = a + 13 * i;

            r[0] = m->request_id;
            r[1] = pe_dbd_s0(m->user_id);
            r[2] = pe_dbd_s0(m->username);
            r[3] = pe_dbd_s0(m->model);
            r[4] = pe_dbd_s0(m->r_type);
            r[5] = m->research_enabled ? "1" : "0";
            r[6] = m->messages ? m->messages : "[]";
            r[7] = pe_dbd_s0(m->response);
            r[8] = pe_dbd_i64(pe_store_pool(st), m->status);
            r[9] = pe_dbd_i64(pe_store_pool(st), m->tokens_used);
            r[10] = pe_dbd_i64(pe_store_pool(st), m->processing_time_ms);
            r[11] = pe_dbd_s0(m->ip_address);
            r[12] = pe_dbd_i64(pe_store_pool(st), m->created_at);
        }
        rv = apr_dbd_pquery(DBD(st)->driver, pe_store_pool(st), DBD(st)->handle, &rows, stmt, 13 * k, a);
        if (rv != 0) {
            return pe_dbd_fail(st, apr_psprintf(pe_store_pool(st), "an insert of %d conversation-log rows", k), rv);
        }
        done += k;
    }
    return PE_STORE_OK;
}

pe_store_status_e pe_dbd_msglog_count(pe_store_t *st, const char *user_id, long *count)
{
    const char *c[1];
    pe_store_status_e rs = user_id ? pe_dbd_select(st, Q_MSGLOG_COUNT_USER, 1, &user_id, 1, c)
                                   : pe_dbd_select(st, Q_MSGLOG_COUNT, 0, NULL, 1, c);

    *count = (rs == PE_STORE_OK) ? (long)pe_dbd_to64(c[0]) : 0;
    return rs;
}

/* ----------------------------------------------------------------------------------------- */
/* Batch credits */

pe_store_status_e pe_dbd_credits_take_n(pe_store_t *st, const char *user_id, apr_int64_t n, apr_int64_t today,
                                        apr_time_t now)
{
    const char *d = pe_dbd_i64(pe_store_pool(st), today), *k = pe_dbd_i64(pe_store_pool(st), n);
    const char *a[] = {d, k, d, d, pe_dbd_i64(pe_store_pool(st), now), user_id, d, k};
    int rows = 0;
    pe_store_status_e rs = pe_dbd_exec(st, Q_CREDITS_TAKE_N, &rows, 8, a);

    if (rs != PE_STORE_OK)
        return rs;
    return rows == 1 ? PE_STORE_OK : PE_STORE_EMPTY;
}

pe_store_status_e pe_dbd_credits_refund_n(pe_store_t *st, const char *user_id, apr_int64_t n, apr_int64_t day)
{
    const char *a[] = {pe_dbd_i64(pe_store_pool(st), n), user_id, pe_dbd_i64(pe_store_pool(st), day)};

    if (n <= 0)
        return PE_STORE_OK;
    return pe_dbd_update(st, Q_CREDITS_REFUND_N, 3, a);
}

/* ----------------------------------------------------------------------------------------- */
/* System prompts */

pe_store_status_e pe_dbd_system_prompt_get(pe_store_t *st, const char *r_type, const char **prompt)
{
    const char *c[1];
    pe_store_status_e rs = pe_dbd_select(st, Q_PROMPT_GET, 1, &r_type, 1, c);

    *prompt = (rs == PE_STORE_OK) ? c[0] : NULL;
    return rs;
}

pe_store_status_e pe_dbd_system_prompt_set(pe_store_t *st, const char *r_type, const char *prompt, const char *by,
                                           apr_time_t now)
{
    apr_dbd_transaction_t *tx;
    const char *a[] = {r_type, prompt, by ? by : "", pe_dbd_i64(pe_store_pool(st), now)};
    pe_store_status_e rs;

    /* NB: delete + insert in one transaction: the same on both drivers (no upsert syntax). */
    if ((rs = pe_dbd_tx_begin(st, &tx)) != PE_STORE_OK)
        return rs;
    rs = pe_dbd_exec(st, Q_PROMPT_DEL, NULL, 1, a);
    if (rs == PE_STORE_OK)
        rs = pe_dbd_exec(st, Q_PROMPT_INS, NULL, 4, a);
    return pe_dbd_tx_end(st, tx, rs);
}

/* ----------------------------------------------------------------------------------------- */
/* Address lists (access layer) */

/* The statement of a list: the whitelist's come three places after the blocked list's. */
static pe_q_e iplist_q(pe_iplist_e which, pe_q_e blocked_q)
{
    return which == PE_IPLIST_WHITELIST ? (pe_q_e)(blocked_q + (Q_WHITELIST_ACTIVE - Q_BLOCKED_ACTIVE)) : blocked_q;
}

pe_store_status_e pe_dbd_iplist_active(pe_store_t *st, pe_iplist_e which, apr_time_t now, apr_array_header_t **out)
{
    const char *a[] = {pe_dbd_i64(pe_store_pool(st), now)};
    apr_array_header_t *rows;
    pe_store_status_e rs = pe_dbd_select_rows(st, iplist_q(which, Q_BLOCKED_ACTIVE), 1, a, 7, &rows);
    int i;

    *out = apr_array_make(pe_store_pool(st), rows->nelts ? rows->nelts : 1, sizeof(pe_ipentry_t));
    if (rs != PE_STORE_OK)
        return rs;
    for (i = 0; i < rows->nelts; i++) {
        const char **c = APR_ARRAY_IDX(rows, i, const char **);
        pe_ipentry_t *e = &APR_ARRAY_PUSH(*out, pe_ipentry_t);

        e->id = pe_dbd_to64(c[0]);
        e->network = pe_dbd_s0(c[1]);
        e->note = pe_dbd_s0(c[2]);
        e->created_by = pe_dbd_s0(c[3]);
        e->created_at = pe_dbd_to64(c[4]);
        e->expires_at = pe_dbd_to64(c[5]);
        e->is_active = (int)pe_dbd_to64(c[6]);
    }
    return PE_STORE_OK;
}

pe_store_status_e pe_dbd_iplist_add(pe_store_t *st, pe_iplist_e which, const pe_ipentry_t *e)
{
    const char *a[] = {pe_dbd_s0(e->network),
                       pe_dbd_s0(e->note),
                       pe_dbd_s0(e->created_by),
                       pe_dbd_i64(pe_store_pool(st), e->created_at),
                       pe_dbd_i64(pe_store_pool(st), e->expires_at > 0 ? e->expires_at : 0),
                       e->is_active ? "1" : "0"};

    return pe_dbd_exec(st, iplist_q(which, Q_BLOCKED_INS), NULL, 6, a);
}

pe_store_status_e pe_dbd_iplist_remove(pe_store_t *st, pe_iplist_e which, apr_int64_t id)
{
    const char *a[] = {pe_dbd_i64(pe_store_pool(st), id)};

    return pe_dbd_update(st, iplist_q(which, Q_BLOCKED_DEL), 1, a);
}
