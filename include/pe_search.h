/*
 * pe_search.h: web search providers for research (httpd-free).
 *
 * A provider turns a query into one HTTP request (pe_fetch_req_t) and a 2xx answer into hits;
 * pe_search_run sends the requests of all queries at once through pe_fetch_all, so a research
 * call with six queries waits for the slowest search, not for the sum. The provider's endpoint is
 * configured by the administrator (PESearchURL) and is fetched unguarded (it may live on a
 * private address, e.g. a SearxNG next to httpd); the URLs in its answers are untrusted and go
 * through the SSRF guard when the pages are fetched (RELIABILITY R84).
 *
 * Providers:
 *   searxng  GET <url>?q=<query>&format=json&safesearch=1[&language=..] (SearxNG's JSON API; the
 *            "json" format must be enabled in its settings); hits from results[].url/title/content.
 *   brave    GET <url>?q=<query>&count=<n> with X-Subscription-Token: <key> (Brave Search API,
 *            url e.g. https://api.search.brave.com/res/v1/web/search); hits from
 *            web.results[].url/title/description.
 * Others (Tavily...) fit the same two functions.
 */
#ifndef PE_SEARCH_H
#define PE_SEARCH_H

#include "pe_fetch.h"

#include <apr_pools.h>
#include <apr_tables.h>

/** Hits kept per query when the configuration says 0. */
#define PE_SEARCH_MAX_RESULTS 10
/** Hard cap on hits per query. */
#define PE_SEARCH_MAX_RESULTS_CAP 50
/** Longest title and snippet kept, in bytes (cut at a UTF-8 boundary). */
#define PE_SEARCH_TITLE_MAX 300
#define PE_SEARCH_SNIPPET_MAX 600
/** Largest search answer read. */
#define PE_SEARCH_BODY_MAX ((apr_size_t)2 * 1024 * 1024)

/** One search hit; strings in the pool given to the parser, never NULL. */
typedef struct pe_search_hit_t {
    const char *url;     /**< http(s) URL as the provider gave it (untrusted) */
    const char *title;   /**< "" when none */
    const char *snippet; /**< "" when none */
} pe_search_hit_t;

struct pe_search_provider_t;

/** Settings (from directives). */
typedef struct pe_search_conf_t {
    const struct pe_search_provider_t *provider; /**< NULL: searxng */
    const char *url;      /**< the provider's endpoint */
    const char *key;      /**< API key for providers that need one, or NULL; never logged */
    const char *language; /**< language hint ("en"), or NULL */
    int max_results;      /**< hits per query; <= 0: PE_SEARCH_MAX_RESULTS */
} pe_search_conf_t;

/** A search provider. */
typedef struct pe_search_provider_t {
    const char *name; /**< as written in PESearchProvider */
    /**
     * Build the request for one query.
     * @param out filled (strings in p)
     * @return NULL, or why no request can be made (static or in p)
     */
    const char *(*request)(apr_pool_t *p, const pe_search_conf_t *c, const char *query, pe_fetch_req_t *out);
    /**
     * Read a 2xx answer.
     * @param out array of pe_search_hit_t to append to (at most c->max_results, http/https URLs only,
     *            no URL twice)
     * @return NULL, or why the answer is unusable (static or in p)
     */
    const char *(*parse)(apr_pool_t *p, const pe_search_conf_t *c, const char *body, apr_size_t len,
                         apr_array_header_t *out);
} pe_search_provider_t;

/** The SearxNG JSON provider (the default). */
extern const pe_search_provider_t pe_search_searxng;
/** The Brave Search API provider. */
extern const pe_search_provider_t pe_search_brave;

/**
 * A provider by name ("searxng", "brave"), case-insensitive.
 * @return the provider, or NULL for an unknown name
 */
const pe_search_provider_t *pe_search_provider(const char *name);

/** The provider names, for messages: "searxng, brave". */
const char *pe_search_provider_names(void);

/** The answer to one query. */
typedef struct pe_search_out_t {
    apr_array_header_t *hits; /**< of pe_search_hit_t (maybe empty, never NULL) */
    const char *error;        /**< NULL when the provider answered usably, else why not (no secrets) */
    long http_status;         /**< the provider's status (0 when none came) */
} pe_search_out_t;

/**
 * Search every query at once.
 * @param c       settings; c->url must be set
 * @param o       time limits and concurrency of the requests (NULL: the defaults); content type,
 *                byte cap and guard are set here (any type, PE_SEARCH_BODY_MAX, unguarded)
 * @param queries n queries
 * @param out     n answers, in the order of the queries
 * @return how many queries got a usable answer (0..n)
 */
int pe_search_run(apr_pool_t *p, const pe_search_conf_t *c, const pe_fetch_opts_t *o, const char *const *queries,
                  int n, pe_search_out_t *out);

/**
 * A copy of s cut to at most max bytes at a UTF-8 character boundary.
 * @return a string in p ("" for NULL)
 */
const char *pe_search_text_cut(apr_pool_t *p, const char *s, apr_size_t max);

#endif
