/*
 * pe_store_ap.h: the store's httpd side: the backend providers (PEStore), and the handles of a
 * request or of background work on the selected one.
 */
#ifndef PE_STORE_AP_H
#define PE_STORE_AP_H

#include "httpd.h"
#include "http_config.h"
#include "pe_store.h"

/**
 * A store backend as httpd sees it: how its handles are made and its process state set up. A
 * provider never lets a thread hold two connections of one pool (see pe_store_backend.h).
 */
typedef struct pe_store_provider_t {
    const char *name; /* the PEStore value */
    /** post_config (not the dry run), main server s: checks and warnings; non-OK refuses to start. */
    int (*post_config)(apr_pool_t *pconf, apr_pool_t *ptemp, server_rec *s);
    /** child_init: per-process state, then the schema (or collections) brought up to date. */
    void (*child_init)(apr_pool_t *pchild, server_rec *s);
    /** The request's handle (one connection for the whole request, given back with r->pool). */
    pe_store_t *(*for_request)(request_rec *r);
    /** A handle on a connection of its own, given back when p is cleaned up (background work). */
    pe_store_t *(*open)(apr_pool_t *p, server_rec *s);
    /** An owned connection's state (see pe_store_own_create), its handle, its closing. */
    void *(*own_create)(apr_pool_t *p, server_rec *s);
    pe_store_t *(*own_get)(void *own, apr_pool_t *p);
    void (*own_close)(void *own);
    /** optional_fn_retrieve (optional). */
    void (*retrieve_fns)(void);
} pe_store_provider_t;

/** The dbd provider (mod_dbd: SQLite, PostgreSQL); src/apache/pe_store_dbd_ap.c. */
extern const pe_store_provider_t pe_store_dbd_provider;

/** The provider named name, NULL when this build has none of that name. */
const pe_store_provider_t *pe_store_provider_find(const char *name);

/** "PEStore dbd|mongodb" (server config only: the backend is process-wide). */
const char *pe_store_cmd(cmd_parms *cmd, void *dconf, const char *arg);
#define PE_STORE_CMDS                                                                                                  \
    AP_INIT_TAKE1("PEStore", pe_store_cmd, NULL, RSRC_CONF,                                                            \
                  "The store backend: dbd (mod_dbd: SQLite or PostgreSQL, the default) or mongodb"),

/** Hooks (mod_promptenchanter.c registers them). */
int pe_store_pre_config(apr_pool_t *pconf, apr_pool_t *plog, apr_pool_t *ptemp);
int pe_store_post_config(apr_pool_t *pconf, apr_pool_t *plog, apr_pool_t *ptemp, server_rec *s);

/** optional_fn_retrieve: every provider's. */
void pe_store_retrieve_fns(void);

/**
 * The request's store on the selected backend, or NULL when no connection can be had (logged).
 * Callers use pe_auth_store(r), which makes it once per request.
 */
pe_store_t *pe_store_for_request(request_rec *r);

/**
 * A store on a connection of its own, given back when pool p is cleaned up (background work).
 * NB: never from a request thread holding the request's store: a thread holds one connection.
 */
pe_store_t *pe_store_open(apr_pool_t *p, server_rec *s);

/**
 * An owned connection: outside the pool request threads use (for dbd: opened with mod_dbd's
 * driver and parameters but not from its pool), so request threads can never starve its user
 * (the conversation-log writer), kept across uses. Made on p (a child pool), on the selected
 * backend.
 */
typedef struct pe_store_own_t pe_store_own_t;
pe_store_own_t *pe_store_own_create(apr_pool_t *p, server_rec *s);
/** A store handle in p on the owned connection, opened first when needed; NULL when it cannot be (logged). */
pe_store_t *pe_store_own_get(pe_store_own_t *o, apr_pool_t *p);
/** Close the connection after a failure: the next get opens a fresh one. */
void pe_store_own_close(pe_store_own_t *o);

/** child_init: the selected backend's per-process state and schema. */
void pe_store_child_init(apr_pool_t *pchild, server_rec *s);

#endif
