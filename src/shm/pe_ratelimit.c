/*
 * pe_ratelimit.c: fixed window, sliding window counter, token bucket and strikes, each decided by
 * one callback that pe_shm_update runs under the table lock (see pe_ratelimit.h for the semantics).
 *
 * NB: the callbacks run with the global mutex held: integer arithmetic only, no logging, no calls
 * back into pe_shm. Every bound below is checked so the products stay under 2^63:
 * L, B <= 10^6 and W <= 8.64 * 10^10 us, hence (B + 1) * W and L * W <= 8.7 * 10^16.
 */
#include "pe_ratelimit.h"

#include <string.h>

/* Tags telling which state a slot holds (a zeroed slot has none). */
#define TAG_FIXED 0x52540001u
#define TAG_SLIDING 0x52540002u
#define TAG_BUCKET 0x52540003u
#define TAG_STRIKE 0x52540004u

/* The state in a slot's value area (PE_RL_VALUE_SIZE bytes). */
typedef struct rl_state_t {
    apr_uint32_t tag;
    apr_uint32_t pad; /* strikes: second (apr_time_sec) since which some attempt has been reserved */
    apr_time_t t0;  /* window start (windows, strikes) or last refill (bucket) */
    apr_uint64_t a; /* count (windows), current count (sliding), level in ticks (bucket),
                       strikes: failures in the low 32 bits, reserved (pending) attempts in the high 32 */
    apr_uint64_t b; /* previous count (sliding), blocked_until (strikes) */
} rl_state_t;

/* The two halves of a strike state's a. */
#define ST_STRIKES(st) ((apr_uint32_t)((st)->a & 0xffffffffu))
#define ST_PENDING(st) ((apr_uint32_t)((st)->a >> 32))
#define ST_SET(st, strikes, pending) ((st)->a = ((apr_uint64_t)(pending) << 32) | (apr_uint64_t)(strikes))

typedef char rl_state_fits[(sizeof(rl_state_t) <= PE_RL_VALUE_SIZE) ? 1 : -1];

/* What a take callback needs and returns. */
typedef struct take_baton_t {
    const pe_rl_rule_t *rule;
    apr_uint64_t cost;
    pe_rl_result_t *res;
} take_baton_t;

/* What a strike callback needs and returns. */
typedef struct strike_baton_t {
    const pe_rl_strike_rule_t *rule;
    apr_interval_time_t duration; /* pe_rl_block */
    pe_rl_block_t *out;
    int failed;                   /* pe_rl_strike_settle */
    apr_status_t status;          /* APR_SUCCESS, or APR_EAGAIN from reserve_cb */
} strike_baton_t;

/* ceil(a / b) for b > 0. */
static apr_uint64_t ceil_div(apr_uint64_t a, apr_uint64_t b)
{
    return a / b + (a % b != 0);
}

/* Microseconds to whole seconds, rounded up, at least 1 (a Retry-After for a denial). */
static apr_uint32_t retry_secs(apr_interval_time_t wait)
{
    apr_uint64_t s = wait > 0 ? ceil_div((apr_uint64_t)wait, APR_USEC_PER_SEC) : 1;

    return s < 1 ? 1 : (apr_uint32_t)s;
}

/* Is the window length within bounds? */
static int window_ok(apr_interval_time_t w)
{
    return w >= PE_RL_WINDOW_MIN && w <= PE_RL_WINDOW_MAX;
}

/* Validate a rule; NULL when usable. */
const char *pe_rl_rule_check(const pe_rl_rule_t *rule)
{
    if (!rule)
        return "no rule";
    if (rule->algo != PE_RL_FIXED_WINDOW && rule->algo != PE_RL_SLIDING_WINDOW && rule->algo != PE_RL_TOKEN_BUCKET)
        return "unknown rate limit algorithm";
    if (rule->limit < 1 || rule->limit > PE_RL_LIMIT_MAX)
        return "rate limit must be between 1 and 1000000";
    if (rule->burst > PE_RL_LIMIT_MAX)
        return "burst must be between 0 and 1000000";
    if (!window_ok(rule->window))
        return "rate limit window must be between 1 ms and 1 day";
    return NULL;
}

