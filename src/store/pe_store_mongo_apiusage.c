/*
 * pe_store_mongo_apiusage.c: the MongoDB backend's API-usage records (collection pe_api_usage):
 * batch insert with _id derived from the request id (a batch written again skips what exists),
 * the bounded retention purge, the sums of /v1/monitoring/usage.
 */
#include "pe_store_mongo_int.h"

#include <apr_strings.h>

#define PE_MG_API_USAGE_CHUNK 100

static const char *s0(const char *s)
{
    return s ? s : "";
}

pe_store_status_e pe_mg_api_usage_insert(pe_store_t *st, const pe_api_usage_t *recs, int n)
{
    int done = 0;

    while (done < n) {
        int k = n - done > PE_MG_API_USAGE_CHUNK ? PE_MG_API_USAGE_CHUNK : n - done, i;
        bson_t *docs[PE_MG_API_USAGE_CHUNK];
        pe_store_status_e rs;

        for (i = 0; i < k; i++) {
            const pe_api_usage_t *u = &recs[done + i];
            apr_time_exp_t tm;
            char date[16];
            bson_oid_t oid;

            apr_time_exp_gmt(&tm, u->created_at);
            apr_snprintf(date, sizeof(date), "%04d-%02d-%02d", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday);
            pe_mg_derived_oid(&oid, "api_usage", s0(u->request_id));
            docs[i] = BCON_NEW("_id", BCON_OID(&oid), "request_id", BCON_UTF8(s0(u->request_id)), "user_id",
                               BCON_UTF8(s0(u->user_id)), "key_prefix", BCON_UTF8(s0(u->key_prefix)), "endpoint",
                               BCON_UTF8(s0(u->endpoint)), "method", BCON_UTF8(s0(u->method)), "status_code",
                               BCON_INT32(u->status), "response_time_ms", BCON_INT64(u->latency_ms), "tokens_used",
                               BCON_INT64(u->tokens_used), "ip_address", BCON_UTF8(s0(u->ip_address)), "user_agent",
                               BCON_UTF8(s0(u->user_agent)), "created_at", BCON_INT64(u->created_at), "date",
                               BCON_UTF8(date));
        }
        if ((rs = pe_mg_insert_new(st, PE_MC_API_USAGE, docs, k)) != PE_STORE_OK)
            return rs;
        done += k;
    }
    return PE_STORE_OK;
}

/* The ids of the oldest expired records (at most limit), then one deleteMany of those ids. */
pe_store_status_e pe_mg_api_usage_purge(pe_store_t *st, apr_time_t before, int limit, long *removed)
{
    bson_t *f = BCON_NEW("created_at", "{", "$lt", BCON_INT64(before), "}");
    bson_t *opts = BCON_NEW("projection", "{", "_id", BCON_INT32(1), "}", "sort", "{", "created_at", BCON_INT32(1), "}",
                            "limit", BCON_INT64(limit));
    bson_t *del = bson_new(), ids, in;
    mongoc_cursor_t *cur = mongoc_collection_find_with_opts(pe_mg_coll(st, PE_MC_API_USAGE), f, opts, NULL);
    const bson_t *d;
    bson_error_t err;
    bson_iter_t it;
    pe_store_status_e rs = PE_STORE_OK;
    int k = 0;

    BSON_APPEND_DOCUMENT_BEGIN(del, "_id", &in);
    BSON_APPEND_ARRAY_BEGIN(&in, "$in", &ids);
    while (mongoc_cursor_next(cur, &d)) {
        char key[16];
        const char *kp;

        if (!bson_iter_init_find(&it, d, "_id"))
            continue;
        bson_uint32_to_string((uint32_t)k++, &kp, key, sizeof(key));
        bson_append_iter(&ids, kp, -1, &it);
    }
    bson_append_array_end(&in, &ids);
    bson_append_document_end(del, &in);
    if (mongoc_cursor_error(cur, &err))
        rs = pe_mg_fail(st, PE_MC_API_USAGE, &err);
    else if (k > 0)
        rs = pe_mg_delete(st, PE_MC_API_USAGE, del, 1, removed);
    mongoc_cursor_destroy(cur);
    bson_destroy(del);
    bson_destroy(opts);
    bson_destroy(f);
    return rs;
}

/* The period's records are read with the two fields the sums need and summed here (as pe_mg_usage). */
pe_store_status_e pe_mg_api_usage_sum(pe_store_t *st, const char *user_id, apr_time_t since, apr_time_t until,
                                      pe_api_usage_sum_t *out)
{
    bson_t *f = BCON_NEW("created_at", "{", "$gte", BCON_INT64(since), "$lt", BCON_INT64(until), "}");
    bson_t *opts = BCON_NEW("projection", "{", "response_time_ms", BCON_INT32(1), "tokens_used", BCON_INT32(1), "}");
    mongoc_cursor_t *cur;
    const bson_t *d;
    bson_error_t err;
    pe_store_status_e rs = PE_STORE_OK;

    if (user_id)
        BSON_APPEND_UTF8(f, "user_id", user_id);
    cur = mongoc_collection_find_with_opts(pe_mg_coll(st, PE_MC_API_USAGE), f, opts, NULL);
    while (mongoc_cursor_next(cur, &d)) {
        out->calls++;
        out->latency_ms += pe_mg_i64(d, "response_time_ms");
        out->tokens += pe_mg_i64(d, "tokens_used");
    }
    if (mongoc_cursor_error(cur, &err)) {
        memset(out, 0, sizeof(*out));
        rs = pe_mg_fail(st, PE_MC_API_USAGE, &err);
    }
    mongoc_cursor_destroy(cur);
    bson_destroy(opts);
    bson_destroy(f);
    return rs;
}

pe_store_status_e pe_mg_api_usage_get(pe_store_t *st, const char *request_id, pe_api_usage_t **out)
{
    apr_pool_t *p = pe_store_pool(st);
    bson_t *f = BCON_NEW("request_id", BCON_UTF8(s0(request_id)));
    const bson_t *d = NULL;
    pe_store_status_e rs = pe_mg_find_one(st, PE_MC_API_USAGE, f, NULL, &d);
    pe_api_usage_t *u;

    bson_destroy(f);
    if (rs != PE_STORE_OK)
        return rs;
    u = apr_pcalloc(p, sizeof(*u));
    u->request_id = pe_mg_str(p, d, "request_id");
    u->user_id = pe_mg_str(p, d, "user_id");
    u->key_prefix = pe_mg_str(p, d, "key_prefix");
    u->endpoint = pe_mg_str(p, d, "endpoint");
    u->method = pe_mg_str(p, d, "method");
    u->status = (int)pe_mg_i64(d, "status_code");
    u->latency_ms = pe_mg_i64(d, "response_time_ms");
    u->tokens_used = pe_mg_i64(d, "tokens_used");
    u->ip_address = pe_mg_str(p, d, "ip_address");
    u->user_agent = pe_mg_str(p, d, "user_agent");
    u->created_at = pe_mg_i64(d, "created_at");
    *out = u;
    return PE_STORE_OK;
}
