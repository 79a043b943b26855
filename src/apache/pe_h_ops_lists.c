/*
 * pe_h_ops_lists.c: operators' lists and the stored address lists (SPEC 10.1, 9.2): users
 * (admin panel and support, each seeing the fields of its role), security events, a user's
 * conversation logs, statistics, and the IP whitelist and stored blocks (list, add with expiry
 * and reason, remove). Query parameters are checked (422 naming the problem); pages are
 * `page` >= 1 and `page_size` 1-100 (default 50), newest first.
 */
#include "pe_access_ap.h"
#include "pe_account_ap.h"
#include "pe_auth.h"
#include "pe_handlers.h"
#include "pe_http.h"
#include "pe_ipnet.h"
#include "pe_log.h"
#include "pe_parse.h"

#include "http_protocol.h"
#include "util_script.h"
#include <apr_strings.h>
#include <stdlib.h>

/* The query string as a table, with a checker of its names and values. */
typedef struct {
    request_rec *r;
    apr_table_t *q;
    pe_valid_t v; /* problems only */
    long page, page_size;
} ops_query_t;

/* Every name must be one of `names`; page and page_size read. */
static void query_start(ops_query_t *oq, request_rec *r, const char *const *names)
{
    const apr_array_header_t *arr;
    int i, k;

    oq->r = r;
    oq->q = NULL;
    pe_valid_init(&oq->v, r->pool, NULL, NULL);
    if (r->args)
        ap_args_to_table(r, &oq->q);
    if (!oq->q)
        oq->q = apr_table_make(r->pool, 1);
    arr = apr_table_elts(oq->q);
    for (i = 0; i < arr->nelts; i++) {
        const char *key = APR_ARRAY_IDX(arr, i, apr_table_entry_t).key;
        int known = !strcmp(key, "page") || !strcmp(key, "page_size");

        for (k = 0; names[k] && !known; k++)
            known = !strcmp(key, names[k]);
        if (!known)
            pe_valid_fail(&oq->v, "%s: unknown query parameter", key);
    }
    oq->page = 1;
    oq->page_size = 50;
    if (apr_table_get(oq->q, "page") &&
        pe_parse_int(r->pool, apr_table_get(oq->q, "page"), 1, 1000000000L, &oq->page))
        pe_valid_fail(&oq->v, "page must be an integer of 1 or more");
    if (apr_table_get(oq->q, "page_size") &&
        pe_parse_int(r->pool, apr_table_get(oq->q, "page_size"), 1, 100, &oq->page_size))
        pe_valid_fail(&oq->v, "page_size must be an integer from 1 to 100");
}

static const char *query_str(ops_query_t *oq, const char *name)
{
    const char *s = apr_table_get(oq->q, name);

    return s && *s ? s : NULL;
}

/* true/false/1/0 -> 1/0; absent -1. */
static int query_bool(ops_query_t *oq, const char *name)
{
    const char *s = query_str(oq, name);

    if (!s)
        return -1;
    if (!strcmp(s, "true") || !strcmp(s, "1"))
        return 1;
    if (!strcmp(s, "false") || !strcmp(s, "0"))
        return 0;
    pe_valid_fail(&oq->v, "%s must be true or false", name);
    return -1;
}

/* {"<items>":[...],"total_count","page","page_size"} */
static json_t *page_json(request_rec *r, const char *items, json_t *list, long total, const ops_query_t *oq)
{
    json_t *o = pe_json_object(r->pool);

    json_object_set_new(o, items, list);
    json_object_set_new(o, "total_count", json_integer(total));
    json_object_set_new(o, "page", json_integer(oq->page));
    json_object_set_new(o, "page_size", json_integer(oq->page_size));
    return o;
}

