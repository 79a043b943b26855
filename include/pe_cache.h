/*
 * pe_cache.h: the response cache front end (httpd-free).
 *
 * Two tiers:
 * - a remote backend (memcached through pe_memcache, plugged in as function pointers so tests can
 *   inject fakes), shared by every node; every operation on it is time-bounded by the backend;
 * - a shared-memory backend in this host (a pe_shm slot table in its own segment, shared by every
 *   child), used when no remote backend is configured or while the remote one fails.
 * A get asks the remote backend when there is one; an error or a timeout there (not a miss) falls
 * back to shared memory. A set goes to the remote backend, and to shared memory when the remote
 * set fails. So a dead or hung memcached degrades the cache to this host, never the request.
 *
 * Keys are pe_cachekey_*() keys. Values are opaque bytes; the shared-memory tier holds values up
 * to the entry size given at creation (larger ones are only stored remotely).
 *
 * Generations (clearing without flushing memcached, which holds other data too): every key is
 * stored as "<key>:<generation in hex>". The generation lives in a small segment made with the
 * cache, so every child of a node reads the same one; pe_cache_clear() raises it, so no entry
 * made before is found again, and empties the shared-memory tier; old entries in memcached age
 * out by their TTL. With a remote tier the generation is also kept there (PE_CACHE_GEN_KEY, no
 * expiry) and the nodes sharing it follow it:
 * - a new segment (httpd started) takes memcached's as it is, so a restart keeps the cache; when
 *   memcached has none (its first use, or it was restarted and lost everything), the node writes
 *   its own, seeded from the clock at creation, which no earlier segment used;
 * - otherwise neither ever goes down: the higher wins, and a node whose clear could not be
 *   written there writes it at its next lookup;
 * - every remote lookup reads memcached's generation in the same multi-get as the entry (one
 *   round trip with one server): when it is higher (another node has cleared), the node takes it
 *   and the lookup is a miss; when it is lower or missing, the node writes its own and the entry
 *   stands. So a clear on any node makes the next identical lookup a miss on every node.
 */
#ifndef PE_CACHE_H
#define PE_CACHE_H

#include <apr_global_mutex.h>
#include <apr_pools.h>
#include <apr_time.h>

typedef struct pe_cache_t pe_cache_t;

/** Where a value came from (or went). */
typedef enum pe_cache_tier_e { PE_CACHE_NONE = 0, PE_CACHE_REMOTE, PE_CACHE_SHM } pe_cache_tier_e;

/**
 * Remote get: APR_SUCCESS with *val and *len (in p), APR_NOTFOUND for a miss, anything else an error.
 */
typedef apr_status_t pe_cache_remote_get_fn(void *baton, apr_pool_t *p, const char *key, char **val,
                                            apr_size_t *len);
/**
 * Remote multi-get of n keys (n <= 8) in one request per server: per key *vals / *lens (in p) and
 * rvs (APR_SUCCESS, APR_NOTFOUND or an error); returns APR_SUCCESS when every key has APR_SUCCESS
 * or APR_NOTFOUND, else an error.
 */
typedef apr_status_t pe_cache_remote_mget_fn(void *baton, apr_pool_t *p, int n, const char *const *keys, char **vals,
                                             apr_size_t *lens, apr_status_t *rvs);
/** Remote set with a TTL in seconds: APR_SUCCESS or an error. */
typedef apr_status_t pe_cache_remote_set_fn(void *baton, const char *key, const void *val, apr_size_t len,
                                            apr_uint32_t ttl_s);

/**
 * Make the cache with its shared-memory tier (in the parent, before the children fork).
 * @param pconf      lifetime of the segment (a graceful restart makes a new one)
 * @param entries    shared-memory entries (0: no shared-memory tier)
 * @param entry_size largest value the shared-memory tier keeps
 * @param mutex      global mutex guarding the segment (the caller's; see pe_shm.h)
 * @return APR_SUCCESS or the pe_shm_create error
 */
