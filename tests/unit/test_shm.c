/* test_shm.c: the shared slot table and the rate limiter on it, with a controlled clock and forked children. */
#include "pe_logno.h"
#include "pe_ratelimit.h"
#include "pe_shm.h"
#include "pe_test.h"

#include <apr_global_mutex.h>
#include <apr_strings.h>
#include <errno.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* A fixed, arbitrary clock origin (2023-11-14T22:13:20Z), so tests never read the real clock. */
#define T0 apr_time_from_sec(1700000000)
#define SEC(n) apr_time_from_sec(n)

static apr_global_mutex_t *mtx;
static const char *mtx_file;

/* Log capture: the core log sink records what the table logs. */
static char logged[4096];
static int nlogged;

/* Append one message to the capture buffer. */
static void capture_log(int level, apr_status_t rv, const char *msg)
{
    apr_size_t n = strlen(logged);

    nlogged++;
    apr_snprintf(logged + n, sizeof(logged) - n, "%s\n", msg);
}

/* Count occurrences of a log id in the capture buffer. */
static int logged_count(const char *id)
{
    const char *p = logged;
    int n = 0;

    while ((p = strstr(p, id)) != NULL) {
        n++;
        p += strlen(id);
    }
    return n;
}

/* Create a mutex of the given mechanism and a table guarded by it. */
static pe_shm_t *make_table_mech(apr_uint32_t nslots, apr_size_t vsize, apr_lockmech_e mech)
{
    pe_shm_t *shm = NULL;

    mtx_file = NULL;
    if (mech == APR_LOCK_FCNTL || mech == APR_LOCK_FLOCK)
        mtx_file = apr_psprintf(pe_tp, "/tmp/pe_shm_test.%ld.lock", (long)getpid());
    ck_assert_int_eq(apr_global_mutex_create(&mtx, mtx_file, mech, pe_tp), APR_SUCCESS);
    ck_assert_int_eq(pe_shm_create(pe_tp, nslots, vsize, mtx, &shm), APR_SUCCESS);
    ck_assert_ptr_nonnull(shm);
    return shm;
}

/* A table with the default lock mechanism. */
static pe_shm_t *make_table(apr_uint32_t nslots, apr_size_t vsize)
{
    return make_table_mech(nslots, vsize, APR_LOCK_DEFAULT);
}

/* Baton of add_cb. */
typedef struct add_baton_t {
    apr_int64_t add;
    apr_int64_t seen;
    int created;
    int calls;
    int remove;
    apr_time_t set_expires; /* when non-zero, written to *expires */
} add_baton_t;

/* Update callback: add b->add to the first word; report what it saw; optionally move expiry or remove. */
static int add_cb(void *baton, void *value, apr_size_t value_size, int created, apr_time_t now, apr_time_t *expires)
{
    add_baton_t *b = baton;
    apr_int64_t v;

    memcpy(&v, value, sizeof(v));
    v += b->add;
    memcpy(value, &v, sizeof(v));
    b->seen = v;
    b->created = created;
    b->calls++;
    if (b->set_expires)
        *expires = b->set_expires;
    return b->remove ? PE_SHM_REMOVE : PE_SHM_KEEP;
}

/* Checks that every byte of a value area is zero on creation. */
static int zero_cb(void *baton, void *value, apr_size_t value_size, int created, apr_time_t now, apr_time_t *expires)
{
    const unsigned char *v = value;
    apr_size_t i;

    *(int *)baton = 1;
    for (i = 0; i < value_size; i++)
        if (v[i])
            *(int *)baton = 0;
    memset(value, 0xa5, value_size); /* dirty it for the next creation in the same slot */
    return PE_SHM_KEEP;
}

/* Store v under a key of klen bytes (ttl given), check it was created. */
static void put_k(pe_shm_t *shm, const void *key, apr_ssize_t klen, apr_time_t now, apr_interval_time_t ttl,
                  apr_int64_t v)
{
    add_baton_t b = {v, 0, 0, 0, 0, 0};

    ck_assert_int_eq(pe_shm_update(shm, key, klen, now, ttl, 0, add_cb, &b), APR_SUCCESS);
    ck_assert_int_eq(b.created, 1);
}

/* Store v under a string key. */
static void put(pe_shm_t *shm, const char *key, apr_time_t now, apr_interval_time_t ttl, apr_int64_t v)
{
    put_k(shm, key, -1, now, ttl, v);
}

/* Start capturing core log messages. */
static void capture_start(void)
{
    logged[0] = '\0';
    nlogged = 0;
    pe_log_set(capture_log);
}

/* Read key's first word, or -1 when absent. */
static apr_int64_t peek(pe_shm_t *shm, const void *key, apr_ssize_t klen, apr_time_t now)
{
    apr_int64_t v = 0;
    apr_status_t rv = pe_shm_get(shm, key, klen, now, &v, sizeof(v), NULL);

    if (rv == APR_NOTFOUND)
        return -1;
    ck_assert_int_eq(rv, APR_SUCCESS);
    return v;
}

/* ------------------------------------------------------------------------------------------------- */

START_TEST(shm_arguments)
{
    pe_shm_t *shm = NULL;
    add_baton_t b = {1, 0, 0, 0, 0, 0};

    ck_assert_int_eq(apr_global_mutex_create(&mtx, NULL, APR_LOCK_DEFAULT, pe_tp), APR_SUCCESS);
    ck_assert_uint_eq(pe_shm_size(0, 8), 0);
    ck_assert_uint_eq(pe_shm_size(8, 0), 0);
    ck_assert_uint_eq(pe_shm_size(PE_SHM_SLOTS_MAX + 1, 8), 0);
    ck_assert_uint_eq(pe_shm_size(8, PE_SHM_VALUE_MAX + 1), 0);
    ck_assert_uint_gt(pe_shm_size(8, 8), 8 * 8);
    ck_assert_uint_gt(pe_shm_size(1000, 32), pe_shm_size(999, 32));
    ck_assert_int_eq(pe_shm_create(pe_tp, 0, 8, mtx, &shm), APR_EINVAL);
    ck_assert_ptr_null(shm);
    ck_assert_int_eq(pe_shm_create(pe_tp, 8, 0, mtx, &shm), APR_EINVAL);
    ck_assert_int_eq(pe_shm_create(pe_tp, 8, 8, NULL, &shm), APR_EINVAL);
    ck_assert_int_eq(pe_shm_create(pe_tp, 8, 5, mtx, &shm), APR_SUCCESS);
    ck_assert_uint_eq(pe_shm_value_size(shm), 8); /* rounded up to 8 */
    ck_assert_int_eq(pe_shm_update(shm, NULL, 0, T0, 0, 0, add_cb, &b), APR_EINVAL);
    ck_assert_int_eq(pe_shm_update(shm, "k", -1, T0, 0, 0, NULL, &b), APR_EINVAL);
    ck_assert_int_eq(pe_shm_get(shm, "k", -1, T0, NULL, 8, NULL), APR_EINVAL);
    ck_assert_int_eq(pe_shm_stats(shm, NULL), APR_EINVAL);
    ck_assert_int_eq(b.calls, 0);
}
END_TEST

