/*
 * pe_store.h: the store's contract: domain operations over an opaque handle, whatever the
 * backend (mod_dbd with SQLite or PostgreSQL: pe_store_dbd.h; MongoDB). No SQL, BSON or
 * backend header here; a backend implements pe_store_backend.h.
 *
 * Handles. A pe_store_t is a short-lived handle on one backend connection, made per request
 * (or per batch of background work) by the glue, living in the pool it was made in; results are
 * allocated in that pool. A handle is used by one thread at a time; any number of handles, in
 * any number of threads, processes and nodes, may work on the same data at once, and every
 * operation keeps the guarantees written below under that concurrency.
 *
 * Failures. Every operation returns a pe_store_status_e. PE_STORE_EIO has already been retried
 * once: on the same connection once the backend has reset it (a pooled PostgreSQL connection is
 * dead after a server restart; DESIGN.md "known traps"), or on another one that the handle's
 * maker supplies after giving the broken one back (a thread never holds two connections). The
 * failure is logged once, by the front end; pe_store_error() has the backend's message. A write
 * that failed with EIO on a connection lost mid-statement may have been applied before the loss;
 * the retry can then apply it a second time (a one-in-a-restart window; conversation logs are
 * keyed by request id and never duplicated).
 *
 * Times are apr_time_t (UTC microseconds since the epoch).
 */
#ifndef PE_STORE_H
#define PE_STORE_H

#include <apr_pools.h>
#include <apr_tables.h>
#include <apr_time.h>
#include <jansson.h>

typedef enum {
    PE_STORE_OK = 0,
    PE_STORE_NOTFOUND, /* no such row */
    PE_STORE_CONFLICT, /* a unique field is taken; pe_store_conflict() names it */
    PE_STORE_EMPTY,    /* a guarded update found nothing to take (credits, refresh) */
    PE_STORE_EIO       /* the backend failed (after the retry); logged, pe_store_error() has the message */
} pe_store_status_e;

/* Principal kinds; a session belongs to exactly one (SPEC 16.2 item 25). */
typedef enum { PE_PRINCIPAL_NONE = 0, PE_PRINCIPAL_USER, PE_PRINCIPAL_ADMIN, PE_PRINCIPAL_SUPPORT } pe_principal_kind_e;

/** "user", "admin", "support" ("" for none): the stored form of a kind. */
const char *pe_principal_kind_name(pe_principal_kind_e k);
/** The kind of a stored name; PE_PRINCIPAL_NONE for anything else (NULL too). */
pe_principal_kind_e pe_principal_kind_parse(const char *name);

typedef struct pe_user_t {
    const char *id; /* 24 lower-case hex */
    const char *username, *name, *email, *password_hash;
    const char *about_me, *hobbies, *user_type, *subscription_plan;
    apr_int64_t credits_main, credits_reset, conv_limit, conv_reset, reset_day;
    const char *access_rtype; /* comma-separated r_types */
    const char *level, *additional_notes;
    const char *api_key_digest, *api_key_prefix, *api_key_enc; /* digest: 64 lower-case hex */
    int is_active, is_verified, failed_logins;
    apr_time_t locked_until, created_at, updated_at, last_login, last_activity;
} pe_user_t;

typedef struct pe_session_t {
    const char *id;
    pe_principal_kind_e kind;
    const char *principal_id;
    const char *token_digest, *refresh_digest; /* 64 lower-case hex (SHA-256), as stored */
    apr_time_t expires_at, refresh_expires_at, created_at, last_used;
    const char *ip_address, *user_agent;
} pe_session_t;

typedef struct pe_store_t pe_store_t;

/** After PE_STORE_EIO: the backend's message (NULL after success). */
const char *pe_store_error(const pe_store_t *st);
/** After PE_STORE_CONFLICT: the unique field that is taken ("username", "email", "api_key", "id"). */
const char *pe_store_conflict(const pe_store_t *st);
/** The backend of a handle: "sqlite3", "pgsql", "mongodb". */
const char *pe_store_backend_name(const pe_store_t *st);

/**
 * Bring the schema (SQL tables, or MongoDB collections and indexes) up to date. Idempotent and
 * safe to run from several processes and nodes at once: they are serialised by the backend and
 * every version is applied exactly once.
 * @param applied set to the number of versions applied now (0 when up to date)
 */
