/*
 * pe_account.c: the account logic shared by the users, admin-panel and support routes (see
 * pe_account_ap.h). Keys and tokens are stored as digests only; passwords are hashed inside
 * the server-wide gate (PEPasswordHashMax).
 */
#include "pe_account_ap.h"
#include "pe_access_ap.h"
#include "pe_principal_ap.h"
#include "pe_auth.h"
#include "pe_config.h"
#include "pe_crypto.h"
#include "pe_global.h"
#include "pe_http.h"
#include "pe_log.h"

#include "http_protocol.h"
#include <apr_strings.h>
#include <string.h>

int pe_account_invalid(request_rec *r, const pe_valid_t *v)
{
    json_t *extra = pe_json_object(r->pool);

    json_object_set_new(extra, "errors", pe_valid_errors_json(v));
    return pe_http_error_ex(r, HTTP_UNPROCESSABLE_ENTITY, PE_E_VALIDATION, extra, "%s", pe_valid_first(v));
}

int pe_account_store_down(request_rec *r)
{
    apr_table_setn(r->err_headers_out, "Retry-After", "5");
    return pe_http_error(r, HTTP_SERVICE_UNAVAILABLE, "STORE_UNAVAILABLE", "the user store is unavailable");
}

int pe_account_store_failed(request_rec *r, pe_store_status_e rs)
{
    if (rs == PE_STORE_NOTFOUND)
        return pe_http_error(r, HTTP_NOT_FOUND, PE_E_NOT_FOUND, "User not found");
    return pe_account_store_down(r);
}

int pe_account_body(request_rec *r, const char *const *fields, pe_valid_t *v)
{
    json_t *body;
    int rc;

    if ((rc = pe_http_read_json(r, &body)) != OK)
        return rc;
    pe_valid_init(v, r->pool, body, fields);
    return OK;
}

int pe_account_ok(request_rec *r, const char *msg, json_t *data)
{
    json_t *o = pe_json_object(r->pool);

    json_object_set_new(o, "success", json_true());
    json_object_set_new(o, "message", json_string(msg));
    json_object_set_new(o, "data", data ? data : json_null());
    return pe_http_send_json(r, HTTP_OK, o);
}

/* Run an Argon2id computation inside the server-wide gate; 503 when no place frees in time. */
int pe_account_gate_enter(request_rec *r)
{
    pe_global_t *g = pe_global();
    pe_srv_conf_t *sc = pe_config_srv(r->server);

    if (pe_gate_enter(g->hash_gate, apr_time_from_msec(pe_srv_hash_wait_ms(sc))) != APR_SUCCESS) {
        apr_table_setn(r->err_headers_out, "Retry-After", "1");
        pe_rlog(r, APLOG_WARNING, 0, PE_LOGNO(10001) "password hashing is saturated (PEPasswordHashMax %d)",
                pe_srv_hash_max(sc));
        return pe_http_error(r, HTTP_SERVICE_UNAVAILABLE, "BUSY", "the server is busy; retry shortly");
    }
    return OK;
}

int pe_account_hash(request_rec *r, const char *pw, const char **hash)
{
    pe_srv_conf_t *sc = pe_config_srv(r->server);
    apr_status_t rv;
    int rc;

    if ((rc = pe_account_gate_enter(r)) != OK)
        return rc;
    rv = pe_password_hash(r->pool, pw, strlen(pw), (unsigned)pe_srv_argon2_t(sc), (unsigned)pe_srv_argon2_m_kib(sc),
                          (unsigned)pe_srv_argon2_p(sc), hash);
    pe_gate_leave(pe_global()->hash_gate);
    if (rv != APR_SUCCESS)
        return pe_http_error(r, HTTP_INTERNAL_SERVER_ERROR, PE_E_INTERNAL, "internal error");
    return OK;
}

int pe_account_verify(request_rec *r, const char *hash, const char *pw, int *match)
{
    apr_status_t rv;
    int rc;

    *match = 0;
    if ((rc = pe_account_gate_enter(r)) != OK)
        return rc;
    rv = pe_password_verify(hash ? hash : pe_global()->dummy_hash, pw, strlen(pw));
    pe_gate_leave(pe_global()->hash_gate);
    *match = hash && rv == APR_SUCCESS;
    return OK;
}

