/*
 * pe_h_staff.c: the operators' own accounts (SPEC 10.1, 10.2): login and logout of
 * administrators and support staff, creating administrators (super-administrators only) and
 * support staff (administrators), a support member's profile and permissions. The route table
 * says who may call each route (pe_routes.c); the account logic is pe_account.c's.
 *
 * Lockout (SPEC 6.5): administrators 3 failures lock for 2 h, support staff 5 for 1 h, counted
 * before the password is checked as for users; a locked account gets the same 401 as a wrong
 * password (docs/security.md). A lock ends by itself or with a new password (pe-admin passwd). Operator sessions cannot be
 * refreshed: they end after PEAdminSessionLifetime / PESupportSessionLifetime, then log in again.
 */
#include "pe_access_ap.h"
#include "pe_account_ap.h"
#include "pe_auth.h"
#include "pe_config.h"
#include "pe_handlers.h"
#include "pe_http.h"
#include "pe_identity.h"
#include "pe_global.h"
#include "pe_log.h"

#include "http_protocol.h"
#include <apr_strings.h>

/* What differs between the two kinds of operator. */
typedef struct {
    pe_principal_kind_e kind;
    const char *who;        /* "Admin", "Support staff" */
    const char *ev;         /* event prefix: "admin", "support" */
    int max_failures;
    apr_time_t lock;
} staff_kind_t;

static const staff_kind_t kind_admin = {PE_PRINCIPAL_ADMIN, "Admin", "admin", 3, APR_USEC_PER_SEC * 7200};
static const staff_kind_t kind_support = {PE_PRINCIPAL_SUPPORT, "Support staff", "support", 5, APR_USEC_PER_SEC * 3600};

/* The flags of a role, as GET /v1/support/permissions and the admin login show them. */
static json_t *staff_permissions(pe_role_e role, int as_object)
{
    json_t *o = as_object ? json_object() : json_array();
    int a;

    for (a = PE_ACT_NONE + 1; a < PE_ACT_COUNT; a++) {
        const char *flag = pe_perm_action_flag((pe_action_e)a);

        if (as_object)
            json_object_set_new(o, flag, json_boolean(pe_perm_allows(role, (pe_action_e)a)));
        else if (pe_perm_allows(role, (pe_action_e)a))
            json_array_append_new(o, json_string(flag));
    }
    return o;
}

/* An operator as the login and profile responses show it. New reference. */
static json_t *staff_json(request_rec *r, const pe_staff_t *s)
{
    json_t *o = json_pack("{s:s,s:s,s:s,s:s,s:b,s:o,s:s,s:o}", "id", s->id, "username", s->username, "name", s->name,
                          "email", s->email, "is_active", s->is_active, "time_created",
                          pe_http_time(r->pool, s->created_at), "created_by", s->created_by, "last_login",
                          pe_http_time(r->pool, s->last_login));

    if (s->kind == PE_PRINCIPAL_ADMIN) {
        json_object_set_new(o, "is_super_admin", json_boolean(s->is_super));
        json_object_set_new(o, "permissions", staff_permissions(pe_staff_role(s), 0));
    }
    else
        json_object_set_new(o, "staff_level", json_string(s->staff_level));
    return o;
}

/* An event whose actor is the calling operator (or, for a failed login, the name tried). */
static void staff_event(request_rec *r, pe_store_t *st, const char *type, const pe_staff_t *s, pe_principal_kind_e kind,
                        const char *username, json_t *details, const char *severity)
{
    pe_account_event(r, st, type, s ? s->kind : kind, s ? s->id : NULL, s ? s->username : username, details, severity);
}

/* ----------------------------------------------------------------------------------------- */
/* Login */

/* pe_account_login_check's reservation of an operator's attempt. */
static pe_store_status_e staff_reserve(pe_store_t *st, const void *account, apr_time_t now, int max, apr_time_t lock,
                                       int *attempt, apr_time_t *locked_until)
{
    const pe_staff_t *s = account;

    return pe_store_staff_login_reserve(st, s->kind, s->id, now, max, lock, attempt, locked_until);
}

