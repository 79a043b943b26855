/* test_topics.c: depth table and the topic-analysis reply parser. */
#include "pe_test.h"
#include "pe_topics.h"

#include <apr_strings.h>

#include <string.h>

/* Parse reply (NUL-terminated or NULL) with the user's text and a cap. */
static pe_topics_t parse(const char *reply, const char *user, int max)
{
    pe_topics_t t;

    pe_topics_parse(pe_tp, reply, reply ? strlen(reply) : 0, user, max, &t);
    ck_assert_ptr_nonnull(t.topics);
    ck_assert_int_ge(t.dropped, 0);
    return t;
}

/* The i-th query. */
static const char *q(const pe_topics_t *t, int i)
{
    ck_assert_int_lt(i, t->topics->nelts);
    return APR_ARRAY_IDX(t->topics, i, pe_topic_t).query;
}

/* The i-th topic. */
static const pe_topic_t *tp(const pe_topics_t *t, int i)
{
    ck_assert_int_lt(i, t->topics->nelts);
    return &APR_ARRAY_IDX(t->topics, i, pe_topic_t);
}

static const char *reply_obj = "{\"needs_research\": true, \"topics\": ["
                               "{\"topic\": \"Rust async runtimes\", \"importance\": 0.9, \"subtopics\": "
                               "[\"tokio\", \" smol \", 7, \"\"]},"
                               "{\"topic\": \"  io_uring \\n\\t status \", \"importance\": 0.4}]}";

START_TEST(plain_object)
{
    pe_topics_t t = parse(reply_obj, "user text", 4);

    ck_assert_int_eq(t.status, PE_TOPICS_PARSED);
    ck_assert_int_eq(t.form, PE_TOPICS_FORM_PLAIN);
    ck_assert_int_eq(t.topics->nelts, 2);
    ck_assert_str_eq(q(&t, 0), "Rust async runtimes");
    ck_assert_str_eq(q(&t, 1), "io_uring status");
    ck_assert_double_eq_tol(tp(&t, 0)->importance, 0.9, 1e-9);
    ck_assert_double_eq_tol(tp(&t, 1)->importance, 0.4, 1e-9);
    ck_assert_int_eq(tp(&t, 0)->subtopics->nelts, 2);
    ck_assert_str_eq(APR_ARRAY_IDX(tp(&t, 0)->subtopics, 0, const char *), "tokio");
    ck_assert_str_eq(APR_ARRAY_IDX(tp(&t, 0)->subtopics, 1, const char *), "smol");
    ck_assert_int_eq(tp(&t, 1)->subtopics->nelts, 0);
    ck_assert_int_eq(t.dropped, 0);
    ck_assert_str_eq(pe_topics_status_name(t.status), "parsed");
}
END_TEST

START_TEST(fenced)
{
    pe_topics_t t;

    t = parse(apr_pstrcat(pe_tp, "```json\n", reply_obj, "\n```", NULL), "u", 4);
    ck_assert_int_eq(t.status, PE_TOPICS_PARSED);
    ck_assert_int_eq(t.form, PE_TOPICS_FORM_FENCED);
    ck_assert_int_eq(t.topics->nelts, 2);
    ck_assert_str_eq(q(&t, 0), "Rust async runtimes");

    t = parse("Sure! Here are the topics:\n```\n[\"alpha\", \"beta\"]\n```\nHope this helps.", "u", 4);
    ck_assert_int_eq(t.form, PE_TOPICS_FORM_FENCED);
    ck_assert_int_eq(t.topics->nelts, 2);
    ck_assert_str_eq(q(&t, 1), "beta");
    ck_assert_double_eq_tol(tp(&t, 1)->importance, 0.5, 1e-9);

    /* the first fence holds no JSON; the second does */
    t = parse("```python\nprint(1)\n```\nand\n```JSON\n{\"topics\":[\"gamma\"]}\n```", "u", 4);
    ck_assert_int_eq(t.form, PE_TOPICS_FORM_FENCED);
    ck_assert_str_eq(q(&t, 0), "gamma");

    /* an unterminated fence (reply cut at max_tokens) */
    t = parse("```json\n{\"topics\": [\"delta\"]}\n", "u", 4);
    ck_assert_int_eq(t.form, PE_TOPICS_FORM_FENCED);
    ck_assert_str_eq(q(&t, 0), "delta");

    /* fence on one line */
    t = parse("```{\"topics\":[\"eps\"]}```", "u", 4);
    ck_assert_str_eq(q(&t, 0), "eps");
}
END_TEST

