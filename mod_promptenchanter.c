/*
 * mod_promptenchanter: PromptEnchanter, an AI gateway inside Apache httpd 2.4.
 * This file holds the module record and the hook registrations, nothing else.
 */
#include "httpd.h"
#include "http_config.h"
#include "http_request.h"
#include "http_protocol.h"
#include "mod_auth.h"
#include "mpm_common.h"

#include "pe_access_ap.h"
#include "pe_auth.h"
#include "pe_completion.h"
#include "pe_config.h"
#include "pe_email_ap.h"
#include "pe_http.h"
#include "pe_hooks.h"
#include "pe_monitor_ap.h"
#include "pe_principal_ap.h"
#include "pe_research_ap.h"
#include "pe_store_ap.h"

#if !AP_MODULE_MAGIC_AT_LEAST(20120211, 0)
#error "mod_promptenchanter needs Apache httpd 2.4"
#endif

/* Register the hooks; each calls into one concern. */
static void pe_register_hooks(apr_pool_t *p)
{
    static const char *const after_dbd[] = {"mod_dbd.c", NULL};

    ap_hook_pre_config(pe_pre_config, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_test_config(pe_test_config, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_post_config(pe_post_config, NULL, NULL, APR_HOOK_MIDDLE);
    /* NB: after mod_dbd's child_init, which makes the connection pool the schema check uses. */
    ap_hook_child_init(pe_child_init, after_dbd, NULL, APR_HOOK_MIDDLE);
    ap_hook_optional_fn_retrieve(pe_optional_fn_retrieve, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_check_authn(pe_auth_check_authn, NULL, NULL, APR_HOOK_MIDDLE, AP_AUTH_INTERNAL_PER_CONF);
    pe_auth_register_providers(p);
    ap_hook_handler(pe_handler, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_insert_error_filter(pe_http_insert_error_filter, NULL, NULL, APR_HOOK_MIDDLE);
    pe_http_register_filters();
    /* Each concern registers the hooks it needs (store, access, completions, research): */
    /* store: the PEStore choice of each configuration generation, the pool size check */
    ap_hook_pre_config(pe_store_pre_config, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_post_config(pe_store_post_config, NULL, NULL, APR_HOOK_MIDDLE);
    /* access layer: before authentication (access_checker runs ahead of check_authn) */
    ap_hook_pre_config(pe_access_pre_config, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_access_checker(pe_access_check, NULL, NULL, APR_HOOK_MIDDLE);
    /* completions, cache and conversation logs */
    ap_hook_pre_config(pe_completion_pre_config, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_pre_config(pe_principal_pre_config, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_log_transaction(pe_completion_log_transaction, NULL, NULL, APR_HOOK_MIDDLE);
#if AP_MODULE_MAGIC_AT_LEAST(20120211, 110)
    ap_hook_child_stopping(pe_completion_child_stopping, NULL, NULL, APR_HOOK_MIDDLE);
#endif
    /* research and batch */
    ap_hook_pre_config(pe_research_pre_config, NULL, NULL, APR_HOOK_MIDDLE);
    pe_completion_set_research(pe_research_completion);
    /* monitoring: requests in flight (a handler that runs first and declines), request counters,
     * the mod_status section */
    ap_hook_handler(pe_monitor_handler_first, NULL, NULL, APR_HOOK_REALLY_FIRST);
    ap_hook_log_transaction(pe_monitor_log_transaction, NULL, NULL, APR_HOOK_MIDDLE);
    pe_monitor_register_hooks(p);
    /* e-mail verification: its settings checked at start-up (and by apache2 -t) */
    ap_hook_test_config(pe_email_test_config, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_post_config(pe_email_post_config, NULL, NULL, APR_HOOK_MIDDLE);
}

AP_DECLARE_MODULE(promptenchanter) __attribute__((visibility("default"))) = {
    STANDARD20_MODULE_STUFF,
    pe_config_dir_create,
    pe_config_dir_merge,
    pe_config_srv_create,
    pe_config_srv_merge,
    pe_cmds,
    pe_register_hooks,
    AP_MODULE_FLAG_NONE,
};