/* Validate a strike rule; NULL when usable. */
const char *pe_rl_strike_rule_check(const pe_rl_strike_rule_t *rule)
{
    if (!rule)
        return "no rule";
    if (rule->max_strikes < 1 || rule->max_strikes > PE_RL_LIMIT_MAX)
        return "strike count must be between 1 and 1000000";
    if (!window_ok(rule->window))
        return "strike window must be between 1 ms and 1 day";
    if (!window_ok(rule->block_for))
        return "block duration must be between 1 ms and 1 day";
    return NULL;
}

/* Start a state afresh when the slot is new or holds another kind of state. */
static void state_init(rl_state_t *st, apr_uint32_t tag, int created)
{
    if (created || st->tag != tag) {
        memset(st, 0, sizeof(*st));
        st->tag = tag;
    }
}

/* Fixed window: at most L per window opened by the first request. */
static int fixed_cb(void *baton, void *value, apr_size_t value_size, int created, apr_time_t now,
                    apr_time_t *expires)
{
    take_baton_t *tb = baton;
    rl_state_t *st = value;
    apr_uint64_t limit = tb->rule->limit;
    apr_interval_time_t w = tb->rule->window;
    int fresh = created || st->tag != TAG_FIXED;

    state_init(st, TAG_FIXED, created);
    tb->res->retry_after = 0;
    if (fresh || now >= st->t0 + w) {
        st->t0 = now;
        st->a = 0;
    }
    tb->res->allowed = st->a + tb->cost <= limit;
    if (tb->res->allowed)
        st->a += tb->cost;
    else
        tb->res->retry_after = retry_secs(st->t0 + w - now);
    tb->res->remaining = (apr_uint32_t)(limit - (st->a < limit ? st->a : limit));
    tb->res->reset = st->t0 + w;
    *expires = st->t0 + w;
    return st->a == 0 ? PE_SHM_REMOVE : PE_SHM_KEEP;
}

/* Sliding window counter: prev * (W - elapsed) / W + cur + cost <= L, scaled by W. */
static int sliding_cb(void *baton, void *value, apr_size_t value_size, int created, apr_time_t now,
                      apr_time_t *expires)
{
    take_baton_t *tb = baton;
    rl_state_t *st = value;
    apr_uint64_t limit = tb->rule->limit, cost = tb->cost, w = (apr_uint64_t)tb->rule->window;
    apr_uint64_t lw = limit * w, e, used;
    int fresh = created || st->tag != TAG_SLIDING;

    state_init(st, TAG_SLIDING, created);
    tb->res->retry_after = 0;
    if (fresh) {
        st->t0 = now;
    }
    else if (now >= st->t0 + (apr_time_t)w) {
        apr_uint64_t n = (apr_uint64_t)(now - st->t0) / w;

        st->b = n == 1 ? st->a : 0;
        st->a = 0;
        st->t0 += (apr_time_t)(n * w);
    }
    e = now > st->t0 ? (apr_uint64_t)(now - st->t0) : 0; /* < w */
    used = st->b * (w - e) + st->a * w;
    tb->res->allowed = used + cost * w <= lw;
    if (tb->res->allowed) {
        st->a += cost;
        used += cost * w;
    }
    else {
        /* the first moment at which the estimate leaves room for cost: in this window, or the next */
        apr_time_t at;

        if (limit >= st->a + cost && st->b > 0 && w - ((limit - st->a - cost) * w) / st->b < w)
            at = st->t0 + (apr_time_t)(w - ((limit - st->a - cost) * w) / st->b);
        else if (st->a > 0 && ((limit - cost) * w) / st->a < w)
            at = st->t0 + (apr_time_t)(w + w - ((limit - cost) * w) / st->a);
        else
            at = st->t0 + (apr_time_t)w;
        tb->res->retry_after = retry_secs(at - now);
    }
    tb->res->remaining = (apr_uint32_t)(used < lw ? (lw - used) / w : 0);
    if (st->a > 0)
        tb->res->reset = *expires = st->t0 + (apr_time_t)(2 * w);
    else if (st->b > 0)
        tb->res->reset = *expires = st->t0 + (apr_time_t)w;
    else
        tb->res->reset = now;
    return (st->a == 0 && st->b == 0) ? PE_SHM_REMOVE : PE_SHM_KEEP;
}

