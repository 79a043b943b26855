/*
 * pe_monitor_ap.c: the monitoring concern's process state and hooks (pe_monitor_ap.h).
 */
#include "pe_completion.h"
#include "pe_config.h"
#include "pe_handlers.h"
#include "pe_hooks.h"
#include "pe_http.h"
#include "pe_log.h"
#include "pe_monitor_ap.h"

#include "http_core.h"
#include "http_main.h"
#include "http_protocol.h"
#include "mod_status.h"
#include <apr_optional_hooks.h>
#include <apr_shm.h>
#include <unistd.h>

#define PE_METRICS_KEY "pe_metrics_block"

/* This process's state. */
static struct {
    pe_metrics_t *block;
    pe_met_proc_t *slot;
    int on; /* PEMetrics */
} pe_mon;

pe_metrics_t *pe_monitor_block(void)
{
    return pe_mon.block;
}

pe_met_proc_t *pe_monitor_slot(void)
{
    return pe_mon.slot;
}

/* The block, made once per httpd parent on the process pool: a graceful restart keeps the
 * counters (a scrape sees them grow, never fall), and the old generation's children keep
 * counting into the same block. */
static apr_status_t block_get(server_rec *s, pe_metrics_t **out)
{
    apr_pool_t *pp = s->process->pool;
    apr_shm_t *shm = NULL;
    apr_status_t rv;

    apr_pool_userdata_get((void **)out, PE_METRICS_KEY, pp);
    if (*out)
        return APR_SUCCESS;
    if ((rv = apr_shm_create(&shm, pe_metrics_size(), NULL, pp)) != APR_SUCCESS)
        return rv;
    *out = pe_metrics_init(apr_shm_baseaddr_get(shm));
    apr_pool_userdata_set(*out, PE_METRICS_KEY, apr_pool_cleanup_null, pp);
    return APR_SUCCESS;
}

/* The model label's values: the models this configuration can send to (levels and research). */
static void models_register(apr_pool_t *ptemp, server_rec *s)
{
    server_rec *vs;
    int l, full = 0;

    for (vs = s; vs; vs = vs->next) {
        pe_srv_conf_t *sc = pe_config_srv(vs);
        const pe_enhance_conf_t *ec = pe_completion_enhance_conf(ptemp, vs);
        const char *extra[] = {pe_srv_research_topics_model(sc), pe_srv_research_synthesis_model(sc)};

        for (l = PE_LEVEL_LOW; l <= PE_LEVEL_ULTRA; l++)
            if (pe_metrics_model_add(pe_mon.block, pe_enhance_level_model(ec, (pe_level_t)l)) < 0)
                full++;
        for (l = 0; l < 2; l++)
            if (extra[l] && pe_metrics_model_add(pe_mon.block, extra[l]) < 0)
                full++;
    }
    if (full)
        pe_slog(s, APLOG_NOTICE, 0, PE_LOGNO(07002) "metrics: more than %d models are configured (or a name is "
                "longer than %d bytes); the others are counted as model=\"other\"", PE_MET_MODELS_MAX,
                PE_MET_MODEL_LEN - 1);
}

