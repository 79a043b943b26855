/* test_access.c: the access layer's pure logic (pe_access.h). */
#include "pe_access.h"
#include "pe_route.h"
#include "pe_test.h"

#include <apr_global_mutex.h>
#include <string.h>

#define SEC(n) apr_time_from_sec(n)

static pe_access_limit_t limit(const char *spec)
{
    pe_access_limit_t l;
    const char *err = pe_access_limit_parse(pe_tp, spec, &l);

    ck_assert_msg(err == NULL, "'%s': %s", spec, err);
    return l;
}

static void limit_bad(const char *spec, const char *needle)
{
    pe_access_limit_t l = {7, {PE_RL_FIXED_WINDOW, 7, 7, 7}};
    const char *err = pe_access_limit_parse(pe_tp, spec, &l);

    ck_assert_msg(err != NULL, "'%s' was accepted", spec);
    ck_assert_msg(strstr(err, needle) != NULL, "'%s': '%s' lacks '%s'", spec, err, needle);
    ck_assert_int_eq(l.on, 7); /* untouched */
}

START_TEST(limit_specs)
{
    pe_access_limit_t l = limit("100/min");

    ck_assert_int_eq(l.on, 1);
    ck_assert_int_eq(l.rule.algo, PE_RL_TOKEN_BUCKET);
    ck_assert_uint_eq(l.rule.limit, 100);
    ck_assert_uint_eq(l.rule.burst, 0);
    ck_assert_int_eq(l.rule.window, SEC(60));

    l = limit("60/minute burst=0 algorithm=fixed-window");
    ck_assert_int_eq(l.rule.algo, PE_RL_FIXED_WINDOW);
    ck_assert_uint_eq(l.rule.limit, 60);
    l = limit("  10/5m   burst=3 ");
    ck_assert_int_eq(l.rule.window, SEC(300));
    ck_assert_uint_eq(l.rule.burst, 3);
    l = limit("1/s algorithm=SLIDING-WINDOW");
    ck_assert_int_eq(l.rule.algo, PE_RL_SLIDING_WINDOW);
    ck_assert_int_eq(l.rule.window, SEC(1));
    l = limit("5000/day");
    ck_assert_int_eq(l.rule.window, SEC(86400));
    l = limit("off");
    ck_assert_int_eq(l.on, 0);
    ck_assert_str_eq(pe_access_limit_str(pe_tp, &l), "Off");
    ck_assert_str_eq(pe_access_limit_str(pe_tp, &pe_access_ip_limit_default),
                     "100/60s burst=20 algorithm=token-bucket");

    limit_bad("", "give a limit");
    limit_bad("100", "not a limit");
    limit_bad("0/min", "request count");
    limit_bad("1000001/min", "request count");
    limit_bad("-5/min", "request count");
    limit_bad("100/week", "time unit");
    limit_bad("100/0m", "time unit");
    limit_bad("100/2d", "time unit");
    limit_bad("100/min burst=x", "burst");
    limit_bad("100/min burst=5 algorithm=fixed-window", "takes no burst");
    limit_bad("100/min algorithm=leaky", "algorithm is");
    limit_bad("100/min foo=1", "not an option");
    limit_bad("Off 100/min", "Off takes no other value");
}
END_TEST

START_TEST(strike_specs)
{
    pe_access_strikes_t s;

    ck_assert_ptr_null(pe_access_strikes_parse(pe_tp, "10 15m 15m", &s));
    ck_assert_int_eq(s.on, 1);
    ck_assert_uint_eq(s.rule.max_strikes, 10);
    ck_assert_int_eq(s.rule.window, SEC(900));
    ck_assert_int_eq(s.rule.block_for, SEC(900));
    ck_assert_ptr_null(pe_access_strikes_parse(pe_tp, "3 60s 2s", &s));
    ck_assert_int_eq(s.rule.block_for, SEC(2));
    ck_assert_ptr_null(pe_access_strikes_parse(pe_tp, "Off", &s));
    ck_assert_int_eq(s.on, 0);
    ck_assert_ptr_nonnull(pe_access_strikes_parse(pe_tp, "0 1m 1m", &s));
    ck_assert_ptr_nonnull(pe_access_strikes_parse(pe_tp, "10 15m", &s));
    ck_assert_ptr_nonnull(pe_access_strikes_parse(pe_tp, "10 15m 15m 1", &s));
    ck_assert_ptr_nonnull(strstr(pe_access_strikes_parse(pe_tp, "10 soon 15m", &s), "window"));
    ck_assert_ptr_nonnull(strstr(pe_access_strikes_parse(pe_tp, "10 15m 500ms", &s), "block time"));
    ck_assert_ptr_nonnull(pe_access_strikes_parse(pe_tp, "10 2d 1m", &s));
    /* the product default sits above the account lockout (5 failures) */
    ck_assert_uint_eq(pe_access_strikes_default.rule.max_strikes, 10);
}
END_TEST

