/*
 * pe_memcache.c: memcached client on apr_memcache with a hard time bound per operation.
 *
 * Why threads: apr_memcache (1.5-1.7) connects with a 1 s timeout and then makes the socket blocking
 * with no timeout, and its connection struct is opaque, so neither a socket timeout nor a poll can be
 * put around its send/recv. The only sound bound is to run the call on another thread and stop
 * waiting for it: each server has a lane of I/O threads; callers claim an idle thread, hand it the
 * operation and wait with apr_thread_cond_timedwait() until the deadline. See pe_memcache.h for the
 * states a server goes through (up, down, probing) and the cap on abandoned operations.
 *
 * Slot states (one slot per I/O thread; every change under the lane mutex):
 *   IDLE -> CLAIMED (a caller owns the slot and copies its inputs into the slot's pool)
 *        -> ASSIGNED (the thread runs it) -> DONE (the caller copies the outputs) -> IDLE
 *   ASSIGNED -> ABANDONED (caller gave up at its deadline) -> IDLE (the thread, when the call returns)
 * NB: everything a thread touches lives in the client's own pool (never the caller's), so an abandoned
 * operation cannot outlive the memory it reads: inputs are copied into the slot pool before ASSIGNED.
 */
#include "pe_logno.h"
#include "pe_memcache.h"
#include "pe_thread.h"

#include <apr_atomic.h>
#include <apr_hash.h>
#include <apr_memcache.h>
#include <apr_strings.h>
#include <apr_thread_cond.h>
#include <apr_thread_mutex.h>
#include <apr_thread_proc.h>
#include <string.h>

/* Idle connections of a lane are closed after this long (apr_reslist TTL, microseconds). */
#define PE_MC_CONN_TTL apr_time_from_sec(60)
/* I/O threads run apr_memcache and getaddrinfo only. */
#define PE_MC_STACK (512 * 1024)
/* Free memory the client's allocator keeps for reuse. */
#define PE_MC_MAX_FREE (2 * 1024 * 1024)
/* Longest wait for the I/O threads to exit at teardown. */
#define PE_MC_STOP_WAIT_MAX apr_time_from_sec(1)

typedef struct {
    const char *host;
    apr_port_t port;
} pe_mc_server_conf_t;

struct pe_memcache_conf_t {
    int n;
    pe_mc_server_conf_t servers[PE_MEMCACHE_SERVERS_MAX];
    pe_memcache_opts_t opts;
};

typedef enum { PE_MC_GET, PE_MC_MGET, PE_MC_SET, PE_MC_ADD, PE_MC_INCR, PE_MC_INCR_ADD, PE_MC_DELETE } pe_mc_op_e;

typedef enum { PE_SLOT_IDLE, PE_SLOT_CLAIMED, PE_SLOT_ASSIGNED, PE_SLOT_DONE, PE_SLOT_ABANDONED } pe_mc_slot_state_e;

/* One operation: inputs, then outputs. */
typedef struct {
    pe_mc_op_e op;
    const char *key;
    char *data;
    apr_size_t len;
    apr_uint32_t ttl;
    apr_uint32_t delta;
    char *val;
    apr_size_t vlen;
    apr_uint32_t nv;
    /* PE_MC_MGET: keys[0] is key; per key its value and status */
    int nk;
    const char *keys[PE_MEMCACHE_MGET_MAX];
    char *vals[PE_MEMCACHE_MGET_MAX];
    apr_size_t vlens[PE_MEMCACHE_MGET_MAX];
    apr_status_t rvs[PE_MEMCACHE_MGET_MAX];
} pe_mc_job_t;

typedef struct pe_mc_lane_t pe_mc_lane_t;

/* An I/O thread and the operation it carries. */
typedef struct {
    pe_mc_lane_t *lane;
    apr_thread_t *thread;
    apr_thread_cond_t *cv; /* ASSIGNED for the thread, DONE for the caller */
    apr_pool_t *pool;      /* the job's memory; cleared by the caller that claims the slot */
    pe_mc_slot_state_e state;
    pe_mc_job_t job;
    apr_status_t rv;
} pe_mc_slot_t;

/* One server: its apr_memcache, its threads and its state. */
struct pe_mc_lane_t {
    pe_memcache_t *mc;
    const char *name; /* host:port, for logs */
    apr_memcache_t *amc;
    apr_memcache_server_t *ms;
    apr_thread_mutex_t *mutex;
    apr_thread_cond_t *idle_cv; /* a slot became IDLE, or a thread exited */
    pe_mc_slot_t *slots;
    int nslots;
    int nalive;     /* threads running */
    int nabandoned; /* slots ABANDONED (threads blocked in an operation nobody waits for) */
    int stop;
    int up;
    int probing;
    apr_time_t retry_at;
};

struct pe_memcache_t {
    apr_pool_t *pool; /* unmanaged, own allocator with a mutex */
    apr_interval_time_t timeout;
    apr_interval_time_t retry;
    int nlanes;
    pe_mc_lane_t *lanes;
    volatile apr_uint32_t ops, hits, misses, errors, timeouts, fast_fails, abandoned, mget_retries;
};

/* Transitions a caller logs once it has left the lock. */
typedef enum { PE_MC_SAME, PE_MC_WENT_DOWN, PE_MC_CAME_UP } pe_mc_change_e;

/* ---- configuration ---- */

