/*
 * pe_access_ap.c: the access layer's process state and hooks: firewall (automatic blocks in the
 * shared table, stored blocks), whitelist mode, per-address and per-principal rate limits, and
 * the strikes that failed authentications add.
 *
 * Decisions are pe_ratelimit's on one pe_shm table (exact across processes). The table and its
 * global mutex are made once per httpd parent, in s->process->pool, so they outlive configuration
 * generations: a graceful restart keeps counters, strikes and automatic blocks. With memcached
 * (PEAccessServers) each limited request also increments a fixed-window counter there, shared by
 * all nodes; a request passes only if both allow it. When memcached does not answer, the node
 * limits with its own table alone and says so once (PE45010), and once when it is back (PE45011).
 */
#include "pe_access_ap.h"
#include "pe_config.h"
#include "pe_hooks.h"
#include "pe_http.h"
#include "pe_log.h"
#include "pe_memcache.h"
#include "pe_persist.h"

#include "http_request.h"
#include "util_mutex.h"
#include <apr_atomic.h>
#include <apr_shm.h>
#include <apr_strings.h>

#define PE_ACCESS_MUTEX "pe-access"
/* The shared flag saying memcached is down (one process logs each change). */
#define PE_ACCESS_MC_FLAG "st:memcached-down"
/* Refusals of blocked or non-whitelisted addresses are recorded at most this often per address. */
#define PE_ACCESS_EVENT_EVERY apr_time_from_sec(60)

/* Made once per httpd parent and kept across generations (pe_persist.h). */
typedef struct {
    pe_shm_t *shm;
    int nslots;
    apr_shm_t *seg;        /* a small segment of its own for block_horizon */
    apr_time_t *horizon;   /* the latest end of any automatic block (atomic; 0: none yet) */
} pe_access_shared_t;

/* This process's state. */
static struct {
    pe_persist_t *ps;           /* the shared state and its mutex */
    pe_access_shared_t *shared;
    pe_shm_t *shm;              /* NULL: the layer is off in this process (logged) */
    pe_access_cache_t *cache;   /* stored blocks and whitelist (children only) */
    pe_memcache_t *mc;          /* cluster counters, or NULL */
    apr_uint32_t mc_down;       /* this process's view of memcached (atomic) */
    apr_uint32_t store_failing; /* the last read of the stored lists failed (atomic) */
} pe_acc;

/* The limit decisions of one request, for the headers. */
typedef struct pe_access_req_t {
    int have;
    pe_rl_result_t res;
} pe_access_req_t;

int pe_access_pre_config(apr_pool_t *pconf, apr_pool_t *plog, apr_pool_t *ptemp)
{
    pe_acc.shm = NULL;
    pe_acc.shared = NULL;
    pe_acc.ps = NULL;
    return ap_mutex_register(pconf, PE_ACCESS_MUTEX, NULL, APR_LOCK_DEFAULT, 0);
}

/* The shared table and the block horizon, made once per httpd parent (pe_persist.h). */
static apr_status_t access_make(apr_pool_t *pp, apr_global_mutex_t *mutex, void *baton, void **obj)
{
    pe_access_shared_t *sh = apr_pcalloc(pp, sizeof(*sh));
    apr_status_t rv;

    sh->nslots = *(const int *)baton;
    if ((rv = pe_shm_create(pp, (apr_uint32_t)sh->nslots, PE_RL_VALUE_SIZE, mutex, &sh->shm)) != APR_SUCCESS ||
        (rv = apr_shm_create(&sh->seg, sizeof(apr_time_t), NULL, pp)) != APR_SUCCESS)
        return rv;
    pe_shm_set_name(sh->shm, "access table",
                    "rate limits and automatic blocks may under-count; raise PEAccessTableSize");
    sh->horizon = apr_shm_baseaddr_get(sh->seg);
    __atomic_store_n(sh->horizon, 0, __ATOMIC_SEQ_CST);
    *obj = sh;
    return APR_SUCCESS;
}

