/*
 * pe_store_dbd_apiusage.c: the dbd backend's API-usage records: batch insert (idempotent by
 * request id), the bounded retention purge, the sums of /v1/monitoring/usage.
 */
#include "pe_store_dbd_int.h"

#include <apr_strings.h>
#include <string.h>

/* Rows per INSERT statement of a batch. */
#define API_USAGE_CHUNK 100

/* The k-row INSERT on this connection, prepared on first use (labels pe_api_usage_insert_<k>). */
static apr_dbd_prepared_t *insert_stmt(pe_store_t *st, int k)
{
    pe_dbd_conn_t *c = DBD(st);
    apr_pool_t *p = pe_store_pool(st);
    const char *label = apr_psprintf(p, "pe_api_usage_insert_%d", k);
    apr_dbd_prepared_t *stmt = apr_hash_get(c->prepared, label, APR_HASH_KEY_STRING);
    const char *sql = "INSERT INTO pe_api_usage (" API_USAGE_COLS ") VALUES ";
    int i, rv;

    if (stmt)
        return stmt;
    pe_dbd_conn_init(st);
    for (i = 0; i < k; i++)
        sql = apr_pstrcat(p, sql, i ? ", " : "",
                          "(%s, %s, %s, %s, %s, CAST(%s AS INTEGER), CAST(%s AS BIGINT), CAST(%s AS BIGINT), %s, %s, "
                          "CAST(%s AS BIGINT), %s)", NULL);
    sql = apr_pstrcat(p, sql, " ON CONFLICT (request_id) DO NOTHING", NULL);
    label = apr_pstrdup(c->conn_pool, label);
    /* NB: a NULL label keeps PostgreSQL statements unnamed (pe_store_dbd.c). */
    rv = apr_dbd_prepare(c->driver, c->conn_pool, c->handle, sql, c->pgsql ? NULL : label, &stmt);
    if (rv != 0) {
        pe_store_fail(st, "cannot prepare %s: %s", label, apr_dbd_error(c->driver, c->handle, rv));
        return NULL;
    }
    apr_hash_set(c->prepared, label, APR_HASH_KEY_STRING, stmt);
    return stmt;
}

/* "YYYY-MM-DD" (UTC) of t. */
static const char *date_of(apr_pool_t *p, apr_time_t t)
{
    apr_time_exp_t tm;

    apr_time_exp_gmt(&tm, t);
    return apr_psprintf(p, "%04d-%02d-%02d", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday);
}

/* NB: no explicit transaction, as for the conversation logs (pe_store_dbd_usage.c): each
 * multi-row INSERT is atomic, and a batch written again skips the rows it already has. */
pe_store_status_e pe_dbd_api_usage_insert(pe_store_t *st, const pe_api_usage_t *recs, int n)
{
    apr_pool_t *p = pe_store_pool(st);
    int done = 0;

    while (done < n) {
        int k = n - done > API_USAGE_CHUNK ? API_USAGE_CHUNK : n - done, i, rv, rows = 0;
        apr_dbd_prepared_t *stmt = insert_stmt(st, k);
        const char **a = apr_palloc(p, sizeof(*a) * API_USAGE_NCOLS * (apr_size_t)k);

        if (!stmt)
            return PE_STORE_EIO;
        for (i = 0; i < k; i++) {
            const pe_api_usage_t *u = &recs[done + i];
            const char **r = a + API_USAGE_NCOLS * i;

            r[0] = u->request_id;
            r[1] = pe_dbd_s0(u->user_id);
            r[2] = pe_dbd_s0(u->key_prefix);
            r[3] = pe_dbd_s0(u->endpoint);
            r[4] = pe_dbd_s0(u->method);
            r[5] = pe_dbd_i64(p, u->status);
            r[6] = pe_dbd_i64(p, u->latency_ms);
            r[7] = pe_dbd_i64(p, u->tokens_used);
            r[8] = pe_dbd_s0(u->ip_address);
            r[9] = pe_dbd_s0(u->user_agent);
            r[10] = pe_dbd_i64(p, u->created_at);
            r[11] = date_of(p, u->created_at);
        }
        rv = apr_dbd_pquery(DBD(st)->driver, p, DBD(st)->handle, &rows, stmt, API_USAGE_NCOLS * k, a);
        if (rv != 0)
            return pe_dbd_fail(st, apr_psprintf(p, "an insert of %d API-usage rows", k), rv);
        done += k;
    }
    return PE_STORE_OK;
}

pe_store_status_e pe_dbd_api_usage_purge(pe_store_t *st, apr_time_t before, int limit, long *removed)
{
    const char *a[] = {pe_dbd_i64(pe_store_pool(st), before), pe_dbd_i64(pe_store_pool(st), limit)};
    int rows = 0;
    pe_store_status_e rs = pe_dbd_exec(st, Q_API_USAGE_PURGE, &rows, 2, a);

    *removed = rs == PE_STORE_OK ? rows : 0;
    return rs;
}

pe_store_status_e pe_dbd_api_usage_sum(pe_store_t *st, const char *user_id, apr_time_t since, apr_time_t until,
                                       pe_api_usage_sum_t *out)
{
    apr_pool_t *p = pe_store_pool(st);
    const char *u = user_id ? user_id : "";
    const char *a[] = {u, u, pe_dbd_i64(p, since), pe_dbd_i64(p, until)};
    const char *c[3];
    pe_store_status_e rs = pe_dbd_select(st, Q_API_USAGE_SUM, 4, a, 3, c);

    if (rs != PE_STORE_OK)
        return rs == PE_STORE_NOTFOUND ? PE_STORE_OK : rs;
    out->calls = (long)pe_dbd_to64(c[0]);
    out->latency_ms = pe_dbd_to64(c[1]);
    out->tokens = pe_dbd_to64(c[2]);
    return PE_STORE_OK;
}

pe_store_status_e pe_dbd_api_usage_get(pe_store_t *st, const char *request_id, pe_api_usage_t **out)
{
    const char *c[API_USAGE_NCOLS];
    pe_api_usage_t *u;
    pe_store_status_e rs = pe_dbd_select(st, Q_API_USAGE_GET, 1, &request_id, API_USAGE_NCOLS, c);

    if (rs != PE_STORE_OK)
        return rs;
    u = apr_pcalloc(pe_store_pool(st), sizeof(*u));
    u->request_id = c[0];
    u->user_id = c[1];
    u->key_prefix = c[2];
    u->endpoint = c[3];
    u->method = c[4];
    u->status = (int)pe_dbd_to64(c[5]);
    u->latency_ms = pe_dbd_to64(c[6]);
    u->tokens_used = pe_dbd_to64(c[7]);
    u->ip_address = c[8];
    u->user_agent = c[9];
    u->created_at = pe_dbd_to64(c[10]);
    *out = u;
    return PE_STORE_OK;
}
