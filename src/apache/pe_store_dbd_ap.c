/*
 * pe_store_dbd_ap.c: the dbd store provider: handles on mod_dbd's connections, the reconnect
 * of background handles, the writer's connection outside mod_dbd's pool, the pool size check
 * (pe_dbdconf.c) and the schema at child start.
 *
 * NB: a thread never holds two connections of mod_dbd's pool (issue of a PostgreSQL restart
 * under load: every thread held its request's connection and waited for a second one, and
 * mod_dbd's pool waits without a time limit). The request's handle is retried on its own
 * connection once the backend has reset it; a background handle gives its connection back
 * before it takes another.
 */
#include "apr_dbd.h" /* NB: mod_dbd.h does not include it */
#include "mod_dbd.h"

#include "pe_config.h"
#include "pe_dbdconf_ap.h"
#include "pe_log.h"
#include "pe_store_ap.h"
#include "pe_store_dbd.h"
#include "pe_thread.h"

#include "http_core.h"
#include "http_request.h"
#include "ap_mpm.h"
#include <apr_strings.h>

static APR_OPTIONAL_FN_TYPE(ap_dbd_acquire) * pe_dbd_acquire;
static APR_OPTIONAL_FN_TYPE(ap_dbd_open) * pe_dbd_open;
static APR_OPTIONAL_FN_TYPE(ap_dbd_close) * pe_dbd_close;

static void dbd_retrieve_fns(void)
{
    pe_dbd_acquire = APR_RETRIEVE_OPTIONAL_FN(ap_dbd_acquire);
    pe_dbd_open = APR_RETRIEVE_OPTIONAL_FN(ap_dbd_open);
    pe_dbd_close = APR_RETRIEVE_OPTIONAL_FN(ap_dbd_close);
}

/* ----------------------------------------------------------------------------------------- */
/* Handles */

/* A background handle's own connection, given back by a cleanup of the handle's pool. */
typedef struct {
    server_rec *s;
    apr_pool_t *p;
    ap_dbd_t *dbd;
} pe_own_conn_t;

static apr_status_t own_conn_release(void *data)
{
    pe_own_conn_t *oc = data;

    if (oc->dbd)
        pe_dbd_close(oc->s, oc->dbd);
    oc->dbd = NULL;
    return APR_SUCCESS;
}

/*
 * The reconnect hook of a background handle: the broken connection goes back to mod_dbd FIRST
 * (the next ap_dbd_open checks it, and drops it when it is dead), then another is taken.
 */
static apr_status_t own_conn_reconnect(pe_store_t *st, void *baton)
{
    pe_own_conn_t *oc = baton;

    own_conn_release(oc);
    if (!(oc->dbd = pe_dbd_open(oc->p, oc->s)))
        return APR_EGENERAL;
    pe_store_dbd_attach(st, oc->dbd->driver, oc->dbd->handle, oc->dbd->prepared, oc->dbd->pool);
    return APR_SUCCESS;
}

static pe_store_t *dbd_open(apr_pool_t *p, server_rec *s)
{
    pe_own_conn_t *oc;
    pe_store_t *st;

    if (!pe_dbd_open)
        return NULL;
    oc = apr_pcalloc(p, sizeof(*oc));
    oc->s = s;
    oc->p = p;
    apr_pool_cleanup_register(p, oc, own_conn_release, apr_pool_cleanup_null);
    if (!(oc->dbd = pe_dbd_open(p, s)))
        return NULL;
    st = pe_store_dbd_make(p, oc->dbd->driver, oc->dbd->handle, oc->dbd->prepared, oc->dbd->pool);
    pe_store_set_reconnect(st, own_conn_reconnect, oc);
    return st;
}

