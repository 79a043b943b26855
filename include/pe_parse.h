/*
 * pe_parse.h: parsing of configuration values (httpd-free, unit-tested).
 * Each returns NULL on success or a message that names the reason (the directive name is
 * prefixed by the caller).
 */
#ifndef PE_PARSE_H
#define PE_PARSE_H

#include <apr_pools.h>

/** A byte size: digits with an optional K, M or G suffix (powers of 1024), 1..max. */
const char *pe_parse_size(apr_pool_t *p, const char *arg, apr_off_t max, apr_off_t *out);

/** A whole number in [min, max]. */
const char *pe_parse_int(apr_pool_t *p, const char *arg, long min, long max, long *out);

/** A duration: digits with an optional ms, s, m, h or d suffix (default s), into milliseconds. */
const char *pe_parse_duration_ms(apr_pool_t *p, const char *arg, long long min_ms, long long max_ms,
                                 long long *out);

/** An http or https URL with a host. */
const char *pe_parse_http_url(apr_pool_t *p, const char *arg);

#endif
