/*
 * pe_routes.c: the route table. Order matters only among patterns that can match the same
 * path: put literal routes before placeholder routes (/users/stats before /users/{id}).
 */
#include "pe_handlers.h"
#include "pe_hooks.h"

const pe_route_t pe_routes[] = {
    /* core */
    {PE_M_GET, "/", PE_G_CORE, pe_h_root},
    {PE_M_GET, "/health", PE_G_CORE, pe_h_health},

    /* users */

    /* prompt and openai (completions) */

    /* batch */

    /* monitoring */

    /* diag */
    {PE_M_POST, "/v1/diag/echo", PE_G_DIAG, pe_h_diag_echo},
};

const int pe_routes_count = (int)(sizeof(pe_routes) / sizeof(pe_routes[0]));
