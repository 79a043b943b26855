/*
 * pe_shm.c: the shared slot table (see pe_shm.h for the model).
 *
 * Segment: [header][bucket heads: nbuckets x uint32][slots: nslots x stride]
 * Links (bucket chains, the free list, the LRU list) are slot index + 1, with 0 meaning none.
 * Every static function whose name starts with tbl_ runs with the lock held; public functions take
 * the lock, call them for a few lines, and release it (critical sections are tagged @CRT).
 */
#include "pe_crypto.h"
#include "pe_logno.h"
#include "pe_shm.h"

#include <apr_general.h>
#include <apr_shm.h>
#include <openssl/evp.h>
#include <stddef.h>
#include <string.h>

#define PE_SHM_MAGIC 0x50454d53u /* "PEMS" */
#define PE_SHM_VERSION 1u
#define NIL 0u

/* Key forms: stored verbatim, or as the SHA-256 digest of a longer key. */
#define KEY_RAW 1
#define KEY_DIGEST 2

/* Interval between two PE50004 (evicting live slots) messages from one process. */
#define EVICT_LOG_INTERVAL apr_time_from_sec(60)

typedef struct shm_hdr_t {
    apr_uint32_t magic;
    apr_uint32_t version;
    apr_uint32_t nslots;
    apr_uint32_t nbuckets; /* a power of two */
    apr_uint32_t value_size;
    apr_uint32_t stride;
    apr_uint32_t free_head; /* free list through slot.next */
    apr_uint32_t lru_head;  /* most recently used */
    apr_uint32_t lru_tail;  /* least recently used */
    apr_uint32_t used;
    apr_uint32_t sweep;     /* next slot index the sweep looks at */
    apr_uint32_t busy;      /* 1 while a holder is inside a critical section */
    apr_uint32_t max_chain; /* longest chain walked by a lookup */
    apr_uint32_t pad;
    apr_uint64_t evictions;
    apr_uint64_t expired;
    apr_uint64_t resets;
    apr_uint64_t sipkey[2]; /* written once at creation, read without the lock */
    apr_uint64_t buckets_off;
    apr_uint64_t slots_off;
    apr_uint64_t bytes;
} shm_hdr_t;

typedef struct shm_slot_t {
    apr_uint64_t hash;
    apr_time_t expires; /* 0: never */
    apr_uint32_t next;  /* bucket chain, or the free list */
    apr_uint32_t lru_prev;
    apr_uint32_t lru_next;
    apr_uint16_t klen;
    unsigned char form; /* 0: free slot, KEY_RAW or KEY_DIGEST */
    unsigned char pad;
    unsigned char key[PE_SHM_KEY_MAX];
    /* value_size bytes of value follow */
} shm_slot_t;

/* The value area starts right after the slot header and must stay 8-byte aligned. */
typedef char shm_slot_aligned[(sizeof(shm_slot_t) % 8 == 0) ? 1 : -1];

struct pe_shm_t {
    apr_shm_t *seg;
    char *base;
    shm_hdr_t *hdr;
    apr_global_mutex_t *mutex;
    apr_time_t evict_logged; /* process-local: when this process last logged PE50004 */
    const char *name;        /* for PE50004: what the table holds, and what a full table costs */
    const char *when_full;
};

/* A key made ready (form, bytes, hash) before the lock is taken. */
typedef struct shm_key_t {
    apr_uint64_t hash;
    apr_uint16_t klen;
    unsigned char form;
    unsigned char bytes[PE_SHM_KEY_MAX];
} shm_key_t;

/* What happened inside a critical section that deserves a message once the lock is released. */
typedef struct shm_events_t {
    int reset;
    apr_uint64_t evictions;
} shm_events_t;

/* Round n up to a multiple of a (a power of two). */
#define ALIGN_UP(n, a) (((n) + ((a)-1)) & ~((apr_size_t)(a)-1))

/* ------------------------------------------------------------------------------------------------- */
/* SipHash-2-4 (Aumasson and Bernstein): a keyed 64-bit hash, so bucket choice cannot be steered.    */