pe_store_status_e pe_store_schema_apply(pe_store_t *st, int *applied);

/** A new id: 24 lower-case hex characters from the CSPRNG (NULL if it fails). */
const char *pe_store_new_id(apr_pool_t *p);

/* Users */
/**
 * Register a user (u->id from pe_store_new_id). The username (case-sensitive), the e-mail and the
 * API key digest are unique: of several concurrent creates sharing one of them, in any processes
 * and nodes, exactly one succeeds and every other gets PE_STORE_CONFLICT with
 * pe_store_conflict() naming the field; nothing of a refused user is stored.
 */
pe_store_status_e pe_store_user_create(pe_store_t *st, const pe_user_t *u);
/** Read one user; PE_STORE_NOTFOUND (and *out NULL) when there is none. Reads see committed writes. */
pe_store_status_e pe_store_user_by_id(pe_store_t *st, const char *id, pe_user_t **out);
/** By e-mail as stored (the caller lower-cases it); PE_STORE_NOTFOUND when none. */
pe_store_status_e pe_store_user_by_email(pe_store_t *st, const char *email, pe_user_t **out);
/** By API key digest; PE_STORE_NOTFOUND when none. */
pe_store_status_e pe_store_user_by_key_digest(pe_store_t *st, const char *digest, pe_user_t **out);
/**
 * The profile updates below each write one user in one atomic write (last writer wins between
 * concurrent updates of the same fields); PE_STORE_NOTFOUND when there is no such user.
 * Set name/about_me/hobbies where not NULL.
 */
pe_store_status_e pe_store_user_update_profile(pe_store_t *st, const char *id, const char *name, const char *about_me,
                                               const char *hobbies, apr_time_t now);
/** Replace the API key; PE_STORE_CONFLICT ("api_key") when another user has that digest. */
pe_store_status_e pe_store_user_set_api_key(pe_store_t *st, const char *id, const char *digest, const char *prefix,
                                            const char *enc, apr_time_t now);
/** Change the e-mail; PE_STORE_CONFLICT ("email") when another user has it. */
pe_store_status_e pe_store_user_set_email(pe_store_t *st, const char *id, const char *email, int is_verified,
                                          apr_time_t now);
/** New password hash; also clears the failed-login counter and lock. */
pe_store_status_e pe_store_user_set_password(pe_store_t *st, const char *id, const char *hash, apr_time_t now);
/**
 * Reserve one password check for a login BEFORE the password is verified (count first, then
 * check). In one atomic write, unless the account is locked: the failed-login counter goes up
 * by one (starting again at 1 after an expired lock), and the attempt that brings it to max locks
 * the account until now + lock at once, whatever its password check then gives. So however many
 * logins run at once, on any number of processes and nodes, at most max passwords are checked
 * per lock. A failed check needs no further call (it is counted already; an attempt whose request
 * dies counts as failed); a successful one clears counter and lock with pe_store_user_login_ok.
 * @param attempt      out: with PE_STORE_OK, this attempt's number (1..max)
 * @param locked_until out: with PE_STORE_OK, the lock this attempt set (0: none); with
 *                     PE_STORE_EMPTY, the end of the running lock
 * @return PE_STORE_OK: check the password; PE_STORE_EMPTY: locked, do not check it;
 *         PE_STORE_NOTFOUND: no such user; PE_STORE_EIO
 */
pe_store_status_e pe_store_user_login_reserve(pe_store_t *st, const char *id, apr_time_t now, int max,
                                              apr_time_t lock, int *attempt, apr_time_t *locked_until);
/** A successful login: counter and lock cleared, last_login/last_activity set. */
pe_store_status_e pe_store_user_login_ok(pe_store_t *st, const char *id, apr_time_t now);
/**
 * Remove the user, archive it (deleted users), remove its sessions and message logs, all or
 * nothing. Of concurrent deletions of one user exactly one succeeds; the others, and a user that
 * no longer exists, get PE_STORE_NOTFOUND and change nothing. Conversation-log rows of the user
 * still queued or in flight are not stored afterwards (pe_store_msglog_insert skips rows whose
 * user no longer exists), so deleting an account destroys its logs for good (SPEC 6.7).
 */
pe_store_status_e pe_store_user_delete(pe_store_t *st, const pe_user_t *u, const char *reason, const char *deleted_by,
                                       apr_time_t now);

