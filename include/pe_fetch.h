/*
 * pe_fetch.h: many HTTP GETs (or POSTs) at once with the libcurl multi interface, bounded.
 *
 * The research pipeline fetches the search provider's answers and then the result pages through
 * this one engine. Everything is bounded (RELIABILITY 1.14):
 *   - concurrency: at most max_parallel transfers at a time, the rest wait their turn;
 *   - bytes: each body is counted in the write callback on DECODED bytes (gzip/deflate/br are
 *     accepted and inflated by libcurl, so a compression bomb stops at the cap like any page);
 *     at the cap the transfer is stopped and the first max_bytes are kept (truncate) or the
 *     response fails (PE_FETCH_TOO_LARGE);
 *   - time: a connect timeout, a limit for each URL's whole redirect chain, and a deadline for the
 *     whole call after which every unfinished transfer is stopped;
 *   - redirects: libcurl never follows them (pe_ssrf_curl_setopts with max_redirs 0); this file
 *     resolves each Location against the current URL, vets the target again with pe_ssrf_url_vet
 *     (guarded requests) and starts a new transfer, at most max_redirects times;
 *   - schemes: http and https only, for the first URL and for every redirect;
 *   - content types: an allow list checked on the final response before any body byte is kept;
 *   - proxies from the environment, netrc and cookies are never used.
 * Guarded requests (URLs that come from outside: search results) additionally go through the
 * SSRF guard: the URL is vetted before the transfer and every socket is checked by
 * pe_ssrf_opensocket_cb / pe_ssrf_prereq_cb against the policy, so a name that resolves to a
 * blocked address is never connected to (the vetted address is what the socket connects to).
 * Unguarded requests are for endpoints the administrator configured (the search provider).
 *
 * NB: one call runs entirely in the calling thread; nothing is shared between calls, so many
 * requests of a threaded MPM may fetch at the same time.
 */
#ifndef PE_FETCH_H
#define PE_FETCH_H

#include "pe_ssrf.h"

#include <apr_pools.h>
#include <apr_time.h>

/** Defaults of pe_fetch_opts_t. */
#define PE_FETCH_PARALLEL 8
#define PE_FETCH_PARALLEL_MAX 64
#define PE_FETCH_MAX_BYTES ((apr_size_t)1024 * 1024)
#define PE_FETCH_CONNECT_MS 3000L
#define PE_FETCH_TIMEOUT_MS 10000L
#define PE_FETCH_TOTAL_MS 20000L
#define PE_FETCH_REDIRECTS_DEFAULT 3
#define PE_FETCH_REDIRECTS_CAP 10
#define PE_FETCH_USER_AGENT "PromptEnchanter-Research/1.0"

/** How one request ended. */
typedef enum pe_fetch_status_e {
    PE_FETCH_OK = 0,    /**< a 2xx body (maybe cut at the cap: truncated) */
    PE_FETCH_REFUSED,   /**< the URL, a redirect target or the connected address was refused by the guard */
    PE_FETCH_HTTP,      /**< a status other than 2xx (http_status says which) */
    PE_FETCH_TYPE,      /**< a content type outside the allow list */
    PE_FETCH_TOO_LARGE, /**< the body passed max_bytes and truncate was off */
    PE_FETCH_REDIRECTS, /**< more redirects than allowed, or a redirect without a usable Location */
    PE_FETCH_TIMEOUT,   /**< the URL's time limit or the call's deadline passed */
    PE_FETCH_NETWORK,   /**< DNS, connect, TLS, reset, truncated reply... */
    PE_FETCH_SKIPPED,   /**< never started: the deadline passed first */
    PE_FETCH_INTERNAL   /**< libcurl could not be set up */
} pe_fetch_status_e;

/** One request. Only url is required. */
typedef struct pe_fetch_req_t {
    const char *url;            /**< http or https */
    const char *method;         /**< NULL or "GET"; "POST" sends body */
    const char *body;           /**< POST body (may be NULL) */
    apr_size_t body_len;        /**< its length */
    const char *const *headers; /**< NULL-terminated "Name: value" lines added to the request, or NULL */
} pe_fetch_req_t;

