/*
 * pe_email_config.c: the e-mail verification directives (include/pe_config_email.h). Each handler
 * checks its value and answers "<Directive>: <reason>" on a bad one; PESMTPPasswordFile is read
 * here, when the configuration is read (as root), and refused when others may read it.
 */
#include "pe_config.h"
#include "pe_email.h"
#include "pe_parse.h"

#include "http_core.h"
#include <apr_file_io.h>
#include <apr_strings.h>

struct pe_email_range {
    apr_size_t offset;
    int kind; /* ER_INT (int member) or ER_MS (long long milliseconds) */
    long long min, max;
};
#define ER_INT 0
#define ER_MS 1
#define ER(name, member, kind, lo, hi)                                                             \
    const struct pe_email_range name = {APR_OFFSETOF(pe_srv_conf_t, member), (kind), (lo), (hi)}

ER(pe_er_lifetime, email_code_lifetime_ms, ER_MS, 1000, 7LL * 86400000);
ER(pe_er_send_limit, email_send_limit, ER_INT, 1, 100);
ER(pe_er_timeout, smtp_timeout_ms, ER_MS, 100, 60000);
ER(pe_er_max_concurrent, smtp_max_concurrent, ER_INT, 1, 256);

const char *pe_email_cmd_flag(cmd_parms *cmd, void *dconf, int on)
{
    pe_config_srv(cmd->server)->email_verification = on;
    return NULL;
}

const char *pe_email_cmd_num(cmd_parms *cmd, void *dconf, const char *arg)
{
    const struct pe_email_range *rg = cmd->info;
    char *base = (char *)pe_config_srv(cmd->server);
    const char *err;

    /* NB: one gate for the whole server, sized from the main server's value (pe_h_email.c). */
    if (rg == &pe_er_max_concurrent && (err = ap_check_cmd_context(cmd, GLOBAL_ONLY)))
        return apr_pstrcat(cmd->pool, err, " (a process-wide setting: set it in the main server configuration)", NULL);
    if (rg->kind == ER_INT) {
        long v;

        if (!(err = pe_parse_int(cmd->pool, arg, (long)rg->min, (long)rg->max, &v)))
            *(int *)(base + rg->offset) = (int)v;
    }
    else {
        long long v;

        if (!(err = pe_parse_duration_ms(cmd->pool, arg, rg->min, rg->max, &v)))
            *(long long *)(base + rg->offset) = v;
    }
    return err ? apr_psprintf(cmd->pool, "%s: %s", cmd->cmd->name, err) : NULL;
}

const char *pe_email_cmd_url(cmd_parms *cmd, void *dconf, const char *arg)
{
    const char *err = pe_smtp_url_check(cmd->pool, arg);

    if (err)
        return apr_psprintf(cmd->pool, "%s: %s", cmd->cmd->name, err);
    pe_config_srv(cmd->server)->smtp_url = arg;
    return NULL;
}

const char *pe_email_cmd_starttls(cmd_parms *cmd, void *dconf, const char *arg)
{
    pe_srv_conf_t *c = pe_config_srv(cmd->server);

    if (!strcasecmp(arg, "Required"))
        c->smtp_starttls = PE_SMTP_TLS_REQUIRED;
    else if (!strcasecmp(arg, "Optional"))
        c->smtp_starttls = PE_SMTP_TLS_OPTIONAL;
    else
        return apr_psprintf(cmd->pool, "%s: '%s' is neither Required nor Optional", cmd->cmd->name, arg);
    return NULL;
}

const char *pe_email_cmd_user(cmd_parms *cmd, void *dconf, const char *arg)
{
    if (!*arg || strpbrk(arg, "\r\n"))
        return apr_psprintf(cmd->pool, "%s: the user name is empty or holds a line break", cmd->cmd->name);
    pe_config_srv(cmd->server)->smtp_user = arg;
    return NULL;
}

/* Read the password: a regular file nobody but its owner may read, its first line. */
const char *pe_email_cmd_password_file(cmd_parms *cmd, void *dconf, const char *arg)
{
    const char *path = ap_server_root_relative(cmd->pool, arg);
    apr_finfo_t fi;
    apr_file_t *f;
    char buf[1025];
    apr_size_t n = sizeof(buf) - 1;
    apr_status_t rv;
    char *eol;

    if (!path || apr_stat(&fi, path, APR_FINFO_PROT | APR_FINFO_TYPE, cmd->temp_pool) != APR_SUCCESS ||
        fi.filetype != APR_REG)
        return apr_psprintf(cmd->pool, "%s: '%s' is not a readable file", cmd->cmd->name, arg);
    if (fi.protection & (APR_GREAD | APR_GWRITE | APR_WREAD | APR_WWRITE))
        return apr_psprintf(cmd->pool, "%s: '%s' may be read by group or others; chmod 600 it", cmd->cmd->name, arg);
    if (apr_file_open(&f, path, APR_FOPEN_READ, 0, cmd->temp_pool) != APR_SUCCESS)
        return apr_psprintf(cmd->pool, "%s: '%s' cannot be opened", cmd->cmd->name, arg);
    rv = apr_file_read(f, buf, &n);
    apr_file_close(f);
    if (rv != APR_SUCCESS && rv != APR_EOF)
        return apr_psprintf(cmd->pool, "%s: '%s' cannot be read", cmd->cmd->name, arg);
    buf[n] = '\0';
    if ((eol = strpbrk(buf, "\r\n")))
        *eol = '\0';
    if (!*buf)
        return apr_psprintf(cmd->pool, "%s: '%s' is empty", cmd->cmd->name, arg);
    pe_config_srv(cmd->server)->smtp_password = apr_pstrdup(cmd->pool, buf);
    memset(buf, 0, sizeof(buf));
    return NULL;
}

const char *pe_email_cmd_ca_file(cmd_parms *cmd, void *dconf, const char *arg)
{
    const char *path = ap_server_root_relative(cmd->pool, arg);
    apr_finfo_t fi;

    if (!path || apr_stat(&fi, path, APR_FINFO_TYPE, cmd->temp_pool) != APR_SUCCESS || fi.filetype != APR_REG)
        return apr_psprintf(cmd->pool, "%s: '%s' is not a readable file", cmd->cmd->name, arg);
    pe_config_srv(cmd->server)->smtp_ca_file = path;
    return NULL;
}

const char *pe_email_cmd_from(cmd_parms *cmd, void *dconf, const char *arg)
{
    pe_mail_msg_t m = {arg, "check@example.com", NULL, "x", "x", NULL};
    apr_array_header_t *lines;
    const char *err = pe_mail_headers(cmd->temp_pool, &m, 0, &lines);

    if (err)
        return apr_psprintf(cmd->pool, "%s: '%s': %s", cmd->cmd->name, arg, err);
    pe_config_srv(cmd->server)->mail_from = arg;
    return NULL;
}
