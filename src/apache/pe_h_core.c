/* pe_h_core.c: GET / and GET /health (group core) and the diagnostics echo (group diag). */
#include "pe_handlers.h"
#include "pe_version.h"

#include "http_protocol.h"

/* GET /: what this service is. */
int pe_h_root(pe_ctx_t *cx)
{
    json_t *o = pe_json_object(cx->r->pool);

    json_object_set_new(o, "service", json_string(PE_SERVICE_NAME));
    json_object_set_new(o, "version", json_string(PE_VERSION));
    json_object_set_new(o, "status", json_string("running"));
    json_object_set_new(o, "docs", json_string("docs/api.md"));
    json_object_set_new(o, "health", json_string("/health"));
    return pe_http_send_json(cx->r, HTTP_OK, o);
}

/* GET /health: liveness; answers 200 while the process serves requests. */
int pe_h_health(pe_ctx_t *cx)
{
    json_t *o = pe_json_object(cx->r->pool);

    json_object_set_new(o, "status", json_string("healthy"));
    json_object_set_new(o, "service", json_string(PE_SERVICE_NAME));
    json_object_set_new(o, "version", json_string(PE_VERSION));
    return pe_http_send_json(cx->r, HTTP_OK, o);
}

/*
 * POST /v1/diag/echo: reads the body as every JSON route does and returns it with its size,
 * so an operator can check body limits and content types through proxies. Only served where
 * `PEApi diag` is set.
 */
int pe_h_diag_echo(pe_ctx_t *cx)
{
    json_t *body, *o;
    int rc;

    if ((rc = pe_http_read_json(cx->r, &body)) != OK)
        return rc;
    o = pe_json_object(cx->r->pool);
    json_object_set_new(o, "success", json_true());
    json_object_set_new(o, "depth", json_integer(pe_json_depth(body)));
    json_object_set(o, "body", body);
    return pe_http_send_json(cx->r, HTTP_OK, o);
}
