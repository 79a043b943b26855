/*
 * research_bench.c: runs the research pipeline once against the loopback fakes and prints
 * "elapsed_ms=<n> pages_ok=<n> pages_tried=<n> sources=<n> queries=<n> degraded=<0|1>".
 * Built and driven by bench/research.sh (bench/research_bench.py); not part of the module.
 *
 *   research_bench <search-url> <allow-list> <max-parallel> <depth> <topics-reply-json>
 *
 * allow-list is PEResearchAllowNetworks' syntax (pe_ssrf_allow_parse), e.g. "127.0.0.2/32:8080".
 *
 * The model is a stand-in that answers at once (the topic analysis with the JSON given, the
 * synthesis with a fixed text), so the time measured is the searches and page fetches.
 */
#include "pe_extract.h"
#include "pe_research.h"
#include "pe_logno.h"

#include <apr_general.h>
#include <apr_strings.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The instant model: topics from argv, a fixed synthesis. */
static apr_status_t bench_llm(void *baton, apr_pool_t *p, pe_research_call_e kind, const char *system,
                              const char *user, const char **reply, const char **err)
{
    *reply = kind == PE_RESEARCH_CALL_TOPICS ? (const char *)baton : "synthesis [1]";
    return APR_SUCCESS;
}

/* Silence the per-run log lines. */
static void bench_log(int level, apr_status_t rv, const char *msg)
{
    if (level <= PE_LOG_WARNING)
        fprintf(stderr, "%s\n", msg);
}

int main(int argc, char **argv)
{
    apr_pool_t *p;
    pe_research_conf_t c;
    pe_research_llm_t llm;
    pe_ssrf_policy_t pol;
    pe_ssrf_allow_list_t *allow = NULL;
    pe_research_t r;
    pe_depth_t depth;
    const char *err;

    if (argc != 6) {
        fprintf(stderr, "usage: %s search-url allow-list max-parallel depth topics-json\n", argv[0]);
        return 2;
    }
    apr_initialize();
    atexit(apr_terminate);
    pe_log_set(bench_log);
    pe_extract_init();
    apr_pool_create(&p, NULL);
    if ((err = pe_ssrf_allow_parse(p, argv[2], &allow)) || pe_depth_parse(argv[4], &depth) != 0) {
        fprintf(stderr, "bad argument: %s\n", err ? err : argv[4]);
        return 2;
    }
    memset(&pol, 0, sizeof(pol));
    pol.allow = allow;
    memset(&c, 0, sizeof(c));
    c.search.url = argv[1];
    c.policy = &pol;
    c.max_parallel = atoi(argv[3]);
    c.total_ms = 120000;
    c.ttl = c.page_ttl = c.search_ttl = -1;
    llm.call = bench_llm;
    llm.baton = argv[5];
    c.llm = &llm;
    if (pe_research_run(p, &c, "benchmark query", depth, &r) != APR_SUCCESS)
        return 1;
    printf("elapsed_ms=%ld pages_ok=%d pages_tried=%d sources=%d queries=%d degraded=%d\n",
           (long)apr_time_as_msec(r.elapsed), r.pages_ok, r.pages_tried, r.sources->nelts, r.queries->nelts,
           r.degraded);
    apr_pool_destroy(p);
    return 0;
}