/* Is s a DNS name or IPv4 address: labels of 1..63 [A-Za-z0-9-], no hyphen at either end? */
static int pe_mc_host_ok(const char *s, apr_size_t n)
{
    apr_size_t i, label = 0;

    if (n == 0 || n > 253)
        return 0;
    for (i = 0; i < n; i++) {
        char c = s[i];
        if (c == '.') {
            if (label == 0 || s[i - 1] == '-')
                return 0;
            label = 0;
            continue;
        }
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-'))
            return 0;
        if (c == '-' && label == 0)
            return 0;
        if (++label > 63)
            return 0;
    }
    return label > 0 && s[n - 1] != '-';
}

/* Parse one "host:port" entry into sc; NULL or the reason. */
static const char *pe_mc_parse_server(apr_pool_t *p, const char *tok, pe_mc_server_conf_t *sc)
{
    const char *colon = strrchr(tok, ':');
    const char *q;
    long port = 0;

    if (tok[0] == '[' || (colon && memchr(tok, ':', (apr_size_t)(colon - tok))))
        return apr_psprintf(p, "'%s': IPv6 addresses are not supported (apr_memcache connects over IPv4)", tok);
    if (!colon)
        return apr_psprintf(p, "'%s' has no port (want host:port)", tok);
    if (colon == tok)
        return apr_psprintf(p, "'%s' has no host (want host:port)", tok);
    if (!pe_mc_host_ok(tok, (apr_size_t)(colon - tok)))
        return apr_psprintf(p, "'%s': '%.*s' is not a host name or IPv4 address", tok, (int)(colon - tok), tok);
    if (!colon[1])
        return apr_psprintf(p, "'%s' has no port (want host:port)", tok);
    for (q = colon + 1; *q; q++) {
        if (*q < '0' || *q > '9' || port > 65535)
            return apr_psprintf(p, "'%s': the port must be a number from 1 to 65535", tok);
        port = port * 10 + (*q - '0');
    }
    if (port < 1 || port > 65535)
        return apr_psprintf(p, "'%s': the port must be a number from 1 to 65535", tok);
    sc->host = apr_pstrmemdup(p, tok, (apr_size_t)(colon - tok));
    sc->port = (apr_port_t)port;
    return NULL;
}

/* Check one interval option against its range; NULL or the reason. */
static const char *pe_mc_check_interval(apr_pool_t *p, const char *what, apr_interval_time_t v, apr_interval_time_t min,
                                        apr_interval_time_t max)
{
    if (v < min || v > max)
        return apr_psprintf(p, "%s must be between %" APR_TIME_T_FMT " ms and %" APR_TIME_T_FMT " ms", what,
                            apr_time_as_msec(min), apr_time_as_msec(max));
    return NULL;
}

/* Validate servers and options. */
const char *pe_memcache_conf_make(apr_pool_t *p, const char *servers, const pe_memcache_opts_t *opts,
                                  pe_memcache_conf_t **conf)
{
    pe_memcache_conf_t *c = apr_pcalloc(p, sizeof(*c));
    char *list, *tok, *last;
    const char *err;
    int i;

    *conf = NULL;
    if (opts)
        c->opts = *opts;
    if (!c->opts.timeout)
        c->opts.timeout = PE_MEMCACHE_TIMEOUT_DEFAULT;
    if (!c->opts.retry)
        c->opts.retry = PE_MEMCACHE_RETRY_DEFAULT;
    if (!c->opts.threads)
        c->opts.threads = PE_MEMCACHE_THREADS_DEFAULT;
    if ((err =
             pe_mc_check_interval(p, "the timeout", c->opts.timeout, PE_MEMCACHE_TIMEOUT_MIN, PE_MEMCACHE_TIMEOUT_MAX)))
        return err;
    if ((err =
             pe_mc_check_interval(p, "the retry period", c->opts.retry, PE_MEMCACHE_RETRY_MIN, PE_MEMCACHE_RETRY_MAX)))
        return err;
    if (c->opts.threads < 1 || c->opts.threads > PE_MEMCACHE_THREADS_MAX)
        return apr_psprintf(p, "the number of threads per server must be between 1 and %d", PE_MEMCACHE_THREADS_MAX);

    list = apr_pstrdup(p, servers ? servers : "");
    for (tok = apr_strtok(list, " \t", &last); tok; tok = apr_strtok(NULL, " \t", &last)) {
        if (c->n == PE_MEMCACHE_SERVERS_MAX)
            return apr_psprintf(p, "more than %d servers", PE_MEMCACHE_SERVERS_MAX);
        if ((err = pe_mc_parse_server(p, tok, &c->servers[c->n])))
            return err;
        for (i = 0; i < c->n; i++)
            if (c->servers[i].port == c->servers[c->n].port && !strcasecmp(c->servers[i].host, c->servers[c->n].host))
                return apr_psprintf(p, "'%s' is listed twice", tok);
        c->n++;
    }
    if (c->n == 0)
        return "no server given (want host:port, separated by spaces)";
    *conf = c;
    return NULL;
}

/* Number of servers. */
int pe_memcache_conf_count(const pe_memcache_conf_t *conf)
{
    return conf ? conf->n : 0;
}

/* R44: 1..250 bytes of printable ASCII, no space. */
int pe_memcache_key_valid(const char *key)
{
    apr_size_t i;

    if (!key)
        return 0;
    for (i = 0; key[i]; i++)
        if (i >= PE_MEMCACHE_KEY_MAX || (unsigned char)key[i] <= 0x20 || (unsigned char)key[i] >= 0x7f)
            return 0;
    return i > 0;
}

/* ---- I/O threads ---- */

