/*
 * pe_shm.h: a slot table in one anonymous shared-memory segment, shared by every child process.
 *
 * Holds rate-limit windows, firewall strikes and blocks, metrics counters: anything counted across
 * requests (DESIGN.md: a per-process counter is a bug). Modelled on nginx limit_req (hash + LRU,
 * short lock, stale entries dropped first) and mod_qos (shm + global mutex, tagged critical sections).
 *
 * Layout: a header, a bucket array and nslots fixed-size slots. Every link inside the segment is a
 * slot index, never a pointer, because the segment may map at a different address in each process.
 * A slot holds the key (up to PE_SHM_KEY_MAX bytes stored verbatim; a longer key is stored as its
 * SHA-256 digest, marked as such, so two different keys never share a slot), an expiry time and a
 * value area of value_size bytes (8-byte aligned) that callers use for counters and timestamps.
 * Buckets are chosen by SipHash-2-4 with a random per-segment key, so clients cannot pick keys that
 * all land in one chain.
 *
 * Locking: the table is guarded by an apr_global_mutex_t that the CALLER creates (the glue with
 * ap_global_mutex_create so admins can pick the mechanism with the Mutex directive; tests with
 * apr_global_mutex_create) and hands to pe_shm_create. Every function takes the lock for a few lines,
 * copies data in or out, and releases it before returning; none returns with the lock held.
 * Keys are normalised and hashed before the lock is taken.
 *
 * Eviction: an expired slot is dropped whenever a lookup walks past it. When no slot is free, an
 * expired slot is reused first (looked for in the PE_SHM_SCAN least recently used slots and in a
 * rotating sweep of PE_SHM_SCAN slots); failing that, the least recently used live slot is evicted
 * and counted in pe_shm_stats_t.evictions. A table that evicts live rate-limit state under-counts,
 * so size it for the live keys expected (evictions are logged, PE50004).
 *
 * Crash safety: if a process dies while holding the lock inside an update (robust mutexes hand
 * the lock to the next process), the next holder finds the table marked busy, clears it and
 * logs PE50001: counters restart from zero rather than following a half-written link.
 *
 * Time is always passed in (now, in apr_time_t microseconds) so tests control the clock.
 */
#ifndef PE_SHM_H
#define PE_SHM_H

#include <apr_errno.h>
#include <apr_global_mutex.h>
#include <apr_pools.h>
#include <apr_time.h>

/** Keys up to this many bytes are stored verbatim; longer keys as their SHA-256 digest. */
#define PE_SHM_KEY_MAX 64
/** Largest slot count pe_shm_create accepts. */
#define PE_SHM_SLOTS_MAX (1u << 22)
/** Largest value area pe_shm_create accepts, in bytes. */
#define PE_SHM_VALUE_MAX 65536
/** Slots looked at from the LRU end, and by the sweep, for an expired slot before evicting. */
#define PE_SHM_SCAN 16

/** pe_shm_update flag: do not create a missing (or expired) slot; return APR_NOTFOUND instead. */
#define PE_SHM_NOCREATE 0x1

/**
 * pe_shm_update flag: a created slot's value area is not zeroed (it holds whatever an earlier
 * slot left there): for a callback that writes everything it later reads (a large cache value
 * with its length first), which saves clearing the whole area.
 */
#define PE_SHM_NOZERO 0x2

/** Update callback result: keep the slot. */
#define PE_SHM_KEEP 0
/** Update callback result: delete the slot. */
#define PE_SHM_REMOVE 1

/** A table handle: process-local, on the pool given to pe_shm_create; the slots live in the segment. */
typedef struct pe_shm_t pe_shm_t;

/** Table figures, read under the lock. */
typedef struct pe_shm_stats_t {
    apr_uint32_t capacity;  /* slots in the table */
    apr_uint32_t used;      /* occupied slots, including expired ones not reclaimed yet */
    apr_size_t value_size;  /* bytes in each slot's value area */
    apr_size_t bytes;       /* size of the segment */
    apr_uint64_t evictions; /* live slots evicted because the table was full */
    apr_uint64_t expired;   /* expired slots reclaimed */
    apr_uint64_t resets;    /* times the table was cleared after a holder died mid-update */
    apr_uint32_t max_chain; /* longest bucket chain a lookup has walked (hash quality; ~5 is normal) */
} pe_shm_stats_t;

/**
 * Called by pe_shm_update on a slot's value area while the table lock is held.
 * NB: it must be short, must not block, log, allocate from a shared pool or call any pe_shm_*
 * function (the global mutex is not recursive: that would deadlock). Copy results into the baton.
 * @param baton      the caller's data
 * @param value      the slot's value area, value_size bytes, 8-byte aligned; all zero when created
 * @param value_size size of the value area
 * @param created    1 when the slot was absent (or expired) and has just been created
 * @param now        the time passed to pe_shm_update
 * @param expires    in: the slot's expiry (for a new slot now + ttl, 0 when ttl <= 0 = never);
 *                   out: the expiry to keep (0 = never; a time <= now makes the slot expired)
 * @return PE_SHM_KEEP, or PE_SHM_REMOVE to delete the slot
 */
typedef int pe_shm_update_fn(void *baton, void *value, apr_size_t value_size, int created, apr_time_t now,
                             apr_time_t *expires);

/**
 * Name a table for its PE50004 message (evicting live entries), which then reads "shm: <name>
 * full (n slots), evicting the least recently used live entries; <when_full>". Without a name:
 * "shared table" and "raise the slot count". Both strings must outlive the handle (static text).
 */
void pe_shm_set_name(pe_shm_t *shm, const char *name, const char *when_full);

/**
 * Size in bytes of a segment for nslots slots of value_size bytes.
 * @return the size, or 0 when the arguments are out of range
 */
