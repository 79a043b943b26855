/*
 * pe_store_ap.c: the store's httpd side: the providers this build has, the PEStore choice
 * (process-wide), and the handles of requests and background work on the chosen provider.
 */
#include "pe_config.h"
#include "pe_log.h"
#include "pe_store_ap.h"
#include "pe_store_mongo_ap.h"

#include "http_core.h"
#include <apr_strings.h>

/* The backends of this build; a new one is one entry (and its provider file). */
static const pe_store_provider_t *const pe_store_providers[] = {
    &pe_store_dbd_provider,
    &pe_store_mongo_provider,
    NULL,
};

/* The backends the product knows, built here or not (for the message of a missing one). */
static const char *const pe_store_known[] = {"dbd", "mongodb", NULL};

/* PEStore of this configuration generation (NULL: the default, dbd). */
static const pe_store_provider_t *pe_store_chosen;

const pe_store_provider_t *pe_store_provider_find(const char *name)
{
    int i;

    for (i = 0; pe_store_providers[i]; i++)
        if (!strcasecmp(pe_store_providers[i]->name, name))
            return pe_store_providers[i];
    return NULL;
}

static const pe_store_provider_t *pe_store_active(void)
{
    return pe_store_chosen ? pe_store_chosen : &pe_store_dbd_provider;
}

const char *pe_store_cmd(cmd_parms *cmd, void *dconf, const char *arg)
{
    const char *err = ap_check_cmd_context(cmd, GLOBAL_ONLY);
    const pe_store_provider_t *p;
    int i;

    if (err)
        return apr_psprintf(cmd->pool, "%s: the store backend is process-wide (%s)", cmd->cmd->name, err);
    if ((p = pe_store_provider_find(arg))) {
        pe_store_chosen = p;
        return NULL;
    }
    for (i = 0; pe_store_known[i]; i++)
        if (!strcasecmp(pe_store_known[i], arg))
            return apr_psprintf(cmd->pool, "%s: this build of mod_promptenchanter has no '%s' store backend",
                                cmd->cmd->name, arg);
    return apr_psprintf(cmd->pool, "%s: unknown store backend '%s' (dbd or mongodb)", cmd->cmd->name, arg);
}

int pe_store_pre_config(apr_pool_t *pconf, apr_pool_t *plog, apr_pool_t *ptemp)
{
    pe_store_chosen = NULL;
    return OK;
}

int pe_store_post_config(apr_pool_t *pconf, apr_pool_t *plog, apr_pool_t *ptemp, server_rec *s)
{
    const pe_store_provider_t *p = pe_store_active();

    if (ap_state_query(AP_SQ_MAIN_STATE) == AP_SQ_MS_CREATE_PRE_CONFIG || !p->post_config)
        return OK;
    return p->post_config(pconf, ptemp, s);
}

void pe_store_retrieve_fns(void)
{
    int i;

    for (i = 0; pe_store_providers[i]; i++)
        if (pe_store_providers[i]->retrieve_fns)
            pe_store_providers[i]->retrieve_fns();
}

pe_store_t *pe_store_for_request(request_rec *r)
{
    return pe_store_active()->for_request(r);
}

pe_store_t *pe_store_open(apr_pool_t *p, server_rec *s)
{
    return pe_store_active()->open(p, s);
}

void pe_store_child_init(apr_pool_t *pchild, server_rec *s)
{
    pe_store_active()->child_init(pchild, s);
}

/* An owned connection of the selected provider (see pe_store_ap.h). */
struct pe_store_own_t {
    const pe_store_provider_t *prov;
    void *impl;
};

/* NB: a provider without owned connections (MongoDB: its client pool is not bounded by the
 * threads of a child, so a background user cannot be starved) gives a handle from its open per use. */
pe_store_own_t *pe_store_own_create(apr_pool_t *p, server_rec *s)
{
    pe_store_own_t *o = apr_pcalloc(p, sizeof(*o));

    o->prov = pe_store_active();
    o->impl = o->prov->own_create ? o->prov->own_create(p, s) : s;
    return o;
}

pe_store_t *pe_store_own_get(pe_store_own_t *o, apr_pool_t *p)
{
    return o->prov->own_get ? o->prov->own_get(o->impl, p) : o->prov->open(p, o->impl);
}

void pe_store_own_close(pe_store_own_t *o)
{
    if (o->prov->own_close)
        o->prov->own_close(o->impl);
}
