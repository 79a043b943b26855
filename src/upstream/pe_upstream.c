/*
 * pe_upstream.c: the OpenAI-compatible upstream client on libcurl (see pe_upstream.h).
 */
#include "pe_upstream.h"
#include "pe_metrics.h"
#include "pe_logno.h"

#include <apr_date.h>
#include <apr_lib.h>
#include <apr_strings.h>
#include <apr_thread_mutex.h>
#include <curl/curl.h>
#include <stdlib.h>
#include <string.h>

struct pe_upstream_pool_t {
    apr_thread_mutex_t *mutex;
    CURL **idle;    /* stack of idle handles */
    int nidle, max_idle;
    unsigned created;
};

/* Pool cleanup: close the idle handles (and with them their connections). */
static apr_status_t pool_cleanup(void *data)
{
    pe_upstream_pool_t *hp = data;

    while (hp->nidle > 0)
        curl_easy_cleanup(hp->idle[--hp->nidle]);
    return APR_SUCCESS;
}

/* Make a handle pool on p. */
apr_status_t pe_upstream_pool_create(apr_pool_t *p, int max_idle, pe_upstream_pool_t **out)
{
    pe_upstream_pool_t *hp = apr_pcalloc(p, sizeof(*hp));
    apr_status_t rv;

    if (max_idle < 1)
        max_idle = 1;
    if ((rv = apr_thread_mutex_create(&hp->mutex, APR_THREAD_MUTEX_DEFAULT, p)) != APR_SUCCESS)
        return rv;
    hp->max_idle = max_idle;
    hp->idle = apr_pcalloc(p, sizeof(CURL *) * (apr_size_t)max_idle);
    apr_pool_cleanup_register(p, hp, pool_cleanup, apr_pool_cleanup_null);
    *out = hp;
    return APR_SUCCESS;
}

/* Handles made so far. */
unsigned pe_upstream_pool_created(pe_upstream_pool_t *hp)
{
    unsigned n;

    apr_thread_mutex_lock(hp->mutex);
    n = hp->created;
    apr_thread_mutex_unlock(hp->mutex);
    return n;
}

/* Idle handles now. */
unsigned pe_upstream_pool_idle(pe_upstream_pool_t *hp)
{
    unsigned n;

    apr_thread_mutex_lock(hp->mutex);
    n = (unsigned)hp->nidle;
    apr_thread_mutex_unlock(hp->mutex);
    return n;
}

/* Take an idle handle (options reset, connections kept) or make a new one. */
static CURL *lease(pe_upstream_pool_t *hp)
{
    CURL *h = NULL;

    apr_thread_mutex_lock(hp->mutex);
    if (hp->nidle > 0)
        h = hp->idle[--hp->nidle];
    apr_thread_mutex_unlock(hp->mutex);
    if (h) {
        curl_easy_reset(h);
        return h;
    }
    h = curl_easy_init();
    if (h) {
        apr_thread_mutex_lock(hp->mutex);
        hp->created++;
        apr_thread_mutex_unlock(hp->mutex);
    }
    return h;
}

/* Give a handle back; beyond max_idle it is closed. */
static void give_back(pe_upstream_pool_t *hp, CURL *h)
{
    apr_thread_mutex_lock(hp->mutex);
    if (hp->nidle < hp->max_idle) {
        hp->idle[hp->nidle++] = h;
        h = NULL;
    }
    apr_thread_mutex_unlock(hp->mutex);
    if (h)
        curl_easy_cleanup(h);
}

/* State of one attempt, shared with the curl callbacks. */
typedef struct attempt_t {
    CURL *h;
    pe_upstream_result_t *res;
    apr_pool_t *pool;
    const pe_upstream_conf_t *conf;
    pe_upstream_data_fn *fn;
    void *baton;
    const char *retry_after;
    const char *content_type;
    int too_large, aborted;
    apr_time_t start; /* of the call, for the time to the first streamed byte */
} attempt_t;

/* Header callback: keep Retry-After and Content-Type of the final response. */
static size_t on_header(char *buf, size_t size, size_t n, void *ud)
{
    attempt_t *a = ud;
    size_t len = size * n;
    char *line, *colon, *v, *end;

    if (len >= 5 && !strncmp(buf, "HTTP/", 5)) {
        /* A new response (after 100 Continue, say): forget the headers of the previous one. */
        a->retry_after = a->content_type = NULL;
        return len;
    }
    line = apr_pstrmemdup(a->pool, buf, len);
    if (!(colon = strchr(line, ':')))
        return len;
    *colon = '\0';
    v = colon + 1;
    while (*v == ' ' || *v == '\t')
        v++;
    end = v + strlen(v);
    while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' ' || end[-1] == '\t'))
        *--end = '\0';
    if (!strcasecmp(line, "Retry-After"))
        a->retry_after = v;
    else if (!strcasecmp(line, "Content-Type"))
        a->content_type = v;
    return len;
}