apr_size_t pe_shm_size(apr_uint32_t nslots, apr_size_t value_size);

/**
 * Create an anonymous segment holding an empty table, before the children are forked.
 * The children inherit the mapping; no attach step is needed.
 * NB: the segment is destroyed by a cleanup on p (httpd: pconf, so a graceful restart makes a new one).
 * The mutex must outlive p's use of the table; in a child, pass the mutex that
 * apr_global_mutex_child_init returned to pe_shm_mutex_set if it differs.
 * @param p          pool for the handle and the segment's lifetime
 * @param nslots     number of slots, 1..PE_SHM_SLOTS_MAX
 * @param value_size bytes of value per slot, 1..PE_SHM_VALUE_MAX (rounded up to a multiple of 8)
 * @param mutex      the global mutex guarding the table (created by the caller, not owned)
 * @param shm        out: the handle
 * @return APR_SUCCESS, APR_EINVAL for bad arguments, or the apr_shm_create / random source error
 */
apr_status_t pe_shm_create(apr_pool_t *p, apr_uint32_t nslots, apr_size_t value_size, apr_global_mutex_t *mutex,
                           pe_shm_t **shm);

/**
 * Replace the mutex a handle uses (after apr_global_mutex_child_init in a child).
 * @param shm   the table
 * @param mutex the mutex, the same lock as before
 */
void pe_shm_mutex_set(pe_shm_t *shm, apr_global_mutex_t *mutex);

/**
 * The size of each slot's value area (value_size given at creation, rounded up to 8).
 * @param shm the table
 */
apr_size_t pe_shm_value_size(const pe_shm_t *shm);

/**
 * Find or create the slot for key and run fn on its value area under the lock.
 * A missing or expired slot is created with a zeroed value area and expiry now + ttl (ttl <= 0: never),
 * unless flags has PE_SHM_NOCREATE. Finding a slot marks it most recently used; its expiry is left
 * as it is unless fn changes it.
 * @param shm   the table
 * @param key   key bytes (any bytes; a long key is stored as its digest)
 * @param klen  key length, or a negative value when key is a NUL-terminated string
 * @param now   current time
 * @param ttl   lifetime of a newly created slot
 * @param flags 0, PE_SHM_NOCREATE, PE_SHM_NOZERO
 * @param fn    callback run under the lock (see pe_shm_update_fn)
 * @param baton passed to fn
 * @return APR_SUCCESS; APR_NOTFOUND with PE_SHM_NOCREATE and no live slot (fn not called);
 *         APR_EINVAL for a NULL argument; APR_EGENERAL if a long key cannot be digested;
 *         or the mutex error (nothing changed)
 */
apr_status_t pe_shm_update(pe_shm_t *shm, const void *key, apr_ssize_t klen, apr_time_t now, apr_interval_time_t ttl,
                           int flags, pe_shm_update_fn *fn, void *baton);

/**
 * Copy a live slot's value out.
 * @param shm     the table
 * @param key     key bytes
 * @param klen    key length, or negative for a NUL-terminated string
 * @param now     current time (an expired slot is not found)
 * @param out     receives min(len, value size) bytes; may be NULL when len is 0
 * @param len     size of out
 * @param expires out, may be NULL: the slot's expiry (0 = never)
 * @return APR_SUCCESS, APR_NOTFOUND, APR_EINVAL, or the mutex error
 */
apr_status_t pe_shm_get(pe_shm_t *shm, const void *key, apr_ssize_t klen, apr_time_t now, void *out, apr_size_t len,
                        apr_time_t *expires);

/**
 * Delete a slot.
 * @return APR_SUCCESS, APR_NOTFOUND (no slot, or only an expired one, which is reclaimed), APR_EINVAL,
 *         or the mutex error
 */
apr_status_t pe_shm_delete(pe_shm_t *shm, const void *key, apr_ssize_t klen, apr_time_t now);

/**
 * Drop every slot at once (an administrator's cache clear). Every process sees the empty table
 * at its next call; the counters of pe_shm_stats are kept.
 * @return APR_SUCCESS, APR_EINVAL, or the mutex error
 */
apr_status_t pe_shm_clear(pe_shm_t *shm);

/**
 * Read the table figures.
 * @param shm   the table
 * @param stats out
 * @return APR_SUCCESS or the mutex error
 */
apr_status_t pe_shm_stats(pe_shm_t *shm, pe_shm_stats_t *stats);

/**
 * Add delta to the 64-bit signed counter kept at the start of key's value area.
 * A missing or expired counter starts at 0 with expiry now + ttl (ttl <= 0: never); the expiry is
 * not extended by later increments, so ttl is a fixed window. The sum saturates at the int64 limits.
 * Needs value_size >= 8.
 * @param shm   the table
 * @param key   key bytes
 * @param klen  key length, or negative for a NUL-terminated string
 * @param now   current time
 * @param ttl   lifetime of a new counter
 * @param delta amount to add (may be negative or 0)
 * @param value out, may be NULL: the counter after the addition
 * @return APR_SUCCESS, APR_EINVAL (value area too small, NULL key), or the mutex error
 */
apr_status_t pe_shm_incr(pe_shm_t *shm, const void *key, apr_ssize_t klen, apr_time_t now, apr_interval_time_t ttl,
                         apr_int64_t delta, apr_int64_t *value);

/**
 * Read a counter kept by pe_shm_incr; a missing or expired counter reads as 0.
 * @param value out: the counter
 * @return APR_SUCCESS, APR_EINVAL, or the mutex error
 */
apr_status_t pe_shm_counter_get(pe_shm_t *shm, const void *key, apr_ssize_t klen, apr_time_t now,
                                apr_int64_t *value);

#endif
