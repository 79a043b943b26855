/*
 * pe_h_monitoring.c: the monitoring routes (group monitoring), the readiness route (group ready)
 * and the Prometheus exposition (group metrics).
 *
 * Readiness checks each component with a bound: the store (a query through the store's ops),
 * memcached (a get, bounded by PECacheTimeout), the shared-memory tables, the conversation-log
 * writer, the AI service (a TCP connect bounded by PEHealthTimeout, the result reused for
 * PEHealthCacheTime; never a model call), the mail server when PESMTPURL is set (a session up to
 * NOOP, bounded and reused the same way; never a message). The store, the shared memory, the log
 * writer and the AI service are needed to answer completions: one of them down is 503
 * "unhealthy". memcached down is "degraded" (200): the shared-memory cache answers meanwhile;
 * SMTP down is "degraded" too: completions work, only verification mails wait.
 *
 * Who sees what: every caller gets the status and the names of the components that are down;
 * details (errors, times, queue figures), the queue status, the flush and the usage of others
 * need an administrator's session, or `PEMonitorAccess location` where the operator protects
 * the location with Require.
 */
#include "pe_auth.h"
#include "pe_completion.h"
#include "pe_config.h"
#include "pe_email_ap.h"
#include "pe_handlers.h"
#include "pe_log.h"
#include "pe_memcache.h"
#include "pe_monitor_ap.h"
#include "pe_store_ap.h"
#include "pe_version.h"

#include "http_protocol.h"
#include "util_script.h"
#include <apr_network_io.h>
#include <apr_strings.h>
#include <apr_thread_mutex.h>
#include <apr_uri.h>

/* Components checked at most. */
#define PE_NCOMPS 6

/* One component's check. */
typedef struct comp_t {
    const char *name;
    int critical; /* down makes the service unhealthy (else degraded) */
    int up;
    const char *error;
    double ms;
    json_t *extra; /* details for trusted callers, or NULL */
} comp_t;

/* Does the caller see the admin parts? An admin session, or a location the operator trusts. */
static int trusted(request_rec *r)
{
    pe_principal_t *p = NULL;

    if (pe_dir_monitor_access(pe_config_dir(r)) == PE_MONITOR_ACCESS_LOCATION)
        return 1;
    if (!apr_table_get(r->headers_in, "Authorization") && !apr_table_get(r->headers_in, "X-API-Key"))
        return 0;
    return pe_auth_principal(r, &p) == OK && p && p->kind == PE_PRINCIPAL_ADMIN;
}

/* The admin parts: OK, or the 401/403 of a caller who is not an administrator. */
static int require_trusted(request_rec *r)
{
    pe_principal_t *p = NULL;
    int rc;

    if (pe_dir_monitor_access(pe_config_dir(r)) == PE_MONITOR_ACCESS_LOCATION)
        return OK;
    if ((rc = pe_auth_principal(r, &p)) != OK)
        return rc;
    return pe_auth_route_check(r, PE_AUTH_ADMIN, p);
}

/* Milliseconds since t0, to the microsecond. */
static double ms_since(apr_time_t t0)
{
    return (double)(apr_time_now() - t0) / 1000.0;
}

/* ----------------------------------------------------------------------------------------- */
/* Component checks */

static void check_store(request_rec *r, comp_t *c)
{
    apr_time_t t0 = apr_time_now();
    pe_store_t *st = pe_auth_store(r);

    c->name = "store";
    c->critical = 1;
    if (!st) {
        c->error = "no connection to the store";
    }
    else if (pe_store_ping(st) == PE_STORE_OK) {
        c->up = 1;
    }
    else {
        c->error = pe_store_error(st) ? pe_store_error(st) : "the store did not answer";
    }
    c->ms = ms_since(t0);
    if (st)
        c->extra = json_pack("{s:s}", "backend", pe_store_backend_name(st));
}

