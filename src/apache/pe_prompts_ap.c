/*
 * pe_prompts_ap.c: stored system prompts with a per-process cache. A process reads a style's
 * row again once PESystemPromptRefresh has passed, so a change made by an administrator (in the
 * store, from any node) is used everywhere within that time. Not counted state: a cache only.
 */
#include "pe_auth.h"
#include "pe_config.h"
#include "pe_log.h"
#include "pe_prompts_ap.h"

#include <apr_strings.h>
#include <apr_thread_mutex.h>
#include <stdlib.h>
#include <string.h>

#define PE_RTYPE_SLOTS 8

typedef struct {
    char *text;          /* malloc'd: replaced on refresh, freed with the child pool */
    apr_time_t fetched;  /* 0: never read */
} pe_prompt_slot_t;

static pe_prompt_slot_t pe_prompt_slots[PE_RTYPE_SLOTS];
static apr_thread_mutex_t *pe_prompt_lock;

/* Child pool cleanup: free the cached texts. */
static apr_status_t pe_prompts_cleanup(void *data)
{
    int i;

    for (i = 0; i < PE_RTYPE_SLOTS; i++) {
        free(pe_prompt_slots[i].text);
        pe_prompt_slots[i].text = NULL;
        pe_prompt_slots[i].fetched = 0;
    }
    pe_prompt_lock = NULL;
    return APR_SUCCESS;
}

void pe_prompts_child_init(apr_pool_t *pchild, server_rec *s)
{
    if (apr_thread_mutex_create(&pe_prompt_lock, APR_THREAD_MUTEX_DEFAULT, pchild) != APR_SUCCESS)
        pe_prompt_lock = NULL;
    apr_pool_cleanup_register(pchild, NULL, pe_prompts_cleanup, apr_pool_cleanup_null);
}

const char *pe_prompts_get(request_rec *r, pe_rtype_t t)
{
    apr_interval_time_t refresh = apr_time_from_msec(pe_srv_prompt_refresh_ms(pe_config_srv(r->server)));
    apr_time_t now = apr_time_now();
    pe_prompt_slot_t *slot;
    const char *out = NULL, *stored = NULL;
    pe_store_t *st;
    pe_store_status_e rs;

    if (t == PE_RTYPE_NONE || (int)t < 0 || (int)t >= PE_RTYPE_SLOTS || !pe_prompt_lock)
        return NULL;
    slot = &pe_prompt_slots[t];
    apr_thread_mutex_lock(pe_prompt_lock);
    if (slot->fetched && now - slot->fetched < refresh) {
        out = slot->text ? apr_pstrdup(r->pool, slot->text) : NULL;
        apr_thread_mutex_unlock(pe_prompt_lock);
        return out;
    }
    apr_thread_mutex_unlock(pe_prompt_lock);

    /* NB: the store is read without the lock; two threads may both read, the last one wins. */
    if (!(st = pe_auth_store(r)))
        return NULL;
    rs = pe_store_system_prompt_get(st, pe_enhance_rtype_name(t), &stored);
    if (rs != PE_STORE_OK && rs != PE_STORE_NOTFOUND) {
        pe_rlog(r, APLOG_WARNING, 0, PE_LOGNO(41013) "stored system prompt for %s unreadable; using the built-in",
                pe_enhance_rtype_name(t));
        return NULL;
    }
    apr_thread_mutex_lock(pe_prompt_lock);
    free(slot->text);
    slot->text = (rs == PE_STORE_OK && stored && *stored) ? strdup(stored) : NULL;
    slot->fetched = now;
    out = slot->text ? apr_pstrdup(r->pool, slot->text) : NULL;
    apr_thread_mutex_unlock(pe_prompt_lock);
    return out;
}
