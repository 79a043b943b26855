/*
 * pe_ratelimit.h: exact rate limits and firewall strikes on the shared slot table (pe_shm.h).
 *
 * Every decision is computed inside one pe_shm_update, i.e. under the table's global mutex, so the
 * limit holds across all child processes and threads: N processes racing for a limit of L get
 * exactly L admissions in total, never more (RELIABILITY.md R52: over-admission 0).
 * All arithmetic is integer (microseconds and scaled token units); nothing is rounded in the
 * client's favour. Time is passed in, so tests control the clock.
 *
 * The algorithms (a rule = limit L per window W, plus a burst B for the token bucket):
 *
 * PE_RL_FIXED_WINDOW: a counter per key. A window opens at the key's first request (after the
 *   previous window has ended) and lasts W; at most L requests are allowed in it, then every request
 *   is denied until the window ends (Reset = window end, Retry-After = seconds to it). B is ignored.
 *   "limit 60/min, burst 0" therefore allows exactly 60 requests, the 61st and later are denied
 *   until the window that opened with the first one ends; then 60 more. Across the end of one window
 *   and the start of the next a client can send up to 2L within a short span (the classic boundary
 *   effect); PE_RL_SLIDING_WINDOW smooths that.
 *
 * PE_RL_SLIDING_WINDOW: the sliding-window counter. Windows of W follow one another from the key's
 *   first request; the previous window's count is weighted by the part of it still inside the last W:
 *   allowed iff prev * (W - elapsed) / W + cur + cost <= L. It never allows more than L in one window,
 *   and spreads the next window's allowance over time instead of granting it all at the boundary.
 *   It is exact arithmetic on an estimate: it assumes the previous window's requests were spread
 *   evenly, so a client that packed them at the very end of a window can get somewhat more than L
 *   (at most 2L) in a rolling W. Use PE_RL_FIXED_WINDOW when a hard per-window count is needed.
 *
 * PE_RL_TOKEN_BUCKET: nginx limit_req semantics ("rate=L/W burst=B nodelay"). The bucket holds
 *   B + 1 tokens, starts full and refills continuously at L tokens per W (one token every W/L); each
 *   request takes one token or is denied. So "limit 60/min, burst 0" allows one request per second:
 *   60 evenly spaced requests a minute, never 2 within one second, never more than 60 in any minute.
 *   "limit 60/min, burst 20" allows 21 back to back, then one per second. Reset = the time the bucket
 *   is full again; Retry-After = seconds until the next token.
 *
 * Denied requests are not counted by any algorithm. An evicted or expired state is equivalent to a
 * fresh one (empty window, full bucket), so size the table for the live keys (pe_shm_stats evictions).
 *
 * Strikes (firewall): pe_rl_strike records one failure for a key; max_strikes failures within a
 * window that opens at the first failure block the key until now + block_for, and the strike count
 * starts again at zero. pe_rl_blocked answers whether a key is blocked now.
 * Count first, then check: a caller about to verify a credential reserves the attempt with
 * pe_rl_strike_reserve and settles it with pe_rl_strike_settle once the verification is done
 * (failed: a strike; passed: given back). An attempt is reserved only while failures + reserved
 * attempts stay below max_strikes, so however many attempts run at once, at most max_strikes
 * failures are verified before the block; a reservation refused with APR_EAGAIN may be asked
 * again once some reserved attempts are settled.
 *
 * Keys: the caller namespaces them ("rl:ip:192.0.2.1", "fw:ip:192.0.2.1"); a key holds one kind of
 * state. If a key is used with another algorithm than the one whose state it holds, the state is
 * started afresh.
 *
 * Requirements: the table's value size must be at least PE_RL_VALUE_SIZE bytes.
 */
#ifndef PE_RATELIMIT_H
#define PE_RATELIMIT_H

#include "pe_shm.h"

