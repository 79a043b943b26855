/*
 * pe_credits.h: the credit day (httpd-free). Daily conversation credits reset at a configured
 * UTC hour (PECreditResetHour); a "credit day" is the number of whole days since the epoch
 * counted from that hour, so day d runs from d*86400 + hour*3600 to the same time a day later.
 * The store compares a user's reset_day with the current credit day (pe_store_credits_take).
 */
#ifndef PE_CREDITS_H
#define PE_CREDITS_H

#include <apr_time.h>
#include <jansson.h>

/**
 * The credit day containing `now`.
 * @param hour reset hour, 0..23 (UTC); out-of-range values count as 0
 */
apr_int64_t pe_credits_day(apr_time_t now, int hour);

/** Start of the credit day after the one containing `now` (when the next reset happens). */
apr_time_t pe_credits_next_reset(apr_time_t now, int hour);

/**
 * The `limits` object of a 429 CREDITS_EXHAUSTED answer (SPEC 4.6):
 * {"conversation_limit": limit, "reset": reset, "resets_at": "<UTC ISO-8601>"}.
 * @return a new reference (caller owns it)
 */
json_t *pe_credits_limits_json(apr_int64_t limit, apr_int64_t reset, apr_time_t next_reset);

#endif