/* Sessions (tokens are stored only as digests) */
/** Store a new session; PE_STORE_CONFLICT when its id or a digest is already stored. */
pe_store_status_e pe_store_session_create(pe_store_t *st, const pe_session_t *s);
/** An unexpired session by token digest; last_used is updated. */
pe_store_status_e pe_store_session_by_token(pe_store_t *st, const char *digest, apr_time_t now, pe_session_t **out);
/**
 * Rotate: the session holding an unexpired refresh_digest gets new digests and expiries.
 * Exactly one of several concurrent rotations of the same refresh token succeeds; the others
 * get PE_STORE_NOTFOUND. *out is the rotated session.
 */
pe_store_status_e pe_store_session_rotate(pe_store_t *st, const char *refresh_digest, const char *new_token_digest,
                                          const char *new_refresh_digest, apr_time_t expires_at,
                                          apr_time_t refresh_expires_at, apr_time_t now, pe_session_t **out);
/** Remove the session of a token (logout); PE_STORE_NOTFOUND when none. */
pe_store_status_e pe_store_session_delete(pe_store_t *st, const char *token_digest);
/** Remove every session of a principal except keep_id (may be NULL). */
pe_store_status_e pe_store_session_delete_all(pe_store_t *st, pe_principal_kind_e kind, const char *principal_id,
                                              const char *keep_id);

/* Security events */
/** Append one event (details: a JSON object or NULL). Appends never conflict. */
pe_store_status_e pe_store_event(pe_store_t *st, const char *event_type, pe_principal_kind_e kind,
                                 const char *principal_id, const char *username, const char *ip, const json_t *details,
                                 const char *severity, apr_time_t now);
/** Count events of a type, of one principal when principal_id is not NULL (tests and monitoring). */
pe_store_status_e pe_store_event_count(pe_store_t *st, const char *event_type, const char *principal_id, long *count);

/* Completion credits (SPEC 6.6, DESIGN.md "Credits"): one atomic conditional write each. */

/**
 * Take one conversation credit. The daily reset is folded into the same UPDATE: when the user's
 * reset_day is before `today`, conv_limit first becomes conv_reset (when conv_reset > 0) and
 * reset_day becomes today, so the reset happens lazily, exactly once a day, in any process.
 * @param today the credit day now (pe_credits_day())
 * @return PE_STORE_OK when a credit was taken; PE_STORE_EMPTY when none is left (or no such
 *         active user); PE_STORE_EIO
 */
pe_store_status_e pe_store_credits_take(pe_store_t *st, const char *user_id, apr_int64_t today, apr_time_t now);

/**
 * Give back the credit a failed completion took on day `day` (the `today` given to the take).
 * Nothing is given back when a reset has happened since (reset_day differs): the reset already
 * restored the day's credits.
 * @return PE_STORE_OK (given back), PE_STORE_NOTFOUND (nothing to give back), PE_STORE_EIO
 */
pe_store_status_e pe_store_credits_refund(pe_store_t *st, const char *user_id, apr_int64_t day);

/**
 * The user's credits as the next take will see them (a pending daily reset applied, not written).
 * A read: a concurrent take may change the value right after.
 * @param limit,reset out: conversation_limit and its daily value
 */
pe_store_status_e pe_store_credits_get(pe_store_t *st, const char *user_id, apr_int64_t today, apr_int64_t *limit,
                                       apr_int64_t *reset);

/* Conversation logs (SPEC 11): written in batches by a background thread. */

/** One logged completion. Strings may be NULL (stored as ''). */
typedef struct pe_message_log_t {
    const char *request_id; /* unique: a replayed batch never duplicates a row */
    const char *user_id, *username, *model, *r_type;
    int research_enabled;
    const char *messages; /* JSON text of the client's messages */
    const char *response; /* the answer's text (cut to the configured size) */
    int status;           /* HTTP status sent to the client */
    apr_int64_t tokens_used, processing_time_ms;
    const char *ip_address;
    apr_time_t created_at;
} pe_message_log_t;

/**
 * Insert n records; a record whose request_id is already stored is skipped, so the batch may be
 * written again after a failure, or by two writers at once, without duplicates. Rows are written
 * in chunks, each atomic; after a failure the whole batch may be written again. A record whose
 * user no longer exists is not stored (or, on a backend without a conditional insert, is removed
 * right after), whichever order the insert and a concurrent pe_store_user_delete meet in.
 */