START_TEST(shm_basics)
{
    pe_shm_t *shm = make_table(64, 24);
    add_baton_t b = {5, 0, 0, 0, 0, 0};
    pe_shm_stats_t st;
    apr_time_t exp = 1;
    int zeroed = 0;
    char big[64];

    ck_assert_int_eq(pe_shm_stats(shm, &st), APR_SUCCESS);
    ck_assert_uint_eq(st.capacity, 64);
    ck_assert_uint_eq(st.used, 0);
    ck_assert_uint_eq(st.value_size, 24);
    ck_assert_uint_eq(st.bytes, pe_shm_size(64, 24));

    /* absent: created zeroed; present: the callback sees the previous value */
    ck_assert_int_eq(pe_shm_update(shm, "zero", -1, T0, 0, 0, zero_cb, &zeroed), APR_SUCCESS);
    ck_assert_int_eq(zeroed, 1);
    /* the freed slot is reused first (LIFO): its old bytes must not show through */
    ck_assert_int_eq(pe_shm_delete(shm, "zero", -1, T0), APR_SUCCESS);
    zeroed = 0;
    ck_assert_int_eq(pe_shm_update(shm, "zero", -1, T0, 0, 0, zero_cb, &zeroed), APR_SUCCESS);
    ck_assert_int_eq(zeroed, 1);
    ck_assert_int_eq(pe_shm_update(shm, "alpha", -1, T0, 0, 0, add_cb, &b), APR_SUCCESS);
    ck_assert_int_eq(b.created, 1);
    ck_assert_int_eq(b.seen, 5);
    ck_assert_int_eq(pe_shm_update(shm, "alpha", -1, T0, 0, 0, add_cb, &b), APR_SUCCESS);
    ck_assert_int_eq(b.created, 0);
    ck_assert_int_eq(b.seen, 10);
    ck_assert_int_eq(peek(shm, "alpha", -1, T0), 10);
    ck_assert_int_eq(pe_shm_get(shm, "alpha", -1, T0, NULL, 0, &exp), APR_SUCCESS);
    ck_assert_int_eq(exp, 0); /* ttl 0: never expires */
    /* a short buffer gets a prefix; a long one gets the value area only */
    memset(big, 0x77, sizeof(big));
    ck_assert_int_eq(pe_shm_get(shm, "alpha", -1, T0, big, sizeof(big), NULL), APR_SUCCESS);
    ck_assert_int_eq(big[24], 0x77);
    ck_assert_int_eq(peek(shm, "alphA", -1, T0), -1);
    ck_assert_int_eq(peek(shm, "alph", -1, T0), -1);

    /* NOCREATE: nothing created, callback not run */
    b.calls = 0;
    ck_assert_int_eq(pe_shm_update(shm, "beta", -1, T0, 0, PE_SHM_NOCREATE, add_cb, &b), APR_NOTFOUND);
    ck_assert_int_eq(b.calls, 0);
    ck_assert_int_eq(peek(shm, "beta", -1, T0), -1);
    ck_assert_int_eq(pe_shm_update(shm, "alpha", -1, T0, 0, PE_SHM_NOCREATE, add_cb, &b), APR_SUCCESS);
    ck_assert_int_eq(b.seen, 15);

    /* callback removal */
    b.remove = 1;
    ck_assert_int_eq(pe_shm_update(shm, "alpha", -1, T0, 0, 0, add_cb, &b), APR_SUCCESS);
    ck_assert_int_eq(peek(shm, "alpha", -1, T0), -1);
    b.remove = 0;

    /* delete */
    put(shm, "gamma", T0, 0, 3);
    ck_assert_int_eq(pe_shm_stats(shm, &st), APR_SUCCESS);
    ck_assert_uint_eq(st.used, 2); /* zero, gamma */
    ck_assert_int_eq(pe_shm_delete(shm, "gamma", -1, T0), APR_SUCCESS);
    ck_assert_int_eq(pe_shm_delete(shm, "gamma", -1, T0), APR_NOTFOUND);
    ck_assert_int_eq(peek(shm, "gamma", -1, T0), -1);
    ck_assert_int_eq(pe_shm_stats(shm, &st), APR_SUCCESS);
    ck_assert_uint_eq(st.used, 1);
    ck_assert_uint_eq(st.evictions, 0);

    /* explicit lengths: binary keys with NUL bytes, and the empty key */
    put_k(shm, "a\0b", 3, T0, 0, 1);
    ck_assert_int_eq(peek(shm, "a\0b", 3, T0), 1);
    ck_assert_int_eq(peek(shm, "a\0c", 3, T0), -1);
    ck_assert_int_eq(peek(shm, "a", -1, T0), -1); /* "a" is a prefix of the stored key */
    put(shm, "", T0, 0, 9);
    ck_assert_int_eq(peek(shm, "", 0, T0), 9);
}
END_TEST

START_TEST(shm_expiry)
{
    pe_shm_t *shm = make_table(16, 16);
    add_baton_t b = {1, 0, 0, 0, 0, 0};
    pe_shm_stats_t st;
    apr_time_t exp = 0;
    apr_int64_t v = 0;

    /* ttl 10 s: live up to the last microsecond, gone at the expiry instant */
    ck_assert_int_eq(pe_shm_update(shm, "t", -1, T0, SEC(10), 0, add_cb, &b), APR_SUCCESS);
    ck_assert_int_eq(pe_shm_get(shm, "t", -1, T0, NULL, 0, &exp), APR_SUCCESS);
    ck_assert_int_eq(exp, T0 + SEC(10));
    ck_assert_int_eq(peek(shm, "t", -1, T0 + SEC(10) - 1), 1);
    ck_assert_int_eq(peek(shm, "t", -1, T0 + SEC(10)), -1);
    ck_assert_int_eq(pe_shm_stats(shm, &st), APR_SUCCESS);
    ck_assert_uint_eq(st.expired, 1); /* reclaimed by the lookup */
    ck_assert_uint_eq(st.used, 0);

    /* an update does not extend the expiry; an expired slot comes back zeroed */
    ck_assert_int_eq(pe_shm_update(shm, "t", -1, T0, SEC(10), 0, add_cb, &b), APR_SUCCESS);
    ck_assert_int_eq(pe_shm_update(shm, "t", -1, T0 + SEC(9), SEC(10), 0, add_cb, &b), APR_SUCCESS);
    ck_assert_int_eq(b.seen, 2);
    ck_assert_int_eq(b.created, 0);
    ck_assert_int_eq(pe_shm_update(shm, "t", -1, T0 + SEC(10), SEC(10), 0, add_cb, &b), APR_SUCCESS);
    ck_assert_int_eq(b.created, 1);
    ck_assert_int_eq(b.seen, 1);

    /* the callback may move the expiry */
    b.set_expires = T0 + SEC(100);
    ck_assert_int_eq(pe_shm_update(shm, "t", -1, T0 + SEC(11), SEC(10), 0, add_cb, &b), APR_SUCCESS);
    b.set_expires = 0;
    ck_assert_int_eq(peek(shm, "t", -1, T0 + SEC(99)), 2);
    ck_assert_int_eq(peek(shm, "t", -1, T0 + SEC(100)), -1);

    /* ttl <= 0: never expires */
    ck_assert_int_eq(pe_shm_update(shm, "forever", -1, T0, 0, 0, add_cb, &b), APR_SUCCESS);
    ck_assert_int_eq(peek(shm, "forever", -1, T0 + SEC(86400 * 3650)), 1);
    ck_assert_int_eq(pe_shm_delete(shm, "forever", -1, T0), APR_SUCCESS);

    /* counters: fixed window, saturation, negative deltas, absent reads as 0 */
    ck_assert_int_eq(pe_shm_counter_get(shm, "c", -1, T0, &v), APR_SUCCESS);
    ck_assert_int_eq(v, 0);
    ck_assert_int_eq(pe_shm_incr(shm, "c", -1, T0, SEC(60), 1, &v), APR_SUCCESS);
    ck_assert_int_eq(v, 1);
    ck_assert_int_eq(pe_shm_incr(shm, "c", -1, T0 + SEC(30), SEC(60), 41, &v), APR_SUCCESS);
    ck_assert_int_eq(v, 42);
    ck_assert_int_eq(pe_shm_incr(shm, "c", -1, T0 + SEC(59), SEC(60), -2, &v), APR_SUCCESS);
    ck_assert_int_eq(v, 40);
    ck_assert_int_eq(pe_shm_counter_get(shm, "c", -1, T0 + SEC(60) - 1, &v), APR_SUCCESS);
    ck_assert_int_eq(v, 40);
    ck_assert_int_eq(pe_shm_incr(shm, "c", -1, T0 + SEC(60), SEC(60), 1, &v), APR_SUCCESS);
    ck_assert_int_eq(v, 1); /* the window expired: a new counter */
    ck_assert_int_eq(pe_shm_incr(shm, "big", -1, T0, 0, APR_INT64_MAX - 1, &v), APR_SUCCESS);
    ck_assert_int_eq(pe_shm_incr(shm, "big", -1, T0, 0, 5, &v), APR_SUCCESS);
    ck_assert(v == APR_INT64_MAX);
    ck_assert_int_eq(pe_shm_incr(shm, "small", -1, T0, 0, APR_INT64_MIN + 1, &v), APR_SUCCESS);
    ck_assert_int_eq(pe_shm_incr(shm, "small", -1, T0, 0, -5, &v), APR_SUCCESS);
    ck_assert(v == APR_INT64_MIN);
}
END_TEST

START_TEST(shm_eviction_lru)
{
    pe_shm_t *shm = make_table(8, 8);
    pe_shm_stats_t st;
    char key[32];
    int i;

    capture_start();
    for (i = 0; i < 8; i++) {
        apr_snprintf(key, sizeof(key), "k%d", i);
        put(shm, key, T0 + i, 0, i);
    }
    ck_assert_int_eq(pe_shm_stats(shm, &st), APR_SUCCESS);
    ck_assert_uint_eq(st.used, 8);
    ck_assert_uint_eq(st.evictions, 0);
    ck_assert_int_eq(nlogged, 0);

    /* k0 is read, so k1 becomes the least recently used and goes first */
    ck_assert_int_eq(peek(shm, "k0", -1, T0 + 10), 0);
    put(shm, "n1", T0 + 11, 0, 100);
    ck_assert_int_eq(peek(shm, "k1", -1, T0 + 12), -1);
    ck_assert_int_eq(peek(shm, "k0", -1, T0 + 12), 0);
    ck_assert_int_eq(peek(shm, "n1", -1, T0 + 12), 100);
    ck_assert_int_eq(pe_shm_stats(shm, &st), APR_SUCCESS);
    ck_assert_uint_eq(st.used, 8);
    ck_assert_uint_eq(st.evictions, 1);
    ck_assert_int_eq(logged_count("PE50004"), 1);

    /* next victims, in LRU order: k2, k3 (k0 and n1 were used since) */
    put(shm, "n2", T0 + 13, 0, 0);
    put(shm, "n3", T0 + 14, 0, 0);
    ck_assert_int_eq(peek(shm, "k2", -1, T0 + 15), -1);
    ck_assert_int_eq(peek(shm, "k3", -1, T0 + 15), -1);
    ck_assert_int_eq(peek(shm, "k4", -1, T0 + 15), 4);
    ck_assert_int_eq(pe_shm_stats(shm, &st), APR_SUCCESS);
    ck_assert_uint_eq(st.evictions, 3);
    ck_assert_uint_eq(st.used, 8);
    /* the message is rate limited per process: once a minute */
    ck_assert_int_eq(logged_count("PE50004"), 1);
    put(shm, "n4", T0 + SEC(61), 0, 0);
    ck_assert_int_eq(logged_count("PE50004"), 2);
    pe_log_set(NULL);
}
END_TEST

