/*
 * pe_h_users.c: the users route group (/v1/users/...): register, login, refresh, logout,
 * profile, API key, e-mail, password and account deletion (SPEC 3 and 6, with the fixes of
 * SPEC 16: keys and tokens stored as digests, sessions revoked on password change, one 401 for
 * an unknown e-mail and a wrong password, a lock that expires).
 */
#include "pe_access_ap.h"
#include "pe_account_ap.h"
#include "pe_auth.h"
#include "pe_config.h"
#include "pe_crypto.h"
#include "pe_email_ap.h"
#include "pe_global.h"
#include "pe_handlers.h"
#include "pe_identity.h"
#include "pe_log.h"
#include "pe_principal_ap.h"
#include "pe_valid.h"

#include "http_protocol.h"
#include <apr_strings.h>

/* ----------------------------------------------------------------------------------------- */
/* Helpers: the account logic shared with the operators' routes lives in pe_account.c; this
 * file calls it by the names it has always used. */

#define users_invalid pe_account_invalid
#define users_store_down pe_account_store_down
#define users_store_failed pe_account_store_failed
#define users_body pe_account_body
#define users_hash pe_account_hash
#define users_verify pe_account_verify
#define users_key_aad pe_account_key_aad
#define users_new_key pe_account_new_key
#define users_session_json pe_account_session_json

/* A security event of user u (or of an unknown account, by username). Takes details. */
static void users_event(request_rec *r, pe_store_t *st, const char *type, const pe_user_t *u, const char *username,
                        json_t *details, const char *severity)
{
    pe_account_event(r, st, type, u ? PE_PRINCIPAL_USER : PE_PRINCIPAL_NONE, u ? u->id : NULL,
                     u ? u->username : username, details, severity);
}

/* ----------------------------------------------------------------------------------------- */
/* POST /v1/users/register */

