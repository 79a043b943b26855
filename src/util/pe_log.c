/* pe_log.c: the log sink of core (httpd-free) code. */
#include "pe_logno.h"

#include <stdarg.h>
#include <stdio.h>

static pe_log_fn *pe_log_sink;

/* Install the sink the glue provides (NULL: stderr). */
void pe_log_set(pe_log_fn *fn)
{
    pe_log_sink = fn;
}

/* Format and hand one message to the sink. */
void pe_clog(int level, apr_status_t rv, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (pe_log_sink)
        pe_log_sink(level, rv, msg);
    else
        fprintf(stderr, "[pe:%d] %s\n", level, msg);
}
