/*
 * pe_cache.c: the two-tier response cache (see pe_cache.h). The shared-memory tier stores each
 * value in one pe_shm slot: a 4-byte length, then the bytes. The generation (what a clear
 * changes) lives in a small segment of its own, read and changed with atomic operations.
 */
#include "pe_cache.h"

#include <apr_strings.h>
#include "pe_logno.h"
#include "pe_shm.h"

#include <apr_atomic.h>
#include <apr_shm.h>
#include <stdlib.h>
#include <string.h>

/* The memcached key of the generation (not itself mixed with a generation). */
#define PE_CACHE_GEN_KEY "pe:v1:cache-generation"

/* What this node knows of memcached's generation. */
#define GEN_FRESH 2  /* not read since the segment was made: take memcached's, whatever it is */
#define GEN_BEHIND 1 /* a clear was not written to memcached: the higher of the two wins */
#define GEN_SYNCED 0

/* The generation, in shared memory (every child of the node reads the same one). */
typedef struct pe_cache_gen_t {
    apr_uint64_t gen;   /* mixed into every key */
    apr_uint32_t state; /* GEN_* */
    apr_uint32_t pad;
} pe_cache_gen_t;

struct pe_cache_t {
    pe_cache_gen_t *g;      /* in its own segment */
    pe_shm_t *shm;          /* NULL: no shared-memory tier */
    apr_size_t entry_size;  /* largest value in shm */
    pe_cache_remote_get_fn *rget;
    pe_cache_remote_mget_fn *rmget;
    pe_cache_remote_set_fn *rset;
    void *rbaton;
    volatile apr_uint32_t hits, misses, remote_errors, shm_sets, remote_sets;
};

#define HDR 8 /* length (4 bytes) + padding */

/* Make the cache and its segment. */
apr_status_t pe_cache_create(apr_pool_t *pconf, apr_uint32_t entries, apr_size_t entry_size,
                             apr_global_mutex_t *mutex, pe_cache_t **out)
{
    pe_cache_t *c = apr_pcalloc(pconf, sizeof(*c));
    apr_shm_t *seg;
    apr_status_t rv;

    c->entry_size = entry_size;
    if ((rv = apr_shm_create(&seg, sizeof(pe_cache_gen_t), NULL, pconf)) != APR_SUCCESS)
        return rv;
    c->g = apr_shm_baseaddr_get(seg);
    /* NB: seeded from the clock, so a generation once used is not used again by a later segment
     * (memcached keeps its entries across an httpd restart); memcached's own, once read, wins. */
    c->g->gen = (apr_uint64_t)apr_time_now();
    c->g->state = GEN_FRESH;
    if (entries > 0 && entry_size > 0) {
        if (entry_size + HDR > PE_SHM_VALUE_MAX)
            return APR_EINVAL;
        if ((rv = pe_shm_create(pconf, entries, entry_size + HDR, mutex, &c->shm)) != APR_SUCCESS)
            return rv;
        pe_shm_set_name(c->shm, "response cache", "fewer answers are served from it; raise PECacheShmEntries");
    }
    *out = c;
    return APR_SUCCESS;
}

/* Use this child's handle of the global mutex. */
void pe_cache_mutex_set(pe_cache_t *c, apr_global_mutex_t *mutex)
{
    if (c->shm)
        pe_shm_mutex_set(c->shm, mutex);
}

/* Plug in (or remove) the remote tier. */
void pe_cache_set_remote(pe_cache_t *c, pe_cache_remote_get_fn *get, pe_cache_remote_mget_fn *mget,
                         pe_cache_remote_set_fn *set, void *baton)
{
    c->rget = get && mget && set ? get : NULL;
    c->rmget = c->rget ? mget : NULL;
    c->rset = c->rget ? set : NULL;
    c->rbaton = baton;
}

/* What a shm get takes out. */
typedef struct shm_take_t {
    apr_pool_t *p;
    char *val;
    apr_size_t len;
} shm_take_t;