static void check_memcached(request_rec *r, comp_t *c)
{
    pe_memcache_t *mc = pe_completion_memcache();
    apr_time_t t0 = apr_time_now();
    char *v;
    apr_size_t len;
    apr_status_t rv;

    c->name = "memcached";
    if (!mc) {
        c->error = "no memcached client in this process";
        return;
    }
    rv = pe_memcache_get(mc, r->pool, "pe:health", &v, &len);
    c->up = rv == APR_SUCCESS || rv == APR_NOTFOUND;
    if (!c->up)
        c->error = rv == APR_EAGAIN ? "every server is marked down" : apr_psprintf(r->pool, "%pm", &rv);
    c->ms = ms_since(t0);
}

static void check_shm(request_rec *r, comp_t *c)
{
    pe_srv_conf_t *sc = pe_config_srv(r->server);

    c->name = "shared_memory";
    c->critical = 1;
    c->up = pe_monitor_block() != NULL && (!pe_srv_cache_on(sc) || pe_completion_cache() != NULL);
    if (!c->up)
        c->error = pe_monitor_block() ? "the response cache's table is missing" : "the metrics block is missing";
}

static void check_msglog(request_rec *r, comp_t *c)
{
    pe_msglog_t *q = pe_completion_msglog();
    pe_msglog_stats_t st;

    c->name = "message_log";
    c->critical = 1;
    if (!q) {
        c->error = "the conversation-log writer did not start in this process";
        return;
    }
    c->up = pe_msglog_running(q);
    if (!c->up)
        c->error = "the conversation-log writer has stopped";
    pe_msglog_stats(q, &st);
    c->extra = json_pack("{s:I,s:I,s:I,s:I}", "queued_here", (json_int_t)st.pending, "queued_all_processes",
                         (json_int_t)pe_metrics_gauge_sum(pe_monitor_block(), PE_MET_MSGLOG_QUEUE, NULL),
                         "failed_writes_here", (json_int_t)st.failed, "dropped_here", (json_int_t)st.dropped);
}

/* A remote component's reachability (the AI service, SMTP), reused for PEHealthCacheTime by
 * every thread of this process. */
typedef struct probe_t {
    apr_thread_mutex_t *mu;
    apr_time_t at;
    int up;
    char error[160];
    double ms;
} probe_t;

static probe_t up_cache, smtp_cache;

/* A check: 1 when up, else 0 with *err set; bounded by timeout. */
typedef int probe_fn(request_rec *r, apr_interval_time_t timeout, const char **err);

/* Run fn unless its answer is younger than PEHealthCacheTime, and fill c from the answer. */
static void probe_run(request_rec *r, probe_t *pc, probe_fn *fn, comp_t *c)
{
    pe_srv_conf_t *sc = pe_config_srv(r->server);
    apr_time_t now = apr_time_now();
    const char *err = NULL;

    if (!pc->mu) {
        c->error = "no readiness state in this process";
        return;
    }
    apr_thread_mutex_lock(pc->mu);
    if (!pc->at || now - pc->at >= apr_time_from_msec(pe_srv_health_cache_ms(sc))) {
        /* NB: one thread checks while the others wait for its answer (bounded by the timeout). */
        pc->up = fn(r, apr_time_from_msec(pe_srv_health_timeout_ms(sc)), &err);
        apr_cpystrn(pc->error, err ? err : "", sizeof(pc->error));
        pc->ms = ms_since(now);
        pc->at = apr_time_now();
    }
    c->up = pc->up;
    c->error = c->up ? NULL : apr_pstrdup(r->pool, pc->error);
    c->ms = pc->ms;
    c->extra = json_pack("{s:f}", "checked_seconds_ago", now > pc->at ? (double)(now - pc->at) / 1e6 : 0.0);
    apr_thread_mutex_unlock(pc->mu);
}

