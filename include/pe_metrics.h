/*
 * pe_metrics.h: server-wide counters, gauges and histograms, and their Prometheus text
 * exposition (httpd-free).
 *
 * Every value lives in one shared-memory block that the glue makes once per httpd parent
 * (pe_persist.h) and that every child process inherits, so a scrape answered by any child shows
 * the work of all of them (DESIGN.md: a per-process counter is a bug). Values are 64-bit words
 * changed with atomic additions: no lock on the hot path. A histogram keeps one word per bucket
 * (not cumulative) and the sum in microseconds; the exposition makes the buckets cumulative and
 * derives _count from them, so a scrape is always self-consistent (+Inf bucket == _count).
 *
 * Label sets are fixed here and bounded: route group, status class, upstream outcome, model
 * (the configured models, registered at start-up, plus "other"), token type, cache and result,
 * refusal scope, r_type. No label ever carries a user id, a key or an address.
 *
 * Gauges that belong to a process (requests in flight, conversation-log records queued) are kept
 * per process in a slot table: a process takes a slot when it starts (pe_metrics_proc_attach)
 * and the exposition sums the slots of live processes only, so a child that crashed does not
 * leave its requests counted as in flight for ever.
 *
 * The block also holds the flush generation of the conversation-log queues: a POST to the
 * flush route bumps it, and every child's writer thread, which watches it, writes its queue.
 *
 * Calls made when no block is installed (metrics off, unit tests of other concerns) do nothing.
 */
#ifndef PE_METRICS_H
#define PE_METRICS_H

#include <apr_pools.h>
#include <apr_time.h>

/* The metric families. */
typedef enum {
    PE_MET_REQUESTS = 0,      /* counter {group, code}: requests the module answered */
    PE_MET_UPSTREAM,          /* counter {outcome}: upstream (AI service) calls */
    PE_MET_UPSTREAM_SECONDS,  /* histogram: upstream call time, retries included */
    PE_MET_UPSTREAM_TTFT,     /* histogram: streamed calls, time to the first byte */
    PE_MET_OVERHEAD_SECONDS,  /* histogram: request time minus upstream time */
    PE_MET_TOKENS,            /* counter {model, token_type} */
    PE_MET_COMPLETIONS,       /* counter {model, r_type}: completions answered from upstream */
    PE_MET_CREDITS_TAKEN,     /* counter */
    PE_MET_CREDITS_REFUNDED,  /* counter */
    PE_MET_CACHE,             /* counter {cache, result} */
    PE_MET_REFUSALS,          /* counter {scope}: access-layer refusals */
    PE_MET_RESEARCH_PAGES,    /* counter {result} */
    PE_MET_MSGLOG_ROWS,       /* counter {result} */
    PE_MET_STORE_ERRORS,      /* counter */
    PE_MET_INFLIGHT,          /* gauge (per process, summed) */
    PE_MET_MSGLOG_QUEUE,      /* gauge (per process, summed) */
    PE_MET_USAGELOG_ROWS,     /* counter {result}: API-usage records */
    PE_MET_USAGELOG_QUEUE,    /* gauge (per process, summed) */
    PE_MET__COUNT
} pe_metric_e;

/* code label of PE_MET_REQUESTS: the status class. */
typedef enum { PE_MET_CODE_1XX = 0, PE_MET_CODE_2XX, PE_MET_CODE_3XX, PE_MET_CODE_4XX, PE_MET_CODE_5XX } pe_met_code_e;

/* outcome label of PE_MET_UPSTREAM. */
typedef enum {
    PE_MET_UP_OK = 0, PE_MET_UP_4XX, PE_MET_UP_5XX, PE_MET_UP_TIMEOUT, PE_MET_UP_NETWORK, PE_MET_UP_TOO_LARGE,
    PE_MET_UP_ABORTED, PE_MET_UP_INTERNAL
} pe_met_outcome_e;

/* token_type label of PE_MET_TOKENS. */
typedef enum { PE_MET_TOK_PROMPT = 0, PE_MET_TOK_COMPLETION, PE_MET_TOK_TOTAL } pe_met_token_e;

/* cache and result labels of PE_MET_CACHE. */
typedef enum { PE_MET_CACHE_RESPONSE = 0, PE_MET_CACHE_RESEARCH } pe_met_cache_e;
typedef enum { PE_MET_HIT = 0, PE_MET_MISS, PE_MET_BYPASS } pe_met_result_e;

/* scope label of PE_MET_REFUSALS. */
typedef enum {
    PE_MET_REF_IP_RATE = 0, /* the per-address rate limit (429) */
    PE_MET_REF_KEY_RATE,    /* the per-key rate limit (429) */
    PE_MET_REF_FIREWALL,    /* an address blocked automatically (403) */
    PE_MET_REF_BLOCKED,     /* an address on the blocked list (403) */
    PE_MET_REF_WHITELIST    /* an address outside the whitelist (403) */
} pe_met_scope_e;

