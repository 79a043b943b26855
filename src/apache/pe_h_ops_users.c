/*
 * pe_h_ops_users.c: operators acting on users, for the admin panel (/v1/admin-panel/users/...)
 * and support staff (/v1/support/users/...) alike. The route table has already checked that
 * the caller's role may take the route's action; which user fields it may read or write is the
 * permission table's (pe_staff.c), asked here field by field. A change is all or nothing: one
 * field the caller may not write refuses the whole request (403) before anything is stored.
 * Every change is a security event naming the actor, the target user and the fields changed
 * (never their secret values).
 */
#include "pe_principal_ap.h"
#include "pe_access_ap.h"
#include "pe_account_ap.h"
#include "pe_auth.h"
#include "pe_enhance.h"
#include "pe_global.h"
#include "pe_handlers.h"
#include "pe_http.h"
#include "pe_identity.h"
#include "pe_log.h"

#include "http_protocol.h"
#include "util_script.h"
#include <apr_strings.h>

/* The target user of a /users/{user_id} route; 404 when there is none. */
static int ops_target(pe_ctx_t *cx, pe_store_t **st, pe_user_t **u)
{
    const char *id = pe_route_param(cx->match, "user_id");
    pe_store_status_e rs;

    if (!(*st = pe_auth_store(cx->r)))
        return pe_account_store_down(cx->r);
    rs = pe_store_user_by_id(*st, id ? id : "", u);
    return rs == PE_STORE_OK ? OK : pe_account_store_failed(cx->r, rs);
}

/* The event of an operator's change of user u: user_updated (admins), user_updated_by_support. */
static void ops_event(pe_ctx_t *cx, pe_store_t *st, const char *admin_type, const char *support_type,
                      const pe_user_t *u, json_t *details, const char *severity)
{
    pe_principal_t *p = cx->rq->principal;

    json_object_set_new(details, "target_user_id", json_string(u->id));
    json_object_set_new(details, "target_username", json_string(u->username));
    if (p->kind == PE_PRINCIPAL_SUPPORT)
        json_object_set_new(details, "staff_level", json_string(p->staff->staff_level));
    pe_account_event(cx->r, st, p->kind == PE_PRINCIPAL_ADMIN ? admin_type : support_type, p->kind, p->id,
                     p->username, details, severity);
}

static int ops_forbidden_field(request_rec *r, const char *field)
{
    return pe_http_error(r, HTTP_FORBIDDEN, "FORBIDDEN", "Permission required to change %s", field);
}

/* GET .../users/{user_id}: the fields the caller reads. */
int pe_h_ops_user_get(pe_ctx_t *cx)
{
    pe_store_t *st;
    pe_user_t *u;
    int rc;

    if ((rc = ops_target(cx, &st, &u)) != OK)
        return rc;
    if (cx->rq->principal->kind == PE_PRINCIPAL_SUPPORT) {
        json_t *o = pe_json_object(cx->r->pool);

        json_object_set_new(o, "user", pe_account_user_json(cx->r, u, (pe_role_e)cx->rq->principal->role));
        json_object_set_new(o, "staff_level", json_string(cx->rq->principal->staff->staff_level));
        return pe_http_send_json(cx->r, HTTP_OK, o);
    }
    return pe_http_send_json(cx->r, HTTP_OK,
                             pe_json_bind(cx->r->pool, pe_account_user_json(cx->r, u, (pe_role_e)cx->rq->principal->role)));
}

/* {"a": int, "b": int} with both members; 0 and a problem noted when not. */
static int ops_pair(pe_valid_t *v, const char *field, const char *a, const char *b, apr_int64_t *va, apr_int64_t *vb,
                    long long min)
{
    const json_t *o = json_object_get(v->obj, field), *ja, *jb;

    if (!o || json_is_null(o))
        return 0;
    ja = json_object_get(o, a);
    jb = json_object_get(o, b);
    if (!json_is_object(o) || json_object_size(o) != 2 || !json_is_integer(ja) || !json_is_integer(jb) ||
        json_integer_value(ja) < min || json_integer_value(jb) < min) {
        pe_valid_fail(v, "%s must be {\"%s\": integer, \"%s\": integer}%s", field, a, b,
                      min == 0 ? " of 0 or more" : "");
        return 0;
    }
    *va = json_integer_value(ja);
    *vb = json_integer_value(jb);
    return 1;
}

/* access_rtype: a list of known r_types, stored comma-separated; NULL when absent. */
static const char *ops_rtypes(pe_valid_t *v, apr_pool_t *p)
{
    const json_t *a = json_object_get(v->obj, "access_rtype"), *e;
    const char *out = "";
    size_t i;

    if (!a || json_is_null(a))
        return NULL;
    if (!json_is_array(a)) {
        pe_valid_fail(v, "access_rtype must be a list of r_types");
        return NULL;
    }
    json_array_foreach(a, i, e) {
        pe_rtype_t t;

        if (!json_is_string(e) || pe_enhance_rtype_parse(json_string_value(e), &t) != 0) {
            pe_valid_fail(v, "access_rtype: unknown r_type (bpe, bcot, hcot, react, tot, custom)");
            return NULL;
        }
        out = *out ? apr_pstrcat(p, out, ",", json_string_value(e), NULL) : json_string_value(e);
    }
    return out;
}

