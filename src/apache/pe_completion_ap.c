/*
 * pe_completion_ap.c: process state of the completion concern and its lifecycle hooks:
 * curl_global_init, the response cache (shared segment in the parent, memcached client per
 * child), the upstream curl handle pool per child, the conversation-log writer per child and
 * the log_transaction hook that feeds it.
 */
#include "pe_auth.h"
#include "pe_completion.h"
#include "pe_config.h"
#include "pe_hooks.h"
#include "pe_http.h"
#include "pe_log.h"
#include "pe_memcache.h"
#include "pe_monitor_ap.h"
#include "pe_store_ap.h"
#include "pe_version.h"

#include "ap_mpm.h"
#include "http_protocol.h"
#include "pe_persist.h"
#include "util_mutex.h"
#include <apr_strings.h>
#include <curl/curl.h>

#define PE_CACHE_MUTEX "pe-cache"
#define PE_NOTE_KEY "pe_completion_note"
/* Final conversation-log flush at child exit: well inside httpd's 9 s SIGKILL deadline. */
#define PE_MSGLOG_STOP_BUDGET apr_time_from_sec(5)
/* API-usage retention: rows removed per purge at most (one bounded DELETE per write of the writer). */
#define PE_USAGE_PURGE_MAX 500

/* This process's state; reset in pre_config for every configuration generation. */
static struct {
    pe_persist_t *cache_ps;     /* the cache and its mutex, made once per httpd parent */
    apr_global_mutex_t *cache_mutex;
    pe_cache_t *cache;
    pe_upstream_pool_t *handles;
    pe_msglog_t *msglog;
    int msglog_on, usage_on;    /* which kinds the writer takes (PEMessageLog, PEUsageLog) */
    pe_memcache_t *mc;          /* the cache's memcached client in this child, or NULL */
    server_rec *s;
    pe_completion_research_fn *research;
} pe_cpl;

static int pe_curl_ready;

/* pre_config: a new generation; the cache mutex is registered so `Mutex pe-cache ...` works. */
int pe_completion_pre_config(apr_pool_t *pconf, apr_pool_t *plog, apr_pool_t *ptemp)
{
    pe_completion_research_fn *research = pe_cpl.research;

    memset(&pe_cpl, 0, sizeof(pe_cpl));
    pe_cpl.research = research; /* installed by a concern's register_hooks, once per process */
    return ap_mutex_register(pconf, PE_CACHE_MUTEX, NULL, APR_LOCK_DEFAULT, 0);
}

/* The shared-memory cache, made once per httpd parent (pe_persist.h). */
static apr_status_t cache_make(apr_pool_t *pp, apr_global_mutex_t *mutex, void *baton, void **obj)
{
    const apr_int64_t *sizes = baton;

    return pe_cache_create(pp, (apr_uint32_t)sizes[0], (apr_size_t)sizes[1], mutex, (pe_cache_t **)obj);
}

/* post_config: libcurl once per process, then the cache's segment and mutex (kept across
 * generations, so a graceful restart keeps the cached answers and never destroys a lock that the
 * old generation's children still use). */
