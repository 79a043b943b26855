/*
 * pe_research.h: the AI research pipeline (SPEC 5, with the fixes of SPEC 16.1 item 14 and 16.2
 * item 32; RELIABILITY 1.14 and 1.15). httpd-free: the model calls and the cache are behind
 * function pointers the glue fills (pe_upstream, pe_cache or the shared-memory cache below), so
 * the whole pipeline runs in unit tests against the loopback fakes.
 *
 *   query --cache(research, 24 h)--> hit: done
 *         --topic analysis (one model call; fenced/chatty replies tolerated, else the query
 *           itself is searched: pe_topics_parse)--> 1..6 queries (depth table in pe_topics.h)
 *         --search (all queries at once, cache(search, 1 h))--> hits
 *         --pages (top hits of each query, vetted, de-duplicated; all fetched at once through the
 *           SSRF guard, bounded; cache(page, 1 h) by URL)--> HTML/text
 *         --extraction (libxml2, pe_extract.h)--> title + text per page, capped
 *         --synthesis (one model call; the extracts are fenced with a random boundary and marked
 *           as untrusted data)--> a research text citing [n], followed by the numbered sources
 *
 * Failures degrade, they never fail the caller: a failed topic analysis searches the query as
 * it is; a failed search or page just contributes nothing; a failed synthesis gives excerpts of
 * the pages instead; with nothing usable the content is empty. Each such event adds a short note
 * (for the response metadata) and marks the result degraded, and a degraded result is not cached.
 * Pages whose text looks like instructions to a model ("ignore previous instructions"...) are
 * counted and logged (RELIABILITY R88); they stay fenced like every other page.
 */
#ifndef PE_RESEARCH_H
#define PE_RESEARCH_H

#include "pe_enhance.h"
#include "pe_fetch.h"
#include "pe_search.h"
#include "pe_shm.h"
#include "pe_topics.h"

#include <apr_pools.h>
#include <apr_tables.h>
#include <apr_time.h>
#include <jansson.h>

/** Defaults of pe_research_conf_t (a field <= 0 takes them). */
#define PE_RESEARCH_PARALLEL 24 /* page fetches at once: every page of depth high */
#define PE_RESEARCH_PAGE_BYTES ((apr_size_t)1024 * 1024)
#define PE_RESEARCH_PAGE_TIMEOUT_MS 10000L
#define PE_RESEARCH_SEARCH_TIMEOUT_MS 8000L
#define PE_RESEARCH_TOTAL_MS 20000L
#define PE_RESEARCH_PAGE_TEXT 4000
#define PE_RESEARCH_PROMPT_TEXT 24000
#define PE_RESEARCH_TTL apr_time_from_sec(86400)
#define PE_RESEARCH_PAGE_TTL apr_time_from_sec(3600)
#define PE_RESEARCH_SEARCH_TTL apr_time_from_sec(3600)
/** Longest query researched, in bytes (SPEC 5.1 sanitize(query, 1000)); longer text is cut. */
#define PE_RESEARCH_QUERY_MAX 1000
/** Longest research content kept, in bytes. */
#define PE_RESEARCH_CONTENT_MAX 24000
/** Most sources given to the synthesis. */
#define PE_RESEARCH_SOURCES_MAX 12

/** The two model calls of the pipeline. */
typedef enum pe_research_call_e {
    PE_RESEARCH_CALL_TOPICS = 0, /**< topic analysis: JSON expected (SPEC 5.2: temperature 0.3, 1000 tokens) */
    PE_RESEARCH_CALL_SYNTHESIS   /**< synthesis: prose (SPEC 5.4: temperature 0.3, 3000 tokens) */
} pe_research_call_e;

/**
 * One model call: a system and a user message in, the reply's text out.
 * @param baton  pe_research_llm_t.baton
 * @param p      pool for the reply
 * @param kind   which call (the implementation picks model and sampling from it)
 * @param reply  out: the reply content in p
 * @param err    out: why it failed, for a note (no secrets, no URLs)
 * @return APR_SUCCESS, or any error (the pipeline degrades)
 */
typedef apr_status_t pe_research_llm_fn(void *baton, apr_pool_t *p, pe_research_call_e kind, const char *system,
                                        const char *user, const char **reply, const char **err);

/** The model behind the pipeline. */
typedef struct pe_research_llm_t {
    pe_research_llm_fn *call;
    void *baton;
} pe_research_llm_t;

/**
 * A cache for research results, search answers and pages. Keys are pe_cachekey_make() keys.
 * get: APR_SUCCESS with *val (in p) and *len, APR_NOTFOUND on a miss, anything else an error
 * (treated as a miss). set: best effort; a value the cache cannot hold is simply not stored.
 */
typedef struct pe_research_cache_t {
    apr_status_t (*get)(void *baton, apr_pool_t *p, const char *key, const char **val, apr_size_t *len);
    apr_status_t (*set)(void *baton, apr_pool_t *p, const char *key, const char *val, apr_size_t len,
                        apr_interval_time_t ttl);
    void *baton;
} pe_research_cache_t;