int pe_h_users_register(pe_ctx_t *cx)
{
    static const char *const fields[] = {"username", "name", "email", "password", "user_type", "about_me",
                                         "hobbies", NULL};
    static const char *const types[] = {"Personal", "Business", NULL};
    request_rec *r = cx->r;
    pe_srv_conf_t *sc = pe_config_srv(r->server);
    pe_global_t *g = pe_global();
    const char *username, *name, *email, *password, *user_type, *about, *hobbies, *lower = NULL, *err, *key;
    apr_array_header_t *pw_errors;
    pe_valid_t v;
    pe_user_t *u;
    pe_store_t *st;
    pe_store_status_e rs;
    json_t *o;
    int rc, attempt;

    if (!pe_srv_registration(sc))
        return pe_http_error(r, HTTP_FORBIDDEN, "REGISTRATION_DISABLED", "User registration is currently disabled");
    if ((rc = users_body(r, fields, &v)) != OK)
        return rc;
    username = pe_valid_str(&v, "username", 1, 1, 200);
    name = pe_valid_str(&v, "name", 1, 2, 100);
    email = pe_valid_str(&v, "email", 1, 3, 254);
    password = pe_valid_str(&v, "password", 1, 1, 1024);
    user_type = pe_valid_enum(&v, "user_type", types, "Personal");
    about = pe_valid_str(&v, "about_me", 0, 0, 1000);
    hobbies = pe_valid_str(&v, "hobbies", 0, 0, 500);
    if (!pe_valid_ok(&v))
        return users_invalid(r, &v);

    /* Business rules: every problem at once, as SPEC 3.1 does. */
    pe_valid_init(&v, r->pool, NULL, NULL);
    if ((err = pe_username_check(username)))
        pe_valid_fail(&v, "%s", err);
    if ((err = pe_email_normalize(r->pool, email, &lower)))
        pe_valid_fail(&v, "%s", err);
    pw_errors = pe_password_check_all(r->pool, g->common_passwords, password, strlen(password), lower ? lower : email,
                                      username);
    if (pw_errors && pw_errors->nelts)
        apr_array_cat(v.errors, pw_errors);
    if (!(st = pe_auth_store(r)))
        return users_store_down(r);
    if (!pe_valid_ok(&v)) {
        json_t *extra = pe_json_object(r->pool);

        json_object_set_new(extra, "errors", pe_valid_errors_json(&v));
        users_event(r, st, "registration_failed", NULL, username,
                    json_pack("{s:o,s:s}", "errors", pe_valid_errors_json(&v), "email", lower ? lower : ""), "info");
        return pe_http_error_ex(r, HTTP_BAD_REQUEST, "REGISTRATION_FAILED", extra, "Registration failed");
    }

    u = apr_pcalloc(r->pool, sizeof(*u));
    u->id = pe_store_new_id(r->pool);
    u->username = username;
    u->name = name;
    u->email = lower;
    u->about_me = about ? about : "";
    u->hobbies = hobbies ? hobbies : "";
    u->user_type = user_type;
    u->subscription_plan = "free";
    u->credits_main = u->credits_reset = pe_srv_default_credits(sc);
    u->conv_limit = u->conv_reset = pe_srv_default_conv_limit(sc);
    u->access_rtype = pe_srv_default_rtypes(sc);
    u->level = pe_srv_default_level(sc);
    u->is_active = 1;
    /* With PEEmailVerification On the address is verified with a code (pe_h_email.c) first. */
    u->is_verified = !pe_email_verification_on(r);
    u->created_at = u->updated_at = apr_time_now();
    if (!u->id)
        return pe_http_error(r, HTTP_INTERNAL_SERVER_ERROR, PE_E_INTERNAL, "internal error");
    if ((rc = users_hash(r, password, &u->password_hash)) != OK)
        return rc;
    for (attempt = 0;; attempt++) {
        if ((rc = users_new_key(r, u->id, &key, &u->api_key_digest, &u->api_key_prefix, &u->api_key_enc)) != OK)
            return rc;
        rs = pe_store_user_create(st, u);
        if (!(rs == PE_STORE_CONFLICT && !strcmp(pe_store_conflict(st), "api_key") && attempt < 3))
            break;
    }
    if (rs == PE_STORE_CONFLICT && !strcmp(pe_store_conflict(st), "username"))
        return pe_http_error(r, HTTP_CONFLICT, "USERNAME_EXISTS", "Username already exists");
    if (rs == PE_STORE_CONFLICT && !strcmp(pe_store_conflict(st), "email"))
        return pe_http_error(r, HTTP_CONFLICT, "EMAIL_EXISTS", "Email already exists");
    if (rs == PE_STORE_CONFLICT)
        return pe_http_error(r, HTTP_CONFLICT, "USER_EXISTS", "User already exists");
    if (rs != PE_STORE_OK)
        return users_store_down(r);
    users_event(r, st, "user_registered", u, NULL, json_pack("{s:s}", "user_type", u->user_type), "info");

    o = pe_json_object(r->pool);
    json_object_set_new(o, "success", json_true());
    json_object_set_new(o, "message", json_string("User registered successfully"));
    json_object_set_new(o, "user_id", json_string(u->id));
    json_object_set_new(o, "username", json_string(u->username));
    json_object_set_new(o, "email", json_string(u->email));
    /* NB: shown once here also when verification is required: until then it opens no route (pe_email_gate). */
    json_object_set_new(o, "api_key", json_string(key));
    json_object_set_new(o, "verification_required", json_boolean(!u->is_verified));
    return pe_http_send_json(r, HTTP_CREATED, o);
}

/* ----------------------------------------------------------------------------------------- */
/* POST /v1/users/login */

/* pe_account_login_check's reservation of a user's attempt. */
static pe_store_status_e users_reserve(pe_store_t *st, const void *account, apr_time_t now, int max, apr_time_t lock,
                                       int *attempt, apr_time_t *locked_until)
{
    return pe_store_user_login_reserve(st, ((const pe_user_t *)account)->id, now, max, lock, attempt, locked_until);
}

/* Create a session for u and answer with its tokens. */
static int users_start_session(request_rec *r, pe_store_t *st, pe_user_t *u)
{
    pe_srv_conf_t *sc = pe_config_srv(r->server);
    const char *token, *refresh;
    pe_session_t *s;
    json_t *o, *user;
    int rc;

    if ((rc = pe_account_session_start(r, st, PE_PRINCIPAL_USER, u->id, apr_time_from_msec(pe_srv_session_ttl_ms(sc)),
                                       apr_time_from_msec(pe_srv_refresh_ttl_ms(sc)), &s, &token, &refresh)) != OK)
        return rc;
    users_event(r, st, "login_successful", u, NULL, json_pack("{s:s}", "session_id", s->id), "info");

    user = json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:b}", "id", u->id, "username", u->username, "name", u->name, "email",
                     u->email, "user_type", u->user_type, "subscription_plan", u->subscription_plan, "is_verified",
                     u->is_verified);
    o = pe_json_object(r->pool);
    json_object_set_new(o, "success", json_true());
    json_object_set_new(o, "message", json_string("Login successful"));
    json_object_set_new(o, "user", user);
    json_object_set_new(o, "session", users_session_json(r, token, refresh, s->expires_at, s->refresh_expires_at));
    return pe_http_send_json(r, HTTP_OK, o);
}