apr_status_t pe_cache_create(apr_pool_t *pconf, apr_uint32_t entries, apr_size_t entry_size,
                             apr_global_mutex_t *mutex, pe_cache_t **out);

/** After apr_global_mutex_child_init in a child: the mutex handle to use there. */
void pe_cache_mutex_set(pe_cache_t *c, apr_global_mutex_t *mutex);

/**
 * Plug in the remote backend (in the child; a NULL function removes it). get reads the generation
 * (at a clear, and while this node is not in step); lookups use mget.
 */
void pe_cache_set_remote(pe_cache_t *c, pe_cache_remote_get_fn *get, pe_cache_remote_mget_fn *mget,
                         pe_cache_remote_set_fn *set, void *baton);

/**
 * Look a key up.
 * @param p    pool for the value
 * @param tier out, may be NULL: the tier that answered (PE_CACHE_NONE on a miss)
 * @return APR_SUCCESS with *val (NUL-terminated copy) and *len, or APR_NOTFOUND
 */
apr_status_t pe_cache_get(pe_cache_t *c, apr_pool_t *p, const char *key, apr_time_t now, char **val, apr_size_t *len,
                          pe_cache_tier_e *tier);

/**
 * Store a value for ttl.
 * @param tier out, may be NULL: where it was stored (PE_CACHE_NONE when nowhere)
 * @return APR_SUCCESS when stored somewhere, APR_ENOSPC when too large for the only usable tier,
 *         else the last error
 */
apr_status_t pe_cache_set(pe_cache_t *c, const char *key, const void *val, apr_size_t len, apr_interval_time_t ttl,
                          apr_time_t now, pe_cache_tier_e *tier);

/**
 * Clear the cache for every process of this node at once and, with a remote tier, for every node
 * that shares it: a new generation (here and remote), and the shared-memory tier emptied.
 * @param p      pool for the remote calls
 * @param now    the clock (the new generation is at least now, in microseconds)
 * @param remote out, may be NULL: 1 when a remote tier is plugged in
 * @return APR_SUCCESS; or the remote tier's error: this node is cleared, the remote generation is
 *         not written yet (it is at this node's next lookup; other nodes keep the old one meanwhile)
 */
apr_status_t pe_cache_clear(pe_cache_t *c, apr_pool_t *p, apr_time_t now, int *remote);

/** This node's generation (tests, diagnostics). */
apr_uint64_t pe_cache_generation(pe_cache_t *c);

/** Counters of this process. */
typedef struct pe_cache_stats_t {
    apr_uint32_t hits, misses, remote_errors, shm_sets, remote_sets;
} pe_cache_stats_t;

void pe_cache_stats(pe_cache_t *c, pe_cache_stats_t *st);

/*
 * A cached completion: the upstream's body as it came, preceded by what the conversation log
 * needs of it (the answer's text and the token count), so a hit sends the body without parsing
 * it. Layout: "PEC1", a flag byte (bit 0: there is a text), the tokens (int64, little-endian),
 * the text's length (uint32, little-endian), the text, the body.
 */
#define PE_CACHE_REPLY_HEAD 17

/**
 * Pack a completion for pe_cache_set.
 * @param response the answer's text, or NULL
 * @return the record in p (*len bytes), or NULL when the text is longer than 4 GB
 */
char *pe_cache_reply_pack(apr_pool_t *p, const char *body, apr_size_t blen, const char *response,
                          apr_int64_t tokens, apr_size_t *len);

/**
 * Unpack a record of pe_cache_reply_pack.
 * @param body     out: points into buf (blen bytes; buf's NUL ends it, as pe_cache_get gives it)
 * @param response out: a NUL-terminated copy in p, or NULL when none was packed
 * @return 0, or -1 for anything else (another layout, a short or inconsistent record)
 */
int pe_cache_reply_unpack(apr_pool_t *p, const char *buf, apr_size_t len, const char **body, apr_size_t *blen,
                          const char **response, apr_int64_t *tokens);

#endif
