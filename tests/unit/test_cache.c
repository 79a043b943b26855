/* test_cache.c: the two-tier cache: shared-memory get/set/expiry/size limit, a value shared with a
 * forked child, and the remote tier with fakes (hit, miss, error falls back to shared memory). */
#include "pe_cache.h"
#include "pe_test.h"

#include <apr_global_mutex.h>
#include <apr_hash.h>
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

/* A fake remote tier: a key-value table (the nodes of a cluster may share one); get_rv/set_rv,
 * when not APR_SUCCESS, fail every call with that error. */
typedef struct remote_t {
    apr_status_t get_rv, set_rv;
    int gets, mgets, sets; /* round trips of each kind */
    apr_uint32_t last_ttl;
    apr_hash_t *kv;
} remote_t;

static void remote_init(remote_t *r)
{
    memset(r, 0, sizeof(*r));
    r->kv = apr_hash_make(pe_tp);
}

static apr_status_t rget(void *b, apr_pool_t *p, const char *key, char **val, apr_size_t *len)
{
    remote_t *r = b;
    const char *v;

    r->gets++;
    if (r->get_rv != APR_SUCCESS)
        return r->get_rv;
    if (!(v = apr_hash_get(r->kv, key, APR_HASH_KEY_STRING)))
        return APR_NOTFOUND;
    *val = apr_pstrdup(p, v);
    *len = strlen(v);
    return APR_SUCCESS;
}

/* A multi-get: one round trip for all its keys (counted in mgets), each looked up as rget does. */
static apr_status_t rmget(void *b, apr_pool_t *p, int n, const char *const *keys, char **vals, apr_size_t *lens,
                          apr_status_t *rvs)
{
    remote_t *r = b;
    const char *v;
    int i;

    r->mgets++;
    for (i = 0; i < n; i++) {
        vals[i] = NULL;
        lens[i] = 0;
        rvs[i] = r->get_rv;
        if (r->get_rv != APR_SUCCESS)
            continue;
        if (!(v = apr_hash_get(r->kv, keys[i], APR_HASH_KEY_STRING))) {
            rvs[i] = APR_NOTFOUND;
            continue;
        }
        vals[i] = apr_pstrdup(p, v);
        lens[i] = strlen(v);
    }
    return r->get_rv;
}

static apr_status_t rset(void *b, const char *key, const void *val, apr_size_t len, apr_uint32_t ttl)
{
    remote_t *r = b;

    r->sets++;
    if (r->set_rv != APR_SUCCESS)
        return r->set_rv;
    if (strcmp(key, "pe:v1:cache-generation") != 0)
        r->last_ttl = ttl;
    apr_hash_set(r->kv, apr_pstrdup(pe_tp, key), APR_HASH_KEY_STRING, apr_pstrmemdup(pe_tp, val, len));
    return APR_SUCCESS;
}

