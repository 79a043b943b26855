/* test_metrics.c: the metric registry (shared memory, atomics) and its text exposition. */
#include "pe_metrics.h"
#include "pe_test.h"

#include <apr_shm.h>
#include <apr_strings.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* Pool cleanup: the block goes with the test's pool, so nothing stays installed after it (with
 * CK_FORK=no the next tests run in this process). */
static apr_status_t uninstall(void *data)
{
    (void)data;
    pe_metrics_install(NULL);
    return APR_SUCCESS;
}

/* A block in an anonymous shared segment (inherited by forked processes), installed until the
 * test's pool is cleaned up. */
static pe_metrics_t *block(void)
{
    apr_shm_t *shm;

    ck_assert_int_eq(apr_shm_create(&shm, pe_metrics_size(), NULL, pe_tp), APR_SUCCESS);
    pe_metrics_install(pe_metrics_init(apr_shm_baseaddr_get(shm)));
    apr_pool_cleanup_register(pe_tp, NULL, uninstall, apr_pool_cleanup_null);
    return pe_metrics_installed();
}

/* The value of the line `series value` in text; -1 when absent. */
static double line_value(const char *text, const char *series)
{
    const char *p = text;
    size_t n = strlen(series);

    while ((p = strstr(p, series))) {
        if ((p == text || p[-1] == '\n') && p[n] == ' ')
            return atof(p + n + 1);
        p += n;
    }
    return -1;
}

START_TEST(counters_and_labels)
{
    pe_metrics_t *m = block();
    const char *t;

    pe_met_request(pe_met_group(0x008u), 200);
    pe_met_request(pe_met_group(0x008u), 200);
    pe_met_request(pe_met_group(0x008u), 429);
    pe_met_request(pe_met_group(0), 404);
    pe_met_request(pe_met_group(0x008u), 999); /* out of range: counted as 5xx */
    pe_met_inc(PE_MET_CACHE, PE_MET_CACHE_RESPONSE, PE_MET_HIT);
    pe_met_add(PE_MET_CACHE, 7, 0, 1); /* out of range: ignored */
    ck_assert_uint_eq(pe_metrics_value(m, PE_MET_REQUESTS, 3, PE_MET_CODE_2XX), 2);
    ck_assert_uint_eq(pe_metrics_value(m, PE_MET_REQUESTS, 3, PE_MET_CODE_4XX), 1);
    ck_assert_uint_eq(pe_metrics_value(m, PE_MET_REQUESTS, 3, PE_MET_CODE_5XX), 1);
    t = pe_metrics_format(m, pe_tp);
    ck_assert_double_eq(line_value(t, "promptenchanter_requests_total{group=\"prompt\",code=\"2xx\"}"), 2);
    ck_assert_double_eq(line_value(t, "promptenchanter_requests_total{group=\"none\",code=\"4xx\"}"), 1);
    ck_assert_double_eq(line_value(t, "promptenchanter_requests_total{group=\"users\",code=\"2xx\"}"), 0);
    ck_assert_double_eq(line_value(t, "promptenchanter_cache_requests_total{cache=\"response\",result=\"hit\"}"), 1);
    ck_assert_ptr_nonnull(strstr(t, "# TYPE promptenchanter_requests_total counter\n"));
    ck_assert_ptr_nonnull(strstr(t, "# TYPE promptenchanter_requests_in_flight gauge\n"));
    pe_metrics_install(NULL);
    pe_met_request(pe_met_group(0x008u), 200); /* metrics off: nothing happens */
    ck_assert_uint_eq(pe_metrics_value(m, PE_MET_REQUESTS, 3, PE_MET_CODE_2XX), 2);
}
END_TEST