START_TEST(shm_eviction_message_names_the_table)
{
    pe_shm_t *shm = make_table(2, 8), *named = make_table(2, 8);

    capture_start();
    put(shm, "a", T0, 0, 1);
    put(shm, "b", T0, 0, 2);
    put(shm, "c", T0, 0, 3);
    ck_assert_ptr_nonnull(strstr(logged, "shm: shared table full (2 slots)"));
    ck_assert_ptr_nonnull(strstr(logged, "raise the slot count"));
    ck_assert_ptr_null(strstr(logged, "under-count"));
    /* a cache holds no limits: its message says what a full cache costs */
    capture_start();
    pe_shm_set_name(named, "response cache", "fewer answers are served from it; raise PECacheShmEntries");
    put(named, "a", T0, 0, 1);
    put(named, "b", T0, 0, 2);
    put(named, "c", T0, 0, 3);
    ck_assert_int_eq(logged_count("PE50004"), 1);
    ck_assert_ptr_nonnull(strstr(logged, "shm: response cache full (2 slots)"));
    ck_assert_ptr_nonnull(strstr(logged, "raise PECacheShmEntries"));
    ck_assert_ptr_null(strstr(logged, "under-count"));
    pe_shm_set_name(NULL, "x", "y");
    pe_log_set(NULL);
}
END_TEST

START_TEST(shm_eviction_expired_first)
{
    pe_shm_t *shm = make_table(8, 8);
    pe_shm_stats_t st;
    char key[32];
    int i;

    /* k3 expires at +5 s but is the most recently used: it still goes before the LRU k0 */
    for (i = 0; i < 8; i++) {
        apr_snprintf(key, sizeof(key), "k%d", i);
        put(shm, key, T0 + i, i == 3 ? SEC(5) : 0, i);
    }
    ck_assert_int_eq(pe_shm_update(shm, "k3", -1, T0 + 100, 0, PE_SHM_NOCREATE, add_cb,
                                   &(add_baton_t){0, 0, 0, 0, 0, 0}),
                     APR_SUCCESS);
    put(shm, "new", T0 + SEC(6), 0, 42);
    ck_assert_int_eq(peek(shm, "k0", -1, T0 + SEC(6)), 0);
    ck_assert_int_eq(peek(shm, "k3", -1, T0 + SEC(6)), -1);
    ck_assert_int_eq(pe_shm_stats(shm, &st), APR_SUCCESS);
    ck_assert_uint_eq(st.evictions, 0);
    ck_assert_uint_eq(st.expired, 1);
}
END_TEST

START_TEST(shm_eviction_bounded_scan)
{
    pe_shm_t *shm = make_table(256, 8);
    pe_shm_stats_t st;
    char key[32];
    int i;

    /* a full table of expired slots: every new key reuses one, nothing live is evicted */
    for (i = 0; i < 256; i++) {
        apr_snprintf(key, sizeof(key), "old%d", i);
        put(shm, key, T0, SEC(10), i);
    }
    for (i = 0; i < 256; i++) {
        apr_snprintf(key, sizeof(key), "new%d", i);
        put(shm, key, T0 + SEC(20), 0, i);
    }
    ck_assert_int_eq(pe_shm_stats(shm, &st), APR_SUCCESS);
    ck_assert_uint_eq(st.evictions, 0);
    ck_assert_uint_eq(st.expired, 256);
    ck_assert_uint_eq(st.used, 256);
    for (i = 0; i < 256; i++) {
        apr_snprintf(key, sizeof(key), "new%d", i);
        ck_assert_int_eq(peek(shm, key, -1, T0 + SEC(20)), i);
    }
}
END_TEST

START_TEST(shm_eviction_sweep)
{
    pe_shm_t *shm = make_table(64, 8);
    pe_shm_stats_t st;
    char key[32];
    int i;

    capture_start();

    /* slot 63 holds the only expiring key, and it is the most recently used: outside the LRU scan.
     * The sweep looks at PE_SHM_SCAN slots per allocation (0-15, 16-31, 32-47, 48-63), so three
     * inserts evict live LRU slots and the fourth finds the expired one (or a chain walk of a new
     * key sharing its bucket reclaims it earlier: the totals are the same either way). */
    for (i = 0; i < 64; i++) {
        apr_snprintf(key, sizeof(key), "k%d", i);
        put(shm, key, T0 + i, i == 63 ? SEC(1) : 0, i);
    }
    for (i = 0; i < 4; i++) {
        apr_snprintf(key, sizeof(key), "n%d", i);
        put(shm, key, T0 + SEC(2) + i, 0, i);
    }
    ck_assert_int_eq(pe_shm_stats(shm, &st), APR_SUCCESS);
    ck_assert_uint_eq(st.evictions, 3);
    ck_assert_uint_eq(st.expired, 1);
    ck_assert_int_eq(peek(shm, "k0", -1, T0 + SEC(3)), -1);
    ck_assert_int_eq(peek(shm, "k2", -1, T0 + SEC(3)), -1);
    ck_assert_int_eq(peek(shm, "k3", -1, T0 + SEC(3)), 3);
    for (i = 0; i < 4; i++) {
        apr_snprintf(key, sizeof(key), "n%d", i);
        ck_assert_int_eq(peek(shm, key, -1, T0 + SEC(3)), i);
    }
    ck_assert_int_eq(logged_count("PE50004"), 1);
    pe_log_set(NULL);
}
END_TEST

START_TEST(shm_eviction_tail_scan)
{
    pe_shm_t *shm = make_table(64, 8);
    pe_shm_stats_t st;
    char key[32];
    int i;

    /* slot 40 expires and sits 4th from the LRU end, outside the first sweep (slots 0-15): the tail
     * scan must find it, so no live slot is evicted, not even the LRU k41 */
    for (i = 0; i < 64; i++) {
        apr_snprintf(key, sizeof(key), "k%d", i);
        put(shm, key, T0 + i, i == 40 ? SEC(1) : 0, i);
    }
    for (i = 0; i < 64; i++) {
        if (i == 41 || i == 42 || i == 43 || i == 40)
            continue;
        apr_snprintf(key, sizeof(key), "k%d", i);
        ck_assert_int_eq(peek(shm, key, -1, T0 + 100 + i), i);
    }
    /* LRU order from the tail: k41, k42, k43, k40, ... */
    ck_assert_int_eq(peek(shm, "k41", -1, T0 + 200), 41);
    ck_assert_int_eq(peek(shm, "k42", -1, T0 + 201), 42);
    ck_assert_int_eq(peek(shm, "k43", -1, T0 + 202), 43);
    put(shm, "new", T0 + SEC(2), 0, 99);
    ck_assert_int_eq(pe_shm_stats(shm, &st), APR_SUCCESS);
    ck_assert_uint_eq(st.evictions, 0);
    ck_assert_uint_eq(st.expired, 1);
    ck_assert_int_eq(peek(shm, "k41", -1, T0 + SEC(2)), 41);
    ck_assert_int_eq(peek(shm, "new", -1, T0 + SEC(2)), 99);
}
END_TEST

START_TEST(shm_hash_spread)
{
    pe_shm_t *shm = make_table(1024, 8);
    pe_shm_stats_t st;
    char key[32];
    int i;

    /* 1024 similar keys in 1024 buckets: a keyed hash keeps chains short (P(max >= 12) < 1e-6) */
    for (i = 0; i < 1024; i++) {
        apr_snprintf(key, sizeof(key), "ip:10.0.%d.%d", i / 256, i % 256);
        put(shm, key, T0, 0, i);
    }
    for (i = 0; i < 1024; i++) {
        apr_snprintf(key, sizeof(key), "ip:10.0.%d.%d", i / 256, i % 256);
        ck_assert_int_eq(peek(shm, key, -1, T0), i);
    }
    ck_assert_int_eq(pe_shm_stats(shm, &st), APR_SUCCESS);
    ck_assert_uint_ge(st.max_chain, 2);
    ck_assert_uint_lt(st.max_chain, 12);
}
END_TEST

