/* test_batch.c: batch validation, the bounded runner (parallel, bounded, sequential) and the response. */
#include "pe_batch.h"
#include "pe_json.h"
#include "pe_test.h"

#include <apr_strings.h>

#include <string.h>
#include <unistd.h>

/* Parse a JSON text. */
static json_t *js(const char *text)
{
    json_t *j = NULL;
    const char *err = NULL;

    ck_assert_msg(pe_json_parse(pe_tp, text, strlen(text), &j, &err) == 0, "%s: %s", text, err);
    return j;
}

/* Parse a batch body; returns the status, the message in *err. */
static int parse(const char *text, pe_batch_t *b, const char **err, int max)
{
    *err = NULL;
    return pe_batch_parse(pe_tp, NULL, js(text), max, b, err);
}

/* The user message sent for a task. */
static const char *task_message(const pe_batch_task_t *t)
{
    return json_string_value(json_object_get(json_array_get(t->req.messages, 0), "content"));
}

START_TEST(parse_defaults)
{
    pe_batch_t b;
    const char *err;

    ck_assert_int_eq(parse("{\"level\":\"medium\",\"batch\":[{\"prompt\":\"one\"},"
                           "{\"prompt\":\"two\",\"r_type\":\"tot\",\"temperature\":0.2,\"max_tokens\":50,"
                           "\"stop\":[\"x\"]},{\"prompt\":\"three\",\"r_type\":null,\"top_p\":null}]}",
                           &b, &err, 0),
                     0);
    ck_assert_int_eq(b.n, 3);
    ck_assert_int_eq(b.level, PE_LEVEL_MEDIUM);
    ck_assert_int_eq(b.parallel, 1);
    ck_assert_int_eq(b.research, 0);
    ck_assert_int_eq(b.depth, PE_DEPTH_BASIC);
    ck_assert_int_eq(b.tasks[0].index, 0);
    ck_assert_str_eq(b.tasks[0].prompt, "one");
    ck_assert_int_eq(b.tasks[0].req.rtype, PE_RTYPE_BPE); /* SPEC 8: r_type defaults to bpe */
    ck_assert_str_eq(task_message(&b.tasks[0]), apr_pstrcat(pe_tp, "one\n\n", pe_batch_instruction, NULL));
    ck_assert(json_real_value(json_object_get(b.tasks[0].req.params, "temperature")) == 0.7);
    ck_assert_str_eq(b.tasks[0].req.model, "gpt-4o");
    ck_assert_int_eq(b.tasks[0].req.ai_research, 0);
    ck_assert_int_eq(b.tasks[1].req.rtype, PE_RTYPE_TOT);
    ck_assert(json_real_value(json_object_get(b.tasks[1].req.params, "temperature")) == 0.2);
    ck_assert_int_eq(json_integer_value(json_object_get(b.tasks[1].req.params, "max_tokens")), 50);
    ck_assert_ptr_nonnull(json_object_get(b.tasks[1].req.params, "stop"));
    ck_assert_int_eq(b.tasks[2].req.rtype, PE_RTYPE_NONE);
    ck_assert_ptr_null(json_object_get(b.tasks[2].req.params, "top_p"));
    ck_assert_int_eq(b.tasks[2].index, 2);

    ck_assert_int_eq(parse("{\"level\":\"low\",\"enable_research\":true,\"research_depth\":\"high\",\"parallel\":false,"
                           "\"batch\":[{\"prompt\":\"x\"}]}",
                           &b, &err, 0),
                     0);
    ck_assert_int_eq(b.parallel, 0);
    ck_assert_int_eq(b.research, 1);
    ck_assert_int_eq(b.depth, PE_DEPTH_HIGH);
    ck_assert_int_eq(b.tasks[0].req.ai_research, 1);
    ck_assert_int_eq(b.tasks[0].req.depth, PE_DEPTH_HIGH);
}
END_TEST

