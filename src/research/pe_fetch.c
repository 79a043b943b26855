/*
 * pe_fetch.c: bounded parallel HTTP with the libcurl multi interface (see pe_fetch.h).
 *
 * Each request is one "chain": a transfer for its URL and, after a redirect, a new transfer for
 * the vetted target. A chain holds one of the max_parallel slots from its first transfer to its
 * end. Everything runs in the calling thread: curl_multi_perform drives the transfers and
 * curl_multi_poll sleeps until a socket is ready or the next timeout.
 */
#include "pe_fetch.h"
#include "pe_buf.h"
#include "pe_logno.h"
#include "pe_metrics.h"

#include <apr_lib.h>
#include <apr_strings.h>

#include <string.h>

/* A request is not started with less time than this left before the deadline. */
#define FETCH_MIN_SLICE apr_time_from_msec(100)

const char *const pe_fetch_page_types[] = {"text/html", "application/xhtml+xml", "text/plain", NULL};

/* One request's chain of transfers. */
typedef struct fetch_chain_t {
    struct fetch_call_t *call;
    const pe_fetch_req_t *req;
    pe_fetch_res_t *res;
    CURL *h;                  /* the running transfer, or NULL */
    struct curl_slist *hdrs;  /* its request headers */
    pe_ssrf_guard_t guard;    /* NB: the handle points at it; it lives as long as the chain */
    pe_buf_t body;
    const char *method;       /* of the current hop */
    const char *location;     /* Location of the current response, or NULL */
    const char *ctype_raw;    /* Content-Type of the current response, or NULL */
    int decided;              /* the first body byte of the current response was judged */
    int redirect;             /* the current response is a redirect to follow */
    pe_fetch_status_e fail;   /* set by the write callback when it stopped the transfer */
    const char *fail_why;
    apr_time_t start;         /* start of the chain */
    int active;               /* holds a slot */
} fetch_chain_t;

/* State of one pe_fetch_all call. */
typedef struct fetch_call_t {
    apr_pool_t *p;
    CURLM *m;
    pe_fetch_opts_t o;        /* with the defaults applied */
    apr_time_t deadline;
    pe_fetch_stats_t st;
    int active;
} fetch_call_t;

/* Name of a status. */
const char *pe_fetch_status_name(pe_fetch_status_e s)
{
    static const char *const names[] = {"ok",      "refused", "http-status", "content-type", "too-large",
                                        "redirects", "timeout", "network",     "skipped",      "internal"};

    return (unsigned)s < sizeof(names) / sizeof(names[0]) ? names[s] : "unknown";
}

/* Split "text/html; charset=UTF-8" into its lower-case type and charset. */
void pe_fetch_parse_content_type(apr_pool_t *p, const char *value, const char **type, const char **charset)
{
    const char *s, *e, *param;
    char *t;

    *type = NULL;
    *charset = NULL;
    if (!value)
        return;
    for (s = value; *s == ' ' || *s == '\t'; s++)
        ;
    for (e = s; *e && *e != ';' && *e != ' ' && *e != '\t'; e++)
        ;
    if (e > s) {
        t = apr_pstrmemdup(p, s, (apr_size_t)(e - s));
        for (char *c = t; *c; c++)
            *c = (char)apr_tolower((unsigned char)*c);
        *type = t;
    }
    for (param = strchr(e, ';'); param; param = strchr(param + 1, ';')) {
        const char *v = param + 1, *ve;

        while (*v == ' ' || *v == '\t')
            v++;
        if (strncasecmp(v, "charset=", 8) != 0)
            continue;
        v += 8;
        if (*v == '"') {
            v++;
            ve = strchr(v, '"');
            if (!ve)
                ve = v + strlen(v);
        }
        else {
            for (ve = v; *ve && *ve != ';' && *ve != ' ' && *ve != '\t'; ve++)
                ;
        }
        if (ve > v && ve - v < 64)
            *charset = apr_pstrmemdup(p, v, (apr_size_t)(ve - v));
        return;
    }
}

