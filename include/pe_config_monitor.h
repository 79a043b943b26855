/*
 * pe_config_monitor.h: the monitoring concern's configuration, spliced into pe_config.h.
 * PE_SRV_MONITOR_MEMBERS / PE_DIR_MONITOR_MEMBERS follow pe_config.h's X(type, name, unset, default);
 * PE_MONITOR_CMDS are its command_rec entries (each followed by a comma), whose handlers
 * src/apache/pe_monitor_config.c defines. docs/configuration.md ("Monitoring") documents them.
 */
#ifndef PE_CONFIG_MONITOR_H
#define PE_CONFIG_MONITOR_H

/* Per virtual host (PEMetrics: process-wide). Times in milliseconds. */
#define PE_SRV_MONITOR_MEMBERS(X)                                                                  \
    X(int, metrics_on, -1, 1)                                                                      \
    X(long long, health_timeout_ms, -1, 2000)                                                      \
    X(long long, health_cache_ms, -1, 5000)

/* Per directory: who sees the admin parts of the monitoring routes. */
#define PE_MONITOR_ACCESS_ADMIN 0    /* an administrator's session */
#define PE_MONITOR_ACCESS_LOCATION 1 /* whoever this location admits (Require ...) */
#define PE_DIR_MONITOR_MEMBERS(X) X(int, monitor_access, -1, PE_MONITOR_ACCESS_ADMIN)

/** "PEMetrics On|Off". */
const char *pe_monitor_cmd_metrics(cmd_parms *cmd, void *dconf, int on);
/** "PEHealthTimeout duration", "PEHealthCacheTime duration" (cmd->info: 0 or 1). */
const char *pe_monitor_cmd_duration(cmd_parms *cmd, void *dconf, const char *arg);
/** "PEMonitorAccess admin|location". */
const char *pe_monitor_cmd_access(cmd_parms *cmd, void *dconf, const char *arg);

#define PE_MONITOR_CMDS                                                                                              \
    AP_INIT_FLAG("PEMetrics", pe_monitor_cmd_metrics, NULL, RSRC_CONF,                                               \
                 "On: requests, upstream calls, tokens, cache and refusals are counted for PEApi metrics "          \
                 "(default On)"),                                                                                    \
    AP_INIT_TAKE1("PEHealthTimeout", pe_monitor_cmd_duration, (void *)0, RSRC_CONF,                                  \
                  "Time limit of each readiness check of a remote component (default 2s)"),                         \
    AP_INIT_TAKE1("PEHealthCacheTime", pe_monitor_cmd_duration, (void *)1, RSRC_CONF,                                \
                  "How long the AI service's reachability is reused by readiness checks (default 5s)"),             \
    AP_INIT_TAKE1("PEMonitorAccess", pe_monitor_cmd_access, NULL, RSRC_CONF | ACCESS_CONF,                            \
                  "Who gets component details, queue status, flush and global usage: admin (an administrator's "    \
                  "session) or location (whoever this location admits) (default admin)"),

#endif