START_TEST(parse_errors)
{
    pe_batch_t b;
    const char *err;
    char *many = apr_pstrdup(pe_tp, "{\"level\":\"low\",\"batch\":[{\"prompt\":\"a\"}");
    int i;

    ck_assert_int_eq(parse("{\"level\":\"low\",\"batch\":[]}", &b, &err, 0), 400);
    ck_assert_str_eq(err, "Batch cannot be empty");
    for (i = 0; i < 50; i++)
        many = apr_pstrcat(pe_tp, many, ",{\"prompt\":\"a\"}", NULL);
    many = apr_pstrcat(pe_tp, many, "]}", NULL);
    ck_assert_int_eq(parse(many, &b, &err, 0), 400);
    ck_assert_str_eq(err, "Batch size cannot exceed 50 tasks");
    ck_assert_int_eq(parse(many, &b, &err, 51), 0);
    ck_assert_int_eq(b.n, 51);
    ck_assert_int_eq(parse("{\"level\":\"low\",\"batch\":[{\"prompt\":\"a\"},{\"prompt\":\"b\"}]}", &b, &err, 1), 400);
    ck_assert_str_eq(err, "Batch size cannot exceed 1 tasks");

    ck_assert_int_eq(parse("{\"level\":\"low\"}", &b, &err, 0), 422);
    ck_assert_ptr_nonnull(strstr(err, "batch is required"));
    ck_assert_int_eq(parse("{\"batch\":[{\"prompt\":\"a\"}]}", &b, &err, 0), 422);
    ck_assert_ptr_nonnull(strstr(err, "level"));
    ck_assert_int_eq(parse("{\"level\":\"extreme\",\"batch\":[{\"prompt\":\"a\"}]}", &b, &err, 0), 422);
    ck_assert_int_eq(parse("{\"level\":\"low\",\"parallel\":\"yes\",\"batch\":[{\"prompt\":\"a\"}]}", &b, &err, 0),
                     422);
    ck_assert_str_eq(err, "parallel must be a boolean");
    ck_assert_int_eq(parse("{\"level\":\"low\",\"enable_research\":1,\"batch\":[{\"prompt\":\"a\"}]}", &b, &err, 0),
                     422);
    ck_assert_int_eq(parse("{\"level\":\"low\",\"research_depth\":\"deep\",\"batch\":[{\"prompt\":\"a\"}]}", &b, &err, 0),
                     422);
    ck_assert_int_eq(parse("{\"level\":\"low\",\"batch\":[{\"prompt\":\"a\"},{\"r_type\":\"bpe\"}]}", &b, &err, 0), 422);
    ck_assert_str_eq(err, "batch[1].prompt is required and must be a non-empty string");
    /* unknown fields, in a task and in the request, are 422 naming them */
    ck_assert_int_eq(parse("{\"level\":\"low\",\"batch\":[{\"prompt\":\"a\"},{\"text\":\"b\"}]}", &b, &err, 0), 422);
    ck_assert_ptr_nonnull(strstr(err, "batch[1]: unknown field 'text'"));
    ck_assert_int_eq(parse("{\"level\":\"low\",\"batch\":[{\"prompt\":\"x\",\"unknown\":1}]}", &b, &err, 0), 422);
    ck_assert_ptr_nonnull(strstr(err, "batch[0]: unknown field 'unknown'"));
    ck_assert_int_eq(parse("{\"level\":\"low\",\"paralel\":false,\"batch\":[{\"prompt\":\"a\"}]}", &b, &err, 0), 422);
    ck_assert_ptr_nonnull(strstr(err, "unknown field 'paralel'"));
    ck_assert_int_eq(parse("{\"level\":\"low\",\"batch\":[{\"prompt\":\"\"}]}", &b, &err, 0), 422);
    ck_assert_int_eq(parse("{\"level\":\"low\",\"batch\":[\"a\"]}", &b, &err, 0), 422);
    ck_assert_str_eq(err, "batch[0] must be an object");
    ck_assert_int_eq(parse("{\"level\":\"low\",\"batch\":[{\"prompt\":\"a\",\"temperature\":5}]}", &b, &err, 0), 422);
    ck_assert_ptr_nonnull(strstr(err, "batch[0]: "));
    ck_assert_ptr_nonnull(strstr(err, "temperature"));
    ck_assert_int_eq(parse("{\"level\":\"low\",\"batch\":[{\"prompt\":\"a\",\"r_type\":\"zzz\"}]}", &b, &err, 0), 422);
    ck_assert_ptr_nonnull(strstr(err, "r_type"));
    ck_assert_int_eq(parse("[1]", &b, &err, 0), 422);
}
END_TEST

/* The task function of the runner tests: sleeps, answers, fails odd tasks when asked. */
typedef struct run_baton_t {
    int sleep_ms;
    int fail_odd;
} run_baton_t;

static void run_task(void *baton, pe_batch_task_t *t)
{
    run_baton_t *rb = baton;
    char *scratch = apr_palloc(t->pool, 4096); /* the task's own pool, from its thread */

    memset(scratch, 'x', 4096);
    usleep((useconds_t)rb->sleep_ms * 1000);
    if (rb->fail_odd && t->index % 2) {
        t->error = "the AI service answered with status 500";
        t->error_code = "UPSTREAM_ERROR";
        return;
    }
    t->response = pe_json_bind(t->pool, json_pack("{s:s, s:i}", "echo", t->prompt, "n", t->index));
    t->tokens = 10 + t->index;
    t->success = 1;
}

/* A batch of n tasks named p0..p(n-1). */
static pe_batch_t *make_batch(int n, int parallel)
{
    pe_batch_t *b = apr_pcalloc(pe_tp, sizeof(*b));
    int i;

    b->n = n;
    b->parallel = parallel;
    b->tasks = apr_pcalloc(pe_tp, sizeof(*b->tasks) * (apr_size_t)n);
    for (i = 0; i < n; i++) {
        b->tasks[i].index = i;
        b->tasks[i].prompt = apr_psprintf(pe_tp, "p%d", i);
    }
    return b;
}

