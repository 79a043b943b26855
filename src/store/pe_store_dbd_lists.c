/*
 * pe_store_dbd_lists.c: the dbd backend's operators' lists: users (filtered, sorted, paged,
 * with the total), security events and a user's conversation logs. Filters are parameters of
 * fixed statements ('' or -1: any); a sort is one of eight statements (SQL cannot bind ORDER BY).
 */
#include "pe_store_dbd_int.h"

#include <apr_lib.h>
#include <apr_strings.h>

/* '' for NULL, else the value. */
static const char *any(const char *s)
{
    return s ? s : "";
}

/* %search% for LIKE ... ESCAPE '!', lower-cased (ASCII, as SQLite's LOWER). */
static const char *like(apr_pool_t *p, const char *s)
{
    char *o, *w;

    if (!s || !*s)
        return "";
    w = o = apr_palloc(p, 2 * strlen(s) + 3);
    *w++ = '%';
    for (; *s; s++) {
        if (*s == '!' || *s == '%' || *s == '_')
            *w++ = '!';
        *w++ = (char)apr_tolower(*s);
    }
    *w++ = '%';
    *w = '\0';
    return o;
}

/* The 14 filter parameters of USER_FILTER. */
static void user_filter_args(apr_pool_t *p, const pe_user_query_t *q, const char **a)
{
    const char *l = like(p, q->search);
    const char *ver = q->verified < 0 ? "-1" : q->verified ? "1" : "0";
    const char *act = q->active < 0 ? "-1" : q->active ? "1" : "0";

    a[0] = any(q->search && *q->search ? q->search : NULL);
    a[1] = a[2] = a[3] = l;
    a[4] = a[5] = any(q->email);
    a[6] = a[7] = any(q->username);
    a[8] = a[9] = any(q->plan);
    a[10] = a[11] = ver;
    a[12] = a[13] = act;
}

static int sort_key(const char *sort)
{
    if (sort && !strcmp(sort, "username"))
        return 1;
    if (sort && !strcmp(sort, "email"))
        return 2;
    if (sort && !strcmp(sort, "last_login"))
        return 3;
    return 0;
}

static pe_store_status_e count_of(pe_store_t *st, pe_q_e q, int nargs, const char **a, long *total)
{
    const char *c[1];
    pe_store_status_e rs = pe_dbd_select(st, q, nargs, a, 1, c);

    *total = rs == PE_STORE_OK ? (long)pe_dbd_to64(c[0]) : 0;
    return rs;
}

pe_store_status_e dbd_user_list(pe_store_t *st, const pe_user_query_t *q, apr_array_header_t **out, long *total)
{
    apr_pool_t *p = pe_store_pool(st);
    const char *a[16];
    apr_array_header_t *rows;
    pe_store_status_e rs;
    int i;

    user_filter_args(p, q, a);
    if ((rs = count_of(st, Q_USER_COUNT_Q, 14, a, total)) != PE_STORE_OK)
        return rs;
    a[14] = pe_dbd_i64(p, q->limit);
    a[15] = pe_dbd_i64(p, q->offset);
    rs = pe_dbd_select_rows(st, (pe_q_e)(Q_USER_LIST_FIRST + 2 * sort_key(q->sort) + (q->ascending ? 1 : 0)), 16, a,
                            USER_NCOLS, &rows);
    for (i = 0; rs == PE_STORE_OK && i < rows->nelts; i++)
        APR_ARRAY_PUSH(*out, pe_user_t *) = pe_dbd_user_from_cols(p, APR_ARRAY_IDX(rows, i, const char **));
    return rs;
}

pe_store_status_e dbd_event_list(pe_store_t *st, const char *event_type, const char *severity,
                                 const char *principal_id, long offset, long limit, apr_array_header_t **out,
                                 long *total)
{
    apr_pool_t *p = pe_store_pool(st);
    const char *a[8] = {any(event_type), any(event_type), any(severity), any(severity), any(principal_id),
                        any(principal_id), pe_dbd_i64(p, limit), pe_dbd_i64(p, offset)};
    apr_array_header_t *rows;
    pe_store_status_e rs;
    int i;

    if ((rs = count_of(st, Q_EVENT_COUNT_Q, 6, a, total)) != PE_STORE_OK)
        return rs;
    if ((rs = pe_dbd_select_rows(st, Q_EVENT_LIST, 8, a, 9, &rows)) != PE_STORE_OK)
        return rs;
    for (i = 0; i < rows->nelts; i++) {
        const char **c = APR_ARRAY_IDX(rows, i, const char **);
        pe_event_t *e = apr_pcalloc(p, sizeof(*e));

        e->id = c[0];
        e->event_type = c[1];
        e->kind = pe_principal_kind_parse(c[2]);
        e->principal_id = pe_dbd_s0(c[3]);
        e->username = pe_dbd_s0(c[4]);
        e->ip_address = pe_dbd_s0(c[5]);
        e->details = c[6] && *c[6] ? c[6] : "{}";
        e->severity = c[7];
        e->created_at = pe_dbd_to64(c[8]);
        APR_ARRAY_PUSH(*out, pe_event_t *) = e;
    }
    return PE_STORE_OK;
}