/* Under the table lock: copy the value out (its length first); the slot is kept as it is. */
static int shm_take_cb(void *baton, void *value, apr_size_t value_size, int created, apr_time_t now,
                       apr_time_t *expires)
{
    shm_take_t *t = baton;
    apr_uint32_t n;

    memcpy(&n, value, sizeof(n));
    if (n == 0 || n > value_size - HDR)
        return PE_SHM_KEEP;
    /* NB: r->pool is this process's own memory, not the segment's */
    t->val = apr_palloc(t->p, (apr_size_t)n + 1);
    memcpy(t->val, (const char *)value + HDR, n);
    t->val[n] = '\0';
    t->len = n;
    return PE_SHM_KEEP;
}

/* Read from shared memory. */
static apr_status_t shm_get(pe_cache_t *c, apr_pool_t *p, const char *key, apr_time_t now, char **val,
                            apr_size_t *len)
{
    shm_take_t t;
    apr_status_t rv;

    if (!c->shm)
        return APR_NOTFOUND;
    t.p = p;
    t.val = NULL;
    t.len = 0;
    /* NB: only the value's own bytes are copied, not the whole entry area (PECacheShmEntrySize). */
    if ((rv = pe_shm_update(c->shm, key, -1, now, 0, PE_SHM_NOCREATE, shm_take_cb, &t)) != APR_SUCCESS)
        return rv;
    if (!t.val)
        return APR_NOTFOUND; /* an empty or damaged slot */
    *val = t.val;
    *len = t.len;
    return APR_SUCCESS;
}

/* What a shm set writes. */
typedef struct shm_put_t {
    const void *data;
    apr_uint32_t len;
    apr_interval_time_t ttl;
} shm_put_t;

/* Under the table lock: copy the value in and renew the expiry. */
static int shm_put_cb(void *baton, void *value, apr_size_t value_size, int created, apr_time_t now,
                      apr_time_t *expires)
{
    shm_put_t *w = baton;

    memcpy(value, &w->len, sizeof(w->len));
    memcpy((char *)value + HDR, w->data, w->len);
    *expires = now + w->ttl;
    return PE_SHM_KEEP;
}

/* Write to shared memory. */
static apr_status_t shm_set(pe_cache_t *c, const char *key, const void *val, apr_size_t len, apr_interval_time_t ttl,
                            apr_time_t now)
{
    shm_put_t w;

    if (!c->shm)
        return APR_NOTFOUND;
    if (len == 0 || len > c->entry_size)
        return APR_ENOSPC;
    w.data = val;
    w.len = (apr_uint32_t)len;
    w.ttl = ttl;
    /* NB: the value's length is written before its bytes, so the rest of the area need not be cleared */
    return pe_shm_update(c->shm, key, -1, now, ttl, PE_SHM_NOZERO, shm_put_cb, &w);
}

/* ---- the generation ---- */

/* The key as stored: the caller's key and the generation. */
static const char *gen_key(apr_pool_t *p, const char *key, apr_uint64_t gen)
{
    return apr_psprintf(p, "%s:%" APR_UINT64_T_HEX_FMT, key, gen);
}

static apr_uint64_t gen_load(pe_cache_t *c)
{
    return __atomic_load_n(&c->g->gen, __ATOMIC_ACQUIRE);
}

