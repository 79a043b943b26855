/*
 * pe_store_mongo_lists.c: operators' lists on MongoDB: users (filtered, sorted, paged, with the
 * total), security events and a user's conversation logs.
 */
#include "pe_store_mongo_int.h"

#include <apr_lib.h>
#include <apr_strings.h>
#include <string.h>

/* A regular expression matching s literally (metacharacters escaped). */
static const char *regex_quote(apr_pool_t *p, const char *s)
{
    char *o = apr_palloc(p, 2 * strlen(s) + 1), *w = o;

    for (; *s; s++) {
        if (strchr("\\^$.|?*+()[]{}", *s))
            *w++ = '\\';
        *w++ = *s;
    }
    *w = '\0';
    return o;
}

/* Run find (filter, sort, skip, limit) and count_documents (filter); each document through fn. */
static pe_store_status_e page(pe_store_t *st, const char *coll, const bson_t *filter, const bson_t *sort, long offset,
                              long limit, long *total, void (*fn)(pe_store_t *, const bson_t *, apr_array_header_t *),
                              apr_array_header_t *out)
{
    bson_t *opts = bson_new();
    mongoc_cursor_t *cur;
    const bson_t *d;
    bson_error_t err;
    pe_store_status_e rs;

    if ((rs = pe_mg_count(st, coll, filter, total)) != PE_STORE_OK) {
        bson_destroy(opts);
        return rs;
    }
    BSON_APPEND_DOCUMENT(opts, "sort", sort);
    BSON_APPEND_INT64(opts, "skip", offset);
    BSON_APPEND_INT64(opts, "limit", limit);
    cur = mongoc_collection_find_with_opts(pe_mg_coll(st, coll), filter, opts, NULL);
    while (mongoc_cursor_next(cur, &d))
        fn(st, d, out);
    if (mongoc_cursor_error(cur, &err)) {
        out->nelts = 0;
        rs = pe_mg_fail(st, coll, &err);
    }
    mongoc_cursor_destroy(cur);
    bson_destroy(opts);
    return rs;
}

static void push_user(pe_store_t *st, const bson_t *d, apr_array_header_t *out)
{
    APR_ARRAY_PUSH(out, pe_user_t *) = pe_mg_user_from_doc(pe_store_pool(st), d);
}

pe_store_status_e pe_mg_user_list(pe_store_t *st, const pe_user_query_t *q, apr_array_header_t **out, long *total)
{
    apr_pool_t *p = pe_store_pool(st);
    bson_t *f = bson_new(), *sort = bson_new();
    const char *key = "created_at";
    pe_store_status_e rs;

    if (q->search && *q->search) {
        const char *re = regex_quote(p, q->search);

        BCON_APPEND(f, "$or", "[", "{", "username", "{", "$regex", BCON_UTF8(re), "$options", BCON_UTF8("i"), "}",
                    "}", "{", "email", "{", "$regex", BCON_UTF8(re), "$options", BCON_UTF8("i"), "}", "}", "{",
                    "name", "{", "$regex", BCON_UTF8(re), "$options", BCON_UTF8("i"), "}", "}", "]");
    }
    if (q->email)
        BSON_APPEND_UTF8(f, "email", q->email);
    if (q->username)
        BSON_APPEND_UTF8(f, "username", q->username);
    if (q->plan)
        BSON_APPEND_UTF8(f, "subscription_plan", q->plan);
    if (q->verified >= 0)
        BSON_APPEND_INT32(f, "is_verified", q->verified ? 1 : 0);
    if (q->active >= 0)
        BSON_APPEND_INT32(f, "is_active", q->active ? 1 : 0);
    if (q->sort && (!strcmp(q->sort, "username") || !strcmp(q->sort, "email") || !strcmp(q->sort, "last_login")))
        key = q->sort;
    BSON_APPEND_INT32(sort, key, q->ascending ? 1 : -1);
    BSON_APPEND_INT32(sort, "_id", q->ascending ? 1 : -1);
    rs = page(st, PE_MC_USERS, f, sort, q->offset, q->limit, total, push_user, *out);
    bson_destroy(f);
    bson_destroy(sort);
    return rs;
}

