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

/** child_init: bring the schema up to date on this server's database. */
void pe_store_child_init(apr_pool_t *pchild, server_rec *s);

#endif