/* Raise the generation to at least v (never lower it). */
static void gen_raise(pe_cache_t *c, apr_uint64_t v)
{
    apr_uint64_t cur = gen_load(c);

    while (cur < v && !__atomic_compare_exchange_n(&c->g->gen, &cur, v, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
        ;
}

/* Write the generation to memcached (no expiry). */
static apr_status_t gen_push(pe_cache_t *c, apr_uint64_t v)
{
    char buf[24];
    int n = apr_snprintf(buf, sizeof(buf), "%" APR_UINT64_T_FMT, v);

    return c->rset(c->rbaton, PE_CACHE_GEN_KEY, buf, (apr_size_t)n, 0);
}

/* A generation as memcached holds it: APR_SUCCESS with *v, or APR_NOTFOUND (absent or not a number). */
static apr_status_t gen_parse(const char *val, apr_size_t len, apr_uint64_t *v)
{
    char *end = NULL;

    if (!val || !len || len > 20 || val[0] < '0' || val[0] > '9')
        return APR_NOTFOUND;
    *v = (apr_uint64_t)strtoull(val, &end, 10);
    return end && *end == '\0' && *v ? APR_SUCCESS : APR_NOTFOUND;
}

/* Read memcached's generation: APR_SUCCESS with *v, APR_NOTFOUND (absent or not a number), or an error. */
static apr_status_t gen_fetch(pe_cache_t *c, apr_pool_t *p, apr_uint64_t *v)
{
    char *val = NULL;
    apr_size_t len = 0;
    apr_status_t rv = c->rget(c->rbaton, p, PE_CACHE_GEN_KEY, &val, &len);

    return rv == APR_SUCCESS ? gen_parse(val, len, v) : rv;
}

/*
 * Bring this node's generation and memcached's in step, given what memcached answered (rv, and r
 * when rv is APR_SUCCESS) while the node's state was st; *out: the generation to use now.
 * Never makes either go down, except that a node that has not read memcached's since its segment
 * was made (GEN_FRESH) takes memcached's as it is: the entries there are the cluster's.
 * An error of memcached leaves the state as it was (asked again at the next use).
 */
static apr_status_t gen_apply(pe_cache_t *c, apr_uint32_t st, apr_status_t rv, apr_uint64_t r, apr_uint64_t *out)
{
    apr_uint64_t l = gen_load(c);

    if (rv != APR_SUCCESS && rv != APR_NOTFOUND) {
        *out = l;
        return rv;
    }
    if (rv == APR_SUCCESS && st == GEN_FRESH && r < l)
        __atomic_compare_exchange_n(&c->g->gen, &l, r, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE);
    else if (rv == APR_SUCCESS)
        gen_raise(c, r);
    l = gen_load(c);
    if (rv == APR_NOTFOUND || r < l) {
        /* absent (memcached restarted or evicted it), or behind this node's: this node's wins */
        if ((rv = gen_push(c, l)) != APR_SUCCESS) {
            *out = l;
            return rv;
        }
    }
    /* NB: a clear that raced with this keeps its GEN_BEHIND (the CAS fails) and is pushed next time */
    __atomic_compare_exchange_n(&c->g->state, &st, GEN_SYNCED, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE);
    *out = l;
    return APR_SUCCESS;
}

/* Read memcached's generation and bring this node's in step (gen_apply). */
static apr_status_t gen_sync(pe_cache_t *c, apr_pool_t *p, apr_uint64_t *out)
{
    apr_uint32_t st = __atomic_load_n(&c->g->state, __ATOMIC_ACQUIRE);
    apr_uint64_t r = 0;
    apr_status_t rv = gen_fetch(c, p, &r);

    return gen_apply(c, st, rv, r, out);
}

/* The generation for a lookup: in step with memcached first when it is not known to be. */
static apr_uint64_t gen_current(pe_cache_t *c, apr_pool_t *p)
{
    apr_uint64_t g;

    if (c->rget && __atomic_load_n(&c->g->state, __ATOMIC_ACQUIRE) != GEN_SYNCED &&
        gen_sync(c, p, &g) == APR_SUCCESS)
        return g;
    return gen_load(c);
}

/* Clear: a new generation (here and in memcached), the shared-memory tier emptied. */
apr_status_t pe_cache_clear(pe_cache_t *c, apr_pool_t *p, apr_time_t now, int *remote)
{
    apr_uint64_t l = gen_load(c), r = 0, v;
    apr_status_t rv;

    if (remote)
        *remote = c->rget != NULL;
    gen_raise(c, (apr_uint64_t)now > l + 1 ? (apr_uint64_t)now : l + 1);
    if (c->shm && (rv = pe_shm_clear(c->shm)) != APR_SUCCESS)
        return rv;
    if (!c->rget)
        return APR_SUCCESS;
    __atomic_store_n(&c->g->state, GEN_BEHIND, __ATOMIC_RELEASE);
    rv = gen_fetch(c, p, &r);
    if (rv != APR_SUCCESS && rv != APR_NOTFOUND)
        return rv;
    if (rv == APR_SUCCESS)
        gen_raise(c, r + 1); /* another node's clear went further: go past it */
    v = gen_load(c);
    if ((rv = gen_push(c, v)) != APR_SUCCESS)
        return rv;
    /* NB: a later clear in another child may have raised it again; that one pushes its own */
    __atomic_store_n(&c->g->state, GEN_SYNCED, __ATOMIC_RELEASE);
    return APR_SUCCESS;
}

/* This node's generation. */
apr_uint64_t pe_cache_generation(pe_cache_t *c)
{
    return gen_load(c);
}

/*
 * The remote lookup: the entry under generation g and memcached's generation in one multi-get
 * (one round trip with one server). A higher generation there means another node cleared: this
 * node takes it and the lookup is a miss (the entry, if any, was under the old key). A lower or
 * missing one is repaired (this node's is written) and the entry stands.
 */
static apr_status_t remote_get(pe_cache_t *c, apr_pool_t *p, const char *k, apr_uint64_t g, char **val,
                               apr_size_t *len)
{
    const char *keys[2] = {k, PE_CACHE_GEN_KEY};
    char *vals[2];
    apr_size_t lens[2];
    apr_status_t rvs[2], rv;
    apr_uint32_t st = __atomic_load_n(&c->g->state, __ATOMIC_ACQUIRE);
    apr_uint64_t r = 0, now_g;

    /* NB: without memcached's generation the entry cannot be trusted: any error is the tier's */
    if ((rv = c->rmget(c->rbaton, p, 2, keys, vals, lens, rvs)) != APR_SUCCESS)
        return rv;
    rv = rvs[1] == APR_SUCCESS ? gen_parse(vals[1], lens[1], &r) : rvs[1];
    if ((rv = gen_apply(c, st, rv, r, &now_g)) != APR_SUCCESS)
        return rv;
    if (rvs[0] != APR_SUCCESS || now_g != g)
        return APR_NOTFOUND;
    *val = vals[0];
    *len = lens[0];
    return APR_SUCCESS;
}

/* Look a key up: remote first, shared memory when the remote tier fails. */
apr_status_t pe_cache_get(pe_cache_t *c, apr_pool_t *p, const char *key, apr_time_t now, char **val, apr_size_t *len,
                          pe_cache_tier_e *tier)
{
    apr_uint64_t g = gen_current(c, p);
    const char *k = gen_key(p, key, g);
    apr_status_t rv;

    if (tier)
        *tier = PE_CACHE_NONE;
    if (c->rmget) {
        rv = remote_get(c, p, k, g, val, len);
        if (rv == APR_SUCCESS) {
            apr_atomic_inc32(&c->hits);
            if (tier)
                *tier = PE_CACHE_REMOTE;
            return APR_SUCCESS;
        }
        if (rv == APR_NOTFOUND) {
            apr_atomic_inc32(&c->misses);
            return APR_NOTFOUND;
        }
        apr_atomic_inc32(&c->remote_errors);
        /* a higher generation seen before the error (another node's clear) holds here too */
        if (gen_load(c) != g)
            k = gen_key(p, key, gen_load(c));
    }
    rv = shm_get(c, p, k, now, val, len);
    if (rv == APR_SUCCESS) {
        apr_atomic_inc32(&c->hits);
        if (tier)
            *tier = PE_CACHE_SHM;
        return APR_SUCCESS;
    }
    apr_atomic_inc32(&c->misses);
    return APR_NOTFOUND;
}

/* Store: remote first, shared memory when there is no remote tier or it fails. */
apr_status_t pe_cache_set(pe_cache_t *c, const char *key, const void *val, apr_size_t len, apr_interval_time_t ttl,
                          apr_time_t now, pe_cache_tier_e *tier)
{
    apr_status_t rv = APR_NOTFOUND;
    char kbuf[256];

    /* NB: no pool here: the stored key is made on the stack (the caller's key is bounded) */
    if (strlen(key) + 18 > sizeof(kbuf)) /* ':' + 16 hex + NUL */
        return APR_EINVAL;
    apr_snprintf(kbuf, sizeof(kbuf), "%s:%" APR_UINT64_T_HEX_FMT, key, gen_load(c));
    key = kbuf;

    if (tier)
        *tier = PE_CACHE_NONE;
    if (c->rset) {
        apr_int64_t secs = apr_time_sec(ttl + APR_USEC_PER_SEC - 1);

        rv = c->rset(c->rbaton, key, val, len, (apr_uint32_t)(secs < 1 ? 1 : secs > 2592000 ? 2592000 : secs));
        if (rv == APR_SUCCESS) {
            apr_atomic_inc32(&c->remote_sets);
            if (tier)
                *tier = PE_CACHE_REMOTE;
            return APR_SUCCESS;
        }
        apr_atomic_inc32(&c->remote_errors);
    }
    if (c->shm) {
        rv = shm_set(c, key, val, len, ttl, now);
        if (rv == APR_SUCCESS) {
            apr_atomic_inc32(&c->shm_sets);
            if (tier)
                *tier = PE_CACHE_SHM;
        }
    }
    return rv;
}

/* Copy the counters. */
void pe_cache_stats(pe_cache_t *c, pe_cache_stats_t *st)
{
    st->hits = apr_atomic_read32(&c->hits);
    st->misses = apr_atomic_read32(&c->misses);
    st->remote_errors = apr_atomic_read32(&c->remote_errors);
    st->shm_sets = apr_atomic_read32(&c->shm_sets);
    st->remote_sets = apr_atomic_read32(&c->remote_sets);
}

/* ---- cached completions ---- */

char *pe_cache_reply_pack(apr_pool_t *p, const char *body, apr_size_t blen, const char *response,
                          apr_int64_t tokens, apr_size_t *len)
{
    apr_size_t rlen = response ? strlen(response) : 0;
    apr_uint64_t t = (apr_uint64_t)tokens;
    unsigned char *out, *o;
    int i;

    if ((apr_uint64_t)rlen > 0xffffffffu)
        return NULL;
    out = apr_palloc(p, PE_CACHE_REPLY_HEAD + rlen + blen + 1);
    memcpy(out, "PEC1", 4);
    out[4] = response ? 1 : 0;
    for (i = 0; i < 8; i++)
        out[5 + i] = (unsigned char)(t >> (8 * i));
    for (i = 0; i < 4; i++)
        out[13 + i] = (unsigned char)((apr_uint64_t)rlen >> (8 * i));
    o = out + PE_CACHE_REPLY_HEAD;
    if (rlen)
        memcpy(o, response, rlen);
    if (blen)
        memcpy(o + rlen, body, blen);
    o[rlen + blen] = '\0';
    *len = PE_CACHE_REPLY_HEAD + rlen + blen;
    return (char *)out;
}

int pe_cache_reply_unpack(apr_pool_t *p, const char *buf, apr_size_t len, const char **body, apr_size_t *blen,
                          const char **response, apr_int64_t *tokens)
{
    const unsigned char *b = (const unsigned char *)buf;
    apr_uint64_t t = 0, rlen = 0;
    int i;

    if (!buf || len < PE_CACHE_REPLY_HEAD || memcmp(buf, "PEC1", 4) != 0 || b[4] > 1)
        return -1;
    for (i = 0; i < 8; i++)
        t |= (apr_uint64_t)b[5 + i] << (8 * i);
    for (i = 0; i < 4; i++)
        rlen |= (apr_uint64_t)b[13 + i] << (8 * i);
    if (rlen > len - PE_CACHE_REPLY_HEAD || (!b[4] && rlen))
        return -1;
    *tokens = (apr_int64_t)t;
    *response = b[4] ? apr_pstrmemdup(p, buf + PE_CACHE_REPLY_HEAD, (apr_size_t)rlen) : NULL;
    *body = buf + PE_CACHE_REPLY_HEAD + rlen;
    *blen = len - PE_CACHE_REPLY_HEAD - (apr_size_t)rlen;
    return 0;
}