/* Models: registered ones by name, anything else "other"; names escaped; the table bounded. */
START_TEST(models_bounded_and_escaped)
{
    pe_metrics_t *m = block();
    const char *t;
    int i;

    ck_assert_int_eq(pe_metrics_model_add(m, "gpt-4o-mini"), 0);
    ck_assert_int_eq(pe_metrics_model_add(m, "gpt-4o-mini"), 0);
    ck_assert_int_eq(pe_metrics_model_add(m, "we\"ird\\m"), 1);
    ck_assert_int_eq(pe_metrics_model_add(m, ""), -1);
    for (i = 2; i < PE_MET_MODELS_MAX; i++)
        ck_assert_int_eq(pe_metrics_model_add(m, apr_psprintf(pe_tp, "m%d", i)), i);
    ck_assert_int_eq(pe_metrics_model_add(m, "one-too-many"), -1);
    pe_met_tokens("gpt-4o-mini", 10, 5, 15);
    pe_met_tokens("we\"ird\\m", 1, -1, 1);
    pe_met_tokens("user-chosen-model", 3, 4, 7);
    pe_met_tokens("one-too-many", 1, 1, 2);
    t = pe_metrics_format(m, pe_tp);
    ck_assert_double_eq(line_value(t, "promptenchanter_tokens_total{model=\"gpt-4o-mini\",token_type=\"prompt\"}"), 10);
    ck_assert_double_eq(line_value(t, "promptenchanter_tokens_total{model=\"gpt-4o-mini\",token_type=\"total\"}"), 15);
    ck_assert_double_eq(line_value(t, "promptenchanter_tokens_total{model=\"we\\\"ird\\\\m\",token_type=\"prompt\"}"), 1);
    ck_assert_double_eq(line_value(t, "promptenchanter_tokens_total{model=\"other\",token_type=\"completion\"}"), 5);
    ck_assert_double_eq(line_value(t, "promptenchanter_tokens_total{model=\"other\",token_type=\"total\"}"), 9);
    ck_assert_ptr_null(strstr(t, "user-chosen-model"));
    ck_assert_int_eq(pe_met_rtype("react"), 3);
    ck_assert_int_eq(pe_met_rtype("bogus"), 6);
    ck_assert_int_eq(pe_met_rtype(NULL), 6);
}
END_TEST

/* Histograms: cumulative buckets, +Inf == _count, sum in seconds. */
START_TEST(histogram_buckets)
{
    pe_metrics_t *m = block();
    const char *t;
    const char *h = "promptenchanter_upstream_request_duration_seconds";

    pe_met_observe(PE_MET_UPSTREAM_SECONDS, apr_time_from_msec(30));   /* <= 0.05 */
    pe_met_observe(PE_MET_UPSTREAM_SECONDS, apr_time_from_msec(50));   /* == 0.05: in le="0.05" */
    pe_met_observe(PE_MET_UPSTREAM_SECONDS, apr_time_from_msec(700));  /* <= 1 */
    pe_met_observe(PE_MET_UPSTREAM_SECONDS, apr_time_from_sec(500));   /* +Inf only */
    pe_met_observe(PE_MET_UPSTREAM_SECONDS, -5);                       /* clamped to 0 */
    t = pe_metrics_format(m, pe_tp);
    ck_assert_double_eq(line_value(t, apr_pstrcat(pe_tp, h, "_bucket{le=\"0.05\"}", NULL)), 3);
    ck_assert_double_eq(line_value(t, apr_pstrcat(pe_tp, h, "_bucket{le=\"0.5\"}", NULL)), 3);
    ck_assert_double_eq(line_value(t, apr_pstrcat(pe_tp, h, "_bucket{le=\"1\"}", NULL)), 4);
    ck_assert_double_eq(line_value(t, apr_pstrcat(pe_tp, h, "_bucket{le=\"120\"}", NULL)), 4);
    ck_assert_double_eq(line_value(t, apr_pstrcat(pe_tp, h, "_bucket{le=\"+Inf\"}", NULL)), 5);
    ck_assert_double_eq(line_value(t, apr_pstrcat(pe_tp, h, "_count", NULL)), 5);
    ck_assert_double_eq_tol(line_value(t, apr_pstrcat(pe_tp, h, "_sum", NULL)), 500.78, 1e-6);
    ck_assert_uint_eq(pe_metrics_value(m, PE_MET_UPSTREAM_SECONDS, 0, 0), 5);
    pe_met_upstream(1, 503, 1000); /* an HTTP failure with a 5xx status */
    pe_met_upstream(1, 404, 1000);
    pe_met_upstream(2, 0, 1000);
    ck_assert_uint_eq(pe_metrics_value(m, PE_MET_UPSTREAM, PE_MET_UP_5XX, 0), 1);
    ck_assert_uint_eq(pe_metrics_value(m, PE_MET_UPSTREAM, PE_MET_UP_4XX, 0), 1);
    ck_assert_uint_eq(pe_metrics_value(m, PE_MET_UPSTREAM, PE_MET_UP_TIMEOUT, 0), 1);
    ck_assert_uint_eq(pe_metrics_value(m, PE_MET_UPSTREAM_SECONDS, 0, 0), 8);
}
END_TEST