/* TCP connect to the host and port of the upstream URL within timeout. */
static int upstream_connect(request_rec *r, apr_interval_time_t timeout, const char **err)
{
    apr_pool_t *p = r->pool;
    const char *url = pe_srv_upstream_url(pe_config_srv(r->server));
    apr_uri_t u;
    apr_sockaddr_t *sa;
    apr_socket_t *sock;
    apr_port_t port;
    apr_status_t rv;

    if (apr_uri_parse(p, url, &u) != APR_SUCCESS || !u.hostname) {
        *err = "the upstream URL cannot be parsed";
        return 0;
    }
    port = u.port ? u.port : apr_uri_port_of_scheme(u.scheme);
    if ((rv = apr_sockaddr_info_get(&sa, u.hostname, APR_UNSPEC, port, 0, p)) != APR_SUCCESS ||
        (rv = apr_socket_create(&sock, sa->family, SOCK_STREAM, APR_PROTO_TCP, p)) != APR_SUCCESS) {
        *err = apr_psprintf(p, "%s: %pm", u.hostname, &rv);
        return 0;
    }
    apr_socket_timeout_set(sock, timeout);
    rv = apr_socket_connect(sock, sa);
    apr_socket_close(sock);
    if (rv != APR_SUCCESS) {
        *err = apr_psprintf(p, "connect to %s:%u: %pm", u.hostname, (unsigned)port, &rv);
        return 0;
    }
    return 1;
}

static void check_upstream(request_rec *r, comp_t *c)
{
    c->name = "upstream";
    c->critical = 1;
    probe_run(r, &up_cache, upstream_connect, c);
}

/* The mail server: a session up to NOOP (connect, EHLO, STARTTLS and AUTH as configured), never a
 * message; bounded by PEHealthTimeout. */
static int smtp_noop(request_rec *r, apr_interval_time_t timeout, const char **err)
{
    pe_smtp_conf_t c;

    pe_email_smtp_conf(r->server, &c);
    c.timeout = timeout;
    return pe_smtp_check(r->pool, &c, err) == APR_SUCCESS;
}

/* SMTP is not needed to answer completions: down is "degraded" (verification mails wait). */
static void check_smtp(request_rec *r, comp_t *c)
{
    c->name = "smtp";
    probe_run(r, &smtp_cache, smtp_noop, c);
}

/* child_init: the locks of the reachability caches. */
void pe_h_monitoring_child_init(apr_pool_t *pchild)
{
    memset(&up_cache, 0, sizeof(up_cache));
    memset(&smtp_cache, 0, sizeof(smtp_cache));
    apr_thread_mutex_create(&up_cache.mu, APR_THREAD_MUTEX_DEFAULT, pchild);
    apr_thread_mutex_create(&smtp_cache.mu, APR_THREAD_MUTEX_DEFAULT, pchild);
}

/* Run the checks; returns how many were filled in. */
static int run_checks(request_rec *r, comp_t *cs)
{
    pe_srv_conf_t *sc = pe_config_srv(r->server);
    int n = 0;

    memset(cs, 0, sizeof(*cs) * PE_NCOMPS);
    check_store(r, &cs[n++]);
    check_shm(r, &cs[n++]);
    if (pe_srv_msglog_on(sc) || pe_srv_usagelog_on(sc))
        check_msglog(r, &cs[n++]);
    if (pe_srv_upstream_url(sc))
        check_upstream(r, &cs[n++]);
    if (pe_srv_cache_on(sc) && pe_srv_cache_servers(sc))
        check_memcached(r, &cs[n++]);
    if (pe_srv_smtp_url(sc))
        check_smtp(r, &cs[n++]);
    return n;
}

/* "healthy", "degraded" or "unhealthy", and the names of what is down. */
static const char *verdict(const comp_t *cs, int n, json_t **down)
{
    int i, bad = 0, worse = 0;

    *down = json_array();
    for (i = 0; i < n; i++)
        if (!cs[i].up) {
            json_array_append_new(*down, json_string(cs[i].name));
            if (cs[i].critical)
                worse = 1;
            else
                bad = 1;
        }
    return worse ? "unhealthy" : bad ? "degraded" : "healthy";
}