START_TEST(exempt_words)
{
    int m = -1;

    ck_assert_ptr_null(pe_access_exempt_parse(pe_tp, "health admin", &m));
    ck_assert_int_eq(m, PE_ACCESS_EXEMPT_HEALTH | (int)PE_G_ADMIN);
    ck_assert_ptr_null(pe_access_exempt_parse(pe_tp, "monitoring support whitelisted", &m));
    ck_assert_int_eq(m, (int)(PE_G_MONITORING | PE_G_SUPPORT) | PE_ACCESS_EXEMPT_WHITELISTED);
    ck_assert_ptr_null(pe_access_exempt_parse(pe_tp, "admin-panel", &m));
    ck_assert_int_eq(m, (int)PE_G_ADMIN);
    ck_assert_ptr_null(pe_access_exempt_parse(pe_tp, "none", &m));
    ck_assert_int_eq(m, 0);
    m = 5;
    ck_assert_ptr_nonnull(pe_access_exempt_parse(pe_tp, "none health", &m));
    ck_assert_ptr_nonnull(pe_access_exempt_parse(pe_tp, "all", &m));
    ck_assert_ptr_nonnull(pe_access_exempt_parse(pe_tp, "", &m));
    ck_assert_ptr_nonnull(strstr(pe_access_exempt_parse(pe_tp, "health bogus", &m), "'bogus'"));
    ck_assert_int_eq(m, 5);
}
END_TEST

START_TEST(cluster_windows)
{
    pe_rl_rule_t r = {PE_RL_FIXED_WINDOW, 60, 0, SEC(60)};
    pe_rl_rule_t tb = {PE_RL_TOKEN_BUCKET, 100, 20, SEC(60)};
    apr_time_t now = SEC(1800000030) + 250000, ws = pe_access_window_start(now, r.window);
    pe_rl_result_t res;

    ck_assert_int_eq(ws, SEC(1800000000));
    ck_assert_int_eq(pe_access_window_start(SEC(1800000000), SEC(60)), SEC(1800000000));
    ck_assert_str_eq(pe_access_cluster_key(pe_tp, "rl:ip:192.0.2.1", ws), "pe:rl:ip:192.0.2.1:1800000000");
    ck_assert_str_eq(pe_access_cluster_key(pe_tp, "rl:ip:2001:db8::1", ws), "pe:rl:ip:2001:db8::1:1800000000");
    ck_assert_ptr_null(pe_access_cluster_key(pe_tp, "rl:ip:bad key", ws));
    ck_assert_uint_eq(pe_access_cluster_ttl(SEC(60)), 61);
    ck_assert_uint_eq(pe_access_cluster_ttl(SEC(60) + 1), 62);
    ck_assert_uint_eq(pe_access_cluster_allowance(&r), 60);
    ck_assert_uint_eq(pe_access_cluster_allowance(&tb), 120);

    pe_access_cluster_result(1, &r, ws, now, &res);
    ck_assert_int_eq(res.allowed, 1);
    ck_assert_uint_eq(res.remaining, 59);
    ck_assert_uint_eq(res.limit, 60);
    ck_assert_int_eq(res.reset, SEC(1800000060));
    ck_assert_uint_eq(res.retry_after, 0);
    pe_access_cluster_result(60, &r, ws, now, &res);
    ck_assert_int_eq(res.allowed, 1);
    ck_assert_uint_eq(res.remaining, 0);
    pe_access_cluster_result(61, &r, ws, now, &res);
    ck_assert_int_eq(res.allowed, 0);
    ck_assert_uint_eq(res.remaining, 0);
    ck_assert_uint_eq(res.retry_after, 30); /* 29.75 s to the window's end, rounded up */
}
END_TEST

START_TEST(result_merge)
{
    pe_rl_result_t a = {1, 100, 50, SEC(100), 0}, b = {1, 60, 10, SEC(90), 0};
    pe_rl_result_t d1 = {0, 60, 0, SEC(120), 20}, d2 = {0, 100, 0, SEC(200), 100};

    pe_access_result_merge(&a, &b);
    ck_assert_int_eq(a.allowed, 1);
    ck_assert_uint_eq(a.remaining, 10);
    ck_assert_uint_eq(a.limit, 60);
    ck_assert_int_eq(a.reset, SEC(100));
    pe_access_result_merge(&a, &d1);
    ck_assert_int_eq(a.allowed, 0);
    ck_assert_uint_eq(a.retry_after, 20);
    pe_access_result_merge(&a, &b); /* an allowing decision does not undo a refusal */
    ck_assert_int_eq(a.allowed, 0);
    pe_access_result_merge(&a, &d2); /* of two refusals, the later end */
    ck_assert_uint_eq(a.retry_after, 100);
    pe_access_result_merge(&a, NULL);
    ck_assert_uint_eq(a.retry_after, 100);
}
END_TEST

