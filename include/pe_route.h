/*
 * pe_route.h: the route table and its matcher (httpd-free).
 *
 * A route is {methods, path pattern, group, handler}. Patterns are literal segments and
 * "{name}" placeholders that match exactly one non-empty segment. Which groups a location
 * serves is per-directory configuration (PEApi), so the admin decides where each group lives.
 */
#ifndef PE_ROUTE_H
#define PE_ROUTE_H

#include <apr_pools.h>

/* Method bits (a route may accept several). */
#define PE_M_GET 0x01u
#define PE_M_POST 0x02u
#define PE_M_PUT 0x04u
#define PE_M_DELETE 0x08u
#define PE_M_PATCH 0x10u
#define PE_M_HEAD 0x20u /* answered by GET routes, as httpd does */

/* Route groups, named in PEApi. Keep pe_route_group_names in step. */
#define PE_G_CORE 0x001u       /* GET /, GET /health */
#define PE_G_USERS 0x002u      /* /v1/users/... */
#define PE_G_EMAIL 0x004u      /* /v1/email/... */
#define PE_G_PROMPT 0x008u     /* /v1/prompt/... */
#define PE_G_OPENAI 0x010u     /* /v1/chat/completions, /v1/models */
#define PE_G_BATCH 0x020u      /* /v1/batch/... */
#define PE_G_ADMIN 0x040u      /* /v1/admin-panel/... */
#define PE_G_SUPPORT 0x080u    /* /v1/support/... */
#define PE_G_MONITORING 0x100u /* /v1/monitoring/... */
#define PE_G_DIAG 0x200u       /* /v1/diag/...: diagnostics, never in "all" */
#define PE_G_OPENAPI 0x400u    /* GET /openapi.json: the OpenAPI document of the groups served */
#define PE_G_ALL 0x5ffu        /* what "PEApi all" (and an unset PEApi) serves: all but diag */

/* Credentials a route accepts (route table "auth" bits); 0 = no authentication. */
#define PE_AUTH_USER_SESSION 0x01u /* a user's session token (from login) */
#define PE_AUTH_USER_KEY 0x02u     /* a user's API key (pe-...) */
#define PE_AUTH_ADMIN 0x04u        /* an admin's session token */
#define PE_AUTH_SUPPORT 0x08u      /* a support-staff session token */

#define PE_ROUTE_MAX_PARAMS 4

typedef struct pe_route_t {
    unsigned methods;    /* PE_M_* bits */
    const char *pattern; /* "/v1/admin-panel/users/{user_id}" */
    unsigned group;      /* one PE_G_* bit */
    const void *handler; /* glue handler, opaque here */
    unsigned auth;       /* PE_AUTH_* bits the route accepts; 0 = open */
} pe_route_t;

typedef struct pe_route_match_t {
    const pe_route_t *route;
    int nparams;
    const char *names[PE_ROUTE_MAX_PARAMS];
    const char *values[PE_ROUTE_MAX_PARAMS]; /* copies in the pool */
    unsigned allowed;                          /* methods of the routes whose path matched */
} pe_route_match_t;

typedef enum { PE_ROUTE_OK = 0, PE_ROUTE_NOT_FOUND, PE_ROUTE_BAD_METHOD } pe_route_result_e;

/** Method name -> PE_M_* bit (0 for a method no route serves). */
unsigned pe_route_method_bit(const char *method);

/**
 * Find the route for method/path among the routes of the enabled groups.
 * The first route in table order whose pattern and method match wins; if a pattern matched
 * but no method did, the result is PE_ROUTE_BAD_METHOD with m->allowed set (for Allow:).
 */
pe_route_result_e pe_route_match(apr_pool_t *p, const pe_route_t *table, int n, unsigned groups,
                                 unsigned method, const char *path, pe_route_match_t *m);

/** "GET, HEAD, POST" for an allowed-methods mask, in p. */
const char *pe_route_allow_header(apr_pool_t *p, unsigned allowed);

/** Value of a path placeholder, or NULL. */
const char *pe_route_param(const pe_route_match_t *m, const char *name);

/** PEApi word -> group bits (0 if unknown); "all" gives PE_G_ALL. */
unsigned pe_route_group_bit(const char *name);

/** Space-separated list of the PEApi words, for error messages and docs. */
const char *pe_route_group_names(void);

#endif