int pe_monitor_post_config(apr_pool_t *pconf, apr_pool_t *plog, apr_pool_t *ptemp, server_rec *s)
{
    apr_status_t rv;

    memset(&pe_mon, 0, sizeof(pe_mon));
    if (ap_state_query(AP_SQ_MAIN_STATE) == AP_SQ_MS_CREATE_PRE_CONFIG)
        return OK;
    if ((rv = block_get(s, &pe_mon.block)) != APR_SUCCESS) {
        pe_slog(s, APLOG_CRIT, rv, PE_LOGNO(07001) "cannot create the shared-memory metrics block");
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    pe_mon.on = pe_srv_metrics_on(pe_config_srv(s));
    models_register(ptemp, s);
    pe_metrics_install(pe_mon.on ? pe_mon.block : NULL);
    return OK;
}

static apr_status_t slot_release(void *data)
{
    pe_metrics_proc_detach(data);
    return APR_SUCCESS;
}

void pe_monitor_child_init(apr_pool_t *pchild, server_rec *s)
{
    pe_h_monitoring_child_init(pchild);
    if (!pe_mon.block)
        return;
    pe_mon.slot = pe_metrics_proc_attach(pe_mon.block, (apr_int64_t)getpid());
    if (!pe_mon.slot) {
        pe_slog(s, APLOG_WARNING, 0, PE_LOGNO(07003) "metrics: all %d process slots are taken; this process's "
                "requests in flight and queued log records are not shown", PE_MET_PROCS);
        return;
    }
    apr_pool_cleanup_register(pchild, pe_mon.slot, slot_release, apr_pool_cleanup_null);
}

/* A usage figure, or -1 when absent. */
static apr_int64_t usage_int(const json_t *usage, const char *name)
{
    const json_t *v = json_object_get(usage, name);

    return json_is_integer(v) ? (apr_int64_t)json_integer_value(v) : -1;
}

void pe_monitor_usage(const char *model, const char *r_type, const json_t *usage)
{
    if (!pe_mon.on)
        return;
    pe_met_inc(PE_MET_COMPLETIONS, pe_met_model(model), pe_met_rtype(r_type));
    if (json_is_object(usage))
        pe_met_tokens(model, usage_int(usage, "prompt_tokens"), usage_int(usage, "completion_tokens"),
                      usage_int(usage, "total_tokens"));
}

static apr_status_t inflight_done(void *data)
{
    pe_met_gauge_add(data, PE_MET_INFLIGHT, -1);
    return APR_SUCCESS;
}

/* Runs first among the handlers and declines: a request of ours is in flight until its pool goes. */
int pe_monitor_handler_first(request_rec *r)
{
    if (!pe_mon.on || !pe_mon.slot || r->main || !r->handler || strcmp(r->handler, PE_HANDLER_NAME) != 0)
        return DECLINED;
    pe_met_gauge_add(pe_mon.slot, PE_MET_INFLIGHT, 1);
    apr_pool_cleanup_register(r->pool, pe_mon.slot, inflight_done, apr_pool_cleanup_null);
    return DECLINED;
}

/* Count a request of ours by route group and status class. */
int pe_monitor_log_transaction(request_rec *r)
{
    pe_route_match_t m;
    const pe_req_t *rq;
    const char *path;
    int group = PE_MET_GROUP_NONE;

    if (!pe_mon.on || r->main)
        return DECLINED;
    /* NB: a request refused before fixups (access layer, authentication) has no r->handler yet. */
    if (!(r->handler && !strcmp(r->handler, PE_HANDLER_NAME)) && !pe_http_handler_is_ours(r))
        return DECLINED;
    /* The handler's route when it dispatched this very request_rec (no second table walk: the
     * walk cost about 6,000 instructions a request); a path has routes of one group only. */
    if ((rq = pe_req_find(r)) && rq->route && rq->route_for == r)
        group = pe_met_group(rq->route->group);
    else if ((path = pe_handler_route_path(r)) &&
             pe_route_match(r->pool, pe_routes, pe_routes_count, 0xfffu, pe_route_method_bit(r->method), path, &m) ==
                 PE_ROUTE_OK)
        group = pe_met_group(m.route->group);
    pe_met_request(group, r->status);
    return DECLINED;
}

/* mod_status: the module's figures in server-status (and ?auto). */
static int status_hook(request_rec *r, int flags)
{
    pe_metrics_t *m = pe_mon.block;
    apr_uint64_t req = 0, hits, misses, refusals = 0, tokens = 0;
    int i, j, procs;
    apr_int64_t inflight, queued;

    if (!m)
        return OK;
    for (i = 0; i < PE_MET_GROUPS; i++)
        for (j = 0; j <= PE_MET_CODE_5XX; j++)
            req += pe_metrics_value(m, PE_MET_REQUESTS, i, j);
    for (i = 0; i <= PE_MET_REF_WHITELIST; i++)
        refusals += pe_metrics_value(m, PE_MET_REFUSALS, i, 0);
    for (i = 0; i <= PE_MET_MODELS_MAX; i++)
        tokens += pe_metrics_value(m, PE_MET_TOKENS, i, PE_MET_TOK_TOTAL);
    hits = pe_metrics_value(m, PE_MET_CACHE, PE_MET_CACHE_RESPONSE, PE_MET_HIT);
    misses = pe_metrics_value(m, PE_MET_CACHE, PE_MET_CACHE_RESPONSE, PE_MET_MISS);
    inflight = pe_metrics_gauge_sum(m, PE_MET_INFLIGHT, &procs);
    queued = pe_metrics_gauge_sum(m, PE_MET_MSGLOG_QUEUE, NULL);
    if (flags & AP_STATUS_SHORT) {
        ap_rprintf(r, "PromptEnchanterRequests: %" APR_UINT64_T_FMT "\n", req);
        ap_rprintf(r, "PromptEnchanterInFlight: %" APR_INT64_T_FMT "\n", inflight);
        ap_rprintf(r, "PromptEnchanterUpstreamCalls: %" APR_UINT64_T_FMT "\n",
                   pe_metrics_value(m, PE_MET_UPSTREAM_SECONDS, 0, 0));
        ap_rprintf(r, "PromptEnchanterTokens: %" APR_UINT64_T_FMT "\n", tokens);
        ap_rprintf(r, "PromptEnchanterCacheHits: %" APR_UINT64_T_FMT "\n", hits);
        ap_rprintf(r, "PromptEnchanterCacheMisses: %" APR_UINT64_T_FMT "\n", misses);
        ap_rprintf(r, "PromptEnchanterRefusals: %" APR_UINT64_T_FMT "\n", refusals);
        ap_rprintf(r, "PromptEnchanterLogQueue: %" APR_INT64_T_FMT "\n", queued);
        return OK;
    }
    ap_rputs("<hr />\n<h2>PromptEnchanter</h2>\n<table>\n", r);
    ap_rprintf(r, "<tr><td>requests</td><td>%" APR_UINT64_T_FMT "</td></tr>\n", req);
    ap_rprintf(r, "<tr><td>in flight (%d processes)</td><td>%" APR_INT64_T_FMT "</td></tr>\n", procs, inflight);
    ap_rprintf(r, "<tr><td>upstream calls</td><td>%" APR_UINT64_T_FMT "</td></tr>\n",
               pe_metrics_value(m, PE_MET_UPSTREAM_SECONDS, 0, 0));
    ap_rprintf(r, "<tr><td>tokens</td><td>%" APR_UINT64_T_FMT "</td></tr>\n", tokens);
    ap_rprintf(r, "<tr><td>response cache hits / misses</td><td>%" APR_UINT64_T_FMT " / %" APR_UINT64_T_FMT
               "</td></tr>\n", hits, misses);
    ap_rprintf(r, "<tr><td>access refusals</td><td>%" APR_UINT64_T_FMT "</td></tr>\n", refusals);
    ap_rprintf(r, "<tr><td>conversation-log records queued</td><td>%" APR_INT64_T_FMT "</td></tr>\n", queued);
    ap_rputs("</table>\n", r);
    return OK;
}

void pe_monitor_register_hooks(apr_pool_t *p)
{
    APR_OPTIONAL_HOOK(ap, status_hook, status_hook, NULL, NULL, APR_HOOK_MIDDLE);
}
