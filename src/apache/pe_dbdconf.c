/*
 * pe_dbdconf.c: mod_dbd's settings from the configuration tree, a connection outside mod_dbd's
 * pool, and the diagnosis of a store that cannot be opened (see pe_dbdconf_ap.h).
 */
#include "pe_dbdconf_ap.h"
#include "pe_log.h"

#include "ap_mpm.h"
#include "http_config.h"

#include <apr_strings.h>
#include <errno.h>
#include <string.h>
#include <unistd.h>

static pe_dbdconf_t pe_dbdc;
static apr_time_t pe_last_diagnosis;

/* The first argument of a directive line, unquoted. */
static const char *first_arg(apr_pool_t *p, const char *args)
{
    return ap_getword_conf(p, &args);
}

void pe_dbdconf_post_config(apr_pool_t *pconf, server_rec *s)
{
    const ap_directive_t *d;
    int threads = 0;

    memset(&pe_dbdc, 0, sizeof(pe_dbdc));
    /* NB: <IfModule>/<IfDefine> contents and Include'd files are part of the top level here;
     * <VirtualHost> sections are not walked: the main server's settings are the ones used. */
    for (d = ap_conftree; d; d = d->next) {
        if (!strcasecmp(d->directive, "DBDriver"))
            pe_dbdc.driver = first_arg(pconf, d->args);
        else if (!strcasecmp(d->directive, "DBDParams"))
            pe_dbdc.params = first_arg(pconf, d->args);
        else if (!strcasecmp(d->directive, "DBDMax"))
            pe_dbdc.max = atoi(first_arg(pconf, d->args));
    }
    if (!pe_dbdc.driver)
        return;
    if (ap_mpm_query(AP_MPMQ_MAX_THREADS, &threads) == APR_SUCCESS && threads > 1) {
        /* mod_dbd's default DBDMax for a threaded MPM is 10. */
        int max = pe_dbdc.max > 0 ? pe_dbdc.max : 10;

        if (max < threads)
            pe_slog(s, APLOG_NOTICE, 0,
                    PE_LOGNO(00206) "DBDMax %d is below ThreadsPerChild %d: under load requests wait for a database "
                    "connection (set DBDMax %d to give every thread one)", max, threads, threads);
    }
}

const pe_dbdconf_t *pe_dbdconf(void)
{
    return &pe_dbdc;
}

typedef struct {
    const apr_dbd_driver_t *driver;
    apr_dbd_t *handle;
} direct_conn_t;

static apr_status_t direct_close(void *data)
{
    direct_conn_t *c = data;

    if (c->handle)
        apr_dbd_close(c->driver, c->handle);
    c->handle = NULL;
    return APR_SUCCESS;
}

apr_status_t pe_dbd_open_direct(apr_pool_t *p, const apr_dbd_driver_t **driver, apr_dbd_t **handle,
                                const char **err)
{
    direct_conn_t *c = apr_pcalloc(p, sizeof(*c));
    const char *params = pe_dbdc.params ? pe_dbdc.params : "";
    apr_status_t rv;

    *err = NULL;
    if (!pe_dbdc.driver) {
        *err = "DBDriver is not set";
        return APR_EINIT;
    }
    if ((rv = apr_dbd_get_driver(p, pe_dbdc.driver, &c->driver)) != APR_SUCCESS) {
        *err = apr_psprintf(p, "the %s driver cannot be loaded", pe_dbdc.driver);
        return rv;
    }
    /* NB: a connect to an address that does not answer must not hold the caller for minutes. */
    if (!strcmp(pe_dbdc.driver, "pgsql") && !strstr(params, "connect_timeout"))
        params = apr_pstrcat(p, params, " connect_timeout=2", NULL);
    if ((rv = apr_dbd_open_ex(c->driver, p, params, &c->handle, err)) != APR_SUCCESS || !c->handle) {
        if (!*err)
            *err = "the connection could not be opened";
        return rv != APR_SUCCESS ? rv : APR_EGENERAL;
    }
    apr_pool_cleanup_register(p, c, direct_close, apr_pool_cleanup_null);
    *driver = c->driver;
    *handle = c->handle;
    return APR_SUCCESS;
}

/* The first component of path that this process cannot search, or NULL. */
static const char *unsearchable_part(apr_pool_t *p, const char *path)
{
    char *d = apr_pstrdup(p, path), *slash;

    for (slash = strchr(d + 1, '/'); slash; slash = strchr(slash + 1, '/')) {
        *slash = '\0';
        if (access(d, X_OK) != 0)
            return d;
        *slash = '/';
    }
    return NULL;
}

void pe_dbd_diagnose(server_rec *s, apr_pool_t *p)
{
    const char *file = pe_dbdc.params, *dir, *part, *why = NULL;
    apr_time_t now = apr_time_now();

    if (!pe_dbdc.driver || strcmp(pe_dbdc.driver, "sqlite3") || !file || !*file || file[0] != '/')
        return;
    if (now - pe_last_diagnosis < apr_time_from_sec(60))
        return;
    pe_last_diagnosis = now;
    dir = apr_pstrndup(p, file, (apr_size_t)(strrchr(file, '/') - file));
    if (!*dir)
        dir = "/";
    if ((part = unsearchable_part(p, file)))
        why = apr_psprintf(p, "no search (x) permission on %s", part);
    else if (access(file, F_OK) == 0 && access(file, R_OK | W_OK) != 0)
        why = apr_psprintf(p, "no read and write permission on %s", file);
    else if (access(file, F_OK) != 0 && access(dir, W_OK) != 0)
        why = apr_psprintf(p, "%s does not exist and %s is not writable", file, dir);
    else if (access(dir, W_OK) != 0)
        why = apr_psprintf(p, "%s is not writable (SQLite keeps its journal beside the file)", dir);
    if (why)
        pe_slog(s, APLOG_ERR, 0,
                PE_LOGNO(00205) "the SQLite store %s cannot be opened by uid %ld: %s", file, (long)geteuid(), why);
}