/** Settings of the pipeline (filled by the glue from directives). */
typedef struct pe_research_conf_t {
    pe_search_conf_t search;        /**< the provider and its endpoint */
    const pe_ssrf_policy_t *policy; /**< what page fetches may connect to (NULL: public addresses, 80/443) */
    int max_parallel;               /**< page fetches (and searches) at once, PE_RESEARCH_PARALLEL;
                                         1 runs the whole call one request after another */
    apr_size_t page_bytes;          /**< bytes read per page (decoded), PE_RESEARCH_PAGE_BYTES */
    long connect_timeout_ms;        /**< PE_FETCH_CONNECT_MS */
    long page_timeout_ms;           /**< one page with its redirects, PE_RESEARCH_PAGE_TIMEOUT_MS */
    long search_timeout_ms;         /**< one search, PE_RESEARCH_SEARCH_TIMEOUT_MS */
    long total_ms;                  /**< searches and pages together, PE_RESEARCH_TOTAL_MS */
    int max_redirects;              /**< per page; 0: PE_FETCH_REDIRECTS_DEFAULT; < 0: none */
    const char *user_agent;         /**< PE_FETCH_USER_AGENT */
    apr_size_t page_text;           /**< text kept per page, PE_RESEARCH_PAGE_TEXT */
    apr_size_t prompt_text;         /**< text of all pages in the synthesis prompt, PE_RESEARCH_PROMPT_TEXT */
    apr_interval_time_t ttl;        /**< research results, PE_RESEARCH_TTL; < 0: not cached */
    apr_interval_time_t page_ttl;   /**< pages, PE_RESEARCH_PAGE_TTL; < 0: not cached */
    apr_interval_time_t search_ttl; /**< search answers, PE_RESEARCH_SEARCH_TTL; < 0: not cached */
    const pe_research_cache_t *cache; /**< NULL: no caching */
    const pe_research_llm_t *llm;   /**< required */
} pe_research_conf_t;

/** One source of a result. */
typedef struct pe_research_source_t {
    const char *url;   /**< the page (after redirects) */
    const char *title; /**< its title, else the search hit's, else "" */
    int query;         /**< index of the query that found it */
    int truncated;     /**< the page or its text was cut */
    int flagged;       /**< its text contains injection indicators */
} pe_research_source_t;

/** A research result; everything in the pool given to pe_research_run. */
typedef struct pe_research_t {
    const char *query;             /**< what was researched (cut to PE_RESEARCH_QUERY_MAX) */
    pe_depth_t depth;
    const char *topic;             /**< heading of the research block */
    const char *content;           /**< the research text with its numbered source list; "" when none */
    apr_array_header_t *sources;   /**< of pe_research_source_t, numbered 1.. in content */
    apr_array_header_t *queries;   /**< of const char *: the search queries */
    apr_array_header_t *notes;     /**< of const char *: what went wrong or was skipped, for metadata */
    double confidence;             /**< min(0.9, mean topic importance + 0.1); 0 without content */
    int cached;                    /**< served from the research cache */
    int degraded;                  /**< something failed on the way (not cached) */
    int pages_tried;               /**< pages selected for fetching (cache hits included) */
    int pages_ok;                  /**< pages that gave text (the first PE_RESEARCH_SOURCES_MAX, taken
                                        round robin over the queries, become the sources) */
    int pages_cached;              /**< of those, from the page cache */
    int pages_refused;             /**< refused by the SSRF guard (URL, redirect or address) */
    int searches_failed;           /**< queries whose search failed */
    int flagged;                   /**< pages with injection indicators */
    pe_topics_status_t topics_status;
    apr_interval_time_t elapsed;   /**< wall time of pe_research_run */
} pe_research_t;

/**
 * Research a query. Never fails for network, search or model errors (see above).
 * @param c     settings; c->llm is required
 * @param query the user's text (cut to PE_RESEARCH_QUERY_MAX at a character boundary)
 * @param out   the result, in p
 * @return APR_SUCCESS; APR_EINVAL when c, c->llm or out is missing
 */
apr_status_t pe_research_run(apr_pool_t *p, const pe_research_conf_t *c, const char *query, pe_depth_t depth,
                             pe_research_t *out);

/**
 * The cache key of a research result: pe_cachekey_make("research", "<query>:<depth name>").
 * @param query as in pe_research_run (cut the same way)
 */
const char *pe_research_cache_key(apr_pool_t *p, const char *query, pe_depth_t depth);

/**
 * The SPEC 5.1 form of a result, plus what this module adds:
 * {query, depth, results:[{topic, content, sources:[url...], confidence}] (empty without content),
 *  total_sources, processing_time_ms, queries:[...], notes:[...], cached, degraded,
 *  pages:{tried, ok, cached, refused}, flagged_sources}
 * @return an object owned by p
 */
json_t *pe_research_to_json(apr_pool_t *p, const pe_research_t *r);

/**
 * Read a result back from pe_research_to_json()'s form (the research cache).
 * @return 0, or -1 when j is not such an object
 */
int pe_research_from_json(apr_pool_t *p, const json_t *j, pe_research_t *out);

/**
 * The result as one entry for pe_enhance_build(): topic and content; no separate source list,
 * because the content already ends with the numbered sources.
 * @return 1 and *e filled when there is content, else 0
 */
int pe_research_for_enhance(const pe_research_t *r, pe_enhance_research_t *e);

/** The system prompt of the topic analysis for a depth (static text per depth, in p). */
const char *pe_research_topics_prompt(apr_pool_t *p, pe_depth_t depth);

/**
 * Count injection indicators ("ignore previous instructions", "disregard the above", "reveal the
 * system prompt"...) in a text, ASCII case-insensitively.
 * @return the number of indicator phrases found (each phrase counted once)
 */
int pe_research_injection_score(const char *text);

/**
 * A research cache on a shared-memory slot table (pe_shm.h): each slot holds one value of up to
 * pe_shm_value_size() - 8 bytes; larger values are not stored. Shared by every child process.
 * @param shm the table (value_size >= 1024 recommended, e.g. 32768)
 * @param out filled with the functions and the table as baton
 */
void pe_research_shm_cache(pe_shm_t *shm, pe_research_cache_t *out);

#endif