/* GET /v1/admin-panel/users, GET /v1/support/users */
int pe_h_ops_users_list(pe_ctx_t *cx)
{
    static const char *const names[] = {"search", "email", "username", "plan", "subscription_plan", "is_verified",
                                        "is_active", "sort", "order", NULL};
    static const char *const sorts[] = {"created_at", "username", "email", "last_login", NULL};
    request_rec *r = cx->r;
    pe_principal_t *p = cx->rq->principal;
    pe_user_query_t q;
    ops_query_t oq;
    apr_array_header_t *out;
    pe_store_status_e rs;
    json_t *list, *o;
    const char *order;
    long total;
    int i;

    query_start(&oq, r, names);
    memset(&q, 0, sizeof(q));
    q.search = query_str(&oq, "search");
    q.email = query_str(&oq, "email");
    q.username = query_str(&oq, "username");
    q.plan = query_str(&oq, "plan") ? query_str(&oq, "plan") : query_str(&oq, "subscription_plan");
    q.verified = query_bool(&oq, "is_verified");
    q.active = query_bool(&oq, "is_active");
    q.sort = query_str(&oq, "sort");
    for (i = 0; q.sort && sorts[i] && strcmp(sorts[i], q.sort); i++)
        ;
    if (q.sort && !sorts[i])
        pe_valid_fail(&oq.v, "sort must be one of created_at, username, email, last_login");
    order = query_str(&oq, "order");
    if (order && strcmp(order, "asc") && strcmp(order, "desc"))
        pe_valid_fail(&oq.v, "order must be asc or desc");
    q.ascending = order && !strcmp(order, "asc");
    if (!pe_valid_ok(&oq.v))
        return pe_account_invalid(r, &oq.v);
    q.limit = oq.page_size;
    q.offset = (oq.page - 1) * oq.page_size;
    rs = pe_store_user_list(pe_auth_store(r), &q, &out, &total);
    if (rs != PE_STORE_OK)
        return pe_account_store_down(r);
    list = json_array();
    for (i = 0; i < out->nelts; i++)
        json_array_append_new(list, pe_account_user_json(r, APR_ARRAY_IDX(out, i, pe_user_t *), (pe_role_e)p->role));
    o = page_json(r, "users", list, total, &oq);
    if (p->kind == PE_PRINCIPAL_SUPPORT)
        json_object_set_new(o, "staff_level", json_string(p->staff->staff_level));
    return pe_http_send_json(r, HTTP_OK, o);
}

/* GET /v1/admin-panel/security-logs?event_type=&severity=&user_id= */
int pe_h_ops_events(pe_ctx_t *cx)
{
    static const char *const names[] = {"event_type", "severity", "user_id", NULL};
    request_rec *r = cx->r;
    apr_array_header_t *out;
    ops_query_t oq;
    json_t *list;
    long total;
    int i;

    query_start(&oq, r, names);
    if (!pe_valid_ok(&oq.v))
        return pe_account_invalid(r, &oq.v);
    if (pe_store_event_list(pe_auth_store(r), query_str(&oq, "event_type"), query_str(&oq, "severity"),
                            query_str(&oq, "user_id"), (oq.page - 1) * oq.page_size, oq.page_size, &out,
                            &total) != PE_STORE_OK)
        return pe_account_store_down(r);
    list = json_array();
    for (i = 0; i < out->nelts; i++) {
        const pe_event_t *e = APR_ARRAY_IDX(out, i, pe_event_t *);
        json_t *d = json_loads(e->details, 0, NULL);

        json_array_append_new(list, json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:o,s:s,s:o}", "id", e->id, "event_type",
                                              e->event_type, "principal_kind", pe_principal_kind_name(e->kind),
                                              "user_id", e->principal_id, "username", e->username, "ip_address",
                                              e->ip_address, "details", d ? d : json_object(), "severity",
                                              e->severity, "timestamp", pe_http_time(r->pool, e->created_at)));
    }
    return pe_http_send_json(r, HTTP_OK, page_json(r, "logs", list, total, &oq));
}