/* Whether the current response's media type is allowed. */
static int fetch_type_ok(fetch_chain_t *c)
{
    const char *type, *charset;
    int i;

    if (!c->call->o.content_types)
        return 1;
    pe_fetch_parse_content_type(c->call->p, c->ctype_raw, &type, &charset);
    if (!type)
        return 0;
    for (i = 0; c->call->o.content_types[i]; i++)
        if (strcmp(type, c->call->o.content_types[i]) == 0)
            return 1;
    return 0;
}

/* Header callback: note Location and Content-Type of the response being received. */
static size_t fetch_header(char *d, size_t size, size_t nmemb, void *ud)
{
    fetch_chain_t *c = ud;
    size_t n = size * nmemb, len = n;
    const char *v;

    while (len > 0 && (d[len - 1] == '\r' || d[len - 1] == '\n'))
        len--;
    if (len >= 5 && memcmp(d, "HTTP/", 5) == 0) {
        /* NB: a new response (after 100 Continue, or a new hop) starts clean */
        c->location = NULL;
        c->ctype_raw = NULL;
        return n;
    }
    if (len > 9 && strncasecmp(d, "location:", 9) == 0)
        v = d + 9;
    else if (len > 13 && strncasecmp(d, "content-type:", 13) == 0)
        v = d + 13;
    else
        return n;
    {
        const char *e = d + len;
        const char *val;

        while (v < e && (*v == ' ' || *v == '\t'))
            v++;
        while (e > v && (e[-1] == ' ' || e[-1] == '\t'))
            e--;
        val = apr_pstrmemdup(c->call->p, v, (apr_size_t)(e - v));
        if (apr_tolower((unsigned char)d[0]) == 'l')
            c->location = val;
        else
            c->ctype_raw = val;
    }
    return n;
}

/* Write callback: judge the response on its first byte, then keep bytes up to the cap. */
static size_t fetch_write(char *d, size_t size, size_t nmemb, void *ud)
{
    fetch_chain_t *c = ud;
    size_t n = size * nmemb;
    apr_size_t room;
    long code = 0;

    if (!c->decided) {
        c->decided = 1;
        curl_easy_getinfo(c->h, CURLINFO_RESPONSE_CODE, &code);
        if (code >= 300 && code < 400) {
            /* NB: only the headers of a redirect matter; stop before its body */
            c->redirect = 1;
            return 0;
        }
        if (code < 200 || code >= 300) {
            c->fail = PE_FETCH_HTTP;
            c->fail_why = apr_psprintf(c->call->p, "HTTP status %ld", code);
            return 0;
        }
        if (!fetch_type_ok(c)) {
            c->fail = PE_FETCH_TYPE;
            c->fail_why = "content type not allowed";
            return 0;
        }
    }
    room = c->body.max - c->body.len;
    if (n > room) {
        if (room > 0)
            pe_buf_append(&c->body, d, room);
        c->res->truncated = 1;
        if (!c->call->o.truncate) {
            c->fail = PE_FETCH_TOO_LARGE;
            c->fail_why = "body larger than the limit";
        }
        return 0;
    }
    if (n > 0 && pe_buf_append(&c->body, d, n) != APR_SUCCESS)
        return 0;
    return n;
}

/* Milliseconds left for the chain: the smaller of its own limit and the call's deadline. */
static long fetch_ms_left(const fetch_chain_t *c, apr_time_t now)
{
    apr_time_t end = c->start + apr_time_from_msec(c->call->o.timeout_ms);

    if (end > c->call->deadline)
        end = c->call->deadline;
    return end > now ? (long)apr_time_as_msec(end - now) : 0;
}

