/*
 * pe_handler.c: the content handler (SetHandler promptenchanter): finds the route for the
 * URI among the groups this location serves (PEApi) and hands over to it.
 */
#include "pe_auth.h"
#include "pe_config.h"
#include "pe_email_ap.h"
#include "pe_hooks.h"
#include "pe_http.h"
#include "pe_log.h"

#include "http_protocol.h"
#include <apr_strings.h>

/* The path the routes see: r->uri without PEBaseURI; NULL when outside the base. */
const char *pe_handler_route_path(request_rec *r)
{
    const pe_dir_conf_t *dc = pe_config_dir(r);
    const char *base = pe_dir_base_uri(dc);
    apr_size_t n = strlen(base);

    if (!n)
        return r->uri;
    if (strncmp(r->uri, base, n) != 0 || (r->uri[n] != '/' && r->uri[n] != '\0'))
        return NULL;
    return r->uri[n] ? r->uri + n : "/";
}

/* Dispatch through the route table. */
int pe_handler(request_rec *r)
{
    pe_dir_conf_t *dc;
    pe_route_match_t m;
    pe_ctx_t cx;
    const char *path;

    if (!r->handler || strcmp(r->handler, PE_HANDLER_NAME) != 0)
        return DECLINED;
    dc = pe_config_dir(r);
    cx.r = r;
    cx.rq = pe_req_get(r);
    cx.match = &m;
    path = pe_handler_route_path(r);
    switch (path ? pe_route_match(r->pool, pe_routes, pe_routes_count, (unsigned)pe_dir_api_groups(dc),
                                  pe_route_method_bit(r->method), path, &m)
                 : PE_ROUTE_NOT_FOUND) {
    case PE_ROUTE_OK:
        pe_rlog(r, APLOG_TRACE1, 0, "route %s %s", r->method, m.route->pattern);
        cx.rq->route = m.route;
        cx.rq->route_for = r;
        /* The route table is the floor: a route that needs a credential checks it here even
         * where no AuthType/Require was configured; Require lines add to it. */
        if (m.route->auth) {
            pe_principal_t *p;
            int rc = pe_auth_principal(r, &p);

            if (rc == OK)
                rc = pe_auth_route_check(r, m.route->auth, p);
            if (rc == OK && m.route->need)
                rc = pe_auth_need_check(r, m.route->need, p);
            if (rc == OK) /* an unverified user's API key opens nothing (PEEmailVerification) */
                rc = pe_email_gate(r, p);
            if (rc != OK)
                return rc;
        }
        return ((pe_handler_fn *)m.route->handler)(&cx);
    case PE_ROUTE_BAD_METHOD:
        apr_table_setn(r->err_headers_out, "Allow", pe_route_allow_header(r->pool, m.allowed));
        return pe_http_error(r, HTTP_METHOD_NOT_ALLOWED, PE_E_METHOD, "method %s is not allowed here",
                             ap_escape_html(r->pool, r->method));
    default:
        return pe_http_error(r, HTTP_NOT_FOUND, PE_E_NOT_FOUND, "no such route");
    }
}
