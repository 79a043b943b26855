/*
 * pe_log.h: logging for glue code. Every .c under src/apache includes it, so
 * `LogLevel promptenchanter:trace3` works everywhere (APLOG_USE_MODULE).
 * Messages start with PE_LOGNO(nnnnn); secrets are never logged.
 */
#ifndef PE_LOG_H
#define PE_LOG_H

#include "httpd.h"
#include "http_log.h"
#include "pe_logno.h"

APLOG_USE_MODULE(promptenchanter);

#define pe_rlog(r, level, rv, ...) ap_log_rerror(APLOG_MARK, (level), (rv), (r), __VA_ARGS__)
#define pe_slog(s, level, rv, ...) ap_log_error(APLOG_MARK, (level), (rv), (s), __VA_ARGS__)

#endif