/* GET /v1/admin-panel/message-logs/{user_id} */
int pe_h_ops_msglogs(pe_ctx_t *cx)
{
    static const char *const names[] = {NULL};
    request_rec *r = cx->r;
    const char *uid = pe_route_param(cx->match, "user_id");
    apr_array_header_t *out;
    ops_query_t oq;
    json_t *list;
    long total;
    int i;

    query_start(&oq, r, names);
    if (!pe_valid_ok(&oq.v))
        return pe_account_invalid(r, &oq.v);
    if (pe_store_msglog_list(pe_auth_store(r), uid, (oq.page - 1) * oq.page_size, oq.page_size, &out, &total) !=
        PE_STORE_OK)
        return pe_account_store_down(r);
    list = json_array();
    for (i = 0; i < out->nelts; i++) {
        const pe_message_log_t *m = APR_ARRAY_IDX(out, i, pe_message_log_t *);
        json_t *msgs = json_loads(m->messages, 0, NULL);

        json_array_append_new(list, json_pack("{s:s,s:s,s:s,s:o,s:s,s:b,s:s,s:i,s:I,s:I,s:s,s:o}", "request_id",
                                              m->request_id, "username", m->username, "model", m->model, "messages",
                                              msgs ? msgs : json_array(), "response", m->response, "research_enabled",
                                              m->research_enabled, "r_type", m->r_type, "status", m->status,
                                              "tokens_used", (json_int_t)m->tokens_used, "processing_time_ms",
                                              (json_int_t)m->processing_time_ms, "ip_address", m->ip_address,
                                              "timestamp", pe_http_time(r->pool, m->created_at)));
    }
    return pe_http_send_json(r, HTTP_OK, page_json(r, "logs", list, total, &oq));
}

/* GET /v1/admin-panel/statistics: users by state; completions (conversation logs) and their tokens
 * since today 00:00 UTC and over 7 and 30 days; the 10 busiest users of 30 days. */
int pe_h_ops_statistics(pe_ctx_t *cx)
{
    static const int states[][2] = {{-1, -1}, {1, -1}, {0, -1}, {-1, 1}};
    static const struct {
        const char *requests, *tokens;
        apr_int64_t days;
    } periods[] = {{"requests_today", "tokens_today", 0}, {"requests_7d", "tokens_7d", 7},
                   {"requests_30d", "tokens_30d", 30}};
    request_rec *r = cx->r;
    pe_store_t *st = pe_auth_store(r);
    apr_time_t now = apr_time_now(), day = apr_time_from_sec(86400);
    long counts[4], messages = 0, total;
    apr_array_header_t *out;
    pe_user_query_t q;
    json_t *api, *top;
    int i;

    for (i = 0; i < 4; i++) {
        memset(&q, 0, sizeof(q));
        q.active = states[i][0];
        q.verified = states[i][1];
        q.limit = 1;
        if (pe_store_user_list(st, &q, &out, &counts[i]) != PE_STORE_OK)
            return pe_account_store_down(r);
    }
    if (pe_store_msglog_count(st, NULL, &messages) != PE_STORE_OK ||
        pe_store_event_list(st, NULL, NULL, NULL, 0, 1, &out, &total) != PE_STORE_OK)
        return pe_account_store_down(r);
    api = pe_json_bind(r->pool, json_pack("{s:I}", "total_messages", (json_int_t)messages));
    for (i = 0; i < 3; i++) {
        apr_time_t since = periods[i].days ? now - periods[i].days * day : now - now % day;
        long n;
        apr_int64_t tokens;

        if (pe_store_msglog_usage(st, since, &n, &tokens) != PE_STORE_OK)
            return pe_account_store_down(r);
        json_object_set_new(api, periods[i].requests, json_integer(n));
        json_object_set_new(api, periods[i].tokens, json_integer((json_int_t)tokens));
    }
    if (pe_store_msglog_top_users(st, now - 30 * day, 10, &out) != PE_STORE_OK)
        return pe_account_store_down(r);
    top = json_array();
    for (i = 0; i < out->nelts; i++) {
        const pe_usage_row_t *u = APR_ARRAY_IDX(out, i, pe_usage_row_t *);

        json_array_append_new(top, json_pack("{s:s,s:s,s:I,s:I}", "user_id", u->user_id, "username", u->username,
                                             "requests", (json_int_t)u->requests, "tokens", (json_int_t)u->tokens));
    }
    json_object_set_new(api, "top_users_30d", top);
    return pe_http_send_json(
        r, HTTP_OK,
        pe_json_bind(r->pool, json_pack("{s:{s:I,s:I,s:I,s:I},s:O,s:{s:I,s:o}}", "user_statistics", "total_users",
                                        (json_int_t)counts[0], "active_users", (json_int_t)counts[1],
                                        "inactive_users", (json_int_t)counts[2], "verified_users",
                                        (json_int_t)counts[3], "api_statistics", api, "system_statistics",
                                        "security_events", (json_int_t)total, "timestamp",
                                        pe_http_time(r->pool, now))));
}