START_TEST(shm_key_collisions)
{
    pe_shm_t *shm = make_table(64, 8);
    unsigned char digest[32];
    unsigned int dlen = 0;
    char key[300], key2[300];
    pe_shm_stats_t st;
    int i;

    /* 64 keys in 64 buckets: shared chains are certain (no-collision odds ~ 64!/64^64) */
    for (i = 0; i < 64; i++) {
        apr_snprintf(key, sizeof(key), "ip:10.0.0.%d", i);
        put(shm, key, T0, 0, i);
    }
    for (i = 0; i < 64; i++) {
        apr_snprintf(key, sizeof(key), "ip:10.0.0.%d", i);
        ck_assert_int_eq(peek(shm, key, -1, T0), i);
    }
    ck_assert_int_eq(pe_shm_stats(shm, &st), APR_SUCCESS);
    ck_assert_uint_eq(st.evictions, 0);
    /* delete from the middle of chains, the rest stays reachable */
    for (i = 0; i < 64; i += 2) {
        apr_snprintf(key, sizeof(key), "ip:10.0.0.%d", i);
        ck_assert_int_eq(pe_shm_delete(shm, key, -1, T0), APR_SUCCESS);
    }
    for (i = 0; i < 64; i++) {
        apr_snprintf(key, sizeof(key), "ip:10.0.0.%d", i);
        ck_assert_int_eq(peek(shm, key, -1, T0), i % 2 ? i : -1);
    }
    for (i = 1; i < 64; i += 2) {
        apr_snprintf(key, sizeof(key), "ip:10.0.0.%d", i);
        ck_assert_int_eq(pe_shm_delete(shm, key, -1, T0), APR_SUCCESS);
    }
    ck_assert_int_eq(pe_shm_stats(shm, &st), APR_SUCCESS);
    ck_assert_uint_eq(st.used, 0);

    /* long keys (stored as digests) that share long prefixes stay distinct */
    memset(key, 'x', 299);
    key[299] = '\0';
    memcpy(key2, key, sizeof(key));
    key2[298] = 'y';
    put(shm, key, T0, 0, 1);
    put(shm, key2, T0, 0, 2);
    ck_assert_int_eq(peek(shm, key, -1, T0), 1);
    ck_assert_int_eq(peek(shm, key2, -1, T0), 2);
    /* at the verbatim/digest boundary: 64 bytes verbatim, 65 bytes with the same first 64 digested */
    put_k(shm, key, PE_SHM_KEY_MAX, T0, 0, 3);
    put_k(shm, key, PE_SHM_KEY_MAX + 1, T0, 0, 4);
    ck_assert_int_eq(peek(shm, key, PE_SHM_KEY_MAX, T0), 3);
    ck_assert_int_eq(peek(shm, key, PE_SHM_KEY_MAX + 1, T0), 4);
    ck_assert_int_eq(peek(shm, key, PE_SHM_KEY_MAX - 1, T0), -1);

    /* a 32-byte key equal to the digest of a long key is a different key */
    ck_assert_int_eq(EVP_Digest(key, strlen(key), digest, &dlen, EVP_sha256(), NULL), 1);
    ck_assert_uint_eq(dlen, 32);
    ck_assert_int_eq(peek(shm, digest, 32, T0), -1);
    put_k(shm, digest, 32, T0, 0, 5);
    ck_assert_int_eq(peek(shm, digest, 32, T0), 5);
    ck_assert_int_eq(peek(shm, key, -1, T0), 1);
}
END_TEST

/* ------------------------------------------------------------------------------------------------- */
/* Multi-process                                                                                     */

#define NCHILD 4
#define TRIES 200
#define INCRS 10000

static const apr_lockmech_e mechs[] = {APR_LOCK_DEFAULT, APR_LOCK_PROC_PTHREAD, APR_LOCK_SYSVSEM,
                                       APR_LOCK_POSIXSEM, APR_LOCK_FCNTL,       APR_LOCK_FLOCK};
static const char *const mech_names[] = {"default", "pthread", "sysvsem", "posixsem", "fcntl", "flock"};

/* Child body: wait for the start signal, race for the limits, add what it got to shared sums. */
static void child_race(pe_shm_t *shm, int start_fd)
{
    const pe_rl_rule_t win = {PE_RL_FIXED_WINDOW, 60, 0, SEC(60)};
    const pe_rl_rule_t bucket = {PE_RL_TOKEN_BUCKET, 60, 59, SEC(60)};
    const pe_rl_rule_t slide = {PE_RL_SLIDING_WINDOW, 60, 0, SEC(60)};
    const pe_rl_strike_rule_t sr = {7, SEC(60), SEC(900)};
    pe_rl_result_t res;
    pe_rl_block_t blk;
    int i, n_win = 0, n_bucket = 0, n_slide = 0, n_unblocked = 0;
    char c;

    if (apr_global_mutex_child_init(&mtx, mtx_file, pe_tp) != APR_SUCCESS)
        _exit(3);
    pe_shm_mutex_set(shm, mtx);
    while (read(start_fd, &c, 1) < 0 && errno == EINTR)
        ;
    for (i = 0; i < TRIES; i++) {
        /* every child sees the same instant: one window, no refill */
        if (pe_rl_take(shm, "rl:win", T0, &win, 1, &res) != APR_SUCCESS)
            _exit(4);
        n_win += res.allowed;
        if (pe_rl_take(shm, "rl:bucket", T0, &bucket, 1, &res) != APR_SUCCESS)
            _exit(4);
        n_bucket += res.allowed;
        if (pe_rl_take(shm, "rl:slide", T0, &slide, 1, &res) != APR_SUCCESS)
            _exit(4);
        n_slide += res.allowed;
        if (i < 10) {
            if (pe_rl_strike(shm, "fw:strike", T0, &sr, &blk) != APR_SUCCESS)
                _exit(4);
            n_unblocked += !blk.blocked;
        }
    }
    for (i = 0; i < INCRS; i++)
        if (pe_shm_incr(shm, "ctr", -1, T0, 0, 1, NULL) != APR_SUCCESS)
            _exit(5);
    if (pe_shm_incr(shm, "sum:win", -1, T0, 0, n_win, NULL) != APR_SUCCESS ||
        pe_shm_incr(shm, "sum:bucket", -1, T0, 0, n_bucket, NULL) != APR_SUCCESS ||
        pe_shm_incr(shm, "sum:slide", -1, T0, 0, n_slide, NULL) != APR_SUCCESS ||
        pe_shm_incr(shm, "sum:unblocked", -1, T0, 0, n_unblocked, NULL) != APR_SUCCESS)
        _exit(6);
    _exit(0);
}

START_TEST(shm_multiprocess)
{
    pe_shm_t *shm = make_table_mech(256, PE_RL_VALUE_SIZE, mechs[_i]);
    pid_t pids[NCHILD];
    int fds[2], i, status;
    apr_int64_t v;
    pe_rl_block_t blk;

    ck_assert_msg(pipe(fds) == 0, "pipe");
    for (i = 0; i < NCHILD; i++) {
        pids[i] = fork();
        ck_assert_int_ge(pids[i], 0);
        if (pids[i] == 0) {
            close(fds[1]);
            child_race(shm, fds[0]);
        }
    }
    close(fds[0]);
    close(fds[1]); /* EOF releases all children at once */
    for (i = 0; i < NCHILD; i++) {
        ck_assert_int_eq(waitpid(pids[i], &status, 0), pids[i]);
        ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "%s: child %d status %d", mech_names[_i], i,
                      status);
    }
    ck_assert_int_eq(pe_shm_counter_get(shm, "sum:win", -1, T0, &v), APR_SUCCESS);
    ck_assert_msg(v == 60, "%s: fixed window admitted %ld of 60", mech_names[_i], (long)v);
    ck_assert_int_eq(pe_shm_counter_get(shm, "sum:bucket", -1, T0, &v), APR_SUCCESS);
    ck_assert_msg(v == 60, "%s: token bucket admitted %ld of 60", mech_names[_i], (long)v);
    ck_assert_int_eq(pe_shm_counter_get(shm, "sum:slide", -1, T0, &v), APR_SUCCESS);
    ck_assert_msg(v == 60, "%s: sliding window admitted %ld of 60", mech_names[_i], (long)v);
    ck_assert_int_eq(pe_shm_counter_get(shm, "ctr", -1, T0, &v), APR_SUCCESS);
    ck_assert_msg(v == NCHILD * INCRS, "%s: counter %ld", mech_names[_i], (long)v);
    /* 40 failures with max 7: 6 were counted, the 7th started the block, the rest found it running */
    ck_assert_int_eq(pe_shm_counter_get(shm, "sum:unblocked", -1, T0, &v), APR_SUCCESS);
    ck_assert_msg(v == 6, "%s: %ld failures passed unblocked, want 6", mech_names[_i], (long)v);
    ck_assert_int_eq(pe_rl_blocked(shm, "fw:strike", T0, &blk), APR_SUCCESS);
    ck_assert_int_eq(blk.blocked, 1);
    ck_assert_int_eq(blk.strikes, 0);
}
END_TEST

