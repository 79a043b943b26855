/*
 * pe_metrics.c: the metric registry in shared memory and its Prometheus text exposition
 * (see pe_metrics.h).
 */
#include "pe_metrics.h"

#include <apr_strings.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#define MAGIC 0x70656d6574723033ULL /* "pemetr03" */

/* One label dimension: its name and values (NULL values: the model table). */
typedef struct {
    const char *name;
    const char *const *values;
    int n;
} dim_t;

typedef enum { T_COUNTER, T_GAUGE, T_HISTOGRAM } type_e;

/* One family. */
typedef struct {
    const char *name, *help;
    type_e type;
    const dim_t *d1, *d2;              /* NULL when the family has fewer labels */
    const apr_interval_time_t *bounds; /* histograms: upper bounds in microseconds */
    int nbounds;
} family_t;

static const char *const v_group[PE_MET_GROUPS] = {"core",    "users",      "email", "prompt",  "openai",
                                                   "batch",   "admin",      "support", "monitoring", "diag",
                                                   "metrics", "ready",      "none"};
static const char *const v_code[] = {"1xx", "2xx", "3xx", "4xx", "5xx"};
static const char *const v_outcome[] = {"ok",        "http_4xx", "http_5xx", "timeout",
                                        "network",   "too_large", "aborted", "internal"};
static const char *const v_token[] = {"prompt", "completion", "total"};
static const char *const v_rtype[] = {"bpe", "bcot", "hcot", "react", "tot", "custom", "none"};
static const char *const v_cache[] = {"response", "research"};
static const char *const v_result[] = {"hit", "miss", "bypass"};
static const char *const v_scope[] = {"ip_rate_limit", "key_rate_limit", "firewall", "blocked_list", "whitelist"};
static const char *const v_page[] = {"fetched", "ssrf_refused", "failed"};
static const char *const v_rows[] = {"written", "dropped", "lost"};

#define DIM(nm, arr) {nm, arr, (int)(sizeof(arr) / sizeof(arr[0]))}
static const dim_t d_group = DIM("group", v_group);
static const dim_t d_code = DIM("code", v_code);
static const dim_t d_outcome = DIM("outcome", v_outcome);
static const dim_t d_token = DIM("token_type", v_token);
static const dim_t d_rtype = DIM("r_type", v_rtype);
static const dim_t d_cache = DIM("cache", v_cache);
static const dim_t d_result = DIM("result", v_result);
static const dim_t d_scope = DIM("scope", v_scope);
static const dim_t d_page = DIM("result", v_page);
static const dim_t d_rows = DIM("result", v_rows);
static const dim_t d_model = {"model", NULL, PE_MET_MODELS_MAX + 1};

#define MS(x) ((apr_interval_time_t)((x) * 1000))
static const apr_interval_time_t b_latency[] = {MS(50),    MS(100),   MS(250),   MS(500),   MS(1000),  MS(2500),
                                                MS(5000),  MS(10000), MS(20000), MS(30000), MS(60000), MS(120000)};
static const apr_interval_time_t b_overhead[] = {500,     1000,     2500,     5000,     10000,   25000,
                                                 50000,   100000,   250000,   500000,   1000000, 2500000};
#define NB(a) (int)(sizeof(a) / sizeof(a[0]))

