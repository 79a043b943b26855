/*
 * pe_access.c: the access layer's pure logic: limit and auto-block specifications, exemptions,
 * cluster windows, stored entries with expiry and the per-process snapshot cache.
 */
#include "pe_access.h"
#include "pe_memcache.h"
#include "pe_parse.h"
#include "pe_route.h"

#include <apr_lib.h>
#include <apr_strings.h>
#include <apr_thread_mutex.h>
#include <stdlib.h>
#include <string.h>

const pe_access_limit_t pe_access_ip_limit_default = {1, {PE_RL_TOKEN_BUCKET, 100, 20, APR_USEC_PER_SEC * 60}};
const pe_access_strikes_t pe_access_strikes_default = {1, {10, APR_USEC_PER_SEC * 900, APR_USEC_PER_SEC * 900}};

/* ------------------------------------------------------------------------------------------- */
/* Specifications */

static const struct {
    const char *name;
    pe_rl_algo_e algo;
} pe_algos[] = {
    {"token-bucket", PE_RL_TOKEN_BUCKET},
    {"fixed-window", PE_RL_FIXED_WINDOW},
    {"sliding-window", PE_RL_SLIDING_WINDOW},
};

static const char *algo_name(pe_rl_algo_e a)
{
    apr_size_t i;

    for (i = 0; i < sizeof(pe_algos) / sizeof(pe_algos[0]); i++)
        if (pe_algos[i].algo == a)
            return pe_algos[i].name;
    return "unknown";
}

/* A whole number 0..max written in plain decimal; -1 otherwise. */
static long long plain_number(const char *s, long long max)
{
    long long v = 0;

    if (!*s)
        return -1;
    for (; *s; s++) {
        if (!apr_isdigit(*s))
            return -1;
        v = v * 10 + (*s - '0');
        if (v > max)
            return -1;
    }
    return v;
}

/* "min", "5m", "hour"... -> window in seconds; 0 when not a unit. */
static long long window_seconds(const char *u)
{
    static const struct {
        const char *name;
        long long sec;
    } units[] = {{"s", 1}, {"sec", 1}, {"second", 1}, {"m", 60}, {"min", 60}, {"minute", 60},
                 {"h", 3600}, {"hour", 3600}, {"d", 86400}, {"day", 86400}};
    long long count = 1;
    apr_size_t i;

    if (apr_isdigit(*u)) {
        for (count = 0; apr_isdigit(*u); u++) {
            count = count * 10 + (*u - '0');
            if (count > 86400)
                return 0;
        }
        if (count == 0)
            return 0;
    }
    for (i = 0; i < sizeof(units) / sizeof(units[0]); i++)
        if (!strcasecmp(u, units[i].name))
            return count * units[i].sec;
    return 0;
}

/* Parse a limit; see pe_access.h. */
const char *pe_access_limit_parse(apr_pool_t *p, const char *args, pe_access_limit_t *out)
{
    char *copy = apr_pstrdup(p, args ? args : ""), *state = NULL, *tok, *slash;
    pe_access_limit_t l;
    long long n, burst = -1, win;
    const char *err;

    memset(&l, 0, sizeof(l));
    tok = apr_strtok(copy, " \t", &state);
    if (!tok)
        return "give a limit such as 100/min, or Off";
    if (!strcasecmp(tok, "off")) {
        if (apr_strtok(NULL, " \t", &state))
            return "Off takes no other value";
        *out = l;
        return NULL;
    }
    if (!(slash = strchr(tok, '/')))
        return apr_psprintf(p, "'%s' is not a limit: write requests/unit, e.g. 100/min", tok);
    *slash = '\0';
    if ((n = plain_number(tok, PE_RL_LIMIT_MAX)) < 1)
        return apr_psprintf(p, "'%s' is not a request count (1 to %u)", tok, PE_RL_LIMIT_MAX);
    if (!(win = window_seconds(slash + 1)) || win > 86400)
        return apr_psprintf(p, "'%s' is not a time unit (second, minute, hour, day, or e.g. 10m; at most 1 day)",
                            slash + 1);
    l.on = 1;
    l.rule.algo = PE_RL_TOKEN_BUCKET;
    l.rule.limit = (apr_uint32_t)n;
    l.rule.window = apr_time_from_sec(win);
    while ((tok = apr_strtok(NULL, " \t", &state))) {
        if (!strncasecmp(tok, "burst=", 6)) {
            if ((burst = plain_number(tok + 6, PE_RL_LIMIT_MAX)) < 0)
                return apr_psprintf(p, "'%s': the burst is a whole number 0 to %u", tok, PE_RL_LIMIT_MAX);
        }
        else if (!strncasecmp(tok, "algorithm=", 10)) {
            apr_size_t i;

            for (i = 0; i < sizeof(pe_algos) / sizeof(pe_algos[0]); i++)
                if (!strcasecmp(tok + 10, pe_algos[i].name))
                    break;
            if (i == sizeof(pe_algos) / sizeof(pe_algos[0]))
                return apr_psprintf(p, "'%s': the algorithm is token-bucket, fixed-window or sliding-window", tok);
            l.rule.algo = pe_algos[i].algo;
        }
        else {
            return apr_psprintf(p, "'%s' is not an option (burst=N, algorithm=NAME)", tok);
        }
    }
    if (l.rule.algo != PE_RL_TOKEN_BUCKET && burst > 0)
        return apr_psprintf(p, "%s admits at most the limit in a window: it takes no burst (burst=0)",
                            algo_name(l.rule.algo));
    l.rule.burst = burst > 0 ? (apr_uint32_t)burst : 0;
    if ((err = pe_rl_rule_check(&l.rule)))
        return apr_pstrdup(p, err);
    *out = l;
    return NULL;
}

