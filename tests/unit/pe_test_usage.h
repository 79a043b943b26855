/*
 * pe_test_usage.h: the monitoring operations' checks (ping, usage figures), run on a fresh store
 * by the conformance suite (test_store.c) and by the MongoDB tests (test_store_mongo.c).
 */
#ifndef PE_TEST_USAGE_H
#define PE_TEST_USAGE_H

#include "pe_store.h"
#include "pe_store_dbd.h"
#include "pe_test.h"

#include <apr_strings.h>
#include <string.h>

/* A user for the logs to belong to (a log of a user that does not exist is not stored). */
static const char *pe_usage_user(pe_store_t *st, const char *name)
{
    pe_user_t *u = apr_pcalloc(pe_tp, sizeof(*u));
    char *digest = apr_pcalloc(pe_tp, 65);

    memset(digest, 'a', 64);
    memcpy(digest, name, strlen(name) < 64 ? strlen(name) : 64);
    u->id = pe_store_new_id(pe_tp);
    u->username = name;
    u->name = "Usage User";
    u->email = apr_pstrcat(pe_tp, name, "@example.com", NULL);
    u->password_hash = "$argon2id$v=19$m=1024,t=1,p=1$c2FsdHNhbHQ$aGFzaA";
    u->user_type = "Personal";
    u->subscription_plan = "free";
    u->access_rtype = "bpe,tot";
    u->level = "low";
    u->api_key_digest = digest;
    u->api_key_prefix = "pe-abc";
    u->api_key_enc = "v1.0.xxx";
    u->is_active = 1;
    ck_assert_int_eq(pe_store_user_create(st, u), PE_STORE_OK);
    return u->id;
}

static void pe_check_ping_and_usage(pe_store_t *st)
{
    pe_store_t *none;
    const char *a = pe_usage_user(st, "usagea"), *b = pe_usage_user(st, "usageb");
    const apr_time_t day = apr_time_from_sec(86400), d0 = 20000 * day; /* 2024-10-04 */
    pe_message_log_t recs[5];
    pe_usage_t u;
    int i;

    ck_assert_int_eq(pe_store_ping(st), PE_STORE_OK);
    none = pe_store_dbd_make(pe_tp, NULL, NULL, NULL, NULL);
    ck_assert_int_eq(pe_store_ping(none), PE_STORE_EIO);
    /* nothing logged: zeros and empty lists */
    ck_assert_int_eq(pe_store_usage(st, NULL, 0, d0 * 2, &u), PE_STORE_OK);
    ck_assert_int_eq(u.messages, 0);
    ck_assert_int_eq(u.days->nelts, 0);
    ck_assert_int_eq(u.r_types->nelts, 0);
    memset(recs, 0, sizeof(recs));
    for (i = 0; i < 5; i++) {
        recs[i].request_id = apr_psprintf(pe_tp, "use-%d", i);
        recs[i].user_id = i < 4 ? a : b;
        recs[i].r_type = i % 2 ? "bpe" : "tot";
        recs[i].tokens_used = 10 * (i + 1);
        recs[i].processing_time_ms = 100;
    }
    recs[0].created_at = d0 + 5;            /* day 20000 */
    recs[1].created_at = d0 + day - 1;      /* day 20000, its last microsecond */
    recs[2].created_at = d0 + day;          /* day 20001 */
    recs[3].created_at = d0 + 3 * day;      /* day 20003: outside [d0, d0 + 3 days) */
    recs[4].created_at = d0 + day + 7;      /* day 20001, the other user */
    recs[4].r_type = NULL;
    ck_assert_int_eq(pe_store_msglog_insert(st, recs, 5), PE_STORE_OK);
    ck_assert_int_eq(pe_store_usage(st, a, d0, d0 + 3 * day, &u), PE_STORE_OK);
    ck_assert_int_eq(u.messages, 3);
    ck_assert_int_eq(u.tokens, 10 + 20 + 30);
    ck_assert_int_eq(u.processing_ms, 300);
    ck_assert_int_eq(u.days->nelts, 2);
    ck_assert_int_eq(APR_ARRAY_IDX(u.days, 0, pe_usage_day_t).day, 20000);
    ck_assert_int_eq(APR_ARRAY_IDX(u.days, 0, pe_usage_day_t).messages, 2);
    ck_assert_int_eq(APR_ARRAY_IDX(u.days, 0, pe_usage_day_t).tokens, 30);
    ck_assert_int_eq(APR_ARRAY_IDX(u.days, 1, pe_usage_day_t).day, 20001);
    ck_assert_int_eq(APR_ARRAY_IDX(u.days, 1, pe_usage_day_t).tokens, 30);
    ck_assert_int_eq(u.r_types->nelts, 2);
    ck_assert_str_eq(APR_ARRAY_IDX(u.r_types, 0, pe_usage_rtype_t).r_type, "bpe");
    ck_assert_int_eq(APR_ARRAY_IDX(u.r_types, 0, pe_usage_rtype_t).messages, 1);
    ck_assert_str_eq(APR_ARRAY_IDX(u.r_types, 1, pe_usage_rtype_t).r_type, "tot");
    ck_assert_int_eq(APR_ARRAY_IDX(u.r_types, 1, pe_usage_rtype_t).messages, 2);
    /* everyone */
    ck_assert_int_eq(pe_store_usage(st, NULL, d0, d0 + 4 * day, &u), PE_STORE_OK);
    ck_assert_int_eq(u.messages, 5);
    ck_assert_int_eq(u.tokens, 150);
    ck_assert_int_eq(u.days->nelts, 3);
    ck_assert_int_eq(APR_ARRAY_IDX(u.days, 1, pe_usage_day_t).messages, 2);
    ck_assert_int_eq(u.r_types->nelts, 3);
    ck_assert_str_eq(APR_ARRAY_IDX(u.r_types, 0, pe_usage_rtype_t).r_type, "");
    /* a user with no logs */
    ck_assert_int_eq(pe_store_usage(st, pe_store_new_id(pe_tp), 0, d0 * 2, &u), PE_STORE_OK);
    ck_assert_int_eq(u.messages, 0);
    ck_assert_int_eq(u.tokens, 0);
}

