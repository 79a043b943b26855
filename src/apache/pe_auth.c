/*
 * pe_auth.c: bearer credentials -> principal, AuthType PromptEnchanter (check_authn), the
 * route table's credential check, and the authz providers pe-role, pe-verified and
 * pe-staff-level.
 */
#include "pe_access_ap.h"
#include "pe_auth.h"
#include "pe_config.h"
#include "pe_crypto.h"
#include "pe_global.h"
#include "pe_http.h"
#include "pe_log.h"
#include "pe_staff.h"
#include "pe_principal_ap.h"
#include "pe_store_ap.h"

#include "ap_provider.h"
#include "http_core.h"
#include "http_protocol.h"
#include "http_request.h"
#include "mod_auth.h"
#include <apr_lib.h>
#include <apr_strings.h>

pe_store_t *pe_auth_store(request_rec *r)
{
    pe_req_t *rq = pe_req_get(r);

    if (!rq->store)
        rq->store = pe_store_for_request(r);
    return rq->store;
}

/* The credential: "Authorization: Bearer x" (scheme in any case) or "X-API-Key: x" (*xkey = 1). */
static const char *pe_auth_bearer(request_rec *r, int *xkey)
{
    const char *h = apr_table_get(r->headers_in, "Authorization");

    *xkey = 0;
    if (h) {
        while (apr_isspace(*h))
            h++;
        if (strncasecmp(h, "Bearer", 6) != 0 || !apr_isspace(h[6]))
            return "";
        h += 6;
        while (apr_isspace(*h))
            h++;
        return h;
    }
    h = apr_table_get(r->headers_in, "X-API-Key");
    *xkey = h != NULL;
    return h;
}

/* A 401 with WWW-Authenticate, remembered for the rest of the request. */
static int pe_auth_unauthorized(request_rec *r, const char *code, const char *msg)
{
    apr_table_setn(r->err_headers_out, "WWW-Authenticate", "Bearer realm=\"PromptEnchanter\"");
    return pe_http_fail(r, HTTP_UNAUTHORIZED, code, NULL, "%s", msg);
}

/*
 * A 401 for a credential that was given but is wrong. The attempt was reserved in PEAutoBlock's
 * counters before it was checked (count first); what settles it as a strike (docs/configuration.md,
 * "What counts as a failed authentication"): a wrong API key or a credential of no known format,
 * once per distinct value (digest); never a session token, which only login or refresh hands out
 * and which a client replays once it expired or was revoked (digest NULL: the reservation is
 * given back). Wrong passwords count at /v1/users/login, every time.
 */
static int pe_auth_rejected(request_rec *r, const char *code, const char *msg, const char *digest)
{
    pe_access_credential_failed(r, code, digest);
    return pe_auth_unauthorized(r, code, msg);
}

/* The request's principal is p from now on: r->user, then the per-principal rate limit. */
static int pe_auth_accept(request_rec *r, pe_principal_t *p)
{
    pe_req_t *rq = pe_req_get(r);

    rq->principal = p;
    rq->auth_done = 1;
    rq->err_code = rq->err_msg = NULL;
    r->user = apr_pstrdup(r->pool, p->username);
    r->ap_auth_type = PE_AUTH_TYPE;
    /* a valid credential gives its reserved attempt back: it never counts towards PEAutoBlock */
    pe_access_attempt_end(r, 0, NULL);
    /* the per-principal rate limit, once per request, before any route work */
    return pe_access_principal(r, p);
}

/*
 * An operator's session (administrator or support staff): the account of the session's kind,
 * active; its role from the store on every request, so a change applies at once.
 */
