/* pe_buf.c: a capped, doubling byte buffer on a pool. */
#include "pe_buf.h"

#include <string.h>

/* Initialise an empty buffer; the first append allocates. */
void pe_buf_init(pe_buf_t *b, apr_pool_t *p, apr_size_t max)
{
    b->pool = p;
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    b->max = max;
}

/* Append, doubling the capacity; refuse (copying nothing) past the cap. */
apr_status_t pe_buf_append(pe_buf_t *b, const void *d, apr_size_t n)
{
    apr_size_t need;

    if (n > b->max || b->len > b->max - n)
        return APR_ENOSPC;
    need = b->len + n + 1;
    if (need > b->cap) {
        apr_size_t cap = b->cap ? b->cap : 256;
        char *nd;

        while (cap < need)
            cap *= 2;
        nd = apr_palloc(b->pool, cap);
        if (b->len)
            memcpy(nd, b->data, b->len);
        b->data = nd;
        b->cap = cap;
    }
    if (n)
        memcpy(b->data + b->len, d, n);
    b->len += n;
    b->data[b->len] = '\0';
    return APR_SUCCESS;
}
