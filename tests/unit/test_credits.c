/* test_credits.c: credit days, the limits object, and the store's atomic take / refund / lazy
 * daily reset and conversation-log batches on a real SQLite file. */
#include "pe_credits.h"
#include "pe_store.h"
#include "pe_test.h"

#include <apr_strings.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

START_TEST(test_day)
{
    /* 2023-11-14T22:13:20Z = 1700000000 */
    apr_time_t t = apr_time_from_sec(1700000000);

    ck_assert_int_eq(pe_credits_day(t, 0), 19675);
    ck_assert_int_eq(pe_credits_day(apr_time_from_sec(19675LL * 86400), 0), 19675);
    ck_assert_int_eq(pe_credits_day(apr_time_from_sec(19675LL * 86400 - 1), 0), 19674);
    /* with a 23:00 reset, 22:13 is still the previous day */
    ck_assert_int_eq(pe_credits_day(t, 23), 19674);
    ck_assert_int_eq(pe_credits_day(apr_time_from_sec(19675LL * 86400 + 23 * 3600), 23), 19675);
    ck_assert_int_eq(pe_credits_day(t, 99), 19675);
    ck_assert_int_eq(pe_credits_day(apr_time_from_sec(-1), 0), -1);
    ck_assert_int_eq(pe_credits_next_reset(t, 0), apr_time_from_sec(19676LL * 86400));
    ck_assert_int_eq(pe_credits_next_reset(t, 23), apr_time_from_sec(19674LL * 86400 + 86400 + 23 * 3600));
}
END_TEST

START_TEST(test_limits_json)
{
    json_t *j = pe_credits_limits_json(0, 31, apr_time_from_sec(19676LL * 86400 + 3600));

    ck_assert_int_eq(json_integer_value(json_object_get(j, "conversation_limit")), 0);
    ck_assert_int_eq(json_integer_value(json_object_get(j, "reset")), 31);
    ck_assert_str_eq(json_string_value(json_object_get(j, "resets_at")), "2023-11-15T01:00:00Z");
    json_decref(j);
}
END_TEST

static char dbpath[64];

/* Pool cleanup: close a test connection. */
static apr_status_t close_conn(void *h)
{
    const apr_dbd_driver_t *drv;

    if (apr_dbd_get_driver(pe_tp, "sqlite3", &drv) == APR_SUCCESS)
        apr_dbd_close(drv, h);
    return APR_SUCCESS;
}

/* A fresh SQLite file with the schema and one user (limit, reset, reset_day). */
static pe_store_t *store_with_user(const char *id, apr_int64_t limit, apr_int64_t reset, apr_int64_t day)
{
    const apr_dbd_driver_t *drv;
    apr_dbd_t *h;
    const char *err = NULL;
    pe_store_t *st;
    pe_user_t u;
    int applied;

    ck_assert_int_eq(apr_dbd_init(pe_tp), APR_SUCCESS);
    ck_assert_int_eq(apr_dbd_get_driver(pe_tp, "sqlite3", &drv), APR_SUCCESS);
    snprintf(dbpath, sizeof(dbpath), "/tmp/pe-unit-credits-%d.db", (int)getpid());
    unlink(dbpath);
    ck_assert_int_eq(apr_dbd_open_ex(drv, pe_tp, dbpath, &h, &err), APR_SUCCESS);
    apr_pool_cleanup_register(pe_tp, h, close_conn, apr_pool_cleanup_null);
    st = pe_store_dbd_make(pe_tp, drv, h, apr_hash_make(pe_tp), pe_tp);
    ck_assert_int_eq(pe_store_schema_apply(st, &applied), PE_STORE_OK);
    memset(&u, 0, sizeof(u));
    u.id = id;
    u.username = "carol";
    u.name = "Carol";
    u.email = "carol@example.com";
    u.password_hash = "x";
    u.user_type = "Personal";
    u.subscription_plan = "free";
    u.conv_limit = limit;
    u.conv_reset = reset;
    u.reset_day = day;
    u.level = "low";
    u.api_key_digest = apr_pstrcat(pe_tp, "digest-", id, NULL);
    u.api_key_prefix = "pe-x";
    u.api_key_enc = "x";
    u.is_active = 1;
    ck_assert_int_eq(pe_store_user_create(st, &u), PE_STORE_OK);
    return st;
}