/* apr_memcache server_func: a lane's apr_memcache has one server and we decide its liveness. */
static apr_memcache_server_t *pe_mc_only_server(void *baton, apr_memcache_t *amc, const apr_uint32_t hash)
{
    return amc->live_servers[0];
}

/* Errors that mean the server or the network failed (not a miss, not a refusal of the command). */
static int pe_mc_server_failure(apr_status_t rv)
{
    return rv != APR_SUCCESS && rv != APR_NOTFOUND && rv != APR_EEXIST && rv != APR_EGENERAL;
}

/* incr through apr_memcache; a reply that is not a number is an error. */
static apr_status_t pe_mc_incr_once(pe_mc_lane_t *l, pe_mc_job_t *j)
{
    apr_uint32_t nv = 0;
    apr_status_t rv = apr_memcache_incr(l->amc, j->key, (apr_int32_t)j->delta, &nv);

    /* NB: apr_memcache parses any reply but ERROR/NOT_FOUND with atoi(), so "CLIENT_ERROR cannot
     * increment ... non-numeric value" comes back as success with 0; delta >= 1 makes 0 impossible. */
    if (rv == APR_SUCCESS && nv == 0)
        return APR_EGENERAL;
    j->nv = nv;
    return rv;
}

/*
 * Several keys in one "get k1 k2 ..." through apr_memcache_multgetp. Its own return is always
 * success; what went wrong is in each value's status: a network error, or APR_TIMEUP when no
 * reply came within apr_memcache's MULT_GET_TIMEOUT (a fixed 50 ms poll, after which it closes
 * the connection). The job fails with the first such error.
 * NB: 50 ms is not this client's timeout: a server that is merely slow (a loaded host) would be
 * marked down at once. Keys that timed out there are asked again one by one with getp, which has
 * no I/O timeout of its own, so the caller's deadline (PECacheTimeout) is what bounds them, as
 * for any get.
 */
static apr_status_t pe_mc_mget_once(pe_mc_lane_t *l, pe_mc_slot_t *s)
{
    pe_mc_job_t *j = &s->job;
    apr_hash_t *h = NULL;
    apr_pool_t *tp;
    apr_status_t rv;
    int k;

    for (k = 0; k < j->nk; k++) {
        j->vals[k] = NULL;
        j->vlens[k] = 0;
        j->rvs[k] = APR_NOTFOUND;
        apr_memcache_add_multget_key(s->pool, j->keys[k], &h);
    }
    /* NB: multgetp clears its temporary pool; the values stay in the slot pool */
    if ((rv = apr_pool_create(&tp, s->pool)) != APR_SUCCESS)
        return rv;
    rv = apr_memcache_multgetp(l->amc, tp, s->pool, h);
    apr_pool_destroy(tp);
    if (rv != APR_SUCCESS)
        return rv;
    for (k = 0; k < j->nk; k++) {
        apr_memcache_value_t *v = apr_hash_get(h, j->keys[k], APR_HASH_KEY_STRING);
        j->rvs[k] = v ? v->status : APR_EGENERAL;
        if (j->rvs[k] == APR_TIMEUP) {
            j->rvs[k] = apr_memcache_getp(l->amc, s->pool, j->keys[k], &j->vals[k], &j->vlens[k], NULL);
            apr_atomic_inc32(&l->mc->mget_retries);
            if (j->rvs[k] != APR_SUCCESS)
                j->vals[k] = NULL;
            else if (!j->vals[k])
                j->vlens[k] = 0;
        } else if (j->rvs[k] == APR_SUCCESS) {
            j->vals[k] = v->data;
            j->vlens[k] = v->data ? v->len : 0;
        }
        if (j->rvs[k] != APR_SUCCESS && j->rvs[k] != APR_NOTFOUND && rv == APR_SUCCESS)
            rv = j->rvs[k];
    }
    return rv;
}

/* Run a job on this thread (blocking, possibly forever on a hung server). */
static apr_status_t pe_mc_exec(pe_mc_lane_t *l, pe_mc_slot_t *s)
{
    pe_mc_job_t *j = &s->job;
    char num[16];
    apr_size_t n;
    apr_status_t rv;

    switch (j->op) {
    case PE_MC_GET:
        j->val = NULL;
        j->vlen = 0;
        return apr_memcache_getp(l->amc, s->pool, j->key, &j->val, &j->vlen, NULL);
    case PE_MC_MGET:
        return pe_mc_mget_once(l, s);
    case PE_MC_SET:
        return apr_memcache_set(l->amc, j->key, j->data, j->len, j->ttl, 0);
    case PE_MC_ADD:
        return apr_memcache_add(l->amc, j->key, j->data, j->len, j->ttl, 0);
    case PE_MC_DELETE:
        return apr_memcache_delete(l->amc, j->key, 0);
    case PE_MC_INCR:
        return pe_mc_incr_once(l, j);
    case PE_MC_INCR_ADD:
        rv = pe_mc_incr_once(l, j);
        if (rv != APR_NOTFOUND)
            return rv;
        n = (apr_size_t)apr_snprintf(num, sizeof(num), "%u", j->delta);
        rv = apr_memcache_add(l->amc, j->key, num, n, j->ttl, 0);
        if (rv == APR_SUCCESS)
            j->nv = j->delta;
        else if (rv == APR_EEXIST) /* another process created it first */
            rv = pe_mc_incr_once(l, j);
        return rv;
    }
    return APR_EINVAL;
}