/* Finish a chain: store the body, release the handle and the slot. */
static void fetch_finish(fetch_chain_t *c, pe_fetch_status_e status, const char *why)
{
    fetch_call_t *call = c->call;
    pe_fetch_res_t *r = c->res;

    r->status = status;
    r->error = status == PE_FETCH_OK ? NULL : (why ? why : pe_fetch_status_name(status));
    r->refused = c->guard.refused;
    call->st.refused += c->guard.refused;
    pe_met_inc(PE_MET_RESEARCH_PAGES, status == PE_FETCH_OK ? PE_MET_PAGE_FETCHED : status == PE_FETCH_REFUSED || c->guard.refused ? PE_MET_PAGE_SSRF_REFUSED : PE_MET_PAGE_FAILED, 0);
    if (status == PE_FETCH_OK) {
        r->body = c->body.data ? c->body.data : "";
        r->len = c->body.len;
        call->st.ok++;
    }
    if (r->content_type == NULL && c->ctype_raw)
        pe_fetch_parse_content_type(call->p, c->ctype_raw, &r->content_type, &r->charset);
    if (c->h) {
        curl_multi_remove_handle(call->m, c->h);
        curl_easy_cleanup(c->h);
        c->h = NULL;
    }
    curl_slist_free_all(c->hdrs);
    c->hdrs = NULL;
    r->elapsed = apr_time_now() - c->start;
    if (c->active) {
        c->active = 0;
        call->active--;
    }
}

#define FETCH_SETOPT(h, opt, val)                                                                                    \
    do {                                                                                                             \
        if (curl_easy_setopt(h, opt, val) != CURLE_OK)                                                               \
            goto fail;                                                                                               \
    } while (0)

/* Start a transfer of url for the chain (first hop or a redirect); 0, or -1 when the chain ended. */
static int fetch_start_hop(fetch_chain_t *c, const char *url)
{
    fetch_call_t *call = c->call;
    const pe_fetch_req_t *q = c->req;
    pe_ssrf_limits_t lim;
    long left = fetch_ms_left(c, apr_time_now());
    int i;

    if (left <= 0) {
        fetch_finish(c, PE_FETCH_TIMEOUT, "time limit reached");
        return -1;
    }
    c->res->url = url;
    c->location = NULL;
    c->ctype_raw = NULL;
    c->decided = 0;
    c->redirect = 0;
    c->fail = PE_FETCH_OK;
    c->fail_why = NULL;
    c->res->truncated = 0;
    pe_buf_init(&c->body, call->p, call->o.max_bytes);
    c->h = curl_easy_init();
    if (!c->h) {
        fetch_finish(c, PE_FETCH_INTERNAL, "out of memory");
        return -1;
    }
    memset(&lim, 0, sizeof(lim));
    lim.connect_timeout_ms = call->o.connect_timeout_ms;
    lim.timeout_ms = left;
    lim.max_redirs = 0;
    if (pe_ssrf_curl_setopts(c->h, &c->guard, &lim) != CURLE_OK)
        goto fail;
    if (!call->o.guarded) {
        /* NB: an endpoint the administrator configured may be on a private address */
        FETCH_SETOPT(c->h, CURLOPT_OPENSOCKETFUNCTION, NULL);
        FETCH_SETOPT(c->h, CURLOPT_OPENSOCKETDATA, NULL);
#if LIBCURL_VERSION_NUM >= 0x075000
        FETCH_SETOPT(c->h, CURLOPT_PREREQFUNCTION, NULL);
        FETCH_SETOPT(c->h, CURLOPT_PREREQDATA, NULL);
#endif
    }
    /* NB: the write callback counts decoded bytes; MAXFILESIZE would refuse instead of cutting */
    FETCH_SETOPT(c->h, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)0);
    FETCH_SETOPT(c->h, CURLOPT_ACCEPT_ENCODING, "");
    FETCH_SETOPT(c->h, CURLOPT_URL, url);
    FETCH_SETOPT(c->h, CURLOPT_USERAGENT, call->o.user_agent);
    FETCH_SETOPT(c->h, CURLOPT_HEADERFUNCTION, fetch_header);
    FETCH_SETOPT(c->h, CURLOPT_HEADERDATA, c);
    FETCH_SETOPT(c->h, CURLOPT_WRITEFUNCTION, fetch_write);
    FETCH_SETOPT(c->h, CURLOPT_WRITEDATA, c);
    FETCH_SETOPT(c->h, CURLOPT_PRIVATE, c);
    FETCH_SETOPT(c->h, CURLOPT_NOPROGRESS, 1L);
    if (c->method && strcmp(c->method, "POST") == 0) {
        FETCH_SETOPT(c->h, CURLOPT_POST, 1L);
        FETCH_SETOPT(c->h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)(q->body ? q->body_len : 0));
        FETCH_SETOPT(c->h, CURLOPT_POSTFIELDS, q->body ? q->body : "");
    }
    curl_slist_free_all(c->hdrs);
    c->hdrs = NULL;
    for (i = 0; q->headers && q->headers[i]; i++) {
        struct curl_slist *l = curl_slist_append(c->hdrs, q->headers[i]);

        if (!l)
            goto fail;
        c->hdrs = l;
    }
    if (c->hdrs)
        FETCH_SETOPT(c->h, CURLOPT_HTTPHEADER, c->hdrs);
    if (curl_multi_add_handle(call->m, c->h) != CURLM_OK)
        goto fail;
    call->st.transfers++;
    return 0;

