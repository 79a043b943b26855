/*
 * pe_store_mongo.h: the store on MongoDB (libmongoc), the constructor side of the backend.
 *
 * A pe_mongo_t is the per-process part: a mongoc_client_pool_t on one URI and the database
 * name. It is made in child_init (never before fork: a client pool is not fork-safe) and
 * destroyed with the pool it was made in. A store handle borrows one client from it for the
 * life of the handle's pool (a request, or one batch of background work), as ap_dbd_acquire
 * ties a connection to the request.
 *
 * Call mongoc_init() once per process before pe_mongo_create() (pe_mongo_global_init does it
 * and registers mongoc_cleanup on the given pool).
 */
#ifndef PE_STORE_MONGO_H
#define PE_STORE_MONGO_H

#include <apr_pools.h>

#include "pe_store.h"

typedef struct pe_mongo_t pe_mongo_t;

/** The database used when the URI names none. */
#define PE_MONGO_DEFAULT_DB "promptenchanter"

/**
 * Check a URI the way pe_mongo_create() will use it (configuration time: no connection made).
 * @return NULL when it is usable, else the reason (allocated in p)
 */
const char *pe_mongo_uri_check(apr_pool_t *p, const char *uri);

/** mongoc_init() for this process, with mongoc_cleanup() when pool p is cleaned up. */
void pe_mongo_global_init(apr_pool_t *p);

/**
 * The per-process client pool on uri. Options the operator did not set get bounded defaults
 * (serverSelectionTimeoutMS, connectTimeoutMS, socketTimeoutMS, w=majority): a request never
 * waits the driver's 30 s default for a server that is down.
 * @param max_clients the pool's size unless the URI sets maxPoolSize (0: the driver's default,
 *        100); at least the number of threads that use the store at once, or a thread waits
 * @return NULL with *err set when the URI is unusable
 */
pe_mongo_t *pe_mongo_create(apr_pool_t *p, const char *uri, int max_clients, const char **err);

/** The database name in use. */
const char *pe_mongo_db_name(const pe_mongo_t *m);

/**
 * A store handle on a client of m's pool, given back when p is cleaned up. Never NULL: a server
 * that is down shows as PE_STORE_EIO from the operations (bounded by serverSelectionTimeoutMS).
 */
pe_store_t *pe_store_mongo_make(apr_pool_t *p, pe_mongo_t *m);

/**
 * An owned client: not from the pool (so request threads, which may hold every pooled client,
 * never starve its user, the conversation-log writer), made on first use and kept across uses,
 * for one thread at a time; closed when p is cleaned up.
 */
typedef struct pe_mongo_own_t pe_mongo_own_t;
pe_mongo_own_t *pe_mongo_own_create(apr_pool_t *p, pe_mongo_t *m);
/** A handle in p on the owned client (made first when needed); NULL when it cannot be made. A
 *  handle's pool must be cleaned up before the next get or close. */
pe_store_t *pe_mongo_own_get(pe_mongo_own_t *o, apr_pool_t *p);
/** Close the client (after a failure): the next get makes a new one. */
void pe_mongo_own_close(pe_mongo_own_t *o);

/**
 * Bring collections and indexes up to date once per process (pe_store_schema_apply), unless that
 * was done already; after a failure it is tried again by a later call, at most every 5 s. The
 * glue calls it with every handle it makes, so a server that was down at start-up needs no
 * restart.
 */
void pe_store_mongo_ensure_schema(pe_store_t *st);

/** The collection-layout version this build knows (the pe_schema_version document). */
int pe_store_mongo_schema_version(void);

/** True once this process has found (or brought) the collection layout up to date. */
int pe_mongo_schema_ok(const pe_mongo_t *m);

#endif