/*
 * Under a non-threaded MPM (prefork) the MPM's SIGTERM/SIGHUP handler runs in the request's
 * thread and destroys pchild: mod_dbd's pool (a subpool of pchild made in child_init, newer than
 * the connection's pool, so destroyed first) then still counts the request's connection and
 * apr_reslist aborts the child ("reslist_cleanup: Assertion `rl->ntotal == 0' failed", exit
 * signal Abort), or frees it under the request. So a request holds these signals from before
 * its connection is taken until after mod_dbd has given it back: this cleanup is registered
 * before ap_dbd_acquire registers its release, on the same pool (the initial request's), and
 * cleanups run last-registered first. A stop that comes meanwhile takes effect then: it waits for
 * the request's end (mod_dbd keeps the connection until then), and httpd kills a child that has
 * not exited 9 seconds after the stop.
 * (Threaded MPMs block these signals in their workers and join them before pchild goes.)
 */
static int pe_dbd_hold_signals;

static apr_status_t dbd_signals_release(void *old)
{
    pe_term_signals_release(old);
    return APR_SUCCESS;
}

static void dbd_signals_hold(request_rec *r)
{
    static const char key[] = "pe_dbd_signals";
    void *held = NULL;
    sigset_t *old;

    while (!ap_is_initial_req(r))
        r = r->prev ? r->prev : r->main;
    apr_pool_userdata_get(&held, key, r->pool);
    if (held)
        return;
    old = apr_palloc(r->pool, sizeof(*old));
    pe_term_signals_hold(old);
    apr_pool_userdata_setn(old, key, NULL, r->pool);
    apr_pool_cleanup_register(r->pool, old, dbd_signals_release, apr_pool_cleanup_null);
}

/*
 * The request's handle on ap_dbd_acquire's connection (shared with other dbd modules in the
 * request, given back by mod_dbd with r->pool). No reconnect hook: mod_dbd offers no way to
 * give a request's connection back early, so the retry uses the backend's in-place reset
 * (PQreset of a PostgreSQL connection) and never takes a second connection.
 */
static pe_store_t *dbd_for_request(request_rec *r)
{
    ap_dbd_t *dbd;

    if (!pe_dbd_acquire) {
        pe_rlog(r, APLOG_ERR, 0, PE_LOGNO(00201) "mod_dbd is not loaded: the store is unavailable");
        return NULL;
    }
    if (pe_dbd_hold_signals)
        dbd_signals_hold(r);
    /* NB: a dead pooled connection is dropped by mod_dbd's check, which then answers NULL
     * (and the request holds nothing): one more try gets another. */
    if (!(dbd = pe_dbd_acquire(r)))
        dbd = pe_dbd_acquire(r);
    if (!dbd) {
        pe_rlog(r, APLOG_ERR, 0, PE_LOGNO(00202) "no database connection from mod_dbd");
        pe_dbd_diagnose(r->server, r->pool);
        return NULL;
    }
    return pe_store_dbd_make(r->pool, dbd->driver, dbd->handle, dbd->prepared, dbd->pool);
}

/* ----------------------------------------------------------------------------------------- */
/* Start-up */

/*
 * post_config: mod_dbd's settings of the main server (the owned connection's driver and
 * parameters, the diagnosis of an SQLite store that cannot be opened), and PE00206 when DBDMax
 * is below the threads of a child: nothing hangs (a thread holds one connection at a time), but
 * threads beyond DBDMax wait for a connection with no time limit while the database is slow.
 */
static int dbd_post_config(apr_pool_t *pconf, apr_pool_t *ptemp, server_rec *s)
{
    pe_dbdconf_post_config(pconf, s);
    return OK;
}

/*
 * child_init: apply missing schema versions. Every child tries; the store serialises them
 * (SQLite write lock, PostgreSQL advisory lock) and all but the first find nothing to do.
 * NB: runs after mod_dbd's child_init, which creates the connection pool.
 */
