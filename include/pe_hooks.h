/* pe_hooks.h: hook entry points (src/apache/pe_hooks_*.c) and the route table. */
#ifndef PE_HOOKS_H
#define PE_HOOKS_H

#include "httpd.h"
#include "http_config.h"
#include "pe_route.h"

#define PE_HANDLER_NAME "promptenchanter"

int pe_pre_config(apr_pool_t *pconf, apr_pool_t *plog, apr_pool_t *ptemp);
void pe_test_config(apr_pool_t *pconf, server_rec *s);
int pe_post_config(apr_pool_t *pconf, apr_pool_t *plog, apr_pool_t *ptemp, server_rec *s);
void pe_child_init(apr_pool_t *pchild, server_rec *s);
void pe_optional_fn_retrieve(void);
int pe_handler(request_rec *r);
/** The path the route table sees: r->uri without PEBaseURI; NULL when outside the base. */
const char *pe_handler_route_path(request_rec *r);

/* The route table (src/apache/pe_routes.c). */
extern const pe_route_t pe_routes[];
extern const int pe_routes_count;

#endif