int pe_h_users_login(pe_ctx_t *cx)
{
    static const char *const fields[] = {"email", "password", NULL};
    request_rec *r = cx->r;
    pe_srv_conf_t *sc = pe_config_srv(r->server);
    const char *email, *password, *lower = NULL;
    pe_user_t *u = NULL;
    pe_store_t *st;
    pe_store_status_e rs;
    pe_valid_t v;
    apr_time_t now;
    pe_login_check_t lc;
    int rc;

    if ((rc = users_body(r, fields, &v)) != OK)
        return rc;
    email = pe_valid_str(&v, "email", 1, 1, 254);
    password = pe_valid_str(&v, "password", 1, 1, 1024);
    if (!pe_valid_ok(&v))
        return users_invalid(r, &v);
    if (!(st = pe_auth_store(r)))
        return users_store_down(r);
    if (pe_email_normalize(r->pool, email, &lower) == NULL) {
        rs = pe_store_user_by_email(st, lower, &u);
        if (rs == PE_STORE_EIO)
            return users_store_down(r);
    }
    /*
     * Count first, then check (both exact under any concurrency): the attempt is reserved in the
     * address's PEAutoBlock counters and, for an account, in its failed-login counter before the
     * password is verified. A locked account, an unknown e-mail and an inactive account verify the
     * dummy hash and get the same 401 as a wrong password (no account enumeration; docs/security.md).
     */
    if ((rc = pe_account_login_check(r, st, (u && u->is_active) ? u->password_hash : NULL, users_reserve, u,
                                     pe_srv_login_max_failures(sc), apr_time_from_msec(pe_srv_login_lockout_ms(sc)),
                                     password, &lc)) != OK)
        return rc;
    now = apr_time_now();
    if (lc.outcome != PE_LOGIN_PASSED) {
        if (lc.outcome == PE_LOGIN_LOCKED)
            users_event(r, st, "login_failed", u, NULL,
                        json_pack("{s:s,s:o}", "reason", "account_locked", "locked_until",
                                  pe_http_time(r->pool, lc.locked_until)),
                        "info");
        else if (lc.outcome == PE_LOGIN_WRONG) {
            users_event(r, st, "login_failed", u, NULL,
                        json_pack("{s:s,s:i}", "reason", "invalid_password", "failed_attempts", lc.attempt), "info");
            if (lc.locked_until > 0)
                users_event(r, st, "account_locked", u, NULL,
                            json_pack("{s:o}", "locked_until", pe_http_time(r->pool, lc.locked_until)), "warning");
        }
        else
            users_event(r, st, "login_failed", NULL, NULL,
                        json_pack("{s:s}", "reason", u ? "account_inactive" : "user_not_found"), "info");
        return pe_http_error(r, HTTP_UNAUTHORIZED, "INVALID_CREDENTIALS", "Invalid credentials");
    }
    /* Parameters raised since this hash was made: store a new one (RELIABILITY R2). */
    if (pe_password_needs_rehash(u->password_hash, (unsigned)pe_srv_argon2_t(sc), (unsigned)pe_srv_argon2_m_kib(sc),
                                 (unsigned)pe_srv_argon2_p(sc))) {
        const char *nh;

        if ((rc = users_hash(r, password, &nh)) != OK)
            return rc;
        if (pe_store_user_set_password(st, u->id, nh, now) == PE_STORE_OK)
            users_event(r, st, "password_hash_upgraded", u, NULL, json_pack("{s:s}", "to", "argon2id"), "info");
    }
    if (pe_store_user_login_ok(st, u->id, now) != PE_STORE_OK)
        return users_store_down(r);
    return users_start_session(r, st, u);
}

/* ----------------------------------------------------------------------------------------- */
/* POST /v1/users/refresh */