/* GET /v1/monitoring/health: every component's status; details for trusted callers. */
int pe_h_monitoring_health(pe_ctx_t *cx)
{
    request_rec *r = cx->r;
    comp_t cs[PE_NCOMPS];
    int n = run_checks(r, cs), i, details = trusted(r);
    json_t *o = pe_json_object(r->pool), *comps = json_object(), *down;
    const char *status = verdict(cs, n, &down);

    for (i = 0; i < n; i++) {
        json_t *c = json_pack("{s:s}", "status", cs[i].up ? "up" : "down");

        if (details) {
            json_object_set_new(c, "critical", json_boolean(cs[i].critical));
            json_object_set_new(c, "latency_ms", json_real((double)(long long)(cs[i].ms * 1000.0 + 0.5) / 1000.0));
            if (cs[i].error)
                json_object_set_new(c, "error", json_string(cs[i].error));
            if (cs[i].extra)
                json_object_update(c, cs[i].extra);
        }
        if (cs[i].extra)
            json_decref(cs[i].extra);
        json_object_set_new(comps, cs[i].name, c);
    }
    json_object_set_new(o, "status", json_string(status));
    json_object_set_new(o, "timestamp", pe_http_time(r->pool, apr_time_now()));
    json_object_set_new(o, "version", json_string(PE_VERSION));
    json_object_set_new(o, "components", comps);
    json_object_set_new(o, "down", down);
    return pe_http_send_json(r, strcmp(status, "unhealthy") ? HTTP_OK : HTTP_SERVICE_UNAVAILABLE, o);
}

/* GET /ready: for load balancers, no credentials: 200 when ready, 503 naming what is down. */
int pe_h_ready(pe_ctx_t *cx)
{
    request_rec *r = cx->r;
    comp_t cs[PE_NCOMPS];
    int n = run_checks(r, cs), i;
    json_t *o = pe_json_object(r->pool), *down;
    const char *status = verdict(cs, n, &down);

    for (i = 0; i < n; i++)
        if (cs[i].extra)
            json_decref(cs[i].extra);
    json_object_set_new(o, "status", json_string(strcmp(status, "unhealthy") ? "ready" : "not_ready"));
    json_object_set_new(o, "down", down);
    return pe_http_send_json(r, strcmp(status, "unhealthy") ? HTTP_OK : HTTP_SERVICE_UNAVAILABLE, o);
}

/* ----------------------------------------------------------------------------------------- */
/* Metrics, queue, flush */

/* GET /metrics: the Prometheus text exposition of the whole server. */
int pe_h_metrics(pe_ctx_t *cx)
{
    request_rec *r = cx->r;
    const char *text;
    apr_size_t len;

    if (!pe_monitor_block())
        return pe_http_error(r, HTTP_SERVICE_UNAVAILABLE, "METRICS_UNAVAILABLE", "the metrics block is missing");
    text = pe_metrics_format(pe_monitor_block(), r->pool);
    len = strlen(text);
    ap_set_content_type(r, "text/plain; version=0.0.4; charset=utf-8");
    apr_table_setn(r->headers_out, "Cache-Control", "no-store");
    ap_set_content_length(r, (apr_off_t)len);
    if (!r->header_only)
        ap_rwrite(text, (int)len, r);
    return OK;
}

