/*
 * pe_principal_ap.c: the per-node principal cache (pe_principal_ap.h). A pe_shm table keyed by
 * the API key digest, and one 64-bit generation counter in its own shared segment, both made once
 * per httpd parent (pe_persist.h), so every child and both generations of a graceful restart see
 * the same entries and the same counter.
 */
#include "pe_config.h"
#include "pe_log.h"
#include "pe_persist.h"
#include "pe_principal_ap.h"
#include "pe_shm.h"

#include "util_mutex.h"
#include <apr_shm.h>
#include <apr_strings.h>

/* The fields kept; a user whose values do not fit is not cached. */
typedef struct pe_principal_entry_t {
    apr_uint64_t gen;
    apr_time_t filled;
    apr_int32_t is_verified;
    char id[32], username[80], level[16], access_rtype[128], plan[64], user_type[64];
} pe_principal_entry_t;

typedef struct pe_principal_shared_t {
    pe_shm_t *shm;
    apr_shm_t *seg;
    apr_uint64_t *gen;
} pe_principal_shared_t;

static struct {
    pe_persist_t *ps;
    pe_principal_shared_t *sh;
    int ok; /* this child's mutex works */
} pe_pc;

int pe_principal_pre_config(apr_pool_t *pconf, apr_pool_t *plog, apr_pool_t *ptemp)
{
    memset(&pe_pc, 0, sizeof(pe_pc));
    return ap_mutex_register(pconf, PE_PRINCIPAL_MUTEX, NULL, APR_LOCK_DEFAULT, 0);
}

static apr_status_t principal_make(apr_pool_t *pp, apr_global_mutex_t *mutex, void *baton, void **obj)
{
    pe_principal_shared_t *sh = apr_pcalloc(pp, sizeof(*sh));
    apr_status_t rv;

    if ((rv = pe_shm_create(pp, PE_PRINCIPAL_SLOTS, sizeof(pe_principal_entry_t), mutex, &sh->shm)) != APR_SUCCESS ||
        (rv = apr_shm_create(&sh->seg, sizeof(apr_uint64_t), NULL, pp)) != APR_SUCCESS)
        return rv;
    pe_shm_set_name(sh->shm, "principal cache", "the least recently used API keys are read from the store again");
    sh->gen = apr_shm_baseaddr_get(sh->seg);
    __atomic_store_n(sh->gen, 1, __ATOMIC_SEQ_CST);
    *obj = sh;
    return APR_SUCCESS;
}

