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
 * Clear the research cache on this node (every process): its own table when PECache is Off;
 * with PECache On its entries live in the response cache (pe_cache_clear clears them).
 * @param cleared out: 1 when there is a research cache (own or shared), 0 when there is none
 * @return APR_SUCCESS or the table's mutex error
 */
apr_status_t pe_research_cache_clear(int *cleared);

/**
 * The pipeline's settings for server s (strings point into its configuration).
 * @param p   pool for the guard policy (the request's)
 * @param llm the model calls (may be NULL; then out->llm is NULL)
 */
void pe_research_conf_for(apr_pool_t *p, server_rec *s, const pe_research_llm_t *llm, pe_research_conf_t *out);

/**
 * Research a query with server s's settings, the model calls going through the completion
 * concern's upstream client (PEResearchModels). Thread-safe: the batch runs it on task threads.
 * @param p   pool for everything (the request's or a batch task's)
 * @param out the result; when no search provider is configured an empty result with a note
 * @return APR_SUCCESS, or APR_ENOTIMPL when research is not configured (out still filled)
 */
apr_status_t pe_research_for(apr_pool_t *p, server_rec *s, const char *query, pe_depth_t depth, pe_research_t *out);

/** The metadata of a result for a response: pe_research_to_json() without the text, plus "used". */
json_t *pe_research_meta(apr_pool_t *p, const pe_research_t *r);

/**
 * Put X-PE-Research ("sources=3; pages=3/3; refused=0; flagged=0; cached=0; degraded=0; ms=812",
 * or "off" when not configured) and X-PE-Research-Notes (the notes joined by " | ", printable
 * ASCII, at most 1024 bytes) on r's err_headers_out, so errors carry them too.
 */
void pe_research_headers(request_rec *r, const pe_research_t *res, int configured);

/**
 * The completion routes' research step (a pe_completion_research_fn, installed in register_hooks):
 * runs the pipeline, sets the headers, and gives the result as one research entry.
 */
apr_status_t pe_research_completion(request_rec *r, const char *query, pe_depth_t depth, pe_enhance_research_t **res,
                                    int *n);

#endif