pe_store_status_e pe_store_msglog_insert(pe_store_t *st, const pe_message_log_t *recs, int n);

/** Count the message logs of a user (NULL: of everyone). */
pe_store_status_e pe_store_msglog_count(pe_store_t *st, const char *user_id, long *count);

/* Batch credits (SPEC 8 with the fixes of 16.1 items 2-4): all or nothing, refunds exact. */

/**
 * Take n conversation credits in one conditional write: all of them, or none when fewer than n are
 * left (the lazy daily reset is folded in as in pe_store_credits_take).
 * @return PE_STORE_OK when n credits were taken (n <= 0: nothing to do); PE_STORE_EMPTY when fewer
 *         are left (nothing taken) or no such active user; PE_STORE_EIO
 */
pe_store_status_e pe_store_credits_take_n(pe_store_t *st, const char *user_id, apr_int64_t n, apr_int64_t today,
                                          apr_time_t now);

/**
 * Give back n credits taken on day `day` (nothing when a daily reset happened since).
 * @return PE_STORE_OK, PE_STORE_NOTFOUND (nothing given back), PE_STORE_EIO
 */
pe_store_status_e pe_store_credits_refund_n(pe_store_t *st, const char *user_id, apr_int64_t n, apr_int64_t day);

/* System prompts (r_type custom, and overrides of the built-in styles) */
/** The stored prompt of an r_type ("custom", "bpe"...); PE_STORE_NOTFOUND when none is set. */
pe_store_status_e pe_store_system_prompt_get(pe_store_t *st, const char *r_type, const char **prompt);
/** Set (insert or replace) the prompt of an r_type, atomically: a reader sees the old or the new prompt. */
pe_store_status_e pe_store_system_prompt_set(pe_store_t *st, const char *r_type, const char *prompt,
                                             const char *updated_by, apr_time_t now);

/* Address lists of the access layer: addresses blocked by hand, and the whitelist. Entries are
 * an address or a CIDR network (checked by the reader, pe_access_list_add, not here). */
typedef enum { PE_IPLIST_BLOCKED = 0, PE_IPLIST_WHITELIST = 1 } pe_iplist_e;

typedef struct pe_ipentry_t {
    apr_int64_t id;
    const char *network; /* "192.0.2.7", "10.0.0.0/8", "2001:db8::/32" */
    const char *note;    /* blocked: the reason shown to the client; whitelist: a description */
    const char *created_by;
    apr_time_t created_at;
    apr_time_t expires_at; /* 0: never */
    int is_active;
} pe_ipentry_t;

/**
 * The active entries of a list that have not expired at now, oldest first.
 * @param out an array of pe_ipentry_t in st->pool (empty when none)
 */
pe_store_status_e pe_store_iplist_active(pe_store_t *st, pe_iplist_e which, apr_time_t now, apr_array_header_t **out);
/** Add an entry; e->id is ignored (the store numbers entries, unique per list). */
pe_store_status_e pe_store_iplist_add(pe_store_t *st, pe_iplist_e which, const pe_ipentry_t *e);
/** Remove an entry by id; PE_STORE_NOTFOUND when there is none. */
pe_store_status_e pe_store_iplist_remove(pe_store_t *st, pe_iplist_e which, apr_int64_t id);

/* Operators (SPEC 10): administrators and support staff, principals of their own kinds. */
typedef struct pe_staff_t {
    const char *id;           /* 24 lower-case hex */
    pe_principal_kind_e kind; /* PE_PRINCIPAL_ADMIN or PE_PRINCIPAL_SUPPORT */
    const char *username, *name, *email, *password_hash;
    int is_super;             /* admins: a super-administrator */
    const char *staff_level;  /* support staff: "new", "support", "advanced" ("" for admins) */
    const char *created_by;   /* the operator who made the account ("" for the command-line tool) */
    int is_active, failed_logins;
    apr_time_t locked_until, created_at, updated_at, last_login;
} pe_staff_t;

/**
 * Create an operator (s->id from pe_store_new_id). Username and e-mail are unique within the
 * kind: of concurrent creates sharing one, exactly one succeeds and the others get
 * PE_STORE_CONFLICT naming "username" or "email"; nothing of a refused account is stored.
 */