const char *pe_access_limit_str(apr_pool_t *p, const pe_access_limit_t *l)
{
    if (!l || !l->on)
        return "Off";
    return apr_psprintf(p, "%u/%" APR_TIME_T_FMT "s burst=%u algorithm=%s", l->rule.limit,
                        apr_time_sec(l->rule.window), l->rule.burst, algo_name(l->rule.algo));
}

/* Parse an auto-block rule; see pe_access.h. */
const char *pe_access_strikes_parse(apr_pool_t *p, const char *args, pe_access_strikes_t *out)
{
    char *copy = apr_pstrdup(p, args ? args : ""), *state = NULL;
    const char *w[4], *err;
    pe_access_strikes_t s;
    long long n, win_ms, block_ms;
    int i;

    for (i = 0; i < 4; i++)
        w[i] = apr_strtok(i ? NULL : copy, " \t", &state);
    memset(&s, 0, sizeof(s));
    if (w[0] && !strcasecmp(w[0], "off") && !w[1]) {
        *out = s;
        return NULL;
    }
    if (!w[2] || w[3])
        return "give failures, window and block time (e.g. 10 15m 15m), or Off";
    if ((n = plain_number(w[0], PE_RL_LIMIT_MAX)) < 1)
        return apr_psprintf(p, "'%s' is not a number of failures (1 to %u)", w[0], PE_RL_LIMIT_MAX);
    if ((err = pe_parse_duration_ms(p, w[1], 1000, 86400000LL, &win_ms)))
        return apr_psprintf(p, "window: %s", err);
    if ((err = pe_parse_duration_ms(p, w[2], 1000, 86400000LL, &block_ms)))
        return apr_psprintf(p, "block time: %s", err);
    s.on = 1;
    s.rule.max_strikes = (apr_uint32_t)n;
    s.rule.window = apr_time_from_msec(win_ms);
    s.rule.block_for = apr_time_from_msec(block_ms);
    if ((err = pe_rl_strike_rule_check(&s.rule)))
        return apr_pstrdup(p, err);
    *out = s;
    return NULL;
}

/* Parse PEAccessExempt words; see pe_access.h. */
const char *pe_access_exempt_parse(apr_pool_t *p, const char *args, int *mask)
{
    char *copy = apr_pstrdup(p, args ? args : ""), *state = NULL, *w;
    int m = 0, none = 0, words = 0;

    for (w = apr_strtok(copy, " \t", &state); w; w = apr_strtok(NULL, " \t", &state)) {
        unsigned g;

        words++;
        if (!strcasecmp(w, "none"))
            none = 1;
        else if (!strcasecmp(w, "health"))
            m |= PE_ACCESS_EXEMPT_HEALTH;
        else if (!strcasecmp(w, "whitelisted"))
            m |= PE_ACCESS_EXEMPT_WHITELISTED;
        else if (!strcasecmp(w, "admin"))
            m |= (int)PE_G_ADMIN;
        else if (strcasecmp(w, "all") != 0 && (g = pe_route_group_bit(w)) != 0)
            m |= (int)g;
        else
            return apr_psprintf(p, "'%s' is not an exemption (none, health, whitelisted, admin, or a route group: %s)",
                                w, pe_route_group_names());
    }
    if (!words)
        return "name what is exempt (e.g. health admin), or none";
    if (none && words > 1)
        return "'none' must stand alone";
    *mask = m;
    return NULL;
}

/* ------------------------------------------------------------------------------------------- */
/* Cluster windows */

apr_uint32_t pe_access_cluster_allowance(const pe_rl_rule_t *rule)
{
    apr_uint64_t a = rule->limit;

    if (rule->algo == PE_RL_TOKEN_BUCKET)
        a += rule->burst;
    return a > 0xffffffffu ? 0xffffffffu : (apr_uint32_t)a;
}