fail:
    fetch_finish(c, PE_FETCH_INTERNAL, "transfer set-up failed");
    return -1;
}

/* Start a request: vet its URL (guarded) and run its first transfer. */
static void fetch_start(fetch_chain_t *c)
{
    fetch_call_t *call = c->call;
    pe_ssrf_url_t u;
    const char *why, *url = c->req->url;

    c->start = apr_time_now();
    c->method = c->req->method ? c->req->method : "GET";
    c->active = 1;
    call->active++;
    call->st.started++;
    if (call->active > call->st.max_active)
        call->st.max_active = call->active;
    pe_ssrf_guard_init(&c->guard, call->o.guarded ? call->o.policy : NULL);
    if (!url || !*url) {
        fetch_finish(c, PE_FETCH_INTERNAL, "no URL");
        return;
    }
    if (strcmp(c->method, "GET") != 0 && strcmp(c->method, "POST") != 0) {
        fetch_finish(c, PE_FETCH_INTERNAL, "method not supported");
        return;
    }
    if (call->o.guarded) {
        why = pe_ssrf_url_vet(call->p, url, call->o.policy, &u);
        if (why) {
            c->res->url = url;
            call->st.refused++;
            fetch_finish(c, PE_FETCH_REFUSED, apr_pstrcat(call->p, "URL refused: ", why, NULL));
            return;
        }
        url = u.url;
    }
    else if (strncasecmp(url, "http://", 7) != 0 && strncasecmp(url, "https://", 8) != 0) {
        c->res->url = url;
        fetch_finish(c, PE_FETCH_REFUSED, "URL refused: scheme is not http or https");
        return;
    }
    fetch_start_hop(c, url);
}

/* The absolute URL of a Location relative to base (curl's normalised form), or NULL. */
static const char *fetch_resolve(apr_pool_t *p, const char *base, const char *location)
{
    CURLU *u = curl_url();
    char *full = NULL;
    const char *out = NULL;

    if (!u)
        return NULL;
    if (curl_url_set(u, CURLUPART_URL, base, 0) == CURLUE_OK
        && curl_url_set(u, CURLUPART_URL, location, CURLU_URLENCODE) == CURLUE_OK
        && curl_url_get(u, CURLUPART_URL, &full, 0) == CURLUE_OK && full)
        out = apr_pstrdup(p, full);
    curl_free(full);
    curl_url_cleanup(u);
    return out;
}

