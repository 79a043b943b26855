/*
 * pe_research_ap.c: process-global state of the research concern (the shared research cache and
 * its mutex) and the pipeline's settings from the directives.
 */
#include "pe_config.h"
#include "pe_extract.h"
#include "pe_log.h"
#include "pe_research_ap.h"
#include "pe_shm.h"

#include "http_config.h"
#include "util_mutex.h"
#include <apr_strings.h>
#include <curl/curl.h>

#define PE_RESEARCH_MUTEX "pe-research-cache"
/* Bytes of one cache entry: a page's text or a research result fits. */
#define PE_RESEARCH_CACHE_VALUE 32768

/* This generation's state (reset in pre_config). */
static struct {
    apr_global_mutex_t *mutex;
    pe_shm_t *shm;
    pe_research_cache_t cache;
    int have_cache;
} pe_rs;

/* pre_config: forget the previous generation; register the mutex type. */
int pe_research_pre_config(apr_pool_t *pconf, apr_pool_t *plog, apr_pool_t *ptemp)
{
    memset(&pe_rs, 0, sizeof(pe_rs));
    return ap_mutex_register(pconf, PE_RESEARCH_MUTEX, NULL, APR_LOCK_DEFAULT, 0) == APR_SUCCESS
               ? OK
               : HTTP_INTERNAL_SERVER_ERROR;
}

/* post_config: libraries once per process, then the shared cache. */
int pe_research_post_config(apr_pool_t *pconf, apr_pool_t *ptemp, server_rec *s)
{
    pe_srv_conf_t *sc = pe_config_srv(s);
    int slots = pe_srv_research_cache_slots(sc);
    apr_status_t rv;

    pe_extract_init();
    /* NB: reference-counted; the parent initialises before any child or thread exists */
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        pe_slog(s, APLOG_CRIT, 0, PE_LOGNO(61101) "research: libcurl could not be initialised");
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    if (slots <= 0 || pe_rs.have_cache)
        return OK;
    rv = ap_global_mutex_create(&pe_rs.mutex, NULL, PE_RESEARCH_MUTEX, NULL, s, pconf, 0);
    if (rv != APR_SUCCESS) {
        pe_slog(s, APLOG_CRIT, rv, PE_LOGNO(61102) "research: cannot create the research cache mutex");
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    rv = pe_shm_create(pconf, (apr_uint32_t)slots, PE_RESEARCH_CACHE_VALUE, pe_rs.mutex, &pe_rs.shm);
    if (rv != APR_SUCCESS) {
        pe_slog(s, APLOG_CRIT, rv,
                PE_LOGNO(61103) "research: cannot create the shared research cache (%d entries of %d bytes)", slots,
                PE_RESEARCH_CACHE_VALUE);
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    pe_research_shm_cache(pe_rs.shm, &pe_rs.cache);
    pe_rs.have_cache = 1;
    return OK;
}

/* child_init: the mutex in this process. */
void pe_research_child_init(apr_pool_t *pchild, server_rec *s)
{
    apr_status_t rv;

    if (!pe_rs.have_cache)
        return;
    rv = apr_global_mutex_child_init(&pe_rs.mutex, apr_global_mutex_lockfile(pe_rs.mutex), pchild);
    if (rv != APR_SUCCESS) {
        pe_slog(s, APLOG_ERR, rv, PE_LOGNO(61104) "research: the cache mutex cannot be used in this process; "
                                                  "research runs without its cache");
        pe_rs.have_cache = 0;
        return;
    }
    pe_shm_mutex_set(pe_rs.shm, pe_rs.mutex);
}

/* The shared cache, if any. */
const pe_research_cache_t *pe_research_cache(void)
{
    return pe_rs.have_cache ? &pe_rs.cache : NULL;
}

/* The pipeline's settings from server s's directives. */
void pe_research_conf_for(apr_pool_t *p, server_rec *s, const pe_research_llm_t *llm, pe_research_conf_t *out)
{
    pe_srv_conf_t *sc = pe_config_srv(s);
    pe_ssrf_policy_t *pol = apr_pcalloc(p, sizeof(*pol));
    long long ttl = pe_srv_research_ttl_ms(sc), page_ttl = pe_srv_research_page_ttl_ms(sc);

    memset(out, 0, sizeof(*out));
    out->search.provider = pe_search_provider(pe_srv_search_provider(sc));
    out->search.url = pe_srv_search_url(sc);
    out->search.key = pe_srv_search_key(sc);
    out->search.language = pe_srv_search_language(sc);
    pol->allow = pe_srv_research_allow(sc);
    out->policy = pol;
    out->max_parallel = pe_srv_research_parallel(sc);
    out->page_bytes = (apr_size_t)pe_srv_research_page_bytes(sc);
    out->page_timeout_ms = (long)pe_srv_research_page_timeout_ms(sc);
    out->search_timeout_ms = (long)pe_srv_search_timeout_ms(sc);
    out->total_ms = (long)pe_srv_research_timeout_ms(sc);
    out->ttl = ttl > 0 ? apr_time_from_msec(ttl) : -1;
    out->page_ttl = out->search_ttl = page_ttl > 0 ? apr_time_from_msec(page_ttl) : -1;
    out->cache = pe_research_cache();
    out->llm = llm;
}