/* A second connection to the same file (another process's view), closed with pool p. */
static pe_store_t *reopen_in(apr_pool_t *p)
{
    const apr_dbd_driver_t *drv;
    apr_dbd_t *h;
    const char *err = NULL;

    apr_dbd_get_driver(p, "sqlite3", &drv);
    ck_assert_int_eq(apr_dbd_open_ex(drv, p, dbpath, &h, &err), APR_SUCCESS);
    apr_pool_cleanup_register(p, h, close_conn, apr_pool_cleanup_null);
    return pe_store_dbd_make(p, drv, h, apr_hash_make(p), p);
}

static pe_store_t *reopen(void)
{
    return reopen_in(pe_tp);
}

START_TEST(test_take_until_empty)
{
    pe_store_t *st = store_with_user("u1", 3, 10, 100);
    apr_int64_t limit, reset;
    pe_user_t *u;

    ck_assert_int_eq(pe_store_credits_take(st, "u1", 100, 1), PE_STORE_OK);
    ck_assert_int_eq(pe_store_credits_take(st, "u1", 100, 2), PE_STORE_OK);
    ck_assert_int_eq(pe_store_credits_take(st, "u1", 100, 3), PE_STORE_OK);
    ck_assert_int_eq(pe_store_credits_take(st, "u1", 100, 4), PE_STORE_EMPTY);
    ck_assert_int_eq(pe_store_credits_get(st, "u1", 100, &limit, &reset), PE_STORE_OK);
    ck_assert_int_eq(limit, 0);
    ck_assert_int_eq(reset, 10);
    ck_assert_int_eq(pe_store_user_by_id(st, "u1", &u), PE_STORE_OK);
    ck_assert_int_eq(u->conv_limit, 0);
    ck_assert_int_eq(u->last_activity, 3);
    /* an unknown user has nothing to take */
    ck_assert_int_eq(pe_store_credits_take(st, "nobody", 100, 5), PE_STORE_EMPTY);
    /* the next day the limit is back to reset, once: the take writes reset_day */
    ck_assert_int_eq(pe_store_credits_get(st, "u1", 101, &limit, &reset), PE_STORE_OK);
    ck_assert_int_eq(limit, 10);
    ck_assert_int_eq(pe_store_credits_take(st, "u1", 101, 6), PE_STORE_OK);
    ck_assert_int_eq(pe_store_user_by_id(st, "u1", &u), PE_STORE_OK);
    ck_assert_int_eq(u->conv_limit, 9);
    ck_assert_int_eq(u->reset_day, 101);
    ck_assert_int_eq(pe_store_credits_take(st, "u1", 101, 7), PE_STORE_OK);
    ck_assert_int_eq(pe_store_user_by_id(st, "u1", &u), PE_STORE_OK);
    ck_assert_int_eq(u->conv_limit, 8);
    unlink(dbpath);
}
END_TEST

START_TEST(test_refund_exact)
{
    pe_store_t *st = store_with_user("u2", 1, 5, 200);
    pe_user_t *u;

    ck_assert_int_eq(pe_store_credits_take(st, "u2", 200, 1), PE_STORE_OK);
    ck_assert_int_eq(pe_store_credits_refund(st, "u2", 200), PE_STORE_OK);
    ck_assert_int_eq(pe_store_user_by_id(st, "u2", &u), PE_STORE_OK);
    ck_assert_int_eq(u->conv_limit, 1);
    /* a take on day 200 refunded after the day-201 reset gives nothing back */
    ck_assert_int_eq(pe_store_credits_take(st, "u2", 200, 2), PE_STORE_OK);
    ck_assert_int_eq(pe_store_credits_take(st, "u2", 201, 3), PE_STORE_OK);
    ck_assert_int_eq(pe_store_credits_refund(st, "u2", 200), PE_STORE_NOTFOUND);
    ck_assert_int_eq(pe_store_user_by_id(st, "u2", &u), PE_STORE_OK);
    ck_assert_int_eq(u->conv_limit, 4);
    unlink(dbpath);
}
END_TEST

