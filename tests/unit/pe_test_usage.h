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

static void pe_check_ping_and_usage(pe_store_t *st)
{
    pe_store_t *none;
    const char *a = pe_store_new_id(pe_tp), *b = pe_store_new_id(pe_tp);
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

#endif
