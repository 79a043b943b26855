/*
 * pe_store_ap.c: the store's httpd side: connections from mod_dbd, a reconnect for the
 * backend's single retry, and the schema at child start.
 */
#include "apr_dbd.h" /* NB: mod_dbd.h does not include it */
#include "mod_dbd.h"

#include "pe_config.h"
#include "pe_dbdconf_ap.h"
#include "pe_log.h"
#include "pe_store_ap.h"

#include "http_request.h"

static APR_OPTIONAL_FN_TYPE(ap_dbd_acquire) *pe_dbd_acquire;
static APR_OPTIONAL_FN_TYPE(ap_dbd_open) *pe_dbd_open;
static APR_OPTIONAL_FN_TYPE(ap_dbd_close) *pe_dbd_close;

void pe_store_retrieve_fns(void)
{
    pe_dbd_acquire = APR_RETRIEVE_OPTIONAL_FN(ap_dbd_acquire);
    pe_dbd_open = APR_RETRIEVE_OPTIONAL_FN(ap_dbd_open);
    pe_dbd_close = APR_RETRIEVE_OPTIONAL_FN(ap_dbd_close);
}

typedef struct {
    server_rec *s;
    ap_dbd_t *dbd;
} pe_own_conn_t;

/* Pool cleanup: give an own connection back to mod_dbd. */
static apr_status_t pe_store_conn_release(void *data)
{
    pe_own_conn_t *oc = data;

    if (oc->dbd)
        pe_dbd_close(oc->s, oc->dbd);
    oc->dbd = NULL;
    return APR_SUCCESS;
}

/* Point st at a connection of its own (closed with st->pool). */
static apr_status_t pe_store_attach_own(pe_store_t *st, server_rec *s)
{
    pe_own_conn_t *oc = apr_pcalloc(st->pool, sizeof(*oc));

    oc->s = s;
    oc->dbd = pe_dbd_open(st->pool, s);
    if (!oc->dbd)
        return APR_EGENERAL;
    apr_pool_cleanup_register(st->pool, oc, pe_store_conn_release, apr_pool_cleanup_null);
    st->driver = oc->dbd->driver;
    st->handle = oc->dbd->handle;
    st->prepared = oc->dbd->prepared;
    st->conn_pool = oc->dbd->pool;
    st->glue = s;
    return APR_SUCCESS;
}

pe_store_t *pe_store_for_request(request_rec *r)
{
    ap_dbd_t *dbd;

    if (!pe_dbd_acquire) {
        pe_rlog(r, APLOG_ERR, 0, PE_LOGNO(00201) "mod_dbd is not loaded: the store is unavailable");
        return NULL;
    }
    dbd = pe_dbd_acquire(r);
    if (!dbd) {
        /* A dead pooled connection is refused by mod_dbd's check; one more try gets a new one. */
        dbd = pe_dbd_acquire(r);
    }
    if (!dbd) {
        pe_rlog(r, APLOG_ERR, 0, PE_LOGNO(00202) "no database connection from mod_dbd");
        pe_dbd_diagnose(r->server, r->pool);
        return NULL;
    }
    /* NB: no reconnect function. The backend's retry revives this same connection in place
     * (apr_dbd_check_conn: PQreset for PostgreSQL); asking mod_dbd for a second connection while
     * holding this one is how every thread of a child came to wait for good after a PostgreSQL
     * restart (issue 16 item 1: DBDMax connections held, each holder waiting for another). */
    return pe_store_dbd_make(r->pool, dbd->driver, dbd->handle, dbd->prepared, dbd->pool);
}

pe_store_t *pe_store_open(apr_pool_t *p, server_rec *s)
{
    pe_store_t *st;

    if (!pe_dbd_open)
        return NULL;
    st = pe_store_dbd_make(p, NULL, NULL, NULL, NULL);
    if (pe_store_attach_own(st, s) != APR_SUCCESS)
        return NULL;
    return st; /* NB: no reconnect function either (see pe_store_for_request) */
}

/*
 * child_init: apply missing schema versions. Every child tries; the store serialises them
 * (SQLite write lock, PostgreSQL advisory lock) and all but the first find nothing to do.
 * NB: runs after mod_dbd's child_init, which creates the connection pool.
 */
void pe_store_child_init(apr_pool_t *pchild, server_rec *s)
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
        st = pe_store_open(p, s);
        if (st)
            rs = pe_store_schema_apply(st, &applied);
    }
    if (!st) {
        pe_slog(s, APLOG_ERR, 0, PE_LOGNO(00203) "no database connection to check the schema; check DBDriver/DBDParams");
        pe_dbd_diagnose(s, p);
    }
    else if (rs != PE_STORE_OK)
        pe_slog(s, APLOG_ERR, 0, PE_LOGNO(00204) "the database schema could not be applied: %s",
                st->error ? st->error : "unknown error");
    apr_pool_destroy(p);
}

/*
 * An owned connection: outside mod_dbd's pool, kept across uses, reopened after a failure.
 * The conversation-log writer uses one, so request threads holding every pooled connection can
 * never starve it (issue 16 item 1).
 */
struct pe_store_own_t {
    apr_pool_t *parent;
    apr_pool_t *cpool; /* the open connection and its prepared statements; NULL when closed */
    const apr_dbd_driver_t *driver;
    apr_dbd_t *handle;
    apr_hash_t *prepared;
    server_rec *s;
    apr_time_t last_log;
};

pe_store_own_t *pe_store_own_create(apr_pool_t *p, server_rec *s)
{
    pe_store_own_t *o = apr_pcalloc(p, sizeof(*o));

    o->parent = p;
    o->s = s;
    return o;
}

pe_store_t *pe_store_own_get(pe_store_own_t *o, apr_pool_t *p)
{
    if (!o->cpool) {
        const char *err;
        apr_status_t rv;

        apr_pool_create(&o->cpool, o->parent);
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

void pe_store_own_close(pe_store_own_t *o)
{
    if (o->cpool)
        apr_pool_destroy(o->cpool);
    o->cpool = NULL;
}
