/*
 * pe_prompts_ap.h: the stored system prompts (r_type custom, overrides of the built-in styles),
 * read through a small per-process cache refreshed after PESystemPromptRefresh.
 */
#ifndef PE_PROMPTS_AP_H
#define PE_PROMPTS_AP_H

#include "httpd.h"
#include "pe_enhance.h"

/** child_init: the cache and its lock, released with pchild. */
void pe_prompts_child_init(apr_pool_t *pchild, server_rec *s);

/**
 * The stored prompt for t (a copy in r->pool), or NULL when none is stored (the built-in is used;
 * for custom the enhancer answers 422). A store failure is logged and treated as "none stored".
 */
const char *pe_prompts_get(request_rec *r, pe_rtype_t t);

#endif
