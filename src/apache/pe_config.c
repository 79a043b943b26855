/*
 * pe_config.c: the PE* directive table, create/merge generated from the member lists in
 * pe_config.h, and start-up checks. Directive handlers parse and bound-check their values, so
 * a bad value makes `apache2 -t` fail with "<Directive>: <reason>".
 */
#include "pe_config.h"
#include "pe_log.h"
#include "pe_parse.h"
#include "pe_route.h"

#include "http_core.h"
#include <apr_strings.h>
#include <sys/stat.h>

/* Largest accepted PEMaxBodySize. */
#define PE_MAX_BODY_LIMIT ((apr_off_t)64 * 1024 * 1024)

/* Create: every member unset, so merge can tell "not configured here". */
void *pe_config_dir_create(apr_pool_t *p, char *dir)
{
    pe_dir_conf_t *c = apr_pcalloc(p, sizeof(*c));
#define PE_X_UNSET(t, n, u, d) c->n = (u);
    PE_DIR_MEMBERS(PE_X_UNSET)
#undef PE_X_UNSET
    return c;
}

/* Merge: the more specific section wins where it set a value. */
void *pe_config_dir_merge(apr_pool_t *p, void *basev, void *addv)
{
    pe_dir_conf_t *base = basev, *add = addv, *c = apr_pcalloc(p, sizeof(*c));
#define PE_X_MERGE(t, n, u, d) c->n = (add->n == (u)) ? base->n : add->n;
    PE_DIR_MEMBERS(PE_X_MERGE)
#undef PE_X_MERGE
    return c;
}

void *pe_config_srv_create(apr_pool_t *p, server_rec *s)
{
    pe_srv_conf_t *c = apr_pcalloc(p, sizeof(*c));
#define PE_X_UNSET(t, n, u, d) c->n = (u);
    PE_SRV_MEMBERS(PE_X_UNSET)
#undef PE_X_UNSET
    return c;
}

void *pe_config_srv_merge(apr_pool_t *p, void *basev, void *addv)
{
    pe_srv_conf_t *base = basev, *add = addv, *c = apr_pcalloc(p, sizeof(*c));
#define PE_X_MERGE(t, n, u, d) c->n = (add->n == (u)) ? base->n : add->n;
    PE_SRV_MEMBERS(PE_X_MERGE)
#undef PE_X_MERGE
    return c;
}

/* "PEApi group...": the route groups this location serves. */
static const char *pe_cmd_api(cmd_parms *cmd, void *dconf, const char *arg)
{
    pe_dir_conf_t *c = dconf;
    unsigned bit = pe_route_group_bit(arg);

    if (!bit)
        return apr_psprintf(cmd->pool, "%s: unknown route group '%s' (known: %s)", cmd->cmd->name, arg,
                            pe_route_group_names());
    /* The first word replaces what an outer section set; later words add to it. */
    if (c->api_groups == -1)
        c->api_groups = 0;
    c->api_groups |= (int)bit;
    return NULL;
}

/* "PEMaxBodySize size": largest JSON body a route of this location reads. */
static const char *pe_cmd_max_body(cmd_parms *cmd, void *dconf, const char *arg)
{
    pe_dir_conf_t *c = dconf;
    const char *err = pe_parse_size(cmd->pool, arg, PE_MAX_BODY_LIMIT, &c->max_body);

    return err ? apr_psprintf(cmd->pool, "%s: %s", cmd->cmd->name, err) : NULL;
}

/* "PEBaseURI /prefix": a prefix removed from the URI before routes are matched. */
static const char *pe_cmd_base_uri(cmd_parms *cmd, void *dconf, const char *arg)
{
    pe_dir_conf_t *c = dconf;
    apr_size_t n = strlen(arg);

    if (arg[0] != '/' || strpbrk(arg, " \t?#%"))
        return apr_psprintf(cmd->pool, "%s: '%s' must be a path starting with '/'", cmd->cmd->name, arg);
    while (n > 1 && arg[n - 1] == '/')
        n--;
    c->base_uri = (n == 1) ? "" : apr_pstrmemdup(cmd->pool, arg, n);
    return NULL;
}

/* A key file path: must exist when the configuration is read. */
static const char *pe_cmd_key_file(cmd_parms *cmd, void *dconf, const char *arg)
{
    pe_srv_conf_t *c = pe_config_srv(cmd->server);
    const char *path = ap_server_root_relative(cmd->pool, arg);
    apr_finfo_t fi;

    if (!path || apr_stat(&fi, path, APR_FINFO_TYPE, cmd->pool) != APR_SUCCESS || fi.filetype != APR_REG)
        return apr_psprintf(cmd->pool, "%s: '%s' is not a readable file", cmd->cmd->name, arg);
    if (cmd->info == (void *)0)
        c->secret_key_file = path;
    else
        c->encryption_key_file = path;
    return NULL;
}

const command_rec pe_cmds[] = {
    AP_INIT_ITERATE("PEApi", pe_cmd_api, NULL, RSRC_CONF | ACCESS_CONF | OR_FILEINFO,
                    "Route groups served here: core users email prompt openai batch admin-panel support "
                    "monitoring diag, or all (default: all but diag)"),
    AP_INIT_TAKE1("PEMaxBodySize", pe_cmd_max_body, NULL, RSRC_CONF | ACCESS_CONF | OR_FILEINFO,
                  "Largest JSON request body, e.g. 64K or 1M (default 1M, at most 64M)"),
    AP_INIT_TAKE1("PEBaseURI", pe_cmd_base_uri, NULL, RSRC_CONF | ACCESS_CONF | OR_FILEINFO,
                  "URI prefix removed before routes are matched, e.g. /ai (default: none)"),
    AP_INIT_TAKE1("PESecretKeyFile", pe_cmd_key_file, (void *)0, RSRC_CONF,
                  "File with the server secret (64 hex digits, mode 0600) used for key and token digests"),
    AP_INIT_TAKE1("PEEncryptionKeyFile", pe_cmd_key_file, (void *)1, RSRC_CONF,
                  "File with the AES-256-GCM key (64 hex digits, mode 0600) for fields encrypted at rest"),
    {NULL}};
