/*
 * pe_monitor_config.c: the monitoring directives (include/pe_config_monitor.h).
 */
#include "pe_config.h"
#include "pe_parse.h"

#include <apr_strings.h>

const char *pe_monitor_cmd_metrics(cmd_parms *cmd, void *dconf, int on)
{
    const char *err = pe_config_global_only(cmd);

    if (err)
        return err;
    pe_config_srv(cmd->server)->metrics_on = on;
    return NULL;
}

const char *pe_monitor_cmd_duration(cmd_parms *cmd, void *dconf, const char *arg)
{
    pe_srv_conf_t *sc = pe_config_srv(cmd->server);
    long long v;
    const char *err = cmd->info ? pe_parse_duration_ms(cmd->pool, arg, 0, 3600000LL, &v)
                                : pe_parse_duration_ms(cmd->pool, arg, 50, 60000LL, &v);

    if (err)
        return apr_psprintf(cmd->pool, "%s: %s", cmd->cmd->name, err);
    if (cmd->info)
        sc->health_cache_ms = v;
    else
        sc->health_timeout_ms = v;
    return NULL;
}

const char *pe_monitor_cmd_access(cmd_parms *cmd, void *dconf, const char *arg)
{
    pe_dir_conf_t *dc = dconf;

    if (!strcasecmp(arg, "admin"))
        dc->monitor_access = PE_MONITOR_ACCESS_ADMIN;
    else if (!strcasecmp(arg, "location"))
        dc->monitor_access = PE_MONITOR_ACCESS_LOCATION;
    else
        return apr_psprintf(cmd->pool, "%s: '%s' is neither admin nor location", cmd->cmd->name, arg);
    return NULL;
}