START_TEST(chatty)
{
    pe_topics_t t;

    t = parse("Here you go: {\"topics\": [\"solar panel efficiency 2024\"]} Let me know [if needed].", "u", 4);
    ck_assert_int_eq(t.status, PE_TOPICS_PARSED);
    ck_assert_int_eq(t.form, PE_TOPICS_FORM_EMBEDDED);
    ck_assert_int_eq(t.topics->nelts, 1);
    ck_assert_str_eq(q(&t, 0), "solar panel efficiency 2024");

    /* balanced but not JSON ("[1]", "{x}") comes first and is skipped */
    t = parse("See note [1] and {x}: the answer is [\"one\", \"two\"] (with \"quotes\" {after}).", "u", 4);
    ck_assert_int_eq(t.form, PE_TOPICS_FORM_EMBEDDED);
    ck_assert_int_eq(t.topics->nelts, 2);
    ck_assert_str_eq(q(&t, 0), "one");

    /* brackets inside strings do not confuse the balance */
    t = parse("ok {\"topics\": [\"a ] tricky } one\", \"b \\\" [ quoted\"]} end", "u", 4);
    ck_assert_int_eq(t.topics->nelts, 2);
    ck_assert_str_eq(q(&t, 0), "a ] tricky } one");
    ck_assert_str_eq(q(&t, 1), "b \" [ quoted");

    /* an object that wraps the answer: the inner value is found */
    t = parse("{\"result\": {\"topics\": [\"zeta\"]}}", "u", 4);
    ck_assert_int_eq(t.form, PE_TOPICS_FORM_EMBEDDED);
    ck_assert_str_eq(q(&t, 0), "zeta");
}
END_TEST

START_TEST(objects_and_items)
{
    pe_topics_t t;

    t = parse("[{\"query\": \"q1\"}, {\"query\": \"q2\", \"importance\": 2},"
              " {\"topic\": \"t3\", \"query\": \"ignored\", \"importance\": -1},"
              " {\"x\": 1}, \"\", 5, null, \"  \", \"ok\"]",
              "u", 10);
    ck_assert_int_eq(t.status, PE_TOPICS_PARSED);
    ck_assert_int_eq(t.topics->nelts, 4);
    ck_assert_str_eq(q(&t, 0), "q1");
    ck_assert_str_eq(q(&t, 1), "q2");
    ck_assert_double_eq_tol(tp(&t, 1)->importance, 1.0, 1e-9);
    ck_assert_str_eq(q(&t, 2), "t3");
    ck_assert_double_eq_tol(tp(&t, 2)->importance, 0.0, 1e-9);
    ck_assert_str_eq(q(&t, 3), "ok");

    /* {"queries": [...]} and a single {"topic": ...} */
    t = parse("{\"queries\": [\"k1\", \"k2\"]}", "u", 10);
    ck_assert_int_eq(t.topics->nelts, 2);
    t = parse("{\"topic\": \"only one\", \"importance\": 0.7}", "u", 10);
    ck_assert_int_eq(t.topics->nelts, 1);
    ck_assert_str_eq(q(&t, 0), "only one");

    /* duplicates, ASCII case-insensitive, after clean-up */
    t = parse("[\"Climate Data\", \"climate data\", \" CLIMATE   data \", \"other\"]", "u", 10);
    ck_assert_int_eq(t.topics->nelts, 2);
    ck_assert_str_eq(q(&t, 0), "Climate Data");
    ck_assert_str_eq(q(&t, 1), "other");

    /* control characters are removed from queries */
    t = parse("[\"a\\u0001b\\u001bc\\u007f d\"]", "u", 10);
    ck_assert_str_eq(q(&t, 0), "abc d");
}
END_TEST

START_TEST(not_needed)
{
    pe_topics_t t;

    t = parse("{\"needs_research\": false, \"topics\": []}", "what is 2+2", 4);
    ck_assert_int_eq(t.status, PE_TOPICS_NOT_NEEDED);
    ck_assert_int_eq(t.topics->nelts, 0);
    ck_assert_str_eq(pe_topics_status_name(t.status), "not-needed");
    /* false wins even when topics are listed */
    t = parse("```json\n{\"needs_research\": false, \"topics\": [\"x\"]}\n```", "u", 4);
    ck_assert_int_eq(t.status, PE_TOPICS_NOT_NEEDED);
    ck_assert_int_eq(t.form, PE_TOPICS_FORM_FENCED);
    ck_assert_int_eq(t.topics->nelts, 0);
    /* absent: the topics decide */
    t = parse("{\"topics\": [\"x\"]}", "u", 4);
    ck_assert_int_eq(t.status, PE_TOPICS_PARSED);
    /* true with nothing usable: fall back */
    t = parse("{\"needs_research\": true, \"topics\": []}", "the user question", 4);
    ck_assert_int_eq(t.status, PE_TOPICS_FALLBACK);
    ck_assert_str_eq(q(&t, 0), "the user question");
}
END_TEST

