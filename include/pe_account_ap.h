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
