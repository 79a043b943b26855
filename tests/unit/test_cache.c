/* test_cache.c: the two-tier cache: shared-memory get/set/expiry/size limit, a value shared with a
 * forked child, and the remote tier with fakes (hit, miss, error falls back to shared memory). */
#include "pe_cache.h"
#include "pe_test.h"

#include <apr_global_mutex.h>
#include <apr_strings.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static pe_cache_t *make(apr_uint32_t entries, apr_size_t size)
{
    apr_global_mutex_t *m;
    pe_cache_t *c;

    ck_assert_int_eq(apr_global_mutex_create(&m, NULL, APR_LOCK_DEFAULT, pe_tp), APR_SUCCESS);
    ck_assert_int_eq(pe_cache_create(pe_tp, entries, size, m, &c), APR_SUCCESS);
    return c;
}

START_TEST(test_shm_roundtrip)
{
    pe_cache_t *c = make(16, 64);
    apr_time_t now = apr_time_from_sec(1000);
    char *v;
    apr_size_t n;
    pe_cache_tier_e t;
    char big[65];

    ck_assert_int_eq(pe_cache_get(c, pe_tp, "pe:v1:response:aa", now, &v, &n, &t), APR_NOTFOUND);
    ck_assert_int_eq(t, PE_CACHE_NONE);
    ck_assert_int_eq(pe_cache_set(c, "pe:v1:response:aa", "{\"a\":1}", 7, apr_time_from_sec(10), now, &t),
                     APR_SUCCESS);
    ck_assert_int_eq(t, PE_CACHE_SHM);
    ck_assert_int_eq(pe_cache_get(c, pe_tp, "pe:v1:response:aa", now + 1, &v, &n, &t), APR_SUCCESS);
    ck_assert_int_eq(t, PE_CACHE_SHM);
    ck_assert_uint_eq(n, 7);
    ck_assert_str_eq(v, "{\"a\":1}");
    /* overwrite with a shorter value: no stale tail */
    ck_assert_int_eq(pe_cache_set(c, "pe:v1:response:aa", "xy", 2, apr_time_from_sec(10), now, NULL), APR_SUCCESS);
    ck_assert_int_eq(pe_cache_get(c, pe_tp, "pe:v1:response:aa", now + 1, &v, &n, NULL), APR_SUCCESS);
    ck_assert_str_eq(v, "xy");
    /* expired */
    ck_assert_int_eq(pe_cache_get(c, pe_tp, "pe:v1:response:aa", now + apr_time_from_sec(11), &v, &n, NULL),
                     APR_NOTFOUND);
    /* too large for an entry */
    memset(big, 'x', sizeof(big));
    ck_assert_int_eq(pe_cache_set(c, "pe:v1:response:bb", big, 65, apr_time_from_sec(10), now, &t), APR_ENOSPC);
    ck_assert_int_eq(t, PE_CACHE_NONE);
    ck_assert_int_eq(pe_cache_set(c, "pe:v1:response:bb", big, 64, apr_time_from_sec(10), now, NULL), APR_SUCCESS);
    /* another key is another entry */
    ck_assert_int_eq(pe_cache_get(c, pe_tp, "pe:v1:response:cc", now, &v, &n, NULL), APR_NOTFOUND);
}
END_TEST

START_TEST(test_shm_shared_with_child)
{
    pe_cache_t *c = make(16, 64);
    apr_time_t now = apr_time_now();
    pid_t pid;
    int status;
    char *v;
    apr_size_t n;

    pid = fork();
    if (pid == 0) {
        _exit(pe_cache_set(c, "pe:v1:response:kid", "from-child", 10, apr_time_from_sec(60), now, NULL) ==
                      APR_SUCCESS ? 0 : 1);
    }
    waitpid(pid, &status, 0);
    ck_assert_int_eq(WEXITSTATUS(status), 0);
    ck_assert_int_eq(pe_cache_get(c, pe_tp, "pe:v1:response:kid", now, &v, &n, NULL), APR_SUCCESS);
    ck_assert_str_eq(v, "from-child");
}
END_TEST