/*
 * The update of SPEC 10.3 (UpdateUserRequest): every field optional, null or absent unchanged,
 * unknown fields refused (422), each present field checked against the caller's write rights
 * (403 naming it) before anything is stored. `fields` is the route's allow-list (the support
 * routes /credits and /plan take fewer).
 */
static int ops_update(pe_ctx_t *cx, const char *const *fields, const char *done_msg)
{
    static const char *const types[] = {"Personal", "Business", NULL};
    request_rec *r = cx->r;
    pe_role_e role = (pe_role_e)cx->rq->principal->role;
    const char *email, *lower = NULL;
    pe_user_change_t ch;
    pe_store_t *st;
    pe_store_status_e rs = PE_STORE_OK;
    pe_user_t *u;
    pe_valid_t v;
    json_t *changed;
    int rc, i;

    if ((rc = ops_target(cx, &st, &u)) != OK)
        return rc;
    if ((rc = pe_account_body(r, fields, &v)) != OK)
        return rc;
    if (!json_is_object(v.obj))
        pe_valid_fail(&v, "the body must be a JSON object");
    memset(&ch, 0, sizeof(ch));
    ch.name = pe_valid_str(&v, "name", 0, 2, 100);
    email = pe_valid_str(&v, "email", 0, 3, 254);
    ch.about_me = pe_valid_str(&v, "about_me", 0, 0, 1000);
    ch.hobbies = pe_valid_str(&v, "hobbies", 0, 0, 500);
    ch.user_type = pe_valid_enum(&v, "user_type", types, NULL);
    ch.subscription_plan = pe_valid_str(&v, "subscription_plan", 0, 1, 50);
    ch.level = pe_valid_str(&v, "level", 0, 1, 20);
    ch.additional_notes = pe_valid_str(&v, "additional_notes", 0, 0, 2000);
    ch.access_rtype = ops_rtypes(&v, r->pool);
    ch.set_credits = ops_pair(&v, "credits", "main", "reset", &ch.credits_main, &ch.credits_reset, -1000000000LL);
    ch.set_limits = ops_pair(&v, "limits", "conversation_limit", "reset", &ch.conv_limit, &ch.conv_reset, 0);
    if (json_object_get(v.obj, "is_active") && !json_is_null(json_object_get(v.obj, "is_active"))) {
        ch.set_active = 1;
        ch.is_active = pe_valid_bool(&v, "is_active", u->is_active);
    }
    if (json_object_get(v.obj, "is_verified") && !json_is_null(json_object_get(v.obj, "is_verified"))) {
        ch.set_verified = 1;
        ch.is_verified = pe_valid_bool(&v, "is_verified", u->is_verified);
    }
    if (ch.level) {
        pe_level_t l;

        if (pe_enhance_level_parse(ch.level, &l) != 0)
            pe_valid_fail(&v, "level must be one of low, medium, high, ultra");
    }
    if (email && pe_email_normalize(r->pool, email, &lower))
        pe_valid_fail(&v, "email is not a valid address");
    if (!pe_valid_ok(&v))
        return pe_account_invalid(r, &v);

    /* rights: every field given must be the caller's to write */
    changed = pe_json_bind(r->pool, json_array());
    for (i = 0; fields[i]; i++) {
        const json_t *val = json_object_get(v.obj, fields[i]);

        if (!val || json_is_null(val))
            continue;
        if (!pe_perm_field_write(role, fields[i]))
            return ops_forbidden_field(r, fields[i]);
        json_array_append_new(changed, json_string(fields[i]));
    }
    if (!json_array_size(changed))
        return pe_http_error(r, HTTP_BAD_REQUEST, PE_E_BAD_REQUEST, "No valid updates provided");

    if (lower && strcmp(lower, u->email)) {
        /* a new address is unverified unless the same request says otherwise */
        rs = pe_store_user_set_email(st, u->id, lower, ch.set_verified ? ch.is_verified : 0, apr_time_now());
        if (rs == PE_STORE_CONFLICT)
            return pe_http_error(r, HTTP_CONFLICT, "EMAIL_EXISTS", "Email already exists");
        if (rs != PE_STORE_OK)
            return pe_account_store_failed(r, rs);
        if (!ch.set_verified) {
            ch.set_verified = 1;
            ch.is_verified = 0;
        }
    }
    rs = pe_store_user_update(st, u->id, &ch, apr_time_now());
    if (rs != PE_STORE_OK)
        return pe_account_store_failed(r, rs);
    pe_principal_changed(r->server, u->id); /* level, r_types, limits, state: at once in every child */
    /* a deactivated user's sessions end now (its API key is refused from the next request) */
    if (ch.set_active && !ch.is_active)
        pe_store_session_delete_all(st, PE_PRINCIPAL_USER, u->id, NULL);
    ops_event(cx, st, "user_updated", "user_updated_by_support", u,
              json_pack("{s:O}", "fields_changed", changed), "info");
    return pe_account_ok(r, done_msg, json_pack("{s:O}", "updated_fields", changed));
}

