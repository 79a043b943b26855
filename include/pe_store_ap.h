/* pe_store_ap.h: the store for a request or a background task, through mod_dbd. */
#ifndef PE_STORE_AP_H
#define PE_STORE_AP_H

#include "httpd.h"
#include "pe_store.h"

/** Look up mod_dbd's optional functions (optional_fn_retrieve hook). */
void pe_store_retrieve_fns(void);

/**
 * The request's store on mod_dbd's request connection (released with the request), or NULL
 * when mod_dbd is missing or no connection can be had (logged).
 */
pe_store_t *pe_store_for_request(request_rec *r);

/** A store on a connection of its own, closed when pool p is cleaned up (background work). */
pe_store_t *pe_store_open(apr_pool_t *p, server_rec *s);

/**
 * An owned connection: opened with mod_dbd's driver and parameters but outside its pool (so
 * request threads can never starve its user), kept across uses. Made on p (a child pool).
 */
typedef struct pe_store_own_t pe_store_own_t;
pe_store_own_t *pe_store_own_create(apr_pool_t *p, server_rec *s);
/** A store handle in p on the owned connection, opened first when needed; NULL when it cannot be (logged). */
pe_store_t *pe_store_own_get(pe_store_own_t *o, apr_pool_t *p);
/** Close the connection after a failure: the next get opens a fresh one. */
void pe_store_own_close(pe_store_own_t *o);

/** child_init: bring the schema up to date on this server's database. */
void pe_store_child_init(apr_pool_t *pchild, server_rec *s);

#endif