/* API-usage records: a batch written twice stores each request once; the stored record is the
 * one given (no key, only its prefix); sums per user and for everyone over a period; the
 * retention removes the oldest expired records, at most `limit` per call, and nothing newer. */
static void pe_check_api_usage(pe_store_t *st)
{
    const apr_time_t day = apr_time_from_sec(86400), d0 = 20000 * day;
    const char *a = pe_store_new_id(pe_tp), *b = pe_store_new_id(pe_tp);
    const char *run = pe_store_new_id(pe_tp);
    pe_api_usage_t recs[6], *got;
    pe_api_usage_sum_t sum;
    long removed = -1;
    int i;

    memset(recs, 0, sizeof(recs));
    for (i = 0; i < 6; i++) {
        recs[i].request_id = apr_psprintf(pe_tp, "%s-api-%d", run, i);
        recs[i].user_id = i < 4 ? a : b;
        recs[i].key_prefix = "pe-AbCdEf";
        recs[i].endpoint = i % 2 ? "/v1/prompt/completions" : "/v1/batch/process";
        recs[i].method = "POST";
        recs[i].status = i == 3 ? 429 : 200;
        recs[i].latency_ms = 10 * (i + 1);
        recs[i].tokens_used = i == 3 ? 0 : 100 + i;
        recs[i].ip_address = "192.0.2.7";
        recs[i].user_agent = "conformance/1.0";
        recs[i].created_at = d0 + i * day + 5; /* one a day: 20000 .. 20005 */
    }
    recs[5].user_agent = NULL;
    ck_assert_int_eq(pe_store_api_usage_insert(st, recs, 4), PE_STORE_OK);
    /* written again with more: the first four are not duplicated */
    ck_assert_int_eq(pe_store_api_usage_insert(st, recs, 6), PE_STORE_OK);
    ck_assert_int_eq(pe_store_api_usage_insert(st, recs, 0), PE_STORE_OK);
    ck_assert_int_eq(pe_store_api_usage_get(st, recs[3].request_id, &got), PE_STORE_OK);
    ck_assert_str_eq(got->user_id, a);
    ck_assert_str_eq(got->key_prefix, "pe-AbCdEf");
    ck_assert_str_eq(got->endpoint, "/v1/prompt/completions");
    ck_assert_str_eq(got->method, "POST");
    ck_assert_int_eq(got->status, 429);
    ck_assert_int_eq(got->latency_ms, 40);
    ck_assert_int_eq(got->tokens_used, 0);
    ck_assert_str_eq(got->ip_address, "192.0.2.7");
    ck_assert_str_eq(got->user_agent, "conformance/1.0");
    ck_assert_int_eq(got->created_at, d0 + 3 * day + 5);
    ck_assert_int_eq(pe_store_api_usage_get(st, recs[5].request_id, &got), PE_STORE_OK);
    ck_assert_str_eq(got->user_agent, "");
    ck_assert_int_eq(pe_store_api_usage_get(st, "no-such-request", &got), PE_STORE_NOTFOUND);
    /* sums: user a over days 20000..20002 (records 0, 1, 2); b; everyone over the whole period */
    ck_assert_int_eq(pe_store_api_usage_sum(st, a, d0, d0 + 3 * day, &sum), PE_STORE_OK);
    ck_assert_int_eq(sum.calls, 3);
    ck_assert_int_eq(sum.latency_ms, 10 + 20 + 30);
    ck_assert_int_eq(sum.tokens, 100 + 101 + 102);
    ck_assert_int_eq(pe_store_api_usage_sum(st, b, d0, d0 + 6 * day, &sum), PE_STORE_OK);
    ck_assert_int_eq(sum.calls, 2);
    ck_assert_int_eq(pe_store_api_usage_sum(st, NULL, d0, d0 + 6 * day, &sum), PE_STORE_OK);
    ck_assert_int_ge(sum.calls, 6);
    ck_assert_int_eq(pe_store_api_usage_sum(st, pe_store_new_id(pe_tp), d0, d0 + 6 * day, &sum), PE_STORE_OK);
    ck_assert_int_eq(sum.calls, 0);
    ck_assert_int_eq(sum.latency_ms, 0);
    /* retention: before day 20003 (records 0, 1, 2 and older ones of other tests), 2 at a time */
    ck_assert_int_eq(pe_store_api_usage_purge(st, d0 + 3 * day, 2, &removed), PE_STORE_OK);
    ck_assert_int_eq(removed, 2);
    while (removed == 2)
        ck_assert_int_eq(pe_store_api_usage_purge(st, d0 + 3 * day, 2, &removed), PE_STORE_OK);
    ck_assert_int_eq(pe_store_api_usage_purge(st, d0 + 3 * day, 2, &removed), PE_STORE_OK);
    ck_assert_int_eq(removed, 0);
    ck_assert_int_eq(pe_store_api_usage_get(st, recs[0].request_id, &got), PE_STORE_NOTFOUND);
    ck_assert_int_eq(pe_store_api_usage_get(st, recs[2].request_id, &got), PE_STORE_NOTFOUND);
    ck_assert_int_eq(pe_store_api_usage_get(st, recs[3].request_id, &got), PE_STORE_OK);
    ck_assert_int_eq(pe_store_api_usage_sum(st, a, 0, d0 + 10 * day, &sum), PE_STORE_OK);
    ck_assert_int_eq(sum.calls, 1);
    ck_assert_int_eq(pe_store_api_usage_sum(st, b, 0, d0 + 10 * day, &sum), PE_STORE_OK);
    ck_assert_int_eq(sum.calls, 2);
    ck_assert_int_eq(pe_store_api_usage_purge(st, d0 + 3 * day, 0, &removed), PE_STORE_OK);
    ck_assert_int_eq(removed, 0);
}

#endif
