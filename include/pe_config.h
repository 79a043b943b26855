/*
 * pe_config.h: directives, per-server and per-directory configuration.
 *
 * Each scope's members are listed once in an X-macro that generates the struct, the
 * "unset" values of create, the merge (add wins when set) and typed getters that apply the
 * default, so no member can be forgotten in a merge and no caller sees an unset sentinel.
 * X(type, name, unset, default)
 */
#ifndef PE_CONFIG_H
#define PE_CONFIG_H

#include "httpd.h"
#include "http_config.h"

#include "pe_config_access.h"
#include "pe_config_completion.h"
#include "pe_config_email.h"
#include "pe_config_research.h"
#include "pe_config_monitor.h"

/* Per <Location>/<Directory>/.htaccess. */
#define PE_DIR_MEMBERS(X)                                                                          \
    X(int, api_groups, -1, (int)PE_G_ALL)                                                          \
    X(apr_off_t, max_body, -1, (apr_off_t)(1024 * 1024))                                           \
    X(const char *, base_uri, NULL, "")                                                            \
    PE_DIR_ACCESS_MEMBERS(X)                                                                       \
    PE_DIR_COMPLETION_MEMBERS(X)                                                                   \
    PE_DIR_RESEARCH_MEMBERS(X)                                                                     \
    PE_DIR_MONITOR_MEMBERS(X)

/* Per virtual host. */
#define PE_SRV_MEMBERS(X)                                                                          \
    X(const char *, secret_key_file, NULL, NULL)                                                   \
    X(const char *, encryption_key_file, NULL, NULL)                                               \
    X(const char *, encryption_key_id, NULL, "k1")                                                 \
    X(const char *, old_encryption_key_file, NULL, NULL)                                           \
    X(const char *, old_encryption_key_id, NULL, NULL)                                             \
    X(int, argon2_t, -1, 3)                                                                        \
    X(int, argon2_m_kib, -1, 65536)                                                                \
    X(int, argon2_p, -1, 1)                                                                        \
    X(int, hash_max, -1, 4)                                                                        \
    X(long long, hash_wait_ms, -1, 2000)                                                           \
    X(int, login_max_failures, -1, 5)                                                              \
    X(long long, login_lockout_ms, -1, 3600000LL)                                                  \
    X(long long, session_ttl_ms, -1, 86400000LL)                                                   \
    X(long long, refresh_ttl_ms, -1, 30LL * 86400000LL)                                            \
    X(int, registration, -1, 1)                                                                    \
    X(long long, default_credits, -1, 5)                                                           \
    X(long long, default_conv_limit, -1, 10)                                                       \
    X(const char *, default_level, NULL, "low")                                                    \
    X(const char *, default_rtypes, NULL, "bpe,tot")                                               \
    X(const char *, common_password_file, NULL, NULL)                                              \
    X(long long, admin_session_ttl_ms, -1, 86400000LL)                                             \
    X(long long, support_session_ttl_ms, -1, 43200000LL)                                           \
    PE_SRV_ACCESS_MEMBERS(X)                                                                       \
    PE_SRV_COMPLETION_MEMBERS(X)                                                                   \
    PE_SRV_RESEARCH_MEMBERS(X)                                                                     \
    PE_SRV_MONITOR_MEMBERS(X)                                                                      \
    PE_SRV_EMAIL_MEMBERS(X)

#define PE_X_FIELD(t, n, u, d) t n;
typedef struct pe_dir_conf_t {
    PE_DIR_MEMBERS(PE_X_FIELD)
} pe_dir_conf_t;

typedef struct pe_srv_conf_t {
    PE_SRV_MEMBERS(PE_X_FIELD)
} pe_srv_conf_t;
#undef PE_X_FIELD

#include "pe_route.h"

#define PE_X_DIR_GETTER(t, n, u, d)                                                                \
    static inline t pe_dir_##n(const pe_dir_conf_t *c) { return c->n == (u) ? (d) : c->n; }
#define PE_X_SRV_GETTER(t, n, u, d)                                                                \
    static inline t pe_srv_##n(const pe_srv_conf_t *c) { return c->n == (u) ? (d) : c->n; }
PE_DIR_MEMBERS(PE_X_DIR_GETTER)
PE_SRV_MEMBERS(PE_X_SRV_GETTER)
#undef PE_X_DIR_GETTER
#undef PE_X_SRV_GETTER

extern module AP_MODULE_DECLARE_DATA promptenchanter_module;

/* Directive table (src/apache/pe_config.c). */
extern const command_rec pe_cmds[];

void *pe_config_dir_create(apr_pool_t *p, char *dir);
void *pe_config_dir_merge(apr_pool_t *p, void *base, void *add);
void *pe_config_srv_create(apr_pool_t *p, server_rec *s);
void *pe_config_srv_merge(apr_pool_t *p, void *base, void *add);

/**
 * For a directive handler: the error for a process-wide directive (made once per process from the
 * main server's value: table sizes, cache servers, the message-log writer...) found in a
 * <VirtualHost>, where it would be silently ignored; NULL for any other directive or context.
 */
const char *pe_config_global_only(cmd_parms *cmd);

/** Cross-field and file checks run once in post_config; non-OK makes httpd refuse to start. */
int pe_config_check(apr_pool_t *pconf, apr_pool_t *ptemp, server_rec *s);

static inline pe_dir_conf_t *pe_config_dir(request_rec *r)
{
    return ap_get_module_config(r->per_dir_config, &promptenchanter_module);
}

static inline pe_srv_conf_t *pe_config_srv(server_rec *s)
{
    return ap_get_module_config(s->module_config, &promptenchanter_module);
}

#endif
