/* pe_handlers.h: route handlers, one file per route group under src/apache/pe_h_*.c. */
#ifndef PE_HANDLERS_H
#define PE_HANDLERS_H

#include "pe_http.h"

/* core (pe_h_core.c) */
pe_handler_fn pe_h_root, pe_h_health;
/* diag (pe_h_core.c) */
pe_handler_fn pe_h_diag_echo;
/* openapi (pe_h_openapi.c) */
pe_handler_fn pe_h_openapi;
/* users (pe_h_users.c) */
pe_handler_fn pe_h_users_register, pe_h_users_login, pe_h_users_refresh, pe_h_users_logout;
pe_handler_fn pe_h_users_profile_get, pe_h_users_profile_put, pe_h_users_apikey_get, pe_h_users_apikey_regenerate;
pe_handler_fn pe_h_users_email, pe_h_users_password, pe_h_users_delete;
/* prompt and openai (pe_h_completion.c) */
pe_handler_fn pe_h_prompt_completions, pe_h_chat_completions, pe_h_models, pe_h_model_get;
/* batch (pe_h_batch.c) */
pe_handler_fn pe_h_batch_process;

#endif
