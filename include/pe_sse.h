/*
 * pe_sse.h: an incremental Server-Sent Events parser (httpd-free), for streamed upstream answers.
 *
 * Feed it the bytes as they arrive, split anywhere (inside a field name, inside "\r\n", inside a
 * UTF-8 sequence); it calls back once per complete event, following the WHATWG event-stream rules:
 * lines end with CRLF, LF or CR; a leading BOM is skipped; lines starting with ':' are comments;
 * "field: value" drops one space after the colon; `data` lines are joined with "\n"; `event` names
 * the event ("message" when absent); `id` sets the last event id (kept across events, ignored
 * when it contains NUL); other fields (retry...) are ignored; a blank line dispatches, and an event
 * with no data line is not dispatched. An incomplete event at end of stream is discarded (see
 * pe_sse_finish()).
 *
 * One event (pending line plus data) may hold at most max_event bytes; beyond that the parser
 * fails with APR_ENOSPC and stays failed, so an upstream cannot make us buffer without bound.
 * Buffers are reused from one event to the next: memory stays O(max_event) for any stream length.
 */
#ifndef PE_SSE_H
#define PE_SSE_H

#include <apr_pools.h>
#include <apr_errno.h>

/** Default event size cap (1 MiB). */
#define PE_SSE_DEFAULT_MAX_EVENT ((apr_size_t)1024 * 1024)

/** One complete event. NB: every pointer is only valid during the callback. */
typedef struct pe_sse_event_t {
    const char *event;   /**< event name; "message" when the event had no `event` field */
    const char *data;    /**< data lines joined with "\n" (NUL-terminated; may itself contain NUL) */
    apr_size_t data_len; /**< length of data */
    const char *id;      /**< last event id seen on the stream, or NULL when none */
    int done;            /**< data is exactly "[DONE]" (the OpenAI end-of-stream marker) */
} pe_sse_event_t;

/**
 * Called for each event.
 * @return APR_SUCCESS to continue; anything else stops the parser, which pe_sse_feed() returns
 */
typedef apr_status_t pe_sse_event_fn(void *baton, const pe_sse_event_t *ev);

typedef struct pe_sse_parser_t pe_sse_parser_t;

/**
 * A parser on p.
 * @param max_event the cap on one event's size in bytes (0: PE_SSE_DEFAULT_MAX_EVENT)
 * @param cb,baton  the event callback
 */
pe_sse_parser_t *pe_sse_create(apr_pool_t *p, apr_size_t max_event, pe_sse_event_fn *cb, void *baton);

/**
 * Parse the next len bytes of the stream (len may be 0).
 * @return APR_SUCCESS; APR_ENOSPC when an event exceeds the cap; or the callback's non-success
 *         status. After any failure the parser refuses more input with the same status.
 */
apr_status_t pe_sse_feed(pe_sse_parser_t *ps, const char *buf, apr_size_t len);

/**
 * End of stream. The event-stream rules discard an event that was not terminated by a blank line;
 * this reports it so a truncated upstream stream can be told from a complete one.
 * @return APR_SUCCESS when nothing was pending, APR_INCOMPLETE when a partial line or an
 *         undispatched event was dropped, or the parser's failure status
 */
apr_status_t pe_sse_finish(pe_sse_parser_t *ps);

/** Number of events dispatched so far. */
apr_size_t pe_sse_count(const pe_sse_parser_t *ps);

/** Token usage of a streamed completion. */
typedef struct pe_sse_usage_t {
    long long prompt_tokens;
    long long completion_tokens;
    long long total_tokens;
} pe_sse_usage_t;

/**
 * Read `usage` from a chat.completion.chunk (the data of one event). With
 * stream_options.include_usage the last chunk carries it; earlier chunks have none or null.
 * total_tokens defaults to prompt + completion when absent.
 * @return 1 when usage was present and valid (u filled), 0 when absent or null, -1 when data is
 *         not a JSON object or usage is malformed (not an object, negative or non-integer counts)
 */
int pe_sse_chunk_usage(const char *data, apr_size_t len, pe_sse_usage_t *u);

#endif
