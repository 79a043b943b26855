/*
 * pe_account_ap.h (glue): the account logic that the users, admin-panel and support routes
 * share, in one place: password hashing and checks inside the server-wide gate, API key issue,
 * sessions of each principal kind, the JSON views of a user (filtered by the caller's rights),
 * r_type lists, security events, and the common replies.
 */
#ifndef PE_ACCOUNT_AP_H
#define PE_ACCOUNT_AP_H

#include "httpd.h"
#include "pe_staff.h"
#include "pe_store.h"
#include "pe_valid.h"

#include <jansson.h>

#define PE_E_VALIDATION "VALIDATION_ERROR"

/** 422 naming every problem of v. */
int pe_account_invalid(request_rec *r, const pe_valid_t *v);
/** 503 STORE_UNAVAILABLE with Retry-After. */
int pe_account_store_down(request_rec *r);
/** NOTFOUND -> 404 "User not found"; anything else -> 503. */
int pe_account_store_failed(request_rec *r, pe_store_status_e rs);
/** Read the JSON body and start validating it against the route's fields. */
int pe_account_body(request_rec *r, const char *const *fields, pe_valid_t *v);
/** {"success":true,"message":msg,"data":data (new reference, NULL: null)} with 200. */
int pe_account_ok(request_rec *r, const char *msg, json_t *data);

/** Hash a new password with the configured Argon2id cost, inside the gate (503 when saturated). */
int pe_account_hash(request_rec *r, const char *pw, const char **hash);
/** Verify a password; NULL hash verifies the dummy (same time, never matches). */
int pe_account_verify(request_rec *r, const char *hash, const char *pw, int *match);

/* A login's password check, counted first (users and operators; docs/security.md). */
typedef enum {
    PE_LOGIN_PASSED, /* the password is right */
    PE_LOGIN_WRONG,  /* checked and wrong: attempt is its number, locked_until the lock it set (0: none) */
    PE_LOGIN_LOCKED, /* the account is locked until locked_until: nothing was checked */
    PE_LOGIN_NONE    /* no usable account (unknown or inactive): the dummy hash was verified */
} pe_login_outcome_e;

typedef struct {
    pe_login_outcome_e outcome;
    int attempt;
    apr_time_t locked_until;
} pe_login_check_t;

/** Reserve one password check of `account` (pe_store_user_login_reserve / _staff_). */
typedef pe_store_status_e (*pe_login_reserve_fn)(pe_store_t *st, const void *account, apr_time_t now, int max,
                                                 apr_time_t lock, int *attempt, apr_time_t *locked_until);

/**
 * Count first, then check: the address's attempt (pe_access_attempt_begin), the hash gate, the
 * account's attempt (reserve, unless hash is NULL: no usable account), then the password, the
 * dummy hash when there is none to check, so every outcome takes as long. A failure is counted
 * for the address (pe_access_auth_failed), a pass gives its attempt back.
 * @return OK with *out, or the answer already made (403/429 from the address, 503)
 */
int pe_account_login_check(request_rec *r, pe_store_t *st, const char *hash, pe_login_reserve_fn reserve,
                           const void *account, int max, apr_time_t lock, const char *password,
                           pe_login_check_t *out);

/** The additional data that binds a sealed API key to its user. */
const char *pe_account_key_aad(request_rec *r, const char *user_id);
/** A new API key: the key, its lookup digest, display prefix and sealed copy. */
int pe_account_new_key(request_rec *r, const char *user_id, const char **key, const char **digest,
                       const char **prefix, const char **sealed);
/**
 * Give user_id a new API key in the store (the old one stops working at once); a digest that
 * collides is drawn again. OK with *key and *prefix, or an error status sent.
 */
int pe_account_rekey(request_rec *r, pe_store_t *st, const char *user_id, const char **key, const char **prefix);

/** "bpe,tot" -> ["bpe","tot"] (new reference). */
json_t *pe_account_rtypes(apr_pool_t *p, const char *list);

/** A session's tokens as the login responses show them (new reference; refresh NULL: omitted). */
json_t *pe_account_session_json(request_rec *r, const char *token, const char *refresh, apr_time_t exp,
                                apr_time_t rexp);
/**
 * Store a new session of principal (kind, id) living ttl (refresh token: rttl; 0: the session
 * cannot be refreshed and *refresh is NULL). OK with *s, *token, *refresh, or an error sent.
 */
int pe_account_session_start(request_rec *r, pe_store_t *st, pe_principal_kind_e kind, const char *id,
                             apr_time_t ttl, apr_time_t rttl, pe_session_t **s, const char **token,
                             const char **refresh);

/**
 * A user as a role sees it: the fields of the permission table that role reads (PE_ROLE_NONE:
 * the user's own profile, every field). New reference.
 */
json_t *pe_account_user_json(request_rec *r, const pe_user_t *u, pe_role_e role);

/**
 * A security event (details: a new reference, taken). The actor is (kind, id, username); a
 * failure to store it is logged, never fatal.
 */
void pe_account_event(request_rec *r, pe_store_t *st, const char *type, pe_principal_kind_e kind, const char *id,
                      const char *username, json_t *details, const char *severity);

/**
 * Enter the server-wide password-hash gate (PEPasswordHashMax), waiting a bounded time; leave it
 * with pe_gate_leave(pe_global()->hash_gate). Non-OK: the 503 BUSY answer, already made.
 */
int pe_account_gate_enter(request_rec *r);

#endif