static void dbd_child_init(apr_pool_t *pchild, server_rec *s)
{
    apr_pool_t *p;
    pe_store_t *st = NULL;
    int applied = 0, attempt, threaded = 0;
    pe_store_status_e rs = PE_STORE_EIO;

    ap_mpm_query(AP_MPMQ_IS_THREADED, &threaded);
    pe_dbd_hold_signals = threaded == AP_MPMQ_NOT_SUPPORTED;
    if (!pe_dbd_open)
        return;
    apr_pool_create(&p, pchild);
    /* NB: siblings starting at the same moment can make SQLite report "schema has changed"
     * or a busy database; the apply is idempotent, so try again a few times. */
    for (attempt = 0; attempt < 20 && rs != PE_STORE_OK; attempt++) {
        if (attempt)
            apr_sleep(apr_time_from_msec(100));
        apr_pool_clear(p);
        st = dbd_open(p, s);
        if (st)
            rs = pe_store_schema_apply(st, &applied);
    }
    if (!st) {
        pe_slog(s, APLOG_ERR, 0, PE_LOGNO(00203) "no database connection to check the schema; check DBDriver/DBDParams");
        pe_dbd_diagnose(s, p);
    }
    else if (rs != PE_STORE_OK)
        pe_slog(s, APLOG_ERR, 0, PE_LOGNO(00204) "the database schema could not be applied: %s",
                pe_store_error(st) ? pe_store_error(st) : "unknown error");
    apr_pool_destroy(p);
}

/* ----------------------------------------------------------------------------------------- */
/* The owned connection (the conversation-log writer's) */

/*
 * Outside mod_dbd's pool, kept across uses, reopened after a failure: request threads holding
 * every pooled connection can never starve its user (issue 16 item 1).
 * NB: its pool is unmanaged, with an allocator of its own: the writer thread opens and closes
 * it while the request thread allocates, and under prefork pchild's allocator (shared by the
 * request's pools) has no mutex, so a subpool of pchild made and destroyed by the writer thread
 * races with the request thread (a prefork child died of SIGSEGV in the fault suite while the
 * writer kept reopening its connection during a PostgreSQL stop). pchild's cleanup closes it at
 * child exit, after the writer has been stopped by its pre-cleanup.
 */
typedef struct {
    apr_pool_t *cpool; /* the open connection and its prepared statements; NULL when closed */
    const apr_dbd_driver_t *driver;
    apr_dbd_t *handle;
    apr_hash_t *prepared;
    server_rec *s;
    apr_time_t last_log;
} dbd_own_t;

static void dbd_own_close(void *own);

static apr_status_t dbd_own_cleanup(void *own)
{
    dbd_own_close(own);
    return APR_SUCCESS;
}

static void *dbd_own_create(apr_pool_t *p, server_rec *s)
{
    dbd_own_t *o = apr_pcalloc(p, sizeof(*o));

    o->s = s;
    apr_pool_cleanup_register(p, o, dbd_own_cleanup, apr_pool_cleanup_null);
    return o;
}

static pe_store_t *dbd_own_get(void *own, apr_pool_t *p)
{
    dbd_own_t *o = own;

    if (!o->cpool) {
        const char *err;
        apr_status_t rv;

        if (apr_pool_create_unmanaged_ex(&o->cpool, NULL, NULL) != APR_SUCCESS) {
            o->cpool = NULL;
            return NULL;
        }
        if ((rv = pe_dbd_open_direct(o->cpool, &o->driver, &o->handle, &err)) != APR_SUCCESS) {
            apr_time_t now = apr_time_now();

            if (now - o->last_log > apr_time_from_sec(60)) {
                o->last_log = now;
                pe_slog(o->s, APLOG_WARNING, rv, PE_LOGNO(00207) "no database connection of its own: %s", err);
            }
            apr_pool_destroy(o->cpool);
            o->cpool = NULL;
            return NULL;
        }
        o->prepared = apr_hash_make(o->cpool);
    }
    return pe_store_dbd_make(p, o->driver, o->handle, o->prepared, o->cpool);
}

static void dbd_own_close(void *own)
{
    dbd_own_t *o = own;

    if (o->cpool)
        apr_pool_destroy(o->cpool);
    o->cpool = NULL;
}

const pe_store_provider_t pe_store_dbd_provider = {
    .name = "dbd",
    .post_config = dbd_post_config,
    .child_init = dbd_child_init,
    .for_request = dbd_for_request,
    .open = dbd_open,
    .own_create = dbd_own_create,
    .own_get = dbd_own_get,
    .own_close = dbd_own_close,
    .retrieve_fns = dbd_retrieve_fns,
};