/*
 * POST .../login {"username","password"}: counted first, then checked, as users' logins are
 * (pe_account_login_check). An unknown username, an inactive account, a locked account and a
 * wrong password get the same 401 and take as long (docs/security.md).
 */
static int staff_login(pe_ctx_t *cx, const staff_kind_t *k)
{
    static const char *const fields[] = {"username", "password", NULL};
    request_rec *r = cx->r;
    pe_srv_conf_t *sc = pe_config_srv(r->server);
    const char *username, *password, *token, *refresh, *failed;
    pe_staff_t *s = NULL;
    pe_session_t *sess;
    pe_store_t *st;
    pe_store_status_e rs;
    pe_valid_t v;
    pe_login_check_t lc;
    apr_time_t now, ttl;
    int rc;
    json_t *o;

    if ((rc = pe_account_body(r, fields, &v)) != OK)
        return rc;
    username = pe_valid_str(&v, "username", 1, 1, 100);
    password = pe_valid_str(&v, "password", 1, 1, 1024);
    if (!pe_valid_ok(&v))
        return pe_account_invalid(r, &v);
    if (!(st = pe_auth_store(r)))
        return pe_account_store_down(r);
    rs = pe_store_staff_by_username(st, k->kind, username, &s);
    if (rs == PE_STORE_EIO)
        return pe_account_store_down(r);
    if ((rc = pe_account_login_check(r, st, (s && s->is_active) ? s->password_hash : NULL, staff_reserve, s,
                                     k->max_failures, k->lock, password, &lc)) != OK)
        return rc;
    now = apr_time_now();
    failed = apr_pstrcat(r->pool, k->ev, "_login_failed", NULL);
    if (lc.outcome == PE_LOGIN_LOCKED)
        staff_event(r, st, failed, s, k->kind, NULL,
                    json_pack("{s:s,s:o}", "reason", "account_locked", "locked_until",
                              pe_http_time(r->pool, lc.locked_until)),
                    "info");
    else if (lc.outcome == PE_LOGIN_WRONG) {
        staff_event(r, st, failed, s, k->kind, NULL,
                    json_pack("{s:s,s:i}", "reason", "invalid_password", "failed_attempts", lc.attempt), "warning");
        if (lc.locked_until > 0)
            staff_event(r, st, apr_pstrcat(r->pool, k->ev, "_locked", NULL), s, k->kind, NULL,
                        json_pack("{s:o}", "locked_until", pe_http_time(r->pool, lc.locked_until)), "warning");
    }
    else if (lc.outcome == PE_LOGIN_NONE)
        staff_event(r, st, failed, NULL, k->kind, username,
                    json_pack("{s:s}", "reason", s ? "account_inactive" : "not_found"), "info");
    if (lc.outcome != PE_LOGIN_PASSED)
        return pe_http_error(r, HTTP_UNAUTHORIZED, "INVALID_CREDENTIALS", "Invalid credentials");
    if (pe_password_needs_rehash(s->password_hash, (unsigned)pe_srv_argon2_t(sc), (unsigned)pe_srv_argon2_m_kib(sc),
                                 (unsigned)pe_srv_argon2_p(sc))) {
        const char *nh;

        if ((rc = pe_account_hash(r, password, &nh)) != OK)
            return rc;
        if (pe_store_staff_set_password(st, k->kind, s->id, nh, now) == PE_STORE_OK)
            staff_event(r, st, apr_pstrcat(r->pool, k->ev, "_password_hash_upgraded", NULL), s, k->kind, NULL,
                        json_pack("{s:s}", "to", "argon2id"), "info");
    }
    if (pe_store_staff_login_ok(st, k->kind, s->id, now) != PE_STORE_OK)
        return pe_account_store_down(r);
    s->last_login = now;
    ttl = apr_time_from_msec(k->kind == PE_PRINCIPAL_ADMIN ? pe_srv_admin_session_ttl_ms(sc)
                                                            : pe_srv_support_session_ttl_ms(sc));
    if ((rc = pe_account_session_start(r, st, k->kind, s->id, ttl, 0, &sess, &token, &refresh)) != OK)
        return rc;
    staff_event(r, st, apr_pstrcat(r->pool, k->ev, "_login_successful", NULL), s, k->kind, NULL,
                k->kind == PE_PRINCIPAL_ADMIN
                    ? json_pack("{s:s}", "session_id", sess->id)
                    : json_pack("{s:s,s:s}", "session_id", sess->id, "staff_level", s->staff_level),
                "info");
    o = pe_json_object(r->pool);
    json_object_set_new(o, "success", json_true());
    json_object_set_new(o, "message", json_string(apr_pstrcat(r->pool, k->who, " login successful", NULL)));
    json_object_set_new(o, k->kind == PE_PRINCIPAL_ADMIN ? "admin" : "staff", staff_json(r, s));
    json_object_set_new(o, "session", pe_account_session_json(r, token, NULL, sess->expires_at, 0));
    return pe_http_send_json(r, HTTP_OK, o);
}

