/*
 * pe_store.h: the store, one interface of domain operations over two possible backends
 * (mod_dbd now: SQLite and PostgreSQL; MongoDB later). No SQL outside the dbd backend.
 *
 * A pe_store_t is a short-lived handle on one backend connection, made per request (or per
 * batch in a background thread) by the glue; it lives in the pool it was made in.
 * Every operation returns a pe_store_status_e; PE_STORE_EIO operations have already been retried
 * once on a fresh connection when the glue supplied a reconnect function (a pooled PostgreSQL
 * connection is dead after a server restart; DESIGN.md "known traps").
 * Times are apr_time_t (UTC microseconds since the epoch).
 */
#ifndef PE_STORE_H
#define PE_STORE_H

#include <apr_dbd.h>
#include <apr_hash.h>
#include <apr_pools.h>
#include <apr_tables.h>
#include <jansson.h>

typedef enum {
    PE_STORE_OK = 0,
    PE_STORE_NOTFOUND, /* no such row */
    PE_STORE_CONFLICT, /* a unique field is taken; pe_store_t.conflict names it */
    PE_STORE_EMPTY,    /* a guarded update found nothing to take (credits, refresh) */
    PE_STORE_EIO       /* the backend failed; logged with its message */
} pe_store_status_e;

/* Principal kinds; a session belongs to exactly one (SPEC 16.2 item 25). */
typedef enum { PE_PRINCIPAL_NONE = 0, PE_PRINCIPAL_USER, PE_PRINCIPAL_ADMIN, PE_PRINCIPAL_SUPPORT } pe_principal_kind_e;

const char *pe_principal_kind_name(pe_principal_kind_e k);

typedef struct pe_user_t {
    const char *id; /* 24 lower-case hex */
    const char *username, *name, *email, *password_hash;
    const char *about_me, *hobbies, *user_type, *subscription_plan;
    apr_int64_t credits_main, credits_reset, conv_limit, conv_reset, reset_day;
    const char *access_rtype; /* comma-separated r_types */
    const char *level, *additional_notes;
    const char *api_key_digest, *api_key_prefix, *api_key_enc;
    int is_active, is_verified, failed_logins;
    apr_time_t locked_until, created_at, updated_at, last_login, last_activity;
} pe_user_t;

typedef struct pe_session_t {
    const char *id;
    pe_principal_kind_e kind;
    const char *principal_id;
    const char *token_digest, *refresh_digest;
    apr_time_t expires_at, refresh_expires_at, created_at, last_used;
    const char *ip_address, *user_agent;
} pe_session_t;

typedef struct pe_store_t pe_store_t;

/** Called by a backend to replace a broken connection; the glue implements it. */
typedef apr_status_t pe_store_reconnect_fn(pe_store_t *st);

struct pe_store_t {
    apr_pool_t *pool;        /* request (or batch) pool: results are allocated here */
    const char *conflict;    /* after PE_STORE_CONFLICT: "username", "email", "api_key", ... */
    const char *error;       /* after PE_STORE_EIO: the backend's message */
    /* dbd backend state */
    const apr_dbd_driver_t *driver;
    apr_dbd_t *handle;
    apr_hash_t *prepared;    /* the connection's statement cache (mod_dbd's ap_dbd_t.prepared) */
    apr_pool_t *conn_pool;   /* lives as long as the connection: prepared statements go here */
    pe_store_reconnect_fn *reconnect;
    void *glue;              /* the glue's baton for reconnect */
    int retried;
};

/**
 * A dbd store handle on an open connection.
 * @param prepared the connection's statement hash (statements are prepared lazily, by label)
 */
pe_store_t *pe_store_dbd_make(apr_pool_t *p, const apr_dbd_driver_t *driver, apr_dbd_t *handle,
                              apr_hash_t *prepared, apr_pool_t *conn_pool);

/**
 * Bring the schema up to date (idempotent; safe to run from several processes and nodes).
 * @param applied set to the number of versions applied now (0 when up to date)
 */
pe_store_status_e pe_store_schema_apply(pe_store_t *st, int *applied);

/** The latest schema version this build knows. */
int pe_store_schema_version(void);

/** A new id: 24 lower-case hex characters from the CSPRNG. */
const char *pe_store_new_id(apr_pool_t *p);

