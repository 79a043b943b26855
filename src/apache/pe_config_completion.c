/*
 * pe_config_completion.c: directive handlers of the completion concern (upstream, models,
 * credits, cache, conversation logs). Each checks its value and answers "PEName: reason".
 */
#include "pe_config.h"
#include "pe_enhance.h"
#include "pe_memcache.h"
#include "pe_parse.h"

#include <apr_lib.h>
#include <apr_strings.h>

/* Which member a directive sets and its bounds. */
struct pe_cpl_arg {
    apr_size_t offset;
    long long min, max;
};

#define PE_CPL(name, member, lo, hi)                                                               \
    const struct pe_cpl_arg name = {APR_OFFSETOF(pe_srv_conf_t, member), (lo), (hi)}
PE_CPL(pe_cpl_upstream_key, upstream_key, 1, 4096);
PE_CPL(pe_cpl_connect, upstream_connect_ms, 10, 300000);
PE_CPL(pe_cpl_timeout, upstream_timeout_ms, 100, 3600000);
PE_CPL(pe_cpl_stream_timeout, upstream_stream_timeout_ms, 100, 7200000);
PE_CPL(pe_cpl_retries, upstream_retries, 0, 10);
PE_CPL(pe_cpl_backoff, upstream_backoff_ms, 0, 60000);
PE_CPL(pe_cpl_retry_max, upstream_retry_max_ms, 0, 300000);
PE_CPL(pe_cpl_max_response, upstream_max_response, 1024, (long long)256 * 1024 * 1024);
PE_CPL(pe_cpl_reset_hour, credit_reset_hour, 0, 23);
PE_CPL(pe_cpl_cache, cache_on, 0, 1);
PE_CPL(pe_cpl_cache_ttl, cache_ttl_ms, 1000, 30LL * 86400000);
PE_CPL(pe_cpl_prompt_refresh, prompt_refresh_ms, 0, 86400000LL);
PE_CPL(pe_cpl_principal_ttl, principal_ttl_ms, 0, 3600000LL);
PE_CPL(pe_cpl_cache_timeout, cache_timeout_ms, 10, 10000);
PE_CPL(pe_cpl_shm_entries, cache_shm_entries, 0, 1 << 20);
PE_CPL(pe_cpl_shm_entry_size, cache_shm_entry_size, 1024, 65536 - 16);
PE_CPL(pe_cpl_msglog, msglog_on, 0, 1);
PE_CPL(pe_cpl_msglog_batch, msglog_batch, 1, 10000);
PE_CPL(pe_cpl_msglog_interval, msglog_interval_ms, 10, 60000);
PE_CPL(pe_cpl_msglog_queue, msglog_queue, 1, 1000000);
PE_CPL(pe_cpl_msglog_max_record, msglog_max_record, 1024, (long long)16 * 1024 * 1024);
PE_CPL(pe_cpl_usagelog, usagelog_on, 0, 1);
PE_CPL(pe_cpl_usagelog_queue, usagelog_queue, 1, 1000000);
PE_CPL(pe_cpl_usagelog_retention, usagelog_retention_ms, 0, 3650LL * 86400000);

/* The member a descriptor names, in this server's configuration. */
static void *member(cmd_parms *cmd)
{
    const struct pe_cpl_arg *a = cmd->info;

    return (char *)pe_config_srv(cmd->server) + a->offset;
}

/* A string with no control characters (keys, names). */
const char *pe_cmd_cpl_str(cmd_parms *cmd, void *dconf, const char *arg)
{
    const struct pe_cpl_arg *a = cmd->info;
    apr_size_t n = strlen(arg), i;

    if ((long long)n < a->min || (long long)n > a->max)
        return apr_psprintf(cmd->pool, "%s: the value must be %" APR_INT64_T_FMT " to %" APR_INT64_T_FMT " characters",
                            cmd->cmd->name, (apr_int64_t)a->min, (apr_int64_t)a->max);
    for (i = 0; i < n; i++)
        if ((unsigned char)arg[i] < 0x21 || arg[i] == 0x7f)
            return apr_psprintf(cmd->pool, "%s: the value must not contain spaces or control characters",
                                cmd->cmd->name);
    *(const char **)member(cmd) = arg;
    return NULL;
}

/* "PEUpstreamURL url". */
const char *pe_cmd_cpl_url(cmd_parms *cmd, void *dconf, const char *arg)
{
    const char *err = pe_parse_http_url(cmd->pool, arg);

    if (err)
        return apr_psprintf(cmd->pool, "%s: %s", cmd->cmd->name, err);
    pe_config_srv(cmd->server)->upstream_url = arg;
    return NULL;
}

/* A whole number into an int member. */
const char *pe_cmd_cpl_int(cmd_parms *cmd, void *dconf, const char *arg)
{
    const struct pe_cpl_arg *a = cmd->info;
    long v;
    const char *err;

    if ((err = pe_config_global_only(cmd)))
        return err;
    err = pe_parse_int(cmd->pool, arg, (long)a->min, (long)a->max, &v);
    if (err)
        return apr_psprintf(cmd->pool, "%s: %s", cmd->cmd->name, err);
    *(int *)member(cmd) = (int)v;
    return NULL;
}

