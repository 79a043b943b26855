/*
 * pe_config_access.h: the access concern's configuration, spliced into pe_config.h.
 * PE_SRV_ACCESS_MEMBERS / PE_DIR_ACCESS_MEMBERS follow pe_config.h's X(type, name, unset, default);
 * PE_ACCESS_CMDS are its command_rec entries (each followed by a comma), whose handler functions
 * this header declares and src/apache/pe_access_config.c defines. docs/configuration.md
 * ("Access layer") documents every directive.
 *
 * Limits, auto-block and the memcached servers are server settings; the shared table, its
 * mutex, the memcached client and the stored-list cache are made once per process from the main
 * server's values (PEAccessTableSize, PEAccessServers, PEAccessRefresh). Whether the layer runs,
 * whitelist mode and exemptions are per location.
 */
#ifndef PE_CONFIG_ACCESS_H
#define PE_CONFIG_ACCESS_H

#include "pe_access.h"

/** One PEPrincipalRateLimit line: a plan ("*" for every plan without its own line) and its limit. */
typedef struct pe_access_plan_limit_t {
    const char *plan;
    pe_access_limit_t limit;
} pe_access_plan_limit_t;

/* Per virtual host. Times in milliseconds. */
#define PE_SRV_ACCESS_MEMBERS(X)                                                                   \
    X(const pe_access_limit_t *, ip_limit, NULL, &pe_access_ip_limit_default)                      \
    X(apr_array_header_t *, principal_limits, NULL, NULL)                                          \
    X(const pe_access_strikes_t *, autoblock, NULL, &pe_access_strikes_default)                    \
    X(long long, access_refresh_ms, -1, 10000)                                                     \
    X(const char *, access_servers, NULL, NULL)                                                    \
    X(int, access_table_size, -1, 16384)

/* Per location. */
#define PE_DIR_ACCESS_MEMBERS(X)                                                                   \
    X(int, access_on, -1, 1)                                                                       \
    X(int, ip_whitelist, -1, 0)                                                                    \
    X(int, access_exempt, -1, 0)

/** "PEAccess On|Off", "PEIPWhitelist On|Off": cmd->info is the pe_dir_conf_t member's offset. */
const char *pe_access_cmd_dir_flag(cmd_parms *cmd, void *dconf, int on);
/** "PEAccessExempt word... | none". */
const char *pe_access_cmd_exempt(cmd_parms *cmd, void *dconf, const char *line);
/** "PEIPRateLimit n/unit [burst=N] [algorithm=NAME] | Off". */
const char *pe_access_cmd_ip_limit(cmd_parms *cmd, void *dconf, const char *line);
/** "PEPrincipalRateLimit plan|* n/unit [burst=N] [algorithm=NAME] | plan|* Off". */
const char *pe_access_cmd_principal_limit(cmd_parms *cmd, void *dconf, const char *line);
/** "PEAutoBlock failures window block-for | Off". */
const char *pe_access_cmd_autoblock(cmd_parms *cmd, void *dconf, const char *line);
/** "PEAccessRefresh duration". */
const char *pe_access_cmd_refresh(cmd_parms *cmd, void *dconf, const char *arg);
/** "PEAccessServers host:port... | none". */
const char *pe_access_cmd_servers(cmd_parms *cmd, void *dconf, const char *line);
/** "PEAccessTableSize n". */
const char *pe_access_cmd_table_size(cmd_parms *cmd, void *dconf, const char *arg);

#define PE_ACCESS_CMDS                                                                                               \
    AP_INIT_FLAG("PEAccess", pe_access_cmd_dir_flag, (void *)APR_OFFSETOF(pe_dir_conf_t, access_on),                 \
                 RSRC_CONF | ACCESS_CONF, "On: firewall, whitelist and rate limits apply here (default On)"),       \
    AP_INIT_FLAG("PEIPWhitelist", pe_access_cmd_dir_flag, (void *)APR_OFFSETOF(pe_dir_conf_t, ip_whitelist),         \
                 RSRC_CONF | ACCESS_CONF, "On: only addresses on the stored whitelist get in (default Off)"),        \
    AP_INIT_RAW_ARGS("PEAccessExempt", pe_access_cmd_exempt, NULL, RSRC_CONF | ACCESS_CONF,                          \
                     "What the per-address rate limit spares: health, whitelisted, admin, route groups (default none)"), \
    AP_INIT_RAW_ARGS("PEIPRateLimit", pe_access_cmd_ip_limit, NULL, RSRC_CONF,                                       \
                     "Requests per client address: n/unit [burst=N] [algorithm=NAME] or Off (default 100/min burst=20)"), \
    AP_INIT_RAW_ARGS("PEPrincipalRateLimit", pe_access_cmd_principal_limit, NULL, RSRC_CONF,                         \
                     "Requests per user or API key of a plan: plan|* n/unit [burst=N] [algorithm=NAME], or plan|* Off"), \
    AP_INIT_RAW_ARGS("PEAutoBlock", pe_access_cmd_autoblock, NULL, RSRC_CONF,                                        \
                     "Block an address after failed authentications: failures window block-for, or Off (default 10 15m 15m)"), \
    AP_INIT_TAKE1("PEAccessRefresh", pe_access_cmd_refresh, NULL, RSRC_CONF,                                         \
                  "How long a process uses the stored blocks and whitelist before reading them again (default 10s)"), \
    AP_INIT_RAW_ARGS("PEAccessServers", pe_access_cmd_servers, NULL, RSRC_CONF,                                      \
                     "memcached servers sharing rate-limit counters across nodes, or none (default: PECacheServers)"), \
    AP_INIT_TAKE1("PEAccessTableSize", pe_access_cmd_table_size, NULL, RSRC_CONF,                                    \
                  "Entries of the shared-memory table of counters and blocks (default 16384)"),

#endif