START_TEST(lists_with_expiry)
{
    pe_access_list_t *l = pe_access_list_make(pe_tp);
    pe_ipnet_addr_t a, b, c, mapped, v6;
    const pe_access_entry_t *e;

    ck_assert_ptr_null(pe_access_list_add(l, "192.0.2.7", "abuse", 0));
    ck_assert_ptr_null(pe_access_list_add(l, "10.0.0.0/8", "", SEC(1000)));
    ck_assert_ptr_null(pe_access_list_add(l, "2001:db8::/32", "v6", 0));
    ck_assert_ptr_nonnull(pe_access_list_add(l, "10.0.0.1/8", "host bits", 0));
    ck_assert_ptr_nonnull(pe_access_list_add(l, "not-an-ip", "", 0));
    ck_assert_ptr_nonnull(pe_access_list_add(l, NULL, "", 0));
    ck_assert_int_eq(pe_access_list_count(l), 3);

    ck_assert_int_eq(pe_ipnet_addr_parse("192.0.2.7", &a), 0);
    ck_assert_int_eq(pe_ipnet_addr_parse("10.20.30.40", &b), 0);
    ck_assert_int_eq(pe_ipnet_addr_parse("192.0.2.8", &c), 0);
    ck_assert_int_eq(pe_ipnet_addr_parse("::ffff:10.1.1.1", &mapped), 0);
    ck_assert_int_eq(pe_ipnet_addr_parse("2001:db8:1::5", &v6), 0);

    ck_assert_ptr_nonnull(e = pe_access_list_find(l, &a, SEC(5000)));
    ck_assert_str_eq(e->note, "abuse");
    ck_assert_ptr_nonnull(e = pe_access_list_find(l, &b, SEC(999)));
    ck_assert_int_eq(e->expires, SEC(1000));
    ck_assert_ptr_null(pe_access_list_find(l, &b, SEC(1000))); /* expired at its expiry */
    ck_assert_ptr_nonnull(pe_access_list_find(l, &mapped, SEC(1)));
    ck_assert_ptr_null(pe_access_list_find(l, &c, SEC(1)));
    ck_assert_ptr_nonnull(e = pe_access_list_find(l, &v6, SEC(1)));
    ck_assert_str_eq(e->note, "v6");
    ck_assert_ptr_null(pe_access_list_find(NULL, &a, 0));
}
END_TEST

START_TEST(snapshot_cache)
{
    pe_access_cache_t *c;
    pe_access_snap_t *s, *s1, *s2, *t;
    int refresh = -1;

    ck_assert_int_eq(pe_access_cache_create(pe_tp, SEC(10), &c), APR_SUCCESS);
    /* nothing yet: every caller is asked to read */
    ck_assert_ptr_null(pe_access_cache_get(c, SEC(100), &refresh));
    ck_assert_int_eq(refresh, 1);
    ck_assert_ptr_null(pe_access_cache_get(c, SEC(100), &refresh));
    ck_assert_int_eq(refresh, 1);
    /* a failed first read leaves nothing; the store is asked again a second later, not at once */
    ck_assert_ptr_null(pe_access_cache_install(c, NULL, SEC(100)));
    ck_assert_ptr_null(pe_access_cache_get(c, SEC(100) + apr_time_from_msec(500), &refresh));
    ck_assert_int_eq(refresh, 0);
    ck_assert_ptr_null(pe_access_cache_get(c, SEC(101), &refresh));
    ck_assert_int_eq(refresh, 1);
    ck_assert_ptr_null(pe_access_cache_install(c, NULL, SEC(101)));
    ck_assert_ptr_null(pe_access_cache_get(c, SEC(101) + apr_time_from_msec(999), &refresh));
    ck_assert_int_eq(refresh, 0);

    ck_assert_ptr_nonnull(s1 = pe_access_snap_make());
    ck_assert_ptr_null(pe_access_list_add(s1->blocks, "192.0.2.1", "x", 0));
    s = pe_access_cache_install(c, s1, SEC(100));
    ck_assert_ptr_eq(s, s1);
    ck_assert_int_eq(s1->refs, 2); /* the cache's and the caller's */
    pe_access_cache_release(c, s);
    ck_assert_int_eq(s1->refs, 1);

    /* within the refresh period: no read */
    s = pe_access_cache_get(c, SEC(109), &refresh);
    ck_assert_ptr_eq(s, s1);
    ck_assert_int_eq(refresh, 0);
    pe_access_cache_release(c, s);
    /* after it: one caller reads, the others keep using the snapshot */
    s = pe_access_cache_get(c, SEC(110), &refresh);
    ck_assert_int_eq(refresh, 1);
    t = pe_access_cache_get(c, SEC(111), &refresh);
    ck_assert_int_eq(refresh, 0);
    ck_assert_ptr_eq(t, s1);
    ck_assert_int_eq(s1->refs, 3);
    /* the read fails: the old snapshot stays, for another period */
    pe_access_cache_release(c, pe_access_cache_install(c, NULL, SEC(112)));
    pe_access_cache_release(c, s);
    pe_access_cache_release(c, pe_access_cache_get(c, SEC(121), &refresh));
    ck_assert_int_eq(refresh, 0);
    /* a new snapshot replaces it; t still holds the old one until released */
    s = pe_access_cache_get(c, SEC(122), &refresh);
    ck_assert_int_eq(refresh, 1);
    ck_assert_ptr_nonnull(s2 = pe_access_snap_make());
    pe_access_cache_release(c, s);
    s = pe_access_cache_install(c, s2, SEC(122));
    ck_assert_ptr_eq(s, s2);
    ck_assert_int_eq(s1->refs, 1); /* t's */
    ck_assert_int_eq(pe_access_list_count(t->blocks), 1);
    pe_access_cache_release(c, t); /* the last reference: destroyed */
    pe_access_cache_release(c, s);
    ck_assert_int_eq(s2->refs, 1);
    pe_access_cache_release(c, NULL);
    pe_access_snap_discard(NULL);
    pe_access_snap_discard(pe_access_snap_make());
}
END_TEST

