/*
 * pe_memcache.h: memcached client with a hard time bound on every operation (httpd-free).
 *
 * The protocol and the connection pools are apr_memcache's. apr_memcache has no I/O timeout once a
 * socket is connected (RELIABILITY 0.2 item 1), so a memcached that accepts TCP and never answers
 * would block the calling thread forever. This client therefore never calls apr_memcache from the
 * caller's thread:
 *
 * - Each server has a "lane": a fixed set of I/O threads (PE_MEMCACHE_THREADS_DEFAULT), each owning at
 *   most one apr_memcache connection at a time. The caller hands its operation to an idle thread and
 *   waits on a condition variable with apr_thread_cond_timedwait() until the operation's deadline
 *   (start + timeout). Waiting for an idle thread counts against the same deadline.
 * - On timeout the caller abandons the operation (the thread finishes it later and throws the result
 *   away) and marks the server down. A down server is skipped without any I/O until the retry period
 *   passes; then exactly one caller probes it with its own operation (half-open), others keep skipping.
 * - Abandoned operations are capped: they can only occupy the lane's own threads. When every thread of
 *   a lane is held by an abandoned operation, calls on that lane fail at once (APR_EAGAIN) until the
 *   server answers again (e.g. SIGCONT) and the threads come back.
 * - Server selection and liveness are ours, not apr_memcache's: each server has its own single-server
 *   apr_memcache_t whose server_func always returns that server, so apr_memcache's own dead-server
 *   logic (a fixed 5 s retry in 1.6, and a blocking "version" ping under the server lock) never runs.
 *   Keys hash to a server with apr_memcache_hash_default() (the Perl client's CRC32); when that
 *   server is down the next usable one in the list takes the key.
 *
 * Timeouts: a call returns within timeout plus scheduling noise. A write that timed out may still be
 * applied by the server later (the abandoned thread completes it): its outcome is unknown.
 *
 * Life cycle: pe_memcache_conf_make() at configuration time (validation only: no threads, no sockets);
 * pe_memcache_child_init() in each child process (threads and sockets are per process, after fork).
 * The client is torn down by a cleanup on the pool given to pe_memcache_child_init(): threads are
 * stopped and joined, connections closed. Threads still blocked in a hung server's recv() cannot be
 * joined; then the client's memory is left to the process exit (logged) instead of being freed under
 * them.
 *
 * Keys (RELIABILITY R44): 1..PE_MEMCACHE_KEY_MAX printable ASCII bytes without spaces, as made by
 * pe_cachekey_make(). Any other key is refused with APR_EINVAL before anything is sent.
 */
#ifndef PE_MEMCACHE_H
#define PE_MEMCACHE_H

#include <apr_pools.h>
#include <apr_time.h>

/** memcached's key limit. */
#define PE_MEMCACHE_KEY_MAX 250
/** Most keys in one pe_memcache_getm(). */
#define PE_MEMCACHE_MGET_MAX 8
/** Most servers in one list. */
#define PE_MEMCACHE_SERVERS_MAX 16
/** Longest TTL memcached takes as relative seconds (30 days); longer would be read as a date. */
#define PE_MEMCACHE_TTL_MAX 2592000u

/** Defaults and limits of the options. */
#define PE_MEMCACHE_TIMEOUT_DEFAULT apr_time_from_msec(250)
#define PE_MEMCACHE_TIMEOUT_MIN apr_time_from_msec(1)
#define PE_MEMCACHE_TIMEOUT_MAX apr_time_from_sec(10)
#define PE_MEMCACHE_RETRY_DEFAULT apr_time_from_sec(5)
#define PE_MEMCACHE_RETRY_MIN apr_time_from_msec(10)
#define PE_MEMCACHE_RETRY_MAX apr_time_from_sec(3600)
#define PE_MEMCACHE_THREADS_DEFAULT 4
#define PE_MEMCACHE_THREADS_MAX 64

