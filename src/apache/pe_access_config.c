/*
 * pe_access_config.c: directive handlers of the access concern. Each checks its value and answers
 * "PEName: reason", so a bad value makes `apache2 -t` fail.
 */
#include "pe_config.h"
#include "pe_memcache.h"
#include "pe_parse.h"

#include <apr_strings.h>

/* "PEName: message" for a handler's error. */
static const char *cmd_err(cmd_parms *cmd, const char *err)
{
    return err ? apr_psprintf(cmd->pool, "%s: %s", cmd->cmd->name, err) : NULL;
}

const char *pe_access_cmd_dir_flag(cmd_parms *cmd, void *dconf, int on)
{
    *(int *)((char *)dconf + (apr_size_t)cmd->info) = on;
    return NULL;
}

const char *pe_access_cmd_exempt(cmd_parms *cmd, void *dconf, const char *line)
{
    pe_dir_conf_t *dc = dconf;
    int mask;
    const char *err = pe_access_exempt_parse(cmd->temp_pool, line, &mask);

    if (err)
        return cmd_err(cmd, err);
    dc->access_exempt = mask;
    return NULL;
}

const char *pe_access_cmd_ip_limit(cmd_parms *cmd, void *dconf, const char *line)
{
    pe_access_limit_t *l = apr_pcalloc(cmd->pool, sizeof(*l));
    const char *err = pe_access_limit_parse(cmd->temp_pool, line, l);

    if (err)
        return cmd_err(cmd, err);
    pe_config_srv(cmd->server)->ip_limit = l;
    return NULL;
}

/* A plan name as stored on users (subscription_plan): 1..50 printable characters, no space. */
static int plan_name_ok(const char *s)
{
    apr_size_t n = strlen(s), i;

    if (n < 1 || n > 50)
        return 0;
    for (i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x21 || s[i] == 0x7f)
            return 0;
    return 1;
}

const char *pe_access_cmd_principal_limit(cmd_parms *cmd, void *dconf, const char *line)
{
    pe_srv_conf_t *sc = pe_config_srv(cmd->server);
    const char *plan = ap_getword_conf(cmd->temp_pool, &line), *err;
    pe_access_plan_limit_t *pl;
    int i;

    if (!*plan || !plan_name_ok(plan))
        return cmd_err(cmd, "start with a plan name (as in subscription_plan) or *, then the limit");
    if (!sc->principal_limits)
        sc->principal_limits = apr_array_make(cmd->pool, 4, sizeof(pe_access_plan_limit_t));
    for (i = 0; i < sc->principal_limits->nelts; i++)
        if (!strcmp(APR_ARRAY_IDX(sc->principal_limits, i, pe_access_plan_limit_t).plan, plan))
            return cmd_err(cmd, apr_psprintf(cmd->temp_pool, "plan '%s' already has a limit", plan));
    pl = &APR_ARRAY_PUSH(sc->principal_limits, pe_access_plan_limit_t);
    pl->plan = apr_pstrdup(cmd->pool, plan);
    if ((err = pe_access_limit_parse(cmd->temp_pool, line, &pl->limit))) {
        sc->principal_limits->nelts--;
        return cmd_err(cmd, err);
    }
    return NULL;
}

const char *pe_access_cmd_autoblock(cmd_parms *cmd, void *dconf, const char *line)
{
    pe_access_strikes_t *s = apr_pcalloc(cmd->pool, sizeof(*s));
    const char *err = pe_access_strikes_parse(cmd->temp_pool, line, s);

    if (err)
        return cmd_err(cmd, err);
    pe_config_srv(cmd->server)->autoblock = s;
    return NULL;
}

const char *pe_access_cmd_refresh(cmd_parms *cmd, void *dconf, const char *arg)
{
    long long v;
    const char *err;

    if ((err = pe_config_global_only(cmd)))
        return err;
    err = pe_parse_duration_ms(cmd->temp_pool, arg, 0, 3600000LL, &v);

    if (err)
        return cmd_err(cmd, err);
    pe_config_srv(cmd->server)->access_refresh_ms = v;
    return NULL;
}

/* "none" keeps the counters on this host only; a list is checked by pe_memcache's rules. */
const char *pe_access_cmd_servers(cmd_parms *cmd, void *dconf, const char *line)
{
    pe_memcache_conf_t *mc;
    const char *err;

    if ((err = pe_config_global_only(cmd)))
        return err;
    if (!strcasecmp(line, "none")) {
        pe_config_srv(cmd->server)->access_servers = "";
        return NULL;
    }
    if ((err = pe_memcache_conf_make(cmd->temp_pool, line, NULL, &mc)))
        return cmd_err(cmd, err);
    pe_config_srv(cmd->server)->access_servers = apr_pstrdup(cmd->pool, line);
    return NULL;
}

const char *pe_access_cmd_table_size(cmd_parms *cmd, void *dconf, const char *arg)
{
    long v;
    const char *err;

    if ((err = pe_config_global_only(cmd)))
        return err;
    err = pe_parse_int(cmd->temp_pool, arg, 64, 4194304L, &v);

    if (err)
        return cmd_err(cmd, err);
    pe_config_srv(cmd->server)->access_table_size = (int)v;
    return NULL;
}
