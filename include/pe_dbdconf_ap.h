/*
 * pe_dbdconf_ap.h: mod_dbd's settings as httpd read them (DBDriver, DBDParams, DBDMax of the main
 * server, from the configuration tree), for what mod_dbd's pool must not serve:
 *  - the conversation-log writer's connection of its own, so request threads can never starve
 *    it (issue 16 item 1: under a PostgreSQL restart every pooled connection was held by a
 *    request waiting for another one, and the writer waited behind them until httpd was killed);
 *  - the diagnosis of a store that cannot be opened (which file, which permission);
 *  - the start-up check of DBDMax against the threads of a child.
 */
#ifndef PE_DBDCONF_AP_H
#define PE_DBDCONF_AP_H

#include "apr_dbd.h"
#include "httpd.h"

typedef struct pe_dbdconf_t {
    const char *driver; /* NULL when DBDriver is not set */
    const char *params;
    int max;            /* DBDMax, or 0 when not set (mod_dbd's default applies) */
} pe_dbdconf_t;

/** post_config: remember the main server's DBD settings (top level of the configuration). */
void pe_dbdconf_post_config(apr_pool_t *pconf, server_rec *s);

/** The settings read at post_config (never NULL; driver NULL when none). */
const pe_dbdconf_t *pe_dbdconf(void);

/**
 * A connection of its own with mod_dbd's driver and parameters, outside mod_dbd's pool; closed
 * when p is cleaned up. PostgreSQL connections get a connect_timeout when the parameters have none.
 * @return APR_SUCCESS, or an error with *err set to the driver's message
 */
apr_status_t pe_dbd_open_direct(apr_pool_t *p, const apr_dbd_driver_t **driver, apr_dbd_t **handle,
                                const char **err);

/**
 * Log why the store cannot be opened when the cause can be named (an SQLite file or folder the
 * child's user cannot read, write or reach): which path, which permission, which uid.
 * At most once a minute per process.
 */
void pe_dbd_diagnose(server_rec *s, apr_pool_t *p);

#endif