/* The generation memcached holds, 0 when none. */
static apr_uint64_t remote_gen(remote_t *r)
{
    const char *v = apr_hash_get(r->kv, "pe:v1:cache-generation", APR_HASH_KEY_STRING);

    return v ? (apr_uint64_t)apr_atoi64(v) : 0;
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

    remote_init(&r);
    pe_cache_set_remote(c, rget, rmget, rset, &r);
    /* a remote miss is a miss (shared memory is not asked) */
    ck_assert_int_eq(pe_cache_get(c, pe_tp, "pe:v1:response:k", now, &v, &n, &t), APR_NOTFOUND);
    /* a set goes to the remote tier only */
    ck_assert_int_eq(pe_cache_set(c, "pe:v1:response:k", "remote", 6, apr_time_from_msec(1500), now, &t), APR_SUCCESS);
    ck_assert_int_eq(t, PE_CACHE_REMOTE);
    ck_assert_uint_eq(r.last_ttl, 2);
    /* a hit in step with memcached is one round trip: the entry and the generation in one multi-get */
    r.gets = r.mgets = r.sets = 0;
    ck_assert_int_eq(pe_cache_get(c, pe_tp, "pe:v1:response:k", now, &v, &n, &t), APR_SUCCESS);
    ck_assert_int_eq(t, PE_CACHE_REMOTE);
    ck_assert_str_eq(v, "remote");
    ck_assert_int_eq(r.mgets, 1);
    ck_assert_int_eq(r.gets, 0);
    ck_assert_int_eq(r.sets, 0);
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

/* A clear on one node: every process of it (a forked child) and every node sharing the remote
 * tier (another pe_cache_t on the same fake) miss at once; nothing is flushed remotely. */
START_TEST(test_clear_generation)
{
    pe_cache_t *a = make(16, 64), *b = make(16, 64);
    remote_t r;
    apr_time_t now = apr_time_now();
    apr_uint64_t g0;
    char *v;
    apr_size_t n;
    pe_cache_tier_e t;
    int remote = -1, status;
    pid_t pid;

    remote_init(&r);
    pe_cache_set_remote(a, rget, rmget, rset, &r);
    pe_cache_set_remote(b, rget, rmget, rset, &r);
    apr_hash_set(r.kv, "rate:other", APR_HASH_KEY_STRING, "7"); /* someone else's data */
    /* both nodes agree on one generation: what a stores, b finds */
    ck_assert_int_eq(pe_cache_get(a, pe_tp, "pe:v1:response:q", now, &v, &n, NULL), APR_NOTFOUND);
    ck_assert_int_eq(pe_cache_set(a, "pe:v1:response:q", "answer", 6, apr_time_from_sec(60), now, NULL), APR_SUCCESS);
    ck_assert_int_eq(pe_cache_get(b, pe_tp, "pe:v1:response:q", now, &v, &n, &t), APR_SUCCESS);
    ck_assert_str_eq(v, "answer");
    g0 = pe_cache_generation(a);
    ck_assert_uint_eq(pe_cache_generation(b), g0);
    ck_assert_uint_eq(remote_gen(&r), g0);
    /* the clear on a */
    ck_assert_int_eq(pe_cache_clear(a, pe_tp, now, &remote), APR_SUCCESS);
    ck_assert_int_eq(remote, 1);
    ck_assert_uint_gt(pe_cache_generation(a), g0);
    ck_assert_uint_eq(remote_gen(&r), pe_cache_generation(a));
    /* a forked process of a misses */
    pid = fork();
    if (pid == 0)
        _exit(pe_cache_get(a, pe_tp, "pe:v1:response:q", now, &v, &n, NULL) == APR_NOTFOUND ? 0 : 1);
    waitpid(pid, &status, 0);
    ck_assert_int_eq(WEXITSTATUS(status), 0);
    /* b still has the old generation: its one multi-get finds the old entry with the new
     * generation beside it, so b takes the generation and misses */
    ck_assert_uint_eq(pe_cache_generation(b), g0);
    r.gets = r.mgets = r.sets = 0;
    ck_assert_int_eq(pe_cache_get(b, pe_tp, "pe:v1:response:q", now, &v, &n, NULL), APR_NOTFOUND);
    ck_assert_uint_eq(pe_cache_generation(b), pe_cache_generation(a));
    ck_assert_int_eq(r.mgets, 1);
    ck_assert_int_eq(r.gets, 0);
    ck_assert_int_eq(r.sets, 0);
    /* nothing else in memcached was touched; the old entry is still there, never found again */
    ck_assert_str_eq(apr_hash_get(r.kv, "rate:other", APR_HASH_KEY_STRING), "7");
    ck_assert_ptr_nonnull(apr_hash_get(r.kv, apr_psprintf(pe_tp, "pe:v1:response:q:%" APR_UINT64_T_HEX_FMT, g0),
                                       APR_HASH_KEY_STRING));
    /* new entries are shared again */
    ck_assert_int_eq(pe_cache_set(b, "pe:v1:response:q", "fresh", 5, apr_time_from_sec(60), now, NULL), APR_SUCCESS);
    ck_assert_int_eq(pe_cache_get(a, pe_tp, "pe:v1:response:q", now, &v, &n, NULL), APR_SUCCESS);
    ck_assert_str_eq(v, "fresh");
}
END_TEST

/* Without a remote tier: the shared-memory entries are dropped and the generation moves on. */
START_TEST(test_clear_shm_only)
{
    pe_cache_t *c = make(16, 64);
    apr_time_t now = apr_time_now();
    apr_uint64_t g0 = pe_cache_generation(c);
    char *v;
    apr_size_t n;
    int remote = -1;

    ck_assert_int_eq(pe_cache_set(c, "pe:v1:research:x", "r", 1, apr_time_from_sec(60), now, NULL), APR_SUCCESS);
    ck_assert_int_eq(pe_cache_get(c, pe_tp, "pe:v1:research:x", now, &v, &n, NULL), APR_SUCCESS);
    ck_assert_int_eq(pe_cache_clear(c, pe_tp, now, &remote), APR_SUCCESS);
    ck_assert_int_eq(remote, 0);
    ck_assert_uint_gt(pe_cache_generation(c), g0);
    ck_assert_int_eq(pe_cache_get(c, pe_tp, "pe:v1:research:x", now, &v, &n, NULL), APR_NOTFOUND);
    /* a clock behind the generation still moves it forward */
    g0 = pe_cache_generation(c);
    ck_assert_int_eq(pe_cache_clear(c, pe_tp, 5, NULL), APR_SUCCESS);
    ck_assert_uint_eq(pe_cache_generation(c), g0 + 1);
}
END_TEST

/* Restarts: a new segment takes memcached's generation (the cache survives an httpd restart);
 * a memcached that lost everything gets the node's; a clear that could not reach memcached is
 * written there at the node's next lookup, and nothing goes back to an older generation. */
START_TEST(test_generation_restarts)
{
    pe_cache_t *a = make(16, 64), *a2, *b;
    remote_t r;
    apr_time_t now = apr_time_now();
    apr_uint64_t g1, g2;
    char *v;
    apr_size_t n;

    remote_init(&r);
    pe_cache_set_remote(a, rget, rmget, rset, &r);
    ck_assert_int_eq(pe_cache_get(a, pe_tp, "pe:v1:response:k", now, &v, &n, NULL), APR_NOTFOUND);
    ck_assert_int_eq(pe_cache_clear(a, pe_tp, now + 1000000, NULL), APR_SUCCESS);
    g1 = pe_cache_generation(a);
    ck_assert_int_eq(pe_cache_set(a, "pe:v1:response:k", "kept", 4, apr_time_from_sec(60), now, NULL), APR_SUCCESS);
    /* httpd restarted: a new segment, seeded from a clock now behind memcached's generation */
    a2 = make(16, 64);
    pe_cache_set_remote(a2, rget, rmget, rset, &r);
    ck_assert_int_eq(pe_cache_get(a2, pe_tp, "pe:v1:response:k", now, &v, &n, NULL), APR_SUCCESS);
    ck_assert_str_eq(v, "kept");
    ck_assert_uint_eq(pe_cache_generation(a2), g1);
    /* memcached down during a clear: the node is cleared, 503 for the caller */
    r.get_rv = r.set_rv = APR_TIMEUP;
    ck_assert_int_ne(pe_cache_clear(a2, pe_tp, now, NULL), APR_SUCCESS);
    g2 = pe_cache_generation(a2);
    ck_assert_uint_gt(g2, g1);
    ck_assert_uint_eq(remote_gen(&r), g1);
    /* memcached back: the node's next lookup writes its generation; the old entry is not served */
    r.get_rv = r.set_rv = APR_SUCCESS;
    ck_assert_int_eq(pe_cache_get(a2, pe_tp, "pe:v1:response:k", now, &v, &n, NULL), APR_NOTFOUND);
    ck_assert_uint_eq(remote_gen(&r), g2);
    /* memcached restarted (empty): a new node cannot take it back to an older generation */
    r.kv = apr_hash_make(pe_tp);
    ck_assert_int_eq(pe_cache_get(a2, pe_tp, "pe:v1:response:k", now, &v, &n, NULL), APR_NOTFOUND);
    ck_assert_int_eq(pe_cache_set(a2, "pe:v1:response:k", "v2", 2, apr_time_from_sec(60), now, NULL), APR_SUCCESS);
    ck_assert_int_eq(pe_cache_get(a2, pe_tp, "pe:v1:response:k", now, &v, &n, NULL), APR_SUCCESS);
    ck_assert_uint_eq(remote_gen(&r), g2);
    b = make(16, 64);
    pe_cache_set_remote(b, rget, rmget, rset, &r);
    ck_assert_int_eq(pe_cache_get(b, pe_tp, "pe:v1:response:k", now, &v, &n, NULL), APR_SUCCESS);
    ck_assert_str_eq(v, "v2");
    ck_assert_uint_eq(pe_cache_generation(b), g2);
    /* a value that is not a number is treated as absent and replaced */
    apr_hash_set(r.kv, "pe:v1:cache-generation", APR_HASH_KEY_STRING, "junk");
    ck_assert_int_eq(pe_cache_get(b, pe_tp, "pe:v1:response:k", now, &v, &n, NULL), APR_SUCCESS);
    ck_assert_uint_eq(remote_gen(&r), g2);
    /* a lower one (written by a node that had not seen the clear) is raised back; the entry stands */
    apr_hash_set(r.kv, "pe:v1:cache-generation", APR_HASH_KEY_STRING, apr_psprintf(pe_tp, "%" APR_UINT64_T_FMT, g1));
    r.sets = 0;
    ck_assert_int_eq(pe_cache_get(b, pe_tp, "pe:v1:response:k", now, &v, &n, NULL), APR_SUCCESS);
    ck_assert_str_eq(v, "v2");
    ck_assert_int_eq(r.sets, 1);
    ck_assert_uint_eq(remote_gen(&r), g2);
    ck_assert_uint_eq(pe_cache_generation(b), g2);
    /* the multi-get fails: shared memory answers (under the node's generation), nothing else is asked */
    r.get_rv = APR_TIMEUP;
    r.gets = r.mgets = r.sets = 0;
    ck_assert_int_eq(pe_cache_get(b, pe_tp, "pe:v1:response:k", now, &v, &n, NULL), APR_NOTFOUND);
    ck_assert_int_eq(r.mgets, 1);
    ck_assert_int_eq(r.gets + r.sets, 0);
    ck_assert_uint_eq(pe_cache_generation(b), g2);
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
    tcase_add_test(tc, test_clear_generation);
    tcase_add_test(tc, test_clear_shm_only);
    tcase_add_test(tc, test_generation_restarts);
    tcase_add_test(tc, reply_pack_round_trip);
    suite_add_tcase(s, tc);
    return s;
}