/* Thread body: wait for a job, run it, hand the result back (or drop it when abandoned). */
static void *APR_THREAD_FUNC pe_mc_thread(apr_thread_t *thd, void *data)
{
    pe_mc_slot_t *s = data;
    pe_mc_lane_t *l = s->lane;
    apr_status_t rv;

    apr_thread_mutex_lock(l->mutex);
    for (;;) {
        while (s->state != PE_SLOT_ASSIGNED && !l->stop)
            apr_thread_cond_wait(s->cv, l->mutex);
        if (s->state != PE_SLOT_ASSIGNED)
            break;
        apr_thread_mutex_unlock(l->mutex);
        rv = pe_mc_exec(l, s);
        apr_thread_mutex_lock(l->mutex);
        s->rv = rv;
        if (s->state == PE_SLOT_ABANDONED) {
            /* NB: the caller left at its deadline; nobody reads the result. */
            l->nabandoned--;
            apr_atomic_dec32(&l->mc->abandoned);
            s->state = PE_SLOT_IDLE;
            apr_thread_cond_signal(l->idle_cv);
        } else {
            s->state = PE_SLOT_DONE;
            apr_thread_cond_broadcast(s->cv);
        }
    }
    l->nalive--;
    apr_thread_cond_broadcast(l->idle_cv);
    apr_thread_mutex_unlock(l->mutex);
    /* NB: return, not apr_thread_exit: ASan reports a stack-buffer-underflow when a thread ends
     * through pthread_exit; apr_thread_join works either way. */
    return NULL;
}

/* ---- life cycle ---- */

/* Stop the threads; free the client unless a thread is still blocked in a call. */
static void pe_mc_teardown(pe_memcache_t *mc)
{
    apr_interval_time_t wait = mc->timeout < PE_MC_STOP_WAIT_MAX ? mc->timeout : PE_MC_STOP_WAIT_MAX;
    apr_time_t deadline = apr_time_now() + wait;
    apr_status_t st;
    int i, k, left = 0;

    for (i = 0; i < mc->nlanes; i++) {
        pe_mc_lane_t *l = &mc->lanes[i];
        apr_thread_mutex_lock(l->mutex);
        l->stop = 1;
        for (k = 0; k < l->nslots; k++)
            apr_thread_cond_broadcast(l->slots[k].cv);
        apr_thread_mutex_unlock(l->mutex);
    }
    for (i = 0; i < mc->nlanes; i++) {
        pe_mc_lane_t *l = &mc->lanes[i];
        apr_thread_mutex_lock(l->mutex);
        while (l->nalive > 0) {
            apr_interval_time_t remaining = deadline - apr_time_now();
            if (remaining <= 0)
                break;
            apr_thread_cond_timedwait(l->idle_cv, l->mutex, remaining);
        }
        left += l->nalive;
        apr_thread_mutex_unlock(l->mutex);
    }
    if (left) {
        /* NB: freeing the pool would pull memory from under threads still inside apr_memcache. */
        pe_clog(PE_LOG_WARNING, 0,
                PE_LOGNO(43003) "memcache: %d I/O thread(s) still blocked on an unresponsive server at "
                                "shutdown; their memory is left to the process exit",
                left);
        return;
    }
    for (i = 0; i < mc->nlanes; i++)
        for (k = 0; k < mc->lanes[i].nslots; k++)
            if (mc->lanes[i].slots[k].thread)
                apr_thread_join(&st, mc->lanes[i].slots[k].thread);
    apr_pool_destroy(mc->pool); /* closes the connections (apr_reslist cleanup) */
}

/* Cleanup on the child pool. */
static apr_status_t pe_mc_cleanup(void *data)
{
    pe_mc_teardown(data);
    return APR_SUCCESS;
}

/* Create a lane's apr_memcache, locks and slots (no threads yet). */
static apr_status_t pe_mc_lane_init(pe_memcache_t *mc, pe_mc_lane_t *l, const pe_mc_server_conf_t *sc, int threads)
{
    apr_pool_t *p = mc->pool;
    apr_status_t rv;
    int k;

    l->mc = mc;
    l->name = apr_psprintf(p, "%s:%u", sc->host, (unsigned)sc->port);
    l->up = 1;
    if ((rv = apr_thread_mutex_create(&l->mutex, APR_THREAD_MUTEX_DEFAULT, p)) != APR_SUCCESS ||
        (rv = apr_thread_cond_create(&l->idle_cv, p)) != APR_SUCCESS ||
        (rv = apr_memcache_create(p, 1, 0, &l->amc)) != APR_SUCCESS ||
        (rv = apr_memcache_server_create(p, sc->host, sc->port, 0, (apr_uint32_t)threads, (apr_uint32_t)threads,
                                         (apr_uint32_t)PE_MC_CONN_TTL, &l->ms)) != APR_SUCCESS ||
        (rv = apr_memcache_add_server(l->amc, l->ms)) != APR_SUCCESS)
        return rv;
    /* NB: our server_func bypasses apr_memcache's dead-server handling (5 s retry, blocking ping). */
    l->amc->server_func = pe_mc_only_server;
    l->amc->server_baton = l;
    l->slots = apr_pcalloc(p, sizeof(*l->slots) * (apr_size_t)threads);
    for (k = 0; k < threads; k++) {
        pe_mc_slot_t *s = &l->slots[k];
        s->lane = l;
        if ((rv = apr_thread_cond_create(&s->cv, p)) != APR_SUCCESS ||
            (rv = apr_pool_create(&s->pool, p)) != APR_SUCCESS)
            return rv;
        l->nslots++;
    }
    return APR_SUCCESS;
}