static const family_t fams[PE_MET__COUNT] = {
    [PE_MET_REQUESTS] = {"promptenchanter_requests_total", "Requests answered by the module, by route group and "
                         "status class.", T_COUNTER, &d_group, &d_code, NULL, 0},
    [PE_MET_UPSTREAM] = {"promptenchanter_upstream_requests_total", "Calls to the AI service (retries included in "
                         "one call), by outcome.", T_COUNTER, &d_outcome, NULL, NULL, 0},
    [PE_MET_UPSTREAM_SECONDS] = {"promptenchanter_upstream_request_duration_seconds", "Time of a call to the AI "
                                 "service, retries and backoff included.", T_HISTOGRAM, NULL, NULL, b_latency,
                                 NB(b_latency)},
    [PE_MET_UPSTREAM_TTFT] = {"promptenchanter_upstream_time_to_first_token_seconds", "Streamed calls: time until "
                              "the first byte of the answer.", T_HISTOGRAM, NULL, NULL, b_latency, NB(b_latency)},
    [PE_MET_OVERHEAD_SECONDS] = {"promptenchanter_gateway_overhead_seconds", "Completion requests: time spent in "
                                 "the gateway, the upstream call excluded.", T_HISTOGRAM, NULL, NULL, b_overhead,
                                 NB(b_overhead)},
    [PE_MET_TOKENS] = {"promptenchanter_tokens_total", "Tokens the AI service reported, by model and type.",
                       T_COUNTER, &d_model, &d_token, NULL, 0},
    [PE_MET_COMPLETIONS] = {"promptenchanter_completions_total", "Completions answered by the AI service, by model "
                            "and r_type.", T_COUNTER, &d_model, &d_rtype, NULL, 0},
    [PE_MET_CREDITS_TAKEN] = {"promptenchanter_credits_taken_total", "Conversation credits taken.", T_COUNTER, NULL,
                              NULL, NULL, 0},
    [PE_MET_CREDITS_REFUNDED] = {"promptenchanter_credits_refunded_total", "Conversation credits given back after a "
                                 "failed completion.", T_COUNTER, NULL, NULL, NULL, 0},
    [PE_MET_CACHE] = {"promptenchanter_cache_requests_total", "Cache look-ups by cache and result (bypass: the "
                      "answer could not be cached).", T_COUNTER, &d_cache, &d_result, NULL, 0},
    [PE_MET_REFUSALS] = {"promptenchanter_access_refusals_total", "Requests refused by the access layer, by scope.",
                         T_COUNTER, &d_scope, NULL, NULL, 0},
    [PE_MET_RESEARCH_PAGES] = {"promptenchanter_research_pages_total", "Pages research wanted, by result.",
                               T_COUNTER, &d_page, NULL, NULL, 0},
    [PE_MET_MSGLOG_ROWS] = {"promptenchanter_message_log_records_total", "Conversation-log records, by result.",
                            T_COUNTER, &d_rows, NULL, NULL, 0},
    [PE_MET_STORE_ERRORS] = {"promptenchanter_store_errors_total", "Store operations that failed (after the retry).",
                             T_COUNTER, NULL, NULL, NULL, 0},
    [PE_MET_INFLIGHT] = {"promptenchanter_requests_in_flight", "Requests being handled now.", T_GAUGE, NULL, NULL,
                         NULL, 0},
    [PE_MET_MSGLOG_QUEUE] = {"promptenchanter_message_log_queue_records", "Conversation-log records queued in memory, "
                             "not written yet.", T_GAUGE, NULL, NULL, NULL, 0},
    [PE_MET_USAGELOG_ROWS] = {"promptenchanter_usage_log_records_total", "API-usage records, by result.", T_COUNTER,
                              &d_rows, NULL, NULL, 0},
    [PE_MET_USAGELOG_QUEUE] = {"promptenchanter_usage_log_queue_records", "API-usage records queued in memory, not "
                               "written yet.", T_GAUGE, NULL, NULL, NULL, 0},
};

/* Per-process gauges, in the order of the slot's words. */
#define GAUGE_INDEX(w) ((w) == PE_MET_INFLIGHT ? 0 : (w) == PE_MET_MSGLOG_QUEUE ? 1 : 2)
#define IS_PROC_GAUGE(w) ((w) == PE_MET_INFLIGHT || (w) == PE_MET_MSGLOG_QUEUE || (w) == PE_MET_USAGELOG_QUEUE)

/* A slot fills a cache line of its own: the gauges of two processes never share one. */
struct pe_met_proc_t {
    volatile apr_int64_t pid;
    volatile apr_int64_t g[3];
    char pad[64 - 4 * sizeof(apr_int64_t)];
};

/*
 * Counter rows: every family's words exist PE_MET_ROWS + 1 times. A process with a slot adds to
 * row 1 + (slot % PE_MET_ROWS), one without (all slots taken, or none attached) to row 0, and a
 * read sums the rows. So the children of a server do not update the same cache lines (a word
 * that every process changes would move between the cores on every request); the additions
 * stay atomic, since the threads of one process and processes whose slots share a row still meet
 * on a row. Rows are never cleared: the sum counts the work of processes that have gone too.
 */
#define PE_MET_ROWS 64

struct pe_metrics_t {
    apr_uint64_t magic;
    volatile apr_uint64_t flush_gen;
    volatile apr_uint32_t nmodels;
    char models[PE_MET_MODELS_MAX][PE_MET_MODEL_LEN];
    struct pe_met_proc_t procs[PE_MET_PROCS];
    apr_uint32_t base[PE_MET__COUNT]; /* first word of each family (in a row) */
    apr_uint32_t nwords;              /* words of a row that are used */
    apr_uint32_t rowwords;            /* words of a row, a whole number of cache lines */
    volatile apr_uint64_t w[] __attribute__((aligned(64))); /* PE_MET_ROWS + 1 rows */
};