START_TEST(parallel_runs_at_once)
{
    pe_batch_t *b = make_batch(10, 1);
    run_baton_t rb = {300, 0};
    pe_batch_stats_t st;
    int i;

    ck_assert_int_eq(pe_batch_run(pe_tp, b, 10, run_task, &rb, &st), APR_SUCCESS);
    ck_assert_int_eq(st.threads, 10);
    ck_assert_int_eq(st.max_active, 10);
    ck_assert_int_eq(st.succeeded, 10);
    ck_assert_msg(apr_time_as_msec(st.elapsed) < 900, "10 tasks of 300 ms took %ld ms", (long)apr_time_as_msec(st.elapsed));
    for (i = 0; i < 10; i++) {
        ck_assert_int_eq(b->tasks[i].success, 1);
        ck_assert_str_eq(json_string_value(json_object_get(b->tasks[i].response, "echo")), b->tasks[i].prompt);
        ck_assert_int_ge((int)apr_time_as_msec(b->tasks[i].elapsed), 290);
    }
}
END_TEST

START_TEST(parallel_is_bounded)
{
    pe_batch_t *b = make_batch(7, 1);
    run_baton_t rb = {150, 1};
    pe_batch_stats_t st;

    ck_assert_int_eq(pe_batch_run(pe_tp, b, 3, run_task, &rb, &st), APR_SUCCESS);
    ck_assert_int_eq(st.threads, 3);
    ck_assert_int_eq(st.max_active, 3);
    ck_assert_int_ge((int)apr_time_as_msec(st.elapsed), 440); /* 3 waves of 150 ms */
    ck_assert_int_eq(st.succeeded, 4);
    ck_assert_int_eq(pe_batch_failed(b), 3);
    ck_assert_int_eq(b->tasks[1].success, 0);
    ck_assert_str_eq(b->tasks[1].error_code, "UPSTREAM_ERROR");
}
END_TEST

START_TEST(sequential_runs_one_by_one)
{
    pe_batch_t *b = make_batch(4, 0);
    run_baton_t rb = {100, 0};
    pe_batch_stats_t st;

    ck_assert_int_eq(pe_batch_run(pe_tp, b, 10, run_task, &rb, &st), APR_SUCCESS);
    ck_assert_int_eq(st.threads, 0);
    ck_assert_int_eq(st.max_active, 1);
    ck_assert_int_ge((int)apr_time_as_msec(st.elapsed), 395);
    ck_assert_int_eq(st.succeeded, 4);
    ck_assert_int_eq(pe_batch_run(pe_tp, NULL, 1, run_task, &rb, &st), APR_EINVAL);
}
END_TEST

START_TEST(response_in_task_order)
{
    pe_batch_t *b = make_batch(5, 1);
    run_baton_t rb = {10, 1};
    json_t *o, *res;
    const char *id;
    int i;

    ck_assert_int_eq(pe_batch_run(pe_tp, b, 5, run_task, &rb, NULL), APR_SUCCESS);
    id = pe_batch_id(pe_tp, apr_time_from_sec(1763900000));
    ck_assert_int_eq((int)strlen(id), (int)strlen("batch_1763900000_") + 11);
    ck_assert_int_eq(strncmp(id, "batch_1763900000_", 17), 0);
    ck_assert_uint_eq(strspn(id + 17, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"), 11);
    o = pe_batch_response(pe_tp, b, id, apr_time_from_msec(1234), json_string("2026-11-23T00:00:00Z"), 5, 2);
    ck_assert_str_eq(json_string_value(json_object_get(o, "batch_id")), id);
    ck_assert_int_eq(json_integer_value(json_object_get(o, "total_tasks")), 5);
    ck_assert_int_eq(json_integer_value(json_object_get(o, "successful_tasks")), 3);
    ck_assert_int_eq(json_integer_value(json_object_get(o, "failed_tasks")), 2);
    ck_assert_int_eq(json_integer_value(json_object_get(o, "total_tokens_used")), 10 + 12 + 14);
    ck_assert_int_eq(json_integer_value(json_object_get(o, "total_processing_time_ms")), 1234);
    ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(o, "credits"), "refunded")), 2);
    res = json_object_get(o, "results");
    for (i = 0; i < 5; i++) {
        json_t *r = json_array_get(res, (size_t)i);

        ck_assert_int_eq(json_integer_value(json_object_get(r, "task_index")), i);
        ck_assert_int_eq(json_is_true(json_object_get(r, "success")), i % 2 == 0);
        if (i % 2 == 0) {
            ck_assert(json_is_null(json_object_get(r, "error")));
            ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(r, "response"), "n")), i);
        }
        else {
            ck_assert(json_is_null(json_object_get(r, "response")));
            ck_assert_str_eq(json_string_value(json_object_get(r, "error_code")), "UPSTREAM_ERROR");
            ck_assert_int_eq(json_integer_value(json_object_get(r, "tokens_used")), 0);
        }
    }
}
END_TEST

Suite *pe_suite_batch(void)
{
    Suite *s = suite_create("batch");
    TCase *tc = pe_tcase("batch");

    tcase_add_test(tc, parse_defaults);
    tcase_add_test(tc, parse_errors);
    tcase_add_test(tc, parallel_runs_at_once);
    tcase_add_test(tc, parallel_is_bounded);
    tcase_add_test(tc, sequential_runs_one_by_one);
    tcase_add_test(tc, response_in_task_order);
    suite_add_tcase(s, tc);
    return s;
}