/* Follow the redirect of the current response: vet the target and start the next hop. */
static void fetch_redirect(fetch_chain_t *c, long code)
{
    fetch_call_t *call = c->call;
    const char *next, *why;
    pe_ssrf_url_t u;

    c->res->redirects++;
    if (c->res->redirects > call->o.max_redirects) {
        fetch_finish(c, PE_FETCH_REDIRECTS, "too many redirects");
        return;
    }
    if (!c->location || !*c->location || !(next = fetch_resolve(call->p, c->res->url, c->location))) {
        fetch_finish(c, PE_FETCH_REDIRECTS, "redirect without a usable Location");
        return;
    }
    if (call->o.guarded) {
        why = pe_ssrf_url_vet(call->p, next, call->o.policy, &u);
        if (why) {
            call->st.refused++;
            pe_clog(PE_LOG_NOTICE, 0, PE_LOGNO(61001) "research fetch: redirect %d refused (%s)",
                    c->res->redirects, why);
            fetch_finish(c, PE_FETCH_REFUSED, apr_pstrcat(call->p, "redirect target refused: ", why, NULL));
            return;
        }
        next = u.url;
    }
    else if (strncasecmp(next, "http://", 7) != 0 && strncasecmp(next, "https://", 8) != 0) {
        fetch_finish(c, PE_FETCH_REFUSED, "redirect target refused: scheme is not http or https");
        return;
    }
    curl_multi_remove_handle(call->m, c->h);
    curl_easy_cleanup(c->h);
    c->h = NULL;
    /* 303, and 301/302 after a POST as browsers do, continue with GET; 307/308 keep the method */
    if (code != 307 && code != 308)
        c->method = "GET";
    fetch_start_hop(c, next);
}

/* A transfer is done: decide whether the chain succeeded, failed or goes on. */
static void fetch_done(fetch_chain_t *c, CURLcode rc)
{
    long code = 0;

    curl_easy_getinfo(c->h, CURLINFO_RESPONSE_CODE, &code);
    c->res->http_status = code;
    if (c->ctype_raw)
        pe_fetch_parse_content_type(c->call->p, c->ctype_raw, &c->res->content_type, &c->res->charset);
    else
        c->res->content_type = c->res->charset = NULL;
    if (c->redirect || ((rc == CURLE_OK || rc == CURLE_WRITE_ERROR) && code >= 300 && code < 400
                        && c->fail == PE_FETCH_OK)) {
        fetch_redirect(c, code);
        return;
    }
    if (c->fail != PE_FETCH_OK) {
        fetch_finish(c, c->fail, c->fail_why);
        return;
    }
    if (rc == CURLE_WRITE_ERROR && c->res->truncated && c->call->o.truncate) {
        fetch_finish(c, PE_FETCH_OK, NULL);
        return;
    }
    if (rc != CURLE_OK) {
        if (rc == CURLE_OPERATION_TIMEDOUT)
            fetch_finish(c, PE_FETCH_TIMEOUT, "time limit reached");
        else if (c->guard.refused > 0)
            fetch_finish(c, PE_FETCH_REFUSED, "connection refused by the address guard");
        else
            fetch_finish(c, PE_FETCH_NETWORK, curl_easy_strerror(rc));
        return;
    }
    if (code < 200 || code >= 300) {
        fetch_finish(c, PE_FETCH_HTTP, apr_psprintf(c->call->p, "HTTP status %ld", code));
        return;
    }
    if (!c->decided && !fetch_type_ok(c)) {
        fetch_finish(c, PE_FETCH_TYPE, "content type not allowed");
        return;
    }
    fetch_finish(c, PE_FETCH_OK, NULL);
}

/* Apply the defaults and caps to the caller's options. */
static void fetch_opts_fill(pe_fetch_opts_t *o, const pe_fetch_opts_t *in)
{
    if (in)
        *o = *in;
    else
        memset(o, 0, sizeof(*o));
    if (o->max_parallel <= 0)
        o->max_parallel = PE_FETCH_PARALLEL;
    if (o->max_parallel > PE_FETCH_PARALLEL_MAX)
        o->max_parallel = PE_FETCH_PARALLEL_MAX;
    if (o->max_bytes == 0)
        o->max_bytes = PE_FETCH_MAX_BYTES;
    if (o->connect_timeout_ms <= 0)
        o->connect_timeout_ms = PE_FETCH_CONNECT_MS;
    if (o->timeout_ms <= 0)
        o->timeout_ms = PE_FETCH_TIMEOUT_MS;
    if (o->total_ms <= 0)
        o->total_ms = PE_FETCH_TOTAL_MS;
    if (o->max_redirects == 0)
        o->max_redirects = PE_FETCH_REDIRECTS_DEFAULT;
    else if (o->max_redirects < 0)
        o->max_redirects = 0;
    if (o->max_redirects > PE_FETCH_REDIRECTS_CAP)
        o->max_redirects = PE_FETCH_REDIRECTS_CAP;
    if (!o->user_agent || !*o->user_agent)
        o->user_agent = PE_FETCH_USER_AGENT;
}

