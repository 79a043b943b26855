/*
 * fuzz_sse.c: the Server-Sent Events reader of streamed upstream answers (pe_sse_*) and the usage
 * reader of its chunks (pe_sse_chunk_usage). The first byte's low 3 bits pick the event cap (0,
 * e.g. a space: the default 1 MiB; '#': 8 bytes), its other bits seed the chunk sizes; the rest
 * is the stream.
 *
 * Properties (pe_sse.h): the stream fed in one piece and fed in chunks split anywhere gives the same
 * events, in the same order, with the same feed and finish results; every event has a name, data
 * NUL-terminated at data_len and within the cap, and `done` exactly for "[DONE]"; the usage reader
 * answers -1, 0 or 1, with non-negative counts on 1. An event named "stop" makes the callback stop
 * the parser, which must then refuse more input with that status.
 */
#include "pe_fuzz.h"

#include "pe_sse.h"

#define FUZZ_SSE_STOP APR_EGENERAL

/* What one parse saw: a running FNV-1a hash over every event, and their number. */
typedef struct fuzz_sse_log_t {
    apr_size_t max;
    uint64_t hash;
    apr_size_t events;
} fuzz_sse_log_t;

static void fuzz_hash(fuzz_sse_log_t *l, const void *d, size_t n)
{
    const unsigned char *s = d;
    size_t i;

    for (i = 0; i < n; i++)
        l->hash = (l->hash ^ s[i]) * 1099511628211ULL;
    l->hash = (l->hash ^ 0xff) * 1099511628211ULL; /* field separator */
}

static apr_status_t fuzz_event(void *baton, const pe_sse_event_t *ev)
{
    fuzz_sse_log_t *l = baton;
    pe_sse_usage_t u;
    int rc;

    PE_FUZZ_CHECK(ev->event && ev->data && ev->data[ev->data_len] == '\0');
    PE_FUZZ_CHECK(ev->data_len < l->max);
    PE_FUZZ_CHECK(ev->done == (ev->data_len == 6 && memcmp(ev->data, "[DONE]", 6) == 0));
    rc = pe_sse_chunk_usage(ev->data, ev->data_len, &u);
    PE_FUZZ_CHECK(rc >= -1 && rc <= 1);
    if (rc == 1)
        PE_FUZZ_CHECK(u.prompt_tokens >= 0 && u.completion_tokens >= 0 && u.total_tokens >= 0);

    l->events++;
    fuzz_hash(l, ev->event, strlen(ev->event));
    fuzz_hash(l, ev->data, ev->data_len);
    fuzz_hash(l, ev->id ? ev->id : "(none)", ev->id ? strlen(ev->id) + 1 : 6);
    return strcmp(ev->event, "stop") == 0 ? FUZZ_SSE_STOP : APR_SUCCESS;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const apr_size_t caps[] = {0, 1, 2, 8, 16, 64, 300, 4096};
    apr_pool_t *p;
    fuzz_sse_log_t whole = {0, 14695981039346656037ULL, 0}, split = whole;
    pe_sse_parser_t *a, *b;
    apr_status_t ra, rb = APR_SUCCESS, fa, fb;
    const char *s;
    size_t n, off = 0, step;
    unsigned int seed;

    if (size == 0)
        return 0;
    p = pe_fuzz_pool();
    whole.max = split.max = caps[data[0] & 7] ? caps[data[0] & 7] : PE_SSE_DEFAULT_MAX_EVENT;
    seed = data[0] >> 3;
    s = (const char *)data + 1;
    n = size - 1;

    a = pe_sse_create(p, caps[data[0] & 7], fuzz_event, &whole);
    b = pe_sse_create(p, caps[data[0] & 7], fuzz_event, &split);
    ra = pe_sse_feed(a, s, n);
    /* chunks of 0..7 bytes (0: an empty feed), sizes from the seed */
    while (off < n && rb == APR_SUCCESS) {
        seed = seed * 1103515245u + 12345u;
        step = (seed >> 16) % 8;
        if (step > n - off)
            step = n - off;
        rb = pe_sse_feed(b, s + off, step);
        off += step;
    }
    fa = pe_sse_finish(a);
    fb = pe_sse_finish(b);

    PE_FUZZ_CHECK(ra == rb && fa == fb);
    PE_FUZZ_CHECK(whole.events == split.events && whole.hash == split.hash);
    PE_FUZZ_CHECK(pe_sse_count(a) == whole.events && pe_sse_count(b) == split.events);
    PE_FUZZ_CHECK(ra == APR_SUCCESS || ra == APR_ENOSPC || ra == FUZZ_SSE_STOP);
    PE_FUZZ_CHECK(fa == APR_SUCCESS || fa == APR_INCOMPLETE || fa == ra);
    if (ra != APR_SUCCESS)
        PE_FUZZ_CHECK(pe_sse_feed(a, "data: x\n\n", 9) == ra && pe_sse_count(a) == whole.events);
    pe_fuzz_done(p);
    return 0;
}
