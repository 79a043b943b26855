/* pe_handlers.h: route handlers, one file per route group under src/apache/pe_h_*.c. */
#ifndef PE_HANDLERS_H
#define PE_HANDLERS_H

#include "pe_http.h"

/* core (pe_h_core.c) */
pe_handler_fn pe_h_root, pe_h_health;
/* diag (pe_h_core.c) */
pe_handler_fn pe_h_diag_echo;

#endif