static int pe_auth_operator(request_rec *r, pe_store_t *st, pe_principal_t *p)
{
    pe_req_t *rq = pe_req_get(r);
    pe_store_status_e rs = pe_store_staff_by_id(st, p->session->kind, p->session->principal_id, &p->staff);

    if (rs == PE_STORE_EIO)
        return pe_http_fail(r, HTTP_SERVICE_UNAVAILABLE, "STORE_UNAVAILABLE", NULL, "the user store is unavailable");
    if (rs != PE_STORE_OK || !p->staff->is_active || !pe_staff_role(p->staff)) {
        rq->auth_done = 1;
        if (p->session->kind == PE_PRINCIPAL_ADMIN)
            return pe_auth_rejected(r, "INVALID_SESSION", "Invalid or expired admin session token", NULL);
        return pe_auth_rejected(r, "INVALID_SESSION", "Invalid or expired support staff session token", NULL);
    }
    p->kind = p->session->kind;
    p->via = p->kind == PE_PRINCIPAL_ADMIN ? PE_AUTH_ADMIN : PE_AUTH_SUPPORT;
    p->id = p->staff->id;
    p->username = p->staff->username;
    p->is_verified = 1;
    p->is_super = p->kind == PE_PRINCIPAL_ADMIN && p->staff->is_super;
    p->role = (int)pe_staff_role(p->staff);
    return pe_auth_accept(r, p);
}

int pe_auth_principal(request_rec *r, pe_principal_t **out)
{
    pe_req_t *rq = pe_req_get(r);
    pe_global_t *g = pe_global();
    const char *tok, *digest;
    pe_principal_t *p;
    pe_store_t *st;
    pe_store_status_e rs;
    apr_uint64_t gen = 0;
    int rc, xkey;

    *out = rq->principal;
    if (rq->auth_done)
        return rq->principal ? OK : pe_auth_unauthorized(r, rq->err_code ? rq->err_code : "AUTH_REQUIRED",
                                                          rq->err_msg ? rq->err_msg
                                                                      : "Authentication credentials required");
    tok = pe_auth_bearer(r, &xkey);
    if (!tok) {
        rq->auth_done = 1;
        return pe_auth_unauthorized(r, "AUTH_REQUIRED", "Authentication credentials required");
    }
    /* count first, then check: the attempt is reserved in PEAutoBlock's counters before it is verified */
    if ((rc = pe_access_attempt_begin(r)) != OK) {
        rq->auth_done = 1;
        return rc;
    }
    if (!*tok) {
        rq->auth_done = 1;
        return pe_auth_rejected(r, "AUTH_REQUIRED", "Invalid authorization format. Use 'Bearer <token>'", NULL);
    }
    if (xkey && !pe_apikey_format_ok(tok)) {
        rq->auth_done = 1;
        return pe_auth_rejected(r, "INVALID_API_KEY",
                                "X-API-Key takes an API key (pe-...); send a session token as Authorization: Bearer",
                                NULL);
    }
    if (pe_lookup_digest(r->pool, g->secret_key, tok, strlen(tok), &digest) != APR_SUCCESS)
        return pe_http_fail(r, HTTP_INTERNAL_SERVER_ERROR, PE_E_INTERNAL, NULL, "internal error");
    p = apr_pcalloc(r->pool, sizeof(*p));
    /* An API key: the node's principal cache first (pe_principal_ap.h), else the store. */
    if (pe_apikey_format_ok(tok) && pe_principal_lookup(r, digest, &p->user, &gen))
        p->via = PE_AUTH_USER_KEY;
    else if (!(st = pe_auth_store(r)))
        return pe_http_fail(r, HTTP_SERVICE_UNAVAILABLE, "STORE_UNAVAILABLE", NULL, "the user store is unavailable");
    else if (pe_apikey_format_ok(tok)) {
        rs = pe_store_user_by_key_digest(st, digest, &p->user);
        if (rs == PE_STORE_EIO)
            return pe_http_fail(r, HTTP_SERVICE_UNAVAILABLE, "STORE_UNAVAILABLE", NULL, "the user store is unavailable");
        if (rs != PE_STORE_OK || !p->user->is_active) {
            rq->auth_done = 1;
            return pe_auth_rejected(r, "INVALID_API_KEY", "Invalid API key", digest);
        }
        pe_principal_remember(r, digest, gen, p->user);
        p->via = PE_AUTH_USER_KEY;
    }
    else if (pe_token_format_ok(tok)) {
        rs = pe_store_session_by_token(st, digest, apr_time_now(), &p->session);
        if (rs == PE_STORE_OK && p->session->kind != PE_PRINCIPAL_USER) {
            rc = pe_auth_operator(r, st, p);
            *out = rq->principal;
            return rc;
        }
        if (rs == PE_STORE_OK)
            rs = pe_store_user_by_id(st, p->session->principal_id, &p->user);
        if (rs == PE_STORE_EIO)
            return pe_http_fail(r, HTTP_SERVICE_UNAVAILABLE, "STORE_UNAVAILABLE", NULL, "the user store is unavailable");
        if (rs != PE_STORE_OK || !p->user->is_active) {
            rq->auth_done = 1;
            return pe_auth_rejected(r, "INVALID_SESSION", "Invalid or expired session token", NULL);
        }
        p->via = PE_AUTH_USER_SESSION;
    }
    else {
        rq->auth_done = 1;
        return pe_auth_rejected(r, "INVALID_CREDENTIALS", "Invalid API key or session token", digest);
    }
    p->kind = PE_PRINCIPAL_USER;
    p->id = p->user->id;
    p->username = p->user->username;
    p->is_verified = p->user->is_verified;
    *out = p;
    return pe_auth_accept(r, p);
}

