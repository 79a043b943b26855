/*
 * pe_config.c: the PE* directive table, create/merge generated from the member lists in
 * pe_config.h, and start-up checks. Directive handlers parse and bound-check their values, so
 * a bad value makes `apache2 -t` fail with "<Directive>: <reason>".
 */
#include "pe_config.h"
#include "pe_crypto.h"
#include "pe_log.h"
#include "pe_parse.h"
#include "pe_route.h"
#include "pe_store_ap.h"
#include "pe_store_mongo_ap.h"

#include "http_core.h"
#include <apr_strings.h>
#include <sys/stat.h>

/* Bounds and member offsets of the numeric server directives. */
struct pe_int_range {
    apr_size_t offset;
    long long min, max;
};
#define PE_RG(name, member, lo, hi)                                                                \
    static const struct pe_int_range name = {APR_OFFSETOF(pe_srv_conf_t, member), (lo), (hi)}
PE_RG(pe_rg_hash_max, hash_max, 1, 256);
PE_RG(pe_rg_hash_wait, hash_wait_ms, 0, 60000);
PE_RG(pe_rg_login_max, login_max_failures, 1, 100);
PE_RG(pe_rg_lockout, login_lockout_ms, 1000, 7LL * 86400000);
PE_RG(pe_rg_session, session_ttl_ms, 60000, 30LL * 86400000);
PE_RG(pe_rg_refresh, refresh_ttl_ms, 60000, 365LL * 86400000);
PE_RG(pe_rg_admin_session, admin_session_ttl_ms, 60000, 30LL * 86400000);
PE_RG(pe_rg_support_session, support_session_ttl_ms, 60000, 30LL * 86400000);
PE_RG(pe_rg_registration, registration, 0, 1);
PE_RG(pe_rg_credits, default_credits, 0, 1000000000);
PE_RG(pe_rg_conv, default_conv_limit, 0, 1000000000);

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

/* A file path that must exist when the configuration is read (relative to ServerRoot). */
static const char *pe_existing_file(cmd_parms *cmd, const char *arg, const char **out)
{
    const char *path = ap_server_root_relative(cmd->pool, arg);
    const char *err = pe_config_global_only(cmd);
    apr_finfo_t fi;

    if (err)
        return err;
    if (!path || apr_stat(&fi, path, APR_FINFO_TYPE, cmd->pool) != APR_SUCCESS || fi.filetype != APR_REG)
        return apr_psprintf(cmd->pool, "%s: '%s' is not a readable file", cmd->cmd->name, arg);
    *out = path;
    return NULL;
}

/* "PESecretKeyFile path". */
static const char *pe_cmd_secret_key(cmd_parms *cmd, void *dconf, const char *arg)
{
    return pe_existing_file(cmd, arg, &pe_config_srv(cmd->server)->secret_key_file);
}

/* "PEEncryptionKeyFile path [key-id]" and "PEEncryptionKeyFileOld path key-id". */
static const char *pe_cmd_enc_key(cmd_parms *cmd, void *dconf, const char *arg, const char *id)
{
    pe_srv_conf_t *c = pe_config_srv(cmd->server);
    int old = cmd->info != NULL;
    const char *err;

    if (id && !pe_seal_key_id_ok(id))
        return apr_psprintf(cmd->pool, "%s: key id '%s' must be 1 to 32 letters, digits, '-' or '_'", cmd->cmd->name,
                            id);
    if (old && !id)
        return apr_psprintf(cmd->pool, "%s: the old key needs its key id", cmd->cmd->name);
    if ((err = pe_existing_file(cmd, arg, old ? &c->old_encryption_key_file : &c->encryption_key_file)))
        return err;
    if (old)
        c->old_encryption_key_id = id;
    else if (id)
        c->encryption_key_id = id;
    return NULL;
}

/*
 * The process-wide directives: each is read once per process from the main server (the keys and
 * the common-password list, a table size, the memcached clients, the message-log writer, the
 * hash gate), so in a <VirtualHost> it would be ignored; httpd refuses it there instead
 * (ap_check_cmd_context, GLOBAL_ONLY). PEStore refuses it itself.
 */
static const char *const pe_global_only[] = {
    "PESecretKeyFile", "PEEncryptionKeyFile", "PEEncryptionKeyFileOld", "PECommonPasswordFile", "PEPasswordHashMax", "PECacheServers", "PECacheTimeout", "PECacheShmEntries", "PECacheShmEntrySize",
    "PEMessageLog", "PEMessageLogBatch", "PEMessageLogInterval", "PEMessageLogQueue", "PEAccessRefresh",
    "PEAccessServers", "PEAccessTableSize", "PEResearchCacheSize", "PEMetrics", NULL};

const char *pe_config_global_only(cmd_parms *cmd)
{
    const char *err;
    int i;

    for (i = 0; pe_global_only[i]; i++)
        if (!strcasecmp(pe_global_only[i], cmd->cmd->name))
            break;
    if (!pe_global_only[i] || !(err = ap_check_cmd_context(cmd, GLOBAL_ONLY)))
        return NULL;
    return apr_pstrcat(cmd->pool, err, " (a process-wide setting: set it in the main server configuration)", NULL);
}

