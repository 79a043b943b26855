/*
 * pe_store_mongo_ap.c: the MongoDB store's httpd side (PEStore mongodb).
 *
 * PEMongoURI is read from the main server only and checked at configuration time, so a
 * malformed URI fails `apache2 -t`. Every child makes its own mongoc_client_pool_t in child_init
 * (a client pool does not survive fork) with mongoc_init() once per process and mongoc_cleanup()
 * when the child's pool goes; a request borrows one client for its whole life and gives it back
 * from an r->pool cleanup, as ap_dbd_acquire ties a connection to the request. A server that is
 * down makes the operations fail within serverSelectionTimeoutMS (503 STORE_UNAVAILABLE); the
 * pool's monitor finds it again when it is back, with no restart.
 */
#include "pe_log.h"
#include "pe_store_mongo.h"
#include "pe_store_mongo_ap.h"

#include "ap_mpm.h"
#include "http_core.h"
#include <apr_strings.h>

/* Of this configuration generation: the URI (NULL when unset), reset when pconf is cleared. */
static const char *pe_mongo_uri;
/* Of this process (a child): its client pool. */
static pe_mongo_t *pe_mongo;

static apr_status_t pe_store_mongo_forget_uri(void *data)
{
    pe_mongo_uri = NULL;
    return APR_SUCCESS;
}

const char *pe_store_mongo_cmd_uri(cmd_parms *cmd, void *dconf, const char *arg)
{
    const char *err = ap_check_cmd_context(cmd, GLOBAL_ONLY);

    if (err)
        return apr_psprintf(cmd->pool, "%s: the MongoDB connection is process-wide (%s)", cmd->cmd->name, err);
    if ((err = pe_mongo_uri_check(cmd->temp_pool, arg)))
        return apr_psprintf(cmd->pool, "%s: not a usable MongoDB URI: %s", cmd->cmd->name, err);
    if (!pe_mongo_uri)
        apr_pool_cleanup_register(cmd->pool, NULL, pe_store_mongo_forget_uri, apr_pool_cleanup_null);
    pe_mongo_uri = apr_pstrdup(cmd->pool, arg);
    return NULL;
}

static int pe_store_mongo_post_config(apr_pool_t *pconf, apr_pool_t *ptemp, server_rec *s)
{
    if (!pe_mongo_uri) {
        pe_slog(s, APLOG_CRIT, 0, PE_LOGNO(00250) "PEStore mongodb needs PEMongoURI");
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    return OK;
}

/* The pool's size: every thread of the child may hold one client, plus background work. */
static int pe_store_mongo_pool_size(void)
{
    int threads = 1;

    if (ap_mpm_query(AP_MPMQ_MAX_THREADS, &threads) != APR_SUCCESS || threads < 1)
        threads = 1;
    return threads + 8;
}

static void pe_store_mongo_child_init(apr_pool_t *pchild, server_rec *s)
{
    const char *err = NULL;
    apr_pool_t *p;
    pe_store_t *st;

    pe_mongo = NULL;
    if (!pe_mongo_uri)
        return;
    pe_mongo_global_init(pchild);
    pe_mongo = pe_mongo_create(pchild, pe_mongo_uri, pe_store_mongo_pool_size(), &err);
    if (!pe_mongo) {
        pe_slog(s, APLOG_ERR, 0, PE_LOGNO(00251) "PEMongoURI: no MongoDB client pool: %s", err ? err : "unknown");
        return;
    }
    /* Collections and indexes now when the server is up; otherwise the first request that
     * reaches it brings them up to date. */
    apr_pool_create(&p, pchild);
    st = pe_store_mongo_make(p, pe_mongo);
    pe_store_mongo_ensure_schema(st);
    if (!pe_mongo_schema_ok(pe_mongo))
        pe_slog(s, APLOG_WARNING, 0, PE_LOGNO(00252) "MongoDB (database %s) cannot be reached now; its "
                "collections are checked again on first use", pe_mongo_db_name(pe_mongo));
    apr_pool_destroy(p);
}

static pe_store_t *pe_store_mongo_open(apr_pool_t *p, server_rec *s)
{
    pe_store_t *st;

    if (!pe_mongo)
        return NULL;
    st = pe_store_mongo_make(p, pe_mongo);
    pe_store_mongo_ensure_schema(st);
    return st;
}

static pe_store_t *pe_store_mongo_for_request(request_rec *r)
{
    pe_store_t *st = pe_store_mongo_open(r->pool, r->server);

    if (!st)
        pe_rlog(r, APLOG_ERR, 0, PE_LOGNO(00253) "no MongoDB client pool in this process (see PE00251)");
    return st;
}

static void *pe_store_mongo_own_create(apr_pool_t *p, server_rec *s)
{
    return pe_mongo ? pe_mongo_own_create(p, pe_mongo) : NULL;
}

static pe_store_t *pe_store_mongo_own_get(void *own, apr_pool_t *p)
{
    pe_store_t *st = own ? pe_mongo_own_get(own, p) : NULL;

    if (st)
        pe_store_mongo_ensure_schema(st);
    return st;
}

static void pe_store_mongo_own_close(void *own)
{
    if (own)
        pe_mongo_own_close(own);
}

const pe_store_provider_t pe_store_mongo_provider = {
    .name = "mongodb",
    .post_config = pe_store_mongo_post_config,
    .child_init = pe_store_mongo_child_init,
    .for_request = pe_store_mongo_for_request,
    .open = pe_store_mongo_open,
    .own_create = pe_store_mongo_own_create,
    .own_get = pe_store_mongo_own_get,
    .own_close = pe_store_mongo_own_close,
};
