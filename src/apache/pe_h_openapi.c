/*
 * pe_h_openapi.c: GET /openapi.json (group openapi): the OpenAPI 3.1 document of the API
 * (docs/openapi.json, embedded at build time), limited to the routes this location serves.
 */
#include "pe_config.h"
#include "pe_handlers.h"
#include "pe_hooks.h"
#include "pe_log.h"

#include "http_protocol.h"
#include <apr_lib.h>
#include <apr_strings.h>

#include "pe_openapi_doc.h"

/* The PE_M_* bit of an OpenAPI operation key ("get", "post"...), 0 for other keys. */
static unsigned method_bit(const char *key)
{
    char up[8];
    apr_size_t i;

    for (i = 0; key[i] && i < sizeof(up) - 1; i++)
        up[i] = (char)apr_toupper(key[i]);
    up[i] = '\0';
    return key[i] ? 0 : pe_route_method_bit(up);
}

/* Drop the operations (and paths) of route groups this location does not serve. */
static void keep_served(apr_pool_t *p, json_t *paths, unsigned groups)
{
    const char *path, *key;
    json_t *item, *o;
    void *tmp, *tmp2;

    json_object_foreach_safe(paths, tmp, path, item) {
        int ops = 0;

        json_object_foreach_safe(item, tmp2, key, o) {
            unsigned m = method_bit(key);
            pe_route_match_t rm;

            if (!m)
                continue;
            /* NB: "{id}" in a documented path is a segment like any other for the matcher. */
            if (pe_route_match(p, pe_routes, pe_routes_count, groups, m, path, &rm) == PE_ROUTE_OK)
                ops++;
            else
                json_object_del(item, key);
        }
        if (!ops)
            json_object_del(paths, path);
    }
}

/* GET /openapi.json. */
int pe_h_openapi(pe_ctx_t *cx)
{
    request_rec *r = cx->r;
    pe_dir_conf_t *dc = pe_config_dir(r);
    const char *base = pe_dir_base_uri(dc), *err;
    json_t *doc;

    if (pe_json_parse(r->pool, pe_openapi_doc, sizeof(pe_openapi_doc) - 1, &doc, &err) != 0) {
        pe_rlog(r, APLOG_ERR, 0, PE_LOGNO(00110) "the embedded OpenAPI document does not parse: %s", err);
        return pe_http_error(r, HTTP_INTERNAL_SERVER_ERROR, PE_E_INTERNAL, "internal error");
    }
    keep_served(r->pool, json_object_get(doc, "paths"), (unsigned)pe_dir_api_groups(dc));
    json_object_set_new(doc, "servers", json_pack("[{s:s}]", "url", *base ? base : "/"));
    return pe_http_send_json(r, HTTP_OK, doc);
}