pe_store_status_e pe_store_staff_create(pe_store_t *st, const pe_staff_t *s);
/** One operator of a kind by id; PE_STORE_NOTFOUND when none (an id of another kind is none). */
pe_store_status_e pe_store_staff_by_id(pe_store_t *st, pe_principal_kind_e kind, const char *id, pe_staff_t **out);
/** By username (case-sensitive) within a kind; PE_STORE_NOTFOUND when none. */
pe_store_status_e pe_store_staff_by_username(pe_store_t *st, pe_principal_kind_e kind, const char *username,
                                             pe_staff_t **out);
/** Every operator of a kind, oldest first: an array of pe_staff_t * (empty when none). */
pe_store_status_e pe_store_staff_list(pe_store_t *st, pe_principal_kind_e kind, apr_array_header_t **out);
/** New password hash; also clears the failed-login counter and lock. */
pe_store_status_e pe_store_staff_set_password(pe_store_t *st, pe_principal_kind_e kind, const char *id,
                                              const char *hash, apr_time_t now);
/**
 * Reserve one password check of an operator's login BEFORE the password is verified, with
 * exactly pe_store_user_login_reserve's contract (one atomic write; the attempt that reaches max
 * locks at once; at most max checks per lock however many logins run at once; PE_STORE_EMPTY
 * while locked, with *locked_until). A successful login then calls pe_store_staff_login_ok.
 */
pe_store_status_e pe_store_staff_login_reserve(pe_store_t *st, pe_principal_kind_e kind, const char *id,
                                               apr_time_t now, int max, apr_time_t lock, int *attempt,
                                               apr_time_t *locked_until);
/** A successful login: counter and lock cleared, last_login set. */
pe_store_status_e pe_store_staff_login_ok(pe_store_t *st, pe_principal_kind_e kind, const char *id, apr_time_t now);
/**
 * Deactivate (active 0) or reactivate (1) an operator; deactivating also removes its sessions
 * (an active one's next request is refused at once, since every request reads the account).
 * Setting the state it already has succeeds. The last active super-administrator is never
 * deactivated: then nothing changes and the answer is PE_STORE_EMPTY. Under any concurrency
 * (deactivations and deletions of several super-administrators at once, on any number of nodes)
 * at least one super-administrator stays active; an attempt that meets another one in flight
 * may be refused with PE_STORE_EMPTY and can be repeated. PE_STORE_NOTFOUND: no such operator.
 */
pe_store_status_e pe_store_staff_set_active(pe_store_t *st, pe_principal_kind_e kind, const char *id, int active,
                                            apr_time_t now);
/**
 * Remove an operator, its sessions and (MongoDB) its claims of username and e-mail, which can
 * then be given to a new account. The guard of pe_store_staff_set_active: PE_STORE_EMPTY for the
 * last active super-administrator. Of concurrent deletions of one operator exactly one succeeds;
 * the others get PE_STORE_NOTFOUND.
 */
pe_store_status_e pe_store_staff_delete(pe_store_t *st, pe_principal_kind_e kind, const char *id);

/** An operator's change of a user: the strings that are not NULL and the values whose set_* flag is on. */
typedef struct pe_user_change_t {
    const char *name, *about_me, *hobbies, *user_type, *subscription_plan, *access_rtype, *level;
    const char *additional_notes;
    int set_credits, set_limits, set_active, set_verified;
    apr_int64_t credits_main, credits_reset, conv_limit, conv_reset;
    int is_active, is_verified;
} pe_user_change_t;

/**
 * Apply an operator's change to a user in one atomic write (last writer wins between concurrent
 * changes of the same fields); PE_STORE_NOTFOUND when there is no such user. The e-mail and the
 * API key change through pe_store_user_set_email and pe_store_user_set_api_key (uniqueness).
 */
pe_store_status_e pe_store_user_update(pe_store_t *st, const char *id, const pe_user_change_t *ch, apr_time_t now);

/* Operators' lists (SPEC 10.1): a page of rows and the total that matches, newest first unless
 * a sort says otherwise. offset >= 0, 1 <= limit. */

/** What an operator's list of users filters and sorts by. */
typedef struct pe_user_query_t {
    const char *search;           /* case-insensitive substring of username, name or e-mail; NULL: any */
    const char *email, *username; /* exact; NULL: any */
    const char *plan;             /* subscription_plan, exact; NULL: any */
    int verified, active;         /* 0 or 1; -1: any */
    const char *sort;             /* "created_at" (default), "username", "email", "last_login" */
    int ascending;                /* else descending */
    long offset, limit;
} pe_user_query_t;

