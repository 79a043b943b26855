/* pe_credits.c: credit days and the limits object. */
#include "pe_credits.h"

#include <stdio.h>

/* The credit day containing now. */
apr_int64_t pe_credits_day(apr_time_t now, int hour)
{
    apr_int64_t secs = (apr_int64_t)apr_time_sec(now);

    if (hour < 0 || hour > 23)
        hour = 0;
    secs -= (apr_int64_t)hour * 3600;
    /* floor division, also for times before the epoch */
    return secs >= 0 ? secs / 86400 : -((-secs + 86399) / 86400);
}

/* Start of the next credit day. */
apr_time_t pe_credits_next_reset(apr_time_t now, int hour)
{
    if (hour < 0 || hour > 23)
        hour = 0;
    return apr_time_from_sec((pe_credits_day(now, hour) + 1) * 86400 + (apr_int64_t)hour * 3600);
}

/* {"conversation_limit", "reset", "resets_at"}. */
json_t *pe_credits_limits_json(apr_int64_t limit, apr_int64_t reset, apr_time_t next_reset)
{
    apr_time_exp_t x;
    char when[80];

    apr_time_exp_gmt(&x, next_reset);
    snprintf(when, sizeof(when), "%04d-%02d-%02dT%02d:%02d:%02dZ", x.tm_year + 1900, x.tm_mon + 1, x.tm_mday,
             x.tm_hour, x.tm_min, x.tm_sec);
    return json_pack("{s:I,s:I,s:s}", "conversation_limit", (json_int_t)limit, "reset", (json_int_t)reset,
                     "resets_at", when);
}