/* Child churn: many keys through a small table, with counters, to exercise eviction under contention. */
START_TEST(shm_multiprocess_churn)
{
    pe_shm_t *shm = make_table(32, 16);
    pid_t pids[NCHILD];
    pe_shm_stats_t st;
    char key[32];
    int i, status;
    apr_int64_t v;

    capture_start(); /* the children inherit it: their PE50004 stay in their own memory */

    for (i = 0; i < NCHILD; i++) {
        pids[i] = fork();
        ck_assert_int_ge(pids[i], 0);
        if (pids[i] == 0) {
            int j;

            for (j = 0; j < 5000; j++) {
                apr_snprintf(key, sizeof(key), "churn:%d", (j * 7 + i * 13) % 97);
                if (pe_shm_incr(shm, key, -1, T0 + j, (j % 3) ? SEC(1) : 0, 1, NULL) != APR_SUCCESS)
                    _exit(1);
                if (j % 5 == 0 && pe_shm_delete(shm, key, -1, T0 + j) == APR_EINVAL)
                    _exit(1);
            }
            _exit(0);
        }
    }
    for (i = 0; i < NCHILD; i++) {
        ck_assert_int_eq(waitpid(pids[i], &status, 0), pids[i]);
        ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    }
    ck_assert_int_eq(pe_shm_stats(shm, &st), APR_SUCCESS);
    ck_assert_uint_le(st.used, 32);
    ck_assert_uint_gt(st.evictions + st.expired, 0);
    ck_assert_uint_eq(st.resets, 0);
    /* the free list, chains and LRU list are intact: 32 fresh keys all fit and read back */
    for (i = 0; i < 32; i++) {
        apr_snprintf(key, sizeof(key), "fresh:%d", i);
        ck_assert_int_eq(pe_shm_incr(shm, key, -1, T0 + SEC(100), 0, i + 1, NULL), APR_SUCCESS);
    }
    for (i = 0; i < 32; i++) {
        apr_snprintf(key, sizeof(key), "fresh:%d", i);
        ck_assert_int_eq(pe_shm_counter_get(shm, key, -1, T0 + SEC(100), &v), APR_SUCCESS);
        ck_assert_int_eq(v, i + 1);
    }
    ck_assert_int_eq(pe_shm_stats(shm, &st), APR_SUCCESS);
    ck_assert_uint_eq(st.used, 32);
    pe_log_set(NULL);
}
END_TEST

/* Callback that kills its process while the lock is held. */
static int die_cb(void *baton, void *value, apr_size_t value_size, int created, apr_time_t now, apr_time_t *expires)
{
    _exit(7);
    return PE_SHM_KEEP;
}

START_TEST(shm_holder_dies)
{
    pe_shm_t *shm = make_table(16, 8);
    pe_shm_stats_t st;
    pid_t pid;
    int status;

    capture_start();
    put(shm, "before", T0, 0, 11);
    pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        pe_shm_update(shm, "victim", -1, T0, 0, 0, die_cb, NULL);
        _exit(0);
    }
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 7);
    /* the robust mutex passes to us; the half-done table is cleared and says so */
    ck_assert_int_eq(pe_shm_stats(shm, &st), APR_SUCCESS);
    ck_assert_uint_eq(st.resets, 1);
    ck_assert_uint_eq(st.used, 0);
    ck_assert_int_eq(logged_count("PE50001"), 1);
    ck_assert_int_eq(peek(shm, "before", -1, T0), -1);
    put(shm, "after", T0, 0, 12);
    ck_assert_int_eq(peek(shm, "after", -1, T0), 12);
    ck_assert_int_eq(pe_shm_stats(shm, &st), APR_SUCCESS);
    ck_assert_uint_eq(st.resets, 1);
    pe_log_set(NULL);
}
END_TEST

/* ------------------------------------------------------------------------------------------------- */
/* Rate limits                                                                                       */

/* Take one unit and return the decision. */
static pe_rl_result_t take(pe_shm_t *shm, const char *key, apr_time_t now, const pe_rl_rule_t *rule)
{
    pe_rl_result_t res;

    ck_assert_int_eq(pe_rl_take(shm, key, now, rule, 1, &res), APR_SUCCESS);
    return res;
}

START_TEST(rl_rules)
{
    pe_shm_t *small = make_table(8, 16);
    pe_shm_t *shm;
    pe_rl_rule_t r = {PE_RL_FIXED_WINDOW, 60, 0, SEC(60)};
    pe_rl_strike_rule_t s = {5, SEC(60), SEC(900)};
    pe_rl_result_t res;
    pe_rl_block_t blk;

    ck_assert_ptr_null(pe_rl_rule_check(&r));
    r.algo = 0;
    ck_assert_str_eq(pe_rl_rule_check(&r), "unknown rate limit algorithm");
    r.algo = PE_RL_TOKEN_BUCKET;
    r.limit = 0;
    ck_assert_ptr_nonnull(pe_rl_rule_check(&r));
    r.limit = PE_RL_LIMIT_MAX + 1;
    ck_assert_ptr_nonnull(pe_rl_rule_check(&r));
    r.limit = PE_RL_LIMIT_MAX;
    r.burst = PE_RL_LIMIT_MAX;
    r.window = PE_RL_WINDOW_MAX;
    ck_assert_ptr_null(pe_rl_rule_check(&r)); /* the extremes are accepted */
    r.burst = PE_RL_LIMIT_MAX + 1;
    ck_assert_ptr_nonnull(pe_rl_rule_check(&r));
    r.burst = 0;
    r.window = PE_RL_WINDOW_MAX + 1;
    ck_assert_ptr_nonnull(pe_rl_rule_check(&r));
    r.window = PE_RL_WINDOW_MIN - 1;
    ck_assert_ptr_nonnull(pe_rl_rule_check(&r));
    ck_assert_ptr_nonnull(pe_rl_rule_check(NULL));
    ck_assert_ptr_null(pe_rl_strike_rule_check(&s));
    s.max_strikes = 0;
    ck_assert_ptr_nonnull(pe_rl_strike_rule_check(&s));
    s.max_strikes = 5;
    s.block_for = 0;
    ck_assert_ptr_nonnull(pe_rl_strike_rule_check(&s));

    /* refusals: bad rule, too small a table, cost above what the rule can ever grant */
    ck_assert_int_eq(pe_rl_take(small, "k", T0, &r, 1, &res), APR_EINVAL);
    ck_assert_int_eq(res.allowed, 0);
    r.window = SEC(60);
    ck_assert_int_eq(pe_rl_take(small, "k", T0, &r, 1, &res), APR_EINVAL); /* value size 16 < 32 */
    ck_assert_int_eq(pe_rl_take(small, "k", T0, &r, 1, NULL), APR_EINVAL);
    s.block_for = SEC(900);
    ck_assert_int_eq(pe_rl_strike(small, "k", T0, &s, &blk), APR_EINVAL);
    ck_assert_int_eq(pe_rl_blocked(small, "k", T0, &blk), APR_EINVAL);
    ck_assert_int_eq(blk.blocked, 1); /* an error reads as blocked: the caller chooses to fail open */
    shm = make_table(8, PE_RL_VALUE_SIZE);
    r.burst = 2;
    ck_assert_int_eq(pe_rl_take(shm, "k", T0, &r, 4, &res), APR_EINVAL); /* bucket holds 3 */
    ck_assert_int_eq(pe_rl_take(shm, "k", T0, &r, 3, &res), APR_SUCCESS);
    ck_assert_int_eq(res.allowed, 1);
    r.algo = PE_RL_FIXED_WINDOW;
    ck_assert_int_eq(pe_rl_take(shm, "w", T0, &r, PE_RL_LIMIT_MAX + 1, &res), APR_EINVAL);
    r.limit = 60;
    ck_assert_int_eq(pe_rl_take(shm, "w", T0, &r, 61, &res), APR_EINVAL);
    ck_assert_int_eq(pe_rl_take(shm, NULL, T0, &r, 1, &res), APR_EINVAL);
}
END_TEST

