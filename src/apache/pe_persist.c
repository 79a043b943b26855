/*
 * pe_persist.c: shared-memory objects and their mutexes made once per httpd parent (pe_persist.h).
 */
#include "pe_persist.h"

#include "util_mutex.h"
#include <apr_strings.h>

apr_status_t pe_persist_get(server_rec *s, const char *name, const char *mutex_type, apr_uint64_t sig,
                            pe_persist_make_fn *make, void *baton, pe_persist_t **out, pe_persist_state_e *state)
{
    apr_pool_t *pp = s->process->pool;
    char key[128];
    pe_persist_t *ps = NULL;
    apr_status_t rv;

    *state = PE_PERSIST_MADE;
    apr_snprintf(key, sizeof(key), "pe_persist:%s", name);
    apr_pool_userdata_get((void **)&ps, key, pp);
    if (ps) {
        *state = ps->sig == sig ? PE_PERSIST_FOUND : PE_PERSIST_OTHER;
        *out = ps;
        return APR_SUCCESS;
    }
    ps = apr_pcalloc(pp, sizeof(*ps));
    /* NB: on the process pool, not pconf: the same lock for the old generation's children and the
     * new one's, since both use the same object. */
    if ((rv = ap_global_mutex_create(&ps->mutex, NULL, mutex_type, NULL, s, pp, 0)) != APR_SUCCESS)
        return rv;
    if ((rv = make(pp, ps->mutex, baton, &ps->obj)) != APR_SUCCESS) {
        apr_global_mutex_destroy(ps->mutex);
        return rv;
    }
    ps->sig = sig;
    apr_pool_userdata_set(ps, apr_pstrdup(pp, key), apr_pool_cleanup_null, pp);
    *out = ps;
    return APR_SUCCESS;
}

apr_status_t pe_persist_child_init(const pe_persist_t *ps, apr_pool_t *pchild, apr_global_mutex_t **m)
{
    *m = ps->mutex;
    return apr_global_mutex_child_init(m, apr_global_mutex_lockfile(ps->mutex), pchild);
}