/* Create the client of this process. */
apr_status_t pe_memcache_child_init(apr_pool_t *pchild, const pe_memcache_conf_t *conf, pe_memcache_t **out)
{
    apr_allocator_t *al = NULL;
    apr_thread_mutex_t *amutex = NULL;
    apr_threadattr_t *attr = NULL;
    apr_pool_t *ip = NULL;
    pe_memcache_t *mc;
    apr_status_t rv;
    int i, k;

    *out = NULL;
    if (!conf || conf->n < 1)
        return APR_EINVAL;
    /* NB: an unmanaged pool with its own locked allocator: apr_memcache creates connection pools from
     * several I/O threads at once, and the memory must survive the caller's pool when a thread is
     * stuck (see pe_mc_teardown). */
    if ((rv = apr_allocator_create(&al)) != APR_SUCCESS)
        return rv;
    if ((rv = apr_pool_create_unmanaged_ex(&ip, NULL, al)) != APR_SUCCESS) {
        apr_allocator_destroy(al);
        return rv;
    }
    apr_allocator_owner_set(al, ip);
    apr_allocator_max_free_set(al, PE_MC_MAX_FREE);
    if ((rv = apr_thread_mutex_create(&amutex, APR_THREAD_MUTEX_DEFAULT, ip)) != APR_SUCCESS) {
        apr_pool_destroy(ip);
        return rv;
    }
    apr_allocator_mutex_set(al, amutex);

    mc = apr_pcalloc(ip, sizeof(*mc));
    mc->pool = ip;
    mc->timeout = conf->opts.timeout;
    mc->retry = conf->opts.retry;
    mc->lanes = apr_pcalloc(ip, sizeof(*mc->lanes) * (apr_size_t)conf->n);
    for (i = 0; i < conf->n; i++) {
        if ((rv = pe_mc_lane_init(mc, &mc->lanes[i], &conf->servers[i], conf->opts.threads)) != APR_SUCCESS) {
            apr_pool_destroy(ip);
            return rv;
        }
    }
    mc->nlanes = conf->n;

    if ((rv = apr_threadattr_create(&attr, ip)) == APR_SUCCESS)
        rv = apr_threadattr_stacksize_set(attr, PE_MC_STACK);
    for (i = 0; rv == APR_SUCCESS && i < mc->nlanes; i++) {
        pe_mc_lane_t *l = &mc->lanes[i];
        for (k = 0; rv == APR_SUCCESS && k < l->nslots; k++) {
            apr_thread_mutex_lock(l->mutex);
            l->nalive++;
            apr_thread_mutex_unlock(l->mutex);
            rv = pe_thread_create(&l->slots[k].thread, attr, pe_mc_thread, &l->slots[k], ip);
            if (rv != APR_SUCCESS) {
                l->slots[k].thread = NULL;
                apr_thread_mutex_lock(l->mutex);
                l->nalive--;
                apr_thread_mutex_unlock(l->mutex);
            }
        }
    }
    if (rv != APR_SUCCESS) {
        pe_clog(PE_LOG_ERR, rv, PE_LOGNO(43004) "memcache: cannot create the I/O threads");
        pe_mc_teardown(mc);
        return rv;
    }
    apr_pool_cleanup_register(pchild, mc, pe_mc_cleanup, apr_pool_cleanup_null);
    *out = mc;
    return APR_SUCCESS;
}

/* ---- operations ---- */

/* The lane that takes key, locked; NULL when no server is usable. *probe set when this call probes. */
static pe_mc_lane_t *pe_mc_pick(pe_memcache_t *mc, const char *key, int *probe)
{
    apr_uint32_t h = apr_memcache_hash_default(NULL, key, strlen(key));
    int i;

    *probe = 0;
    for (i = 0; i < mc->nlanes; i++) {
        pe_mc_lane_t *l = &mc->lanes[(h + (apr_uint32_t)i) % (apr_uint32_t)mc->nlanes];
        apr_thread_mutex_lock(l->mutex);
        /* NB: a lane whose threads are all held by abandoned calls is skipped (the cap). */
        if (!l->stop && l->nabandoned < l->nslots) {
            if (l->up)
                return l;
            if (!l->probing && apr_time_now() >= l->retry_at) {
                l->probing = 1;
                *probe = 1;
                return l;
            }
        }
        apr_thread_mutex_unlock(l->mutex);
    }
    return NULL;
}

/* Record the outcome of a call on the lane (locked); returns the transition to log. */
static pe_mc_change_e pe_mc_outcome(pe_mc_lane_t *l, int probe, int failed)
{
    pe_mc_change_e ch = PE_MC_SAME;

    if (probe)
        l->probing = 0;
    if (!failed) {
        if (!l->up)
            ch = PE_MC_CAME_UP;
        l->up = 1;
        return ch;
    }
    if (l->up)
        ch = PE_MC_WENT_DOWN;
    l->up = 0;
    l->retry_at = apr_time_now() + l->mc->retry;
    return ch;
}

/* Log a transition (outside the lock). */
static void pe_mc_log_change(pe_mc_lane_t *l, pe_mc_change_e ch, apr_status_t rv)
{
    if (ch == PE_MC_WENT_DOWN)
        pe_clog(PE_LOG_WARNING, rv, PE_LOGNO(43001) "memcache: server %s marked down for %" APR_TIME_T_FMT " ms (%s)",
                l->name, apr_time_as_msec(l->mc->retry), rv == APR_TIMEUP ? "no answer in time" : "network error");
    else if (ch == PE_MC_CAME_UP)
        pe_clog(PE_LOG_NOTICE, 0, PE_LOGNO(43002) "memcache: server %s answers again", l->name);
}