/* Read finished transfers off the multi handle. */
static void fetch_collect(fetch_call_t *call)
{
    CURLMsg *msg;
    int left;

    while ((msg = curl_multi_info_read(call->m, &left)) != NULL) {
        fetch_chain_t *c;
        char *priv = NULL;

        if (msg->msg != CURLMSG_DONE)
            continue;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &priv);
        c = (fetch_chain_t *)priv;
        if (c && c->h == msg->easy_handle)
            fetch_done(c, msg->data.result);
    }
}

/* Run every request with bounded concurrency until done or the deadline. */
apr_status_t pe_fetch_all(apr_pool_t *p, const pe_fetch_opts_t *o, const pe_fetch_req_t *reqs, int n,
                          pe_fetch_res_t *res, pe_fetch_stats_t *st)
{
    fetch_call_t call;
    fetch_chain_t *chains;
    apr_time_t t0 = apr_time_now();
    int next = 0, i;

    if (st)
        memset(st, 0, sizeof(*st));
    if (!p || n < 0 || (n > 0 && (!reqs || !res)))
        return APR_EINVAL;
    if (n == 0)
        return APR_SUCCESS;
    memset(&call, 0, sizeof(call));
    call.p = p;
    fetch_opts_fill(&call.o, o);
    call.deadline = t0 + apr_time_from_msec(call.o.total_ms);
    chains = apr_pcalloc(p, sizeof(*chains) * (apr_size_t)n);
    for (i = 0; i < n; i++) {
        memset(&res[i], 0, sizeof(res[i]));
        res[i].status = PE_FETCH_SKIPPED;
        res[i].url = reqs[i].url;
        res[i].body = "";
        res[i].error = "deadline passed before the request started";
        chains[i].call = &call;
        chains[i].req = &reqs[i];
        chains[i].res = &res[i];
    }
    call.m = curl_multi_init();
    if (!call.m)
        return APR_ENOMEM;

    for (;;) {
        apr_time_t now;
        int running = 0;
        long wait_ms;

        while (call.active < call.o.max_parallel && next < n && apr_time_now() + FETCH_MIN_SLICE < call.deadline)
            fetch_start(&chains[next++]);
        if (call.active == 0 && (next >= n || apr_time_now() + FETCH_MIN_SLICE >= call.deadline))
            break;
        now = apr_time_now();
        if (now >= call.deadline)
            break;
        curl_multi_perform(call.m, &running);
        fetch_collect(&call);
        if (call.active == 0 && next >= n)
            break;
        if (call.active >= call.o.max_parallel || next >= n) {
            now = apr_time_now();
            wait_ms = call.deadline > now ? (long)apr_time_as_msec(call.deadline - now) + 1 : 0;
            if (wait_ms > 1000)
                wait_ms = 1000;
            curl_multi_poll(call.m, NULL, 0, (int)wait_ms, NULL);
        }
    }
    /* NB: the deadline passed with transfers still running: stop them */
    for (i = 0; i < n; i++)
        if (chains[i].active)
            fetch_finish(&chains[i], PE_FETCH_TIMEOUT, "deadline of the whole fetch reached");
    curl_multi_cleanup(call.m);
    call.st.elapsed = apr_time_now() - t0;
    if (st)
        *st = call.st;
    return APR_SUCCESS;
}
