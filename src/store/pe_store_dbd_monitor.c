/*
 * pe_store_dbd_monitor.c: the dbd backend's monitoring operations: the readiness round trip
 * and the usage figures of the conversation logs.
 */
#include "pe_store_dbd_int.h"

#include <apr_strings.h>

/* A query on a table of the schema (not just "SELECT 1"): the database and its tables answer. */
pe_store_status_e pe_dbd_ping(pe_store_t *st)
{
    const char *c[1];
    pe_store_status_e rs = pe_dbd_select(st, Q_PING, 0, NULL, 1, c);

    return rs == PE_STORE_NOTFOUND ? PE_STORE_OK : rs;
}

pe_store_status_e pe_dbd_usage(pe_store_t *st, const char *user_id, apr_time_t since, apr_time_t until, pe_usage_t *out)
{
    apr_pool_t *p = pe_store_pool(st);
    const char *u = user_id ? user_id : "";
    const char *a[] = {u, u, pe_dbd_i64(p, since), pe_dbd_i64(p, until)};
    const char *c[3];
    apr_array_header_t *rows;
    pe_store_status_e rs;
    int i;

    if ((rs = pe_dbd_select(st, Q_USAGE_SUM, 4, a, 3, c)) != PE_STORE_OK)
        return rs == PE_STORE_NOTFOUND ? PE_STORE_OK : rs;
    out->messages = (long)pe_dbd_to64(c[0]);
    out->tokens = pe_dbd_to64(c[1]);
    out->processing_ms = pe_dbd_to64(c[2]);
    if ((rs = pe_dbd_select_rows(st, Q_USAGE_DAYS, 4, a, 3, &rows)) != PE_STORE_OK)
        return rs;
    for (i = 0; i < rows->nelts; i++) {
        const char **r = APR_ARRAY_IDX(rows, i, const char **);
        pe_usage_day_t *d = &APR_ARRAY_PUSH(out->days, pe_usage_day_t);

        d->day = pe_dbd_to64(r[0]);
        d->messages = (long)pe_dbd_to64(r[1]);
        d->tokens = pe_dbd_to64(r[2]);
    }
    if ((rs = pe_dbd_select_rows(st, Q_USAGE_RTYPES, 4, a, 2, &rows)) != PE_STORE_OK)
        return rs;
    for (i = 0; i < rows->nelts; i++) {
        const char **r = APR_ARRAY_IDX(rows, i, const char **);
        pe_usage_rtype_t *t = &APR_ARRAY_PUSH(out->r_types, pe_usage_rtype_t);

        t->r_type = r[0] ? r[0] : "";
        t->messages = (long)pe_dbd_to64(r[1]);
    }
    return PE_STORE_OK;
}