/* Token bucket: B + 1 tokens, L per W; one token = W ticks, refill L ticks per microsecond. */
static int bucket_cb(void *baton, void *value, apr_size_t value_size, int created, apr_time_t now,
                     apr_time_t *expires)
{
    take_baton_t *tb = baton;
    rl_state_t *st = value;
    apr_uint64_t limit = tb->rule->limit, w = (apr_uint64_t)tb->rule->window;
    apr_uint64_t full = ((apr_uint64_t)tb->rule->burst + 1) * w, need = tb->cost * w;
    int fresh = created || st->tag != TAG_BUCKET;

    state_init(st, TAG_BUCKET, created);
    tb->res->retry_after = 0;
    if (fresh) {
        st->a = full;
        st->t0 = now;
    }
    else if (now > st->t0) {
        apr_uint64_t e = (apr_uint64_t)(now - st->t0);

        /* NB: compare before multiplying, so e * L cannot overflow after a long idle time */
        st->a = (st->a >= full || e >= ceil_div(full - st->a, limit)) ? full : st->a + e * limit;
        st->t0 = now;
    }
    tb->res->allowed = st->a >= need;
    if (tb->res->allowed)
        st->a -= need;
    else
        tb->res->retry_after = retry_secs((apr_interval_time_t)ceil_div(need - st->a, limit));
    tb->res->remaining = (apr_uint32_t)(st->a / w);
    tb->res->reset = *expires = now + (apr_time_t)ceil_div(full - st->a, limit);
    /* a full bucket is the same as no state at all */
    return st->a >= full ? PE_SHM_REMOVE : PE_SHM_KEEP;
}

/* Decide one request against a rule. */
apr_status_t pe_rl_take(pe_shm_t *shm, const char *key, apr_time_t now, const pe_rl_rule_t *rule,
                        apr_uint32_t cost, pe_rl_result_t *res)
{
    take_baton_t tb;
    pe_shm_update_fn *fn;
    apr_uint32_t max_cost;

    if (!res)
        return APR_EINVAL;
    memset(res, 0, sizeof(*res));
    res->reset = now;
    res->retry_after = 1;
    if (!shm || !key || pe_rl_rule_check(rule) || pe_shm_value_size(shm) < PE_RL_VALUE_SIZE)
        return APR_EINVAL;
    res->limit = rule->limit;
    max_cost = rule->algo == PE_RL_TOKEN_BUCKET ? rule->burst + 1 : rule->limit;
    if (cost > max_cost)
        return APR_EINVAL;
    fn = rule->algo == PE_RL_FIXED_WINDOW ? fixed_cb : rule->algo == PE_RL_SLIDING_WINDOW ? sliding_cb : bucket_cb;
    tb.rule = rule;
    tb.cost = cost;
    tb.res = res;
    return pe_shm_update(shm, key, -1, now, rule->window, 0, fn, &tb);
}

/* Fill a block report from a strike state. */
static void block_report(const rl_state_t *st, apr_time_t now, pe_rl_block_t *out)
{
    apr_time_t until = (apr_time_t)st->b;

    out->blocked = until > now;
    out->strikes = ST_STRIKES(st);
    out->pending = ST_PENDING(st);
    out->blocked_until = out->blocked ? until : 0;
    out->retry_after = out->blocked ? retry_secs(until - now) : 0;
}

/*
 * Slot expiry for a strike state: the later of the strike window end and the block end, and while
 * attempts are reserved, PE_RL_PENDING_MAX_SEC after the first of them.
 */
static int strike_keep(const rl_state_t *st, const pe_rl_strike_rule_t *rule, apr_time_t now, apr_time_t *expires)
{
    apr_time_t until = (apr_time_t)st->b, win = ST_STRIKES(st) > 0 && rule ? st->t0 + rule->window : 0;
    apr_time_t held = ST_PENDING(st) > 0 ? apr_time_from_sec((apr_time_t)st->pad + PE_RL_PENDING_MAX_SEC) : 0;

    if (held > win)
        win = held;
    if (until <= now && win <= now)
        return PE_SHM_REMOVE;
    *expires = until > win ? until : win;
    return PE_SHM_KEEP;
}

