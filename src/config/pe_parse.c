/* pe_parse.c: configuration value parsing, shared by every directive handler. */
#include "pe_parse.h"

#include <apr_strings.h>
#include <apr_uri.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* Digits with an optional K/M/G suffix. */
const char *pe_parse_size(apr_pool_t *p, const char *arg, apr_off_t max, apr_off_t *out)
{
    char *end;
    long long v;
    long long mul = 1;

    if (!arg || !*arg || !(*arg >= '0' && *arg <= '9'))
        return apr_psprintf(p, "'%s' is not a size (digits with an optional K, M or G)", arg ? arg : "");
    errno = 0;
    v = strtoll(arg, &end, 10);
    if (errno == ERANGE)
        return apr_psprintf(p, "'%s' is too large", arg);
    if (*end) {
        switch (*end) {
        case 'k': case 'K': mul = 1024LL; break;
        case 'm': case 'M': mul = 1024LL * 1024; break;
        case 'g': case 'G': mul = 1024LL * 1024 * 1024; break;
        default:
            return apr_psprintf(p, "'%s' has an unknown unit (use K, M or G)", arg);
        }
        if (end[1] && !((end[1] == 'b' || end[1] == 'B') && !end[2]))
            return apr_psprintf(p, "'%s' has trailing characters", arg);
    }
    if (v > max / mul)
        return apr_psprintf(p, "'%s' is larger than the maximum %" APR_OFF_T_FMT " bytes", arg, max);
    v *= mul;
    if (v < 1)
        return apr_psprintf(p, "'%s' must be at least 1 byte", arg);
    *out = (apr_off_t)v;
    return NULL;
}

/* A bounded whole number. */
const char *pe_parse_int(apr_pool_t *p, const char *arg, long min, long max, long *out)
{
    char *end;
    long v;

    if (!arg || !*arg)
        return "a number is required";
    errno = 0;
    v = strtol(arg, &end, 10);
    if (errno == ERANGE || *end || end == arg)
        return apr_psprintf(p, "'%s' is not a whole number", arg);
    if (v < min || v > max)
        return apr_psprintf(p, "%ld is out of range (%ld to %ld)", v, min, max);
    *out = v;
    return NULL;
}

/* A duration in its largest whole unit ("500ms", "90s", "15m", "1d"), as the directives take it. */
static const char *fmt_duration(apr_pool_t *p, long long ms)
{
    static const struct { long long n; const char *unit; } units[] = {
        {86400000LL, "d"}, {3600000LL, "h"}, {60000LL, "m"}, {1000LL, "s"}};
    apr_size_t i;

    for (i = 0; ms != 0 && i < sizeof(units) / sizeof(units[0]); i++)
        if (ms % units[i].n == 0)
            return apr_psprintf(p, "%" APR_INT64_T_FMT "%s", (apr_int64_t)(ms / units[i].n), units[i].unit);
    return apr_psprintf(p, "%" APR_INT64_T_FMT "ms", (apr_int64_t)ms);
}

/* Digits with ms/s/m/h/d. */
const char *pe_parse_duration_ms(apr_pool_t *p, const char *arg, long long min_ms, long long max_ms,
                                 long long *out)
{
    char *end;
    long long v;
    long long mul = 1000;

    if (!arg || !(*arg >= '0' && *arg <= '9'))
        return apr_psprintf(p, "'%s' is not a duration (e.g. 500ms, 30s, 15m, 1h, 1d)", arg ? arg : "");
    errno = 0;
    v = strtoll(arg, &end, 10);
    if (errno == ERANGE || v > 1000000000LL)
        return apr_psprintf(p, "'%s' is too large", arg);
    if (*end) {
        if (strcmp(end, "ms") == 0) mul = 1;
        else if (strcmp(end, "s") == 0) mul = 1000;
        else if (strcmp(end, "m") == 0) mul = 60000;
        else if (strcmp(end, "h") == 0) mul = 3600000;
        else if (strcmp(end, "d") == 0) mul = 86400000;
        else
            return apr_psprintf(p, "'%s' has an unknown unit (use ms, s, m, h or d)", arg);
    }
    v *= mul;
    if (v < min_ms || v > max_ms)
        /* NB: apr_psprintf knows no %lld (it prints "%ld" literally): APR_INT64_T_FMT. */
        return apr_psprintf(p, "'%s' is out of range (%s to %s)", arg, fmt_duration(p, min_ms),
                            fmt_duration(p, max_ms));
    *out = v;
    return NULL;
}

/* http(s)://host[...] */
const char *pe_parse_http_url(apr_pool_t *p, const char *arg)
{
    apr_uri_t u;

    if (!arg || apr_uri_parse(p, arg, &u) != APR_SUCCESS || !u.scheme || !u.hostname || !*u.hostname)
        return apr_psprintf(p, "'%s' is not an absolute URL", arg ? arg : "");
    if (strcasecmp(u.scheme, "http") != 0 && strcasecmp(u.scheme, "https") != 0)
        return apr_psprintf(p, "'%s' must use http or https", arg);
    if (strpbrk(arg, " \t\r\n"))
        return apr_psprintf(p, "'%s' contains white space", arg);
    return NULL;
}