int pe_completion_post_config(apr_pool_t *pconf, apr_pool_t *ptemp, server_rec *s)
{
    pe_srv_conf_t *sc = pe_config_srv(s);
    apr_int64_t sizes[2];
    int entries;
    pe_persist_state_e state;
    apr_off_t esize;
    apr_status_t rv;

    /* NB: curl_global_init is not thread-safe in every libcurl build; the parent calls it here,
     * single-threaded and before any child exists, and the children inherit it. It is never
     * undone: other modules in this process may use libcurl too. */
    if (!pe_curl_ready) {
        CURLcode cc = curl_global_init(CURL_GLOBAL_ALL);

        if (cc != CURLE_OK) {
            pe_slog(s, APLOG_CRIT, 0, PE_LOGNO(41010) "curl_global_init failed: %s", curl_easy_strerror(cc));
            return HTTP_INTERNAL_SERVER_ERROR;
        }
        pe_curl_ready = 1;
    }
    pe_cpl.s = s;
    if (!pe_srv_cache_on(sc))
        return OK;
    sizes[0] = entries = pe_srv_cache_shm_entries(sc);
    sizes[1] = esize = pe_srv_cache_shm_entry_size(sc);
    if ((rv = pe_persist_get(s, "cache", PE_CACHE_MUTEX, ((apr_uint64_t)entries << 32) | (apr_uint32_t)esize,
                             cache_make, sizes, &pe_cpl.cache_ps, &state)) != APR_SUCCESS) {
        pe_slog(s, APLOG_CRIT, rv, PE_LOGNO(42002) "cannot create the shared-memory cache (%d entries of %" APR_OFF_T_FMT
                " bytes) or its %s mutex", entries, esize, PE_CACHE_MUTEX);
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    if (state == PE_PERSIST_OTHER)
        pe_slog(s, APLOG_NOTICE, 0, PE_LOGNO(42006) "PECacheShmEntries/PECacheShmEntrySize take effect when httpd is "
                "stopped and started; the shared-memory cache keeps its size (and its entries) across restarts");
    pe_cpl.cache = pe_cpl.cache_ps->obj;
    return OK;
}

/* The writer's state of this child: its store connection and the API-usage retention. */
typedef struct pe_logw_t {
    pe_store_own_t *own;
    apr_interval_time_t retention; /* 0: API-usage records are kept */
    apr_interval_time_t purge_every;
    apr_time_t last_purge;
    int purge_full;                /* the last purge removed its bound: more is waiting */
} pe_logw_t;

/* Retention of the API-usage records: at most PE_USAGE_PURGE_MAX rows, at most every
 * purge_every unless the last purge was full; a failure waits for the next turn. */
static void usage_purge(pe_logw_t *w, pe_store_t *st)
{
    apr_time_t now = apr_time_now();
    long removed = 0;

    if (!w->retention || (!w->purge_full && now - w->last_purge < w->purge_every))
        return;
    w->last_purge = now;
    if (pe_store_api_usage_purge(st, now - w->retention, PE_USAGE_PURGE_MAX, &removed) != PE_STORE_OK)
        removed = 0;
    w->purge_full = removed >= PE_USAGE_PURGE_MAX;
}

/* The log writer's store write (conversation logs and API-usage records), on a connection of its
 * own (never one of mod_dbd's pool, which request threads may all hold); a failed write closes
 * it for a fresh one next time. */
static apr_status_t msglog_write(void *baton, apr_pool_t *p, const pe_message_log_t *recs, int n,
                                 const pe_api_usage_t *usage, int nu)
{
    pe_logw_t *w = baton;
    pe_store_t *st = pe_store_own_get(w->own, p);

    if (!st)
        return APR_EGENERAL;
    if (pe_store_msglog_insert(st, recs, n) == PE_STORE_OK && pe_store_api_usage_insert(st, usage, nu) == PE_STORE_OK) {
        usage_purge(w, st);
        return APR_SUCCESS;
    }
    pe_store_own_close(w->own);
    return APR_EGENERAL;
}

/* pchild pre-cleanup: stop the writer, which writes what is left (bounded), and join it. */
static apr_status_t msglog_child_exit(void *data)
{
    pe_msglog_t *q = data;
    pe_msglog_stats_t st;

    pe_msglog_stop(q, PE_MSGLOG_STOP_BUDGET);
    pe_msglog_stats(q, &st);
    pe_slog(pe_cpl.s, APLOG_DEBUG, 0,
            PE_LOGNO(44004) "message log closed: %" APR_UINT64_T_FMT " written, %" APR_UINT64_T_FMT " dropped, %"
            APR_UINT64_T_FMT " lost; API usage: %" APR_UINT64_T_FMT " written, %" APR_UINT64_T_FMT " dropped, %"
            APR_UINT64_T_FMT " lost", st.written, st.dropped, st.lost, st.u_written, st.u_dropped, st.u_lost);
    return APR_SUCCESS;
}

/* The log queue (conversation logs and API-usage records) and its writer for this child. */
static void msglog_child_init(apr_pool_t *pchild, server_rec *s)
{
    pe_srv_conf_t *sc = pe_config_srv(s);
    pe_msglog_conf_t mc;
    pe_logw_t *w;
    apr_status_t rv;

    pe_cpl.msglog_on = pe_srv_msglog_on(sc);
    pe_cpl.usage_on = pe_srv_usagelog_on(sc);
    if (!pe_cpl.msglog_on && !pe_cpl.usage_on)
        return;
    w = apr_pcalloc(pchild, sizeof(*w));
    w->own = pe_store_own_create(pchild, s);
    w->retention = apr_time_from_msec(pe_srv_usagelog_retention_ms(sc));
    /* NB: a quarter of the retention, between 100 ms and a minute: a short retention (tests) is
     * kept close, a long one costs one indexed DELETE a minute. */
    w->purge_every = w->retention / 4;
    if (w->purge_every < apr_time_from_msec(100))
        w->purge_every = apr_time_from_msec(100);
    if (w->purge_every > apr_time_from_sec(60))
        w->purge_every = apr_time_from_sec(60);
    memset(&mc, 0, sizeof(mc));
    mc.max_records = pe_srv_msglog_queue(sc);
    mc.batch = pe_srv_msglog_batch(sc);
    mc.interval = apr_time_from_msec(pe_srv_msglog_interval_ms(sc));
    mc.max_field = (apr_size_t)pe_srv_msglog_max_record(sc);
    mc.watch = pe_monitor_block(); /* POST /v1/monitoring/flush-logs reaches every child */
    mc.slot = pe_monitor_slot();
    mc.usage_max = pe_cpl.usage_on ? pe_srv_usagelog_queue(sc) : 0;
    mc.tidy_every = pe_cpl.usage_on && w->retention ? w->purge_every : 0;
    if ((rv = pe_msglog_create(pchild, &mc, msglog_write, w, &pe_cpl.msglog)) !=
            APR_SUCCESS ||
        (rv = pe_msglog_start(pe_cpl.msglog)) != APR_SUCCESS) {
        pe_slog(s, APLOG_ERR, rv, PE_LOGNO(44005) "cannot start the message log writer; completions are not logged");
        pe_cpl.msglog = NULL;
        return;
    }
    /* NB: a PRE-cleanup runs before pchild's subpools are destroyed, and mod_dbd keeps its
     * per-child connection pool in such a subpool, so the final flush can still write. */
    apr_pool_pre_cleanup_register(pchild, pe_cpl.msglog, msglog_child_exit);
}

/* Remote get: the cache front end calls it with the child's memcached client. */
static apr_status_t mc_get(void *baton, apr_pool_t *p, const char *key, char **val, apr_size_t *len)
{
    return pe_memcache_get(baton, p, key, val, len);
}

/* Remote set: a memcached set with a TTL in seconds. */
static apr_status_t mc_mget(void *baton, apr_pool_t *p, int n, const char *const *keys, char **vals,
                            apr_size_t *lens, apr_status_t *rvs)
{
    return pe_memcache_getm(baton, p, n, keys, vals, lens, rvs);
}

static apr_status_t mc_set(void *baton, const char *key, const void *val, apr_size_t len, apr_uint32_t ttl_s)
{
    return pe_memcache_set(baton, key, val, len, ttl_s);
}

/*
 * The cache's remote tier for this child: memcached when PECacheServers is set. Every operation
 * is bounded by PECacheTimeout in pe_memcache (apr_memcache has no I/O timeout of its own); a
 * failing server is skipped for its retry period and the shared-memory tier answers meanwhile.
 */
static void cache_child_init(apr_pool_t *pchild, server_rec *s)
{
    pe_srv_conf_t *sc = pe_config_srv(s);
    pe_memcache_opts_t o;
    pe_memcache_conf_t *mconf;
    pe_memcache_t *mc;
    const char *err;
    apr_status_t rv;

    if (!pe_srv_cache_servers(sc))
        return;
    memset(&o, 0, sizeof(o));
    o.timeout = apr_time_from_msec(pe_srv_cache_timeout_ms(sc));
    if ((err = pe_memcache_conf_make(pchild, pe_srv_cache_servers(sc), &o, &mconf))) {
        pe_slog(s, APLOG_WARNING, 0, PE_LOGNO(42004) "PECacheServers: %s; the shared-memory cache is used", err);
        return;
    }
    if ((rv = pe_memcache_child_init(pchild, mconf, &mc)) != APR_SUCCESS) {
        pe_slog(s, APLOG_WARNING, rv, PE_LOGNO(42005) "memcached client unavailable in this child; the shared-memory "
                "cache is used");
        return;
    }
    pe_cache_set_remote(pe_cpl.cache, mc_get, mc_mget, mc_set, mc);
    pe_cpl.mc = mc;
}

/* child_init: per-child state. */
void pe_completion_child_init(apr_pool_t *pchild, server_rec *s)
{
    int threads = 1;
    apr_status_t rv;

    pe_cpl.s = s;
    if (pe_cpl.cache_ps) {
        rv = pe_persist_child_init(pe_cpl.cache_ps, pchild, &pe_cpl.cache_mutex);
        if (rv != APR_SUCCESS) {
            pe_slog(s, APLOG_ERR, rv, PE_LOGNO(42003) "cache mutex unusable in this child: the cache is off here");
            pe_cpl.cache = NULL;
        }
        else {
            pe_cache_mutex_set(pe_cpl.cache, pe_cpl.cache_mutex);
        }
    }
    if (pe_cpl.cache)
        cache_child_init(pchild, s);
    ap_mpm_query(AP_MPMQ_MAX_THREADS, &threads);
    if ((rv = pe_upstream_pool_create(pchild, threads > 0 ? threads : 1, &pe_cpl.handles)) != APR_SUCCESS)
        pe_slog(s, APLOG_ERR, rv, PE_LOGNO(41011) "cannot create the upstream handle pool");
    msglog_child_init(pchild, s);
}

/* child_stopping: write what is queued now rather than at the next interval. */
void pe_completion_child_stopping(apr_pool_t *pchild, int graceful)
{
    if (pe_cpl.msglog)
        pe_msglog_flush_soon(pe_cpl.msglog);
}

/* Install the research function. */
void pe_completion_set_research(pe_completion_research_fn *fn)
{
    pe_cpl.research = fn;
}

/* The installed research function, or NULL. */
pe_completion_research_fn *pe_completion_research(void)
{
    return pe_cpl.research;
}

/* This child's upstream handle pool. */
pe_upstream_pool_t *pe_completion_handles(void)
{
    return pe_cpl.handles;
}

/* This child's memcached client of the cache (readiness checks), or NULL. */
pe_memcache_t *pe_completion_memcache(void)
{
    return pe_cpl.mc;
}

/* This child's conversation-log queue, or NULL. */
pe_msglog_t *pe_completion_msglog(void)
{
    return pe_cpl.msglog;
}

/* This generation's response cache. */
pe_cache_t *pe_completion_cache(void)
{
    return pe_cpl.cache;
}

/* Upstream settings from the server configuration. */
void pe_completion_upstream_conf(server_rec *s, int stream, pe_upstream_conf_t *out)
{
    pe_srv_conf_t *sc = pe_config_srv(s);

    memset(out, 0, sizeof(*out));
    out->url = pe_srv_upstream_url(sc);
    out->key = pe_srv_upstream_key(sc);
    out->user_agent = PE_SERVICE_NAME "/" PE_VERSION;
    out->connect_timeout_ms = (long)pe_srv_upstream_connect_ms(sc);
    out->timeout_ms = (long)(stream ? pe_srv_upstream_stream_timeout_ms(sc) : pe_srv_upstream_timeout_ms(sc));
    out->retries = pe_srv_upstream_retries(sc);
    out->backoff_ms = (long)pe_srv_upstream_backoff_ms(sc);
    out->retry_after_max_ms = (long)pe_srv_upstream_retry_max_ms(sc);
    out->max_response = (apr_size_t)pe_srv_upstream_max_response(sc);
}

/* Enhancement settings from the server configuration. */
const pe_enhance_conf_t *pe_completion_enhance_conf(apr_pool_t *p, server_rec *s)
{
    pe_srv_conf_t *sc = pe_config_srv(s);
    pe_enhance_conf_t *c = apr_pcalloc(p, sizeof(*c));
    const char *list = pe_srv_reasoning_models(sc);

    c->models[PE_LEVEL_LOW] = pe_srv_model_low(sc);
    c->models[PE_LEVEL_MEDIUM] = pe_srv_model_medium(sc);
    c->models[PE_LEVEL_HIGH] = pe_srv_model_high(sc);
    c->models[PE_LEVEL_ULTRA] = pe_srv_model_ultra(sc);
    if (list) {
        apr_array_header_t *a = apr_array_make(p, 8, sizeof(const char *));
        char *copy = apr_pstrdup(p, list), *state = NULL, *w;

        for (w = apr_strtok(copy, " ", &state); w; w = apr_strtok(NULL, " ", &state))
            APR_ARRAY_PUSH(a, const char *) = w;
        c->reasoning_models = a;
    }
    return c;
}

/* Leave the completion's note for log_transaction (r->pool userdata). */
void pe_completion_note_set(request_rec *r, pe_completion_note_t *note)
{
    apr_pool_userdata_setn(note, PE_NOTE_KEY, NULL, r->pool);
}

/*
 * The API-usage record of a request authenticated with a user's API key (whatever its route and
 * answer, 429 of the per-key rate limit included): one struct on the stack, copied into the
 * writer's ring (pe_msglog_put_usage); no allocation, no store call here.
 */
static void usage_record(request_rec *r, pe_req_t *rq, const pe_completion_note_t *n, apr_time_t now)
{
    const pe_principal_t *p = rq->principal;
    pe_api_usage_t u;

    if (!p || p->via != PE_AUTH_USER_KEY || !p->user)
        return;
    u.request_id = rq->request_id;
    u.user_id = p->id;
    u.key_prefix = p->user->api_key_prefix;
    u.endpoint = pe_handler_route_path(r);
    if (!u.endpoint)
        u.endpoint = r->uri;
    u.method = r->method;
    u.status = r->status;
    u.latency_ms = (apr_int64_t)apr_time_as_msec(now - rq->started);
    u.tokens_used = n ? n->tokens : rq->tokens;
    u.ip_address = r->useragent_ip;
    u.user_agent = apr_table_get(r->headers_in, "User-Agent");
    u.created_at = rq->started;
    pe_msglog_put_usage(pe_cpl.msglog, &u);
}

/* log_transaction: queue the completion's conversation log and the request's API-usage record
 * (the queue copies both). */
int pe_completion_log_transaction(request_rec *r)
{
    pe_completion_note_t *n = NULL;
    pe_message_log_t rec;
    pe_req_t *rq;
    apr_time_t now;

    if (!pe_cpl.msglog || r->main || !(rq = pe_req_find(r)))
        return DECLINED;
    apr_pool_userdata_get((void **)&n, PE_NOTE_KEY, r->pool);
    now = apr_time_now();
    if (pe_cpl.usage_on)
        usage_record(r, rq, n, now);
    if (!n || !pe_cpl.msglog_on)
        return DECLINED;
    memset(&rec, 0, sizeof(rec));
    rec.request_id = rq->request_id;
    rec.user_id = n->user_id;
    rec.username = n->username;
    rec.model = n->model;
    rec.r_type = n->r_type;
    rec.research_enabled = n->research;
    rec.messages = n->messages;
    rec.response = n->response;
    rec.status = r->status;
    rec.tokens_used = n->tokens;
    rec.processing_time_ms = (apr_int64_t)apr_time_as_msec(now - rq->started);
    rec.ip_address = r->useragent_ip;
    rec.created_at = rq->started;
    pe_msglog_put(pe_cpl.msglog, &rec);
    return DECLINED;
}