int pe_h_users_refresh(pe_ctx_t *cx)
{
    static const char *const fields[] = {"refresh_token", NULL};
    request_rec *r = cx->r;
    pe_srv_conf_t *sc = pe_config_srv(r->server);
    pe_global_t *g = pe_global();
    const char *old, *old_digest, *token, *refresh, *td, *rd;
    apr_time_t now = apr_time_now(), exp, rexp;
    pe_session_t *s;
    pe_store_t *st;
    pe_store_status_e rs;
    pe_valid_t v;
    json_t *o;
    int rc;

    if ((rc = users_body(r, fields, &v)) != OK)
        return rc;
    old = pe_valid_str(&v, "refresh_token", 1, 1, 200);
    if (!pe_valid_ok(&v))
        return users_invalid(r, &v);
    if (!pe_token_format_ok(old))
        return pe_http_error(r, HTTP_UNAUTHORIZED, "INVALID_REFRESH_TOKEN", "Invalid refresh token");
    if (!(st = pe_auth_store(r)))
        return users_store_down(r);
    if (pe_lookup_digest(r->pool, g->secret_key, old, strlen(old), &old_digest) != APR_SUCCESS ||
        pe_token_generate(r->pool, &token) != APR_SUCCESS || pe_token_generate(r->pool, &refresh) != APR_SUCCESS ||
        pe_lookup_digest(r->pool, g->secret_key, token, strlen(token), &td) != APR_SUCCESS ||
        pe_lookup_digest(r->pool, g->secret_key, refresh, strlen(refresh), &rd) != APR_SUCCESS)
        return pe_http_error(r, HTTP_INTERNAL_SERVER_ERROR, PE_E_INTERNAL, "internal error");
    exp = now + apr_time_from_msec(pe_srv_session_ttl_ms(sc));
    rexp = now + apr_time_from_msec(pe_srv_refresh_ttl_ms(sc));
    /* NB: the store's guarded update makes exactly one of concurrent refreshes win. */
    rs = pe_store_session_rotate(st, old_digest, td, rd, exp, rexp, now, &s);
    if (rs == PE_STORE_NOTFOUND)
        return pe_http_error(r, HTTP_UNAUTHORIZED, "INVALID_REFRESH_TOKEN", "Invalid refresh token");
    if (rs != PE_STORE_OK)
        return users_store_down(r);
    o = pe_json_object(r->pool);
    json_object_set_new(o, "success", json_true());
    json_object_set_new(o, "message", json_string("Session refreshed"));
    json_object_set_new(o, "session", users_session_json(r, token, refresh, exp, rexp));
    return pe_http_send_json(r, HTTP_OK, o);
}

/* ----------------------------------------------------------------------------------------- */
/* Session routes (auth PE_AUTH_USER_SESSION: cx->rq->principal is a user by session) */

/* {"success":true,"message":msg,"data":null} */
static int users_ok(request_rec *r, const char *msg)
{
    return pe_account_ok(r, msg, NULL);
}

/* POST /v1/users/logout: the session ends now. */
int pe_h_users_logout(pe_ctx_t *cx)
{
    pe_principal_t *p = cx->rq->principal;
    pe_store_status_e rs = pe_store_session_delete(pe_auth_store(cx->r), p->session->token_digest);

    if (rs != PE_STORE_OK && rs != PE_STORE_NOTFOUND)
        return users_store_down(cx->r);
    return users_ok(cx->r, "Logged out successfully");
}

/* GET /v1/users/profile */
int pe_h_users_profile_get(pe_ctx_t *cx)
{
    request_rec *r = cx->r;
    pe_user_t *u = cx->rq->principal->user;
    json_t *o = pe_json_bind(r->pool, pe_account_user_json(r, u, PE_ROLE_NONE));

    return pe_http_send_json(r, HTTP_OK, o);
}

/* PUT /v1/users/profile: name, about_me, hobbies (null or absent: unchanged). */
int pe_h_users_profile_put(pe_ctx_t *cx)
{
    static const char *const fields[] = {"name", "about_me", "hobbies", NULL};
    request_rec *r = cx->r;
    const char *name, *about, *hobbies;
    pe_store_status_e rs;
    pe_valid_t v;
    int rc;

    if ((rc = users_body(r, fields, &v)) != OK)
        return rc;
    name = pe_valid_str(&v, "name", 0, 2, 100);
    about = pe_valid_str(&v, "about_me", 0, 0, 1000);
    hobbies = pe_valid_str(&v, "hobbies", 0, 0, 500);
    if (!pe_valid_ok(&v))
        return users_invalid(r, &v);
    rs = pe_store_user_update_profile(pe_auth_store(r), cx->rq->principal->id, name, about, hobbies, apr_time_now());
    if (rs != PE_STORE_OK)
        return users_store_failed(r, rs);
    pe_principal_changed(r->server, cx->rq->principal->id);
    return users_ok(r, "Profile updated successfully");
}