/* ----------------------------------------------------------------------------------------- */
/* The stored address lists: /v1/admin-panel/ip-whitelist and /v1/admin-panel/ip-blocks */

static pe_iplist_e which_list(pe_ctx_t *cx)
{
    return strstr(cx->match->route->pattern, "ip-whitelist") ? PE_IPLIST_WHITELIST : PE_IPLIST_BLOCKED;
}

static const char *list_event(pe_iplist_e which, int added)
{
    if (which == PE_IPLIST_WHITELIST)
        return added ? "ip_whitelist_added" : "ip_whitelist_removed";
    return added ? "ip_block_added" : "ip_block_removed";
}

/* GET: the active entries that have not expired. */
int pe_h_ops_iplist_get(pe_ctx_t *cx)
{
    request_rec *r = cx->r;
    pe_iplist_e which = which_list(cx);
    apr_array_header_t *out;
    json_t *list, *o;
    int i;

    if (pe_store_iplist_active(pe_auth_store(r), which, apr_time_now(), &out) != PE_STORE_OK)
        return pe_account_store_down(r);
    list = json_array();
    for (i = 0; i < out->nelts; i++) {
        const pe_ipentry_t *e = &APR_ARRAY_IDX(out, i, pe_ipentry_t);

        json_array_append_new(list, json_pack("{s:I,s:s,s:s,s:s,s:o,s:o}", "id", (json_int_t)e->id, "network",
                                              e->network, which == PE_IPLIST_WHITELIST ? "description" : "reason",
                                              e->note, "created_by", e->created_by, "created_at",
                                              pe_http_time(r->pool, e->created_at), "expires_at",
                                              e->expires_at ? pe_http_time(r->pool, e->expires_at) : json_null()));
    }
    o = pe_json_object(r->pool);
    json_object_set_new(o, "entries", list);
    json_object_set_new(o, "total_count", json_integer(out->nelts));
    return pe_http_send_json(r, HTTP_OK, o);
}

/* POST {"network", "reason"|"description", "expires_in" (seconds, optional)} */
int pe_h_ops_iplist_add(pe_ctx_t *cx)
{
    static const char *const block_fields[] = {"network", "reason", "expires_in", NULL};
    static const char *const white_fields[] = {"network", "description", "expires_in", NULL};
    request_rec *r = cx->r;
    pe_principal_t *p = cx->rq->principal;
    pe_iplist_e which = which_list(cx);
    const char *note_name = which == PE_IPLIST_WHITELIST ? "description" : "reason";
    pe_ipnet_t net;
    pe_ipentry_t e;
    pe_valid_t v;
    long long secs = 0;
    int rc;

    if ((rc = pe_account_body(r, which == PE_IPLIST_WHITELIST ? white_fields : block_fields, &v)) != OK)
        return rc;
    memset(&e, 0, sizeof(e));
    e.network = pe_valid_str(&v, "network", 1, 1, 50);
    e.note = pe_valid_str(&v, note_name, 0, 0, 500);
    pe_valid_int(&v, "expires_in", 0, 60, 10LL * 365 * 86400, &secs);
    if (e.network && pe_ipnet_parse(r->pool, e.network, &net))
        pe_valid_fail(&v, "network must be an IPv4 or IPv6 address or CIDR network");
    if (!pe_valid_ok(&v))
        return pe_account_invalid(r, &v);
    e.note = e.note ? e.note : "";
    e.created_by = p->username;
    e.created_at = apr_time_now();
    e.expires_at = secs ? e.created_at + apr_time_from_sec(secs) : 0;
    e.is_active = 1;
    if (pe_store_iplist_add(pe_auth_store(r), which, &e) != PE_STORE_OK)
        return pe_account_store_down(r);
    pe_account_event(r, pe_auth_store(r), list_event(which, 1), p->kind, p->id, p->username,
                     json_pack("{s:s,s:s,s:I}", "network", e.network, note_name, e.note, "expires_in",
                               (json_int_t)secs),
                     "warning");
    return pe_account_ok(r, "Entry added", json_pack("{s:s}", "network", e.network));
}