int pe_h_admin_login(pe_ctx_t *cx)
{
    return staff_login(cx, &kind_admin);
}

int pe_h_support_login(pe_ctx_t *cx)
{
    return staff_login(cx, &kind_support);
}

/* POST .../logout: the operator's session ends now. */
int pe_h_staff_logout(pe_ctx_t *cx)
{
    pe_principal_t *p = cx->rq->principal;
    pe_store_t *st = pe_auth_store(cx->r);
    pe_store_status_e rs = pe_store_session_delete(st, p->session->token_digest);

    if (rs != PE_STORE_OK && rs != PE_STORE_NOTFOUND)
        return pe_account_store_down(cx->r);
    staff_event(cx->r, st, p->kind == PE_PRINCIPAL_ADMIN ? "admin_logout" : "support_logout", p->staff, p->kind, NULL,
                json_pack("{s:s}", "session_id", p->session->id), "info");
    return pe_account_ok(cx->r, "Logged out successfully", NULL);
}

/* ----------------------------------------------------------------------------------------- */
/* Creating operators */

/* POST /v1/admin-panel/create-admin (super-administrators) and POST /v1/support/create
 * (administrators): one body, checked as the command-line tool checks it. */
static int staff_create(pe_ctx_t *cx, pe_principal_kind_e kind)
{
    static const char *const admin_fields[] = {"username", "name", "email", "password", "is_super_admin",
                                               "permissions", NULL};
    static const char *const staff_fields[] = {"username", "name", "email", "password", "staff_level", NULL};
    request_rec *r = cx->r;
    pe_principal_t *actor = cx->rq->principal;
    const char *username, *name, *email, *password, *level = "", *email_n = NULL, *hash;
    apr_array_header_t *errs;
    pe_staff_t *s;
    pe_store_t *st;
    pe_store_status_e rs;
    pe_valid_t v;
    int rc, i, is_super = 0;

    if ((rc = pe_account_body(r, kind == PE_PRINCIPAL_ADMIN ? admin_fields : staff_fields, &v)) != OK)
        return rc;
    username = pe_valid_str(&v, "username", 1, 1, 100);
    name = pe_valid_str(&v, "name", 1, 1, 200);
    email = pe_valid_str(&v, "email", 1, 1, 254);
    password = pe_valid_str(&v, "password", 1, 1, 1024);
    if (kind == PE_PRINCIPAL_ADMIN) {
        const json_t *perms = json_object_get(v.obj, "permissions");

        is_super = pe_valid_bool(&v, "is_super_admin", 0);
        /* NB: the permissions of an administrator follow from its role (pe_staff.c); a list
         * given here is accepted for the reference's clients and not stored. */
        if (perms && !json_is_array(perms) && !json_is_null(perms))
            pe_valid_fail(&v, "permissions must be a list");
    }
    else
        level = pe_valid_enum(&v, "staff_level", pe_staff_levels, "new");
    if (!pe_valid_ok(&v))
        return pe_account_invalid(r, &v);
    errs = pe_staff_check(r->pool, pe_global()->common_passwords, username, name, email, password, &email_n);
    if (errs->nelts) {
        pe_valid_init(&v, r->pool, NULL, NULL);
        for (i = 0; i < errs->nelts; i++)
            pe_valid_fail(&v, "%s", APR_ARRAY_IDX(errs, i, const char *));
        return pe_account_invalid(r, &v);
    }
    if ((rc = pe_account_hash(r, password, &hash)) != OK)
        return rc;
    if (!(s = pe_staff_new(r->pool, kind, username, name, email_n, hash, is_super, level, actor->username,
                           apr_time_now())))
        return pe_http_error(r, HTTP_INTERNAL_SERVER_ERROR, PE_E_INTERNAL, "internal error");
    st = pe_auth_store(r);
    rs = pe_store_staff_create(st, s);
    if (rs == PE_STORE_CONFLICT && !strcmp(pe_store_conflict(st), "username"))
        return pe_http_error(r, HTTP_CONFLICT, "USERNAME_EXISTS", "Username already exists");
    if (rs == PE_STORE_CONFLICT && !strcmp(pe_store_conflict(st), "email"))
        return pe_http_error(r, HTTP_CONFLICT, "EMAIL_EXISTS", "Email already exists");
    if (rs != PE_STORE_OK)
        return pe_account_store_failed(r, rs == PE_STORE_NOTFOUND ? PE_STORE_EIO : rs);
    staff_event(r, st, kind == PE_PRINCIPAL_ADMIN ? "admin_created" : "support_staff_created", actor->staff,
                actor->kind, NULL,
                kind == PE_PRINCIPAL_ADMIN
                    ? json_pack("{s:s,s:s,s:b}", "target_id", s->id, "target_username", s->username,
                                "is_super_admin", s->is_super)
                    : json_pack("{s:s,s:s,s:s}", "target_id", s->id, "target_username", s->username, "staff_level",
                                s->staff_level),
                "info");
    return pe_account_ok(r, kind == PE_PRINCIPAL_ADMIN ? "Admin created successfully"
                                                       : "Support staff created successfully",
                         json_pack("{s:s,s:s}", "id", s->id, "username", s->username));
}