/* "PECommonPasswordFile path". */
static const char *pe_cmd_common_pw(cmd_parms *cmd, void *dconf, const char *arg)
{
    return pe_existing_file(cmd, arg, &pe_config_srv(cmd->server)->common_password_file);
}

/* A whole number into the int member at cmd->info (an offset into pe_srv_conf_t). */
static const char *pe_cmd_srv_int(cmd_parms *cmd, void *dconf, const char *arg)
{
    const struct pe_int_range *rg = cmd->info;
    long v;
    const char *err = pe_config_global_only(cmd);

    if (err)
        return err;
    if ((err = pe_parse_int(cmd->pool, arg, rg->min, rg->max, &v)))
        return apr_psprintf(cmd->pool, "%s: %s", cmd->cmd->name, err);
    *(int *)((char *)pe_config_srv(cmd->server) + rg->offset) = (int)v;
    return NULL;
}

/* A whole number into a long long member. */
static const char *pe_cmd_srv_ll(cmd_parms *cmd, void *dconf, const char *arg)
{
    const struct pe_int_range *rg = cmd->info;
    long v;
    const char *err = pe_parse_int(cmd->pool, arg, rg->min, rg->max, &v);

    if (err)
        return apr_psprintf(cmd->pool, "%s: %s", cmd->cmd->name, err);
    *(long long *)((char *)pe_config_srv(cmd->server) + rg->offset) = v;
    return NULL;
}

/* A duration into a long long millisecond member. */
static const char *pe_cmd_srv_duration(cmd_parms *cmd, void *dconf, const char *arg)
{
    const struct pe_int_range *rg = cmd->info;
    long long v;
    const char *err = pe_parse_duration_ms(cmd->pool, arg, rg->min, rg->max, &v);

    if (err)
        return apr_psprintf(cmd->pool, "%s: %s", cmd->cmd->name, err);
    *(long long *)((char *)pe_config_srv(cmd->server) + rg->offset) = v;
    return NULL;
}

/* On|Off into an int member. */
static const char *pe_cmd_srv_flag(cmd_parms *cmd, void *dconf, int on)
{
    const struct pe_int_range *rg = cmd->info;

    *(int *)((char *)pe_config_srv(cmd->server) + rg->offset) = on;
    return NULL;
}

/* "PEArgon2Cost t memory p": Argon2id time cost, memory (e.g. 64M) and lanes. */
static const char *pe_cmd_argon2(cmd_parms *cmd, void *dconf, const char *t, const char *m, const char *par)
{
    pe_srv_conf_t *c = pe_config_srv(cmd->server);
    long tv, pv;
    apr_off_t mem;
    const char *err;

    if ((err = pe_parse_int(cmd->pool, t, 1, PE_ARGON2_T_MAX, &tv)) ||
        (err = pe_parse_size(cmd->pool, m, (apr_off_t)PE_ARGON2_M_MAX * 1024, &mem)) ||
        (err = pe_parse_int(cmd->pool, par, 1, PE_ARGON2_P_MAX, &pv)))
        return apr_psprintf(cmd->pool, "%s: %s", cmd->cmd->name, err);
    if (mem < 8 * 1024 * pv)
        return apr_psprintf(cmd->pool, "%s: memory must be at least %ldK for %ld lanes", cmd->cmd->name, 8 * pv, pv);
    c->argon2_t = (int)tv;
    c->argon2_m_kib = (int)(mem / 1024);
    c->argon2_p = (int)pv;
    return NULL;
}

/* "PEDefaultLevel level". */
static const char *pe_cmd_default_level(cmd_parms *cmd, void *dconf, const char *arg)
{
    static const char *const levels[] = {"low", "medium", "high", "ultra", NULL};
    const char *const *l;

    for (l = levels; *l; l++)
        if (!strcmp(*l, arg)) {
            pe_config_srv(cmd->server)->default_level = *l;
            return NULL;
        }
    return apr_psprintf(cmd->pool, "%s: '%s' is not a level (low, medium, high, ultra)", cmd->cmd->name, arg);
}

/* "PEDefaultAccessRTypes type...": r_types a new user may use. */
static const char *pe_cmd_default_rtypes(cmd_parms *cmd, void *dconf, const char *line)
{
    static const char *const types[] = {"bpe", "bcot", "hcot", "react", "tot", "custom", NULL};
    const char *list = NULL, *w;

    while (*(w = ap_getword_conf(cmd->temp_pool, &line))) {
        const char *const *t;

        for (t = types; *t; t++)
            if (!strcmp(*t, w))
                break;
        if (!*t)
            return apr_psprintf(cmd->pool, "%s: '%s' is not an r_type (bpe, bcot, hcot, react, tot, custom)",
                                cmd->cmd->name, w);
        list = list ? apr_pstrcat(cmd->pool, list, ",", *t, NULL) : *t;
    }
    if (!list)
        return apr_psprintf(cmd->pool, "%s: at least one r_type is required", cmd->cmd->name);
    pe_config_srv(cmd->server)->default_rtypes = list;
    return NULL;
}

