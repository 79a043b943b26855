/*
 * pe_upstream.h: the OpenAI-compatible upstream client (httpd-free, libcurl).
 *
 * One POST of a chat.completions body to the configured URL, with:
 * - connection reuse: easy handles are leased from a per-process pool and given back with
 *   their live connections (curl keeps the connection cache in the easy handle, and
 *   curl_easy_reset leaves it alone), so a busy child makes no new TCP/TLS connection per request;
 * - bounded time: connect and total timeouts in milliseconds, CURLOPT_NOSIGNAL (threaded MPMs);
 * - bounded size: the reply is collected in a pe_buf capped at max_response (counted in the
 *   write callback, not trusted from Content-Length);
 * - bounded retries with exponential backoff (and jitter) only for network errors, HTTP 429
 *   and 5xx; Retry-After (seconds or an HTTP date) is honoured up to retry_after_max_ms;
 *   a timeout is not retried (it already took the whole budget);
 * - streaming: with a data callback, a 2xx body is handed over as it arrives (never retried
 *   once anything was handed over); the callback stops the transfer by returning non-success
 *   (the client went away).
 * Only http and https are allowed, redirects are not followed, proxy environment variables are
 * ignored, and no compressed encoding is asked for. The API key is sent as a bearer header and
 * never appears in a message this file logs.
 */
#ifndef PE_UPSTREAM_H
#define PE_UPSTREAM_H

#include <apr_pools.h>
#include <apr_time.h>

#include "pe_buf.h"

/** What an upstream call came to. */
typedef enum pe_upstream_outcome_e {
    PE_UP_OK = 0,      /**< a 2xx reply (body complete, or fully streamed) */
    PE_UP_HTTP,        /**< a non-2xx reply after the retries (status, body) */
    PE_UP_TIMEOUT,     /**< connect or total timeout */
    PE_UP_NETWORK,     /**< connection refused, reset, truncated... after the retries */
    PE_UP_TOO_LARGE,   /**< the reply passed max_response */
    PE_UP_ABORTED,     /**< the data callback stopped the transfer (client gone) */
    PE_UP_INTERNAL     /**< libcurl could not be set up (out of memory, bad URL) */
} pe_upstream_outcome_e;

/** Settings of one upstream (filled by the glue from directives). */
typedef struct pe_upstream_conf_t {
    const char *url;          /**< full chat.completions URL (http or https) */
    const char *key;          /**< bearer key, or NULL; never logged */
    const char *user_agent;   /**< User-Agent header */
    long connect_timeout_ms;  /**< connection set-up limit */
    long timeout_ms;          /**< limit for one whole attempt */
    int retries;              /**< further attempts after the first (0: none) */
    long backoff_ms;          /**< first backoff; doubles per retry */
    long retry_after_max_ms;  /**< longest wait for a retry (caps Retry-After too) */
    apr_size_t max_response;  /**< largest reply body kept in memory */
} pe_upstream_conf_t;

/**
 * Receives a streamed 2xx body as it arrives.
 * @return APR_SUCCESS to go on; anything else aborts the transfer (PE_UP_ABORTED)
 */
typedef apr_status_t pe_upstream_data_fn(void *baton, const char *data, apr_size_t len);

/** The result of pe_upstream_post(). */
typedef struct pe_upstream_result_t {
    pe_upstream_outcome_e outcome;
    long status;                 /**< HTTP status of the last attempt (0 when none came) */
    int attempts;                /**< attempts made (1 + retries used) */
    pe_buf_t body;               /**< reply body of the last attempt (not the streamed part) */
    const char *content_type;    /**< of the last reply, or NULL */
    const char *error;           /**< libcurl's message for the last failure, or NULL */
    apr_interval_time_t elapsed; /**< time spent on the upstream, backoff waits included */
    apr_size_t streamed;         /**< bytes handed to the data callback */
} pe_upstream_result_t;

/** A per-process pool of curl easy handles (thread-safe). */
typedef struct pe_upstream_pool_t pe_upstream_pool_t;

/**
 * Make a handle pool. Idle handles (and their connections) are closed when p is cleaned up.
 * NB: make it in each child (child_init), never in the parent: connections do not survive fork.
 * @param max_idle most idle handles kept (more are closed when given back); >= 1
 * @return APR_SUCCESS or the mutex error
 */
apr_status_t pe_upstream_pool_create(apr_pool_t *p, int max_idle, pe_upstream_pool_t **out);

/** Handles made so far by a pool (tests check that handles are reused). */
unsigned pe_upstream_pool_created(pe_upstream_pool_t *hp);

/** Handles idle in a pool right now. */
unsigned pe_upstream_pool_idle(pe_upstream_pool_t *hp);

/**
 * POST body to conf->url and collect or stream the reply, retrying as described above.
 * @param p     pool for the result (body, strings); a leased handle goes back before return
 * @param hp    the handle pool
 * @param body  request body (JSON), len bytes
 * @param fn    NULL to collect the body; else a 2xx body is streamed to fn(baton, ...)
 * @param res   filled in every case
 * @return APR_SUCCESS when res->outcome is PE_UP_OK, else APR_EGENERAL
 */
apr_status_t pe_upstream_post(apr_pool_t *p, pe_upstream_pool_t *hp, const pe_upstream_conf_t *conf,
                              const char *body, apr_size_t len, pe_upstream_data_fn *fn, void *baton,
                              pe_upstream_result_t *res);

/**
 * Parse a Retry-After value: delta seconds, or an HTTP date (RFC 9110) relative to now.
 * @return milliseconds to wait (0 for a date in the past), or -1 when absent or malformed
 */
long pe_upstream_retry_after_ms(const char *value, apr_time_t now);

/**
 * Whether an attempt that ended this way may be retried.
 * @param outcome PE_UP_HTTP with status, or PE_UP_NETWORK; everything else is final
 */
int pe_upstream_retryable(pe_upstream_outcome_e outcome, long status);

/**
 * How long to wait before retry number `retry` (1 = the first retry): backoff_ms * 2^(retry-1)
 * with up to 25% random jitter subtracted, or retry_after_ms when >= 0 (a server's wish wins), both
 * capped at retry_after_max_ms.
 * @param rnd a random number in [0, 1) for the jitter
 */
long pe_upstream_backoff_ms(const pe_upstream_conf_t *conf, int retry, long retry_after_ms, double rnd);

/** A short name of an outcome ("ok", "timeout", ...). */
const char *pe_upstream_outcome_name(pe_upstream_outcome_e o);

#endif
