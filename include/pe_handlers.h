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
/* operators: their accounts (pe_h_staff.c) and their work on users (pe_h_ops_users.c) */
pe_handler_fn pe_h_admin_login, pe_h_support_login, pe_h_staff_logout, pe_h_admin_create, pe_h_support_create;
pe_handler_fn pe_h_support_profile, pe_h_support_permissions;
pe_handler_fn pe_h_admin_deactivate, pe_h_admin_activate, pe_h_admin_delete;
pe_handler_fn pe_h_staff_deactivate, pe_h_staff_activate, pe_h_staff_delete;
pe_handler_fn pe_h_ops_user_get, pe_h_ops_user_put, pe_h_ops_user_credits, pe_h_ops_user_plan, pe_h_ops_user_delete;
pe_handler_fn pe_h_ops_user_rekey, pe_h_ops_user_password;
/* operators' lists (pe_h_ops_lists.c) */
pe_handler_fn pe_h_ops_users_list, pe_h_ops_events, pe_h_ops_msglogs, pe_h_ops_statistics;
pe_handler_fn pe_h_ops_iplist_get, pe_h_ops_iplist_add, pe_h_ops_iplist_remove;
pe_handler_fn pe_h_ops_autoblocks_get, pe_h_ops_autoblocks_lift;
/* system prompts (pe_h_ops_prompts.c) */
pe_handler_fn pe_h_ops_prompts_get, pe_h_ops_prompts_put, pe_h_ops_prompts_reset;
/* cache clear (pe_h_ops_cache.c) */
pe_handler_fn pe_h_ops_cache_clear;
/* monitoring, ready and metrics (pe_h_monitoring.c) */
pe_handler_fn pe_h_monitoring_health, pe_h_monitoring_queue, pe_h_monitoring_flush, pe_h_monitoring_usage;
pe_handler_fn pe_h_ready, pe_h_metrics;
void pe_h_monitoring_child_init(apr_pool_t *pchild);

#endif
