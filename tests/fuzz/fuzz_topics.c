/*
 * fuzz_topics.c: the parser of the topic-analysis reply (pe_topics_parse), which looks for JSON
 * in whatever the analyst model wrote: the whole reply, ``` fences, or a balanced value in prose.
 * The input is the reply; it is also the user's text (the fallback query), and its length picks
 * the cap, including values outside 1..PE_TOPICS_HARD_MAX.
 *
 * Properties (pe_topics.h): never fails; PARSED gives 1..cap topics, NOT_NEEDED none, FALLBACK at
 * most one; each query is non-empty, at most PE_TOPICS_QUERY_MAX bytes, trimmed, single-spaced,
 * free of control characters and unique (ASCII case-insensitive); queries taken from JSON are
 * valid UTF-8; importance is within 0..1; at most PE_TOPICS_SUBTOPICS_MAX subtopics, cleaned alike.
 */
#include "pe_fuzz.h"

#include "pe_topics.h"

#include <strings.h>

/* The clean-up rules every query and subtopic follows. */
static void fuzz_check_query(const char *q, int utf8)
{
    size_t n = strlen(q), i;

    PE_FUZZ_CHECK(n > 0 && n <= PE_TOPICS_QUERY_MAX);
    PE_FUZZ_CHECK(q[0] != ' ' && q[n - 1] != ' ');
    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char)q[i];

        PE_FUZZ_CHECK(c >= 0x20 && c != 0x7f);
        PE_FUZZ_CHECK(!(c == ' ' && q[i + 1] == ' '));
    }
    if (utf8)
        PE_FUZZ_CHECK(pe_fuzz_utf8_ok((const unsigned char *)q, n));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    apr_pool_t *p = pe_fuzz_pool();
    const char *user = pe_fuzz_cstr(p, data, size);
    int max = (int)(size % 20) - 1, cap = max <= 0 || max > PE_TOPICS_HARD_MAX ? PE_TOPICS_HARD_MAX : max;
    pe_topics_t t;
    int i, k;

    pe_topics_parse(p, (const char *)data, size, user, max, &t);
    PE_FUZZ_CHECK(t.topics != NULL && t.dropped >= 0);
    PE_FUZZ_CHECK(*pe_topics_status_name(t.status));
    switch (t.status) {
    case PE_TOPICS_PARSED:
        PE_FUZZ_CHECK(t.form != PE_TOPICS_FORM_NONE && t.topics->nelts >= 1 && t.topics->nelts <= cap);
        break;
    case PE_TOPICS_NOT_NEEDED:
        PE_FUZZ_CHECK(t.form != PE_TOPICS_FORM_NONE && t.topics->nelts == 0);
        break;
    case PE_TOPICS_FALLBACK:
        PE_FUZZ_CHECK(t.form == PE_TOPICS_FORM_NONE && t.topics->nelts <= 1 && t.dropped == 0);
        break;
    default:
        PE_FUZZ_CHECK(!"unknown status");
    }
    for (i = 0; i < t.topics->nelts; i++) {
        const pe_topic_t *e = &APR_ARRAY_IDX(t.topics, i, pe_topic_t);
        int from_json = t.status == PE_TOPICS_PARSED;

        fuzz_check_query(e->query, from_json);
        PE_FUZZ_CHECK(e->importance >= 0.0 && e->importance <= 1.0);
        PE_FUZZ_CHECK(e->subtopics && e->subtopics->nelts <= PE_TOPICS_SUBTOPICS_MAX);
        for (k = 0; k < e->subtopics->nelts; k++)
            fuzz_check_query(APR_ARRAY_IDX(e->subtopics, k, const char *), 1);
        for (k = 0; k < i; k++)
            PE_FUZZ_CHECK(strcasecmp(APR_ARRAY_IDX(t.topics, k, pe_topic_t).query, e->query) != 0);
    }
    pe_fuzz_done(p);
    return 0;
}
