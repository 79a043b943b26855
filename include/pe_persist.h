/*
 * pe_persist.h: shared-memory objects and their global mutexes that outlive configuration
 * generations (src/apache/pe_persist.c).
 *
 * After a graceful restart the children of the old generation keep serving their requests while
 * the parent clears pconf and reads the configuration again. A global mutex made on pconf is then
 * destroyed under them (a robust pthread mutex in shared memory answers every later lock with
 * EINVAL), and a segment made on pconf is gone for the new generation. So every shared table
 * (access counters, response cache, research cache) is made once per httpd parent, on
 * s->process->pool, with a mutex of its registered type (`Mutex <type> ...`), and found again by
 * name in every later generation: both generations use the same lock and the same data, and a
 * graceful restart loses neither counters nor cache entries.
 *
 * Consequences, written in the directives' documentation: a change of a table's size, or of its
 * `Mutex` mechanism, takes effect when httpd is stopped and started, not at a graceful restart.
 */
#ifndef PE_PERSIST_H
#define PE_PERSIST_H

#include "httpd.h"
#include <apr_global_mutex.h>

/**
 * Make the object in pp (which lives as long as the httpd parent), guarded by mutex.
 * @param baton the caller's parameters (sizes)
 * @param obj   receives the object
 */
typedef apr_status_t pe_persist_make_fn(apr_pool_t *pp, apr_global_mutex_t *mutex, void *baton, void **obj);

/** A persistent object and its mutex (in the parent; children use pe_persist_child_init). */
typedef struct pe_persist_t {
    apr_global_mutex_t *mutex;
    void *obj;
    apr_uint64_t sig; /**< the caller's summary of the parameters the object was made with */
} pe_persist_t;

/** What pe_persist_get found. */
typedef enum pe_persist_state_e {
    PE_PERSIST_MADE = 0,    /**< made now (first configuration of this httpd parent) */
    PE_PERSIST_FOUND = 1,   /**< found, made with the same sig */
    PE_PERSIST_OTHER = 2    /**< found, made with another sig: kept unchanged (the caller says so) */
} pe_persist_state_e;

/**
 * post_config: the object called name, made now (with a new mutex of the registered type
 * mutex_type) or found from an earlier generation.
 * @param sig   a summary of the wanted parameters (e.g. entries * 2^32 + entry size)
 * @param state receives what happened
 * @return APR_SUCCESS, or the error of the mutex or of make (logged by the caller)
 */
apr_status_t pe_persist_get(server_rec *s, const char *name, const char *mutex_type, apr_uint64_t sig,
                            pe_persist_make_fn *make, void *baton, pe_persist_t **out, pe_persist_state_e *state);

/**
 * child_init: the mutex handle to use in this child.
 * @param m receives it
 */
apr_status_t pe_persist_child_init(const pe_persist_t *ps, apr_pool_t *pchild, apr_global_mutex_t **m);

#endif
