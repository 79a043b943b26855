/* pe_handlers.h: route handlers, one file per route group under src/apache/pe_h_*.c. */
#ifndef PE_HANDLERS_H
#define PE_HANDLERS_H

#include "pe_http.h"

/* core (pe_h_core.c) */
pe_handler_fn pe_h_root, pe_h_health;
/* diag (pe_h_core.c) */
pe_handler_fn pe_h_diag_echo;
/* users (pe_h_users.c) */
pe_handler_fn pe_h_users_register, pe_h_users_login, pe_h_users_refresh, pe_h_users_logout;
pe_handler_fn pe_h_users_profile_get, pe_h_users_profile_put, pe_h_users_apikey_get, pe_h_users_apikey_regenerate;
pe_handler_fn pe_h_users_email, pe_h_users_password, pe_h_users_delete;
/* prompt and openai (pe_h_completion.c) */
pe_handler_fn pe_h_prompt_completions, pe_h_chat_completions, pe_h_models;
/* batch (pe_h_batch.c) */
pe_handler_fn pe_h_batch_process;
/* monitoring, ready and metrics (pe_h_monitoring.c) */
pe_handler_fn pe_h_monitoring_health, pe_h_monitoring_queue, pe_h_monitoring_flush, pe_h_monitoring_usage;
pe_handler_fn pe_h_ready, pe_h_metrics;
void pe_h_monitoring_child_init(apr_pool_t *pchild);

#endif