/* Find an idle slot of a locked lane. */
static pe_mc_slot_t *pe_mc_idle_slot(pe_mc_lane_t *l)
{
    int k;

    for (k = 0; k < l->nslots; k++)
        if (l->slots[k].state == PE_SLOT_IDLE)
            return &l->slots[k];
    return NULL;
}

/* A job handed to an I/O thread and not collected yet. */
typedef struct {
    pe_mc_lane_t *l;
    pe_mc_slot_t *s;
    int probe;
} pe_mc_run_t;

/*
 * Hand job to an idle I/O thread of the lane that takes job->key, waiting for one until deadline.
 * held: lanes where the caller already has a job running (nheld of them); when the lane picked is
 * one of them and has no idle thread, APR_EBUSY (the caller collects its jobs first: waiting would
 * wait for itself).
 */
static apr_status_t pe_mc_start(pe_memcache_t *mc, pe_mc_job_t *job, apr_time_t deadline, pe_mc_lane_t *const *held,
                                int nheld, pe_mc_run_t *run)
{
    pe_mc_slot_t *s = NULL;
    pe_mc_lane_t *l;
    int k, probe;

    if (!(l = pe_mc_pick(mc, job->key, &probe))) {
        apr_atomic_inc32(&mc->ops);
        apr_atomic_inc32(&mc->fast_fails);
        return APR_EAGAIN;
    }
    for (k = 0; k < nheld && held[k] != l; k++)
        ;
    if (k < nheld && !pe_mc_idle_slot(l)) {
        if (probe)
            l->probing = 0;
        apr_thread_mutex_unlock(l->mutex);
        return APR_EBUSY;
    }
    apr_atomic_inc32(&mc->ops);
    /* lane locked: wait for an idle thread within the deadline */
    for (;;) {
        apr_interval_time_t remaining;
        if ((s = pe_mc_idle_slot(l)) != NULL)
            break;
        remaining = deadline - apr_time_now();
        if (remaining <= 0)
            break;
        apr_thread_cond_timedwait(l->idle_cv, l->mutex, remaining);
    }
    if (!s) {
        if (probe) { /* the probe never ran; stay down and try again later */
            l->probing = 0;
            l->retry_at = apr_time_now() + mc->retry;
        }
        apr_thread_mutex_unlock(l->mutex);
        apr_atomic_inc32(&mc->timeouts);
        return APR_TIMEUP;
    }
    s->state = PE_SLOT_CLAIMED;
    apr_thread_mutex_unlock(l->mutex);

    /* NB: CLAIMED gives this thread the slot and its pool; copy the inputs out of the caller's memory. */
    apr_pool_clear(s->pool);
    s->job = *job;
    s->job.key = apr_pstrdup(s->pool, job->key);
    s->job.data = job->len ? apr_pmemdup(s->pool, job->data, job->len) : (char *)"";
    for (k = 0; k < job->nk; k++)
        s->job.keys[k] = apr_pstrdup(s->pool, job->keys[k]);

    apr_thread_mutex_lock(l->mutex);
    s->state = PE_SLOT_ASSIGNED;
    apr_thread_cond_broadcast(s->cv);
    apr_thread_mutex_unlock(l->mutex);
    run->l = l;
    run->s = s;
    run->probe = probe;
    return APR_SUCCESS;
}

/* Wait until deadline for a job started by pe_mc_start; outputs copied into p. */
static apr_status_t pe_mc_finish(pe_memcache_t *mc, apr_pool_t *p, pe_mc_job_t *job, apr_time_t deadline,
                                 pe_mc_run_t *run)
{
    pe_mc_lane_t *l = run->l;
    pe_mc_slot_t *s = run->s;
    pe_mc_change_e ch;
    apr_status_t rv;
    int k;

    apr_thread_mutex_lock(l->mutex);
    while (s->state == PE_SLOT_ASSIGNED) {
        apr_interval_time_t remaining = deadline - apr_time_now();
        if (remaining <= 0)
            break;
        apr_thread_cond_timedwait(s->cv, l->mutex, remaining);
    }
    if (s->state != PE_SLOT_DONE) {
        /* NB: the thread keeps the slot until its call returns; it then frees the slot itself. */
        s->state = PE_SLOT_ABANDONED;
        l->nabandoned++;
        apr_atomic_inc32(&mc->abandoned);
        ch = pe_mc_outcome(l, run->probe, 1);
        apr_thread_mutex_unlock(l->mutex);
        apr_atomic_inc32(&mc->timeouts);
        pe_mc_log_change(l, ch, APR_TIMEUP);
        return APR_TIMEUP;
    }
    rv = s->rv;
    ch = pe_mc_outcome(l, run->probe, pe_mc_server_failure(rv));
    apr_thread_mutex_unlock(l->mutex);

    /* DONE: the slot is still ours until it goes back to IDLE */
    if (rv == APR_SUCCESS && job->op == PE_MC_GET) {
        job->vlen = s->job.val ? s->job.vlen : 0;
        job->val = apr_palloc(p, job->vlen + 1);
        if (job->vlen)
            memcpy(job->val, s->job.val, job->vlen);
        job->val[job->vlen] = '\0';
    }
    job->nv = s->job.nv;
    /* a multi-get that failed on the way may still have found some keys before */
    for (k = 0; job->op == PE_MC_MGET && k < job->nk; k++) {
        job->rvs[k] = s->job.rvs[k];
        job->vlens[k] = job->rvs[k] == APR_SUCCESS ? s->job.vlens[k] : 0;
        job->vals[k] = NULL;
        if (job->rvs[k] != APR_SUCCESS)
            continue;
        job->vals[k] = apr_palloc(p, job->vlens[k] + 1);
        if (job->vlens[k])
            memcpy(job->vals[k], s->job.vals[k], job->vlens[k]);
        job->vals[k][job->vlens[k]] = '\0';
    }

    apr_thread_mutex_lock(l->mutex);
    s->state = PE_SLOT_IDLE;
    apr_thread_cond_signal(l->idle_cv);
    apr_thread_mutex_unlock(l->mutex);

    for (k = 0; job->op == PE_MC_MGET && k < job->nk; k++)
        if (job->rvs[k] == APR_SUCCESS)
            apr_atomic_inc32(&mc->hits);
        else if (job->rvs[k] == APR_NOTFOUND)
            apr_atomic_inc32(&mc->misses);
    if (job->op == PE_MC_GET && rv == APR_SUCCESS)
        apr_atomic_inc32(&mc->hits);
    else if (job->op == PE_MC_GET && rv == APR_NOTFOUND)
        apr_atomic_inc32(&mc->misses);
    else if (rv != APR_SUCCESS && rv != APR_NOTFOUND && rv != APR_EEXIST)
        apr_atomic_inc32(&mc->errors);
    pe_mc_log_change(l, ch, rv);
    return rv;
}