/** A page of users (pe_user_t *) and *total, the number of users the filters match. */
pe_store_status_e pe_store_user_list(pe_store_t *st, const pe_user_query_t *q, apr_array_header_t **out, long *total);

/** A stored security event. */
typedef struct pe_event_t {
    const char *id;
    const char *event_type;
    pe_principal_kind_e kind;
    const char *principal_id, *username, *ip_address;
    const char *details; /* JSON object text */
    const char *severity;
    apr_time_t created_at;
} pe_event_t;

/** A page of security events (pe_event_t *), newest first; filters NULL: any. */
pe_store_status_e pe_store_event_list(pe_store_t *st, const char *event_type, const char *severity,
                                      const char *principal_id, long offset, long limit, apr_array_header_t **out,
                                      long *total);

/** A page of a user's conversation logs (pe_message_log_t *), newest first. */
pe_store_status_e pe_store_msglog_list(pe_store_t *st, const char *user_id, long offset, long limit,
                                       apr_array_header_t **out, long *total);

/** Remove the stored prompt of an r_type (back to the built-in); PE_STORE_NOTFOUND when none is stored. */
pe_store_status_e pe_store_system_prompt_reset(pe_store_t *st, const char *r_type);

/** One user's use of the completions over a period (pe_store_msglog_top_users). */
typedef struct pe_usage_row_t {
    const char *user_id, *username;
    long requests;
    apr_int64_t tokens;
} pe_usage_row_t;

/** The conversation logs since `since`: how many, and the tokens they used. */
pe_store_status_e pe_store_msglog_usage(pe_store_t *st, apr_time_t since, long *requests, apr_int64_t *tokens);

/** The users with the most conversation logs since `since` (pe_usage_row_t *), most first, at most limit. */
pe_store_status_e pe_store_msglog_top_users(pe_store_t *st, apr_time_t since, int limit, apr_array_header_t **out);

/* Monitoring (SPEC 13) */

/** A real round trip to the store (readiness): PE_STORE_OK when it answers. Fails at debug level. */
pe_store_status_e pe_store_ping(pe_store_t *st);

/** Conversation-log figures of a period (GET /v1/monitoring/usage). */
typedef struct pe_usage_t {
    long messages;               /* logged completions */
    apr_int64_t tokens;          /* their tokens_used */
    apr_int64_t processing_ms;   /* their processing_time_ms, summed */
    apr_array_header_t *days;    /* pe_usage_day_t, oldest first, days with logs only */
    apr_array_header_t *r_types; /* pe_usage_rtype_t, by name */
} pe_usage_t;

typedef struct pe_usage_day_t {
    apr_int64_t day; /* days since 1970-01-01 (UTC) */
    long messages;
    apr_int64_t tokens;
} pe_usage_day_t;

typedef struct pe_usage_rtype_t {
    const char *r_type; /* "" for none */
    long messages;
} pe_usage_rtype_t;

/**
 * The usage of one user (user_id) or of everyone (NULL) from the conversation logs created in
 * [since, until): totals, per UTC day and per r_type. Arrays in the handle's pool.
 */
pe_store_status_e pe_store_usage(pe_store_t *st, const char *user_id, apr_time_t since, apr_time_t until,
                                 pe_usage_t *out);

/* E-mail verification (SPEC 7 with the fixes of 16.1 item 10, 16.2 items 21 and 29). A user has at
 * most one live code, kept on the user as a keyed digest (never the code) with its expiry and its
 * count of attempts, and a count of the verification mails of the current day. Days are whole
 * numbers (the caller's day count, e.g. UTC days since the epoch). */

/**
 * Count one verification mail against the user's daily limit, in one atomic write: when the stored
 * day is before `day` the count starts again at 1, else it grows by one unless it has reached
 * `limit`. Of N concurrent calls on one day exactly min(N, limit - sent) succeed.
 * @param sends out: the day's count after the call (with PE_STORE_EMPTY: the count reached)
 * @return PE_STORE_OK (counted), PE_STORE_EMPTY (the limit is reached; nothing changed),
 *         PE_STORE_NOTFOUND (no such user), PE_STORE_EIO
 */
