/*
 * pe_research_config.c: the research and batch directives (include/pe_config_research.h). Each
 * handler checks its value and answers "<Directive>: <reason>" on a bad one.
 */
#include "pe_config.h"
#include "pe_parse.h"
#include "pe_search.h"

#include <apr_lib.h>
#include <apr_strings.h>

/* A numeric or duration directive: the member, its kind and its bounds. */
struct pe_research_range {
    apr_size_t offset;
    int kind; /* RR_INT (int member), RR_SIZE (long long bytes), RR_MS (long long milliseconds) */
    long long min, max;
};
#define RR_INT 0
#define RR_SIZE 1
#define RR_MS 2
#define RR(name, member, kind, lo, hi)                                                                               \
    const struct pe_research_range name = {APR_OFFSETOF(pe_srv_conf_t, member), (kind), (lo), (hi)}

RR(pe_rr_parallel, research_parallel, RR_INT, 1, 64);
RR(pe_rr_page_bytes, research_page_bytes, RR_SIZE, 1024, 2 * 1024 * 1024);
RR(pe_rr_page_timeout, research_page_timeout_ms, RR_MS, 100, 60000);
RR(pe_rr_search_timeout, search_timeout_ms, RR_MS, 100, 60000);
RR(pe_rr_timeout, research_timeout_ms, RR_MS, 1000, 120000);
RR(pe_rr_ttl, research_ttl_ms, RR_MS, 0, 30LL * 86400000);
RR(pe_rr_page_ttl, research_page_ttl_ms, RR_MS, 0, 7LL * 86400000);
RR(pe_rr_cache_slots, research_cache_slots, RR_INT, 0, 65536);
RR(pe_rr_batch_parallel, batch_parallel, RR_INT, 1, 50);
RR(pe_rr_batch_tasks, batch_max_tasks, RR_INT, 1, 100);

/* Set a numeric member within its bounds. */
const char *pe_research_cmd_int(cmd_parms *cmd, void *dconf, const char *arg)
{
    const struct pe_research_range *rg = cmd->info;
    char *base = (char *)pe_config_srv(cmd->server);
    const char *err = NULL;
    long long v = 0;

    if ((err = pe_config_global_only(cmd)))
        return err;

    if (rg->kind == RR_INT) {
        long l;

        if (!(err = pe_parse_int(cmd->pool, arg, (long)rg->min, (long)rg->max, &l)))
            *(int *)(base + rg->offset) = (int)l;
    }
    else if (rg->kind == RR_SIZE) {
        apr_off_t sz;

        if (!(err = pe_parse_size(cmd->pool, arg, (apr_off_t)rg->max, &sz))) {
            if (sz < rg->min)
                err = apr_psprintf(cmd->pool, "'%s' is below the minimum of %" APR_INT64_T_FMT " bytes", arg,
                                   (apr_int64_t)rg->min);
            else
                *(long long *)(base + rg->offset) = (long long)sz;
        }
    }
    else if (!(err = pe_parse_duration_ms(cmd->pool, arg, rg->min, rg->max, &v))) {
        *(long long *)(base + rg->offset) = v;
    }
    return err ? apr_psprintf(cmd->pool, "%s: %s", cmd->cmd->name, err) : NULL;
}

/* "PESearchURL url". */
const char *pe_research_cmd_search_url(cmd_parms *cmd, void *dconf, const char *arg)
{
    const char *err = pe_parse_http_url(cmd->pool, arg);

    if (err)
        return apr_psprintf(cmd->pool, "%s: %s", cmd->cmd->name, err);
    pe_config_srv(cmd->server)->search_url = arg;
    return NULL;
}

/* "PESearchProvider name". */
const char *pe_research_cmd_search_provider(cmd_parms *cmd, void *dconf, const char *arg)
{
    const pe_search_provider_t *prov = pe_search_provider(arg);

    if (!prov)
        return apr_psprintf(cmd->pool, "%s: unknown provider '%s' (known: %s)", cmd->cmd->name, arg,
                            pe_search_provider_names());
    pe_config_srv(cmd->server)->search_provider = prov->name;
    return NULL;
}

/* Whether s is 1..max printable ASCII characters without spaces. */
static int pe_research_token_ok(const char *s, apr_size_t max)
{
    apr_size_t n = 0;

    for (; *s; s++, n++)
        if (*s <= ' ' || *s >= 0x7f)
            return 0;
    return n > 0 && n <= max;
}

/* "PESearchKey key". */
const char *pe_research_cmd_search_key(cmd_parms *cmd, void *dconf, const char *arg)
{
    if (!pe_research_token_ok(arg, 512))
        return apr_psprintf(cmd->pool, "%s: the key must be 1 to 512 printable characters without spaces",
                            cmd->cmd->name);
    pe_config_srv(cmd->server)->search_key = arg;
    return NULL;
}

/* "PESearchLanguage code": letters, digits and '-', 2..16. */
const char *pe_research_cmd_search_language(cmd_parms *cmd, void *dconf, const char *arg)
{
    const char *s;

    for (s = arg; *s; s++)
        if (!apr_isalnum(*s) && *s != '-')
            break;
    if (*s || s - arg < 2 || s - arg > 16)
        return apr_psprintf(cmd->pool, "%s: '%s' is not a language code such as en or en-GB", cmd->cmd->name, arg);
    pe_config_srv(cmd->server)->search_language = arg;
    return NULL;
}

/* "PEResearchAllowNetworks net[:ports] ... | none". */
const char *pe_research_cmd_allow(cmd_parms *cmd, void *dconf, const char *line)
{
    pe_ssrf_allow_list_t *l = NULL;
    const char *err;

    while (apr_isspace(*line))
        line++;
    if (!*line)
        return apr_psprintf(cmd->pool, "%s: give one or more networks, or none", cmd->cmd->name);
    if (!strcasecmp(line, "none"))
        err = pe_ssrf_allow_parse(cmd->pool, "", &l);
    else
        err = pe_ssrf_allow_parse(cmd->pool, line, &l);
    if (err)
        return apr_psprintf(cmd->pool, "%s: %s", cmd->cmd->name, err);
    pe_config_srv(cmd->server)->research_allow = l;
    return NULL;
}

/* "PEResearchModels topics synthesis". */
const char *pe_research_cmd_models(cmd_parms *cmd, void *dconf, const char *topics, const char *synthesis)
{
    pe_srv_conf_t *c = pe_config_srv(cmd->server);

    if (!pe_research_token_ok(topics, 128) || !pe_research_token_ok(synthesis, 128))
        return apr_psprintf(cmd->pool, "%s: model names are 1 to 128 printable characters without spaces",
                            cmd->cmd->name);
    c->research_topics_model = topics;
    c->research_synthesis_model = synthesis;
    return NULL;
}