static json_t *queue_json(request_rec *r)
{
    pe_srv_conf_t *sc = pe_config_srv(r->server);
    pe_msglog_t *q = pe_completion_msglog();
    int procs = 0;
    apr_int64_t all = pe_metrics_gauge_sum(pe_monitor_block(), PE_MET_MSGLOG_QUEUE, &procs);
    pe_msglog_stats_t st;
    json_t *o;

    memset(&st, 0, sizeof(st));
    if (q)
        pe_msglog_stats(q, &st);
    o = json_pack("{s:I,s:I,s:i,s:i,s:f,s:b,s:i,s:I}", "queue_size", (json_int_t)all, "max_queue_size",
                  (json_int_t)pe_srv_msglog_queue(sc) * (procs > 0 ? procs : 1), "max_queue_size_per_process",
                  pe_srv_msglog_queue(sc), "batch_size", pe_srv_msglog_batch(sc), "flush_interval_seconds",
                  (double)pe_srv_msglog_interval_ms(sc) / 1000.0, "is_running", q && pe_msglog_running(q),
                  "processes", procs, "flush_generation", (json_int_t)pe_metrics_flush_gen(pe_monitor_block()));
    /* the API-usage records ride in the same writers (pe_msglog.h) */
    json_object_set_new(o, "api_usage",
                        json_pack("{s:b,s:I,s:I,s:i,s:I,s:I}", "enabled", pe_srv_usagelog_on(sc), "queue_size",
                                  (json_int_t)pe_metrics_gauge_sum(pe_monitor_block(), PE_MET_USAGELOG_QUEUE, NULL),
                                  "max_queue_size", (json_int_t)pe_srv_usagelog_queue(sc) * (procs > 0 ? procs : 1),
                                  "max_queue_size_per_process", pe_srv_usagelog_queue(sc), "dropped_here",
                                  (json_int_t)st.u_dropped, "retention_seconds",
                                  (json_int_t)(pe_srv_usagelog_retention_ms(sc) / 1000)));
    return o;
}

/* GET /v1/monitoring/queue-status: the conversation-log queues of every process. */
int pe_h_monitoring_queue(pe_ctx_t *cx)
{
    request_rec *r = cx->r;
    json_t *o, *qs;
    int rc;
    double util;

    if ((rc = require_trusted(r)) != OK)
        return rc;
    o = pe_json_object(r->pool);
    qs = queue_json(r);
    util = json_integer_value(json_object_get(qs, "max_queue_size")) > 0
               ? 100.0 * (double)json_integer_value(json_object_get(qs, "queue_size")) /
                     (double)json_integer_value(json_object_get(qs, "max_queue_size"))
               : 0;
    json_object_set_new(o, "timestamp", pe_http_time(r->pool, apr_time_now()));
    json_object_set_new(o, "queue_status", qs);
    json_object_set_new(o, "utilization_percent", json_real(util));
    return pe_http_send_json(r, HTTP_OK, o);
}

/* POST /v1/monitoring/flush-logs: every process's writer writes its queue now (they watch the
 * shared flush generation; each looks every 100 ms). */
int pe_h_monitoring_flush(pe_ctx_t *cx)
{
    request_rec *r = cx->r;
    json_t *o;
    apr_uint64_t gen;
    int rc;

    if ((rc = require_trusted(r)) != OK)
        return rc;
    if (!pe_monitor_block())
        return pe_http_error(r, HTTP_SERVICE_UNAVAILABLE, "METRICS_UNAVAILABLE", "the metrics block is missing");
    gen = pe_metrics_flush_request(pe_monitor_block());
    if (pe_completion_msglog())
        pe_msglog_flush_soon(pe_completion_msglog());
    pe_rlog(r, APLOG_INFO, 0, PE_LOGNO(07004) "log flush %" APR_UINT64_T_FMT " asked of every process",
            gen);
    o = pe_json_object(r->pool);
    json_object_set_new(o, "success", json_true());
    json_object_set_new(o, "message",
                        json_string("Message logs and API-usage records: flush requested in every process"));
    json_object_set_new(o, "flush_generation", json_integer((json_int_t)gen));
    json_object_set_new(o, "timestamp", pe_http_time(r->pool, apr_time_now()));
    return pe_http_send_json(r, HTTP_OK, o);
}

/* ----------------------------------------------------------------------------------------- */
/* Usage */

#define DAY_US ((apr_time_t)86400 * APR_USEC_PER_SEC)

/* GET /v1/monitoring/usage[?days=N][&user_id=ID]: a user's own usage (API key or session), or,
 * for administrators, everyone's or one user's; from the conversation logs, per UTC day. */