static pe_metrics_t *installed;
/* The first word of this process's row in the installed block. */
static volatile apr_uint64_t *row;

static int pid_alive(apr_int64_t pid)
{
    return pid > 0 && (kill((pid_t)pid, 0) == 0 || errno == EPERM);
}

static pe_met_alive_fn *alive_fn = pid_alive;

void pe_metrics_set_alive_fn(pe_met_alive_fn *fn)
{
    alive_fn = fn ? fn : pid_alive;
}

/* Words of one series of a family. */
static apr_uint32_t series_words(const family_t *f)
{
    return f->type == T_HISTOGRAM ? (apr_uint32_t)f->nbounds + 2 : 1; /* buckets, +Inf, sum */
}

static apr_uint32_t nseries(const family_t *f)
{
    return (apr_uint32_t)((f->d1 ? f->d1->n : 1) * (f->d2 ? f->d2->n : 1));
}

static apr_uint32_t total_words(void)
{
    apr_uint32_t n = 0;
    int i;

    for (i = 0; i < PE_MET__COUNT; i++)
        if (fams[i].type != T_GAUGE)
            n += nseries(&fams[i]) * series_words(&fams[i]);
    return n;
}

/* Words of one row: the used words rounded up to whole cache lines. */
static apr_uint32_t row_words(void)
{
    return (total_words() + 7u) & ~7u;
}

/* The block proper; pe_metrics_size() adds room to place it on a cache line (a shared-memory
 * segment's base is only 8-byte aligned: apr_shm keeps its own header in front). */
static apr_size_t block_size(void)
{
    return sizeof(pe_metrics_t) + sizeof(apr_uint64_t) * row_words() * (PE_MET_ROWS + 1);
}

apr_size_t pe_metrics_size(void)
{
    return block_size() + 63;
}

/* The sum of a word over the rows. */
static apr_uint64_t word_sum(const pe_metrics_t *m, long w)
{
    apr_uint64_t v = 0;
    int i;

    for (i = 0; i <= PE_MET_ROWS; i++)
        v += __atomic_load_n(&m->w[(long)i * m->rowwords + w], __ATOMIC_RELAXED);
    return v;
}

pe_metrics_t *pe_metrics_init(void *mem)
{
    pe_metrics_t *m = (pe_metrics_t *)(((apr_uintptr_t)mem + 63) & ~(apr_uintptr_t)63);
    apr_uint32_t n = 0;
    int i;

    memset(m, 0, block_size());
    for (i = 0; i < PE_MET__COUNT; i++) {
        m->base[i] = n;
        if (fams[i].type != T_GAUGE)
            n += nseries(&fams[i]) * series_words(&fams[i]);
    }
    m->nwords = n;
    m->rowwords = row_words();
    m->magic = MAGIC;
    return m;
}

void pe_metrics_install(pe_metrics_t *m)
{
    installed = m;
    row = m ? m->w : NULL; /* row 0 until this process takes a slot */
}

pe_metrics_t *pe_metrics_installed(void)
{
    return installed;
}

int pe_metrics_model_add(pe_metrics_t *m, const char *name)
{
    apr_uint32_t i, n = m->nmodels;

    if (!name || !*name || strlen(name) >= PE_MET_MODEL_LEN)
        return -1;
    for (i = 0; i < n; i++)
        if (!strcmp(m->models[i], name))
            return (int)i;
    if (n >= PE_MET_MODELS_MAX)
        return -1;
    /* NB: only the parent adds (at start-up); readers see the count after the name is written. */
    apr_cpystrn(m->models[n], name, PE_MET_MODEL_LEN);
    __atomic_store_n(&m->nmodels, n + 1, __ATOMIC_RELEASE);
    return (int)n;
}

int pe_met_model(const char *name)
{
    apr_uint32_t i, n;

    if (!installed || !name)
        return PE_MET_MODELS_MAX;
    n = __atomic_load_n(&installed->nmodels, __ATOMIC_ACQUIRE);
    for (i = 0; i < n; i++)
        if (!strcmp(installed->models[i], name))
            return (int)i;
    return PE_MET_MODELS_MAX;
}

int pe_met_rtype(const char *name)
{
    int i;

    for (i = 0; name && i < d_rtype.n - 1; i++)
        if (!strcmp(v_rtype[i], name))
            return i;
    return d_rtype.n - 1;
}