/* Count one failure in the window (the key is not blocked); block at max_strikes. */
static void strike_count(rl_state_t *st, const pe_rl_strike_rule_t *rule, apr_time_t now)
{
    apr_uint32_t n = ST_STRIKES(st);

    st->b = 0;
    if (n == 0 || now >= st->t0 + rule->window || now < st->t0) {
        st->t0 = now;
        n = 0;
    }
    if (++n >= rule->max_strikes) {
        st->b = (apr_uint64_t)(now + rule->block_for);
        n = 0;
    }
    ST_SET(st, n, ST_PENDING(st));
}

/* Record one failure: count it in the window, block at max_strikes. */
static int strike_cb(void *baton, void *value, apr_size_t value_size, int created, apr_time_t now,
                     apr_time_t *expires)
{
    strike_baton_t *sb = baton;
    rl_state_t *st = value;

    state_init(st, TAG_STRIKE, created);
    if ((apr_time_t)st->b <= now)
        strike_count(st, sb->rule, now);
    block_report(st, now, sb->out);
    return strike_keep(st, sb->rule, now, expires);
}

/* Reserve one attempt: refused while blocked, or while failures + reserved attempts fill the rule. */
static int reserve_cb(void *baton, void *value, apr_size_t value_size, int created, apr_time_t now,
                      apr_time_t *expires)
{
    strike_baton_t *sb = baton;
    rl_state_t *st = value;
    apr_uint32_t n, pending, sec = (apr_uint32_t)apr_time_sec(now);

    state_init(st, TAG_STRIKE, created);
    sb->status = APR_SUCCESS;
    if ((apr_time_t)st->b > now) {
        block_report(st, now, sb->out);
        return strike_keep(st, sb->rule, now, expires);
    }
    st->b = 0;
    n = ST_STRIKES(st);
    pending = ST_PENDING(st);
    /* NB: a window that is over starts again; reserved attempts stay reserved across it */
    if (n > 0 && (now >= st->t0 + sb->rule->window || now < st->t0))
        n = 0;
    /* NB: attempts reserved without a break for longer than any request can live include some
     * whose process died; they stop counting (the live ones are at most max_strikes) */
    if (pending > 0 && (sec < st->pad || sec - st->pad >= PE_RL_PENDING_MAX_SEC))
        pending = 0;
    if ((apr_uint64_t)n + pending >= sb->rule->max_strikes) {
        sb->status = APR_EAGAIN;
    }
    else {
        if (pending++ == 0)
            st->pad = sec;
    }
    ST_SET(st, n, pending);
    block_report(st, now, sb->out);
    return strike_keep(st, sb->rule, now, expires);
}

/* Settle a reserved attempt: give it back, and count it as a failure when it failed. */
static int settle_cb(void *baton, void *value, apr_size_t value_size, int created, apr_time_t now,
                     apr_time_t *expires)
{
    strike_baton_t *sb = baton;
    rl_state_t *st = value;
    apr_uint32_t pending;

    state_init(st, TAG_STRIKE, created);
    pending = ST_PENDING(st);
    ST_SET(st, ST_STRIKES(st), pending > 0 ? pending - 1 : 0);
    if (sb->failed && (apr_time_t)st->b <= now)
        strike_count(st, sb->rule, now);
    block_report(st, now, sb->out);
    return strike_keep(st, sb->rule, now, expires);
}

/* Run a strike callback on key's state; *status gets the callback's verdict. */
static apr_status_t strike_update(pe_shm_t *shm, const char *key, apr_time_t now, const pe_rl_strike_rule_t *rule,
                                  pe_shm_update_fn *cb, int failed, pe_rl_block_t *out)
{
    strike_baton_t sb;
    pe_rl_block_t dummy;
    apr_status_t rv;

    if (!shm || !key || pe_rl_strike_rule_check(rule) || pe_shm_value_size(shm) < PE_RL_VALUE_SIZE)
        return APR_EINVAL;
    memset(&sb, 0, sizeof(sb));
    sb.rule = rule;
    sb.failed = failed;
    sb.out = out ? out : &dummy;
    if ((rv = pe_shm_update(shm, key, -1, now, rule->window, 0, cb, &sb)) != APR_SUCCESS)
        return rv;
    return sb.status;
}