START_TEST(rl_fixed_window_60_per_minute)
{
    pe_shm_t *shm = make_table(16, PE_RL_VALUE_SIZE);
    const pe_rl_rule_t r = {PE_RL_FIXED_WINDOW, 60, 0, SEC(60)};
    pe_rl_result_t res;
    pe_shm_stats_t st;
    apr_time_t start = T0 + apr_time_from_msec(250); /* windows open at the first request, not on the minute */
    int i;

    /* a peek on an unknown key: full allowance, nothing stored */
    ck_assert_int_eq(pe_rl_take(shm, "ip:a", start, &r, 0, &res), APR_SUCCESS);
    ck_assert_int_eq(res.allowed, 1);
    ck_assert_uint_eq(res.remaining, 60);
    ck_assert_int_eq(pe_shm_stats(shm, &st), APR_SUCCESS);
    ck_assert_uint_eq(st.used, 0);

    for (i = 0; i < 60; i++) {
        res = take(shm, "ip:a", start + i * apr_time_from_msec(500), &r);
        ck_assert_msg(res.allowed, "request %d denied", i + 1);
        ck_assert_uint_eq(res.limit, 60);
        ck_assert_uint_eq(res.remaining, 59 - i);
        ck_assert_int_eq(res.reset, start + SEC(60));
        ck_assert_uint_eq(res.retry_after, 0);
    }
    /* the 61st, at +30 s: denied until the window that opened at `start` ends */
    res = take(shm, "ip:a", start + SEC(30), &r);
    ck_assert_int_eq(res.allowed, 0);
    ck_assert_uint_eq(res.remaining, 0);
    ck_assert_int_eq(res.reset, start + SEC(60));
    ck_assert_uint_eq(res.retry_after, 30);
    res = take(shm, "ip:a", start + SEC(59) + 1, &r);
    ck_assert_int_eq(res.allowed, 0);
    ck_assert_uint_eq(res.retry_after, 1); /* 0.999999 s rounds up */
    res = take(shm, "ip:a", start + SEC(60) - 1, &r);
    ck_assert_int_eq(res.allowed, 0);
    ck_assert_uint_eq(res.retry_after, 1);
    /* other keys are independent */
    ck_assert_int_eq(take(shm, "ip:b", start + SEC(30), &r).allowed, 1);

    /* the window ends: 60 more, and denials were not counted */
    for (i = 0; i < 60; i++) {
        res = take(shm, "ip:a", start + SEC(60) + i, &r);
        ck_assert_msg(res.allowed, "window 2 request %d denied", i + 1);
        ck_assert_int_eq(res.reset, start + SEC(120));
    }
    res = take(shm, "ip:a", start + SEC(119), &r);
    ck_assert_int_eq(res.allowed, 0);
    ck_assert_uint_eq(res.retry_after, 1);

    /* a multi-unit cost is all or nothing */
    ck_assert_int_eq(pe_rl_take(shm, "ip:c", start, &r, 50, &res), APR_SUCCESS);
    ck_assert_int_eq(res.allowed, 1);
    ck_assert_uint_eq(res.remaining, 10);
    ck_assert_int_eq(pe_rl_take(shm, "ip:c", start, &r, 11, &res), APR_SUCCESS);
    ck_assert_int_eq(res.allowed, 0);
    ck_assert_uint_eq(res.remaining, 10);
    ck_assert_int_eq(pe_rl_take(shm, "ip:c", start, &r, 10, &res), APR_SUCCESS);
    ck_assert_int_eq(res.allowed, 1);
    ck_assert_uint_eq(res.remaining, 0);

    /* the state expires with the window: the slot is reclaimed */
    ck_assert_int_eq(pe_shm_get(shm, "ip:c", -1, start + SEC(60), NULL, 0, NULL), APR_NOTFOUND);
}
END_TEST

START_TEST(rl_token_bucket)
{
    pe_shm_t *shm = make_table(16, PE_RL_VALUE_SIZE);
    const pe_rl_rule_t r0 = {PE_RL_TOKEN_BUCKET, 60, 0, SEC(60)};
    const pe_rl_rule_t r4 = {PE_RL_TOKEN_BUCKET, 60, 4, SEC(60)};
    const pe_rl_rule_t r7 = {PE_RL_TOKEN_BUCKET, 7, 0, SEC(60)};
    const pe_rl_rule_t r1 = {PE_RL_TOKEN_BUCKET, 1, 0, SEC(60)};
    pe_rl_result_t res;
    pe_shm_stats_t st;
    apr_time_t t;
    int i, allowed, max_in_minute, ok[3000];

    /* 60/min burst 0: one request per second */
    res = take(shm, "a", T0, &r0);
    ck_assert_int_eq(res.allowed, 1);
    ck_assert_uint_eq(res.remaining, 0);
    ck_assert_int_eq(res.reset, T0 + SEC(1));
    res = take(shm, "a", T0, &r0);
    ck_assert_int_eq(res.allowed, 0);
    ck_assert_uint_eq(res.retry_after, 1);
    res = take(shm, "a", T0 + SEC(1) - 1, &r0);
    ck_assert_int_eq(res.allowed, 0);
    ck_assert_uint_eq(res.retry_after, 1);
    res = take(shm, "a", T0 + SEC(1), &r0);
    ck_assert_int_eq(res.allowed, 1);
    /* a long idle time refills to the cap (one token), not beyond */
    res = take(shm, "a", T0 + SEC(3600), &r0);
    ck_assert_int_eq(res.allowed, 1);
    ck_assert_int_eq(take(shm, "a", T0 + SEC(3600), &r0).allowed, 0);

    /* a flood every 100 ms for 5 minutes: exactly 300 admitted, never more than 60 in any minute */
    allowed = 0;
    for (i = 0; i < 3000; i++) {
        ok[i] = take(shm, "flood", T0 + i * apr_time_from_msec(100), &r0).allowed;
        allowed += ok[i];
    }
    ck_assert_int_eq(allowed, 300);
    max_in_minute = 0;
    for (i = 0; i + 600 <= 3000; i++) {
        int j, n = 0;

        for (j = i; j < i + 600; j++)
            n += ok[j];
        if (n > max_in_minute)
            max_in_minute = n;
    }
    ck_assert_int_eq(max_in_minute, 60);

    /* burst 4: five back to back, then refill by time */
    for (i = 0; i < 5; i++) {
        res = take(shm, "b", T0, &r4);
        ck_assert_int_eq(res.allowed, 1);
        ck_assert_uint_eq(res.remaining, 4 - i);
    }
    ck_assert_int_eq(res.reset, T0 + SEC(5));
    res = take(shm, "b", T0, &r4);
    ck_assert_int_eq(res.allowed, 0);
    ck_assert_uint_eq(res.retry_after, 1);
    t = T0 + apr_time_from_msec(2500); /* 2.5 tokens back */
    ck_assert_int_eq(pe_rl_take(shm, "b", t, &r4, 0, &res), APR_SUCCESS);
    ck_assert_uint_eq(res.remaining, 2);
    ck_assert_int_eq(res.reset, T0 + SEC(5));
    ck_assert_int_eq(take(shm, "b", t, &r4).allowed, 1);
    ck_assert_int_eq(take(shm, "b", t, &r4).allowed, 1);
    res = take(shm, "b", t, &r4);
    ck_assert_int_eq(res.allowed, 0);
    ck_assert_uint_eq(res.retry_after, 1); /* 0.5 token missing = 0.5 s, rounded up */
    ck_assert_int_eq(res.reset, T0 + SEC(7)); /* 0.5 token now, 3 to fill at 1/s */
    /* a full bucket is not stored */
    ck_assert_int_eq(pe_shm_get(shm, "b", -1, T0 + SEC(8), NULL, 0, NULL), APR_NOTFOUND);

    /* 7/min: one token every 60/7 s = 8571428.57 us, so the next one is due at +8571429 us */
    ck_assert_int_eq(take(shm, "c", T0, &r7).allowed, 1);
    res = take(shm, "c", T0, &r7);
    ck_assert_int_eq(res.allowed, 0);
    ck_assert_uint_eq(res.retry_after, 9);
    ck_assert_int_eq(take(shm, "c", T0 + 8571428, &r7).allowed, 0);
    ck_assert_int_eq(take(shm, "c", T0 + 8571429, &r7).allowed, 1);

    /* 1/min: refill is one tick per microsecond, so the token is complete at exactly +60 s */
    ck_assert_int_eq(take(shm, "d", T0, &r1).allowed, 1);
    ck_assert_int_eq(take(shm, "d", T0 + SEC(60) - 1, &r1).allowed, 0);
    ck_assert_int_eq(take(shm, "d", T0 + SEC(60), &r1).allowed, 1);

    /* the same key under another algorithm starts afresh */
    res = take(shm, "c", T0 + 8571429, &(pe_rl_rule_t){PE_RL_FIXED_WINDOW, 2, 0, SEC(60)});
    ck_assert_int_eq(res.allowed, 1);
    ck_assert_uint_eq(res.remaining, 1);

    ck_assert_int_eq(pe_shm_stats(shm, &st), APR_SUCCESS);
    ck_assert_uint_eq(st.evictions, 0);
}
END_TEST