pe_store_status_e pe_store_email_send_take(pe_store_t *st, const char *user_id, apr_int64_t day, int limit,
                                           int *sends);

/**
 * Give back a mail counted on `day` that could not be sent (nothing when the day has changed since).
 * @return PE_STORE_OK, PE_STORE_NOTFOUND (nothing given back), PE_STORE_EIO
 */
pe_store_status_e pe_store_email_send_release(pe_store_t *st, const char *user_id, apr_int64_t day);

/**
 * Make digest the user's code until expires_at, replacing any other code (which stops working at
 * once) with an attempt count of 0. PE_STORE_NOTFOUND when there is no such user.
 */
pe_store_status_e pe_store_email_code_set(pe_store_t *st, const char *user_id, const char *digest,
                                          apr_time_t expires_at);

/**
 * Count one attempt at the user's code, before it is compared, in one atomic write that also
 * returns the digest it counted against: the count grows only while the code is live (set, not
 * expired at now, fewer than max attempts). Of N concurrent attempts at most max - attempts are
 * counted; the others get PE_STORE_EMPTY.
 * @param digest out: the digest of the code the attempt was counted against (in the handle's pool)
 * @param attempts out: the count with this attempt
 * @return PE_STORE_OK (counted: compare now), PE_STORE_EMPTY (max attempts reached: the code is
 *         dead), PE_STORE_NOTFOUND (no live code: none, used or expired; or no such user), PE_STORE_EIO
 */
pe_store_status_e pe_store_email_code_attempt(pe_store_t *st, const char *user_id, apr_time_t now, int max,
                                              const char **digest, int *attempts);

/**
 * Use the code: when the user still has the e-mail address `email` and the live code `digest`,
 * clear the code and mark the user verified, in one atomic write. Exactly one of concurrent uses
 * of one code succeeds.
 * @return PE_STORE_OK, PE_STORE_NOTFOUND (used already, replaced, expired, or the address
 *         changed), PE_STORE_EIO
 */
pe_store_status_e pe_store_email_code_use(pe_store_t *st, const char *user_id, const char *email,
                                          const char *digest, apr_time_t now);

/* API-usage records (SPEC 11.3 with 16.2 item 21): one per request authenticated with a user's
 * API key, written in batches by the conversation-log writer. No key is stored: the user id and
 * the key's public prefix identify the caller. Removed after a retention period. */

/** One API request. Strings may be NULL (stored as ''). */
typedef struct pe_api_usage_t {
    const char *request_id; /* unique: a replayed batch never duplicates a row */
    const char *user_id;
    const char *key_prefix; /* the public prefix of the key used (pe_user_t.api_key_prefix), never the key */
    const char *endpoint;   /* the route's path ("/v1/prompt/completions") */
    const char *method;
    int status;             /* the HTTP status sent to the client */
    apr_int64_t latency_ms, tokens_used;
    const char *ip_address, *user_agent;
    apr_time_t created_at;  /* the stored date ("YYYY-MM-DD", UTC) is derived from it */
} pe_api_usage_t;

/**
 * Insert n records; a record whose request_id is already stored is skipped, so a batch may be
 * written again after a failure without duplicates. Rows are written in chunks, each atomic.
 */
pe_store_status_e pe_store_api_usage_insert(pe_store_t *st, const pe_api_usage_t *recs, int n);

/**
 * Retention: remove at most limit records created before `before` (oldest first), so one call
 * is bounded however much has expired. *removed gets how many went.
 */
pe_store_status_e pe_store_api_usage_purge(pe_store_t *st, apr_time_t before, int limit, long *removed);

/** API calls of one user (NULL: everyone) created in [since, until): how many, and their latencies summed. */
typedef struct pe_api_usage_sum_t {
    long calls;
    apr_int64_t latency_ms; /* sum */
    apr_int64_t tokens;     /* sum */
} pe_api_usage_sum_t;

pe_store_status_e pe_store_api_usage_sum(pe_store_t *st, const char *user_id, apr_time_t since, apr_time_t until,
                                         pe_api_usage_sum_t *out);

/** The records of one request (tests and operators), or PE_STORE_NOTFOUND. */
pe_store_status_e pe_store_api_usage_get(pe_store_t *st, const char *request_id, pe_api_usage_t **out);

#endif