static const char *const update_fields[] = {"name", "email", "about_me", "hobbies", "user_type", "subscription_plan",
                                            "credits", "limits", "access_rtype", "level", "additional_notes",
                                            "is_active", "is_verified", NULL};

/* PUT .../users/{user_id} */
int pe_h_ops_user_put(pe_ctx_t *cx)
{
    return ops_update(cx, update_fields, "User updated successfully");
}

/* PUT /v1/support/users/{user_id}/credits {"credits"?, "limits"?} */
int pe_h_ops_user_credits(pe_ctx_t *cx)
{
    static const char *const fields[] = {"credits", "limits", NULL};

    return ops_update(cx, fields, "Credits updated successfully");
}

/* PUT /v1/support/users/{user_id}/plan {"subscription_plan"} */
int pe_h_ops_user_plan(pe_ctx_t *cx)
{
    static const char *const fields[] = {"subscription_plan", NULL};

    return ops_update(cx, fields, "Subscription plan updated successfully");
}

/* DELETE /v1/admin-panel/users/{user_id}?reason=...: archived, then removed with its sessions and logs. */
int pe_h_ops_user_delete(pe_ctx_t *cx)
{
    request_rec *r = cx->r;
    const char *reason = "Admin deletion";
    pe_store_t *st;
    pe_user_t *u;
    pe_store_status_e rs;
    int rc;

    if ((rc = ops_target(cx, &st, &u)) != OK)
        return rc;
    if (r->args) {
        apr_table_t *q = NULL;

        ap_args_to_table(r, &q);
        if (q && apr_table_get(q, "reason"))
            reason = apr_pstrndup(r->pool, apr_table_get(q, "reason"), 500);
    }
    rs = pe_store_user_delete(st, u, reason, cx->rq->principal->username, apr_time_now());
    if (rs != PE_STORE_OK)
        return pe_account_store_failed(r, rs);
    pe_principal_changed(r->server, u->id);
    ops_event(cx, st, "user_deleted", "user_deleted_by_support", u, json_pack("{s:s}", "reason", reason), "warning");
    return pe_account_ok(r, "User deleted successfully", NULL);
}

/* POST .../users/{user_id}/regenerate-api-key: the old key stops working at once. */
int pe_h_ops_user_rekey(pe_ctx_t *cx)
{
    const char *key, *prefix;
    pe_store_t *st;
    pe_user_t *u;
    int rc;

    if ((rc = ops_target(cx, &st, &u)) != OK)
        return rc;
    if ((rc = pe_account_rekey(cx->r, st, u->id, &key, &prefix)) != OK)
        return rc;
    ops_event(cx, st, "api_key_regenerated_by_admin", "api_key_regenerated_by_support", u,
              json_pack("{s:s,s:s,s:[s]}", "old_key_prefix", u->api_key_prefix, "new_key_prefix", prefix,
                        "fields_changed", "api_key"),
              "info");
    return pe_account_ok(cx->r, "API key regenerated successfully", json_pack("{s:s}", "api_key", key));
}

/*
 * POST /v1/support/users/{user_id}/reset-password {"new_password"}: the password policy, then
 * the user's sessions end and any lock is lifted. In the body, never the query string (SPEC
 * 16.2 item 27: a query string is written to access logs).
 */
int pe_h_ops_user_password(pe_ctx_t *cx)
{
    static const char *const fields[] = {"new_password", NULL};
    request_rec *r = cx->r;
    const char *pw, *hash, *err;
    pe_store_t *st;
    pe_user_t *u;
    pe_valid_t v;
    int rc;

    if ((rc = ops_target(cx, &st, &u)) != OK)
        return rc;
    if ((rc = pe_account_body(r, fields, &v)) != OK)
        return rc;
    pw = pe_valid_str(&v, "new_password", 1, 1, 1024);
    if (pw && (err = pe_password_check(r->pool, pe_global()->common_passwords, pw, strlen(pw), u->email, u->username)))
        pe_valid_fail(&v, "%s", err);
    if (!pe_valid_ok(&v))
        return pe_account_invalid(r, &v);
    if ((rc = pe_account_hash(r, pw, &hash)) != OK)
        return rc;
    if (pe_store_user_set_password(st, u->id, hash, apr_time_now()) != PE_STORE_OK ||
        pe_store_session_delete_all(st, PE_PRINCIPAL_USER, u->id, NULL) != PE_STORE_OK)
        return pe_account_store_down(r);
    ops_event(cx, st, "user_password_reset_by_admin", "user_password_reset_by_support", u,
              json_pack("{s:[s]}", "fields_changed", "password"), "warning");
    return pe_account_ok(r, "Password reset successfully", json_pack("{s:[s]}", "updated_fields", "password_hash"));
}