int pe_account_login_check(request_rec *r, pe_store_t *st, const char *hash, pe_login_reserve_fn reserve,
                           const void *account, int max, apr_time_t lock, const char *password,
                           pe_login_check_t *out)
{
    pe_store_status_e rs;
    apr_status_t rv;
    int rc;

    memset(out, 0, sizeof(*out));
    out->outcome = PE_LOGIN_NONE;
    if ((rc = pe_access_attempt_begin(r)) != OK)
        return rc;
    if ((rc = pe_account_gate_enter(r)) != OK)
        return rc;
    if (hash) {
        /* NB: now after both waits above */
        rs = reserve(st, account, apr_time_now(), max, lock, &out->attempt, &out->locked_until);
        if (rs == PE_STORE_EMPTY)
            out->outcome = PE_LOGIN_LOCKED;
        else if (rs == PE_STORE_EIO) {
            pe_gate_leave(pe_global()->hash_gate);
            return pe_account_store_down(r);
        }
        else if (rs != PE_STORE_OK)
            hash = NULL; /* gone since it was read */
    }
    if (out->outcome == PE_LOGIN_LOCKED)
        hash = NULL;
    rv = pe_password_verify(hash ? hash : pe_global()->dummy_hash, password, strlen(password));
    pe_gate_leave(pe_global()->hash_gate);
    if (hash)
        out->outcome = rv == APR_SUCCESS ? PE_LOGIN_PASSED : PE_LOGIN_WRONG;
    if (out->outcome == PE_LOGIN_PASSED)
        pe_access_attempt_end(r, 0, NULL);
    else
        pe_access_auth_failed(r, "login_failed");
    return OK;
}

/* The sealed copy of an API key is bound to its user: it opens only for that user id. */
const char *pe_account_key_aad(request_rec *r, const char *user_id)
{
    return apr_pstrcat(r->pool, "pe-apikey:", user_id, NULL);
}

int pe_account_new_key(request_rec *r, const char *user_id, const char **key, const char **digest,
                       const char **prefix, const char **sealed)
{
    pe_global_t *g = pe_global();

    if (pe_apikey_generate(r->pool, key) != APR_SUCCESS ||
        pe_lookup_digest(r->pool, g->secret_key, *key, strlen(*key), digest) != APR_SUCCESS ||
        pe_keyring_seal(r->pool, g->keyring, *key, strlen(*key), pe_account_key_aad(r, user_id), sealed) !=
            APR_SUCCESS)
        return pe_http_error(r, HTTP_INTERNAL_SERVER_ERROR, PE_E_INTERNAL, "internal error");
    *prefix = apr_pstrndup(r->pool, *key, 10);
    return OK;
}

int pe_account_rekey(request_rec *r, pe_store_t *st, const char *user_id, const char **key, const char **prefix)
{
    const char *digest, *sealed;
    pe_store_status_e rs;
    int rc, attempt;

    for (attempt = 0;; attempt++) {
        if ((rc = pe_account_new_key(r, user_id, key, &digest, prefix, &sealed)) != OK)
            return rc;
        rs = pe_store_user_set_api_key(st, user_id, digest, *prefix, sealed, apr_time_now());
        if (!(rs == PE_STORE_CONFLICT && attempt < 3))
            break;
    }
    if (rs != PE_STORE_OK)
        return pe_account_store_failed(r, rs);
    pe_principal_changed(r->server, user_id); /* the old key is refused from now on, in every child */
    return OK;
}

json_t *pe_account_rtypes(apr_pool_t *p, const char *list)
{
    json_t *a = json_array();
    char *copy = apr_pstrdup(p, list ? list : ""), *w, *state = NULL;

    for (w = apr_strtok(copy, ",", &state); w; w = apr_strtok(NULL, ",", &state))
        json_array_append_new(a, json_string(w));
    return a;
}

json_t *pe_account_session_json(request_rec *r, const char *token, const char *refresh, apr_time_t exp,
                                apr_time_t rexp)
{
    if (!refresh)
        return json_pack("{s:s,s:o}", "session_token", token, "expires_at", pe_http_time(r->pool, exp));
    return json_pack("{s:s,s:s,s:o,s:o}", "session_token", token, "refresh_token", refresh, "expires_at",
                     pe_http_time(r->pool, exp), "refresh_expires_at", pe_http_time(r->pool, rexp));
}

