/*
 * pe_h_ops_cache.c: DELETE /v1/admin/cache (group `admin`, SPEC 10.4 with 16.2 item 34): the
 * response cache and the research cache cleared on every process of this node and, with
 * memcached, on every node that shares it, without flushing memcached (it holds the access
 * layer's shared counters too). How: a new cache generation (pe_cache.h).
 */
#include "pe_account_ap.h"
#include "pe_auth.h"
#include "pe_cache.h"
#include "pe_completion.h"
#include "pe_handlers.h"
#include "pe_http.h"
#include "pe_log.h"
#include "pe_research_ap.h"

#include "http_protocol.h"

/* DELETE /v1/admin/cache */
int pe_h_ops_cache_clear(pe_ctx_t *cx)
{
    request_rec *r = cx->r;
    pe_principal_t *p = cx->rq->principal;
    pe_cache_t *c = pe_completion_cache();
    apr_status_t rv = APR_SUCCESS, rrv;
    int remote = 0, research = 0;
    json_t *what;

    if (c)
        rv = pe_cache_clear(c, r->pool, apr_time_now(), &remote);
    rrv = pe_research_cache_clear(&research);
    what = json_pack("{s:b,s:b,s:b,s:s}", "response_cache", c != NULL, "research_cache", research, "memcached",
                     remote && rv == APR_SUCCESS, "scope", remote && rv == APR_SUCCESS ? "cluster" : "node");
    pe_account_event(r, pe_auth_store(r), rv == APR_SUCCESS && rrv == APR_SUCCESS ? "cache_cleared"
                                                                                  : "cache_clear_incomplete",
                     p->kind, p->id, p->username, json_deep_copy(what), rv == APR_SUCCESS ? "info" : "warning");
    if (rv != APR_SUCCESS || rrv != APR_SUCCESS) {
        pe_rlog(r, APLOG_WARNING, rv != APR_SUCCESS ? rv : rrv,
                PE_LOGNO(42008) "cache clear by %s: %s", p->username,
                rv != APR_SUCCESS && remote ? "memcached could not be written: this node is cleared, nodes "
                                              "sharing memcached are not yet"
                                            : "a shared-memory table could not be locked");
        json_decref(what);
        apr_table_setn(r->err_headers_out, "Retry-After", "5");
        return pe_http_error(r, HTTP_SERVICE_UNAVAILABLE, "CACHE_UNAVAILABLE",
                             rv != APR_SUCCESS && remote
                                 ? "Failed to clear cache: memcached did not answer; this node is cleared, "
                                   "retry to clear the nodes that share memcached"
                                 : "Failed to clear cache");
    }
    pe_rlog(r, APLOG_NOTICE, 0, PE_LOGNO(42007) "cache cleared by %s (%s)", p->username,
            remote ? "this node and every node sharing its memcached" : "this node only");
    return pe_account_ok(r, "Cache cleared successfully", what);
}