START_TEST(test_zero_reset_never_refills)
{
    pe_store_t *st = store_with_user("u3", 1, 0, 0);
    apr_int64_t limit, reset;

    ck_assert_int_eq(pe_store_credits_take(st, "u3", 300, 1), PE_STORE_OK);
    ck_assert_int_eq(pe_store_credits_take(st, "u3", 301, 2), PE_STORE_EMPTY);
    ck_assert_int_eq(pe_store_credits_get(st, "u3", 302, &limit, &reset), PE_STORE_OK);
    ck_assert_int_eq(limit, 0);
    unlink(dbpath);
}
END_TEST

/* 8 processes race for 20 credits, 5 takes each: exactly 20 succeed. */
START_TEST(test_take_concurrent_processes)
{
    pe_store_t *st = store_with_user("u4", 20, 20, 400);
    pid_t pids[8];
    int i, ok = 0, status;
    pe_user_t *u;

    for (i = 0; i < 8; i++) {
        pids[i] = fork();
        if (pids[i] == 0) {
            apr_pool_t *p;
            pe_store_t *mine;
            int k, got = 0;

            apr_pool_create(&p, NULL);
            mine = reopen_in(p);
            apr_dbd_query(mine->driver, mine->handle, &k, "PRAGMA busy_timeout = 10000");
            for (k = 0; k < 5; k++)
                if (pe_store_credits_take(mine, "u4", 400, k) == PE_STORE_OK)
                    got++;
            apr_pool_destroy(p);
            _exit(got);
        }
    }
    for (i = 0; i < 8; i++) {
        waitpid(pids[i], &status, 0);
        ck_assert(WIFEXITED(status));
        ok += WEXITSTATUS(status);
    }
    ck_assert_int_eq(ok, 20);
    ck_assert_int_eq(pe_store_user_by_id(st, "u4", &u), PE_STORE_OK);
    ck_assert_int_eq(u->conv_limit, 0);
    unlink(dbpath);
}
END_TEST

START_TEST(test_msglog_batch_idempotent)
{
    pe_store_t *st = store_with_user("u5", 1, 1, 0);
    pe_message_log_t recs[3];
    long n;
    int i;

    memset(recs, 0, sizeof(recs));
    for (i = 0; i < 3; i++) {
        recs[i].request_id = apr_psprintf(pe_tp, "req-%d", i);
        recs[i].user_id = "u5";
        recs[i].model = "gpt-4o-mini";
        recs[i].messages = "[{\"role\":\"user\",\"content\":\"hi\"}]";
        recs[i].response = "hello";
        recs[i].status = 200;
        recs[i].tokens_used = 12;
        recs[i].created_at = 1;
    }
    ck_assert_int_eq(pe_store_msglog_insert(st, recs, 2), PE_STORE_OK);
    ck_assert_int_eq(pe_store_msglog_count(st, "u5", &n), PE_STORE_OK);
    ck_assert_int_eq(n, 2);
    /* the same batch again plus one new record: only the new one is added */
    ck_assert_int_eq(pe_store_msglog_insert(st, recs, 3), PE_STORE_OK);
    ck_assert_int_eq(pe_store_msglog_count(st, NULL, &n), PE_STORE_OK);
    ck_assert_int_eq(n, 3);
    ck_assert_int_eq(pe_store_msglog_count(st, "other", &n), PE_STORE_OK);
    ck_assert_int_eq(n, 0);
    ck_assert_int_eq(pe_store_msglog_insert(st, recs, 0), PE_STORE_OK);
    /* on a connection that has not been set up yet (its set-up must not run inside the batch) */
    recs[0].request_id = "req-fresh";
    ck_assert_int_eq(pe_store_msglog_insert(reopen(), recs, 1), PE_STORE_OK);
    ck_assert_int_eq(pe_store_msglog_count(st, NULL, &n), PE_STORE_OK);
    ck_assert_int_eq(n, 4);
    /* a batch of several statements' worth of rows, repeated: no duplicates */
    {
        pe_message_log_t many[130];

        memset(many, 0, sizeof(many));
        for (i = 0; i < 130; i++) {
            many[i].request_id = apr_psprintf(pe_tp, "many-%d", i);
            many[i].user_id = "u6";
            many[i].created_at = i;
        }
        ck_assert_int_eq(pe_store_msglog_insert(st, many, 130), PE_STORE_OK);
        ck_assert_int_eq(pe_store_msglog_insert(st, many + 10, 120), PE_STORE_OK);
        ck_assert_int_eq(pe_store_msglog_count(st, "u6", &n), PE_STORE_OK);
        ck_assert_int_eq(n, 130);
    }
    unlink(dbpath);
}
END_TEST