/* A fake remote tier. */
typedef struct remote_t {
    apr_status_t get_rv, set_rv;
    int gets, sets;
    apr_uint32_t last_ttl;
    char stored[64];
} remote_t;

static apr_status_t rget(void *b, apr_pool_t *p, const char *key, char **val, apr_size_t *len)
{
    remote_t *r = b;

    r->gets++;
    if (r->get_rv == APR_SUCCESS) {
        *val = apr_pstrdup(p, r->stored);
        *len = strlen(r->stored);
    }
    return r->get_rv;
}

static apr_status_t rset(void *b, const char *key, const void *val, apr_size_t len, apr_uint32_t ttl)
{
    remote_t *r = b;

    r->sets++;
    r->last_ttl = ttl;
    if (r->set_rv == APR_SUCCESS && len < sizeof(r->stored)) {
        memcpy(r->stored, val, len);
        r->stored[len] = '\0';
    }
    return r->set_rv;
}

START_TEST(test_remote_and_fallback)
{
    pe_cache_t *c = make(16, 64);
    remote_t r;
    apr_time_t now = apr_time_now();
    char *v;
    apr_size_t n;
    pe_cache_tier_e t;
    pe_cache_stats_t st;

    memset(&r, 0, sizeof(r));
    r.get_rv = APR_NOTFOUND;
    pe_cache_set_remote(c, rget, rset, &r);
    /* a set goes to the remote tier only */
    ck_assert_int_eq(pe_cache_set(c, "pe:v1:response:k", "remote", 6, apr_time_from_msec(1500), now, &t), APR_SUCCESS);
    ck_assert_int_eq(t, PE_CACHE_REMOTE);
    ck_assert_uint_eq(r.last_ttl, 2);
    /* a remote miss is a miss (shared memory is not asked) */
    ck_assert_int_eq(pe_cache_get(c, pe_tp, "pe:v1:response:k", now, &v, &n, &t), APR_NOTFOUND);
    r.get_rv = APR_SUCCESS;
    ck_assert_int_eq(pe_cache_get(c, pe_tp, "pe:v1:response:k", now, &v, &n, &t), APR_SUCCESS);
    ck_assert_int_eq(t, PE_CACHE_REMOTE);
    ck_assert_str_eq(v, "remote");
    /* the remote tier fails: sets and gets use shared memory */
    r.get_rv = r.set_rv = APR_TIMEUP;
    ck_assert_int_eq(pe_cache_set(c, "pe:v1:response:k2", "local", 5, apr_time_from_sec(60), now, &t), APR_SUCCESS);
    ck_assert_int_eq(t, PE_CACHE_SHM);
    ck_assert_int_eq(pe_cache_get(c, pe_tp, "pe:v1:response:k2", now, &v, &n, &t), APR_SUCCESS);
    ck_assert_int_eq(t, PE_CACHE_SHM);
    ck_assert_str_eq(v, "local");
    ck_assert_int_eq(pe_cache_get(c, pe_tp, "pe:v1:response:none", now, &v, &n, &t), APR_NOTFOUND);
    pe_cache_stats(c, &st);
    ck_assert_uint_eq(st.hits, 2);
    ck_assert_uint_eq(st.misses, 2);
    ck_assert_uint_eq(st.remote_errors, 3);
    ck_assert_uint_eq(st.remote_sets, 1);
    ck_assert_uint_eq(st.shm_sets, 1);
}
END_TEST

START_TEST(test_no_shm_tier)
{
    pe_cache_t *c = make(0, 64);
    char *v;
    apr_size_t n;

    ck_assert_int_eq(pe_cache_set(c, "pe:v1:response:x", "a", 1, apr_time_from_sec(5), 0, NULL), APR_NOTFOUND);
    ck_assert_int_eq(pe_cache_get(c, pe_tp, "pe:v1:response:x", 0, &v, &n, NULL), APR_NOTFOUND);
}
END_TEST