/* Users */
pe_store_status_e pe_store_user_create(pe_store_t *st, const pe_user_t *u);
pe_store_status_e pe_store_user_by_id(pe_store_t *st, const char *id, pe_user_t **out);
pe_store_status_e pe_store_user_by_email(pe_store_t *st, const char *email, pe_user_t **out);
pe_store_status_e pe_store_user_by_key_digest(pe_store_t *st, const char *digest, pe_user_t **out);
/** Set name/about_me/hobbies where not NULL. */
pe_store_status_e pe_store_user_update_profile(pe_store_t *st, const char *id, const char *name,
                                               const char *about_me, const char *hobbies, apr_time_t now);
pe_store_status_e pe_store_user_set_api_key(pe_store_t *st, const char *id, const char *digest,
                                            const char *prefix, const char *enc, apr_time_t now);
pe_store_status_e pe_store_user_set_email(pe_store_t *st, const char *id, const char *email, int is_verified,
                                          apr_time_t now);
/** New password hash; also clears the failed-login counter and lock. */
pe_store_status_e pe_store_user_set_password(pe_store_t *st, const char *id, const char *hash, apr_time_t now);
/**
 * Count a failed login: the counter starts again after an expired lock; reaching max sets
 * locked_until = now + lock. *failed and *locked_until get the new values.
 */
pe_store_status_e pe_store_user_login_failed(pe_store_t *st, const char *id, apr_time_t now, int max,
                                             apr_time_t lock, int *failed, apr_time_t *locked_until);
/**
 * Reserve one password check for a login BEFORE the password is verified (count first, then
 * check). In one atomic statement, unless the account is locked: the failed-login counter goes up
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
 * Archive the user in pe_deleted_users, then remove its sessions, message logs and the user,
 * in one transaction.
 */
pe_store_status_e pe_store_user_delete(pe_store_t *st, const pe_user_t *u, const char *reason,
                                       const char *deleted_by, apr_time_t now);

/* Sessions (tokens are stored only as digests) */
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
pe_store_status_e pe_store_session_delete(pe_store_t *st, const char *token_digest);
/** Remove every session of a principal except keep_id (may be NULL). */
pe_store_status_e pe_store_session_delete_all(pe_store_t *st, pe_principal_kind_e kind, const char *principal_id,
                                              const char *keep_id);

/* Security events */
pe_store_status_e pe_store_event(pe_store_t *st, const char *event_type, pe_principal_kind_e kind,
                                 const char *principal_id, const char *username, const char *ip,
                                 const json_t *details, const char *severity, apr_time_t now);
/** Count events of a type (tests and monitoring). */
pe_store_status_e pe_store_event_count(pe_store_t *st, const char *event_type, const char *principal_id,
                                       long *count);

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
    const char *messages;   /* JSON text of the client's messages */
    const char *response;   /* the answer's text (cut to the configured size) */
    int status;             /* HTTP status sent to the client */
    apr_int64_t tokens_used, processing_time_ms;
    const char *ip_address;
    apr_time_t created_at;
} pe_message_log_t;

/**
 * Insert n records in one transaction; a record whose request_id is already stored is skipped, so
 * the batch may be written again after a failure without duplicates.
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
/** Set (insert or replace) the prompt of an r_type. */
pe_store_status_e pe_store_system_prompt_set(pe_store_t *st, const char *r_type, const char *prompt,
                                             const char *updated_by, apr_time_t now);

/* Address lists of the access layer: addresses blocked by hand, and the whitelist. Entries are
 * an address or a CIDR network (checked by the reader, pe_access_list_add, not here). */
typedef enum { PE_IPLIST_BLOCKED = 0, PE_IPLIST_WHITELIST = 1 } pe_iplist_e;

typedef struct pe_ipentry_t {
    apr_int64_t id;
    const char *network;    /* "192.0.2.7", "10.0.0.0/8", "2001:db8::/32" */
    const char *note;       /* blocked: the reason shown to the client; whitelist: a description */
    const char *created_by;
    apr_time_t created_at;
    apr_time_t expires_at;  /* 0: never */
    int is_active;
} pe_ipentry_t;

/**
 * The active entries of a list that have not expired at now, oldest first.
 * @param out an array of pe_ipentry_t in st->pool (empty when none)
 */
pe_store_status_e pe_store_iplist_active(pe_store_t *st, pe_iplist_e which, apr_time_t now, apr_array_header_t **out);
/** Add an entry; e->id is ignored (the store numbers entries). */
pe_store_status_e pe_store_iplist_add(pe_store_t *st, pe_iplist_e which, const pe_ipentry_t *e);
/** Remove an entry by id; PE_STORE_NOTFOUND when there is none. */
pe_store_status_e pe_store_iplist_remove(pe_store_t *st, pe_iplist_e which, apr_int64_t id);

#endif
