/* pe_search.c: search providers (SearxNG JSON, Brave) and the parallel search of many queries. */
#include "pe_search.h"
#include "pe_json.h"
#include "pe_logno.h"

#include <apr_strings.h>

#include <strings.h>
#include <string.h>

/* A copy of s cut to at most max bytes at a UTF-8 character boundary ("" for NULL). */
const char *pe_search_text_cut(apr_pool_t *p, const char *s, apr_size_t max)
{
    apr_size_t n;

    if (!s)
        return "";
    n = strlen(s);
    if (n <= max)
        return apr_pstrmemdup(p, s, n);
    n = max;
    while (n > 0 && ((unsigned char)s[n] & 0xc0) == 0x80)
        n--;
    return apr_pstrmemdup(p, s, n);
}

/* The hits cap of a configuration. */
static int search_max(const pe_search_conf_t *c)
{
    int m = c && c->max_results > 0 ? c->max_results : PE_SEARCH_MAX_RESULTS;

    return m > PE_SEARCH_MAX_RESULTS_CAP ? PE_SEARCH_MAX_RESULTS_CAP : m;
}

/* Percent-encode a query parameter value. */
static const char *search_escape(apr_pool_t *p, const char *s)
{
    char *e = curl_easy_escape(NULL, s, (int)strlen(s));
    const char *out;

    if (!e)
        return NULL;
    out = apr_pstrdup(p, e);
    curl_free(e);
    return out;
}

/* The endpoint with a query string appended ('?' or '&' as the URL needs). */
static const char *search_url(apr_pool_t *p, const char *base, const char *params)
{
    return apr_pstrcat(p, base, strchr(base, '?') ? "&" : "?", params, NULL);
}

/* Append one hit unless its URL is not http(s), is already there, or the cap is reached. */
static void search_add(apr_pool_t *p, const pe_search_conf_t *c, apr_array_header_t *out, const char *url,
                       const char *title, const char *snippet)
{
    pe_search_hit_t *h;
    int i;

    if (!url || out->nelts >= search_max(c) || strlen(url) > PE_SSRF_URL_MAX)
        return;
    if (strncasecmp(url, "http://", 7) != 0 && strncasecmp(url, "https://", 8) != 0)
        return;
    for (i = 0; i < out->nelts; i++)
        if (strcmp(APR_ARRAY_IDX(out, i, pe_search_hit_t).url, url) == 0)
            return;
    h = &APR_ARRAY_PUSH(out, pe_search_hit_t);
    h->url = apr_pstrdup(p, url);
    h->title = pe_search_text_cut(p, title, PE_SEARCH_TITLE_MAX);
    h->snippet = pe_search_text_cut(p, snippet, PE_SEARCH_SNIPPET_MAX);
}

/* Parse the body as a JSON object. */
static const char *search_json(apr_pool_t *p, const char *body, apr_size_t len, json_t **root)
{
    const char *err = NULL;

    if (!body || len == 0)
        return "empty answer";
    if (pe_json_parse(p, body, len, root, &err) != 0)
        return "answer is not valid JSON";
    if (!json_is_object(*root))
        return "answer is not a JSON object";
    return NULL;
}

/* SearxNG: GET <url>?q=..&format=json&safesearch=1[&language=..]. */
static const char *searxng_request(apr_pool_t *p, const pe_search_conf_t *c, const char *query,
                                   pe_fetch_req_t *out)
{
    static const char *const hdrs[] = {"Accept: application/json", NULL};
    const char *q, *params;

    if (!c->url || !*c->url)
        return "no search URL configured";
    if (!query || !*query || !(q = search_escape(p, query)))
        return "empty query";
    params = apr_pstrcat(p, "q=", q, "&format=json&safesearch=1&pageno=1", NULL);
    if (c->language && *c->language) {
        const char *l = search_escape(p, c->language);

        if (l)
            params = apr_pstrcat(p, params, "&language=", l, NULL);
    }
    memset(out, 0, sizeof(*out));
    out->url = search_url(p, c->url, params);
    out->headers = hdrs;
    return NULL;
}

/* SearxNG: {"results":[{"url","title","content"},...]}. */
static const char *searxng_parse(apr_pool_t *p, const pe_search_conf_t *c, const char *body, apr_size_t len,
                                 apr_array_header_t *out)
{
    json_t *root, *results, *r;
    const char *err = search_json(p, body, len, &root);
    size_t i;

    if (err)
        return err;
    results = json_object_get(root, "results");
    if (!json_is_array(results))
        return "answer has no results array";
    json_array_foreach (results, i, r) {
        if (json_is_object(r))
            search_add(p, c, out, pe_json_str(r, "url"), pe_json_str(r, "title"), pe_json_str(r, "content"));
    }
    return NULL;
}

