/* pe_sse.c: incremental Server-Sent Events parsing and usage extraction from stream chunks. */
#include "pe_sse.h"
#include "pe_buf.h"
#include "pe_logno.h"

#include <jansson.h>
#include <limits.h>
#include <string.h>

struct pe_sse_parser_t {
    apr_size_t max;       /* cap on data + pending line */
    pe_sse_event_fn *cb;
    void *baton;
    pe_buf_t line;        /* a line that spans chunks */
    pe_buf_t data;        /* "value\n" per data line of the current event */
    pe_buf_t event;       /* event name of the current event */
    pe_buf_t id;          /* last event id (kept across events) */
    int have_id;
    int have_fields;      /* a field line was seen since the last dispatch */
    int pending_cr;       /* the last byte fed was CR: a LF starting the next chunk ends nothing */
    int first_line_done;  /* the BOM check happens on the first line only */
    apr_status_t failed;
    apr_size_t count;
};

/* A parser with empty, reusable buffers. */
pe_sse_parser_t *pe_sse_create(apr_pool_t *p, apr_size_t max_event, pe_sse_event_fn *cb, void *baton)
{
    pe_sse_parser_t *ps = apr_pcalloc(p, sizeof(*ps));

    ps->max = max_event ? max_event : PE_SSE_DEFAULT_MAX_EVENT;
    ps->cb = cb;
    ps->baton = baton;
    /* NB: each buffer's own cap is max; the combined data + line cap is checked in pe_sse_feed. */
    pe_buf_init(&ps->line, p, ps->max);
    pe_buf_init(&ps->data, p, ps->max);
    pe_buf_init(&ps->event, p, ps->max);
    pe_buf_init(&ps->id, p, ps->max);
    return ps;
}

/* Replace a buffer's content (reusing its memory). */
static apr_status_t pe_sse_set(pe_buf_t *b, const char *s, apr_size_t n)
{
    b->len = 0;
    return pe_buf_append(b, s, n);
}

/* Record a failure once; log the cap case, which means a misbehaving upstream. */
static apr_status_t pe_sse_fail(pe_sse_parser_t *ps, apr_status_t rv)
{
    if (rv == APR_ENOSPC)
        pe_clog(PE_LOG_WARNING, 0, PE_LOGNO(40101) "SSE: an event is larger than %" APR_SIZE_T_FMT
                " bytes; stream refused", ps->max);
    ps->failed = rv;
    return rv;
}

/* Blank line: hand the event over when it has data, then start a new one. */
static apr_status_t pe_sse_dispatch(pe_sse_parser_t *ps)
{
    pe_sse_event_t ev;
    apr_status_t rv;

    ps->have_fields = 0;
    if (ps->data.len == 0) {
        ps->event.len = 0;
        return APR_SUCCESS;
    }
    ps->data.len--; /* the "\n" after the last data line */
    ps->data.data[ps->data.len] = '\0';
    ev.event = ps->event.len ? ps->event.data : "message";
    ev.data = ps->data.data;
    ev.data_len = ps->data.len;
    ev.id = ps->have_id ? (ps->id.len ? ps->id.data : "") : NULL;
    ev.done = ps->data.len == 6 && memcmp(ps->data.data, "[DONE]", 6) == 0;
    ps->count++;
    rv = ps->cb ? ps->cb(ps->baton, &ev) : APR_SUCCESS;
    ps->data.len = 0;
    ps->event.len = 0;
    return rv;
}

/* One complete line (without its terminator). */
static apr_status_t pe_sse_line(pe_sse_parser_t *ps, const char *s, apr_size_t n)
{
    const char *colon, *val;
    apr_size_t flen, vlen;

    if (!ps->first_line_done) {
        ps->first_line_done = 1;
        if (n >= 3 && memcmp(s, "\xef\xbb\xbf", 3) == 0)
            s += 3, n -= 3;
    }
    if (n == 0)
        return pe_sse_dispatch(ps);
    if (s[0] == ':')
        return APR_SUCCESS; /* comment (keep-alive) */
    colon = memchr(s, ':', n);
    flen = colon ? (apr_size_t)(colon - s) : n;
    val = colon ? colon + 1 : s + n;
    vlen = colon ? n - flen - 1 : 0;
    if (vlen && *val == ' ')
        val++, vlen--;
    ps->have_fields = 1;

    if (flen == 4 && memcmp(s, "data", 4) == 0) {
        if (ps->data.len + vlen + 1 > ps->max)
            return APR_ENOSPC;
        if (pe_buf_append(&ps->data, val, vlen) != APR_SUCCESS || pe_buf_append(&ps->data, "\n", 1) != APR_SUCCESS)
            return APR_ENOSPC;
    }
    else if (flen == 5 && memcmp(s, "event", 5) == 0) {
        if (pe_sse_set(&ps->event, val, vlen) != APR_SUCCESS)
            return APR_ENOSPC;
    }
    else if (flen == 2 && memcmp(s, "id", 2) == 0) {
        if (!memchr(val, '\0', vlen)) {
            if (pe_sse_set(&ps->id, val, vlen) != APR_SUCCESS)
                return APR_ENOSPC;
            ps->have_id = 1;
        }
    }
    /* retry and unknown fields are ignored */
    return APR_SUCCESS;
}

