/*
 * pe_routes.c: the route table. Order matters only among patterns that can match the same
 * path: put literal routes before placeholder routes (/users/stats before /users/{id}).
 */
#include "pe_email_ap.h"
#include "pe_handlers.h"
#include "pe_hooks.h"
#include "pe_staff.h"

const pe_route_t pe_routes[] = {
    /* core */
    {PE_M_GET, "/", PE_G_CORE, pe_h_root},
    {PE_M_GET, "/health", PE_G_CORE, pe_h_health},
    {PE_M_GET, "/openapi.json", PE_G_OPENAPI, pe_h_openapi},

    /* users */
    {PE_M_POST, "/v1/users/register", PE_G_USERS, pe_h_users_register, 0},
    {PE_M_POST, "/v1/users/login", PE_G_USERS, pe_h_users_login, 0},
    {PE_M_POST, "/v1/users/refresh", PE_G_USERS, pe_h_users_refresh, 0},
    {PE_M_POST, "/v1/users/logout", PE_G_USERS, pe_h_users_logout, PE_AUTH_USER_SESSION},
    {PE_M_GET, "/v1/users/profile", PE_G_USERS, pe_h_users_profile_get, PE_AUTH_USER_SESSION},
    {PE_M_PUT, "/v1/users/profile", PE_G_USERS, pe_h_users_profile_put, PE_AUTH_USER_SESSION},
    {PE_M_GET, "/v1/users/api-key", PE_G_USERS, pe_h_users_apikey_get, PE_AUTH_USER_SESSION},
    {PE_M_POST, "/v1/users/api-key/regenerate", PE_G_USERS, pe_h_users_apikey_regenerate, PE_AUTH_USER_SESSION},
    {PE_M_PUT, "/v1/users/email", PE_G_USERS, pe_h_users_email, PE_AUTH_USER_SESSION},
    {PE_M_PUT, "/v1/users/password", PE_G_USERS, pe_h_users_password, PE_AUTH_USER_SESSION},
    {PE_M_DELETE, "/v1/users/account", PE_G_USERS, pe_h_users_delete, PE_AUTH_USER_SESSION},

    /* email (verification codes) */
    {PE_M_POST, "/v1/email/send-verification", PE_G_EMAIL, pe_h_email_send, PE_AUTH_USER_SESSION},
    {PE_M_POST, "/v1/email/verify", PE_G_EMAIL, pe_h_email_verify, PE_AUTH_USER_SESSION},
    {PE_M_POST, "/v1/email/resend", PE_G_EMAIL, pe_h_email_resend, PE_AUTH_USER_SESSION},
    {PE_M_GET, "/v1/email/status", PE_G_EMAIL, pe_h_email_status, PE_AUTH_USER_SESSION},

    /* prompt and openai (completions) */
    {PE_M_POST, "/v1/prompt/completions", PE_G_PROMPT, pe_h_prompt_completions, PE_AUTH_USER_KEY},
    {PE_M_POST, "/v1/chat/completions", PE_G_OPENAI, pe_h_chat_completions, PE_AUTH_USER_KEY},
    {PE_M_GET, "/v1/models", PE_G_OPENAI, pe_h_models, PE_AUTH_USER_KEY},
    {PE_M_GET, "/v1/models/{id}", PE_G_OPENAI, pe_h_model_get, PE_AUTH_USER_KEY},

    /* batch */
    {PE_M_POST, "/v1/batch/process", PE_G_BATCH, pe_h_batch_process, PE_AUTH_USER_KEY},

    /* admin-panel (SPEC 10.1): the action an operator must be allowed is the last column (pe_staff.h) */
    {PE_M_POST, "/v1/admin-panel/login", PE_G_ADMIN, pe_h_admin_login, 0, 0},
    {PE_M_POST, "/v1/admin-panel/logout", PE_G_ADMIN, pe_h_staff_logout, PE_AUTH_ADMIN, 0},
    {PE_M_POST, "/v1/admin-panel/create-admin", PE_G_ADMIN, pe_h_admin_create, PE_AUTH_ADMIN, PE_ACT_CREATE_ADMINS},
    {PE_M_GET, "/v1/admin-panel/users", PE_G_ADMIN, pe_h_ops_users_list, PE_AUTH_ADMIN, PE_ACT_VIEW_USERS},
    {PE_M_GET, "/v1/admin-panel/statistics", PE_G_ADMIN, pe_h_ops_statistics, PE_AUTH_ADMIN, PE_ACT_VIEW_STATISTICS},
    {PE_M_GET, "/v1/admin-panel/security-logs", PE_G_ADMIN, pe_h_ops_events, PE_AUTH_ADMIN,
     PE_ACT_VIEW_SECURITY_LOGS},
    {PE_M_GET, "/v1/admin-panel/message-logs/{user_id}", PE_G_ADMIN, pe_h_ops_msglogs, PE_AUTH_ADMIN,
     PE_ACT_VIEW_MESSAGES},
    {PE_M_GET, "/v1/admin-panel/ip-whitelist", PE_G_ADMIN, pe_h_ops_iplist_get, PE_AUTH_ADMIN, PE_ACT_MANAGE_ACCESS},
    {PE_M_POST, "/v1/admin-panel/ip-whitelist", PE_G_ADMIN, pe_h_ops_iplist_add, PE_AUTH_ADMIN, PE_ACT_MANAGE_ACCESS},
    {PE_M_DELETE, "/v1/admin-panel/ip-whitelist/{entry_id}", PE_G_ADMIN, pe_h_ops_iplist_remove, PE_AUTH_ADMIN,
     PE_ACT_MANAGE_ACCESS},
    {PE_M_GET, "/v1/admin-panel/ip-blocks", PE_G_ADMIN, pe_h_ops_iplist_get, PE_AUTH_ADMIN, PE_ACT_MANAGE_ACCESS},
    {PE_M_POST, "/v1/admin-panel/ip-blocks", PE_G_ADMIN, pe_h_ops_iplist_add, PE_AUTH_ADMIN, PE_ACT_MANAGE_ACCESS},
    {PE_M_DELETE, "/v1/admin-panel/ip-blocks/{entry_id}", PE_G_ADMIN, pe_h_ops_iplist_remove, PE_AUTH_ADMIN,
     PE_ACT_MANAGE_ACCESS},
    {PE_M_GET, "/v1/admin-panel/auto-blocks", PE_G_ADMIN, pe_h_ops_autoblocks_get, PE_AUTH_ADMIN, PE_ACT_MANAGE_ACCESS},
    {PE_M_DELETE, "/v1/admin-panel/auto-blocks/{ip}", PE_G_ADMIN, pe_h_ops_autoblocks_lift, PE_AUTH_ADMIN,
     PE_ACT_MANAGE_ACCESS},
    {PE_M_GET, "/v1/admin-panel/users/{user_id}", PE_G_ADMIN, pe_h_ops_user_get, PE_AUTH_ADMIN, PE_ACT_VIEW_USERS},
    {PE_M_PUT, "/v1/admin-panel/users/{user_id}", PE_G_ADMIN, pe_h_ops_user_put, PE_AUTH_ADMIN, PE_ACT_UPDATE_USERS},
    {PE_M_DELETE, "/v1/admin-panel/users/{user_id}", PE_G_ADMIN, pe_h_ops_user_delete, PE_AUTH_ADMIN,
     PE_ACT_DELETE_USERS},
    {PE_M_POST, "/v1/admin-panel/users/{user_id}/regenerate-api-key", PE_G_ADMIN, pe_h_ops_user_rekey, PE_AUTH_ADMIN,
     PE_ACT_MANAGE_API_KEYS},
    /* operators' accounts: administrators (super-administrators), support staff (administrators) */
    {PE_M_POST, "/v1/admin-panel/admins/{admin_id}/deactivate", PE_G_ADMIN, pe_h_admin_deactivate, PE_AUTH_ADMIN,
     PE_ACT_MANAGE_ADMINS},
    {PE_M_POST, "/v1/admin-panel/admins/{admin_id}/activate", PE_G_ADMIN, pe_h_admin_activate, PE_AUTH_ADMIN,
     PE_ACT_MANAGE_ADMINS},
    {PE_M_DELETE, "/v1/admin-panel/admins/{admin_id}", PE_G_ADMIN, pe_h_admin_delete, PE_AUTH_ADMIN,
     PE_ACT_MANAGE_ADMINS},
    {PE_M_POST, "/v1/admin-panel/support-staff/{staff_id}/deactivate", PE_G_ADMIN, pe_h_staff_deactivate,
     PE_AUTH_ADMIN, PE_ACT_MANAGE_STAFF},
    {PE_M_POST, "/v1/admin-panel/support-staff/{staff_id}/activate", PE_G_ADMIN, pe_h_staff_activate, PE_AUTH_ADMIN,
     PE_ACT_MANAGE_STAFF},
    {PE_M_DELETE, "/v1/admin-panel/support-staff/{staff_id}", PE_G_ADMIN, pe_h_staff_delete, PE_AUTH_ADMIN,
     PE_ACT_MANAGE_STAFF},

    /* support (SPEC 10.2) */
    {PE_M_POST, "/v1/support/login", PE_G_SUPPORT, pe_h_support_login, 0, 0},
    {PE_M_POST, "/v1/support/logout", PE_G_SUPPORT, pe_h_staff_logout, PE_AUTH_SUPPORT, 0},
    {PE_M_POST, "/v1/support/create", PE_G_SUPPORT, pe_h_support_create, PE_AUTH_ADMIN, PE_ACT_CREATE_STAFF},
    {PE_M_GET, "/v1/support/profile", PE_G_SUPPORT, pe_h_support_profile, PE_AUTH_SUPPORT, 0},
    {PE_M_GET, "/v1/support/permissions", PE_G_SUPPORT, pe_h_support_permissions, PE_AUTH_SUPPORT, 0},
    {PE_M_GET, "/v1/support/users", PE_G_SUPPORT, pe_h_ops_users_list, PE_AUTH_SUPPORT, PE_ACT_VIEW_USERS},
    {PE_M_GET, "/v1/support/users/{user_id}", PE_G_SUPPORT, pe_h_ops_user_get, PE_AUTH_SUPPORT, PE_ACT_VIEW_USERS},
    {PE_M_PUT, "/v1/support/users/{user_id}", PE_G_SUPPORT, pe_h_ops_user_put, PE_AUTH_SUPPORT, PE_ACT_UPDATE_USERS},
    {PE_M_POST, "/v1/support/users/{user_id}/reset-password", PE_G_SUPPORT, pe_h_ops_user_password, PE_AUTH_SUPPORT,
     PE_ACT_RESET_PASSWORDS},
    {PE_M_PUT, "/v1/support/users/{user_id}/credits", PE_G_SUPPORT, pe_h_ops_user_credits, PE_AUTH_SUPPORT,
     PE_ACT_UPDATE_CREDITS},
    {PE_M_PUT, "/v1/support/users/{user_id}/plan", PE_G_SUPPORT, pe_h_ops_user_plan, PE_AUTH_SUPPORT,
     PE_ACT_UPDATE_PLANS},
    {PE_M_POST, "/v1/support/users/{user_id}/regenerate-api-key", PE_G_SUPPORT, pe_h_ops_user_rekey, PE_AUTH_SUPPORT,
     PE_ACT_MANAGE_API_KEYS},

    /* admin (SPEC 10.4): administrators' system settings and the cache clear */
    {PE_M_GET, "/v1/admin/system-prompts", PE_G_SYSADMIN, pe_h_ops_prompts_get, PE_AUTH_ADMIN, PE_ACT_SYSTEM},
    {PE_M_PUT, "/v1/admin/system-prompts", PE_G_SYSADMIN, pe_h_ops_prompts_put, PE_AUTH_ADMIN, PE_ACT_SYSTEM},
    {PE_M_DELETE, "/v1/admin/system-prompts/{r_type}", PE_G_SYSADMIN, pe_h_ops_prompts_reset, PE_AUTH_ADMIN,
     PE_ACT_SYSTEM},
    {PE_M_DELETE, "/v1/admin/cache", PE_G_SYSADMIN, pe_h_ops_cache_clear, PE_AUTH_ADMIN, PE_ACT_SYSTEM},

    /* monitoring (the admin parts are checked by the handlers: PEMonitorAccess) */
    {PE_M_GET, "/v1/monitoring/health", PE_G_MONITORING, pe_h_monitoring_health, 0},
    {PE_M_GET, "/v1/monitoring/queue-status", PE_G_MONITORING, pe_h_monitoring_queue, 0},
    {PE_M_POST, "/v1/monitoring/flush-logs", PE_G_MONITORING, pe_h_monitoring_flush, 0},
    {PE_M_GET, "/v1/monitoring/usage", PE_G_MONITORING, pe_h_monitoring_usage, 0},
    /* readiness for load balancers, and the Prometheus exposition: mounted where the operator says */
    {PE_M_GET, "/ready", PE_G_READY, pe_h_ready, 0},
    {PE_M_GET, "/metrics", PE_G_METRICS, pe_h_metrics, 0},

    /* diag */
    {PE_M_POST, "/v1/diag/echo", PE_G_DIAG, pe_h_diag_echo},
};

const int pe_routes_count = (int)(sizeof(pe_routes) / sizeof(pe_routes[0]));
