/*
 * pe_research_ap.c: process-global state of the research concern (the shared research cache and
 * its mutex) and the pipeline's settings from the directives.
 */
#include "pe_cache.h"
#include "pe_completion.h"
#include "pe_config.h"
#include "pe_extract.h"
#include "pe_json.h"
#include "pe_log.h"
#include "pe_research_ap.h"
#include "pe_shm.h"

#include "http_config.h"
#include "pe_persist.h"
#include "util_mutex.h"
#include <apr_strings.h>
#include <curl/curl.h>

#define PE_RESEARCH_MUTEX "pe-research-cache"
/* Bytes of one cache entry: a page's text or a research result fits. */
#define PE_RESEARCH_CACHE_VALUE 32768

/* Longest X-PE-Research-Notes value, in bytes. */
#define PE_RESEARCH_NOTES_MAX 1024

/* This generation's state (reset in pre_config). */
static struct {
    pe_persist_t *ps;       /* the table and its mutex, made once per httpd parent */
    apr_global_mutex_t *mutex;
    pe_shm_t *shm;
    pe_research_cache_t cache;
    int have_cache;
    int use_response_cache; /* PECache is on: research shares the response cache (pe_cache) */
    pe_research_cache_t shared;
} pe_rs;

/* pre_config: forget the previous generation; register the mutex type. */
int pe_research_pre_config(apr_pool_t *pconf, apr_pool_t *plog, apr_pool_t *ptemp)
{
    memset(&pe_rs, 0, sizeof(pe_rs));
    return ap_mutex_register(pconf, PE_RESEARCH_MUTEX, NULL, APR_LOCK_DEFAULT, 0) == APR_SUCCESS
               ? OK
               : HTTP_INTERNAL_SERVER_ERROR;
}

/* The research cache's table, made once per httpd parent (pe_persist.h). */
static apr_status_t research_make(apr_pool_t *pp, apr_global_mutex_t *mutex, void *baton, void **obj)
{
    apr_status_t rv = pe_shm_create(pp, (apr_uint32_t) * (const int *)baton, PE_RESEARCH_CACHE_VALUE, mutex,
                                    (pe_shm_t **)obj);

    if (rv == APR_SUCCESS)
        pe_shm_set_name(*obj, "research cache", "fewer results are served from it; raise PEResearchCacheSize");
    return rv;
}

