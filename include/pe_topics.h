/*
 * pe_topics.h: research depth table and the parser of the topic-analysis reply (SPEC 5.2).
 *
 * The analyst model is asked for {"needs_research": bool, "topics": [{"topic": str,
 * "importance": 0..1, "subtopics": [str]}]}, but models wrap JSON in Markdown fences or chat
 * around it. The reference parsed strictly and silently lost the research (SPEC 16.1 item 14);
 * this parser finds the JSON and never fails: a reply it cannot use yields the user's own text
 * as the single query.
 */
#ifndef PE_TOPICS_H
#define PE_TOPICS_H

#include <apr_pools.h>
#include <apr_tables.h>

/** Research depth (request field research_depth; also in pe_enhance.h: either header may come first). */
#ifndef PE_DEPTH_T_DEFINED
#define PE_DEPTH_T_DEFINED
typedef enum pe_depth_t {
    PE_DEPTH_BASIC = 0,
    PE_DEPTH_MEDIUM,
    PE_DEPTH_HIGH
} pe_depth_t;
#endif

/**
 * What a depth means. The chosen numbers:
 *
 * | depth  | analyst is asked for | queries kept (cap) | pages fetched per query | most fetches |
 * |--------|----------------------|--------------------|-------------------------|--------------|
 * | basic  | 1-2 topics           | 2                  | 3                       | 6            |
 * | medium | 3-4 topics           | 4                  | 3                       | 12           |
 * | high   | 5-6 topics           | 6                  | 4                       | 24           |
 *
 * The topic ranges are the reference's (SPEC 5.2); unlike the reference the upper end is enforced,
 * keeping the most important topics. The reference fetched 5 pages per topic but gave only the
 * first 3 extracted pages to the synthesis (SPEC 5.3), so 3 pages per query loses nothing it
 * used and cuts the fetches (and time, RELIABILITY R82); high keeps one spare page per query for
 * pages that fail or are refused.
 */
typedef struct pe_depth_info_t {
    pe_depth_t depth;
    const char *name;        /**< "basic", "medium", "high" */
    int min_topics;          /**< lower end asked of the analyst */
    int max_queries;         /**< upper end asked, and the cap applied by pe_topics_parse */
    int pages_per_query;     /**< search results fetched per query */
    const char *instruction; /**< the depth sentence of the analyst prompt */
} pe_depth_info_t;

/** The row of a depth (an out-of-range value gives basic's row). Static. */
const pe_depth_info_t *pe_depth_info(pe_depth_t d);

/**
 * Parse a depth name, exactly "basic", "medium" or "high" (as the API enum).
 * @return 0 and *d set, or -1 for anything else
 */
int pe_depth_parse(const char *s, pe_depth_t *d);

/** Longest query kept, in bytes (cut at a UTF-8 boundary). */
#define PE_TOPICS_QUERY_MAX 200
/** Subtopics kept per topic. */
#define PE_TOPICS_SUBTOPICS_MAX 8
/** Largest reply looked at, in bytes; the rest is ignored. */
#define PE_TOPICS_REPLY_MAX (256 * 1024)
/** Hard cap on queries whatever the caller asks. */
#define PE_TOPICS_HARD_MAX 16

/** One search query. */
typedef struct pe_topic_t {
    const char *query;             /**< trimmed, white space collapsed, control characters removed */
    double importance;             /**< 0..1, 0.5 when the reply gives none */
    apr_array_header_t *subtopics; /**< of const char * (same clean-up), maybe empty, never NULL */
} pe_topic_t;

/** How the queries were obtained. */
typedef enum pe_topics_status_t {
    PE_TOPICS_PARSED = 0, /**< from the reply */
    PE_TOPICS_NOT_NEEDED, /**< the reply says "needs_research": false; no queries */
    PE_TOPICS_FALLBACK    /**< reply unusable: the user's text is the one query (none when it is empty) */
} pe_topics_status_t;

/** Where the JSON was found in the reply. */
typedef enum pe_topics_form_t {
    PE_TOPICS_FORM_NONE = 0, /**< no usable JSON */
    PE_TOPICS_FORM_PLAIN,    /**< the whole reply */
    PE_TOPICS_FORM_FENCED,   /**< inside ``` or ```json fences */
    PE_TOPICS_FORM_EMBEDDED  /**< the first balanced [...] or {...} in the text that parses */
} pe_topics_form_t;

/** The parsed list. */
typedef struct pe_topics_t {
    apr_array_header_t *topics; /**< of pe_topic_t, in the reply's order */
    pe_topics_status_t status;
    pe_topics_form_t form;
    int dropped; /**< usable topics left out by the cap (the least important ones) */
} pe_topics_t;

/**
 * Turn the analyst's reply into queries. Accepted shapes: an object with "topics" or "queries"
 * (an array), a bare array, or a single object with "topic"/"query"; array items are strings or
 * objects whose "topic" (else "query") is a string, with optional "importance" (number, clamped
 * to 0..1) and "subtopics" (strings). Empty and duplicate (ASCII case-insensitive) queries are
 * skipped. "needs_research": false gives PE_TOPICS_NOT_NEEDED; when it is absent the topics decide.
 * When more than max queries are usable, the max most important are kept (ties: the earlier),
 * in the reply's order.
 * @param reply     the model's message content (may be NULL)
 * @param len       its length
 * @param user_text the user's message, the fallback query (may be NULL)
 * @param max       the cap (pe_depth_info()->max_queries); <= 0 or above PE_TOPICS_HARD_MAX means
 *                  PE_TOPICS_HARD_MAX
 * @param out       the result in p
 */
void pe_topics_parse(apr_pool_t *p, const char *reply, apr_size_t len, const char *user_text, int max,
                     pe_topics_t *out);

/** Name of a status for logs ("parsed", "not-needed", "fallback"). */
const char *pe_topics_status_name(pe_topics_status_t s);

#endif