/** Validated configuration (servers and options); made at configuration time, read-only after. */
typedef struct pe_memcache_conf_t pe_memcache_conf_t;

/** A per-process client. Thread-safe: any number of threads may call the operations at once. */
typedef struct pe_memcache_t pe_memcache_t;

/** Options; zero fields take the defaults above. */
typedef struct pe_memcache_opts_t {
    apr_interval_time_t timeout; /**< bound of one operation, PE_MEMCACHE_TIMEOUT_MIN..MAX */
    apr_interval_time_t retry;   /**< how long a failed server is skipped, PE_MEMCACHE_RETRY_MIN..MAX */
    int threads;                 /**< I/O threads (and connections) per server, 1..PE_MEMCACHE_THREADS_MAX */
} pe_memcache_opts_t;

/** Counters of one process (monotonic except servers_up and abandoned). */
typedef struct pe_memcache_stats_t {
    apr_uint32_t ops;        /**< operations attempted (valid key) */
    apr_uint32_t hits;       /**< get: value found */
    apr_uint32_t misses;     /**< get: no value */
    apr_uint32_t errors;     /**< failed with an error from the server or the network */
    apr_uint32_t timeouts;   /**< gave up at the deadline (APR_TIMEUP) */
    apr_uint32_t fast_fails; /**< refused at once: every candidate server down, probing or saturated */
    apr_uint32_t abandoned;  /**< operations abandoned and still running on a blocked thread, now */
    apr_uint32_t mget_retries; /**< keys of a multi-get asked again with get (no reply in 50 ms) */
    int servers;             /**< servers configured */
    int servers_up;          /**< servers not marked down, now */
} pe_memcache_stats_t;

/**
 * Validate a server list and options (for a directive; no threads, no sockets).
 * @param p       pool for the configuration (e.g. pconf)
 * @param servers "host:port host:port ..." (spaces or tabs between); host is a DNS name or an IPv4
 *                address (apr_memcache connects over IPv4 only); port 1..65535; no duplicates;
 *                1..PE_MEMCACHE_SERVERS_MAX entries
 * @param opts    options, NULL for the defaults
 * @param conf    the result, in p
 * @return NULL on success, or a message naming the bad entry or value (in p); the caller prefixes the
 *         directive name
 */
const char *pe_memcache_conf_make(apr_pool_t *p, const char *servers, const pe_memcache_opts_t *opts,
                                  pe_memcache_conf_t **conf);

/** Number of servers in a configuration. */
int pe_memcache_conf_count(const pe_memcache_conf_t *conf);

/**
 * Create the client of this process: one apr_memcache per server, its I/O threads. No connection
 * is opened here (connections open on first use).
 * @param pchild the child pool; a cleanup on it stops the threads and closes the sockets. The client
 *               must not be used once pchild is being destroyed.
 * @param conf   from pe_memcache_conf_make(); copied, so it may live on a shorter pool
 * @param mc     the client
 * @return APR_SUCCESS, or the error of a thread or mutex creation (the partial client is torn down)
 */
apr_status_t pe_memcache_child_init(apr_pool_t *pchild, const pe_memcache_conf_t *conf, pe_memcache_t **mc);

/**
 * Whether a key is acceptable (R44): 1..PE_MEMCACHE_KEY_MAX bytes of printable ASCII, no space.
 * @return 1 when valid
 */
int pe_memcache_key_valid(const char *key);

/*
 * The operations below share these results:
 *   APR_SUCCESS   done
 *   APR_EINVAL    bad argument (key, TTL, delta, NULL); nothing was sent
 *   APR_TIMEUP    the deadline passed; the server is marked down (outcome of a write unknown)
 *   APR_EAGAIN    refused at once: no usable server (all down, probing or saturated), or stopping
 *   APR_EGENERAL  the server refused the command (e.g. value too large)
 *   other         a network error (the server is marked down)
 */

/**
 * Get a value.
 * @param p   pool for the value
 * @param val the value, NUL-terminated copy in p (the NUL is not counted in len)
 * @param len its length
 * @return APR_SUCCESS, APR_NOTFOUND when absent, or an error above
 */