/** Limits of a call; a field <= 0 (or NULL) takes the default named. */
typedef struct pe_fetch_opts_t {
    int max_parallel;       /**< transfers at once, PE_FETCH_PARALLEL (capped at PE_FETCH_PARALLEL_MAX) */
    apr_size_t max_bytes;   /**< most body bytes kept per request (decoded), PE_FETCH_MAX_BYTES */
    int truncate;           /**< 1: keep the first max_bytes and succeed (truncated = 1); 0: PE_FETCH_TOO_LARGE */
    long connect_timeout_ms; /**< per connection, PE_FETCH_CONNECT_MS */
    long timeout_ms;        /**< per URL including its redirects, PE_FETCH_TIMEOUT_MS */
    long total_ms;          /**< the whole call, PE_FETCH_TOTAL_MS */
    int max_redirects;      /**< redirects followed per URL; 0: PE_FETCH_REDIRECTS_DEFAULT; < 0: none */
    int guarded;            /**< 1: SSRF guard (URL vetting and socket checks with policy) */
    const pe_ssrf_policy_t *policy;      /**< the guard's policy (NULL: public addresses, ports 80/443) */
    const char *const *content_types;    /**< NULL-terminated media types allowed (lower case, no
                                              parameters), or NULL for any */
    const char *user_agent; /**< PE_FETCH_USER_AGENT */
} pe_fetch_opts_t;

/** Media types research pages may have: HTML, XHTML and plain text (RELIABILITY R82). */
extern const char *const pe_fetch_page_types[];

/** The outcome of one request; strings live in the pool given to pe_fetch_all. */
typedef struct pe_fetch_res_t {
    pe_fetch_status_e status;
    long http_status;         /**< status of the last response (0 when none came) */
    const char *url;          /**< the last URL requested (after redirects; curl's normalised form) */
    const char *content_type; /**< media type of the last response, lower case without parameters, or NULL */
    const char *charset;      /**< its charset parameter, or NULL */
    const char *body;         /**< the body kept (NUL-terminated, "" when none) */
    apr_size_t len;           /**< its length */
    int truncated;            /**< 1 when the body was cut at max_bytes */
    int redirects;            /**< redirects followed */
    const char *error;        /**< why it failed (never quotes the URL), NULL on success */
    apr_interval_time_t elapsed; /**< from the first transfer's start to the end of the last */
    unsigned refused;         /**< connections the SSRF guard refused for this request */
} pe_fetch_res_t;

/** Figures of one call. */
typedef struct pe_fetch_stats_t {
    int started;              /**< requests started (not skipped) */
    int ok;                   /**< requests with status PE_FETCH_OK */
    int transfers;            /**< transfers run (a redirect adds one) */
    int max_active;           /**< most transfers running at the same time */
    unsigned refused;         /**< connections and redirect targets refused by the guard */
    apr_interval_time_t elapsed; /**< wall time of the call */
} pe_fetch_stats_t;

/**
 * Run the requests with at most max_parallel at a time; return when all are done or the deadline
 * has passed. Requests start in array order.
 * @param p     pool for the results (bodies included)
 * @param o     limits (NULL: all defaults, unguarded)
 * @param reqs  n requests
 * @param res   n results, filled in every case (index i belongs to reqs[i])
 * @param st    figures of the call (may be NULL)
 * @return APR_SUCCESS when the call ran (each result says how its request went); APR_EINVAL for
 *         bad arguments; APR_ENOMEM when libcurl's multi handle cannot be made
 */
apr_status_t pe_fetch_all(apr_pool_t *p, const pe_fetch_opts_t *o, const pe_fetch_req_t *reqs, int n,
                          pe_fetch_res_t *res, pe_fetch_stats_t *st);

/** Name of a status for logs and notes ("ok", "refused", ...). */
const char *pe_fetch_status_name(pe_fetch_status_e s);

/**
 * Split a Content-Type value: the media type (lower case, trimmed) and its charset parameter
 * (quotes removed), both in p.
 * @param value the header value (may be NULL: both NULL)
 */
void pe_fetch_parse_content_type(apr_pool_t *p, const char *value, const char **type, const char **charset);

#endif
