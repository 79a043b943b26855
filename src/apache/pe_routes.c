/*
 * pe_routes.c: the route table. Order matters only among patterns that can match the same
 * path: put literal routes before placeholder routes (/users/stats before /users/{id}).
 */
#include "pe_email_ap.h"
#include "pe_handlers.h"
#include "pe_hooks.h"

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

    /* monitoring */

    /* diag */
    {PE_M_POST, "/v1/diag/echo", PE_G_DIAG, pe_h_diag_echo},
};

const int pe_routes_count = (int)(sizeof(pe_routes) / sizeof(pe_routes[0]));