int pe_met_group(unsigned bit)
{
    int i;

    for (i = 0; i < PE_MET_GROUP_NONE; i++)
        if (bit == (1u << i))
            return i;
    return PE_MET_GROUP_NONE;
}

/* The word of a series; -1 when a label is out of range. */
static long word_of(const pe_metrics_t *m, pe_metric_e which, int l1, int l2)
{
    const family_t *f = &fams[which];
    int n1 = f->d1 ? f->d1->n : 1, n2 = f->d2 ? f->d2->n : 1;

    if (l1 < 0 || l1 >= n1 || l2 < 0 || l2 >= n2)
        return -1;
    return (long)m->base[which] + (long)(l1 * n2 + l2) * (long)series_words(f);
}

static void add_word(long w, apr_uint64_t d)
{
    __atomic_fetch_add(&row[w], d, __ATOMIC_RELAXED);
}

void pe_met_add(pe_metric_e which, int l1, int l2, apr_uint64_t delta)
{
    long w;

    if (!installed || which < 0 || which >= PE_MET__COUNT || fams[which].type != T_COUNTER)
        return;
    if ((w = word_of(installed, which, l1, l2)) >= 0)
        add_word(w, delta);
}

void pe_met_request(int group, int status)
{
    int c = status / 100 - 1;

    if (c < 0 || c > PE_MET_CODE_5XX)
        c = PE_MET_CODE_5XX;
    pe_met_add(PE_MET_REQUESTS, group, c, 1);
}

void pe_met_upstream(int outcome, long status, apr_interval_time_t elapsed)
{
    /* pe_upstream_outcome_e: OK, HTTP, TIMEOUT, NETWORK, TOO_LARGE, ABORTED, INTERNAL */
    static const int map[] = {PE_MET_UP_OK,       PE_MET_UP_5XX,     PE_MET_UP_TIMEOUT, PE_MET_UP_NETWORK,
                              PE_MET_UP_TOO_LARGE, PE_MET_UP_ABORTED, PE_MET_UP_INTERNAL};
    int o = outcome >= 0 && outcome < (int)(sizeof(map) / sizeof(map[0])) ? map[outcome] : PE_MET_UP_INTERNAL;

    if (outcome == 1 && status < 500)
        o = PE_MET_UP_4XX;
    pe_met_add(PE_MET_UPSTREAM, o, 0, 1);
    pe_met_observe(PE_MET_UPSTREAM_SECONDS, elapsed);
}

void pe_met_observe(pe_metric_e which, apr_interval_time_t t)
{
    const family_t *f;
    long w;
    int b;

    if (!installed || which < 0 || which >= PE_MET__COUNT || fams[which].type != T_HISTOGRAM)
        return;
    f = &fams[which];
    if (t < 0)
        t = 0;
    w = (long)installed->base[which];
    for (b = 0; b < f->nbounds && t > f->bounds[b]; b++)
        ;
    add_word(w + b, 1);
    add_word(w + f->nbounds + 1, (apr_uint64_t)t);
}

void pe_met_tokens(const char *model, apr_int64_t prompt, apr_int64_t completion, apr_int64_t total)
{
    int mi;

    if (!installed)
        return;
    mi = pe_met_model(model);
    if (prompt > 0)
        pe_met_add(PE_MET_TOKENS, mi, PE_MET_TOK_PROMPT, (apr_uint64_t)prompt);
    if (completion > 0)
        pe_met_add(PE_MET_TOKENS, mi, PE_MET_TOK_COMPLETION, (apr_uint64_t)completion);
    if (total > 0)
        pe_met_add(PE_MET_TOKENS, mi, PE_MET_TOK_TOTAL, (apr_uint64_t)total);
}

/* This process's counters go to the row of slot i from now on. */
static pe_met_proc_t *slot_taken(pe_metrics_t *m, pe_met_proc_t *s, int i)
{
    if (m == installed)
        row = m->w + (long)(1 + i % PE_MET_ROWS) * m->rowwords;
    return s;
}