/* Four processes with two threads' worth of increments each: the sums are exact. */
START_TEST(exact_across_processes)
{
    pe_metrics_t *m = block();
    int i, status;
    pid_t kids[4];

    for (i = 0; i < 4; i++) {
        if ((kids[i] = fork()) == 0) {
            int k;

            for (k = 0; k < 20000; k++) {
                pe_met_request(0, 200);
                pe_met_observe(PE_MET_OVERHEAD_SECONDS, k % 3000);
            }
            _exit(0);
        }
        ck_assert_int_gt(kids[i], 0);
    }
    for (i = 0; i < 4; i++) {
        waitpid(kids[i], &status, 0);
        ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    }
    ck_assert_uint_eq(pe_metrics_value(m, PE_MET_REQUESTS, 0, PE_MET_CODE_2XX), 80000);
    ck_assert_uint_eq(pe_metrics_value(m, PE_MET_OVERHEAD_SECONDS, 0, 0), 80000);
}
END_TEST

/* Processes with slots count into rows of their own (and two into a shared one), one without a
 * slot into the common row, the parent into its slot's row: every read is the exact sum. */
START_TEST(exact_across_rows)
{
    pe_metrics_t *m = block();
    int i, status;
    pid_t kids[5];
    const char *t;

    for (i = 0; i < 5; i++) {
        if ((kids[i] = fork()) == 0) {
            int k;

            /* kids 0-3 take slots; slot i and slot i + 64 share a row, so kids 1 and 3 take
             * slots 64 apart (fake pids, the test's own block) */
            if (i == 0 || i == 2)
                pe_metrics_proc_attach(m, 1000 + i);
            else if (i == 1 || i == 3) {
                int s;

                for (s = 0; s < 64; s++)
                    pe_metrics_proc_attach(m, 2000000 + i * 100 + s);
                pe_metrics_proc_attach(m, 1000 + i);
            }
            for (k = 0; k < 20000; k++) {
                pe_met_request(0, 200);
                pe_met_add(PE_MET_TOKENS, 0, PE_MET_TOK_TOTAL, 3);
                pe_met_observe(PE_MET_OVERHEAD_SECONDS, 700);
            }
            _exit(0);
        }
        ck_assert_int_gt(kids[i], 0);
    }
    for (i = 0; i < 5; i++) {
        waitpid(kids[i], &status, 0);
        ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    }
    ck_assert_ptr_nonnull(pe_metrics_proc_attach(m, 999));
    pe_met_request(0, 200);
    ck_assert_uint_eq(pe_metrics_value(m, PE_MET_REQUESTS, 0, PE_MET_CODE_2XX), 100001);
    ck_assert_uint_eq(pe_metrics_value(m, PE_MET_TOKENS, 0, PE_MET_TOK_TOTAL), 300000);
    ck_assert_uint_eq(pe_metrics_value(m, PE_MET_OVERHEAD_SECONDS, 0, 0), 100000);
    t = pe_metrics_format(m, pe_tp);
    ck_assert_double_eq(line_value(t, "promptenchanter_requests_total{group=\"core\",code=\"2xx\"}"), 100001);
    ck_assert_double_eq(line_value(t, "promptenchanter_gateway_overhead_seconds_count"), 100000);
    ck_assert_double_eq(line_value(t, "promptenchanter_gateway_overhead_seconds_bucket{le=\"0.0005\"}"), 0);
    ck_assert_double_eq(line_value(t, "promptenchanter_gateway_overhead_seconds_bucket{le=\"0.001\"}"), 100000);
    ck_assert_double_eq(line_value(t, "promptenchanter_gateway_overhead_seconds_sum"), 70);
}
END_TEST