/* Write callback: a 2xx body goes to the stream callback when there is one; the rest is kept, capped. */
static size_t on_data(char *buf, size_t size, size_t n, void *ud)
{
    attempt_t *a = ud;
    size_t len = size * n;
    long status = 0;

    curl_easy_getinfo(a->h, CURLINFO_RESPONSE_CODE, &status);
    if (a->fn && status >= 200 && status < 300) {
        if (!a->res->streamed)
            pe_met_observe(PE_MET_UPSTREAM_TTFT, apr_time_now() - a->start);
        if (a->fn(a->baton, buf, len) != APR_SUCCESS) {
            a->aborted = 1;
            return 0;
        }
        a->res->streamed += len;
        return len;
    }
    if (pe_buf_append(&a->res->body, buf, len) != APR_SUCCESS) {
        a->too_large = 1;
        return 0;
    }
    return len;
}

/* Free a header list at pool cleanup. */
static apr_status_t slist_cleanup(void *data)
{
    curl_slist_free_all(data);
    return APR_SUCCESS;
}

/* Header list for the request (bound to p). */
static struct curl_slist *request_headers(apr_pool_t *p, const pe_upstream_conf_t *c, int stream)
{
    struct curl_slist *l = NULL, *t;
    const char *hs[5];
    int i, n = 0;

    hs[n++] = "Content-Type: application/json";
    hs[n++] = stream ? "Accept: text/event-stream" : "Accept: application/json";
    hs[n++] = "Expect:"; /* no 100-continue round trip */
    if (c->key && *c->key)
        hs[n++] = apr_pstrcat(p, "Authorization: Bearer ", c->key, NULL);
    hs[n++] = apr_pstrcat(p, "User-Agent: ", c->user_agent ? c->user_agent : "PromptEnchanter", NULL);
    for (i = 0; i < n; i++) {
        if (!(t = curl_slist_append(l, hs[i]))) {
            curl_slist_free_all(l);
            return NULL;
        }
        l = t;
    }
    apr_pool_cleanup_register(p, l, slist_cleanup, apr_pool_cleanup_null);
    return l;
}

/* Classify a finished transfer. */
static pe_upstream_outcome_e classify(const attempt_t *a, CURLcode cc, long status)
{
    if (a->too_large)
        return PE_UP_TOO_LARGE;
    if (a->aborted)
        return PE_UP_ABORTED;
    switch (cc) {
    case CURLE_OK:
        return (status >= 200 && status < 300) ? PE_UP_OK : PE_UP_HTTP;
    case CURLE_OPERATION_TIMEDOUT:
        return PE_UP_TIMEOUT;
    case CURLE_FILESIZE_EXCEEDED:
        return PE_UP_TOO_LARGE;
    case CURLE_OUT_OF_MEMORY:
    case CURLE_URL_MALFORMAT:
    case CURLE_UNSUPPORTED_PROTOCOL:
    case CURLE_BAD_FUNCTION_ARGUMENT:
    case CURLE_FAILED_INIT:
        return PE_UP_INTERNAL;
    default:
        return PE_UP_NETWORK;
    }
}

/* One attempt on handle h. */
static pe_upstream_outcome_e attempt_once(attempt_t *a, struct curl_slist *hdrs, const char *body, apr_size_t len)
{
    CURL *h = a->h;
    const pe_upstream_conf_t *c = a->conf;
    char errbuf[CURL_ERROR_SIZE];
    CURLcode cc;
    long status = 0;
    pe_upstream_outcome_e o;

    errbuf[0] = '\0';
    pe_buf_init(&a->res->body, a->pool, c->max_response);
    a->retry_after = a->content_type = NULL;
    a->too_large = a->aborted = 0;
    curl_easy_setopt(h, CURLOPT_URL, c->url);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(h, CURLOPT_PROXY, "");
    curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(h, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, c->connect_timeout_ms);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, c->timeout_ms);
    curl_easy_setopt(h, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)c->max_response);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(h, CURLOPT_POST, 1L);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, a);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, a);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
    cc = curl_easy_perform(h);
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, NULL);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, NULL);
    a->res->status = status;
    a->res->content_type = a->content_type;
    o = classify(a, cc, status);
    a->res->error = (cc == CURLE_OK) ? NULL
                                     : apr_pstrdup(a->pool, errbuf[0] ? errbuf : curl_easy_strerror(cc));
    return o;
}

/* Retry only what may succeed on a second try. */
int pe_upstream_retryable(pe_upstream_outcome_e outcome, long status)
{
    if (outcome == PE_UP_NETWORK)
        return 1;
    return outcome == PE_UP_HTTP && (status == 429 || status >= 500);
}

