/* pe_topics.c: depth table and a forgiving parser of the topic-analysis reply. */
#include "pe_topics.h"
#include "pe_json.h"

#include <apr_lib.h>
#include <apr_strings.h>

#include <string.h>
#include <strings.h>

/* Candidate JSON texts tried inside chatty replies before giving up. */
#define TP_MAX_ATTEMPTS 64
/* Items of a topics array looked at (the rest is ignored). */
#define TP_MAX_ITEMS 64
/* Deepest bracket nesting followed while looking for a balanced value. */
#define TP_MAX_NEST 64

static const pe_depth_info_t tp_depths[] = {
    {PE_DEPTH_BASIC, "basic", 1, 2, 3, "Identify the 1-2 key topics that need up-to-date information."},
    {PE_DEPTH_MEDIUM, "medium", 3, 4, 3, "Identify the 3-4 most important topics that need up-to-date information."},
    {PE_DEPTH_HIGH, "high", 5, 6, 4, "Identify 5-6 topics that together cover the query comprehensively."},
};

/* The row of a depth. */
const pe_depth_info_t *pe_depth_info(pe_depth_t d)
{
    if ((int)d < 0 || (int)d >= (int)(sizeof(tp_depths) / sizeof(tp_depths[0])))
        return &tp_depths[0];
    return &tp_depths[d];
}

/* Parse a depth name. */
int pe_depth_parse(const char *s, pe_depth_t *d)
{
    apr_size_t i;

    if (!s)
        return -1;
    for (i = 0; i < sizeof(tp_depths) / sizeof(tp_depths[0]); i++)
        if (strcmp(s, tp_depths[i].name) == 0) {
            *d = tp_depths[i].depth;
            return 0;
        }
    return -1;
}

/* Name of a status. */
const char *pe_topics_status_name(pe_topics_status_t s)
{
    switch (s) {
    case PE_TOPICS_PARSED:
        return "parsed";
    case PE_TOPICS_NOT_NEEDED:
        return "not-needed";
    case PE_TOPICS_FALLBACK:
        return "fallback";
    }
    return "unknown";
}

/*
 * Clean a query: control characters dropped, ASCII white space collapsed and trimmed, cut to
 * max bytes at a UTF-8 boundary (at the last space when one lies in the second half). "" if empty.
 */
static const char *tp_clean(apr_pool_t *p, const char *s, apr_size_t n, apr_size_t max)
{
    char *d = apr_palloc(p, n + 1);
    apr_size_t i, len = 0;
    int space = 0;

    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];

        if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v') {
            space = len > 0;
            continue;
        }
        if (c < 0x20 || c == 0x7f)
            continue;
        if (space)
            d[len++] = ' ';
        space = 0;
        d[len++] = (char)c;
    }
    if (len > max) {
        apr_size_t cut = max;

        /* NB: d[cut] is the first byte left out; if it continues a sequence, leave that whole character out */
        while (cut > 0 && ((unsigned char)d[cut] & 0xc0) == 0x80)
            cut--;
        for (i = cut; i > max / 2; i--)
            if (d[i] == ' ') {
                cut = i;
                break;
            }
        len = cut;
        while (len > 0 && d[len - 1] == ' ')
            len--;
    }
    d[len] = '\0';
    return d;
}

/* A string member of an object, or NULL. */
static const char *tp_str(json_t *o, const char *key, apr_size_t *n)
{
    json_t *v = json_object_get(o, key);

    if (!json_is_string(v))
        return NULL;
    *n = json_string_length(v);
    return json_string_value(v);
}

/* Whether q is already among the topics (ASCII case-insensitive). */
static int tp_dup(apr_array_header_t *topics, const char *q)
{
    int i;

    for (i = 0; i < topics->nelts; i++)
        if (strcasecmp(APR_ARRAY_IDX(topics, i, pe_topic_t).query, q) == 0)
            return 1;
    return 0;
}