/* A cached completion keeps the body byte for byte, with the text and tokens before it. */
START_TEST(reply_pack_round_trip)
{
    static const char body[] = "{\"choices\":[{\"message\":{\"content\":\"hi\"}}],\"usage\":{\"total_tokens\":7}}";
    const char *b, *resp;
    apr_size_t len, blen;
    apr_int64_t tokens;
    char *rec = pe_cache_reply_pack(pe_tp, body, sizeof(body) - 1, "hi \xc3\xa9", 7, &len), *cut;

    ck_assert_ptr_nonnull(rec);
    ck_assert_uint_eq(len, PE_CACHE_REPLY_HEAD + 5 + sizeof(body) - 1);
    ck_assert_int_eq(pe_cache_reply_unpack(pe_tp, rec, len, &b, &blen, &resp, &tokens), 0);
    ck_assert_uint_eq(blen, sizeof(body) - 1);
    ck_assert_int_eq(memcmp(b, body, blen), 0);
    ck_assert_int_eq(b[blen], '\0');
    ck_assert_str_eq(resp, "hi \xc3\xa9");
    ck_assert_int_eq(tokens, 7);
    /* no text, negative and large token counts, an empty body */
    rec = pe_cache_reply_pack(pe_tp, "", 0, NULL, -3, &len);
    ck_assert_int_eq(pe_cache_reply_unpack(pe_tp, rec, len, &b, &blen, &resp, &tokens), 0);
    ck_assert_ptr_null(resp);
    ck_assert_int_eq(tokens, -3);
    ck_assert_uint_eq(blen, 0);
    rec = pe_cache_reply_pack(pe_tp, "x", 1, "", (apr_int64_t)1 << 40, &len);
    ck_assert_int_eq(pe_cache_reply_unpack(pe_tp, rec, len, &b, &blen, &resp, &tokens), 0);
    ck_assert_str_eq(resp, "");
    ck_assert_int_eq(tokens, (apr_int64_t)1 << 40);
    /* anything else is refused: a bare body, a short record, a text longer than the record */
    ck_assert_int_eq(pe_cache_reply_unpack(pe_tp, body, sizeof(body) - 1, &b, &blen, &resp, &tokens), -1);
    rec = pe_cache_reply_pack(pe_tp, body, sizeof(body) - 1, "hello", 1, &len);
    ck_assert_int_eq(pe_cache_reply_unpack(pe_tp, rec, PE_CACHE_REPLY_HEAD - 1, &b, &blen, &resp, &tokens), -1);
    ck_assert_int_eq(pe_cache_reply_unpack(pe_tp, rec, PE_CACHE_REPLY_HEAD + 4, &b, &blen, &resp, &tokens), -1);
    cut = apr_pmemdup(pe_tp, rec, len);
    cut[4] = 2;
    ck_assert_int_eq(pe_cache_reply_unpack(pe_tp, cut, len, &b, &blen, &resp, &tokens), -1);
    cut[4] = 0; /* "no text" with a text length */
    ck_assert_int_eq(pe_cache_reply_unpack(pe_tp, cut, len, &b, &blen, &resp, &tokens), -1);
    ck_assert_int_eq(pe_cache_reply_unpack(pe_tp, NULL, 0, &b, &blen, &resp, &tokens), -1);
}
END_TEST

Suite *pe_suite_cache(void)
{
    Suite *s = suite_create("cache");
    TCase *tc = pe_tcase("tiers");

    tcase_add_test(tc, test_shm_roundtrip);
    tcase_add_test(tc, test_shm_shared_with_child);
    tcase_add_test(tc, test_remote_and_fallback);
    tcase_add_test(tc, test_no_shm_tier);
    tcase_add_test(tc, reply_pack_round_trip);
    suite_add_tcase(s, tc);
    return s;
}