/* {"success":true,"message":msg,"api_key":key} */
static int users_key_reply(request_rec *r, const char *msg, const char *key)
{
    json_t *o = pe_json_object(r->pool);

    json_object_set_new(o, "success", json_true());
    json_object_set_new(o, "message", json_string(msg));
    json_object_set_new(o, "api_key", json_string(key));
    return pe_http_send_json(r, HTTP_OK, o);
}

/* GET /v1/users/api-key: the key, from its sealed copy. */
int pe_h_users_apikey_get(pe_ctx_t *cx)
{
    request_rec *r = cx->r;
    pe_user_t *u = cx->rq->principal->user;
    const unsigned char *pt;
    apr_size_t len;
    int stale;

    if (!u->is_verified)
        return pe_http_error(r, HTTP_FORBIDDEN, "EMAIL_NOT_VERIFIED",
                             "Email verification required to access API key: verify your email address first "
                             "(POST /v1/email/send-verification, then POST /v1/email/verify with the code)");
    if (pe_keyring_open(r->pool, pe_global()->keyring, u->api_key_enc, users_key_aad(r, u->id), &pt, &len, &stale) !=
        APR_SUCCESS) {
        pe_rlog(r, APLOG_ERR, 0, PE_LOGNO(10003) "the sealed API key of user %s cannot be opened (key rotated away?)",
                u->id);
        return pe_http_error(r, HTTP_INTERNAL_SERVER_ERROR, PE_E_INTERNAL, "Failed to retrieve API key");
    }
    return users_key_reply(r, "API key retrieved successfully", apr_pstrmemdup(r->pool, (const char *)pt, len));
}

/* POST /v1/users/api-key/regenerate: the old key stops working at once. */
int pe_h_users_apikey_regenerate(pe_ctx_t *cx)
{
    request_rec *r = cx->r;
    pe_user_t *u = cx->rq->principal->user;
    pe_store_t *st = pe_auth_store(r);
    const char *key, *prefix;
    int rc;

    if (!u->is_verified)
        return pe_http_error(r, HTTP_FORBIDDEN, "EMAIL_NOT_VERIFIED",
                             "Email verification required to access API key: verify your email address first "
                             "(POST /v1/email/send-verification, then POST /v1/email/verify with the code)");
    if ((rc = pe_account_rekey(r, st, u->id, &key, &prefix)) != OK)
        return rc;
    users_event(r, st, "api_key_regenerated", u, NULL,
                json_pack("{s:s,s:s}", "old_key_prefix", u->api_key_prefix, "new_key_prefix", prefix), "info");
    return users_key_reply(r, "API key regenerated successfully", key);
}

/* Check the current password of the principal; 401 with msg when wrong. */
static int users_check_current(request_rec *r, pe_user_t *u, const char *pw, const char *msg)
{
    int rc, match;

    if ((rc = users_verify(r, u->password_hash, pw, &match)) != OK)
        return rc;
    return match ? OK : pe_http_error(r, HTTP_UNAUTHORIZED, "INVALID_PASSWORD", "%s", msg);
}