/* Add one array item (a string, or an object with topic/query) to topics when usable. */
static void tp_add_item(apr_pool_t *p, json_t *item, apr_array_header_t *topics)
{
    pe_topic_t t;
    const char *raw = NULL;
    apr_size_t n = 0;

    t.importance = 0.5;
    t.subtopics = apr_array_make(p, 0, sizeof(const char *));
    if (json_is_string(item)) {
        raw = json_string_value(item);
        n = json_string_length(item);
    }
    else if (json_is_object(item)) {
        json_t *imp = json_object_get(item, "importance"), *subs = json_object_get(item, "subtopics");

        if (!(raw = tp_str(item, "topic", &n)))
            raw = tp_str(item, "query", &n);
        if (json_is_number(imp)) {
            double v = json_number_value(imp);

            t.importance = v < 0.0 ? 0.0 : v > 1.0 ? 1.0 : v;
        }
        if (json_is_array(subs)) {
            apr_size_t i;

            for (i = 0; i < json_array_size(subs) && t.subtopics->nelts < PE_TOPICS_SUBTOPICS_MAX; i++) {
                json_t *s = json_array_get(subs, i);
                const char *c;

                if (!json_is_string(s))
                    continue;
                c = tp_clean(p, json_string_value(s), json_string_length(s), PE_TOPICS_QUERY_MAX);
                if (*c)
                    APR_ARRAY_PUSH(t.subtopics, const char *) = c;
            }
        }
    }
    if (!raw)
        return;
    t.query = tp_clean(p, raw, n, PE_TOPICS_QUERY_MAX);
    if (!*t.query || tp_dup(topics, t.query))
        return;
    APR_ARRAY_PUSH(topics, pe_topic_t) = t;
}

/* Read topics out of a parsed value; returns 1 when it is a usable answer (topics or "not needed"). */
static int tp_from_json(apr_pool_t *p, json_t *j, pe_topics_t *out)
{
    apr_array_header_t *topics = apr_array_make(p, 8, sizeof(pe_topic_t));
    json_t *arr = NULL;

    if (json_is_object(j)) {
        if (json_is_false(json_object_get(j, "needs_research"))) {
            out->topics = topics;
            out->status = PE_TOPICS_NOT_NEEDED;
            return 1;
        }
        arr = json_object_get(j, "topics");
        if (!json_is_array(arr))
            arr = json_object_get(j, "queries");
        if (!json_is_array(arr)) {
            arr = NULL;
            tp_add_item(p, j, topics); /* a single {"topic": ...} */
        }
    }
    else if (json_is_array(j)) {
        arr = j;
    }
    if (arr) {
        apr_size_t i;

        for (i = 0; i < json_array_size(arr) && i < TP_MAX_ITEMS; i++)
            tp_add_item(p, json_array_get(arr, i), topics);
    }
    if (topics->nelts == 0)
        return 0;
    out->topics = topics;
    out->status = PE_TOPICS_PARSED;
    return 1;
}

/* Try text[0..n) as the whole JSON answer. */
static int tp_try(apr_pool_t *p, const char *s, apr_size_t n, pe_topics_t *out)
{
    json_t *j;
    const char *err;

    while (n && apr_isspace(*s)) {
        s++;
        n--;
    }
    while (n && apr_isspace(s[n - 1]))
        n--;
    if (n == 0 || (*s != '{' && *s != '['))
        return 0;
    if (pe_json_parse(p, s, n, &j, &err) != 0)
        return 0;
    return tp_from_json(p, j, out);
}

/* Find s[0..n) ``` fenced blocks (an info string such as "json" ends at the line break) and try each. */
static int tp_try_fences(apr_pool_t *p, const char *s, apr_size_t n, pe_topics_t *out)
{
    const char *end = s + n, *open;
    int attempts = 0;

    while ((open = memmem(s, (apr_size_t)(end - s), "```", 3)) != NULL && attempts++ < TP_MAX_ATTEMPTS) {
        const char *body = open + 3, *close;

        while (body < end && *body != '\n' && *body != '{' && *body != '[')
            body++;
        close = memmem(body, (apr_size_t)(end - body), "```", 3);
        if (!close)
            return tp_try(p, body, (apr_size_t)(end - body), out); /* unterminated fence: the rest */
        if (tp_try(p, body, (apr_size_t)(close - body), out))
            return 1;
        s = close + 3;
    }
    return 0;
}