int pe_auth_need_check(request_rec *r, int need, pe_principal_t *p)
{
    if (pe_perm_allows((pe_role_e)p->role, (pe_action_e)need))
        return OK;
    if (need == PE_ACT_CREATE_ADMINS || need == PE_ACT_DELETE_USERS || need == PE_ACT_MANAGE_ADMINS)
        return pe_http_fail(r, HTTP_FORBIDDEN, "FORBIDDEN", NULL, "Super admin privileges required");
    return pe_http_fail(r, HTTP_FORBIDDEN, "FORBIDDEN", NULL, "Permission required: %s",
                        pe_perm_action_flag((pe_action_e)need));
}

int pe_auth_route_check(request_rec *r, unsigned auth, pe_principal_t *p)
{
    if (p->via & auth)
        return OK;
    if (p->via == PE_AUTH_USER_KEY && (auth & PE_AUTH_USER_SESSION)) {
        apr_table_setn(r->err_headers_out, "WWW-Authenticate", "Bearer realm=\"PromptEnchanter\"");
        return pe_http_fail(r, HTTP_UNAUTHORIZED, "SESSION_REQUIRED", NULL,
                            "this route needs a session token from /v1/users/login; API keys are not accepted here");
    }
    if (p->via == PE_AUTH_USER_SESSION && (auth & PE_AUTH_USER_KEY)) {
        apr_table_setn(r->err_headers_out, "WWW-Authenticate", "Bearer realm=\"PromptEnchanter\"");
        return pe_http_fail(r, HTTP_UNAUTHORIZED, "API_KEY_REQUIRED", NULL,
                            "this route needs an API key (pe-...); session tokens are not accepted here");
    }
    return pe_http_fail(r, HTTP_FORBIDDEN, "FORBIDDEN", NULL, "this route is not for %s accounts",
                        pe_principal_kind_name(p->kind));
}

/* check_authn: only for AuthType PromptEnchanter. */
int pe_auth_check_authn(request_rec *r)
{
    const char *type = ap_auth_type(r);
    pe_principal_t *p;

    if (!type || strcasecmp(type, PE_AUTH_TYPE) != 0)
        return DECLINED;
    return pe_auth_principal(r, &p);
}

/* The principal the authn hook found, if any. */
static pe_principal_t *pe_authz_principal(request_rec *r)
{
    pe_req_t *rq = pe_req_get(r);

    return r->user ? rq->principal : NULL;
}