/* Delay before retry number `retry`. */
long pe_upstream_backoff_ms(const pe_upstream_conf_t *conf, int retry, long retry_after_ms, double rnd)
{
    long cap = conf->retry_after_max_ms > 0 ? conf->retry_after_max_ms : 0;
    long d;

    if (retry_after_ms >= 0) {
        d = retry_after_ms;
    }
    else {
        int shift = retry > 1 ? retry - 1 : 0;

        d = conf->backoff_ms > 0 ? conf->backoff_ms : 0;
        while (shift-- > 0 && d < cap)
            d *= 2;
        if (rnd < 0 || rnd >= 1)
            rnd = 0;
        d -= (long)((double)d * 0.25 * rnd);
    }
    return d > cap ? cap : d;
}

/* Parse a Retry-After value. */
long pe_upstream_retry_after_ms(const char *v, apr_time_t now)
{
    const char *s;
    apr_time_t t;

    if (!v)
        return -1;
    while (*v == ' ')
        v++;
    if (!*v)
        return -1;
    for (s = v; *s && apr_isdigit(*s); s++)
        ;
    if (!*s) {
        long long secs;

        if (s - v > 9)
            return 86400000L; /* absurdly long: the caller caps it */
        secs = atoll(v);
        return (long)(secs * 1000);
    }
    t = apr_date_parse_http(v);
    if (t == APR_DATE_BAD)
        return -1;
    return t > now ? (long)((t - now) / 1000) : 0;
}

/* Short name of an outcome. */
const char *pe_upstream_outcome_name(pe_upstream_outcome_e o)
{
    switch (o) {
    case PE_UP_OK: return "ok";
    case PE_UP_HTTP: return "http-error";
    case PE_UP_TIMEOUT: return "timeout";
    case PE_UP_NETWORK: return "network-error";
    case PE_UP_TOO_LARGE: return "too-large";
    case PE_UP_ABORTED: return "aborted";
    default: return "internal-error";
    }
}

/* A number in [0, 1) for backoff jitter (not security-relevant). */
static double jitter(const void *salt)
{
    apr_uint64_t x = (apr_uint64_t)apr_time_now() ^ (apr_uint64_t)(apr_uintptr_t)salt;

    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    return (double)(x % 1000000) / 1000000.0;
}

/* POST with retries; see pe_upstream.h. */
apr_status_t pe_upstream_post(apr_pool_t *p, pe_upstream_pool_t *hp, const pe_upstream_conf_t *conf,
                              const char *body, apr_size_t len, pe_upstream_data_fn *fn, void *baton,
                              pe_upstream_result_t *res)
{
    apr_time_t start = apr_time_now();
    struct curl_slist *hdrs;
    attempt_t a;
    pe_upstream_outcome_e o = PE_UP_INTERNAL;
    int tries = conf->retries > 0 ? conf->retries + 1 : 1;

    memset(res, 0, sizeof(*res));
    pe_buf_init(&res->body, p, conf->max_response);
    memset(&a, 0, sizeof(a));
    a.res = res;
    a.pool = p;
    a.conf = conf;
    a.fn = fn;
    a.baton = baton;
    a.start = start;
    if (!conf->url || !(hdrs = request_headers(p, conf, fn != NULL)) || !(a.h = lease(hp))) {
        res->outcome = PE_UP_INTERNAL;
        res->error = conf->url ? "libcurl could not be set up" : "no upstream URL is configured";
        return APR_EGENERAL;
    }
    while (res->attempts < tries) {
        res->attempts++;
        o = attempt_once(&a, hdrs, body, len);
        if (o == PE_UP_OK || res->streamed || res->attempts >= tries || !pe_upstream_retryable(o, res->status))
            break;
        {
            long ra = pe_upstream_retry_after_ms(a.retry_after, apr_time_now());
            long wait = pe_upstream_backoff_ms(conf, res->attempts, ra, jitter(&a));

            pe_clog(PE_LOG_INFO, 0,
                    PE_LOGNO(41001) "upstream attempt %d of %d failed (%s, status %ld%s%s); retrying in %ld ms",
                    res->attempts, tries, pe_upstream_outcome_name(o), res->status, res->error ? ": " : "",
                    res->error ? res->error : "", wait);
            if (wait > 0)
                apr_sleep(apr_time_from_msec(wait));
        }
    }
    /* NB: a handle whose transfer was cut (abort, size cap) may hold a half-read connection;
     * curl closes such connections itself, so the handle is still fine to reuse. */
    give_back(hp, a.h);
    res->outcome = o;
    res->elapsed = apr_time_now() - start;
    pe_met_upstream((int)o, res->status, res->elapsed);
    return o == PE_UP_OK ? APR_SUCCESS : APR_EGENERAL;
}
