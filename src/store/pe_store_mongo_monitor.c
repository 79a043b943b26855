/*
 * pe_store_mongo_monitor.c: the MongoDB backend's monitoring operations: the readiness round
 * trip and the usage figures of the conversation logs.
 */
#include "pe_store_mongo_int.h"

#include <apr_hash.h>
#include <apr_strings.h>
#include <stdlib.h>

/* A query on a collection of the schema: the layout version document. */
pe_store_status_e pe_mg_ping(pe_store_t *st)
{
    bson_t *filter = bson_new();
    const bson_t *doc;
    pe_store_status_e rs = pe_mg_find_one(st, PE_MC_SCHEMA, filter, NULL, &doc);

    bson_destroy(filter);
    return rs == PE_STORE_NOTFOUND ? PE_STORE_OK : rs;
}

static int day_cmp(const void *a, const void *b)
{
    const pe_usage_day_t *x = a, *y = b;

    return x->day < y->day ? -1 : x->day > y->day;
}

static int rtype_cmp(const void *a, const void *b)
{
    return strcmp(((const pe_usage_rtype_t *)a)->r_type, ((const pe_usage_rtype_t *)b)->r_type);
}

/*
 * The period's logs are read with the four fields the figures need and summed here.
 * NB: the same figures as the SQL backends' GROUP BY; an aggregation pipeline would move the
 * sums to the server, at the price of a feature the test stand-in does not have.
 */
pe_store_status_e pe_mg_usage(pe_store_t *st, const char *user_id, apr_time_t since, apr_time_t until, pe_usage_t *out)
{
    apr_pool_t *p = pe_store_pool(st);
    bson_t *f = BCON_NEW("created_at", "{", "$gte", BCON_INT64(since), "$lt", BCON_INT64(until), "}");
    bson_t *opts = BCON_NEW("projection", "{", "tokens_used", BCON_INT32(1), "processing_time_ms", BCON_INT32(1),
                            "created_at", BCON_INT32(1), "r_type", BCON_INT32(1), "}");
    apr_hash_t *days = apr_hash_make(p), *types = apr_hash_make(p);
    apr_hash_index_t *hi;
    mongoc_cursor_t *cur;
    const bson_t *d;
    bson_error_t err;
    pe_store_status_e rs = PE_STORE_OK;

    if (user_id)
        BSON_APPEND_UTF8(f, "user_id", user_id);
    cur = mongoc_collection_find_with_opts(pe_mg_coll(st, PE_MC_MSGLOGS), f, opts, NULL);
    while (mongoc_cursor_next(cur, &d)) {
        apr_int64_t tokens = pe_mg_i64(d, "tokens_used"), day = pe_mg_i64(d, "created_at") / 86400000000LL;
        const char *rt = pe_mg_str(p, d, "r_type");
        pe_usage_day_t *dd;
        pe_usage_rtype_t *tt;

        out->messages++;
        out->tokens += tokens;
        out->processing_ms += pe_mg_i64(d, "processing_time_ms");
        if (!(dd = apr_hash_get(days, &day, sizeof(day)))) {
            dd = apr_pcalloc(p, sizeof(*dd));
            dd->day = day;
            apr_hash_set(days, &dd->day, sizeof(dd->day), dd);
        }
        dd->messages++;
        dd->tokens += tokens;
        rt = rt ? rt : "";
        if (!(tt = apr_hash_get(types, rt, APR_HASH_KEY_STRING))) {
            tt = apr_pcalloc(p, sizeof(*tt));
            tt->r_type = rt;
            apr_hash_set(types, rt, APR_HASH_KEY_STRING, tt);
        }
        tt->messages++;
    }
    if (mongoc_cursor_error(cur, &err)) {
        memset(out, 0, sizeof(*out));
        out->days = apr_array_make(p, 1, sizeof(pe_usage_day_t));
        out->r_types = apr_array_make(p, 1, sizeof(pe_usage_rtype_t));
        rs = pe_mg_fail(st, PE_MC_MSGLOGS, &err);
    }
    else {
        for (hi = apr_hash_first(p, days); hi; hi = apr_hash_next(hi))
            APR_ARRAY_PUSH(out->days, pe_usage_day_t) = *(pe_usage_day_t *)apr_hash_this_val(hi);
        for (hi = apr_hash_first(p, types); hi; hi = apr_hash_next(hi))
            APR_ARRAY_PUSH(out->r_types, pe_usage_rtype_t) = *(pe_usage_rtype_t *)apr_hash_this_val(hi);
        qsort(out->days->elts, (size_t)out->days->nelts, sizeof(pe_usage_day_t), day_cmp);
        qsort(out->r_types->elts, (size_t)out->r_types->nelts, sizeof(pe_usage_rtype_t), rtype_cmp);
    }
    mongoc_cursor_destroy(cur);
    bson_destroy(opts);
    bson_destroy(f);
    return rs;
}