apr_time_t pe_access_window_start(apr_time_t now, apr_interval_time_t window)
{
    if (window <= 0 || now < 0)
        return now;
    return now - now % window;
}

const char *pe_access_cluster_key(apr_pool_t *p, const char *key, apr_time_t wstart)
{
    const char *k = apr_psprintf(p, "pe:%s:%" APR_TIME_T_FMT, key, apr_time_sec(wstart));

    return pe_memcache_key_valid(k) ? k : NULL;
}

apr_uint32_t pe_access_cluster_ttl(apr_interval_time_t window)
{
    apr_int64_t s = (window + APR_USEC_PER_SEC - 1) / APR_USEC_PER_SEC + 1;

    return s > (apr_int64_t)PE_MEMCACHE_TTL_MAX ? PE_MEMCACHE_TTL_MAX : (apr_uint32_t)s;
}

/* Whole seconds from now to t, rounded up, at least 1. */
static apr_uint32_t secs_until(apr_time_t now, apr_time_t t)
{
    apr_time_t d = t - now;

    if (d <= 0)
        return 1;
    d = (d + APR_USEC_PER_SEC - 1) / APR_USEC_PER_SEC;
    return d < 1 ? 1 : (apr_uint32_t)d;
}

void pe_access_cluster_result(apr_uint32_t count, const pe_rl_rule_t *rule, apr_time_t wstart, apr_time_t now,
                              pe_rl_result_t *res)
{
    apr_uint32_t allowance = pe_access_cluster_allowance(rule);

    memset(res, 0, sizeof(*res));
    res->limit = rule->limit;
    res->allowed = count <= allowance;
    res->remaining = res->allowed ? allowance - count : 0;
    res->reset = wstart + rule->window;
    res->retry_after = res->allowed ? 0 : secs_until(now, res->reset);
}

void pe_access_result_merge(pe_rl_result_t *into, const pe_rl_result_t *other)
{
    if (!other)
        return;
    if (into->allowed != other->allowed) {
        if (!other->allowed)
            *into = *other;
        return;
    }
    if (!into->allowed) {
        if (other->reset > into->reset)
            *into = *other;
        return;
    }
    if (other->remaining < into->remaining) {
        into->remaining = other->remaining;
        into->limit = other->limit;
    }
    if (other->reset > into->reset)
        into->reset = other->reset;
}

/* ------------------------------------------------------------------------------------------- */
/* Shared flags */

typedef struct {
    apr_int64_t value;
    apr_int64_t old;
} flag_baton_t;

/* Swap the flag at the start of the value area. */
static int flag_cb(void *baton, void *value, apr_size_t value_size, int created, apr_time_t now, apr_time_t *expires)
{
    flag_baton_t *b = baton;

    memcpy(&b->old, value, sizeof(b->old));
    memcpy(value, &b->value, sizeof(b->value));
    return PE_SHM_KEEP;
}

apr_status_t pe_access_flag_swap(pe_shm_t *shm, const char *key, int value, apr_time_t now, int *old)
{
    flag_baton_t b = {value ? 1 : 0, 0};
    apr_status_t rv = pe_shm_update(shm, key, -1, now, 0, 0, flag_cb, &b);

    *old = rv == APR_SUCCESS ? (int)b.old : value;
    return rv;
}

/* Note whether the slot was created by this call. */
static int once_cb(void *baton, void *value, apr_size_t value_size, int created, apr_time_t now, apr_time_t *expires)
{
    *(int *)baton = created;
    return PE_SHM_KEEP;
}

apr_status_t pe_access_once(pe_shm_t *shm, const char *key, apr_time_t now, apr_time_t until, int *first)
{
    *first = 0;
    if (until <= now)
        until = now + 1;
    return pe_shm_update(shm, key, -1, now, until - now, 0, once_cb, first);
}

/* ------------------------------------------------------------------------------------------- */
/* Stored entries */

pe_access_list_t *pe_access_list_make(apr_pool_t *p)
{
    pe_access_list_t *l = apr_pcalloc(p, sizeof(*l));

    l->pool = p;
    l->entries = apr_array_make(p, 8, sizeof(pe_access_entry_t));
    return l;
}

const char *pe_access_list_add(pe_access_list_t *l, const char *network, const char *note, apr_time_t expires)
{
    pe_access_entry_t e;
    const char *err;

    memset(&e, 0, sizeof(e));
    if ((err = pe_ipnet_parse(l->pool, network ? network : "", &e.net)))
        return err;
    e.expires = expires > 0 ? expires : 0;
    e.note = apr_pstrdup(l->pool, note ? note : "");
    APR_ARRAY_PUSH(l->entries, pe_access_entry_t) = e;
    return NULL;
}