/* Run job on an I/O thread, waiting at most mc->timeout; outputs copied into p. */
static apr_status_t pe_mc_call(pe_memcache_t *mc, apr_pool_t *p, pe_mc_job_t *job)
{
    apr_time_t deadline = apr_time_now() + mc->timeout;
    pe_mc_run_t run;
    apr_status_t rv = pe_mc_start(mc, job, deadline, NULL, 0, &run);

    return rv == APR_SUCCESS ? pe_mc_finish(mc, p, job, deadline, &run) : rv;
}

/* Get. */
apr_status_t pe_memcache_get(pe_memcache_t *mc, apr_pool_t *p, const char *key, char **val, apr_size_t *len)
{
    pe_mc_job_t j = {PE_MC_GET};
    apr_status_t rv;

    if (!mc || !p || !val || !pe_memcache_key_valid(key))
        return APR_EINVAL;
    j.key = key;
    rv = pe_mc_call(mc, p, &j);
    *val = rv == APR_SUCCESS ? j.val : NULL;
    if (len)
        *len = rv == APR_SUCCESS ? j.vlen : 0;
    return rv;
}

/* The lane a key goes to when every server is up. */
static int pe_mc_home(pe_memcache_t *mc, const char *key)
{
    return (int)(apr_memcache_hash_default(NULL, key, strlen(key)) % (apr_uint32_t)mc->nlanes);
}

/* Copy a multi-get's per-key results (job j, call result rv) to the caller's arrays. */
static void pe_mc_mget_out(const pe_mc_job_t *j, const int *at, apr_status_t rv, char **vals, apr_size_t *lens,
                           apr_status_t *rvs)
{
    int k;

    for (k = 0; k < j->nk; k++) {
        rvs[at[k]] = rv == APR_SUCCESS || j->rvs[k] == APR_SUCCESS || j->rvs[k] == APR_NOTFOUND ? j->rvs[k] : rv;
        if (rvs[at[k]] == APR_SUCCESS) {
            vals[at[k]] = j->vals[k];
            lens[at[k]] = j->vlens[k];
        }
    }
}

/*
 * Get several keys: one request per server their keys go to, all sent before any is waited for,
 * under one deadline.
 */
apr_status_t pe_memcache_getm(pe_memcache_t *mc, apr_pool_t *p, int n, const char *const *keys, char **vals,
                              apr_size_t *lens, apr_status_t *rvs)
{
    apr_time_t deadline;
    pe_mc_job_t jobs[PE_MEMCACHE_MGET_MAX];
    pe_mc_run_t runs[PE_MEMCACHE_MGET_MAX];
    pe_mc_lane_t *held[PE_MEMCACHE_MGET_MAX];
    apr_status_t st[PE_MEMCACHE_MGET_MAX], rv, first = APR_SUCCESS;
    int done[PE_MEMCACHE_MGET_MAX] = {0}, at[PE_MEMCACHE_MGET_MAX][PE_MEMCACHE_MGET_MAX];
    int i, k, g, ng = 0, nheld = 0, from = 0, home;

    if (!mc || !p || !keys || !vals || !lens || !rvs || n < 1 || n > PE_MEMCACHE_MGET_MAX)
        return APR_EINVAL;
    for (i = 0; i < n; i++) {
        vals[i] = NULL;
        lens[i] = 0;
        rvs[i] = APR_EINVAL;
        if (!pe_memcache_key_valid(keys[i]))
            return APR_EINVAL;
    }
    /* NB: keys with the same home server share its request (and, when it is down, the next usable
     * server, as pe_mc_pick goes down the list from the first key's hash) */
    for (i = 0; i < n; i++) {
        pe_mc_job_t *j = &jobs[ng];

        if (done[i])
            continue;
        memset(j, 0, sizeof(*j));
        j->op = PE_MC_MGET;
        home = pe_mc_home(mc, keys[i]);
        for (k = i; k < n; k++)
            if (!done[k] && pe_mc_home(mc, keys[k]) == home) {
                done[k] = 1;
                at[ng][j->nk] = k;
                j->keys[j->nk] = keys[k];
                /* a call that does not run to its end (refused, timed out) leaves this as it is */
                j->rvs[j->nk++] = APR_EINCOMPLETE;
            }
        j->key = j->keys[0];
        ng++;
    }
    deadline = apr_time_now() + mc->timeout;
    for (g = 0; g < ng; g++) {
        rv = pe_mc_start(mc, &jobs[g], deadline, held, nheld, &runs[g]);
        if (rv == APR_EBUSY) {
            /* a fallback sent two groups to one server with no thread to spare: collect first */
            for (; from < g; from++)
                if (st[from] == APR_SUCCESS)
                    st[from] = pe_mc_finish(mc, p, &jobs[from], deadline, &runs[from]);
            nheld = 0;
            rv = pe_mc_start(mc, &jobs[g], deadline, held, nheld, &runs[g]);
        }
        if ((st[g] = rv) == APR_SUCCESS)
            held[nheld++] = runs[g].l;
    }
    for (; from < ng; from++)
        if (st[from] == APR_SUCCESS)
            st[from] = pe_mc_finish(mc, p, &jobs[from], deadline, &runs[from]);
    for (g = 0; g < ng; g++) {
        pe_mc_mget_out(&jobs[g], at[g], st[g], vals, lens, rvs);
        if (st[g] != APR_SUCCESS && first == APR_SUCCESS)
            first = st[g];
    }
    return first;
}