int pe_h_admin_create(pe_ctx_t *cx)
{
    return staff_create(cx, PE_PRINCIPAL_ADMIN);
}

int pe_h_support_create(pe_ctx_t *cx)
{
    return staff_create(cx, PE_PRINCIPAL_SUPPORT);
}

/* ----------------------------------------------------------------------------------------- */
/* An operator's account ended or suspended by another (SPEC 10: whoever may create an account
 * may end it): administrators by super-administrators, support staff by administrators. */

typedef enum { LC_DEACTIVATE, LC_ACTIVATE, LC_DELETE } staff_lifecycle_e;

/*
 * POST .../{id}/deactivate, .../{id}/activate, DELETE .../{id}. Nobody changes their own account
 * this way, and the last active super-administrator stays (the store decides that atomically).
 * Deactivating and deleting remove the account's sessions: since every operator request reads
 * the account (pe_auth.c), its next request on any child and node is refused.
 */
static int staff_lifecycle(pe_ctx_t *cx, pe_principal_kind_e kind, staff_lifecycle_e what)
{
    static const char *const verbs[] = {"deactivated", "activated", "deleted"};
    request_rec *r = cx->r;
    pe_principal_t *actor = cx->rq->principal;
    const char *id = pe_route_param(cx->match, kind == PE_PRINCIPAL_ADMIN ? "admin_id" : "staff_id");
    const char *who = kind == PE_PRINCIPAL_ADMIN ? "Admin" : "Support staff";
    pe_store_t *st = pe_auth_store(r);
    pe_store_status_e rs;
    pe_staff_t *s;

    if (!st)
        return pe_account_store_down(r);
    rs = pe_store_staff_by_id(st, kind, id ? id : "", &s);
    if (rs == PE_STORE_NOTFOUND)
        return pe_http_error(r, HTTP_NOT_FOUND, "NOT_FOUND", "%s not found", who);
    if (rs != PE_STORE_OK)
        return pe_account_store_failed(r, rs);
    if (what != LC_ACTIVATE && kind == actor->kind && !strcmp(s->id, actor->id))
        return pe_http_error(r, HTTP_CONFLICT, "OWN_ACCOUNT", "You cannot deactivate or delete your own account");
    rs = what == LC_DELETE ? pe_store_staff_delete(st, kind, s->id)
                           : pe_store_staff_set_active(st, kind, s->id, what == LC_ACTIVATE, apr_time_now());
    if (rs == PE_STORE_NOTFOUND)
        return pe_http_error(r, HTTP_NOT_FOUND, "NOT_FOUND", "%s not found", who);
    if (rs == PE_STORE_EMPTY)
        return pe_http_error(r, HTTP_CONFLICT, "LAST_SUPER_ADMIN",
                             "The last active super admin cannot be deactivated or deleted");
    if (rs != PE_STORE_OK)
        return pe_account_store_failed(r, rs);
    staff_event(r, st,
                apr_pstrcat(r->pool, kind == PE_PRINCIPAL_ADMIN ? "admin_" : "support_staff_", verbs[what], NULL),
                actor->staff, actor->kind, NULL,
                json_pack("{s:s,s:s,s:s}", "target_id", s->id, "target_username", s->username, "target_kind",
                          pe_principal_kind_name(kind)),
                what == LC_ACTIVATE ? "info" : "warning");
    return pe_account_ok(r, apr_pstrcat(r->pool, who, " ", verbs[what], NULL),
                         json_pack("{s:s,s:s,s:b}", "id", s->id, "username", s->username, "is_active",
                                   what == LC_ACTIVATE));
}