/* PUT /v1/users/email */
int pe_h_users_email(pe_ctx_t *cx)
{
    static const char *const fields[] = {"new_email", "current_password", NULL};
    request_rec *r = cx->r;
    pe_principal_t *p = cx->rq->principal;
    pe_store_t *st = pe_auth_store(r);
    const char *email, *pw, *lower, *err;
    pe_store_status_e rs;
    pe_valid_t v;
    int rc;

    if ((rc = users_body(r, fields, &v)) != OK)
        return rc;
    email = pe_valid_str(&v, "new_email", 1, 3, 254);
    pw = pe_valid_str(&v, "current_password", 1, 1, 1024);
    if (pe_valid_ok(&v) && (err = pe_email_normalize(r->pool, email, &lower)))
        pe_valid_fail(&v, "%s", err);
    if (!pe_valid_ok(&v))
        return users_invalid(r, &v);
    if ((rc = users_check_current(r, p->user, pw, "Invalid current password")) != OK)
        return rc;
    if (!strcmp(lower, p->user->email))
        return pe_http_error(r, HTTP_CONFLICT, "EMAIL_EXISTS", "Email already exists");
    /* A new address is verified again when verification is on. */
    rs = pe_store_user_set_email(st, p->id, lower, pe_email_verification_on(r) ? 0 : p->user->is_verified,
                                 apr_time_now());
    if (rs == PE_STORE_CONFLICT)
        return pe_http_error(r, HTTP_CONFLICT, "EMAIL_EXISTS", "Email already exists");
    if (rs != PE_STORE_OK)
        return users_store_failed(r, rs);
    /* A code mailed to the old address is dead (it could never match the new one anyway). */
    if (pe_email_verification_on(r))
        pe_store_email_code_set(st, p->id, "", 0);
    pe_principal_changed(r->server, p->id);
    /* Other sessions end: whoever else was signed in must sign in again. */
    pe_store_session_delete_all(st, PE_PRINCIPAL_USER, p->id, p->session->id);
    users_event(r, st, "email_changed", p->user, NULL, json_pack("{s:s,s:s}", "from", p->user->email, "to", lower),
                "info");
    return users_ok(r, pe_email_verification_on(r) ? "Email updated successfully. Please verify your new email address."
                                                    : "Email updated successfully.");
}

/* PUT /v1/users/password: every other session is revoked. */
int pe_h_users_password(pe_ctx_t *cx)
{
    static const char *const fields[] = {"current_password", "new_password", NULL};
    request_rec *r = cx->r;
    pe_principal_t *p = cx->rq->principal;
    pe_store_t *st = pe_auth_store(r);
    const char *cur, *npw, *hash;
    apr_array_header_t *pw_errors;
    pe_store_status_e rs;
    pe_valid_t v;
    int rc;

    if ((rc = users_body(r, fields, &v)) != OK)
        return rc;
    cur = pe_valid_str(&v, "current_password", 1, 1, 1024);
    npw = pe_valid_str(&v, "new_password", 1, 1, 1024);
    if (!pe_valid_ok(&v))
        return users_invalid(r, &v);
    if ((rc = users_check_current(r, p->user, cur, "Invalid current password")) != OK)
        return rc;
    pw_errors = pe_password_check_all(r->pool, pe_global()->common_passwords, npw, strlen(npw), p->user->email,
                                      p->user->username);
    if (pw_errors && pw_errors->nelts) {
        json_t *extra = pe_json_object(r->pool);
        pe_valid_t e = {r->pool, NULL, pw_errors};

        json_object_set_new(extra, "errors", pe_valid_errors_json(&e));
        return pe_http_error_ex(r, HTTP_BAD_REQUEST, "WEAK_PASSWORD", extra, "Password does not meet requirements");
    }
    if ((rc = users_hash(r, npw, &hash)) != OK)
        return rc;
    if ((rs = pe_store_user_set_password(st, p->id, hash, apr_time_now())) != PE_STORE_OK)
        return users_store_failed(r, rs);
    pe_principal_changed(r->server, p->id);
    pe_store_session_delete_all(st, PE_PRINCIPAL_USER, p->id, p->session->id);
    users_event(r, st, "password_changed", p->user, NULL, NULL, "info");
    return users_ok(r, "Password changed successfully");
}

/* DELETE /v1/users/account: archived, then removed with its sessions and logs. */
int pe_h_users_delete(pe_ctx_t *cx)
{
    static const char *const fields[] = {"password", "reason", NULL};
    request_rec *r = cx->r;
    pe_principal_t *p = cx->rq->principal;
    pe_store_t *st = pe_auth_store(r);
    const char *pw, *reason;
    pe_store_status_e rs;
    pe_valid_t v;
    int rc;

    if ((rc = users_body(r, fields, &v)) != OK)
        return rc;
    pw = pe_valid_str(&v, "password", 1, 1, 1024);
    reason = pe_valid_str(&v, "reason", 0, 0, 500);
    if (!pe_valid_ok(&v))
        return users_invalid(r, &v);
    if ((rc = users_check_current(r, p->user, pw, "Invalid password")) != OK)
        return rc;
    if ((rs = pe_store_user_delete(st, p->user, reason ? reason : "", "self", apr_time_now())) != PE_STORE_OK)
        return users_store_failed(r, rs);
    pe_principal_changed(r->server, p->id);
    users_event(r, st, "account_deleted", p->user, NULL, json_pack("{s:s}", "deleted_by", "self"), "info");
    return users_ok(r, "Account deleted successfully");
}