pe_store_status_e dbd_msglog_list(pe_store_t *st, const char *user_id, long offset, long limit,
                                  apr_array_header_t **out, long *total)
{
    apr_pool_t *p = pe_store_pool(st);
    const char *a[3] = {user_id, pe_dbd_i64(p, limit), pe_dbd_i64(p, offset)};
    apr_array_header_t *rows;
    pe_store_status_e rs;
    int i;

    if ((rs = count_of(st, Q_MSGLOG_COUNT_USER, 1, a, total)) != PE_STORE_OK)
        return rs;
    if ((rs = pe_dbd_select_rows(st, Q_MSGLOG_LIST, 3, a, 13, &rows)) != PE_STORE_OK)
        return rs;
    for (i = 0; i < rows->nelts; i++) {
        const char **c = APR_ARRAY_IDX(rows, i, const char **);
        pe_message_log_t *m = apr_pcalloc(p, sizeof(*m));

        m->request_id = c[0];
        m->user_id = c[1];
        m->username = pe_dbd_s0(c[2]);
        m->model = pe_dbd_s0(c[3]);
        m->r_type = pe_dbd_s0(c[4]);
        m->research_enabled = (int)pe_dbd_to64(c[5]);
        m->messages = c[6] ? c[6] : "[]";
        m->response = pe_dbd_s0(c[7]);
        m->status = (int)pe_dbd_to64(c[8]);
        m->tokens_used = pe_dbd_to64(c[9]);
        m->processing_time_ms = pe_dbd_to64(c[10]);
        m->ip_address = pe_dbd_s0(c[11]);
        m->created_at = pe_dbd_to64(c[12]);
        APR_ARRAY_PUSH(*out, pe_message_log_t *) = m;
    }
    return PE_STORE_OK;
}

/* The operators' reset of a system prompt to its built-in text (here with the operators' writes). */
pe_store_status_e dbd_system_prompt_reset(pe_store_t *st, const char *r_type)
{
    return pe_dbd_update(st, Q_PROMPT_DEL, 1, &r_type);
}

pe_store_status_e dbd_msglog_usage(pe_store_t *st, apr_time_t since, long *requests, apr_int64_t *tokens)
{
    const char *a[] = {pe_dbd_i64(pe_store_pool(st), since)};
    const char *c[2];
    pe_store_status_e rs = pe_dbd_select(st, Q_MSGLOG_USAGE, 1, a, 2, c);

    if (rs == PE_STORE_OK) {
        *requests = (long)pe_dbd_to64(c[0]);
        *tokens = pe_dbd_to64(c[1]);
    }
    return rs;
}

pe_store_status_e dbd_msglog_top_users(pe_store_t *st, apr_time_t since, int limit, apr_array_header_t **out)
{
    apr_pool_t *p = pe_store_pool(st);
    const char *a[] = {pe_dbd_i64(p, since), pe_dbd_i64(p, limit)};
    apr_array_header_t *rows;
    pe_store_status_e rs = pe_dbd_select_rows(st, Q_MSGLOG_TOP, 2, a, 4, &rows);
    int i;

    for (i = 0; rs == PE_STORE_OK && i < rows->nelts; i++) {
        const char **c = APR_ARRAY_IDX(rows, i, const char **);
        pe_usage_row_t *u = apr_pcalloc(p, sizeof(*u));

        u->user_id = c[0];
        u->username = pe_dbd_s0(c[1]);
        u->requests = (long)pe_dbd_to64(c[2]);
        u->tokens = pe_dbd_to64(c[3]);
        APR_ARRAY_PUSH(*out, pe_usage_row_t *) = u;
    }
    return rs;
}