static void push_event(pe_store_t *st, const bson_t *d, apr_array_header_t *out)
{
    apr_pool_t *p = pe_store_pool(st);
    pe_event_t *e = apr_pcalloc(p, sizeof(*e));
    bson_iter_t it, sub;
    const char *s;

    e->id = pe_mg_id(p, d);
    e->event_type = pe_mg_str(p, d, "event_type");
    e->kind = pe_principal_kind_parse(pe_mg_str(p, d, "principal_kind"));
    e->principal_id = (s = pe_mg_str(p, d, "principal_id")) ? s : "";
    e->username = (s = pe_mg_str(p, d, "username")) ? s : "";
    e->ip_address = (s = pe_mg_str(p, d, "ip_address")) ? s : "";
    e->severity = pe_mg_str(p, d, "severity");
    e->created_at = pe_mg_i64(d, "created_at");
    e->details = "{}";
    if (bson_iter_init_find(&it, d, "details") && BSON_ITER_HOLDS_DOCUMENT(&it) && bson_iter_recurse(&it, &sub)) {
        const uint8_t *data;
        uint32_t len;
        bson_t det;

        bson_iter_document(&it, &len, &data);
        if (bson_init_static(&det, data, len)) {
            char *js = bson_as_relaxed_extended_json(&det, NULL);

            if (js) {
                e->details = apr_pstrdup(p, js);
                bson_free(js);
            }
        }
    }
    APR_ARRAY_PUSH(out, pe_event_t *) = e;
}

pe_store_status_e pe_mg_event_list(pe_store_t *st, const char *event_type, const char *severity,
                                   const char *principal_id, long offset, long limit, apr_array_header_t **out,
                                   long *total)
{
    bson_t *f = bson_new(), *sort = BCON_NEW("created_at", BCON_INT32(-1), "_id", BCON_INT32(-1));
    pe_store_status_e rs;

    if (event_type)
        BSON_APPEND_UTF8(f, "event_type", event_type);
    if (severity)
        BSON_APPEND_UTF8(f, "severity", severity);
    if (principal_id)
        BSON_APPEND_UTF8(f, "principal_id", principal_id);
    rs = page(st, PE_MC_EVENTS, f, sort, offset, limit, total, push_event, *out);
    bson_destroy(f);
    bson_destroy(sort);
    return rs;
}

static void push_msglog(pe_store_t *st, const bson_t *d, apr_array_header_t *out)
{
    apr_pool_t *p = pe_store_pool(st);
    pe_message_log_t *m = apr_pcalloc(p, sizeof(*m));
    const char *s;

    m->request_id = pe_mg_str(p, d, "request_id");
    m->user_id = pe_mg_str(p, d, "user_id");
    m->username = (s = pe_mg_str(p, d, "username")) ? s : "";
    m->model = (s = pe_mg_str(p, d, "model")) ? s : "";
    m->r_type = (s = pe_mg_str(p, d, "r_type")) ? s : "";
    m->research_enabled = (int)pe_mg_i64(d, "research_enabled");
    m->messages = (s = pe_mg_str(p, d, "messages")) ? s : "[]";
    m->response = (s = pe_mg_str(p, d, "response")) ? s : "";
    m->status = (int)pe_mg_i64(d, "status");
    m->tokens_used = pe_mg_i64(d, "tokens_used");
    m->processing_time_ms = pe_mg_i64(d, "processing_time_ms");
    m->ip_address = (s = pe_mg_str(p, d, "ip_address")) ? s : "";
    m->created_at = pe_mg_i64(d, "created_at");
    APR_ARRAY_PUSH(out, pe_message_log_t *) = m;
}