int pe_access_post_config(apr_pool_t *pconf, apr_pool_t *ptemp, server_rec *s)
{
    int nslots = pe_srv_access_table_size(pe_config_srv(s));
    pe_persist_state_e state;
    apr_status_t rv;

    /* NB: kept across generations: a graceful restart must not hand out fresh allowances, and
     * the old generation's children use the same lock as the new one's. */
    if ((rv = pe_persist_get(s, "access", PE_ACCESS_MUTEX, (apr_uint64_t)nslots, access_make, &nslots, &pe_acc.ps,
                             &state)) != APR_SUCCESS) {
        pe_slog(s, APLOG_CRIT, rv, PE_LOGNO(45002) "cannot create the access layer's shared table (%d entries) or "
                "its %s mutex", nslots, PE_ACCESS_MUTEX);
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    pe_acc.shared = pe_acc.ps->obj;
    if (state == PE_PERSIST_OTHER)
        pe_slog(s, APLOG_NOTICE, 0, PE_LOGNO(45003) "PEAccessTableSize %d takes effect when httpd is stopped and "
                "started; the shared table keeps %d entries (and its counters) across restarts", nslots,
                pe_acc.shared->nslots);
    else if (state == PE_PERSIST_MADE)
        pe_slog(s, APLOG_INFO, 0, PE_LOGNO(45004) "access layer: shared table of %d entries (%" APR_SIZE_T_FMT
                " bytes)", nslots, pe_shm_size((apr_uint32_t)nslots, PE_RL_VALUE_SIZE));
    pe_acc.shm = pe_acc.shared->shm;
    return OK;
}

/* The memcached client for cluster counters: PEAccessServers, else PECacheServers. */
static void access_mc_child_init(apr_pool_t *pchild, server_rec *s)
{
    pe_srv_conf_t *sc = pe_config_srv(s);
    const char *servers = pe_srv_access_servers(sc) ? pe_srv_access_servers(sc) : pe_srv_cache_servers(sc);
    pe_memcache_opts_t o;
    pe_memcache_conf_t *mconf;
    const char *err;
    apr_status_t rv;

    pe_acc.mc = NULL;
    if (!servers || !*servers)
        return;
    memset(&o, 0, sizeof(o));
    o.timeout = apr_time_from_msec(pe_srv_cache_timeout_ms(sc));
    if ((err = pe_memcache_conf_make(pchild, servers, &o, &mconf)) ||
        (rv = pe_memcache_child_init(pchild, mconf, &pe_acc.mc)) != APR_SUCCESS) {
        pe_slog(s, APLOG_WARNING, 0, PE_LOGNO(45006) "memcached client for rate limits unavailable in this child (%s); "
                "limits are per node", err ? err : "cannot start its threads");
        pe_acc.mc = NULL;
    }
}

void pe_access_child_init(apr_pool_t *pchild, server_rec *s)
{
    apr_global_mutex_t *m;
    apr_status_t rv;

    if (!pe_acc.ps)
        return;
    if ((rv = pe_persist_child_init(pe_acc.ps, pchild, &m)) != APR_SUCCESS) {
        pe_slog(s, APLOG_ERR, rv, PE_LOGNO(45005) "%s mutex unusable in this child: the access layer is off here",
                PE_ACCESS_MUTEX);
        pe_acc.shm = NULL;
        return;
    }
    pe_shm_mutex_set(pe_acc.shm, m);
    if ((rv = pe_access_cache_create(pchild, apr_time_from_msec(pe_srv_access_refresh_ms(pe_config_srv(s))),
                                     &pe_acc.cache)) != APR_SUCCESS) {
        pe_slog(s, APLOG_ERR, rv, PE_LOGNO(45007) "cannot create the stored-list cache: the access layer is off here");
        pe_acc.shm = NULL;
        return;
    }
    apr_atomic_set32(&pe_acc.mc_down, 0);
    apr_atomic_set32(&pe_acc.store_failing, 0);
    access_mc_child_init(pchild, s);
}

/* ------------------------------------------------------------------------------------------- */
/* Helpers */

/* r's client address (r->useragent_ip: mod_remoteip's result when configured), canonical. */
static const char *client_ip(request_rec *r, pe_ipnet_addr_t *a)
{
    if (!r->useragent_ip || pe_ipnet_addr_parse(r->useragent_ip, a) != 0)
        return NULL;
    return pe_ipnet_addr_str(r->pool, a);
}

/* A security event; never fatal. Takes details (a new reference). */
static void access_event(request_rec *r, const char *type, const pe_principal_t *p, const char *ip, json_t *details,
                         const char *severity)
{
    pe_store_t *st = pe_auth_store(r);

    pe_json_bind(r->pool, details);
    if (!st || pe_store_event(st, type, p ? p->kind : PE_PRINCIPAL_NONE, p ? p->id : NULL, p ? p->username : NULL, ip,
                              details, severity, apr_time_now()) != PE_STORE_OK)
        pe_rlog(r, APLOG_WARNING, 0, PE_LOGNO(45041) "security event %s was not stored: %s", type,
                st && pe_store_error(st) ? pe_store_error(st) : "store unavailable");
}

/* An event written at most once per key until `until` (the mark lives in the shared table). */
static int access_once(request_rec *r, const char *key, apr_time_t now, apr_time_t until)
{
    int first = 0;

    return pe_access_once(pe_acc.shm, key, now, until, &first) == APR_SUCCESS && first;
}

/* Epoch seconds, rounded up. */
static apr_int64_t epoch_up(apr_time_t t)
{
    return (apr_int64_t)apr_time_sec(t + APR_USEC_PER_SEC - 1);
}

/* The X-RateLimit-* (and Retry-After) headers of a decision; on errors too (err_headers_out). */
static void limit_headers(request_rec *r, const pe_rl_result_t *res)
{
    apr_table_t *t = r->err_headers_out;

    apr_table_setn(t, "X-RateLimit-Limit", apr_psprintf(r->pool, "%u", res->limit));
    apr_table_setn(t, "X-RateLimit-Remaining", apr_psprintf(r->pool, "%u", res->remaining));
    apr_table_setn(t, "X-RateLimit-Reset", apr_psprintf(r->pool, "%" APR_INT64_T_FMT, epoch_up(res->reset)));
    if (!res->allowed)
        apr_table_setn(t, "Retry-After", apr_psprintf(r->pool, "%u", res->retry_after ? res->retry_after : 1));
    else
        apr_table_unset(t, "Retry-After");
}

/* Record memcached's state as this process sees it; the first process to see a change logs it. */
static void mc_state(request_rec *r, int down, apr_status_t rv)
{
    int old;

    if (apr_atomic_read32(&pe_acc.mc_down) == (apr_uint32_t)down)
        return;
    apr_atomic_set32(&pe_acc.mc_down, (apr_uint32_t)down);
    if (pe_access_flag_swap(pe_acc.shm, PE_ACCESS_MC_FLAG, down, apr_time_now(), &old) != APR_SUCCESS || old == down)
        return;
    if (down)
        pe_rlog(r, APLOG_WARNING, rv, PE_LOGNO(45010) "memcached does not answer: rate limits are kept per node "
                "(shared memory) until it does");
    else
        pe_rlog(r, APLOG_NOTICE, 0, PE_LOGNO(45011) "memcached answers again: rate limits are shared across nodes");
}

/* The cluster counter of key for this window; 1 with res filled, 0 when there is none (per node). */
static int cluster_take(request_rec *r, const char *key, const pe_rl_rule_t *rule, apr_time_t now,
                        pe_rl_result_t *res)
{
    apr_time_t wstart = pe_access_window_start(now, rule->window);
    const char *k;
    apr_uint32_t nv = 0;
    apr_status_t rv;

    if (!pe_acc.mc || !(k = pe_access_cluster_key(r->pool, key, wstart)))
        return 0;
    rv = pe_memcache_incr_add(pe_acc.mc, k, 1, pe_access_cluster_ttl(rule->window), &nv);
    mc_state(r, rv != APR_SUCCESS, rv);
    if (rv != APR_SUCCESS)
        return 0;
    pe_access_cluster_result(nv, rule, wstart, now, res);
    return 1;
}

/*
 * Apply a limit to key: the shared table (exact on this node), then the cluster counter. Sets
 * the headers (the most restrictive decision of the request so far).
 * @return OK, or HTTP_TOO_MANY_REQUESTS noted for the error envelope
 */
static int limit_apply(request_rec *r, const char *key, const pe_access_limit_t *l, const char *scope,
                       const pe_principal_t *p, const char *ip)
{
    pe_req_t *rq = pe_req_get(r);
    pe_access_req_t *ar = rq->access;
    pe_rl_result_t res, cres;
    apr_time_t now = apr_time_now();
    apr_status_t rv;

    if ((rv = pe_rl_take(pe_acc.shm, key, now, &l->rule, 1, &res)) != APR_SUCCESS) {
        /* NB: fail open: a broken lock must not take the whole API down (RELIABILITY R56). */
        pe_rlog(r, APLOG_ERR, rv, PE_LOGNO(45032) "rate limit %s not checked: shared table error", key);
        return OK;
    }
    if (res.allowed && cluster_take(r, key, &l->rule, now, &cres))
        pe_access_result_merge(&res, &cres);
    if (!ar) {
        ar = rq->access = apr_pcalloc(r->pool, sizeof(*ar));
        ar->res = res;
        ar->have = 1;
    }
    else {
        pe_access_result_merge(&ar->res, &res);
    }
    /* the headers show the decision that refuses, else the tightest allowance */
    limit_headers(r, res.allowed ? &ar->res : &res);
    if (res.allowed)
        return OK;
    if (access_once(r, apr_pstrcat(r->pool, "ev:", key, NULL), now, res.reset)) {
        pe_rlog(r, APLOG_INFO, 0, PE_LOGNO(45040) "rate limit reached for %s %s (%s); refused until %" APR_INT64_T_FMT,
                scope, p ? p->id : ip, pe_access_limit_str(r->pool, l), epoch_up(res.reset));
        access_event(r, "rate_limit_exceeded", p, ip,
                     json_pack("{s:s,s:I,s:I,s:s}", "scope", scope, "limit", (json_int_t)l->rule.limit, "window_seconds",
                               (json_int_t)apr_time_sec(l->rule.window), "rule", pe_access_limit_str(r->pool, l)),
                     "info");
    }
    return pe_http_fail(r, HTTP_TOO_MANY_REQUESTS, "RATE_LIMITED",
                        pe_json_bind(r->pool, json_pack("{s:s,s:I,s:I,s:I}", "scope", scope, "limit",
                                                        (json_int_t)res.limit, "window_seconds",
                                                        (json_int_t)apr_time_sec(l->rule.window), "retry_after",
                                                        (json_int_t)res.retry_after)),
                        "Rate limit exceeded: retry after %u seconds", res.retry_after);
}

/* ------------------------------------------------------------------------------------------- */
/* Stored blocks and whitelist */

/* Read the stored lists into a new snapshot and install it; returns the current snapshot (a ref). */
static pe_access_snap_t *stored_refresh(request_rec *r, pe_access_snap_t *old, apr_time_t now)
{
    pe_store_t *st = pe_auth_store(r);
    pe_access_snap_t *snap = pe_access_snap_make(), *cur;
    apr_array_header_t *rows[2] = {NULL, NULL};
    pe_access_list_t *lists[2];
    int k, i;

    if (!snap || !st || pe_store_iplist_active(st, PE_IPLIST_BLOCKED, now, &rows[0]) != PE_STORE_OK ||
        pe_store_iplist_active(st, PE_IPLIST_WHITELIST, now, &rows[1]) != PE_STORE_OK) {
        pe_access_snap_discard(snap);
        if (!apr_atomic_xchg32(&pe_acc.store_failing, 1))
            pe_rlog(r, APLOG_WARNING, 0, PE_LOGNO(45020) "stored blocks and whitelist could not be read (%s); %s",
                    st && pe_store_error(st) ? pe_store_error(st) : "store unavailable",
                    old ? "the copy read before stays in use" : "no copy is known yet");
        cur = pe_access_cache_install(pe_acc.cache, NULL, now);
        pe_access_cache_release(pe_acc.cache, old);
        return cur;
    }
    apr_atomic_set32(&pe_acc.store_failing, 0);
    lists[0] = snap->blocks;
    lists[1] = snap->whitelist;
    for (k = 0; k < 2; k++) {
        for (i = 0; i < rows[k]->nelts; i++) {
            const pe_ipentry_t *e = &APR_ARRAY_IDX(rows[k], i, pe_ipentry_t);
            const char *err = pe_access_list_add(lists[k], e->network, e->note, e->expires_at);

            if (err)
                pe_rlog(r, APLOG_WARNING, 0, PE_LOGNO(45021) "%s entry %" APR_INT64_T_FMT " ignored: %s",
                        k ? "pe_ip_whitelist" : "pe_blocked_ips", e->id, err);
        }
    }
    cur = pe_access_cache_install(pe_acc.cache, snap, now);
    pe_access_cache_release(pe_acc.cache, old);
    return cur;
}

/* The stored-list verdict for a, copied out of the snapshot. */
typedef struct {
    int known;            /* a snapshot exists */
    int blocked;          /* on the stored block list */
    const char *reason;   /* its reason (r->pool) */
    apr_time_t until;     /* its expiry, 0 = none */
    int whitelisted;
} stored_verdict_t;

static void stored_lookup(request_rec *r, const pe_ipnet_addr_t *a, apr_time_t now, stored_verdict_t *v)
{
    int refresh = 0;
    pe_access_snap_t *snap = pe_access_cache_get(pe_acc.cache, now, &refresh);
    const pe_access_entry_t *e;

    memset(v, 0, sizeof(*v));
    if (refresh)
        snap = stored_refresh(r, snap, now);
    if (!snap)
        return;
    v->known = 1;
    if ((e = pe_access_list_find(snap->blocks, a, now))) {
        v->blocked = 1;
        v->reason = apr_pstrdup(r->pool, e->note);
        v->until = e->expires;
    }
    v->whitelisted = pe_access_list_find(snap->whitelist, a, now) != NULL;
    pe_access_cache_release(pe_acc.cache, snap);
}

/* ------------------------------------------------------------------------------------------- */
/* The access_checker hook */

/* Is this request spared the per-address limit (PEAccessExempt)? */
static int exempt(request_rec *r, int mask, int whitelisted)
{
    const char *path;
    pe_route_match_t m;
    unsigned groups = (unsigned)mask & (PE_G_ALL | PE_G_DIAG);

    if (!mask)
        return 0;
    if ((mask & PE_ACCESS_EXEMPT_WHITELISTED) && whitelisted)
        return 1;
    if (!(path = pe_handler_route_path(r)))
        return 0;
    if ((mask & PE_ACCESS_EXEMPT_HEALTH) && (r->method_number == M_GET) && !strcmp(path, "/health"))
        return 1;
    if (!groups)
        return 0;
    /* a path of an exempt group is exempt for any method (a 405 is not worth counting) */
    return pe_route_match(r->pool, pe_routes, pe_routes_count, groups & (unsigned)pe_dir_api_groups(pe_config_dir(r)),
                          pe_route_method_bit(r->method), path, &m) != PE_ROUTE_NOT_FOUND;
}

/* GET (or HEAD) /health of this location. */
static int is_health(request_rec *r)
{
    const char *path = (r->method_number == M_GET) ? pe_handler_route_path(r) : NULL;

    return path && !strcmp(path, "/health");
}

/* 403 for an address blocked automatically (failed authentications). */
static int deny_auto_block(request_rec *r, const pe_rl_block_t *b)
{
    apr_table_setn(r->err_headers_out, "Retry-After", apr_psprintf(r->pool, "%u", b->retry_after));
    return pe_http_fail(r, HTTP_FORBIDDEN, "IP_BLOCKED",
                        pe_json_bind(r->pool, json_pack("{s:s,s:o,s:I}", "reason", "too many failed authentications",
                                                        "blocked_until", pe_http_time(r->pool, b->blocked_until),
                                                        "retry_after", (json_int_t)b->retry_after)),
                        "Access denied: this address is temporarily blocked after too many failed authentications");
}

/* 403 for an address on the stored block list. */
static int deny_stored_block(request_rec *r, const char *ip, const stored_verdict_t *v, apr_time_t now)
{
    const char *reason = v->reason && *v->reason ? v->reason : "blocked by an administrator";

    if (access_once(r, apr_pstrcat(r->pool, "ev:blocked:", ip, NULL), now, now + PE_ACCESS_EVENT_EVERY))
        access_event(r, "blocked_ip_refused", NULL, ip, json_pack("{s:s}", "reason", reason), "warning");
    return pe_http_fail(r, HTTP_FORBIDDEN, "IP_BLOCKED",
                        pe_json_bind(r->pool, json_pack("{s:s,s:o}", "reason", reason, "blocked_until",
                                                        pe_http_time(r->pool, v->until))),
                        "Access denied: %s", reason);
}

int pe_access_check(request_rec *r)
{
    pe_srv_conf_t *sc;
    pe_dir_conf_t *dc;
    const pe_access_limit_t *lim;
    const pe_access_strikes_t *ab;
    stored_verdict_t v;
    pe_ipnet_addr_t a;
    const char *ip;
    apr_time_t now;
    int wl;

    if (!ap_is_initial_req(r) || !pe_acc.shm || !pe_acc.cache || !pe_http_handler_is_ours(r))
        return DECLINED;
    dc = pe_config_dir(r);
    if (!pe_dir_access_on(dc))
        return DECLINED;
    sc = pe_config_srv(r->server);
    pe_req_get(r); /* the context: X-Request-ID, and the error envelope for what follows */
    if (!(ip = client_ip(r, &a))) {
        pe_rlog(r, APLOG_DEBUG, 0, PE_LOGNO(45008) "no IP client address; access checks skipped");
        return DECLINED;
    }
    now = apr_time_now();

    /* 1. firewall: automatic blocks (shared table: effective at once in every process) */
    ab = pe_srv_autoblock(sc);
    /* NB: the table is only asked while some automatic block may still run: the horizon is the
     * latest end of any block, raised (in shared memory) before the failure that started it is
     * answered. So with no block running no lock is taken for this check. */
    /* NB: GET /health is never refused by an automatic block: behind a proxy or a NAT the load
     * balancer's checks share the address that failed, and taking the node out of service for
     * someone's wrong passwords helps no one (stored blocks, an administrator's choice, apply). */
    if (ab->on && now < __atomic_load_n(pe_acc.shared->horizon, __ATOMIC_ACQUIRE) && !is_health(r)) {
        pe_rl_block_t b;

        if (pe_rl_blocked(pe_acc.shm, apr_pstrcat(r->pool, "fw:ip:", ip, NULL), now, &b) == APR_SUCCESS && b.blocked)
            return deny_auto_block(r, &b);
    }
    /* 2. firewall: stored blocks; whitelist mode */
    stored_lookup(r, &a, now, &v);
    if (v.blocked)
        return deny_stored_block(r, ip, &v, now);
    wl = pe_dir_ip_whitelist(dc);
    if (wl && !v.known)
        return pe_http_fail(r, HTTP_SERVICE_UNAVAILABLE, "STORE_UNAVAILABLE", NULL,
                            "the IP whitelist cannot be read; try again later");
    if (wl && !v.whitelisted) {
        if (access_once(r, apr_pstrcat(r->pool, "ev:notlisted:", ip, NULL), now, now + PE_ACCESS_EVENT_EVERY))
            access_event(r, "ip_not_whitelisted", NULL, ip, NULL, "info");
        return pe_http_fail(r, HTTP_FORBIDDEN, "IP_NOT_WHITELISTED", NULL,
                            "Access denied: this address is not on the IP whitelist");
    }
    /* 3. per-address rate limit */
    lim = pe_srv_ip_limit(sc);
    if (lim->on && !exempt(r, pe_dir_access_exempt(dc), v.whitelisted)) {
        int rc = limit_apply(r, apr_pstrcat(r->pool, "rl:ip:", ip, NULL), lim, "ip", NULL, ip);

        if (rc != OK)
            return rc;
    }
    return DECLINED;
}

/* ------------------------------------------------------------------------------------------- */
/* After authentication */

/* The limit of a plan: its own line, else "*", else none. */
static const pe_access_limit_t *plan_limit(const apr_array_header_t *limits, const char *plan)
{
    const pe_access_limit_t *any = NULL;
    int i;

    for (i = 0; limits && i < limits->nelts; i++) {
        const pe_access_plan_limit_t *pl = &APR_ARRAY_IDX(limits, i, pe_access_plan_limit_t);

        if (plan && !strcmp(pl->plan, plan))
            return &pl->limit;
        if (!strcmp(pl->plan, "*"))
            any = &pl->limit;
    }
    return any;
}

int pe_access_principal(request_rec *r, const pe_principal_t *p)
{
    const pe_access_limit_t *l;
    const char *plan;
    pe_ipnet_addr_t a;

    if (!pe_acc.shm || !p || !p->id || !pe_dir_access_on(pe_config_dir(r)))
        return OK;
    plan = p->user ? p->user->subscription_plan : pe_principal_kind_name(p->kind);
    l = plan_limit(pe_srv_principal_limits(pe_config_srv(r->server)), plan);
    if (!l || !l->on)
        return OK;
    /* NB: one allowance per account, whichever credential (API key or session) it uses. */
    return limit_apply(r, apr_pstrcat(r->pool, "rl:", pe_principal_kind_name(p->kind), ":", p->id, NULL), l,
                       "principal", p, client_ip(r, &a));
}

/* An attempt of this request reserved in PEAutoBlock's counters (r->pool user data). */
typedef struct access_attempt_t {
    const char *key;
    const pe_rl_strike_rule_t *rule;
    int open; /* reserved and not settled */
} access_attempt_t;

#define PE_ACCESS_ATTEMPT "pe-access-attempt"

/* The request is over with its attempt still reserved (an error path): give it back. */
static apr_status_t attempt_cleanup(void *data)
{
    access_attempt_t *at = data;

    if (at->open && pe_acc.shm)
        pe_rl_strike_settle(pe_acc.shm, at->key, apr_time_now(), at->rule, 0, NULL);
    at->open = 0;
    return APR_SUCCESS;
}

int pe_access_attempt_begin(request_rec *r)
{
    const pe_access_strikes_t *ab;
    access_attempt_t *at = NULL;
    apr_interval_time_t pause = apr_time_from_msec(1);
    apr_time_t now = apr_time_now(), deadline = now + PE_ACCESS_ATTEMPT_WAIT;
    pe_rl_block_t b;
    pe_ipnet_addr_t a;
    apr_status_t rv;
    const char *ip;

    if (!pe_acc.shm || !pe_dir_access_on(pe_config_dir(r)) || !(ab = pe_srv_autoblock(pe_config_srv(r->server)))->on ||
        !(ip = client_ip(r, &a)))
        return OK;
    apr_pool_userdata_get((void **)&at, PE_ACCESS_ATTEMPT, r->pool);
    if (at && at->open)
        return OK;
    for (;;) {
        rv = pe_rl_strike_reserve(pe_acc.shm, apr_pstrcat(r->pool, "fw:ip:", ip, NULL), now, &ab->rule, &b);
        if (rv == APR_SUCCESS && b.blocked)
            return deny_auto_block(r, &b);
        if (rv == APR_SUCCESS)
            break;
        if (rv != APR_EAGAIN) {
            /* NB: as when a failure cannot be counted: the attempt goes on, and is counted if it fails */
            pe_rlog(r, APLOG_ERR, rv, PE_LOGNO(45033) "automatic block of %s not checked: shared table error", ip);
            return OK;
        }
        /* failures and attempts in progress fill the allowance: wait for those to decide */
        if (now >= deadline) {
            apr_table_setn(r->err_headers_out, "Retry-After", "1");
            return pe_http_fail(r, HTTP_TOO_MANY_REQUESTS, "TOO_MANY_ATTEMPTS",
                                pe_json_bind(r->pool, json_pack("{s:I}", "retry_after", (json_int_t)1)),
                                "Too many authentication attempts in progress from this address; try again later");
        }
        apr_sleep(pause);
        if (pause < apr_time_from_msec(32))
            pause *= 2;
        now = apr_time_now();
    }
    if (!at) {
        at = apr_pcalloc(r->pool, sizeof(*at));
        apr_pool_userdata_setn(at, PE_ACCESS_ATTEMPT, NULL, r->pool);
        apr_pool_cleanup_register(r->pool, at, attempt_cleanup, apr_pool_cleanup_null);
    }
    at->key = apr_pstrcat(r->pool, "fw:ip:", ip, NULL);
    at->rule = &ab->rule;
    at->open = 1;
    return OK;
}

void pe_access_attempt_end(request_rec *r, int failed, const char *reason)
{
    const pe_access_strikes_t *ab;
    access_attempt_t *at = NULL;
    pe_rl_block_t b;
    pe_ipnet_addr_t a;
    const char *ip;
    apr_time_t now = apr_time_now();
    apr_status_t rv;

    if (!pe_acc.shm || !pe_dir_access_on(pe_config_dir(r)) || !(ab = pe_srv_autoblock(pe_config_srv(r->server)))->on ||
        !(ip = client_ip(r, &a)))
        return;
    apr_pool_userdata_get((void **)&at, PE_ACCESS_ATTEMPT, r->pool);
    if (at && at->open) {
        at->open = 0;
        rv = pe_rl_strike_settle(pe_acc.shm, at->key, now, at->rule, failed, &b);
    }
    else if (failed) {
        rv = pe_rl_strike(pe_acc.shm, apr_pstrcat(r->pool, "fw:ip:", ip, NULL), now, &ab->rule, &b);
    }
    else {
        return;
    }
    if (rv != APR_SUCCESS || !failed)
        return;
    /* the failure that starts a block sets it to now + block_for exactly; later ones leave it */
    if (b.blocked && b.blocked_until == now + ab->rule.block_for) {
        apr_time_t h = __atomic_load_n(pe_acc.shared->horizon, __ATOMIC_ACQUIRE);

        while (h < b.blocked_until &&
               !__atomic_compare_exchange_n(pe_acc.shared->horizon, &h, b.blocked_until, 0, __ATOMIC_SEQ_CST,
                                            __ATOMIC_ACQUIRE))
            ;
        pe_rlog(r, APLOG_WARNING, 0, PE_LOGNO(45030) "address %s blocked for %" APR_TIME_T_FMT " s after %u failed "
                "authentications (last: %s)", ip, apr_time_sec(ab->rule.block_for), ab->rule.max_strikes, reason);
        access_event(r, "ip_temporarily_blocked", NULL, ip,
                     json_pack("{s:I,s:o,s:s}", "failed_attempts", (json_int_t)ab->rule.max_strikes, "blocked_until",
                               pe_http_time(r->pool, b.blocked_until), "last_failure", reason),
                     "warning");
    }
}

void pe_access_auth_failed(request_rec *r, const char *reason)
{
    pe_access_attempt_end(r, 1, reason);
}

/* A wrong credential settles the reserved attempt: a strike the first time this value (digest)
 * fails from this address within the window, no strike for a value replayed or for no digest. */
void pe_access_credential_failed(request_rec *r, const char *reason, const char *digest)
{
    const pe_access_strikes_t *ab;
    pe_ipnet_addr_t a;
    const char *ip;
    apr_time_t now = apr_time_now();
    int first;

    if (!digest || !pe_acc.shm || !pe_dir_access_on(pe_config_dir(r)) ||
        !(ab = pe_srv_autoblock(pe_config_srv(r->server)))->on || !(ip = client_ip(r, &a))) {
        pe_access_attempt_end(r, 0, reason);
        return;
    }
    first = access_once(r, apr_pstrcat(r->pool, "fw:cred:", ip, ":", digest, NULL), now, now + ab->rule.window);
    pe_access_attempt_end(r, first, reason);
}