/* Shared by set and add. */
static apr_status_t pe_mc_store(pe_memcache_t *mc, pe_mc_op_e op, const char *key, const void *data, apr_size_t len,
                                apr_uint32_t ttl)
{
    pe_mc_job_t j = {op};

    if (!mc || !pe_memcache_key_valid(key) || (len && !data) || ttl > PE_MEMCACHE_TTL_MAX)
        return APR_EINVAL;
    j.key = key;
    j.data = (char *)data;
    j.len = len;
    j.ttl = ttl;
    return pe_mc_call(mc, NULL, &j);
}

/* Set. */
apr_status_t pe_memcache_set(pe_memcache_t *mc, const char *key, const void *data, apr_size_t len, apr_uint32_t ttl)
{
    return pe_mc_store(mc, PE_MC_SET, key, data, len, ttl);
}

/* Add (set if absent). */
apr_status_t pe_memcache_add(pe_memcache_t *mc, const char *key, const void *data, apr_size_t len, apr_uint32_t ttl)
{
    return pe_mc_store(mc, PE_MC_ADD, key, data, len, ttl);
}

/* Shared by incr and incr_add. */
static apr_status_t pe_mc_count(pe_memcache_t *mc, pe_mc_op_e op, const char *key, apr_uint32_t delta, apr_uint32_t ttl,
                                apr_uint32_t *nv)
{
    pe_mc_job_t j = {op};
    apr_status_t rv;

    if (nv)
        *nv = 0;
    if (!mc || !pe_memcache_key_valid(key) || delta < 1 || delta > 0x7fffffffu || ttl > PE_MEMCACHE_TTL_MAX ||
        (op == PE_MC_INCR_ADD && ttl < 1))
        return APR_EINVAL;
    j.key = key;
    j.delta = delta;
    j.ttl = ttl;
    rv = pe_mc_call(mc, NULL, &j);
    if (nv && rv == APR_SUCCESS)
        *nv = j.nv;
    return rv;
}

/* Incr. */
apr_status_t pe_memcache_incr(pe_memcache_t *mc, const char *key, apr_uint32_t delta, apr_uint32_t *nv)
{
    return pe_mc_count(mc, PE_MC_INCR, key, delta, 0, nv);
}

/* Incr, or create with a TTL. */
apr_status_t pe_memcache_incr_add(pe_memcache_t *mc, const char *key, apr_uint32_t delta, apr_uint32_t ttl,
                                  apr_uint32_t *nv)
{
    return pe_mc_count(mc, PE_MC_INCR_ADD, key, delta, ttl, nv);
}

/* Delete. */
apr_status_t pe_memcache_delete(pe_memcache_t *mc, const char *key)
{
    pe_mc_job_t j = {PE_MC_DELETE};

    if (!mc || !pe_memcache_key_valid(key))
        return APR_EINVAL;
    j.key = key;
    return pe_mc_call(mc, NULL, &j);
}

/* Any server not marked down? */
int pe_memcache_is_up(pe_memcache_t *mc)
{
    int i, up = 0;

    for (i = 0; mc && i < mc->nlanes && !up; i++) {
        apr_thread_mutex_lock(mc->lanes[i].mutex);
        up = mc->lanes[i].up;
        apr_thread_mutex_unlock(mc->lanes[i].mutex);
    }
    return up;
}

/* Counters. */
void pe_memcache_stats(pe_memcache_t *mc, pe_memcache_stats_t *st)
{
    int i;

    memset(st, 0, sizeof(*st));
    if (!mc)
        return;
    st->ops = apr_atomic_read32(&mc->ops);
    st->hits = apr_atomic_read32(&mc->hits);
    st->misses = apr_atomic_read32(&mc->misses);
    st->errors = apr_atomic_read32(&mc->errors);
    st->timeouts = apr_atomic_read32(&mc->timeouts);
    st->fast_fails = apr_atomic_read32(&mc->fast_fails);
    st->abandoned = apr_atomic_read32(&mc->abandoned);
    st->mget_retries = apr_atomic_read32(&mc->mget_retries);
    st->servers = mc->nlanes;
    for (i = 0; i < mc->nlanes; i++) {
        apr_thread_mutex_lock(mc->lanes[i].mutex);
        st->servers_up += mc->lanes[i].up;
        apr_thread_mutex_unlock(mc->lanes[i].mutex);
    }
}