/* Require pe-role user|admin|super-admin|support ... */
static authz_status pe_authz_role(request_rec *r, const char *line, const void *parsed)
{
    pe_principal_t *p = pe_authz_principal(r);
    const char *w;

    if (!p)
        return AUTHZ_DENIED_NO_USER;
    while (*(w = ap_getword_conf(r->pool, &line))) {
        if ((!strcmp(w, "user") && p->kind == PE_PRINCIPAL_USER) ||
            (!strcmp(w, "admin") && p->kind == PE_PRINCIPAL_ADMIN) ||
            (!strcmp(w, "super-admin") && p->kind == PE_PRINCIPAL_ADMIN && p->is_super) ||
            (!strcmp(w, "support") && p->kind == PE_PRINCIPAL_SUPPORT))
            return AUTHZ_GRANTED;
    }
    pe_http_fail(r, HTTP_FORBIDDEN, "FORBIDDEN", NULL, "this location is not open to %s accounts",
                 pe_principal_kind_name(p->kind));
    return AUTHZ_DENIED;
}

/* Check the role words when the configuration is read. */
static const char *pe_authz_role_parse(cmd_parms *cmd, const char *line, const void **parsed)
{
    const char *w, *l = line;

    while (*(w = ap_getword_conf(cmd->temp_pool, &l)))
        if (strcmp(w, "user") && strcmp(w, "admin") && strcmp(w, "super-admin") && strcmp(w, "support"))
            return apr_psprintf(cmd->pool, "Require pe-role: unknown role '%s' (user, admin, super-admin, support)", w);
    if (!*line)
        return "Require pe-role: name at least one role";
    return NULL;
}

/* Require pe-verified: the principal's e-mail address is verified. */
static authz_status pe_authz_verified(request_rec *r, const char *line, const void *parsed)
{
    pe_principal_t *p = pe_authz_principal(r);

    if (!p)
        return AUTHZ_DENIED_NO_USER;
    if (p->is_verified)
        return AUTHZ_GRANTED;
    pe_http_fail(r, HTTP_FORBIDDEN, "EMAIL_NOT_VERIFIED", NULL, "Email verification required");
    return AUTHZ_DENIED;
}

/* Require pe-staff-level new|support|advanced ...: support staff of one of these levels. */
static authz_status pe_authz_staff_level(request_rec *r, const char *line, const void *parsed)
{
    pe_principal_t *p = pe_authz_principal(r);
    const char *w;

    if (!p)
        return AUTHZ_DENIED_NO_USER;
    while (*(w = ap_getword_conf(r->pool, &line)))
        if (p->kind == PE_PRINCIPAL_SUPPORT && p->staff && !strcmp(w, p->staff->staff_level))
            return AUTHZ_GRANTED;
    pe_http_fail(r, HTTP_FORBIDDEN, "FORBIDDEN", NULL, "this location is not open to this account");
    return AUTHZ_DENIED;
}

static const char *pe_authz_staff_level_parse(cmd_parms *cmd, const char *line, const void **parsed)
{
    const char *w, *l = line;

    while (*(w = ap_getword_conf(cmd->temp_pool, &l)))
        if (!pe_staff_level_role(w))
            return apr_psprintf(cmd->pool, "Require pe-staff-level: unknown level '%s' (new, support, advanced)", w);
    if (!*line)
        return "Require pe-staff-level: name at least one level";
    return NULL;
}

static const authz_provider pe_authz_role_provider = {&pe_authz_role, &pe_authz_role_parse};
static const authz_provider pe_authz_staff_level_provider = {&pe_authz_staff_level, &pe_authz_staff_level_parse};
static const authz_provider pe_authz_verified_provider = {&pe_authz_verified, NULL};

void pe_auth_register_providers(apr_pool_t *p)
{
    ap_register_auth_provider(p, AUTHZ_PROVIDER_GROUP, "pe-role", AUTHZ_PROVIDER_VERSION, &pe_authz_role_provider,
                              AP_AUTH_INTERNAL_PER_CONF);
    ap_register_auth_provider(p, AUTHZ_PROVIDER_GROUP, "pe-verified", AUTHZ_PROVIDER_VERSION,
                              &pe_authz_verified_provider, AP_AUTH_INTERNAL_PER_CONF);
    ap_register_auth_provider(p, AUTHZ_PROVIDER_GROUP, "pe-staff-level", AUTHZ_PROVIDER_VERSION,
                              &pe_authz_staff_level_provider, AP_AUTH_INTERNAL_PER_CONF);
}