int pe_principal_post_config(apr_pool_t *pconf, apr_pool_t *ptemp, server_rec *s)
{
    pe_persist_state_e state;
    apr_status_t rv;

    if ((rv = pe_persist_get(s, "principal", PE_PRINCIPAL_MUTEX, PE_PRINCIPAL_SLOTS, principal_make, NULL, &pe_pc.ps,
                             &state)) != APR_SUCCESS) {
        pe_slog(s, APLOG_CRIT, rv, PE_LOGNO(46001) "cannot create the principal cache's shared table or its %s mutex",
                PE_PRINCIPAL_MUTEX);
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    pe_pc.sh = pe_pc.ps->obj;
    return OK;
}

void pe_principal_child_init(apr_pool_t *pchild, server_rec *s)
{
    apr_global_mutex_t *m;
    apr_status_t rv;

    pe_pc.ok = 0;
    if (!pe_pc.ps)
        return;
    if ((rv = pe_persist_child_init(pe_pc.ps, pchild, &m)) != APR_SUCCESS) {
        pe_slog(s, APLOG_ERR, rv, PE_LOGNO(46002) "%s mutex unusable in this child: API keys are read from the store "
                "on every request here", PE_PRINCIPAL_MUTEX);
        return;
    }
    pe_shm_mutex_set(pe_pc.sh->shm, m);
    pe_pc.ok = 1;
}

/* The cache's lifetime for this server; 0 when it is off or unusable. */
static apr_interval_time_t principal_ttl(server_rec *s)
{
    if (!pe_pc.ok || !pe_pc.sh)
        return 0;
    return apr_time_from_msec(pe_srv_principal_ttl_ms(pe_config_srv(s)));
}

int pe_principal_lookup(request_rec *r, const char *digest, pe_user_t **out, apr_uint64_t *gen)
{
    apr_interval_time_t ttl = principal_ttl(r->server);
    apr_time_t now = apr_time_now();
    pe_principal_entry_t e;
    pe_user_t *u;

    *gen = 0;
    if (!ttl)
        return 0;
    *gen = __atomic_load_n(pe_pc.sh->gen, __ATOMIC_SEQ_CST);
    if (pe_shm_get(pe_pc.sh->shm, digest, -1, now, &e, sizeof(e), NULL) != APR_SUCCESS)
        return 0;
    /* NB: stale after any change on this node, and never older than this server's TTL. */
    if (e.gen != *gen || now - e.filled >= ttl || now < e.filled)
        return 0;
    u = apr_pcalloc(r->pool, sizeof(*u));
    u->id = apr_pstrdup(r->pool, e.id);
    u->username = apr_pstrdup(r->pool, e.username);
    u->level = apr_pstrdup(r->pool, e.level);
    u->access_rtype = apr_pstrdup(r->pool, e.access_rtype);
    u->subscription_plan = apr_pstrdup(r->pool, e.plan);
    u->user_type = apr_pstrdup(r->pool, e.user_type);
    u->name = u->email = u->about_me = u->hobbies = u->additional_notes = "";
    u->api_key_digest = apr_pstrdup(r->pool, digest);
    u->is_verified = e.is_verified;
    u->is_active = 1;
    *out = u;
    return 1;
}

/* Copy s into dst; 0 when it does not fit. */
static int put(char *dst, apr_size_t size, const char *s)
{
    apr_size_t n = s ? strlen(s) : 0;

    if (n >= size)
        return 0;
    memcpy(dst, s ? s : "", n);
    dst[n] = '\0';
    return 1;
}

/* pe_shm_update callback: write the entry, live for one TTL from now. */
typedef struct set_baton_t {
    const pe_principal_entry_t *e;
    apr_interval_time_t ttl;
} set_baton_t;

static int set_cb(void *baton, void *value, apr_size_t value_size, int created, apr_time_t now, apr_time_t *expires)
{
    set_baton_t *b = baton;

    memcpy(value, b->e, sizeof(*b->e));
    *expires = now + b->ttl;
    return PE_SHM_KEEP;
}

void pe_principal_remember(request_rec *r, const char *digest, apr_uint64_t gen, const pe_user_t *u)
{
    apr_interval_time_t ttl = principal_ttl(r->server);
    pe_principal_entry_t e;
    set_baton_t b;

    if (!ttl || !gen || !u || !u->is_active)
        return;
    memset(&e, 0, sizeof(e));
    if (!put(e.id, sizeof(e.id), u->id) || !put(e.username, sizeof(e.username), u->username) ||
        !put(e.level, sizeof(e.level), u->level) || !put(e.access_rtype, sizeof(e.access_rtype), u->access_rtype) ||
        !put(e.plan, sizeof(e.plan), u->subscription_plan) || !put(e.user_type, sizeof(e.user_type), u->user_type))
        return;
    e.gen = gen;
    e.filled = apr_time_now();
    e.is_verified = u->is_verified;
    b.e = &e;
    b.ttl = ttl;
    pe_shm_update(pe_pc.sh->shm, digest, -1, e.filled, ttl, 0, set_cb, &b);
}

void pe_principal_changed(server_rec *s, const char *user_id)
{
    apr_uint64_t g;

    if (!pe_pc.sh)
        return;
    g = __atomic_add_fetch(pe_pc.sh->gen, 1, __ATOMIC_SEQ_CST);
    pe_slog(s, APLOG_DEBUG, 0, PE_LOGNO(46003) "user %s changed: cached principals of this node are stale "
            "(generation %" APR_UINT64_T_FMT ")", user_id ? user_id : "-", g);
}