START_TEST(garbage_falls_back)
{
    static const char *garbage[] = {"I cannot help with that.", "", "{", "[[[", "{\"topics\": [\"unterminated\"",
                                    "null", "42", "\"just a string\"", "{\"topics\": \"not an array\"}",
                                    "{\"a\":1,\"a\":2}", "```\n```", "[1, 2, 3]", "[{}]", "[\"a\\u0000b\"]", NULL};
    pe_topics_t t;
    int i;
    char *long_user;

    for (i = 0; garbage[i]; i++) {
        t = parse(garbage[i], "  What is\nthe weather\tin Oslo?  ", 4);
        ck_assert_msg(t.status == PE_TOPICS_FALLBACK, "\"%s\" should fall back", garbage[i]);
        ck_assert_int_eq(t.form, PE_TOPICS_FORM_NONE);
        ck_assert_int_eq(t.topics->nelts, 1);
        ck_assert_str_eq(q(&t, 0), "What is the weather in Oslo?");
        ck_assert_double_eq_tol(tp(&t, 0)->importance, 0.5, 1e-9);
    }
    t = parse(NULL, "fallback", 4);
    ck_assert_int_eq(t.status, PE_TOPICS_FALLBACK);
    ck_assert_str_eq(q(&t, 0), "fallback");
    ck_assert_str_eq(pe_topics_status_name(t.status), "fallback");
    /* nothing to fall back on */
    t = parse("garbage", NULL, 4);
    ck_assert_int_eq(t.status, PE_TOPICS_FALLBACK);
    ck_assert_int_eq(t.topics->nelts, 0);
    t = parse("garbage", " \n\t ", 4);
    ck_assert_int_eq(t.topics->nelts, 0);

    /* a long user text is cut to PE_TOPICS_QUERY_MAX at a word or character boundary */
    long_user = apr_pstrdup(pe_tp, "");
    for (i = 0; i < 120; i++)
        long_user = apr_pstrcat(pe_tp, long_user, "\xc3\xa9t\xc3\xa9 ", NULL);
    t = parse("garbage", long_user, 4);
    ck_assert_uint_le(strlen(q(&t, 0)), PE_TOPICS_QUERY_MAX);
    ck_assert_uint_gt(strlen(q(&t, 0)), PE_TOPICS_QUERY_MAX / 2);
    ck_assert(q(&t, 0)[strlen(q(&t, 0)) - 1] != ' ');
    ck_assert_str_eq(q(&t, 0) + strlen(q(&t, 0)) - 5, "\xc3\xa9t\xc3\xa9");
    /* one long word: cut inside it, but never inside a character */
    long_user = apr_pstrdup(pe_tp, "");
    for (i = 0; i < 150; i++)
        long_user = apr_pstrcat(pe_tp, long_user, "\xe2\x82\xac", NULL);
    t = parse("garbage", long_user, 4);
    ck_assert_uint_eq(strlen(q(&t, 0)), (PE_TOPICS_QUERY_MAX / 3) * 3);
}
END_TEST