START_TEST(test_take_n_all_or_nothing)
{
    pe_store_t *st = store_with_user("u9", 5, 8, 300);
    pe_user_t *u;

    /* more than are left: nothing taken */
    ck_assert_int_eq(pe_store_credits_take_n(st, "u9", 6, 300, 1), PE_STORE_EMPTY);
    ck_assert_int_eq(pe_store_user_by_id(st, "u9", &u), PE_STORE_OK);
    ck_assert_int_eq(u->conv_limit, 5);
    ck_assert_int_eq(pe_store_credits_take_n(st, "u9", 3, 300, 2), PE_STORE_OK);
    ck_assert_int_eq(pe_store_user_by_id(st, "u9", &u), PE_STORE_OK);
    ck_assert_int_eq(u->conv_limit, 2);
    ck_assert_int_eq(u->last_activity, 2);
    /* exactly what is left */
    ck_assert_int_eq(pe_store_credits_take_n(st, "u9", 2, 300, 3), PE_STORE_OK);
    ck_assert_int_eq(pe_store_credits_take_n(st, "u9", 1, 300, 4), PE_STORE_EMPTY);
    /* exact refund of the failed tasks */
    ck_assert_int_eq(pe_store_credits_refund_n(st, "u9", 2, 300), PE_STORE_OK);
    ck_assert_int_eq(pe_store_user_by_id(st, "u9", &u), PE_STORE_OK);
    ck_assert_int_eq(u->conv_limit, 2);
    ck_assert_int_eq(pe_store_credits_take_n(st, "u9", 0, 300, 5), PE_STORE_OK);
    ck_assert_int_eq(pe_store_credits_refund_n(st, "u9", 0, 300), PE_STORE_OK);
    /* the next day: the daily value, then the batch */
    ck_assert_int_eq(pe_store_credits_take_n(st, "u9", 8, 301, 6), PE_STORE_OK);
    ck_assert_int_eq(pe_store_user_by_id(st, "u9", &u), PE_STORE_OK);
    ck_assert_int_eq(u->conv_limit, 0);
    ck_assert_int_eq(u->reset_day, 301);
    /* a refund for the day before the reset gives nothing */
    ck_assert_int_eq(pe_store_credits_refund_n(st, "u9", 3, 300), PE_STORE_NOTFOUND);
    ck_assert_int_eq(pe_store_credits_take_n(st, "nobody", 1, 301, 7), PE_STORE_EMPTY);
    unlink(dbpath);
}
END_TEST

Suite *pe_suite_credits(void)
{
    Suite *s = suite_create("credits");
    TCase *tc = pe_tcase("day");

    tcase_add_test(tc, test_day);
    tcase_add_test(tc, test_limits_json);
    suite_add_tcase(s, tc);
    tc = pe_tcase("store");
    tcase_add_test(tc, test_take_until_empty);
    tcase_add_test(tc, test_refund_exact);
    tcase_add_test(tc, test_take_n_all_or_nothing);
    tcase_add_test(tc, test_zero_reset_never_refills);
    tcase_add_test(tc, test_take_concurrent_processes);
    tcase_add_test(tc, test_msglog_batch_idempotent);
    suite_add_tcase(s, tc);
    return s;
}