START_TEST(refresh_zero)
{
    pe_access_cache_t *c;
    pe_access_snap_t *s;
    int refresh = 0;

    ck_assert_int_eq(pe_access_cache_create(pe_tp, 0, &c), APR_SUCCESS);
    pe_access_cache_release(c, pe_access_cache_install(c, pe_access_snap_make(), SEC(1)));
    s = pe_access_cache_get(c, SEC(1), &refresh);
    ck_assert_int_eq(refresh, 1); /* every call reads (one at a time) */
    pe_access_cache_release(c, s);
    pe_access_cache_release(c, pe_access_cache_install(c, NULL, SEC(1)));
    s = pe_access_cache_get(c, SEC(1), &refresh);
    ck_assert_int_eq(refresh, 1);
    pe_access_cache_release(c, s);
    pe_access_cache_release(c, pe_access_cache_install(c, NULL, SEC(1)));
}
END_TEST

START_TEST(shared_flags)
{
    apr_global_mutex_t *m;
    pe_shm_t *shm;
    int old = -1, first = -1;

    ck_assert_int_eq(apr_global_mutex_create(&m, NULL, APR_LOCK_DEFAULT, pe_tp), APR_SUCCESS);
    ck_assert_int_eq(pe_shm_create(pe_tp, 64, PE_RL_VALUE_SIZE, m, &shm), APR_SUCCESS);
    ck_assert_int_eq(pe_access_flag_swap(shm, "st:x", 1, SEC(1), &old), APR_SUCCESS);
    ck_assert_int_eq(old, 0);
    ck_assert_int_eq(pe_access_flag_swap(shm, "st:x", 1, SEC(2), &old), APR_SUCCESS);
    ck_assert_int_eq(old, 1); /* a second process seeing the same change does not log it */
    ck_assert_int_eq(pe_access_flag_swap(shm, "st:x", 0, SEC(3), &old), APR_SUCCESS);
    ck_assert_int_eq(old, 1);

    ck_assert_int_eq(pe_access_once(shm, "ev:k", SEC(10), SEC(70), &first), APR_SUCCESS);
    ck_assert_int_eq(first, 1);
    ck_assert_int_eq(pe_access_once(shm, "ev:k", SEC(69), SEC(200), &first), APR_SUCCESS);
    ck_assert_int_eq(first, 0);
    ck_assert_int_eq(pe_access_once(shm, "ev:k", SEC(70), SEC(130), &first), APR_SUCCESS);
    ck_assert_int_eq(first, 1); /* the mark lasted until its window's end */
    ck_assert_int_eq(pe_access_once(shm, "ev:other", SEC(70), SEC(70), &first), APR_SUCCESS);
    ck_assert_int_eq(first, 1);
}
END_TEST

Suite *pe_suite_access(void)
{
    Suite *s = suite_create("access");
    TCase *tc = pe_tcase("core");

    tcase_add_test(tc, limit_specs);
    tcase_add_test(tc, strike_specs);
    tcase_add_test(tc, exempt_words);
    tcase_add_test(tc, cluster_windows);
    tcase_add_test(tc, result_merge);
    tcase_add_test(tc, lists_with_expiry);
    tcase_add_test(tc, snapshot_cache);
    tcase_add_test(tc, refresh_zero);
    tcase_add_test(tc, shared_flags);
    suite_add_tcase(s, tc);
    return s;
}