START_TEST(too_many)
{
    pe_topics_t t;

    t = parse("{\"topics\": [{\"topic\":\"t0\",\"importance\":0.1},{\"topic\":\"t1\",\"importance\":0.9},"
              "{\"topic\":\"t2\",\"importance\":0.5},{\"topic\":\"t3\",\"importance\":0.95},"
              "{\"topic\":\"t4\",\"importance\":0.5},{\"topic\":\"t5\",\"importance\":0.2},"
              "{\"topic\":\"t6\",\"importance\":0.5},{\"topic\":\"t7\"},{\"topic\":\"t8\",\"importance\":0.3},"
              "{\"topic\":\"t9\",\"importance\":0.05}]}",
              "u", 3);
    /* the three most important (0.9, 0.95, then the first 0.5), in reply order */
    ck_assert_int_eq(t.topics->nelts, 3);
    ck_assert_int_eq(t.dropped, 7);
    ck_assert_str_eq(q(&t, 0), "t1");
    ck_assert_str_eq(q(&t, 1), "t2");
    ck_assert_str_eq(q(&t, 2), "t3");

    /* a plain list is kept in order */
    t = parse("[\"a\",\"b\",\"c\",\"d\",\"e\",\"f\",\"g\"]", "u", pe_depth_info(PE_DEPTH_MEDIUM)->max_queries);
    ck_assert_int_eq(t.topics->nelts, 4);
    ck_assert_str_eq(q(&t, 3), "d");
    ck_assert_int_eq(t.dropped, 3);

    /* max <= 0 or above the hard cap means the hard cap */
    {
        char *many = apr_pstrdup(pe_tp, "[\"x0\"");
        int i;

        for (i = 1; i < 40; i++)
            many = apr_psprintf(pe_tp, "%s,\"x%d\"", many, i);
        many = apr_pstrcat(pe_tp, many, "]", NULL);
        t = parse(many, "u", 0);
        ck_assert_int_eq(t.topics->nelts, PE_TOPICS_HARD_MAX);
        t = parse(many, "u", 1000);
        ck_assert_int_eq(t.topics->nelts, PE_TOPICS_HARD_MAX);
        t = parse(many, "u", 2);
        ck_assert_int_eq(t.topics->nelts, 2);
        ck_assert_str_eq(q(&t, 1), "x1");
    }
}
END_TEST

START_TEST(depth_table)
{
    pe_depth_t d = PE_DEPTH_HIGH;
    const pe_depth_info_t *b, *m, *h;

    ck_assert_int_eq(pe_depth_parse("basic", &d), 0);
    ck_assert_int_eq(d, PE_DEPTH_BASIC);
    ck_assert_int_eq(pe_depth_parse("medium", &d), 0);
    ck_assert_int_eq(d, PE_DEPTH_MEDIUM);
    ck_assert_int_eq(pe_depth_parse("high", &d), 0);
    ck_assert_int_eq(d, PE_DEPTH_HIGH);
    ck_assert_int_eq(pe_depth_parse("High", &d), -1);
    ck_assert_int_eq(pe_depth_parse("", &d), -1);
    ck_assert_int_eq(pe_depth_parse("deep", &d), -1);
    ck_assert_int_eq(pe_depth_parse(NULL, &d), -1);
    ck_assert_int_eq(d, PE_DEPTH_HIGH);

    b = pe_depth_info(PE_DEPTH_BASIC);
    m = pe_depth_info(PE_DEPTH_MEDIUM);
    h = pe_depth_info(PE_DEPTH_HIGH);
    ck_assert_str_eq(b->name, "basic");
    ck_assert_str_eq(m->name, "medium");
    ck_assert_str_eq(h->name, "high");
    /* SPEC 5.2 ranges: 1-2, 3-4, 5-6 */
    ck_assert_int_eq(b->min_topics, 1);
    ck_assert_int_eq(b->max_queries, 2);
    ck_assert_int_eq(m->min_topics, 3);
    ck_assert_int_eq(m->max_queries, 4);
    ck_assert_int_eq(h->min_topics, 5);
    ck_assert_int_eq(h->max_queries, 6);
    ck_assert_int_eq(b->pages_per_query, 3);
    ck_assert_int_eq(m->pages_per_query, 3);
    ck_assert_int_eq(h->pages_per_query, 4);
    ck_assert_int_le(h->max_queries, PE_TOPICS_HARD_MAX);
    ck_assert_ptr_nonnull(strstr(b->instruction, "1-2"));
    ck_assert_ptr_nonnull(strstr(m->instruction, "3-4"));
    ck_assert_ptr_nonnull(strstr(h->instruction, "5-6"));
    ck_assert_ptr_eq(pe_depth_info((pe_depth_t)7), b);
    ck_assert_ptr_eq(pe_depth_info((pe_depth_t)-1), b);
}
END_TEST

Suite *pe_suite_topics(void)
{
    Suite *s = suite_create("topics");
    TCase *tc = pe_tcase("topics");

    tcase_add_test(tc, plain_object);
    tcase_add_test(tc, fenced);
    tcase_add_test(tc, chatty);
    tcase_add_test(tc, objects_and_items);
    tcase_add_test(tc, not_needed);
    tcase_add_test(tc, garbage_falls_back);
    tcase_add_test(tc, too_many);
    tcase_add_test(tc, depth_table);
    suite_add_tcase(s, tc);
    return s;
}
