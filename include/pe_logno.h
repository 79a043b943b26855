/*
 * pe_logno.h: stable log message ids, shared by core and glue code.
 *
 * Every message an operator or a test may look for carries "PEnnnnn: " (five digits), listed
 * once in docs/log-messages.md; tests/guards/check-logno.sh fails on a duplicate or unlisted id.
 */
#ifndef PE_LOGNO_H
#define PE_LOGNO_H

#define PE_LOGNO(n) "PE" #n ": "

/* Levels for core (httpd-free) code; numerically equal to httpd's APLOG_* levels. */
#define PE_LOG_CRIT 2
#define PE_LOG_ERR 3
#define PE_LOG_WARNING 4
#define PE_LOG_NOTICE 5
#define PE_LOG_INFO 6
#define PE_LOG_DEBUG 7

#include <apr_errno.h>

/**
 * Log sink for core code, installed by the glue at post_config (mod_md's md_log_set pattern).
 * @param level PE_LOG_* level
 * @param rv    APR status whose text httpd appends (0 for none)
 * @param msg   the formatted message (already carries its PE id)
 */
typedef void pe_log_fn(int level, apr_status_t rv, const char *msg);

/** Install the sink; NULL restores the default (stderr). */
void pe_log_set(pe_log_fn *fn);

/** Log from core code; the format must start with PE_LOGNO(n). */
void pe_clog(int level, apr_status_t rv, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