int pe_h_monitoring_usage(pe_ctx_t *cx)
{
    request_rec *r = cx->r;
    pe_principal_t *p = NULL;
    pe_store_t *st;
    pe_usage_t u;
    pe_api_usage_sum_t calls;
    apr_table_t *args = NULL;
    const char *user_id = NULL, *username = NULL, *v;
    json_t *o, *sum, *types, *daily;
    apr_int64_t days = 30, first, d;
    apr_time_t now = apr_time_now(), since, until;
    int rc, i, k = 0;

    if (apr_table_get(r->headers_in, "Authorization") || apr_table_get(r->headers_in, "X-API-Key")) {
        if ((rc = pe_auth_principal(r, &p)) != OK)
            return rc;
    }
    ap_args_to_table(r, &args);
    if ((v = apr_table_get(args, "days"))) {
        char *end;

        days = apr_strtoi64(v, &end, 10);
        if (*end || days < 1 || days > 366)
            return pe_http_error(r, HTTP_UNPROCESSABLE_ENTITY, "VALIDATION_ERROR", "days must be 1 to 366");
    }
    if (p && p->kind == PE_PRINCIPAL_USER) {
        user_id = p->id;
        username = p->username;
    }
    else {
        if ((rc = require_trusted(r)) != OK)
            return rc;
        user_id = apr_table_get(args, "user_id");
    }
    if (!(st = pe_auth_store(r)))
        return pe_http_error(r, HTTP_SERVICE_UNAVAILABLE, "STORE_UNAVAILABLE", "the store is unavailable");
    until = (now / DAY_US + 1) * DAY_US;
    first = now / DAY_US - days + 1;
    since = first * DAY_US;
    if (pe_store_usage(st, user_id, since, until, &u) != PE_STORE_OK ||
        pe_store_api_usage_sum(st, user_id, since, until, &calls) != PE_STORE_OK)
        return pe_http_error(r, HTTP_SERVICE_UNAVAILABLE, "STORE_UNAVAILABLE", "Failed to retrieve usage statistics");
    o = pe_json_object(r->pool);
    /* messages and tokens from the conversation logs; API calls and their time from the
     * API-usage records (every request with the API key, whatever its answer) */
    sum = json_pack("{s:I,s:I,s:I,s:f}", "total_messages", (json_int_t)u.messages, "total_tokens",
                    (json_int_t)u.tokens, "total_api_calls", (json_int_t)calls.calls, "avg_processing_time_ms",
                    calls.calls ? (double)calls.latency_ms / (double)calls.calls : 0.0);
    types = json_object();
    for (i = 0; i < u.r_types->nelts; i++) {
        const pe_usage_rtype_t *t = &APR_ARRAY_IDX(u.r_types, i, pe_usage_rtype_t);

        json_object_set_new(types, *t->r_type ? t->r_type : "none", json_integer(t->messages));
    }
    /* every day of the period, days without logs as zeros */
    daily = json_array();
    for (d = first; d < first + days; d++) {
        const pe_usage_day_t *x = k < u.days->nelts ? &APR_ARRAY_IDX(u.days, k, pe_usage_day_t) : NULL;
        char date[16];
        apr_time_exp_t tm;

        apr_time_exp_gmt(&tm, d * DAY_US);
        apr_snprintf(date, sizeof(date), "%04d-%02d-%02d", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday);
        if (x && x->day == d) {
            json_array_append_new(daily, json_pack("{s:s,s:I,s:I}", "date", date, "messages", (json_int_t)x->messages,
                                                   "tokens", (json_int_t)x->tokens));
            k++;
        }
        else {
            json_array_append_new(daily, json_pack("{s:s,s:i,s:i}", "date", date, "messages", 0, "tokens", 0));
        }
    }
    json_object_set_new(o, "user_id", user_id ? json_string(user_id) : json_null());
    if (username)
        json_object_set_new(o, "username", json_string(username));
    json_object_set_new(o, "timestamp", pe_http_time(r->pool, now));
    json_object_set_new(o, "period", json_string(apr_psprintf(r->pool, "last_%" APR_INT64_T_FMT "_days", days)));
    json_object_set_new(o, "summary", sum);
    json_object_set_new(o, "usage_by_type", types);
    json_object_set_new(o, "daily_usage", daily);
    return pe_http_send_json(r, HTTP_OK, o);
}