START_TEST(rl_sliding_window)
{
    pe_shm_t *shm = make_table(16, PE_RL_VALUE_SIZE);
    const pe_rl_rule_t r = {PE_RL_SLIDING_WINDOW, 10, 0, SEC(10)};
    pe_rl_result_t res;
    int i;

    for (i = 0; i < 10; i++) {
        res = take(shm, "s", T0, &r);
        ck_assert_int_eq(res.allowed, 1);
        ck_assert_uint_eq(res.remaining, 9 - i);
    }
    ck_assert_int_eq(res.reset, T0 + SEC(20));
    res = take(shm, "s", T0 + SEC(5), &r);
    ck_assert_int_eq(res.allowed, 0);
    ck_assert_uint_eq(res.retry_after, 6); /* next window at +10 s, then 1 s for a tenth of prev to slide out */

    /* at the boundary the previous window still weighs fully: no double burst */
    res = take(shm, "s", T0 + SEC(10), &r);
    ck_assert_int_eq(res.allowed, 0);
    ck_assert_uint_eq(res.retry_after, 1);
    res = take(shm, "s", T0 + SEC(11) - 1, &r);
    ck_assert_int_eq(res.allowed, 0);
    /* at +11 s, 9/10 of the previous 10 remain: room for exactly one */
    res = take(shm, "s", T0 + SEC(11), &r);
    ck_assert_int_eq(res.allowed, 1);
    ck_assert_uint_eq(res.remaining, 0);
    ck_assert_int_eq(res.reset, T0 + SEC(30));
    res = take(shm, "s", T0 + SEC(11), &r);
    ck_assert_int_eq(res.allowed, 0);
    ck_assert_uint_eq(res.retry_after, 1); /* at +12 s: 8 + 1 + 1 <= 10 */
    /* at +15 s: 10 * 5/10 + 1 = 6 used, 4 left */
    for (i = 0; i < 4; i++)
        ck_assert_int_eq(take(shm, "s", T0 + SEC(15), &r).allowed, 1);
    res = take(shm, "s", T0 + SEC(15), &r);
    ck_assert_int_eq(res.allowed, 0);
    ck_assert_uint_eq(res.remaining, 0);
    /* never more than the limit within one window: 5 in this one so far, and 1 us before its end the
     * previous window still weighs 10 * 1 us / 10 s, so 4 more fit (9), not 5 */
    for (i = 0; i < 4; i++)
        ck_assert_int_eq(take(shm, "s", T0 + SEC(20) - 1, &r).allowed, 1);
    ck_assert_int_eq(take(shm, "s", T0 + SEC(20) - 1, &r).allowed, 0);
    /* two windows of silence: the state is gone, a full allowance */
    ck_assert_int_eq(pe_shm_get(shm, "s", -1, T0 + SEC(40), NULL, 0, NULL), APR_NOTFOUND);
    for (i = 0; i < 10; i++)
        ck_assert_int_eq(take(shm, "s", T0 + SEC(40), &r).allowed, 1);
    ck_assert_int_eq(take(shm, "s", T0 + SEC(40), &r).allowed, 0);
}
END_TEST

START_TEST(rl_strikes)
{
    pe_shm_t *shm = make_table(16, PE_RL_VALUE_SIZE);
    const pe_rl_strike_rule_t r = {5, SEC(60), SEC(900)};
    pe_rl_block_t b;
    int i;

    ck_assert_int_eq(pe_rl_blocked(shm, "ip:x", T0, &b), APR_SUCCESS);
    ck_assert_int_eq(b.blocked, 0);
    ck_assert_uint_eq(b.strikes, 0);
    for (i = 1; i <= 4; i++) {
        ck_assert_int_eq(pe_rl_strike(shm, "ip:x", T0 + SEC(i), &r, &b), APR_SUCCESS);
        ck_assert_int_eq(b.blocked, 0);
        ck_assert_uint_eq(b.strikes, i);
    }
    ck_assert_int_eq(pe_rl_blocked(shm, "ip:x", T0 + SEC(5), &b), APR_SUCCESS);
    ck_assert_int_eq(b.blocked, 0);
    ck_assert_uint_eq(b.strikes, 4);
    /* the fifth within the window blocks for 15 minutes and starts the count again */
    ck_assert_int_eq(pe_rl_strike(shm, "ip:x", T0 + SEC(10), &r, &b), APR_SUCCESS);
    ck_assert_int_eq(b.blocked, 1);
    ck_assert_uint_eq(b.strikes, 0);
    ck_assert_int_eq(b.blocked_until, T0 + SEC(910));
    ck_assert_uint_eq(b.retry_after, 900);
    /* a failure during the block neither counts nor extends it */
    ck_assert_int_eq(pe_rl_strike(shm, "ip:x", T0 + SEC(500), &r, &b), APR_SUCCESS);
    ck_assert_int_eq(b.blocked, 1);
    ck_assert_int_eq(b.blocked_until, T0 + SEC(910));
    ck_assert_uint_eq(b.strikes, 0);
    ck_assert_int_eq(pe_rl_blocked(shm, "ip:x", T0 + SEC(910) - 1, &b), APR_SUCCESS);
    ck_assert_int_eq(b.blocked, 1);
    ck_assert_uint_eq(b.retry_after, 1);
    ck_assert_int_eq(pe_rl_blocked(shm, "ip:x", T0 + SEC(910), &b), APR_SUCCESS);
    ck_assert_int_eq(b.blocked, 0);
    ck_assert_int_eq(b.blocked_until, 0);
    ck_assert_int_eq(pe_shm_get(shm, "ip:x", -1, T0 + SEC(910), NULL, 0, NULL), APR_NOTFOUND);

    /* strikes spread over more than the window never block: the window opens at the first one */
    for (i = 0; i < 4; i++)
        ck_assert_int_eq(pe_rl_strike(shm, "ip:y", T0 + SEC(i), &r, &b), APR_SUCCESS);
    ck_assert_int_eq(pe_rl_strike(shm, "ip:y", T0 + SEC(60), &r, &b), APR_SUCCESS);
    ck_assert_int_eq(b.blocked, 0);
    ck_assert_uint_eq(b.strikes, 1);
    ck_assert_int_eq(pe_rl_blocked(shm, "ip:y", T0 + SEC(119), &b), APR_SUCCESS);
    ck_assert_uint_eq(b.strikes, 1);
    ck_assert_int_eq(pe_rl_blocked(shm, "ip:y", T0 + SEC(120), &b), APR_SUCCESS);
    ck_assert_uint_eq(b.strikes, 0);

    /* a successful login clears strikes but not a running block */
    for (i = 0; i < 4; i++)
        ck_assert_int_eq(pe_rl_strike(shm, "ip:z", T0, &r, &b), APR_SUCCESS);
    ck_assert_int_eq(pe_rl_strikes_clear(shm, "ip:z", T0), APR_SUCCESS);
    ck_assert_int_eq(pe_rl_strike(shm, "ip:z", T0, &r, &b), APR_SUCCESS);
    ck_assert_int_eq(b.blocked, 0);
    ck_assert_uint_eq(b.strikes, 1);
    ck_assert_int_eq(pe_rl_strikes_clear(shm, "ip:none", T0), APR_SUCCESS);
    ck_assert_int_eq(pe_rl_block(shm, "ip:z", T0, SEC(60)), APR_SUCCESS);
    ck_assert_int_eq(pe_rl_strikes_clear(shm, "ip:z", T0), APR_SUCCESS);
    ck_assert_int_eq(pe_rl_blocked(shm, "ip:z", T0 + SEC(59), &b), APR_SUCCESS);
    ck_assert_int_eq(b.blocked, 1);
    /* an operator block keeps a longer running one; unblock lifts it */
    ck_assert_int_eq(pe_rl_block(shm, "ip:z", T0 + SEC(1), SEC(10)), APR_SUCCESS);
    ck_assert_int_eq(pe_rl_blocked(shm, "ip:z", T0 + SEC(30), &b), APR_SUCCESS);
    ck_assert_int_eq(b.blocked_until, T0 + SEC(60));
    ck_assert_int_eq(pe_rl_block(shm, "ip:z", T0, 0), APR_EINVAL);
    ck_assert_int_eq(pe_rl_unblock(shm, "ip:z", T0 + SEC(30)), APR_SUCCESS);
    ck_assert_int_eq(pe_rl_blocked(shm, "ip:z", T0 + SEC(30), &b), APR_SUCCESS);
    ck_assert_int_eq(b.blocked, 0);
    ck_assert_int_eq(pe_rl_unblock(shm, "ip:z", T0 + SEC(30)), APR_NOTFOUND);

    /* a rate-limit key is never read as a block */
    ck_assert_int_eq(take(shm, "rl:k", T0, &(pe_rl_rule_t){PE_RL_FIXED_WINDOW, 1, 0, SEC(60)}).allowed, 1);
    ck_assert_int_eq(pe_rl_blocked(shm, "rl:k", T0, &b), APR_SUCCESS);
    ck_assert_int_eq(b.blocked, 0);
    ck_assert_int_eq(pe_rl_strikes_clear(shm, "rl:k", T0), APR_SUCCESS);
    ck_assert_int_eq(take(shm, "rl:k", T0, &(pe_rl_rule_t){PE_RL_FIXED_WINDOW, 1, 0, SEC(60)}).allowed, 0);
}
END_TEST