int pe_h_admin_deactivate(pe_ctx_t *cx)
{
    return staff_lifecycle(cx, PE_PRINCIPAL_ADMIN, LC_DEACTIVATE);
}

int pe_h_admin_activate(pe_ctx_t *cx)
{
    return staff_lifecycle(cx, PE_PRINCIPAL_ADMIN, LC_ACTIVATE);
}

int pe_h_admin_delete(pe_ctx_t *cx)
{
    return staff_lifecycle(cx, PE_PRINCIPAL_ADMIN, LC_DELETE);
}

int pe_h_staff_deactivate(pe_ctx_t *cx)
{
    return staff_lifecycle(cx, PE_PRINCIPAL_SUPPORT, LC_DEACTIVATE);
}

int pe_h_staff_activate(pe_ctx_t *cx)
{
    return staff_lifecycle(cx, PE_PRINCIPAL_SUPPORT, LC_ACTIVATE);
}

int pe_h_staff_delete(pe_ctx_t *cx)
{
    return staff_lifecycle(cx, PE_PRINCIPAL_SUPPORT, LC_DELETE);
}

/* GET /v1/support/profile */
int pe_h_support_profile(pe_ctx_t *cx)
{
    return pe_http_send_json(cx->r, HTTP_OK, pe_json_bind(cx->r->pool, staff_json(cx->r, cx->rq->principal->staff)));
}

/* GET /v1/support/permissions: the flags of the caller's level. */
int pe_h_support_permissions(pe_ctx_t *cx)
{
    pe_principal_t *p = cx->rq->principal;
    json_t *o = pe_json_object(cx->r->pool);

    json_object_set_new(o, "staff_level", json_string(p->staff->staff_level));
    json_object_set_new(o, "permissions", staff_permissions((pe_role_e)p->role, 1));
    return pe_http_send_json(cx->r, HTTP_OK, o);
}