/* post_config: libraries once per process, then the shared cache (kept across generations). */
int pe_research_post_config(apr_pool_t *pconf, apr_pool_t *ptemp, server_rec *s)
{
    pe_srv_conf_t *sc = pe_config_srv(s);
    int slots = pe_srv_research_cache_slots(sc);
    pe_persist_state_e state;
    apr_status_t rv;

    pe_extract_init();
    /* NB: reference-counted; the parent initialises before any child or thread exists */
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        pe_slog(s, APLOG_CRIT, 0, PE_LOGNO(61101) "research: libcurl could not be initialised");
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    /* NB: with PECache on, research entries go to the response cache (memcached and/or its shared
     * memory, see pe_research_cache()); the own segment is only for PECache Off. */
    if (pe_srv_cache_on(sc)) {
        pe_rs.use_response_cache = 1;
        return OK;
    }
    if (slots <= 0 || pe_rs.have_cache)
        return OK;
    if ((rv = pe_persist_get(s, "research", PE_RESEARCH_MUTEX, (apr_uint64_t)slots, research_make, &slots, &pe_rs.ps,
                             &state)) != APR_SUCCESS) {
        pe_slog(s, APLOG_CRIT, rv,
                PE_LOGNO(61103) "research: cannot create the shared research cache (%d entries of %d bytes) or its mutex",
                slots, PE_RESEARCH_CACHE_VALUE);
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    if (state == PE_PERSIST_OTHER)
        pe_slog(s, APLOG_NOTICE, 0, PE_LOGNO(61105) "research: PEResearchCacheSize takes effect when httpd is "
                "stopped and started; the research cache keeps its size (and its entries) across restarts");
    pe_rs.shm = pe_rs.ps->obj;
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
    rv = pe_persist_child_init(pe_rs.ps, pchild, &pe_rs.mutex);
    if (rv != APR_SUCCESS) {
        pe_slog(s, APLOG_ERR, rv, PE_LOGNO(61104) "research: the cache mutex cannot be used in this process; "
                                                  "research runs without its cache");
        pe_rs.have_cache = 0;
        return;
    }
    pe_shm_mutex_set(pe_rs.shm, pe_rs.mutex);
}

/* Research cache get through the response cache. */
static apr_status_t pe_rs_cache_get(void *baton, apr_pool_t *p, const char *key, const char **val, apr_size_t *len)
{
    char *v = NULL;
    apr_status_t rv = pe_cache_get(baton, p, key, apr_time_now(), &v, len, NULL);

    *val = v;
    return rv;
}

/* Research cache set through the response cache. */
static apr_status_t pe_rs_cache_set(void *baton, apr_pool_t *p, const char *key, const char *val, apr_size_t len,
                                    apr_interval_time_t ttl)
{
    return pe_cache_set(baton, key, val, len, ttl, apr_time_now(), NULL);
}

/* The research cache: the response cache when PECache is on, else the own segment, if any. */
const pe_research_cache_t *pe_research_cache(void)
{
    pe_cache_t *c;

    if (pe_rs.use_response_cache) {
        if (!(c = pe_completion_cache()))
            return NULL;
        pe_rs.shared.get = pe_rs_cache_get;
        pe_rs.shared.set = pe_rs_cache_set;
        pe_rs.shared.baton = c;
        return &pe_rs.shared;
    }
    return pe_rs.have_cache ? &pe_rs.cache : NULL;
}

/* Empty the research cache's own table (PECache Off); with PECache On its entries are the
 * response cache's, cleared with it. */
apr_status_t pe_research_cache_clear(int *cleared)
{
    *cleared = pe_rs.use_response_cache ? pe_completion_cache() != NULL : pe_rs.have_cache;
    if (pe_rs.use_response_cache || !pe_rs.have_cache)
        return APR_SUCCESS;
    return pe_shm_clear(pe_rs.shm);
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

/* What the model calls of one research run need. */
typedef struct pe_rs_llm_t {
    server_rec *s;
    const pe_enhance_conf_t *ec;
    const char *model[2]; /* topic analysis, synthesis */
} pe_rs_llm_t;

/* One research model call through the completion concern's upstream client. */
static apr_status_t pe_rs_llm_call(void *baton, apr_pool_t *p, pe_research_call_e kind, const char *system,
                                   const char *user, const char **reply, const char **err)
{
    pe_rs_llm_t *l = baton;
    int synth = kind == PE_RESEARCH_CALL_SYNTHESIS;
    pe_upstream_conf_t uc;
    pe_upstream_result_t res;
    json_t *body, *j;
    const char *text, *perr;
    size_t len;

    *reply = NULL;
    pe_completion_upstream_conf(l->s, 0, &uc);
    if (!uc.url || !pe_completion_handles()) {
        *err = "no AI service is configured";
        return APR_ENOTIMPL;
    }
    /* SPEC 5.2 / 5.4: temperature 0.3; 1000 tokens for the topics, 3000 for the synthesis */
    body = pe_enhance_simple_body(p, l->ec, l->model[synth], system, user, 0.3, synth ? 3000 : 1000);
    if (!body) {
        *err = "the research prompt is not valid UTF-8";
        return APR_EINVAL;
    }
    text = pe_json_dump(p, body, &len);
    pe_upstream_post(p, pe_completion_handles(), &uc, text, len, NULL, NULL, &res);
    if (res.outcome != PE_UP_OK) {
        *err = res.outcome == PE_UP_HTTP ? apr_psprintf(p, "AI service status %ld", res.status)
                                         : apr_pstrcat(p, "AI service ", pe_upstream_outcome_name(res.outcome), NULL);
        return APR_EGENERAL;
    }
    j = NULL;
    if (pe_json_parse(p, res.body.data ? res.body.data : "", res.body.len, &j, &perr) != 0 ||
        !(text = pe_json_str(json_object_get(json_array_get(json_object_get(j, "choices"), 0), "message"),
                             "content"))) {
        *err = "the AI service's answer has no message text";
        return APR_EGENERAL;
    }
    *reply = text;
    return APR_SUCCESS;
}

/* Research a query for server s (see pe_research_ap.h). */
apr_status_t pe_research_for(apr_pool_t *p, server_rec *s, const char *query, pe_depth_t depth, pe_research_t *out)
{
    pe_srv_conf_t *sc = pe_config_srv(s);
    pe_rs_llm_t *l = apr_pcalloc(p, sizeof(*l));
    pe_research_llm_t *llm = apr_pcalloc(p, sizeof(*llm));
    pe_research_conf_t c;

    l->s = s;
    l->ec = pe_completion_enhance_conf(p, s);
    l->model[0] = pe_srv_research_topics_model(sc) ? pe_srv_research_topics_model(sc)
                                                   : pe_enhance_level_model(l->ec, PE_LEVEL_LOW);
    l->model[1] = pe_srv_research_synthesis_model(sc) ? pe_srv_research_synthesis_model(sc)
                                                      : pe_enhance_level_model(l->ec, PE_LEVEL_MEDIUM);
    llm->call = pe_rs_llm_call;
    llm->baton = l;
    pe_research_conf_for(p, s, llm, &c);
    if (!c.search.url) {
        pe_research_t empty;

        /* NB: an empty result that says why, in the same shape as a real one */
        memset(&empty, 0, sizeof(empty));
        empty.query = query ? query : "";
        empty.depth = depth;
        empty.topic = "";
        empty.content = "";
        empty.sources = apr_array_make(p, 1, sizeof(pe_research_source_t));
        empty.queries = apr_array_make(p, 1, sizeof(const char *));
        empty.notes = apr_array_make(p, 1, sizeof(const char *));
        APR_ARRAY_PUSH(empty.notes, const char *) = "research is not configured on this server (PESearchURL)";
        *out = empty;
        return APR_ENOTIMPL;
    }
    return pe_research_run(p, &c, query, depth, out);
}

/* The research metadata of a result: the JSON form without the text itself. */
json_t *pe_research_meta(apr_pool_t *p, const pe_research_t *r)
{
    json_t *j = pe_research_to_json(p, r);

    json_object_del(j, "results");
    json_object_set_new(j, "used", json_boolean(r->content && *r->content));
    return j;
}

/* Header-safe text: printable ASCII, cut to max bytes. */
static const char *pe_rs_header_text(apr_pool_t *p, const char *s, apr_size_t max)
{
    char *o = apr_pstrndup(p, s, max), *c;

    for (c = o; *c; c++)
        if ((unsigned char)*c < 0x20 || (unsigned char)*c > 0x7e)
            *c = '?';
    return o;
}

/* X-PE-Research and X-PE-Research-Notes on r (kept on errors too). */
void pe_research_headers(request_rec *r, const pe_research_t *res, int configured)
{
    const char *notes = NULL;
    int i;

    apr_table_setn(r->err_headers_out, "X-PE-Research",
                   !configured ? "off"
                               : apr_psprintf(r->pool,
                                              "sources=%d; pages=%d/%d; refused=%d; flagged=%d; cached=%d; "
                                              "degraded=%d; ms=%" APR_TIME_T_FMT,
                                              res->sources->nelts, res->pages_ok, res->pages_tried,
                                              res->pages_refused, res->flagged, res->cached, res->degraded,
                                              apr_time_as_msec(res->elapsed)));
    for (i = 0; i < res->notes->nelts; i++)
        notes = apr_pstrcat(r->pool, notes ? notes : "", notes ? " | " : "",
                            APR_ARRAY_IDX(res->notes, i, const char *), NULL);
    if (notes)
        apr_table_setn(r->err_headers_out, "X-PE-Research-Notes", pe_rs_header_text(r->pool, notes,
                                                                                     PE_RESEARCH_NOTES_MAX));
}

/* The completion routes' research step (installed with pe_completion_set_research). */
apr_status_t pe_research_completion(request_rec *r, const char *query, pe_depth_t depth, pe_enhance_research_t **res,
                                    int *n)
{
    pe_research_t rr;
    pe_enhance_research_t *e = apr_pcalloc(r->pool, sizeof(*e));
    apr_status_t rv = pe_research_for(r->pool, r->server, query, depth, &rr);

    *res = NULL;
    *n = 0;
    pe_research_headers(r, &rr, rv != APR_ENOTIMPL);
    if (pe_research_for_enhance(&rr, e)) {
        *res = e;
        *n = 1;
    }
    return APR_SUCCESS;
}