START_TEST(rl_strike_reservations)
{
    pe_shm_t *shm = make_table(16, PE_RL_VALUE_SIZE);
    const pe_rl_strike_rule_t r = {5, SEC(60), SEC(900)};
    pe_rl_block_t b;
    int i;

    /* count first: 29 attempts at once, only 5 are reserved; the others must wait */
    for (i = 0; i < 5; i++) {
        ck_assert_int_eq(pe_rl_strike_reserve(shm, "ip:r", T0, &r, &b), APR_SUCCESS);
        ck_assert_int_eq(b.blocked, 0);
        ck_assert_uint_eq(b.pending, i + 1);
    }
    for (i = 5; i < 29; i++)
        ck_assert_int_eq(pe_rl_strike_reserve(shm, "ip:r", T0, &r, &b), APR_EAGAIN);
    ck_assert_uint_eq(b.pending, 5);
    /* one passes: its place is free again, and no strike is counted */
    ck_assert_int_eq(pe_rl_strike_settle(shm, "ip:r", T0, &r, 0, &b), APR_SUCCESS);
    ck_assert_uint_eq(b.pending, 4);
    ck_assert_uint_eq(b.strikes, 0);
    ck_assert_int_eq(pe_rl_strike_reserve(shm, "ip:r", T0, &r, &b), APR_SUCCESS);
    ck_assert_int_eq(pe_rl_strike_reserve(shm, "ip:r", T0, &r, &b), APR_EAGAIN);
    /* the five fail: the fifth failure blocks, and a waiting attempt then finds the block */
    for (i = 1; i <= 5; i++) {
        ck_assert_int_eq(pe_rl_strike_settle(shm, "ip:r", T0 + SEC(1), &r, 1, &b), APR_SUCCESS);
        ck_assert_int_eq(b.blocked, i == 5);
        ck_assert_uint_eq(b.pending, 5 - i);
        if (i < 5)
            ck_assert_int_eq(pe_rl_strike_reserve(shm, "ip:r", T0 + SEC(1), &r, &b), APR_EAGAIN);
    }
    ck_assert_int_eq(b.blocked_until, T0 + SEC(901));
    ck_assert_int_eq(pe_rl_strike_reserve(shm, "ip:r", T0 + SEC(2), &r, &b), APR_SUCCESS);
    ck_assert_int_eq(b.blocked, 1);
    ck_assert_uint_eq(b.pending, 0);
    /* after the block, a fresh allowance */
    ck_assert_int_eq(pe_rl_strike_reserve(shm, "ip:r", T0 + SEC(901), &r, &b), APR_SUCCESS);
    ck_assert_int_eq(b.blocked, 0);
    ck_assert_uint_eq(b.pending, 1);
    ck_assert_int_eq(pe_rl_strike_settle(shm, "ip:r", T0 + SEC(901), &r, 1, &b), APR_SUCCESS);
    ck_assert_uint_eq(b.strikes, 1);
    ck_assert_uint_eq(b.pending, 0);

    /* failures and reservations share the allowance: 3 failures leave 2 places */
    for (i = 0; i < 3; i++)
        ck_assert_int_eq(pe_rl_strike(shm, "ip:s", T0, &r, &b), APR_SUCCESS);
    ck_assert_int_eq(pe_rl_strike_reserve(shm, "ip:s", T0, &r, &b), APR_SUCCESS);
    ck_assert_int_eq(pe_rl_strike_reserve(shm, "ip:s", T0, &r, &b), APR_SUCCESS);
    ck_assert_int_eq(pe_rl_strike_reserve(shm, "ip:s", T0, &r, &b), APR_EAGAIN);
    /* a new window drops the old failures but keeps what is reserved */
    ck_assert_int_eq(pe_rl_strike_reserve(shm, "ip:s", T0 + SEC(60), &r, &b), APR_SUCCESS);
    ck_assert_uint_eq(b.strikes, 0);
    ck_assert_uint_eq(b.pending, 3);
    ck_assert_int_eq(pe_rl_strike_reserve(shm, "ip:s", T0 + SEC(60), &r, &b), APR_SUCCESS);
    ck_assert_int_eq(pe_rl_strike_reserve(shm, "ip:s", T0 + SEC(60), &r, &b), APR_SUCCESS);
    ck_assert_int_eq(pe_rl_strike_reserve(shm, "ip:s", T0 + SEC(60), &r, &b), APR_EAGAIN);
    /* reservations never settled (a process died) stop counting PE_RL_PENDING_MAX_SEC after the
     * key last had none: the first of these was made at T0 */
    ck_assert_int_eq(pe_rl_strike_reserve(shm, "ip:s", T0 + SEC(PE_RL_PENDING_MAX_SEC - 1), &r, &b), APR_EAGAIN);
    ck_assert_int_eq(pe_rl_strike_reserve(shm, "ip:s", T0 + SEC(PE_RL_PENDING_MAX_SEC), &r, &b), APR_SUCCESS);
    ck_assert_uint_eq(b.pending, 1);
    ck_assert_int_eq(pe_rl_strike_settle(shm, "ip:s", T0 + SEC(PE_RL_PENDING_MAX_SEC), &r, 0, &b), APR_SUCCESS);
    ck_assert_uint_eq(b.pending, 0);
    /* a settle with nothing reserved counts the failure and never goes below zero */
    ck_assert_int_eq(pe_rl_strike_settle(shm, "ip:t", T0, &r, 1, &b), APR_SUCCESS);
    ck_assert_uint_eq(b.strikes, 1);
    ck_assert_uint_eq(b.pending, 0);
    ck_assert_int_eq(pe_rl_strike_settle(shm, "ip:t", T0, &r, 0, &b), APR_SUCCESS);
    ck_assert_uint_eq(b.pending, 0);
    ck_assert_int_eq(pe_rl_strike_reserve(NULL, "ip:t", T0, &r, &b), APR_EINVAL);
    ck_assert_int_eq(pe_rl_strike_settle(shm, NULL, T0, &r, 1, &b), APR_EINVAL);
}
END_TEST

/* Callbacks of the NOZERO test: fill with 0xab; copy the area out. */
static int nz_fill(void *baton, void *value, apr_size_t value_size, int created, apr_time_t now, apr_time_t *expires)
{
    memset(value, 0xab, value_size);
    return PE_SHM_KEEP;
}

static int nz_look(void *baton, void *value, apr_size_t value_size, int created, apr_time_t now, apr_time_t *expires)
{
    ck_assert_int_eq(created, 1);
    memcpy(baton, value, 16);
    return PE_SHM_KEEP;
}

/* A created slot is zeroed, unless PE_SHM_NOZERO says the callback writes what it reads. */
START_TEST(nozero_flag)
{
    pe_shm_t *shm = make_table(1, 16);
    unsigned char seen[16], zero[16], ab[16];

    memset(zero, 0, sizeof(zero));
    memset(ab, 0xab, sizeof(ab));
    ck_assert_int_eq(pe_shm_update(shm, "a", -1, 1000, 0, 0, nz_fill, NULL), APR_SUCCESS);
    ck_assert_int_eq(pe_shm_delete(shm, "a", -1, 1000), APR_SUCCESS);
    ck_assert_int_eq(pe_shm_update(shm, "b", -1, 1000, 0, 0, nz_look, seen), APR_SUCCESS);
    ck_assert_int_eq(memcmp(seen, zero, 16), 0);
    ck_assert_int_eq(pe_shm_update(shm, "b", -1, 1000, 0, 0, nz_fill, NULL), APR_SUCCESS);
    ck_assert_int_eq(pe_shm_delete(shm, "b", -1, 1000), APR_SUCCESS);
    ck_assert_int_eq(pe_shm_update(shm, "c", -1, 1000, 0, PE_SHM_NOZERO, nz_look, seen), APR_SUCCESS);
    ck_assert_int_eq(memcmp(seen, ab, 16), 0); /* the one slot, not cleared */
}
END_TEST

/* The shm suite: table, multi-process, rate limits. */
Suite *pe_suite_shm(void)
{
    Suite *s = suite_create("shm");
    TCase *tc = pe_tcase("table");
    TCase *mp = pe_tcase("multiprocess");
    TCase *rl = pe_tcase("ratelimit");

    tcase_add_test(tc, shm_arguments);
    tcase_add_test(tc, shm_basics);
    tcase_add_test(tc, shm_expiry);
    tcase_add_test(tc, shm_eviction_lru);
    tcase_add_test(tc, shm_eviction_message_names_the_table);
    tcase_add_test(tc, shm_eviction_expired_first);
    tcase_add_test(tc, shm_eviction_bounded_scan);
    tcase_add_test(tc, shm_eviction_sweep);
    tcase_add_test(tc, shm_eviction_tail_scan);
    tcase_add_test(tc, shm_hash_spread);
    tcase_add_test(tc, shm_key_collisions);
    tcase_add_test(tc, nozero_flag);
    suite_add_tcase(s, tc);
    tcase_add_loop_test(mp, shm_multiprocess, 0, (int)(sizeof(mechs) / sizeof(mechs[0])));
    tcase_add_test(mp, shm_multiprocess_churn);
    tcase_add_test(mp, shm_holder_dies);
    suite_add_tcase(s, mp);
    tcase_add_test(rl, rl_rules);
    tcase_add_test(rl, rl_fixed_window_60_per_minute);
    tcase_add_test(rl, rl_token_bucket);
    tcase_add_test(rl, rl_sliding_window);
    tcase_add_test(rl, rl_strikes);
    tcase_add_test(rl, rl_strike_reservations);
    suite_add_tcase(s, rl);
    return s;
}