int pe_account_session_start(request_rec *r, pe_store_t *st, pe_principal_kind_e kind, const char *id,
                             apr_time_t ttl, apr_time_t rttl, pe_session_t **out, const char **token,
                             const char **refresh)
{
    pe_global_t *g = pe_global();
    apr_time_t now = apr_time_now();
    const char *ua = apr_table_get(r->headers_in, "User-Agent");
    pe_session_t *s = apr_pcalloc(r->pool, sizeof(*s));

    s->id = pe_store_new_id(r->pool);
    s->kind = kind;
    s->principal_id = id;
    /* NB: a session that cannot be refreshed still stores a refresh digest (unique, never
     * shown), so no refresh token can ever match it. */
    if (!s->id || pe_token_generate(r->pool, token) != APR_SUCCESS ||
        pe_token_generate(r->pool, refresh) != APR_SUCCESS ||
        pe_lookup_digest(r->pool, g->secret_key, *token, strlen(*token), &s->token_digest) != APR_SUCCESS ||
        pe_lookup_digest(r->pool, g->secret_key, *refresh, strlen(*refresh), &s->refresh_digest) != APR_SUCCESS)
        return pe_http_error(r, HTTP_INTERNAL_SERVER_ERROR, PE_E_INTERNAL, "internal error");
    s->expires_at = now + ttl;
    s->refresh_expires_at = rttl ? now + rttl : s->expires_at;
    s->created_at = s->last_used = now;
    s->ip_address = r->useragent_ip;
    s->user_agent = ua ? apr_pstrndup(r->pool, ua, 255) : "";
    if (pe_store_session_create(st, s) != PE_STORE_OK)
        return pe_account_store_down(r);
    if (!rttl)
        *refresh = NULL;
    *out = s;
    return OK;
}

/* One member of a user's view, when role reads it (PE_ROLE_NONE reads everything). */
static void view_set(json_t *o, pe_role_e role, const char *field, json_t *v)
{
    if (role == PE_ROLE_NONE || pe_perm_field_read(role, field))
        json_object_set_new(o, field, v);
    else
        json_decref(v);
}

json_t *pe_account_user_json(request_rec *r, const pe_user_t *u, pe_role_e role)
{
    json_t *o = json_object();

    view_set(o, role, "id", json_string(u->id));
    view_set(o, role, "username", json_string(u->username));
    view_set(o, role, "name", json_string(u->name));
    view_set(o, role, "email", json_string(u->email));
    view_set(o, role, "about_me", json_string(u->about_me));
    view_set(o, role, "hobbies", json_string(u->hobbies));
    view_set(o, role, "user_type", json_string(u->user_type));
    view_set(o, role, "time_created", pe_http_time(r->pool, u->created_at));
    view_set(o, role, "subscription_plan", json_string(u->subscription_plan));
    view_set(o, role, "credits",
             json_pack("{s:I,s:I}", "main", (json_int_t)u->credits_main, "reset", (json_int_t)u->credits_reset));
    view_set(o, role, "limits",
             json_pack("{s:I,s:I}", "conversation_limit", (json_int_t)u->conv_limit, "reset", (json_int_t)u->conv_reset));
    view_set(o, role, "access_rtype", pe_account_rtypes(r->pool, u->access_rtype));
    view_set(o, role, "level", json_string(u->level));
    view_set(o, role, "additional_notes", json_string(u->additional_notes));
    view_set(o, role, "is_verified", json_boolean(u->is_verified));
    /* is_active: operators see it (SPEC 16: the reference's profile dropped it); a user's own
     * profile keeps the reference's shape */
    if (role != PE_ROLE_NONE)
        view_set(o, role, "is_active", json_boolean(u->is_active));
    view_set(o, role, "last_login", pe_http_time(r->pool, u->last_login));
    view_set(o, role, "last_activity", pe_http_time(r->pool, u->last_activity));
    return o;
}

void pe_account_event(request_rec *r, pe_store_t *st, const char *type, pe_principal_kind_e kind, const char *id,
                      const char *username, json_t *details, const char *severity)
{
    pe_json_bind(r->pool, details);
    if (pe_store_event(st, type, kind, id, username, r->useragent_ip, details, severity, apr_time_now()) !=
        PE_STORE_OK)
        pe_rlog(r, APLOG_WARNING, 0, PE_LOGNO(10002) "security event %s was not stored: %s", type,
                pe_store_error(st) ? pe_store_error(st) : "store error");
}
