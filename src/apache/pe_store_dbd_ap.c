/*
 * pe_store_dbd_ap.c: the dbd store provider: handles on mod_dbd's connections, the reconnect
 * of background handles, the pool size check and the schema at child start.
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
#include "pe_log.h"
#include "pe_store_ap.h"
#include "pe_store_dbd.h"

#include "ap_mpm.h"
#include "http_core.h"
#include "http_request.h"
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
    /* NB: a dead pooled connection is dropped by mod_dbd's check, which then answers NULL
     * (and the request holds nothing): one more try gets another. */
    if (!(dbd = pe_dbd_acquire(r)))
        dbd = pe_dbd_acquire(r);
    if (!dbd) {
        pe_rlog(r, APLOG_ERR, 0, PE_LOGNO(00202) "no database connection from mod_dbd");
        return NULL;
    }
    return pe_store_dbd_make(r->pool, dbd->driver, dbd->handle, dbd->prepared, dbd->pool);
}

/* ----------------------------------------------------------------------------------------- */
/* Start-up */

/* The DBDMax of the main server (mod_dbd's default 10 when unset) and the smallest of the
 * virtual hosts', from the configuration tree (mod_dbd keeps its settings private). */
static void dbd_max_scan(const ap_directive_t *d, int in_vhost, int *main_max, int *vhost_min)
{
    for (; d; d = d->next) {
        if (!strcasecmp(d->directive, "DBDMax") && d->args) {
            int v = atoi(d->args);

            if (in_vhost)
                *vhost_min = (*vhost_min < 0 || v < *vhost_min) ? v : *vhost_min;
            else
                *main_max = v;
        } else if (d->first_child) {
            dbd_max_scan(d->first_child, in_vhost || !strcasecmp(d->directive, "<VirtualHost"), main_max, vhost_min);
        }
    }
}

/*
 * post_config: warn when a child's connection pool is smaller than its threads. Nothing hangs
 * (a thread holds one connection at a time), but threads beyond DBDMax wait for a connection
 * with no time limit while the store is slow.
 */
static int dbd_post_config(apr_pool_t *pconf, apr_pool_t *ptemp, server_rec *s)
{
    int threads = 1, main_max = 10, vhost_min = -1, least;

    if (ap_mpm_query(AP_MPMQ_MAX_THREADS, &threads) != APR_SUCCESS || threads < 1)
        threads = 1;
    dbd_max_scan(ap_conftree, 0, &main_max, &vhost_min);
    least = (vhost_min >= 0 && vhost_min < main_max) ? vhost_min : main_max;
    if (least < threads) {
        const char *advice = "set DBDMax to ThreadsPerChild; with PostgreSQL keep DBDMax times the number of "
                             "children below max_connections";

        pe_slog(s, APLOG_WARNING, 0, PE_LOGNO(00205) "DBDMax %d is below the %d threads of a child: under load "
                "requests wait for a database connection (%s)", least, threads, advice);
    }
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
    int applied = 0, attempt;
    pe_store_status_e rs = PE_STORE_EIO;

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
    if (!st)
        pe_slog(s, APLOG_ERR, 0,
                PE_LOGNO(00203) "no database connection to check the schema; check DBDriver/DBDParams");
    else if (rs != PE_STORE_OK)
        pe_slog(s, APLOG_ERR, 0, PE_LOGNO(00204) "the database schema could not be applied: %s",
                pe_store_error(st) ? pe_store_error(st) : "unknown error");
    apr_pool_destroy(p);
}

const pe_store_provider_t pe_store_dbd_provider = {
    .name = "dbd",
    .post_config = dbd_post_config,
    .child_init = dbd_child_init,
    .for_request = dbd_for_request,
    .open = dbd_open,
    .retrieve_fns = dbd_retrieve_fns,
};