/* A duration into a long long millisecond member. */
const char *pe_cmd_cpl_duration(cmd_parms *cmd, void *dconf, const char *arg)
{
    const struct pe_cpl_arg *a = cmd->info;
    long long v;
    const char *err;

    if ((err = pe_config_global_only(cmd)))
        return err;
    err = pe_parse_duration_ms(cmd->pool, arg, a->min, a->max, &v);
    if (err)
        return apr_psprintf(cmd->pool, "%s: %s", cmd->cmd->name, err);
    *(long long *)member(cmd) = v;
    return NULL;
}

/* A byte size into an apr_off_t member. */
const char *pe_cmd_cpl_size(cmd_parms *cmd, void *dconf, const char *arg)
{
    const struct pe_cpl_arg *a = cmd->info;
    apr_off_t v;
    const char *err;

    if ((err = pe_config_global_only(cmd)))
        return err;
    err = pe_parse_size(cmd->pool, arg, (apr_off_t)a->max, &v);
    if (!err && v < (apr_off_t)a->min)
        err = apr_psprintf(cmd->pool, "'%s' is below the smallest value, %" APR_INT64_T_FMT " bytes", arg,
                           (apr_int64_t)a->min);
    if (err)
        return apr_psprintf(cmd->pool, "%s: %s", cmd->cmd->name, err);
    *(apr_off_t *)member(cmd) = v;
    return NULL;
}

/* On|Off into an int member. */
const char *pe_cmd_cpl_flag(cmd_parms *cmd, void *dconf, int on)
{
    const char *err;

    if ((err = pe_config_global_only(cmd)))
        return err;
    *(int *)member(cmd) = on;
    return NULL;
}

/* A model name: 1..100 characters of letters, digits and . _ - : / @ +. */
static int model_name_ok(const char *s)
{
    apr_size_t n = strlen(s), i;

    if (n < 1 || n > 100)
        return 0;
    for (i = 0; i < n; i++)
        if (!apr_isalnum(s[i]) && !strchr("._-:/@+", s[i]))
            return 0;
    return 1;
}

/* "PELevelModel level model". */
const char *pe_cmd_cpl_level_model(cmd_parms *cmd, void *dconf, const char *level, const char *model)
{
    pe_srv_conf_t *c = pe_config_srv(cmd->server);
    pe_level_t l;

    if (pe_enhance_level_parse(level, &l) != 0)
        return apr_psprintf(cmd->pool, "%s: '%s' is not a level (low, medium, high, ultra)", cmd->cmd->name, level);
    if (!model_name_ok(model))
        return apr_psprintf(cmd->pool, "%s: '%s' is not a model name (1 to 100 letters, digits or ._-:/@+)",
                            cmd->cmd->name, model);
    switch (l) {
    case PE_LEVEL_LOW: c->model_low = model; break;
    case PE_LEVEL_MEDIUM: c->model_medium = model; break;
    case PE_LEVEL_HIGH: c->model_high = model; break;
    default: c->model_ultra = model; break;
    }
    return NULL;
}

/* "PEReasoningModels name... | none": kept as a space-separated list ("" for none). */
const char *pe_cmd_cpl_reasoning(cmd_parms *cmd, void *dconf, const char *line)
{
    const char *w, *list = NULL;

    while (*(w = ap_getword_conf(cmd->temp_pool, &line))) {
        if (!strcasecmp(w, "none")) {
            if (list || *line)
                return apr_psprintf(cmd->pool, "%s: 'none' must stand alone", cmd->cmd->name);
            list = "";
            break;
        }
        if (!model_name_ok(w))
            return apr_psprintf(cmd->pool, "%s: '%s' is not a model name", cmd->cmd->name, w);
        list = list ? apr_pstrcat(cmd->pool, list, " ", w, NULL) : apr_pstrdup(cmd->pool, w);
    }
    if (!list)
        return apr_psprintf(cmd->pool, "%s: name at least one model, or none", cmd->cmd->name);
    pe_config_srv(cmd->server)->reasoning_models = list;
    return NULL;
}

/* "PECacheServers host:port ...": checked here (pe_memcache's rules), connected per child. */
const char *pe_cmd_cpl_servers(cmd_parms *cmd, void *dconf, const char *line)
{
    pe_memcache_conf_t *mc;
    const char *err;

    if ((err = pe_config_global_only(cmd)))
        return err;
    if ((err = pe_memcache_conf_make(cmd->temp_pool, line, NULL, &mc)))
        return apr_psprintf(cmd->pool, "%s: %s", cmd->cmd->name, err);
    pe_config_srv(cmd->server)->cache_servers = apr_pstrdup(cmd->pool, line);
    return NULL;
}