pe_met_proc_t *pe_metrics_proc_attach(pe_metrics_t *m, apr_int64_t pid)
{
    int pass, i;

    if (!m)
        return NULL;
    /* First a free slot, then one whose process is gone. */
    for (pass = 0; pass < 2; pass++) {
        for (i = 0; i < PE_MET_PROCS; i++) {
            pe_met_proc_t *s = &m->procs[i];
            apr_int64_t old = __atomic_load_n(&s->pid, __ATOMIC_ACQUIRE);

            if (old == pid) {
                s->g[0] = s->g[1] = s->g[2] = 0;
                return slot_taken(m, s, i);
            }
            if ((pass == 0 && old != 0) || (pass == 1 && (old == 0 || alive_fn(old))))
                continue;
            if (__atomic_compare_exchange_n(&s->pid, &old, pid, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
                __atomic_store_n(&s->g[0], 0, __ATOMIC_RELAXED);
                __atomic_store_n(&s->g[1], 0, __ATOMIC_RELAXED);
                __atomic_store_n(&s->g[2], 0, __ATOMIC_RELAXED);
                return slot_taken(m, s, i);
            }
        }
    }
    return NULL;
}

void pe_metrics_proc_detach(pe_met_proc_t *s)
{
    if (!s)
        return;
    __atomic_store_n(&s->g[0], 0, __ATOMIC_RELAXED);
    __atomic_store_n(&s->g[1], 0, __ATOMIC_RELAXED);
    __atomic_store_n(&s->g[2], 0, __ATOMIC_RELAXED);
    __atomic_store_n(&s->pid, 0, __ATOMIC_RELEASE);
}

void pe_met_gauge_add(pe_met_proc_t *s, pe_metric_e which, apr_int64_t delta)
{
    if (s && IS_PROC_GAUGE(which))
        __atomic_fetch_add(&s->g[GAUGE_INDEX(which)], delta, __ATOMIC_RELAXED);
}

apr_int64_t pe_metrics_gauge_sum(pe_metrics_t *m, pe_metric_e which, int *procs)
{
    apr_int64_t sum = 0;
    int i, n = 0;

    if (procs)
        *procs = 0;
    if (!m || !IS_PROC_GAUGE(which))
        return 0;
    for (i = 0; i < PE_MET_PROCS; i++) {
        apr_int64_t pid = __atomic_load_n(&m->procs[i].pid, __ATOMIC_ACQUIRE);

        if (!pid || !alive_fn(pid))
            continue;
        n++;
        sum += __atomic_load_n(&m->procs[i].g[GAUGE_INDEX(which)], __ATOMIC_RELAXED);
    }
    if (procs)
        *procs = n;
    return sum;
}

apr_uint64_t pe_metrics_value(pe_metrics_t *m, pe_metric_e which, int l1, int l2)
{
    const family_t *f;
    apr_uint64_t v = 0;
    long w;
    int b;

    if (!m || which < 0 || which >= PE_MET__COUNT || fams[which].type == T_GAUGE)
        return 0;
    f = &fams[which];
    if ((w = word_of(m, which, l1, l2)) < 0)
        return 0;
    if (f->type == T_COUNTER)
        return word_sum(m, w);
    for (b = 0; b <= f->nbounds; b++)
        v += word_sum(m, w + b);
    return v;
}

apr_uint64_t pe_metrics_flush_gen(pe_metrics_t *m)
{
    return m ? __atomic_load_n(&m->flush_gen, __ATOMIC_ACQUIRE) : 0;
}

apr_uint64_t pe_metrics_flush_request(pe_metrics_t *m)
{
    return m ? __atomic_add_fetch(&m->flush_gen, 1, __ATOMIC_ACQ_REL) : 0;
}

/* ----------------------------------------------------------------------------------------- */
/* Exposition */

/* A label value escaped for the text format (backslash, double quote, newline). */
static const char *esc(apr_pool_t *p, const char *s)
{
    apr_size_t n = 0;
    const char *c;
    char *out, *o;

    for (c = s; *c; c++)
        n += (*c == '\\' || *c == '"' || *c == '\n') ? 2 : 1;
    if (n == (apr_size_t)(c - s))
        return s;
    o = out = apr_palloc(p, n + 1);
    for (c = s; *c; c++) {
        if (*c == '\\' || *c == '"' || *c == '\n') {
            *o++ = '\\';
            *o++ = *c == '\n' ? 'n' : *c;
        }
        else {
            *o++ = *c;
        }
    }
    *o = '\0';
    return out;
}

/* The value of a label (NULL: a model slot not in use). */
static const char *label_value(pe_metrics_t *m, const dim_t *d, int i, apr_uint32_t nmodels)
{
    if (d->values)
        return d->values[i];
    if (i == PE_MET_MODELS_MAX)
        return "other";
    return (apr_uint32_t)i < nmodels ? m->models[i] : NULL;
}

/* A number as Prometheus reads it ("0.05", "120"); NB: libc's, since APR's %g drops the leading 0. */
static const char *fnum(apr_pool_t *p, int fixed, double v)
{
    char buf[64];

    if (fixed)
        snprintf(buf, sizeof(buf), "%.6f", v);
    else
        snprintf(buf, sizeof(buf), "%.6g", v);
    return apr_pstrdup(p, buf);
}

const char *pe_metrics_format(pe_metrics_t *m, apr_pool_t *p)
{
    struct iovec_s {
        char *buf;
        apr_size_t len, cap;
    } out = {NULL, 0, 0};
    apr_uint32_t nmodels = __atomic_load_n(&m->nmodels, __ATOMIC_ACQUIRE);
    int fi;

#define EMIT(...)                                                                                  \
    do {                                                                                           \
        const char *s_ = apr_psprintf(p, __VA_ARGS__);                                             \
        apr_size_t l_ = strlen(s_);                                                                \
        if (out.len + l_ + 1 > out.cap) {                                                          \
            apr_size_t c_ = out.cap ? out.cap * 2 : 16384;                                         \
            char *b_;                                                                              \
            while (c_ < out.len + l_ + 1)                                                          \
                c_ *= 2;                                                                           \
            b_ = apr_palloc(p, c_);                                                                \
            if (out.len)                                                                           \
                memcpy(b_, out.buf, out.len);                                                      \
            out.buf = b_;                                                                          \
            out.cap = c_;                                                                          \
        }                                                                                          \
        memcpy(out.buf + out.len, s_, l_ + 1);                                                     \
        out.len += l_;                                                                             \
    } while (0)

    for (fi = 0; fi < PE_MET__COUNT; fi++) {
        const family_t *f = &fams[fi];
        int n1 = f->d1 ? f->d1->n : 1, n2 = f->d2 ? f->d2->n : 1, i, j;

        EMIT("# HELP %s %s\n# TYPE %s %s\n", f->name, f->help, f->name,
             f->type == T_COUNTER ? "counter" : f->type == T_GAUGE ? "gauge" : "histogram");
        if (f->type == T_GAUGE) {
            EMIT("%s %" APR_INT64_T_FMT "\n", f->name, pe_metrics_gauge_sum(m, (pe_metric_e)fi, NULL));
            continue;
        }
        for (i = 0; i < n1; i++) {
            const char *v1 = f->d1 ? label_value(m, f->d1, i, nmodels) : "";

            if (!v1)
                continue;
            for (j = 0; j < n2; j++) {
                const char *v2 = f->d2 ? label_value(m, f->d2, j, nmodels) : "";
                long w = (long)m->base[fi] + (long)(i * n2 + j) * (long)series_words(f);
                const char *labels = "";

                if (!v2)
                    continue;
                if (f->d1 && f->d2)
                    labels = apr_psprintf(p, "%s=\"%s\",%s=\"%s\"", f->d1->name, esc(p, v1), f->d2->name, esc(p, v2));
                else if (f->d1)
                    labels = apr_psprintf(p, "%s=\"%s\"", f->d1->name, esc(p, v1));
                if (f->type == T_COUNTER) {
                    EMIT("%s%s%s%s %" APR_UINT64_T_FMT "\n", f->name, *labels ? "{" : "", labels, *labels ? "}" : "",
                         word_sum(m, w));
                }
                else {
                    /* Histogram: names without _total; cumulative buckets; _count = the +Inf bucket. */
                    apr_uint64_t cum = 0;
                    const char *sep = *labels ? "," : "";
                    int b;

                    for (b = 0; b <= f->nbounds; b++) {
                        cum += word_sum(m, w + b);
                        EMIT("%s_bucket{%s%sle=\"%s\"} %" APR_UINT64_T_FMT "\n", f->name, labels, sep,
                             b < f->nbounds ? fnum(p, 0, (double)f->bounds[b] / 1e6) : "+Inf", cum);
                    }
                    EMIT("%s_sum%s%s%s %s\n", f->name, *labels ? "{" : "", labels, *labels ? "}" : "",
                         fnum(p, 1, (double)word_sum(m, w + f->nbounds + 1) / 1e6));
                    EMIT("%s_count%s%s%s %" APR_UINT64_T_FMT "\n", f->name, *labels ? "{" : "", labels,
                         *labels ? "}" : "", cum);
                }
            }
        }
    }
#undef EMIT
    return out.buf ? out.buf : "";
}