#define ROTL64(x, b) (((x) << (b)) | ((x) >> (64 - (b))))
#define SIPROUND                                                                                                   \
    do {                                                                                                           \
        v0 += v1;                                                                                                  \
        v1 = ROTL64(v1, 13);                                                                                       \
        v1 ^= v0;                                                                                                  \
        v0 = ROTL64(v0, 32);                                                                                       \
        v2 += v3;                                                                                                  \
        v3 = ROTL64(v3, 16);                                                                                       \
        v3 ^= v2;                                                                                                  \
        v0 += v3;                                                                                                  \
        v3 = ROTL64(v3, 21);                                                                                       \
        v3 ^= v0;                                                                                                  \
        v2 += v1;                                                                                                  \
        v1 = ROTL64(v1, 17);                                                                                       \
        v1 ^= v2;                                                                                                  \
        v2 = ROTL64(v2, 32);                                                                                       \
    } while (0)

/* Read 8 bytes little-endian. */
static apr_uint64_t load_le64(const unsigned char *p)
{
    apr_uint64_t v = 0;
    int i;

    for (i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

/* SipHash-2-4 of n bytes under the 128-bit key k. */
static apr_uint64_t siphash24(const apr_uint64_t k[2], const unsigned char *d, apr_size_t n)
{
    apr_uint64_t v0 = k[0] ^ 0x736f6d6570736575ULL, v1 = k[1] ^ 0x646f72616e646f6dULL;
    apr_uint64_t v2 = k[0] ^ 0x6c7967656e657261ULL, v3 = k[1] ^ 0x7465646279746573ULL;
    apr_uint64_t m, b = ((apr_uint64_t)n) << 56;
    apr_size_t i, full = n - n % 8;

    for (i = 0; i < full; i += 8) {
        m = load_le64(d + i);
        v3 ^= m;
        SIPROUND;
        SIPROUND;
        v0 ^= m;
    }
    for (i = 0; i < n % 8; i++)
        b |= ((apr_uint64_t)d[full + i]) << (8 * i);
    v3 ^= b;
    SIPROUND;
    SIPROUND;
    v0 ^= b;
    v2 ^= 0xff;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    return v0 ^ v1 ^ v2 ^ v3;
}

/* ------------------------------------------------------------------------------------------------- */
/* Layout helpers                                                                                    */

/* Slot stride for a value size: header plus value, a multiple of 8. */
static apr_size_t slot_stride(apr_size_t value_size)
{
    return sizeof(shm_slot_t) + ALIGN_UP(value_size, 8);
}

/* Bucket count: the smallest power of two >= nslots. */
static apr_uint32_t bucket_count(apr_uint32_t nslots)
{
    apr_uint32_t n = 1;

    while (n < nslots)
        n <<= 1;
    return n;
}

/* Segment size for nslots slots of value_size bytes; 0 when out of range. */
apr_size_t pe_shm_size(apr_uint32_t nslots, apr_size_t value_size)
{
    apr_size_t hdr, buckets;

    if (nslots < 1 || nslots > PE_SHM_SLOTS_MAX || value_size < 1 || value_size > PE_SHM_VALUE_MAX)
        return 0;
    /* NB: with both bounds above the products stay far below 2^40, so no overflow is possible. */
    hdr = ALIGN_UP(sizeof(shm_hdr_t), 64);
    buckets = ALIGN_UP((apr_size_t)bucket_count(nslots) * sizeof(apr_uint32_t), 64);
    return hdr + buckets + (apr_size_t)nslots * slot_stride(value_size);
}

/* The slot with index i. */
static shm_slot_t *slot_at(const pe_shm_t *shm, apr_uint32_t i)
{
    return (shm_slot_t *)(shm->base + shm->hdr->slots_off + (apr_size_t)i * shm->hdr->stride);
}

/* The value area of a slot. */
static void *slot_value(shm_slot_t *s)
{
    return (char *)s + sizeof(shm_slot_t);
}

/* The bucket head (index + 1) for a hash. */
static apr_uint32_t *bucket_for(const pe_shm_t *shm, apr_uint64_t hash)
{
    apr_uint32_t *b = (apr_uint32_t *)(shm->base + shm->hdr->buckets_off);

    return &b[hash & (shm->hdr->nbuckets - 1)];
}

/* Is a slot past its expiry? */
static int slot_expired(const shm_slot_t *s, apr_time_t now)
{
    return s->expires != 0 && s->expires <= now;
}

/* ------------------------------------------------------------------------------------------------- */
/* Table operations: every tbl_ function runs with the lock held.                                    */

/* Empty the table: every slot free, no chains, no LRU list (the hash key and counters stay). */
static void tbl_clear(pe_shm_t *shm)
{
    shm_hdr_t *h = shm->hdr;
    apr_uint32_t i;

    memset(shm->base + h->buckets_off, 0, (apr_size_t)h->nbuckets * sizeof(apr_uint32_t));
    for (i = 0; i < h->nslots; i++) {
        shm_slot_t *s = slot_at(shm, i);

        memset(s, 0, sizeof(*s));
        s->next = (i + 1 < h->nslots) ? i + 2 : NIL;
    }
    h->free_head = 1;
    h->lru_head = h->lru_tail = NIL;
    h->used = 0;
    h->sweep = 0;
    h->max_chain = 0;
}

/* Take slot i out of the LRU list. */
static void tbl_lru_unlink(pe_shm_t *shm, apr_uint32_t i)
{
    shm_slot_t *s = slot_at(shm, i);

    if (s->lru_prev)
        slot_at(shm, s->lru_prev - 1)->lru_next = s->lru_next;
    else
        shm->hdr->lru_head = s->lru_next;
    if (s->lru_next)
        slot_at(shm, s->lru_next - 1)->lru_prev = s->lru_prev;
    else
        shm->hdr->lru_tail = s->lru_prev;
    s->lru_prev = s->lru_next = NIL;
}

/* Put slot i at the most recently used end. */
static void tbl_lru_push(pe_shm_t *shm, apr_uint32_t i)
{
    shm_slot_t *s = slot_at(shm, i);

    s->lru_prev = NIL;
    s->lru_next = shm->hdr->lru_head;
    if (shm->hdr->lru_head)
        slot_at(shm, shm->hdr->lru_head - 1)->lru_prev = i + 1;
    else
        shm->hdr->lru_tail = i + 1;
    shm->hdr->lru_head = i + 1;
}

/* Mark slot i most recently used. */
static void tbl_lru_touch(pe_shm_t *shm, apr_uint32_t i)
{
    if (shm->hdr->lru_head != i + 1) {
        tbl_lru_unlink(shm, i);
        tbl_lru_push(shm, i);
    }
}

/* Unlink slot i from its bucket chain. */
static void tbl_chain_unlink(pe_shm_t *shm, apr_uint32_t i)
{
    shm_slot_t *s = slot_at(shm, i);
    apr_uint32_t *link = bucket_for(shm, s->hash);

    while (*link != NIL && *link != i + 1)
        link = &slot_at(shm, *link - 1)->next;
    if (*link == i + 1)
        *link = s->next;
}

/* Return an occupied slot i to the free list. */
static void tbl_free(pe_shm_t *shm, apr_uint32_t i)
{
    shm_slot_t *s = slot_at(shm, i);

    tbl_chain_unlink(shm, i);
    tbl_lru_unlink(shm, i);
    s->form = 0;
    s->expires = 0;
    s->next = shm->hdr->free_head;
    shm->hdr->free_head = i + 1;
    shm->hdr->used--;
}

/* Find the live slot for k (index), or -1; expired slots met on the way are reclaimed. */
static long tbl_find(pe_shm_t *shm, const shm_key_t *k, apr_time_t now)
{
    apr_uint32_t cur = *bucket_for(shm, k->hash), walked = 0;

    while (cur != NIL) {
        shm_slot_t *s = slot_at(shm, cur - 1);
        apr_uint32_t next = s->next;

        if (++walked > shm->hdr->max_chain)
            shm->hdr->max_chain = walked;

        if (slot_expired(s, now)) {
            tbl_free(shm, cur - 1);
            shm->hdr->expired++;
        }
        else if (s->hash == k->hash && s->form == k->form && s->klen == k->klen &&
                 memcmp(s->key, k->bytes, k->klen) == 0) {
            return (long)(cur - 1);
        }
        cur = next;
    }
    return -1;
}

/* Pick a slot to reuse when none is free: expired first (LRU end, then the sweep), else the LRU. */
static apr_uint32_t tbl_victim(pe_shm_t *shm, apr_time_t now)
{
    shm_hdr_t *h = shm->hdr;
    apr_uint32_t cur = h->lru_tail, n;

    for (n = 0; cur != NIL && n < PE_SHM_SCAN; n++) {
        shm_slot_t *s = slot_at(shm, cur - 1);

        if (slot_expired(s, now)) {
            h->expired++;
            return cur - 1;
        }
        cur = s->lru_prev;
    }
    for (n = 0; n < PE_SHM_SCAN && n < h->nslots; n++) {
        apr_uint32_t i = h->sweep;

        h->sweep = (i + 1 < h->nslots) ? i + 1 : 0;
        if (slot_at(shm, i)->form != 0 && slot_expired(slot_at(shm, i), now)) {
            h->expired++;
            return i;
        }
    }
    h->evictions++;
    return h->lru_tail - 1; /* NB: the table is full, so the LRU list is not empty */
}

/* Create the slot for k: zeroed value (unless nozero), expiry now + ttl; evicts when the table is full. */
static apr_uint32_t tbl_insert(pe_shm_t *shm, const shm_key_t *k, apr_time_t now, apr_interval_time_t ttl, int nozero)
{
    shm_hdr_t *h = shm->hdr;
    apr_uint32_t i, *bucket;
    shm_slot_t *s;

    if (h->free_head == NIL)
        tbl_free(shm, tbl_victim(shm, now));
    i = h->free_head - 1;
    s = slot_at(shm, i);
    h->free_head = s->next;
    h->used++;

    s->hash = k->hash;
    s->expires = ttl > 0 ? now + ttl : 0;
    s->form = k->form;
    s->klen = k->klen;
    memcpy(s->key, k->bytes, k->klen);
    if (!nozero)
        memset(slot_value(s), 0, h->value_size);
    bucket = bucket_for(shm, k->hash);
    s->next = *bucket;
    *bucket = i + 1;
    tbl_lru_push(shm, i);
    return i;
}

/* ------------------------------------------------------------------------------------------------- */
/* Locking                                                                                           */

/* Take the lock; clear the table if a previous holder died inside a critical section. */
static apr_status_t shm_lock(pe_shm_t *shm, shm_events_t *ev)
{
    apr_status_t rv = apr_global_mutex_lock(shm->mutex);

    if (rv != APR_SUCCESS) {
        pe_clog(PE_LOG_ERR, rv, PE_LOGNO(50002) "shm: cannot take the shared table lock");
        return rv;
    }
    ev->reset = 0;
    ev->evictions = shm->hdr->evictions;
    if (__atomic_load_n(&shm->hdr->busy, __ATOMIC_ACQUIRE)) {
        tbl_clear(shm);
        shm->hdr->resets++;
        ev->reset = 1;
    }
    /* NB: busy is set before, and cleared after, every store of the section (compiler barriers). */
    __atomic_store_n(&shm->hdr->busy, 1, __ATOMIC_SEQ_CST);
    return APR_SUCCESS;
}

/* Release the lock, then log what the section noticed (never log with the lock held). */
static void shm_unlock(pe_shm_t *shm, const shm_events_t *ev, apr_time_t now)
{
    apr_uint64_t evicted = shm->hdr->evictions - ev->evictions;
    apr_status_t rv;

    __atomic_store_n(&shm->hdr->busy, 0, __ATOMIC_SEQ_CST);
    rv = apr_global_mutex_unlock(shm->mutex);
    if (rv != APR_SUCCESS)
        pe_clog(PE_LOG_ERR, rv, PE_LOGNO(50003) "shm: cannot release the shared table lock");
    if (ev->reset)
        pe_clog(PE_LOG_WARNING, 0,
                PE_LOGNO(50001) "shm: a process died while updating the shared table; table cleared, "
                                "counters and blocks restart from zero");
    if (evicted && (shm->evict_logged == 0 || now - shm->evict_logged >= EVICT_LOG_INTERVAL)) {
        shm->evict_logged = now;
        pe_clog(PE_LOG_WARNING, 0, PE_LOGNO(50004) "shm: %s full (%u slots), evicting the least recently used live "
                "entries; %s", shm->name ? shm->name : "shared table", (unsigned)shm->hdr->nslots,
                shm->when_full ? shm->when_full : "raise the slot count");
    }
}

/* ------------------------------------------------------------------------------------------------- */
/* Public API                                                                                        */

/* Name the table for PE50004. */
void pe_shm_set_name(pe_shm_t *shm, const char *name, const char *when_full)
{
    if (!shm)
        return;
    shm->name = name;
    shm->when_full = when_full;
}

/* Normalise a key (verbatim or digest) and hash it; runs before the lock. */
static apr_status_t key_prepare(const pe_shm_t *shm, const void *key, apr_ssize_t klen, shm_key_t *k)
{
    apr_size_t n;
    unsigned char buf[1 + PE_SHM_KEY_MAX];

    if (!shm || !key)
        return APR_EINVAL;
    n = klen < 0 ? strlen(key) : (apr_size_t)klen;
    if (n <= PE_SHM_KEY_MAX) {
        k->form = KEY_RAW;
        k->klen = (apr_uint16_t)n;
        memcpy(k->bytes, key, n);
    }
    else {
        unsigned int dlen = 0;

        if (!EVP_Digest(key, n, k->bytes, &dlen, pe_sha256(), NULL) || dlen != 32)
            return APR_EGENERAL;
        k->form = KEY_DIGEST;
        k->klen = 32;
    }
    /* the form is hashed too, so a digest never collides by design with a verbatim key */
    buf[0] = k->form;
    memcpy(buf + 1, k->bytes, k->klen);
    k->hash = siphash24(shm->hdr->sipkey, buf, (apr_size_t)k->klen + 1);
    return APR_SUCCESS;
}

/* Create the segment and an empty table in it. */
apr_status_t pe_shm_create(apr_pool_t *p, apr_uint32_t nslots, apr_size_t value_size, apr_global_mutex_t *mutex,
                           pe_shm_t **shm)
{
    apr_size_t bytes = pe_shm_size(nslots, value_size);
    unsigned char seed[16];
    pe_shm_t *t;
    shm_hdr_t *h;
    apr_status_t rv;

    *shm = NULL;
    if (!bytes || !mutex)
        return APR_EINVAL;
    t = apr_pcalloc(p, sizeof(*t));
    rv = apr_shm_create(&t->seg, bytes, NULL, p);
    if (rv != APR_SUCCESS)
        return rv;
    if (apr_shm_size_get(t->seg) < bytes)
        return APR_ENOMEM;
    t->base = apr_shm_baseaddr_get(t->seg);
    t->hdr = h = (shm_hdr_t *)t->base;
    t->mutex = mutex;
    memset(h, 0, sizeof(*h));
    rv = apr_generate_random_bytes(seed, sizeof(seed));
    if (rv != APR_SUCCESS)
        return rv;
    h->sipkey[0] = load_le64(seed);
    h->sipkey[1] = load_le64(seed + 8);
    h->magic = PE_SHM_MAGIC;
    h->version = PE_SHM_VERSION;
    h->nslots = nslots;
    h->nbuckets = bucket_count(nslots);
    h->value_size = (apr_uint32_t)ALIGN_UP(value_size, 8);
    h->stride = (apr_uint32_t)slot_stride(value_size);
    h->buckets_off = ALIGN_UP(sizeof(shm_hdr_t), 64);
    h->slots_off = h->buckets_off + ALIGN_UP((apr_size_t)h->nbuckets * sizeof(apr_uint32_t), 64);
    h->bytes = bytes;
    /* NB: no other process sees the segment yet (children are forked later), so no lock here. */
    tbl_clear(t);
    *shm = t;
    return APR_SUCCESS;
}

/* Point the handle at the (child-initialised) mutex. */
void pe_shm_mutex_set(pe_shm_t *shm, apr_global_mutex_t *mutex)
{
    shm->mutex = mutex;
}

/* Size of a slot's value area. */
apr_size_t pe_shm_value_size(const pe_shm_t *shm)
{
    return shm->hdr->value_size;
}

/* Find or create key's slot and run fn on its value under the lock. */
apr_status_t pe_shm_update(pe_shm_t *shm, const void *key, apr_ssize_t klen, apr_time_t now, apr_interval_time_t ttl,
                           int flags, pe_shm_update_fn *fn, void *baton)
{
    shm_key_t k;
    shm_events_t ev;
    shm_slot_t *s;
    apr_time_t expires;
    apr_status_t rv;
    long found;
    int created;

    if (!fn)
        return APR_EINVAL;
    if ((rv = key_prepare(shm, key, klen, &k)) != APR_SUCCESS)
        return rv;
    if ((rv = shm_lock(shm, &ev)) != APR_SUCCESS)
        return rv;
    /* @CRT1 update: find or create, run the callback, keep or drop the slot */
    found = tbl_find(shm, &k, now);
    created = found < 0;
    if (created && (flags & PE_SHM_NOCREATE)) {
        rv = APR_NOTFOUND;
    }
    else {
        apr_uint32_t i = created ? tbl_insert(shm, &k, now, ttl, flags & PE_SHM_NOZERO) : (apr_uint32_t)found;

        if (!created)
            tbl_lru_touch(shm, i);
        s = slot_at(shm, i);
        expires = s->expires;
        if (fn(baton, slot_value(s), shm->hdr->value_size, created, now, &expires) == PE_SHM_REMOVE)
            tbl_free(shm, i);
        else
            s->expires = expires;
    }
    shm_unlock(shm, &ev, now);
    return rv;
}

/* Copy a live slot's value out. */
apr_status_t pe_shm_get(pe_shm_t *shm, const void *key, apr_ssize_t klen, apr_time_t now, void *out, apr_size_t len,
                        apr_time_t *expires)
{
    shm_key_t k;
    shm_events_t ev;
    apr_status_t rv;
    long found;

    if (len && !out)
        return APR_EINVAL;
    if ((rv = key_prepare(shm, key, klen, &k)) != APR_SUCCESS)
        return rv;
    if ((rv = shm_lock(shm, &ev)) != APR_SUCCESS)
        return rv;
    /* @CRT2 get: find, copy out */
    found = tbl_find(shm, &k, now);
    if (found < 0) {
        rv = APR_NOTFOUND;
    }
    else {
        shm_slot_t *s = slot_at(shm, (apr_uint32_t)found);

        tbl_lru_touch(shm, (apr_uint32_t)found);
        if (len)
            memcpy(out, slot_value(s), len < shm->hdr->value_size ? len : shm->hdr->value_size);
        if (expires)
            *expires = s->expires;
    }
    shm_unlock(shm, &ev, now);
    return rv;
}

/* Delete key's slot. */
apr_status_t pe_shm_delete(pe_shm_t *shm, const void *key, apr_ssize_t klen, apr_time_t now)
{
    shm_key_t k;
    shm_events_t ev;
    apr_status_t rv;
    long found;

    if ((rv = key_prepare(shm, key, klen, &k)) != APR_SUCCESS)
        return rv;
    if ((rv = shm_lock(shm, &ev)) != APR_SUCCESS)
        return rv;
    /* @CRT3 delete */
    found = tbl_find(shm, &k, now);
    if (found >= 0)
        tbl_free(shm, (apr_uint32_t)found);
    shm_unlock(shm, &ev, now);
    return found >= 0 ? APR_SUCCESS : APR_NOTFOUND;
}

/* Drop every slot. */
apr_status_t pe_shm_clear(pe_shm_t *shm)
{
    shm_events_t ev;
    apr_status_t rv;

    if (!shm)
        return APR_EINVAL;
    if ((rv = shm_lock(shm, &ev)) != APR_SUCCESS)
        return rv;
    /* @CRT5 clear: every slot free (the hash key and the counters stay) */
    tbl_clear(shm);
    shm_unlock(shm, &ev, 0);
    return APR_SUCCESS;
}

/* Copy the table figures out. */
apr_status_t pe_shm_stats(pe_shm_t *shm, pe_shm_stats_t *stats)
{
    shm_events_t ev;
    apr_status_t rv;

    if (!shm || !stats)
        return APR_EINVAL;
    if ((rv = shm_lock(shm, &ev)) != APR_SUCCESS)
        return rv;
    /* @CRT4 stats: copy out */
    stats->capacity = shm->hdr->nslots;
    stats->used = shm->hdr->used;
    stats->value_size = shm->hdr->value_size;
    stats->bytes = (apr_size_t)shm->hdr->bytes;
    stats->evictions = shm->hdr->evictions;
    stats->expired = shm->hdr->expired;
    stats->resets = shm->hdr->resets;
    stats->max_chain = shm->hdr->max_chain;
    shm_unlock(shm, &ev, 0);
    return APR_SUCCESS;
}

/* ------------------------------------------------------------------------------------------------- */
/* Counters                                                                                          */

typedef struct incr_baton_t {
    apr_int64_t delta;
    apr_int64_t value;
} incr_baton_t;

/* Add the delta to the counter at the start of the value area, saturating. */
static int incr_cb(void *baton, void *value, apr_size_t value_size, int created, apr_time_t now, apr_time_t *expires)
{
    incr_baton_t *b = baton;
    apr_int64_t v;

    memcpy(&v, value, sizeof(v));
    if (b->delta > 0 && v > APR_INT64_MAX - b->delta)
        v = APR_INT64_MAX;
    else if (b->delta < 0 && v < APR_INT64_MIN - b->delta)
        v = APR_INT64_MIN;
    else
        v += b->delta;
    memcpy(value, &v, sizeof(v));
    b->value = v;
    return PE_SHM_KEEP;
}

/* Add delta to a counter with a fixed expiry. */
apr_status_t pe_shm_incr(pe_shm_t *shm, const void *key, apr_ssize_t klen, apr_time_t now, apr_interval_time_t ttl,
                         apr_int64_t delta, apr_int64_t *value)
{
    incr_baton_t b;
    apr_status_t rv;

    if (!shm || shm->hdr->value_size < sizeof(apr_int64_t))
        return APR_EINVAL;
    b.delta = delta;
    b.value = 0;
    rv = pe_shm_update(shm, key, klen, now, ttl, 0, incr_cb, &b);
    if (rv == APR_SUCCESS && value)
        *value = b.value;
    return rv;
}

/* Read a counter; missing reads as 0. */
apr_status_t pe_shm_counter_get(pe_shm_t *shm, const void *key, apr_ssize_t klen, apr_time_t now,
                                apr_int64_t *value)
{
    apr_int64_t v = 0;
    apr_status_t rv;

    if (!shm || !value || shm->hdr->value_size < sizeof(apr_int64_t))
        return APR_EINVAL;
    rv = pe_shm_get(shm, key, klen, now, &v, sizeof(v), NULL);
    if (rv == APR_NOTFOUND)
        rv = APR_SUCCESS;
    if (rv == APR_SUCCESS)
        *value = v;
    return rv;
}