/** Value area the limiter needs in each slot of the table (pe_shm_create value_size). */
#define PE_RL_VALUE_SIZE 32
/**
 * Seconds after which reserved attempts that were never settled (their process died) no longer
 * count: when a key has had attempts reserved without a break for this long, its reservations are
 * dropped (longer than any request can take, so at most one allowance of in-flight attempts is
 * forgotten, once in that time).
 */
#define PE_RL_PENDING_MAX_SEC 600
/** Largest limit, burst and strike count accepted. */
#define PE_RL_LIMIT_MAX 1000000u
/** Shortest and longest window accepted (also block_for for strikes). */
#define PE_RL_WINDOW_MIN apr_time_from_msec(1)
#define PE_RL_WINDOW_MAX apr_time_from_sec(86400)

/** Algorithms (see the file comment). */
typedef enum pe_rl_algo_e {
    PE_RL_FIXED_WINDOW = 1,
    PE_RL_SLIDING_WINDOW = 2,
    PE_RL_TOKEN_BUCKET = 3
} pe_rl_algo_e;

/** A limit: at most `limit` requests per `window` (token bucket: plus `burst` at once). */
typedef struct pe_rl_rule_t {
    pe_rl_algo_e algo;
    apr_uint32_t limit;         /* 1..PE_RL_LIMIT_MAX */
    apr_uint32_t burst;         /* token bucket only: extra tokens above one, 0..PE_RL_LIMIT_MAX */
    apr_interval_time_t window; /* PE_RL_WINDOW_MIN..PE_RL_WINDOW_MAX; apr_time_from_sec(60) = per minute */
} pe_rl_rule_t;

/** A decision, shaped for the response headers. */
typedef struct pe_rl_result_t {
    int allowed;             /* 1: go on; 0: answer 429 */
    apr_uint32_t limit;      /* X-RateLimit-Limit: the rule's limit */
    apr_uint32_t remaining;  /* X-RateLimit-Remaining: requests (of cost 1) that would pass right now */
    apr_time_t reset;        /* X-RateLimit-Reset: when the key is back to its full allowance (absolute;
                                epoch seconds, rounded up: apr_time_sec(reset + APR_USEC_PER_SEC - 1)) */
    apr_uint32_t retry_after; /* Retry-After in whole seconds (rounded up, >= 1) when denied; 0 when allowed */
} pe_rl_result_t;

/** A strike rule: max_strikes failures within window block the key for block_for. */
typedef struct pe_rl_strike_rule_t {
    apr_uint32_t max_strikes;      /* 1..PE_RL_LIMIT_MAX */
    apr_interval_time_t window;    /* PE_RL_WINDOW_MIN..PE_RL_WINDOW_MAX */
    apr_interval_time_t block_for; /* PE_RL_WINDOW_MIN..PE_RL_WINDOW_MAX */
} pe_rl_strike_rule_t;

/** The state of a key under strikes. */
typedef struct pe_rl_block_t {
    int blocked;              /* 1 while now < blocked_until */
    apr_uint32_t strikes;     /* failures in the current window (0 once a block starts) */
    apr_uint32_t pending;     /* attempts reserved and not settled yet */
    apr_time_t blocked_until; /* end of the block, 0 when not blocked */
    apr_uint32_t retry_after; /* seconds until the block ends (rounded up), 0 when not blocked */
} pe_rl_block_t;

/**
 * Check a rule for use (config time).
 * @param rule the rule
 * @return NULL when valid, else a static message naming the problem
 */
const char *pe_rl_rule_check(const pe_rl_rule_t *rule);

/**
 * Decide one request: take `cost` units from key's allowance under rule, or deny and take nothing.
 * cost 0 only reports the state (always allowed, creates nothing).
 * @param shm  the table (value size >= PE_RL_VALUE_SIZE)
 * @param key  NUL-terminated key, namespaced by the caller
 * @param now  current time
 * @param rule the limit
 * @param cost units this request takes, 0..limit (token bucket: 0..burst + 1)
 * @param res  out: the decision and header values
 * @return APR_SUCCESS (res filled), APR_EINVAL (bad rule, cost or table), or the mutex error
 *         (res->allowed is then 0; the caller decides whether to fail open or closed)
 */