const pe_access_entry_t *pe_access_list_find(const pe_access_list_t *l, const pe_ipnet_addr_t *a, apr_time_t now)
{
    int i;

    if (!l)
        return NULL;
    for (i = 0; i < l->entries->nelts; i++) {
        const pe_access_entry_t *e = &APR_ARRAY_IDX(l->entries, i, pe_access_entry_t);

        if (e->expires && now >= e->expires)
            continue;
        if (pe_ipnet_contains(&e->net, a))
            return e;
    }
    return NULL;
}

int pe_access_list_count(const pe_access_list_t *l)
{
    return l ? l->entries->nelts : 0;
}

/* ------------------------------------------------------------------------------------------- */
/* Snapshot cache */

struct pe_access_cache_t {
    apr_thread_mutex_t *lock;
    apr_interval_time_t refresh;
    pe_access_snap_t *cur; /* holds one reference of its own */
    apr_time_t fetched;    /* last install (or failed read) */
    apr_time_t failed_at;  /* the last read failed at this time (0: it did not) */
    int refreshing;        /* a caller is reading the store */
};

/* With no snapshot yet, how long after a failed read the store is asked again. */
#define PE_ACCESS_FIRST_RETRY apr_time_from_sec(1)

/* Drop one reference; returns 1 when it was the last (the caller destroys the snapshot unlocked). */
static int snap_unref(pe_access_snap_t *s)
{
    return --s->refs == 0;
}

/* Pool cleanup: release the cache's snapshot (no request runs any more). */
static apr_status_t cache_cleanup(void *data)
{
    pe_access_cache_t *c = data;

    if (c->cur && snap_unref(c->cur))
        apr_pool_destroy(c->cur->pool);
    c->cur = NULL;
    return APR_SUCCESS;
}

apr_status_t pe_access_cache_create(apr_pool_t *p, apr_interval_time_t refresh, pe_access_cache_t **out)
{
    pe_access_cache_t *c = apr_pcalloc(p, sizeof(*c));
    apr_status_t rv = apr_thread_mutex_create(&c->lock, APR_THREAD_MUTEX_DEFAULT, p);

    *out = NULL;
    if (rv != APR_SUCCESS)
        return rv;
    c->refresh = refresh < 0 ? 0 : refresh;
    apr_pool_cleanup_register(p, c, cache_cleanup, apr_pool_cleanup_null);
    *out = c;
    return APR_SUCCESS;
}

pe_access_snap_t *pe_access_cache_get(pe_access_cache_t *c, apr_time_t now, int *refresh)
{
    pe_access_snap_t *s;

    apr_thread_mutex_lock(c->lock);
    s = c->cur;
    if (s) {
        s->refs++;
        *refresh = !c->refreshing && now - c->fetched >= c->refresh;
        if (*refresh)
            c->refreshing = 1;
    }
    else {
        /* NB: no copy yet: every caller reads (start-up), but after a failed read the store is
         * asked again only once PE_ACCESS_FIRST_RETRY has passed, not by every request while it
         * is down. */
        *refresh = !c->failed_at || now - c->failed_at >= PE_ACCESS_FIRST_RETRY;
    }
    apr_thread_mutex_unlock(c->lock);
    return s;
}

pe_access_snap_t *pe_access_snap_make(void)
{
    apr_pool_t *p;
    pe_access_snap_t *s;

    /* NB: a pool of its own (not a child of a shared pool): snapshots are made and destroyed by
     * request threads, and an unmanaged pool needs no lock on a parent. */
    if (apr_pool_create_unmanaged_ex(&p, NULL, NULL) != APR_SUCCESS)
        return NULL;
    s = apr_pcalloc(p, sizeof(*s));
    s->pool = p;
    s->blocks = pe_access_list_make(p);
    s->whitelist = pe_access_list_make(p);
    return s;
}

void pe_access_snap_discard(pe_access_snap_t *snap)
{
    if (snap)
        apr_pool_destroy(snap->pool);
}

pe_access_snap_t *pe_access_cache_install(pe_access_cache_t *c, pe_access_snap_t *snap, apr_time_t now)
{
    pe_access_snap_t *old = NULL, *cur;

    apr_thread_mutex_lock(c->lock);
    c->refreshing = 0;
    c->fetched = now;
    c->failed_at = snap ? 0 : now;
    if (snap) {
        snap->refs = 1;
        if (c->cur && snap_unref(c->cur))
            old = c->cur;
        c->cur = snap;
    }
    cur = c->cur;
    if (cur)
        cur->refs++;
    apr_thread_mutex_unlock(c->lock);
    if (old)
        apr_pool_destroy(old->pool);
    return cur;
}

void pe_access_cache_release(pe_access_cache_t *c, pe_access_snap_t *snap)
{
    int last;

    if (!snap)
        return;
    apr_thread_mutex_lock(c->lock);
    last = snap_unref(snap);
    apr_thread_mutex_unlock(c->lock);
    if (last)
        apr_pool_destroy(snap->pool);
}