/* Record one failure for key. */
apr_status_t pe_rl_strike(pe_shm_t *shm, const char *key, apr_time_t now, const pe_rl_strike_rule_t *rule,
                          pe_rl_block_t *out)
{
    return strike_update(shm, key, now, rule, strike_cb, 1, out);
}

/* Reserve one attempt for key. */
apr_status_t pe_rl_strike_reserve(pe_shm_t *shm, const char *key, apr_time_t now, const pe_rl_strike_rule_t *rule,
                                  pe_rl_block_t *out)
{
    return strike_update(shm, key, now, rule, reserve_cb, 0, out);
}

/* Settle a reservation of key. */
apr_status_t pe_rl_strike_settle(pe_shm_t *shm, const char *key, apr_time_t now, const pe_rl_strike_rule_t *rule,
                                 int failed, pe_rl_block_t *out)
{
    return strike_update(shm, key, now, rule, settle_cb, failed, out);
}

/* Is key blocked now? */
apr_status_t pe_rl_blocked(pe_shm_t *shm, const char *key, apr_time_t now, pe_rl_block_t *out)
{
    rl_state_t st;
    apr_status_t rv;

    if (!out)
        return APR_EINVAL;
    memset(out, 0, sizeof(*out));
    out->blocked = 1;
    if (!shm || !key || pe_shm_value_size(shm) < PE_RL_VALUE_SIZE)
        return APR_EINVAL;
    memset(&st, 0, sizeof(st));
    rv = pe_shm_get(shm, key, -1, now, &st, sizeof(st), NULL);
    if (rv != APR_SUCCESS && rv != APR_NOTFOUND)
        return rv;
    if (rv == APR_NOTFOUND || st.tag != TAG_STRIKE)
        memset(&st, 0, sizeof(st));
    block_report(&st, now, out);
    return APR_SUCCESS;
}

/* Extend (never shorten) key's block to now + duration; strikes are dropped. */
static int block_cb(void *baton, void *value, apr_size_t value_size, int created, apr_time_t now,
                    apr_time_t *expires)
{
    strike_baton_t *sb = baton;
    rl_state_t *st = value;
    apr_time_t until = now + sb->duration;

    state_init(st, TAG_STRIKE, created);
    if ((apr_time_t)st->b < until)
        st->b = (apr_uint64_t)until;
    ST_SET(st, 0, ST_PENDING(st));
    return strike_keep(st, NULL, now, expires);
}

/* Block key for duration. */
apr_status_t pe_rl_block(pe_shm_t *shm, const char *key, apr_time_t now, apr_interval_time_t duration)
{
    strike_baton_t sb;

    if (!shm || !key || !window_ok(duration) || pe_shm_value_size(shm) < PE_RL_VALUE_SIZE)
        return APR_EINVAL;
    memset(&sb, 0, sizeof(sb));
    sb.duration = duration;
    return pe_shm_update(shm, key, -1, now, duration, 0, block_cb, &sb);
}

/* Drop the strikes of a strike state; keep a running block; leave other states alone. */
static int clear_cb(void *baton, void *value, apr_size_t value_size, int created, apr_time_t now,
                    apr_time_t *expires)
{
    rl_state_t *st = value;

    if (st->tag != TAG_STRIKE)
        return PE_SHM_KEEP;
    ST_SET(st, 0, ST_PENDING(st));
    return strike_keep(st, NULL, now, expires);
}

/* Forget key's strikes. */
apr_status_t pe_rl_strikes_clear(pe_shm_t *shm, const char *key, apr_time_t now)
{
    apr_status_t rv;

    if (!shm || !key || pe_shm_value_size(shm) < PE_RL_VALUE_SIZE)
        return APR_EINVAL;
    rv = pe_shm_update(shm, key, -1, now, 0, PE_SHM_NOCREATE, clear_cb, NULL);
    return rv == APR_NOTFOUND ? APR_SUCCESS : rv;
}

/* Lift key's block and strikes. */
apr_status_t pe_rl_unblock(pe_shm_t *shm, const char *key, apr_time_t now)
{
    if (!shm || !key)
        return APR_EINVAL;
    return pe_shm_delete(shm, key, -1, now);
}
