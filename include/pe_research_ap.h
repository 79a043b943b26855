/*
 * pe_research_ap.h: httpd glue of the research and batch concern: lifecycle (the shared research
 * cache and its "pe-research-cache" mutex), the pipeline's settings from the directives, and the
 * research step of the completion routes.
 */
#ifndef PE_RESEARCH_AP_H
#define PE_RESEARCH_AP_H

#include "httpd.h"
#include "pe_research.h"

/** pre_config: register the "pe-research-cache" mutex (tunable with the Mutex directive). */
int pe_research_pre_config(apr_pool_t *pconf, apr_pool_t *plog, apr_pool_t *ptemp);

/**
 * post_config (not the dry run): libxml2 and libcurl initialised once per process; the shared
 * research cache (PEResearchCacheSize entries) and its global mutex on pconf.
 * @return OK, or HTTP_INTERNAL_SERVER_ERROR (logged) so httpd refuses to start
 */
int pe_research_post_config(apr_pool_t *pconf, apr_pool_t *ptemp, server_rec *s);

/** child_init: re-open the cache mutex in this child. */
void pe_research_child_init(apr_pool_t *pchild, server_rec *s);

/** The shared research cache, or NULL when it is off or could not be made. */
const pe_research_cache_t *pe_research_cache(void);

/**
 * The pipeline's settings for server s (strings point into its configuration).
 * @param p   pool for the guard policy (the request's)
 * @param llm the model calls (may be NULL; then out->llm is NULL)
 */
void pe_research_conf_for(apr_pool_t *p, server_rec *s, const pe_research_llm_t *llm, pe_research_conf_t *out);

#endif