/* Split the bytes into lines, buffering only a line that continues in the next chunk. */
apr_status_t pe_sse_feed(pe_sse_parser_t *ps, const char *buf, apr_size_t len)
{
    apr_size_t i = 0, j;
    apr_status_t rv;

    if (ps->failed)
        return ps->failed;
    if (ps->pending_cr && len > 0) {
        ps->pending_cr = 0;
        if (buf[0] == '\n')
            i = 1;
    }
    while (i < len) {
        for (j = i; j < len && buf[j] != '\n' && buf[j] != '\r'; j++)
            ;
        /* NB: the subtractions cannot wrap: data.len and line.len are each kept <= max. */
        if (j - i > ps->max - ps->data.len || ps->line.len > ps->max - ps->data.len - (j - i))
            return pe_sse_fail(ps, APR_ENOSPC);
        if (j == len) {
            if (pe_buf_append(&ps->line, buf + i, len - i) != APR_SUCCESS)
                return pe_sse_fail(ps, APR_ENOSPC);
            break;
        }
        if (ps->line.len) {
            if (pe_buf_append(&ps->line, buf + i, j - i) != APR_SUCCESS)
                return pe_sse_fail(ps, APR_ENOSPC);
            rv = pe_sse_line(ps, ps->line.data, ps->line.len);
            ps->line.len = 0;
        }
        else
            rv = pe_sse_line(ps, buf + i, j - i);
        if (rv != APR_SUCCESS)
            return pe_sse_fail(ps, rv);
        if (buf[j] == '\r') {
            if (j + 1 == len)
                ps->pending_cr = 1;
            else if (buf[j + 1] == '\n')
                j++;
        }
        i = j + 1;
    }
    return APR_SUCCESS;
}

/* End of stream: was anything left undispatched? */
apr_status_t pe_sse_finish(pe_sse_parser_t *ps)
{
    if (ps->failed)
        return ps->failed;
    return ps->line.len || ps->have_fields ? APR_INCOMPLETE : APR_SUCCESS;
}

/* Events dispatched. */
apr_size_t pe_sse_count(const pe_sse_parser_t *ps)
{
    return ps->count;
}

/* A non-negative integer member into *out; 0 when absent (and allowed), -1 when malformed. */
static int pe_usage_field(const json_t *u, const char *k, long long *out, int required)
{
    json_t *v = json_object_get(u, k);

    if (!v)
        return required ? -1 : 0;
    if (!json_is_integer(v) || json_integer_value(v) < 0)
        return -1;
    *out = (long long)json_integer_value(v);
    return 1;
}

/* usage from one chat.completion.chunk. */
int pe_sse_chunk_usage(const char *data, apr_size_t len, pe_sse_usage_t *u)
{
    json_t *root = json_loadb(data, len, JSON_REJECT_DUPLICATES, NULL);
    json_t *usage;
    int rc = -1, t;

    if (!json_is_object(root))
        goto end;
    usage = json_object_get(root, "usage");
    if (!usage || json_is_null(usage)) {
        rc = 0;
        goto end;
    }
    if (!json_is_object(usage))
        goto end;
    memset(u, 0, sizeof(*u));
    if (pe_usage_field(usage, "prompt_tokens", &u->prompt_tokens, 1) < 0
        || pe_usage_field(usage, "completion_tokens", &u->completion_tokens, 1) < 0
        || (t = pe_usage_field(usage, "total_tokens", &u->total_tokens, 0)) < 0)
        goto end;
    if (t == 0) {
        if (u->prompt_tokens > LLONG_MAX - u->completion_tokens)
            goto end;
        u->total_tokens = u->prompt_tokens + u->completion_tokens;
    }
    rc = 1;
end:
    json_decref(root);
    return rc;
}