apr_status_t pe_memcache_get(pe_memcache_t *mc, apr_pool_t *p, const char *key, char **val, apr_size_t *len);

/**
 * Get several values in one round trip per server: the keys that hash to the same server go in one
 * "get k1 k2 ..." (apr_memcache_multgetp); the requests to different servers are all handed to
 * their I/O threads before any is waited for, under one deadline. Counts as one operation per
 * request.
 * NB: apr_memcache waits at most 50 ms (its MULT_GET_TIMEOUT) for the reply of a multi-get and
 * then gives up on the connection; the keys it gave up on are asked again one by one with a plain
 * get (counted in mget_retries), so a slow server still has the whole timeout to answer.
 * @param p    pool for the values
 * @param n    number of keys, 1..PE_MEMCACHE_MGET_MAX
 * @param keys the keys (each as for pe_memcache_get)
 * @param vals per key: its value, NUL-terminated copy in p, or NULL
 * @param lens per key: its length (the NUL not counted), 0 when not found
 * @param rvs  per key: APR_SUCCESS, APR_NOTFOUND, or the error of its server's request
 * @return APR_SUCCESS when every server asked answered (each rvs[i] is APR_SUCCESS or APR_NOTFOUND),
 *         APR_EINVAL for bad arguments (nothing sent), else the first error of a server
 */
apr_status_t pe_memcache_getm(pe_memcache_t *mc, apr_pool_t *p, int n, const char *const *keys, char **vals,
                              apr_size_t *lens, apr_status_t *rvs);

/**
 * Store a value.
 * @param data bytes copied before the call returns (the caller may free them right after)
 * @param ttl  seconds to live, 0 for no expiry, at most PE_MEMCACHE_TTL_MAX
 */
apr_status_t pe_memcache_set(pe_memcache_t *mc, const char *key, const void *data, apr_size_t len, apr_uint32_t ttl);

/**
 * Store a value only when the key is absent (set-if-absent).
 * @return APR_SUCCESS when stored, APR_EEXIST when the key already exists, or an error above
 */
apr_status_t pe_memcache_add(pe_memcache_t *mc, const char *key, const void *data, apr_size_t len, apr_uint32_t ttl);

/**
 * Increment a counter (a decimal value, as stored by pe_memcache_incr_add()).
 * @param delta 1..2^31-1
 * @param nv    the new value (apr_memcache reads counters as 32 bits); may be NULL
 * @return APR_SUCCESS, APR_NOTFOUND when absent, APR_EGENERAL when the value is not a number, or an
 *         error above
 */
apr_status_t pe_memcache_incr(pe_memcache_t *mc, const char *key, apr_uint32_t delta, apr_uint32_t *nv);

/**
 * Rate-limit counter: increment, and when the key is absent create it as delta with a TTL (so a
 * window starts at its first hit and expires with it). A race with another creator is resolved by
 * incrementing again. The whole sequence runs under one deadline.
 * @param ttl window length in seconds, 1..PE_MEMCACHE_TTL_MAX
 * @param nv  the new value; may be NULL
 */
apr_status_t pe_memcache_incr_add(pe_memcache_t *mc, const char *key, apr_uint32_t delta, apr_uint32_t ttl,
                                  apr_uint32_t *nv);

/**
 * Delete a key.
 * @return APR_SUCCESS, APR_NOTFOUND when absent, or an error above
 */
apr_status_t pe_memcache_delete(pe_memcache_t *mc, const char *key);

/**
 * Cheap liveness: whether at least one server is not marked down (no I/O, no wait).
 * @return 1 when some server is usable, 0 when all are down
 */
int pe_memcache_is_up(pe_memcache_t *mc);

/** Copy the counters (no I/O; each counter is read atomically, the set is not a snapshot). */
void pe_memcache_stats(pe_memcache_t *mc, pe_memcache_stats_t *st);

#endif