/* result label of PE_MET_RESEARCH_PAGES. */
typedef enum { PE_MET_PAGE_FETCHED = 0, PE_MET_PAGE_SSRF_REFUSED, PE_MET_PAGE_FAILED } pe_met_page_e;

/* result label of PE_MET_MSGLOG_ROWS and PE_MET_USAGELOG_ROWS. */
typedef enum { PE_MET_ROWS_WRITTEN = 0, PE_MET_ROWS_DROPPED, PE_MET_ROWS_LOST } pe_met_rows_e;

/* Route groups (the group label of PE_MET_REQUESTS): the bit number of a PE_G_* group, or this. */
#define PE_MET_GROUP_NONE 12 /* no route matched, or refused before routing */
#define PE_MET_GROUPS 13

/** Models the model label can name; later models count as "other". */
#define PE_MET_MODELS_MAX 32
/** Longest model name kept; a longer one counts as "other". */
#define PE_MET_MODEL_LEN 96
/** Processes with a slot of their own at once. */
#define PE_MET_PROCS 1024

/** The metrics block (in shared memory). */
typedef struct pe_metrics_t pe_metrics_t;
/** A process's slot for its gauges. */
typedef struct pe_met_proc_t pe_met_proc_t;

/** Size of the block. */
apr_size_t pe_metrics_size(void);

/**
 * Lay out an empty block in mem (zeroed, pe_metrics_size() bytes).
 * @return the block
 */
pe_metrics_t *pe_metrics_init(void *mem);

/** Install the block that the pe_met_* calls below use in this process (NULL: metrics off). */
void pe_metrics_install(pe_metrics_t *m);

/** The installed block, or NULL. */
pe_metrics_t *pe_metrics_installed(void);

/**
 * Add a model to the model label's values (the parent, at start-up; idempotent).
 * @return its index, or -1 when the table is full or the name too long or empty
 */
int pe_metrics_model_add(pe_metrics_t *m, const char *name);

/** The model label's index of name: a registered model, else "other". */
int pe_met_model(const char *name);

/** r_type label index of a name ("none" for NULL or an unknown name). */
int pe_met_rtype(const char *name);

/** group label index of a PE_G_* group bit (PE_MET_GROUP_NONE for 0). */
int pe_met_group(unsigned group_bit);

/** Add delta to a counter; l1, l2 are its labels' indexes (0 for a label it does not have). */
void pe_met_add(pe_metric_e which, int l1, int l2, apr_uint64_t delta);

/** Add 1 to a counter. */
#define pe_met_inc(which, l1, l2) pe_met_add((which), (l1), (l2), 1)

/** Count one request of a route group that was answered with status. */
void pe_met_request(int group, int status);

/** Count one upstream call by its outcome (pe_upstream's codes) and status, and its time. */
void pe_met_upstream(int outcome, long status, apr_interval_time_t elapsed);

/** Observe a duration in a histogram. */
void pe_met_observe(pe_metric_e which, apr_interval_time_t t);

/** Count the tokens of a completion's usage (values < 0 are skipped). */
void pe_met_tokens(const char *model, apr_int64_t prompt, apr_int64_t completion, apr_int64_t total);

/**
 * Take a slot for this process (child_init; a slot of a process that is gone is reused).
 * @return the slot, or NULL when all are taken (this process's gauges are then not shown)
 */
pe_met_proc_t *pe_metrics_proc_attach(pe_metrics_t *m, apr_int64_t pid);

/** Give the slot back (child exit). */
void pe_metrics_proc_detach(pe_met_proc_t *slot);

/** Add delta to one of this process's gauges (PE_MET_INFLIGHT, PE_MET_MSGLOG_QUEUE, PE_MET_USAGELOG_QUEUE). */
void pe_met_gauge_add(pe_met_proc_t *slot, pe_metric_e which, apr_int64_t delta);

/** The sum of a per-process gauge over live processes; *procs (may be NULL) gets how many. */
apr_int64_t pe_metrics_gauge_sum(pe_metrics_t *m, pe_metric_e which, int *procs);

/** Read a counter (tests, status pages). For a histogram: its number of observations. */
apr_uint64_t pe_metrics_value(pe_metrics_t *m, pe_metric_e which, int l1, int l2);

/** The conversation-log flush generation (every child's writer watches it). */
apr_uint64_t pe_metrics_flush_gen(pe_metrics_t *m);

/** Ask every child to write its conversation-log queue now. @return the new generation */
apr_uint64_t pe_metrics_flush_request(pe_metrics_t *m);

/**
 * The Prometheus text exposition (format 0.0.4) of the block.
 * @param p pool for the text
 * @return a NUL-terminated string
 */
const char *pe_metrics_format(pe_metrics_t *m, apr_pool_t *p);

/** Tell whether a process is alive (the liveness test of the slot table; replaceable by tests). */
typedef int pe_met_alive_fn(apr_int64_t pid);
void pe_metrics_set_alive_fn(pe_met_alive_fn *fn);

#endif
