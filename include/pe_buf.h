/*
 * pe_buf.h: a growing byte buffer with a hard cap, on a pool.
 *
 * Capacity doubles (never palloc-per-append, which is quadratic: STYLE.md 3.6), and an append
 * that would pass the cap fails without copying, so request bodies and upstream replies are
 * bounded while they stream in. The data is always NUL-terminated for convenience.
 */
#ifndef PE_BUF_H
#define PE_BUF_H

#include <apr_pools.h>
#include <apr_errno.h>

typedef struct pe_buf_t {
    apr_pool_t *pool;
    char *data;
    apr_size_t len;
    apr_size_t cap; /* allocated bytes, including room for the NUL */
    apr_size_t max; /* most bytes the buffer may ever hold */
} pe_buf_t;

/** Initialise b on p, holding at most max bytes. */
void pe_buf_init(pe_buf_t *b, apr_pool_t *p, apr_size_t max);

/** Append n bytes; APR_ENOSPC (and nothing appended) when len + n would exceed max. */
apr_status_t pe_buf_append(pe_buf_t *b, const void *d, apr_size_t n);

#endif
