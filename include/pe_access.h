/*
 * pe_access.h: the access layer's pure logic (httpd-free): limit specifications, auto-block
 * rules, exemptions, cluster (memcached) windows, stored block and whitelist entries with
 * expiry, and a per-process snapshot cache of those entries.
 *
 * The decisions themselves are pe_ratelimit's (shared memory, exact across processes); this file
 * adds what the glue needs around them. See docs/configuration.md "Access layer".
 */
#ifndef PE_ACCESS_H
#define PE_ACCESS_H

#include "pe_ipnet.h"
#include "pe_ratelimit.h"

#include <apr_pools.h>
#include <apr_tables.h>
#include <apr_time.h>

/** A rate limit as configured: off, or a pe_ratelimit rule. */
typedef struct pe_access_limit_t {
    int on;
    pe_rl_rule_t rule;
} pe_access_limit_t;

/** An auto-block rule: off, or a pe_ratelimit strike rule. */
typedef struct pe_access_strikes_t {
    int on;
    pe_rl_strike_rule_t rule;
} pe_access_strikes_t;

/** The product defaults: PEIPRateLimit 100/min burst=20 (token bucket), PEAutoBlock 10 15m 15m. */
extern const pe_access_limit_t pe_access_ip_limit_default;
extern const pe_access_strikes_t pe_access_strikes_default;

/**
 * Parse a limit: "Off", or "<n>/<unit> [burst=<b>] [algorithm=token-bucket|fixed-window|sliding-window]"
 * with unit second|sec|s, minute|min|m, hour|h, day|d (or a count and unit, "10/5m").
 * The token bucket is the default algorithm; its burst defaults to 0. A window algorithm takes no
 * burst (burst=0 only): its limit is the most it admits in a window.
 * @param args the directive's arguments, space separated
 * @param out  the limit (untouched on error)
 * @return NULL, or a message in p naming the problem
 */
const char *pe_access_limit_parse(apr_pool_t *p, const char *args, pe_access_limit_t *out);

/** The canonical text of a limit ("100/60s burst=20 algorithm=token-bucket", "Off"), in p. */
const char *pe_access_limit_str(apr_pool_t *p, const pe_access_limit_t *l);

/**
 * Parse an auto-block rule: "Off", or "<failures> <window> <block-for>" (durations as 15m, 900s).
 * @return NULL, or a message in p
 */
const char *pe_access_strikes_parse(apr_pool_t *p, const char *args, pe_access_strikes_t *out);

/* Exemption bits (PEAccessExempt): route groups (PE_G_*, pe_route.h) plus these. */
#define PE_ACCESS_EXEMPT_HEALTH 0x10000      /* GET /health */
#define PE_ACCESS_EXEMPT_WHITELISTED 0x20000 /* addresses on the stored whitelist */

/**
 * Parse PEAccessExempt words: "none", or health, whitelisted, admin (= admin-panel) and PEApi
 * group names (admin-panel, support, monitoring...; not "all").
 * @param mask out: the bits
 * @return NULL, or a message in p
 */
const char *pe_access_exempt_parse(apr_pool_t *p, const char *args, int *mask);

/**
 * The largest count a cluster (memcached) window admits for a rule: limit, plus burst for the
 * token bucket (a full bucket's worth on top of the window's refill).
 */
apr_uint32_t pe_access_cluster_allowance(const pe_rl_rule_t *rule);

/** Start of the cluster window holding now: windows are aligned on multiples of the window since the epoch. */
apr_time_t pe_access_window_start(apr_time_t now, apr_interval_time_t window);

/**
 * The memcached key of a counter for one window: "pe:" key ":" window start in seconds.
 * @param key the shared-memory key ("rl:ip:192.0.2.1")
 * @return the key in p, or NULL when it would not be a valid memcached key
 */
const char *pe_access_cluster_key(apr_pool_t *p, const char *key, apr_time_t wstart);

/** Seconds a window's counter lives in memcached (the window, rounded up, plus one second). */
apr_uint32_t pe_access_cluster_ttl(apr_interval_time_t window);

/**
 * The decision for a cluster counter after this request's increment.
 * @param count the counter after the increment (this request included)
 * @param rule  the rule (limit shown in the headers; allowance from pe_access_cluster_allowance)
 * @param res   out: allowed iff count <= allowance; reset = window end
 */
void pe_access_cluster_result(apr_uint32_t count, const pe_rl_rule_t *rule, apr_time_t wstart, apr_time_t now,
                              pe_rl_result_t *res);