static int fake_alive(apr_int64_t pid)
{
    return pid < 100000;
}

/* Per-process gauges: summed over live processes; a dead process's slot is skipped and reused. */
START_TEST(process_gauges)
{
    pe_metrics_t *m = block();
    pe_met_proc_t *a, *b, *c;
    int procs;

    pe_metrics_set_alive_fn(fake_alive);
    a = pe_metrics_proc_attach(m, 10);
    b = pe_metrics_proc_attach(m, 200000); /* "dead" */
    ck_assert_ptr_nonnull(a);
    ck_assert_ptr_nonnull(b);
    pe_met_gauge_add(a, PE_MET_INFLIGHT, 3);
    pe_met_gauge_add(a, PE_MET_INFLIGHT, -1);
    pe_met_gauge_add(b, PE_MET_INFLIGHT, 5);
    pe_met_gauge_add(a, PE_MET_MSGLOG_QUEUE, 7);
    pe_met_gauge_add(a, PE_MET_REQUESTS, 7); /* not a gauge: ignored */
    ck_assert_int_eq(pe_metrics_gauge_sum(m, PE_MET_INFLIGHT, &procs), 2);
    ck_assert_int_eq(procs, 1);
    ck_assert_int_eq(pe_metrics_gauge_sum(m, PE_MET_MSGLOG_QUEUE, NULL), 7);
    ck_assert_double_eq(line_value(pe_metrics_format(m, pe_tp), "promptenchanter_requests_in_flight"), 2);
    pe_metrics_proc_detach(a);
    ck_assert_int_eq(pe_metrics_gauge_sum(m, PE_MET_INFLIGHT, &procs), 0);
    ck_assert_int_eq(procs, 0);
    c = pe_metrics_proc_attach(m, 11); /* the free slot first */
    ck_assert_ptr_eq(c, a);
    pe_metrics_proc_detach(c);
    pe_metrics_set_alive_fn(NULL);
}
END_TEST

/* All slots taken by live processes: the next one gets none; a dead one's slot is reused. */
START_TEST(process_slots_full)
{
    pe_metrics_t *m = block();
    int i;

    pe_metrics_set_alive_fn(fake_alive);
    for (i = 0; i < PE_MET_PROCS; i++)
        ck_assert_ptr_nonnull(pe_metrics_proc_attach(m, i == 5 ? 500000 : 1 + i));
    ck_assert_ptr_nonnull(pe_metrics_proc_attach(m, 77777)); /* takes the dead one's slot */
    ck_assert_ptr_null(pe_metrics_proc_attach(m, 77778));
    pe_metrics_set_alive_fn(NULL);
}
END_TEST

START_TEST(flush_generation)
{
    pe_metrics_t *m = block();

    ck_assert_uint_eq(pe_metrics_flush_gen(m), 0);
    ck_assert_uint_eq(pe_metrics_flush_request(m), 1);
    ck_assert_uint_eq(pe_metrics_flush_gen(m), 1);
    ck_assert_uint_eq(pe_metrics_flush_gen(NULL), 0);
}
END_TEST

Suite *pe_suite_metrics(void)
{
    Suite *s = suite_create("metrics");
    TCase *tc = pe_tcase("core");

    tcase_add_test(tc, counters_and_labels);
    tcase_add_test(tc, models_bounded_and_escaped);
    tcase_add_test(tc, histogram_buckets);
    tcase_add_test(tc, exact_across_processes);
    tcase_add_test(tc, exact_across_rows);
    tcase_add_test(tc, process_gauges);
    tcase_add_test(tc, process_slots_full);
    tcase_add_test(tc, flush_generation);
    suite_add_tcase(s, tc);
    return s;
}