/* Brave: GET <url>?q=..&count=n with the subscription token. */
static const char *brave_request(apr_pool_t *p, const pe_search_conf_t *c, const char *query, pe_fetch_req_t *out)
{
    const char **hdrs;
    const char *q;

    if (!c->url || !*c->url)
        return "no search URL configured";
    if (!c->key || !*c->key)
        return "no search API key configured";
    if (!query || !*query || !(q = search_escape(p, query)))
        return "empty query";
    hdrs = apr_pcalloc(p, 3 * sizeof(*hdrs));
    hdrs[0] = "Accept: application/json";
    hdrs[1] = apr_pstrcat(p, "X-Subscription-Token: ", c->key, NULL);
    memset(out, 0, sizeof(*out));
    out->url = search_url(p, c->url, apr_psprintf(p, "q=%s&count=%d&safesearch=moderate", q, search_max(c)));
    out->headers = hdrs;
    return NULL;
}

/* Brave: {"web":{"results":[{"url","title","description"},...]}}; no "web" means no hits. */
static const char *brave_parse(apr_pool_t *p, const pe_search_conf_t *c, const char *body, apr_size_t len,
                               apr_array_header_t *out)
{
    json_t *root, *web, *results, *r;
    const char *err = search_json(p, body, len, &root);
    size_t i;

    if (err)
        return err;
    web = json_object_get(root, "web");
    if (!web)
        return NULL;
    results = json_is_object(web) ? json_object_get(web, "results") : NULL;
    if (!json_is_array(results))
        return "answer has no web.results array";
    json_array_foreach (results, i, r) {
        if (json_is_object(r))
            search_add(p, c, out, pe_json_str(r, "url"), pe_json_str(r, "title"), pe_json_str(r, "description"));
    }
    return NULL;
}

const pe_search_provider_t pe_search_searxng = {"searxng", searxng_request, searxng_parse};
const pe_search_provider_t pe_search_brave = {"brave", brave_request, brave_parse};

static const pe_search_provider_t *const search_providers[] = {&pe_search_searxng, &pe_search_brave, NULL};

/* Look a provider up by name. */
const pe_search_provider_t *pe_search_provider(const char *name)
{
    int i;

    for (i = 0; name && search_providers[i]; i++)
        if (strcasecmp(name, search_providers[i]->name) == 0)
            return search_providers[i];
    return NULL;
}

/* The provider names for messages. */
const char *pe_search_provider_names(void)
{
    return "searxng, brave";
}

/* Search all queries at once through the fetcher. */
int pe_search_run(apr_pool_t *p, const pe_search_conf_t *c, const pe_fetch_opts_t *o, const char *const *queries,
                  int n, pe_search_out_t *out)
{
    const pe_search_provider_t *prov = c && c->provider ? c->provider : &pe_search_searxng;
    pe_fetch_req_t *reqs;
    pe_fetch_res_t *res;
    pe_fetch_opts_t fo;
    int *slot, nreq = 0, good = 0, i;

    if (n <= 0 || !queries || !out)
        return 0;
    reqs = apr_pcalloc(p, sizeof(*reqs) * (apr_size_t)n);
    res = apr_pcalloc(p, sizeof(*res) * (apr_size_t)n);
    slot = apr_pcalloc(p, sizeof(*slot) * (apr_size_t)n);
    for (i = 0; i < n; i++) {
        out[i].hits = apr_array_make(p, 10, sizeof(pe_search_hit_t));
        out[i].http_status = 0;
        out[i].error = c ? prov->request(p, c, queries[i], &reqs[nreq]) : "no search configured";
        slot[i] = out[i].error ? -1 : nreq++;
    }
    if (o)
        fo = *o;
    else
        memset(&fo, 0, sizeof(fo));
    fo.guarded = 0;
    fo.policy = NULL;
    fo.content_types = NULL;
    fo.truncate = 0;
    fo.max_bytes = PE_SEARCH_BODY_MAX;
    fo.max_redirects = -1; /* the endpoint is configured: no redirects */
    if (nreq > 0 && pe_fetch_all(p, &fo, reqs, nreq, res, NULL) != APR_SUCCESS) {
        for (i = 0; i < n; i++)
            if (slot[i] >= 0)
                out[i].error = "search could not be started";
        return 0;
    }
    for (i = 0; i < n; i++) {
        pe_fetch_res_t *r;

        if (slot[i] < 0)
            continue;
        r = &res[slot[i]];
        out[i].http_status = r->http_status;
        if (r->status != PE_FETCH_OK)
            out[i].error = apr_pstrcat(p, "search provider: ", r->error ? r->error : pe_fetch_status_name(r->status),
                                       NULL);
        else
            out[i].error = prov->parse(p, c, r->body, r->len, out[i].hits);
        if (out[i].error) {
            apr_array_clear(out[i].hits);
            pe_clog(PE_LOG_WARNING, 0, PE_LOGNO(61002) "research: %s search failed: %s", prov->name, out[i].error);
        }
        else
            good++;
    }
    return good;
}
