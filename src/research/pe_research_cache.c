/*
 * pe_research_cache.c: the research cache on a shared-memory slot table (pe_shm.h).
 *
 * A slot's value area holds a header (the value's length, 4 bytes, and a check word, 4 bytes) and
 * the value. A read copies the header first to learn the length, then header + value in one copy
 * under the lock (a consistent snapshot), and accepts it only when its header still gives the same
 * length (another process may have replaced the value between the two copies).
 */
#include "pe_research.h"

#include <apr_strings.h>

#include <string.h>

#define RC_HDR 8
#define RC_MAGIC 0x70657263u /* "perc" */

/* What a store writes into the slot under the lock. */
typedef struct rc_put_t {
    const char *val;
    apr_uint32_t len;
    apr_interval_time_t ttl;
} rc_put_t;

/* Header word pair of a value of len bytes. */
static void rc_hdr(unsigned char *h, apr_uint32_t len)
{
    apr_uint32_t check = len ^ RC_MAGIC;

    memcpy(h, &len, 4);
    memcpy(h + 4, &check, 4);
}

/* Under the table lock: write header and value, and the expiry. */
static int rc_put_fn(void *baton, void *value, apr_size_t value_size, int created, apr_time_t now,
                     apr_time_t *expires)
{
    rc_put_t *b = baton;

    if ((apr_size_t)b->len + RC_HDR > value_size)
        return PE_SHM_REMOVE;
    rc_hdr(value, b->len);
    memcpy((unsigned char *)value + RC_HDR, b->val, b->len);
    *expires = now + b->ttl;
    return PE_SHM_KEEP;
}

/* Store a value when it fits. */
static apr_status_t rc_set(void *baton, apr_pool_t *p, const char *key, const char *val, apr_size_t len,
                           apr_interval_time_t ttl)
{
    pe_shm_t *shm = baton;
    rc_put_t b;

    if (!shm || !key || !val || ttl <= 0)
        return APR_EINVAL;
    if (len + RC_HDR > pe_shm_value_size(shm))
        return APR_ENOSPC;
    b.val = val;
    b.len = (apr_uint32_t)len;
    b.ttl = ttl;
    return pe_shm_update(shm, key, -1, apr_time_now(), ttl, 0, rc_put_fn, &b);
}

/* Look a value up; APR_NOTFOUND on a miss or a torn read. */
static apr_status_t rc_get(void *baton, apr_pool_t *p, const char *key, const char **val, apr_size_t *len)
{
    pe_shm_t *shm = baton;
    unsigned char h[RC_HDR], *buf;
    apr_uint32_t n, check;
    apr_time_t now = apr_time_now();
    apr_status_t rv;

    *val = NULL;
    *len = 0;
    if (!shm || !key)
        return APR_EINVAL;
    if ((rv = pe_shm_get(shm, key, -1, now, h, RC_HDR, NULL)) != APR_SUCCESS)
        return rv;
    memcpy(&n, h, 4);
    memcpy(&check, h + 4, 4);
    if ((n ^ RC_MAGIC) != check || (apr_size_t)n + RC_HDR > pe_shm_value_size(shm))
        return APR_NOTFOUND;
    buf = apr_palloc(p, (apr_size_t)n + RC_HDR + 1);
    if ((rv = pe_shm_get(shm, key, -1, now, buf, (apr_size_t)n + RC_HDR, NULL)) != APR_SUCCESS)
        return rv;
    if (memcmp(buf, h, RC_HDR) != 0)
        return APR_NOTFOUND;
    buf[RC_HDR + n] = '\0';
    *val = (const char *)buf + RC_HDR;
    *len = n;
    return APR_SUCCESS;
}

/* Fill a cache interface backed by the table. */
void pe_research_shm_cache(pe_shm_t *shm, pe_research_cache_t *out)
{
    out->get = rc_get;
    out->set = rc_set;
    out->baton = shm;
}