const command_rec pe_cmds[] = {
    AP_INIT_ITERATE("PEApi", pe_cmd_api, NULL, RSRC_CONF | ACCESS_CONF | OR_FILEINFO,
                    "Route groups served here: core users email prompt openai batch admin-panel support "
                    "monitoring diag metrics ready, or all (default: all but diag, metrics and ready)"),
    AP_INIT_TAKE1("PEMaxBodySize", pe_cmd_max_body, NULL, RSRC_CONF | ACCESS_CONF | OR_FILEINFO,
                  "Largest JSON request body, e.g. 64K or 1M (default 1M, at most 64M)"),
    AP_INIT_TAKE1("PEBaseURI", pe_cmd_base_uri, NULL, RSRC_CONF | ACCESS_CONF | OR_FILEINFO,
                  "URI prefix removed before routes are matched, e.g. /ai (default: none)"),
    AP_INIT_TAKE1("PESecretKeyFile", pe_cmd_secret_key, NULL, RSRC_CONF,
                  "File with the server secret (64 hex digits, mode 0600) used for key and token digests"),
    AP_INIT_TAKE12("PEEncryptionKeyFile", pe_cmd_enc_key, NULL, RSRC_CONF,
                   "File with the AES-256-GCM key (64 hex digits, mode 0600) and its key id (default k1)"),
    AP_INIT_TAKE2("PEEncryptionKeyFileOld", pe_cmd_enc_key, (void *)1, RSRC_CONF,
                  "A previous encryption key file and its key id, still read while values are re-sealed"),
    AP_INIT_TAKE1("PECommonPasswordFile", pe_cmd_common_pw, NULL, RSRC_CONF,
                  "File of common passwords (one per line) that are refused"),
    AP_INIT_TAKE3("PEArgon2Cost", pe_cmd_argon2, NULL, RSRC_CONF,
                  "Argon2id time cost, memory and lanes for new password hashes (default 3 64M 1)"),
    AP_INIT_TAKE1("PEPasswordHashMax", pe_cmd_srv_int, (void *)&pe_rg_hash_max, RSRC_CONF,
                  "Most password hashes computed at once by the whole server (default 4)"),
    AP_INIT_TAKE1("PEPasswordHashWait", pe_cmd_srv_duration, (void *)&pe_rg_hash_wait, RSRC_CONF,
                  "How long a login waits for a hashing place before 503 (default 2s)"),
    AP_INIT_TAKE1("PELoginMaxFailures", pe_cmd_srv_int, (void *)&pe_rg_login_max, RSRC_CONF,
                  "Failed logins in a row that lock an account (default 5)"),
    AP_INIT_TAKE1("PELoginLockout", pe_cmd_srv_duration, (void *)&pe_rg_lockout, RSRC_CONF,
                  "How long a locked account stays locked (default 1h)"),
    AP_INIT_TAKE1("PESessionLifetime", pe_cmd_srv_duration, (void *)&pe_rg_session, RSRC_CONF,
                  "Lifetime of a session token (default 24h)"),
    AP_INIT_TAKE1("PEAdminSessionLifetime", pe_cmd_srv_duration, (void *)&pe_rg_admin_session, RSRC_CONF,
                  "Lifetime of an administrator's session token (default 24h)"),
    AP_INIT_TAKE1("PESupportSessionLifetime", pe_cmd_srv_duration, (void *)&pe_rg_support_session, RSRC_CONF,
                  "Lifetime of a support-staff session token (default 12h)"),
    AP_INIT_TAKE1("PERefreshLifetime", pe_cmd_srv_duration, (void *)&pe_rg_refresh, RSRC_CONF,
                  "Lifetime of a refresh token (default 30d)"),
    AP_INIT_FLAG("PERegistration", pe_cmd_srv_flag, (void *)&pe_rg_registration, RSRC_CONF,
                 "On: POST /v1/users/register creates accounts (default On)"),
    AP_INIT_TAKE1("PEDefaultCredits", pe_cmd_srv_ll, (void *)&pe_rg_credits, RSRC_CONF,
                  "credits.main and credits.reset of a new user (default 5)"),
    AP_INIT_TAKE1("PEDefaultConversationLimit", pe_cmd_srv_ll, (void *)&pe_rg_conv, RSRC_CONF,
                  "Completions a new user may make per day, limits.conversation_limit (default 10)"),
    AP_INIT_TAKE1("PEDefaultLevel", pe_cmd_default_level, NULL, RSRC_CONF,
                  "Level of a new user: low, medium, high or ultra (default low)"),
    AP_INIT_RAW_ARGS("PEDefaultAccessRTypes", pe_cmd_default_rtypes, NULL, RSRC_CONF,
                    "r_types a new user may use (default bpe tot)"),
    /* Each concern's directives, from its pe_config_<concern>.h. */
    PE_STORE_CMDS
    PE_STORE_MONGO_CMDS
    PE_ACCESS_CMDS
    PE_COMPLETION_CMDS
    PE_RESEARCH_CMDS
    PE_MONITOR_CMDS
    PE_EMAIL_CMDS
    {NULL}};