/* Length of the balanced {...} or [...] starting at s (strings respected), or 0. */
static apr_size_t tp_balanced(const char *s, apr_size_t n)
{
    char stack[TP_MAX_NEST];
    int depth = 0, in_str = 0;
    apr_size_t i;

    for (i = 0; i < n; i++) {
        char c = s[i];

        if (in_str) {
            if (c == '\\')
                i++;
            else if (c == '"')
                in_str = 0;
            continue;
        }
        if (c == '"') {
            in_str = 1;
        }
        else if (c == '{' || c == '[') {
            if (depth == TP_MAX_NEST)
                return 0;
            stack[depth++] = c == '{' ? '}' : ']';
        }
        else if (c == '}' || c == ']') {
            if (depth == 0 || stack[depth - 1] != c)
                return 0;
            if (--depth == 0)
                return i + 1;
        }
    }
    return 0;
}

/* Try each balanced value in the text, first to last. */
static int tp_try_embedded(apr_pool_t *p, const char *s, apr_size_t n, pe_topics_t *out)
{
    apr_size_t i;
    int attempts = 0;

    for (i = 0; i < n && attempts < TP_MAX_ATTEMPTS; i++) {
        apr_size_t len;

        if (s[i] != '{' && s[i] != '[')
            continue;
        attempts++;
        len = tp_balanced(s + i, n - i);
        if (len && tp_try(p, s + i, len, out))
            return 1;
    }
    return 0;
}

/* Keep the max most important topics (ties: the earlier), in their order. */
static void tp_cap(apr_pool_t *p, pe_topics_t *out, int max)
{
    apr_array_header_t *in = out->topics, *kept;
    int i, k;

    if (in->nelts <= max)
        return;
    kept = apr_array_make(p, max, sizeof(pe_topic_t));
    for (i = 0; i < in->nelts; i++) {
        double mine = APR_ARRAY_IDX(in, i, pe_topic_t).importance;
        int rank = 0;

        for (k = 0; k < in->nelts; k++) {
            double other = APR_ARRAY_IDX(in, k, pe_topic_t).importance;

            if (other > mine || (other == mine && k < i))
                rank++;
        }
        if (rank < max)
            APR_ARRAY_PUSH(kept, pe_topic_t) = APR_ARRAY_IDX(in, i, pe_topic_t);
    }
    out->dropped = in->nelts - kept->nelts;
    out->topics = kept;
}

/* Parse the reply; fall back to the user's text. */
void pe_topics_parse(apr_pool_t *p, const char *reply, apr_size_t len, const char *user_text, int max,
                     pe_topics_t *out)
{
    if (max <= 0 || max > PE_TOPICS_HARD_MAX)
        max = PE_TOPICS_HARD_MAX;
    memset(out, 0, sizeof(*out));
    if (!reply)
        len = 0;
    if (len > PE_TOPICS_REPLY_MAX)
        len = PE_TOPICS_REPLY_MAX;

    if (len && tp_try(p, reply, len, out))
        out->form = PE_TOPICS_FORM_PLAIN;
    else if (len && tp_try_fences(p, reply, len, out))
        out->form = PE_TOPICS_FORM_FENCED;
    else if (len && tp_try_embedded(p, reply, len, out))
        out->form = PE_TOPICS_FORM_EMBEDDED;

    if (out->form != PE_TOPICS_FORM_NONE) {
        tp_cap(p, out, max);
        return;
    }
    out->status = PE_TOPICS_FALLBACK;
    out->topics = apr_array_make(p, 1, sizeof(pe_topic_t));
    if (user_text) {
        pe_topic_t t;

        t.query = tp_clean(p, user_text, strlen(user_text), PE_TOPICS_QUERY_MAX);
        t.importance = 0.5;
        t.subtopics = apr_array_make(p, 0, sizeof(const char *));
        if (*t.query)
            APR_ARRAY_PUSH(out->topics, pe_topic_t) = t;
    }
}