apr_status_t pe_rl_take(pe_shm_t *shm, const char *key, apr_time_t now, const pe_rl_rule_t *rule,
                        apr_uint32_t cost, pe_rl_result_t *res);

/**
 * Check a strike rule for use (config time).
 * @return NULL when valid, else a static message
 */
const char *pe_rl_strike_rule_check(const pe_rl_strike_rule_t *rule);

/**
 * Record one failure for key (a failed login from an IP...). A key that is already blocked is
 * left as it is (the failure is not counted and the block is not extended).
 * @param shm  the table
 * @param key  NUL-terminated key
 * @param now  current time
 * @param rule the strike rule
 * @param out  out, may be NULL: the key's state after this failure (blocked = 1 when this failure
 *             started the block, or the key was already blocked)
 * @return APR_SUCCESS, APR_EINVAL, or the mutex error
 */
apr_status_t pe_rl_strike(pe_shm_t *shm, const char *key, apr_time_t now, const pe_rl_strike_rule_t *rule,
                          pe_rl_block_t *out);

/**
 * Reserve one attempt for key before verifying a credential (count first, then check).
 * @param out out, may be NULL: the key's state (blocked = 1: refused, the key is blocked)
 * @return APR_SUCCESS: reserved unless out->blocked; settle it with pe_rl_strike_settle.
 *         APR_EAGAIN: not reserved, failures + reserved attempts already reach max_strikes; ask
 *         again after a short wait (the pending attempts decide: a block, or room again).
 *         APR_EINVAL, or the mutex error.
 */
apr_status_t pe_rl_strike_reserve(pe_shm_t *shm, const char *key, apr_time_t now, const pe_rl_strike_rule_t *rule,
                                  pe_rl_block_t *out);

/**
 * Settle an attempt reserved with pe_rl_strike_reserve: it is no longer reserved, and when
 * failed it counts as a failure as pe_rl_strike does (blocking at max_strikes).
 * @param out out, may be NULL: the state afterwards (blocked = 1 when this failure started the
 *            block, or the key was blocked)
 * @return APR_SUCCESS, APR_EINVAL, or the mutex error
 */
apr_status_t pe_rl_strike_settle(pe_shm_t *shm, const char *key, apr_time_t now, const pe_rl_strike_rule_t *rule,
                                 int failed, pe_rl_block_t *out);

/**
 * Is key blocked now? Reads only; a key never struck is not blocked.
 * @param shm the table
 * @param key NUL-terminated key
 * @param now current time
 * @param out out: blocked, strikes in the current window, block end and Retry-After
 * @return APR_SUCCESS (out filled), APR_EINVAL, or the mutex error (out->blocked is then 1:
 *         the caller decides whether to fail open or closed)
 */
apr_status_t pe_rl_blocked(pe_shm_t *shm, const char *key, apr_time_t now, pe_rl_block_t *out);

/**
 * Block key until now + duration (an operator's block, or one decided elsewhere). An existing
 * longer block is kept.
 * @return APR_SUCCESS, APR_EINVAL (duration out of range), or the mutex error
 */
apr_status_t pe_rl_block(pe_shm_t *shm, const char *key, apr_time_t now, apr_interval_time_t duration);

/**
 * Forget key's strikes (after a successful login); a running block stays.
 * @return APR_SUCCESS (also when there was nothing to forget), APR_EINVAL, or the mutex error
 */
apr_status_t pe_rl_strikes_clear(pe_shm_t *shm, const char *key, apr_time_t now);

/**
 * Lift a block and forget the strikes (pe_shm_delete of the key).
 * @return APR_SUCCESS, APR_NOTFOUND when the key had no state, or the mutex error
 */
apr_status_t pe_rl_unblock(pe_shm_t *shm, const char *key, apr_time_t now);

#endif