/* DELETE .../{entry_id} */
int pe_h_ops_iplist_remove(pe_ctx_t *cx)
{
    request_rec *r = cx->r;
    pe_principal_t *p = cx->rq->principal;
    pe_iplist_e which = which_list(cx);
    const char *sid = pe_route_param(cx->match, "entry_id");
    char *end = NULL;
    apr_int64_t id = sid ? apr_strtoi64(sid, &end, 10) : 0;
    pe_store_status_e rs;

    if (!sid || !*sid || *end || id <= 0)
        return pe_http_error(r, HTTP_NOT_FOUND, PE_E_NOT_FOUND, "No such entry");
    rs = pe_store_iplist_remove(pe_auth_store(r), which, id);
    if (rs == PE_STORE_NOTFOUND)
        return pe_http_error(r, HTTP_NOT_FOUND, PE_E_NOT_FOUND, "No such entry");
    if (rs != PE_STORE_OK)
        return pe_account_store_down(r);
    pe_account_event(r, pe_auth_store(r), list_event(which, 0), p->kind, p->id, p->username,
                     json_pack("{s:I}", "entry_id", (json_int_t)id), "warning");
    return pe_account_ok(r, "Entry removed", NULL);
}

/* ----------------------------------------------------------------------------------------- */
/* Automatic blocks (PEAutoBlock) of this host: /v1/admin-panel/auto-blocks */

/*
 * GET: the addresses blocked now. The candidates are the addresses of the recent
 * ip_temporarily_blocked events (the last 500); the shared table says which blocks still run.
 */
int pe_h_ops_autoblocks_get(pe_ctx_t *cx)
{
    request_rec *r = cx->r;
    apr_hash_t *seen = apr_hash_make(r->pool);
    apr_array_header_t *out;
    json_t *list = json_array(), *o;
    long total;
    int i;

    if (pe_store_event_list(pe_auth_store(r), "ip_temporarily_blocked", NULL, NULL, 0, 500, &out, &total) !=
        PE_STORE_OK) {
        json_decref(list);
        return pe_account_store_down(r);
    }
    for (i = 0; i < out->nelts; i++) {
        const pe_event_t *e = APR_ARRAY_IDX(out, i, pe_event_t *);
        apr_time_t until;

        if (apr_hash_get(seen, e->ip_address, APR_HASH_KEY_STRING))
            continue;
        apr_hash_set(seen, e->ip_address, APR_HASH_KEY_STRING, "");
        if (pe_access_auto_block_get(r, e->ip_address, &until) == 1)
            json_array_append_new(list, json_pack("{s:s,s:o}", "ip_address", e->ip_address, "blocked_until",
                                                  pe_http_time(r->pool, until)));
    }
    o = pe_json_object(r->pool);
    json_object_set_new(o, "total_count", json_integer((json_int_t)json_array_size(list)));
    json_object_set_new(o, "blocks", list);
    return pe_http_send_json(r, HTTP_OK, o);
}

/* DELETE .../auto-blocks/{ip}: the address gets in again at once, on every process of this host. */
int pe_h_ops_autoblocks_lift(pe_ctx_t *cx)
{
    request_rec *r = cx->r;
    pe_principal_t *p = cx->rq->principal;
    const char *ip = pe_route_param(cx->match, "ip");
    int rc = pe_access_auto_block_lift(r, ip);

    if (rc < 0)
        return pe_http_error(r, HTTP_NOT_FOUND, PE_E_NOT_FOUND, "Not an IP address");
    if (rc == 0)
        return pe_http_error(r, HTTP_NOT_FOUND, PE_E_NOT_FOUND, "No automatic block runs for this address");
    pe_account_event(r, pe_auth_store(r), "ip_block_lifted", p->kind, p->id, p->username,
                     json_pack("{s:s}", "ip_address", ip), "warning");
    return pe_account_ok(r, "Automatic block lifted", json_pack("{s:s}", "ip_address", ip));
}