pe_store_status_e pe_mg_msglog_list(pe_store_t *st, const char *user_id, long offset, long limit,
                                    apr_array_header_t **out, long *total)
{
    bson_t *f = BCON_NEW("user_id", BCON_UTF8(user_id ? user_id : "")),
           *sort = BCON_NEW("created_at", BCON_INT32(-1), "_id", BCON_INT32(-1));
    pe_store_status_e rs = page(st, PE_MC_MSGLOGS, f, sort, offset, limit, total, push_msglog, *out);

    bson_destroy(f);
    bson_destroy(sort);
    return rs;
}

/* One aggregation over the conversation logs since `since`; each result document through fn. */
static pe_store_status_e usage_aggregate(pe_store_t *st, const bson_t *pipeline,
                                         void (*fn)(pe_store_t *, const bson_t *, void *), void *baton)
{
    mongoc_cursor_t *cur = mongoc_collection_aggregate(pe_mg_coll(st, PE_MC_MSGLOGS), MONGOC_QUERY_NONE, pipeline,
                                                       NULL, NULL);
    const bson_t *d;
    bson_error_t err;
    pe_store_status_e rs = PE_STORE_OK;

    while (mongoc_cursor_next(cur, &d))
        fn(st, d, baton);
    if (mongoc_cursor_error(cur, &err))
        rs = pe_mg_fail(st, PE_MC_MSGLOGS, &err);
    mongoc_cursor_destroy(cur);
    return rs;
}

typedef struct {
    long *requests;
    apr_int64_t *tokens;
} usage_out_t;

static void usage_total(pe_store_t *st, const bson_t *d, void *baton)
{
    usage_out_t *o = baton;

    *o->requests = (long)pe_mg_i64(d, "requests");
    *o->tokens = pe_mg_i64(d, "tokens");
}

pe_store_status_e pe_mg_msglog_usage(pe_store_t *st, apr_time_t since, long *requests, apr_int64_t *tokens)
{
    usage_out_t o = {requests, tokens};
    bson_t *pl = BCON_NEW("pipeline", "[", "{", "$match", "{", "created_at", "{", "$gte", BCON_INT64(since), "}", "}",
                          "}", "{", "$group", "{", "_id", BCON_NULL, "requests", "{", "$sum", BCON_INT32(1), "}",
                          "tokens", "{", "$sum", BCON_UTF8("$tokens_used"), "}", "}", "}", "]");
    pe_store_status_e rs = usage_aggregate(st, pl, usage_total, &o);

    bson_destroy(pl);
    return rs;
}

static void usage_row(pe_store_t *st, const bson_t *d, void *baton)
{
    apr_pool_t *p = pe_store_pool(st);
    pe_usage_row_t *u = apr_pcalloc(p, sizeof(*u));
    const char *s;

    u->user_id = (s = pe_mg_str(p, d, "_id")) ? s : "";
    u->username = (s = pe_mg_str(p, d, "username")) ? s : "";
    u->requests = (long)pe_mg_i64(d, "requests");
    u->tokens = pe_mg_i64(d, "tokens");
    APR_ARRAY_PUSH((apr_array_header_t *)baton, pe_usage_row_t *) = u;
}

pe_store_status_e pe_mg_msglog_top_users(pe_store_t *st, apr_time_t since, int limit, apr_array_header_t **out)
{
    bson_t *pl = BCON_NEW("pipeline", "[", "{", "$match", "{", "created_at", "{", "$gte", BCON_INT64(since), "}", "}",
                          "}", "{", "$group", "{", "_id", BCON_UTF8("$user_id"), "username", "{", "$max",
                          BCON_UTF8("$username"), "}", "requests", "{", "$sum", BCON_INT32(1), "}", "tokens", "{",
                          "$sum", BCON_UTF8("$tokens_used"), "}", "}", "}", "{", "$sort", "{", "requests",
                          BCON_INT32(-1), "_id", BCON_INT32(1), "}", "}", "{", "$limit", BCON_INT32(limit), "}", "]");
    pe_store_status_e rs = usage_aggregate(st, pl, usage_row, *out);

    bson_destroy(pl);
    return rs;
}