/**
 * Combine two decisions on the same request: denied if either denies (the denying one's reset
 * and Retry-After, the later if both deny); allowed: the smaller remaining and the later reset.
 */
void pe_access_result_merge(pe_rl_result_t *into, const pe_rl_result_t *other);

/**
 * Set a process-shared flag kept in the table under key and report its previous value, so that of
 * all processes noticing the same change (memcached went away, came back) exactly one logs it.
 * @param value the new value (0 or 1)
 * @param old   out: the previous value (0 for a missing slot)
 * @return APR_SUCCESS, or the table's error
 */
apr_status_t pe_access_flag_swap(pe_shm_t *shm, const char *key, int value, apr_time_t now, int *old);

/**
 * Mark key as seen until `until`; report whether it was not marked yet (so an event is written
 * once per window, not once per refused request).
 * @param first out: 1 when this call made the mark
 */
apr_status_t pe_access_once(pe_shm_t *shm, const char *key, apr_time_t now, apr_time_t until, int *first);

/* ------------------------------------------------------------------------------------------- */
/* Stored entries (blocked addresses, whitelist) */

/** One stored entry: a network, its expiry (0 = never) and its text (block reason or description). */
typedef struct pe_access_entry_t {
    pe_ipnet_t net;
    apr_time_t expires;
    const char *note;
} pe_access_entry_t;

/** Entries of one kind, in the order added. */
typedef struct pe_access_list_t {
    apr_pool_t *pool;
    apr_array_header_t *entries; /* of pe_access_entry_t */
} pe_access_list_t;

/** An empty list in p. */
pe_access_list_t *pe_access_list_make(apr_pool_t *p);

/**
 * Add an entry (an address or a CIDR network as pe_ipnet_parse reads it).
 * @return NULL, or a message in p (the entry is not added)
 */
const char *pe_access_list_add(pe_access_list_t *l, const char *network, const char *note, apr_time_t expires);

/** The first entry containing a that has not expired at now, or NULL. */
const pe_access_entry_t *pe_access_list_find(const pe_access_list_t *l, const pe_ipnet_addr_t *a, apr_time_t now);

/** Number of entries. */
int pe_access_list_count(const pe_access_list_t *l);

/* ------------------------------------------------------------------------------------------- */
/* The per-process snapshot cache */

/** What a process knows of the stored entries, read at one time; immutable once installed. */
typedef struct pe_access_snap_t {
    apr_pool_t *pool;            /* owns everything below; destroyed with the last reference */
    pe_access_list_t *blocks;    /* stored blocks */
    pe_access_list_t *whitelist; /* stored whitelist */
    int refs;                    /* guarded by the cache's lock */
} pe_access_snap_t;

/** The cache of one process: thread-safe. */
typedef struct pe_access_cache_t pe_access_cache_t;

/**
 * Create the cache; a cleanup on p releases the current snapshot.
 * @param refresh how long a snapshot is used before one caller reads the store again (0: every call)
 */
apr_status_t pe_access_cache_create(apr_pool_t *p, apr_interval_time_t refresh, pe_access_cache_t **c);

/**
 * The current snapshot, with a reference taken (give it back with pe_access_cache_release).
 * @param refresh out: 1 when this caller should read the store and pe_access_cache_install the
 *                result (one caller at a time while a snapshot exists; every caller while none
 *                does, except within a second after a failed read)
 * @return the snapshot, or NULL when none was ever installed
 */
pe_access_snap_t *pe_access_cache_get(pe_access_cache_t *c, apr_time_t now, int *refresh);

/** A new, empty snapshot in a pool of its own, for a caller that was asked to refresh. */
pe_access_snap_t *pe_access_snap_make(void);

/** Throw away a snapshot from pe_access_snap_make that will not be installed. */
void pe_access_snap_discard(pe_access_snap_t *snap);

/**
 * Install a snapshot made by pe_access_snap_make (the cache takes it over), or NULL when the read
 * failed: the current snapshot is then kept for another refresh period. A caller asked to refresh
 * must call this once, either way.
 * @return the current snapshot with a reference taken for the caller (NULL when there is none)
 */
pe_access_snap_t *pe_access_cache_install(pe_access_cache_t *c, pe_access_snap_t *snap, apr_time_t now);

/** Give back a reference from pe_access_cache_get (NULL is ignored). */
void pe_access_cache_release(pe_access_cache_t *c, pe_access_snap_t *snap);

#endif
