/*
 * pe_store_mongo_staff.c: operators (administrators and support staff) on MongoDB: the
 * pe_staff collection, one document per account with its kind in a field that every filter
 * names.
 *
 * Uniqueness of username and e-mail within a kind is held by claim documents in pe_claims, as
 * for users (pe_mg_claim_take; holds on a sharded cluster): the claim's _id is derived from
 * ("<kind>_username", value), so operators' claims never meet users' claims. Claims go in
 * before the account; a claim left behind by a create that stopped half way (its account does
 * not exist) is taken over after a while.
 */
#include "pe_store_mongo_int.h"

#include <apr_strings.h>
#include <string.h>

static const char *s0(const char *s)
{
    return s ? s : "";
}

/* {_id: ObjectId(id), kind}; NULL when id is not 24 hex (no such document can exist). */
static bson_t *staff_filter(pe_principal_kind_e kind, const char *id)
{
    bson_t *b = bson_new();

    if (!pe_mg_append_oid(b, "_id", id)) {
        bson_destroy(b);
        return NULL;
    }
    BSON_APPEND_UTF8(b, "kind", pe_principal_kind_name(kind));
    return b;
}

static pe_staff_t *staff_from_doc(apr_pool_t *p, const bson_t *d)
{
    pe_staff_t *s = apr_pcalloc(p, sizeof(*s));

    s->id = pe_mg_id(p, d);
    s->kind = pe_principal_kind_parse(pe_mg_str(p, d, "kind"));
    s->username = pe_mg_str(p, d, "username");
    s->name = pe_mg_str(p, d, "name");
    s->email = pe_mg_str(p, d, "email");
    s->password_hash = pe_mg_str(p, d, "password_hash");
    s->is_super = (int)pe_mg_i64(d, "is_super");
    s->staff_level = s0(pe_mg_str(p, d, "staff_level"));
    s->created_by = s0(pe_mg_str(p, d, "created_by"));
    s->is_active = (int)pe_mg_i64(d, "is_active");
    s->failed_logins = (int)pe_mg_i64(d, "failed_logins");
    s->locked_until = pe_mg_i64(d, "locked_until");
    s->created_at = pe_mg_i64(d, "created_at");
    s->updated_at = pe_mg_i64(d, "updated_at");
    s->last_login = pe_mg_i64(d, "last_login");
    return s;
}

/* The claim kind of a unique field of an operator: "admin_username", "support_email"... */
static const char *claim_kind(apr_pool_t *p, pe_principal_kind_e kind, const char *field)
{
    return apr_pstrcat(p, pe_principal_kind_name(kind), "_", field, NULL);
}

/* Operations -------------------------------------------------------------------------------- */

pe_store_status_e pe_mg_staff_create(pe_store_t *st, const pe_staff_t *s)
{
    static const char *const fields[] = {"username", "email"};
    const char *values[] = {s0(s->username), s0(s->email)};
    bson_t *d = bson_new();
    pe_store_status_e rs = PE_STORE_OK;
    int i, held = 0;

    if (!pe_mg_append_oid(d, "_id", s->id)) {
        bson_destroy(d);
        return pe_mg_fail(st, "staff_create: the id is not 24 hex", NULL);
    }
    BCON_APPEND(d, "kind", BCON_UTF8(pe_principal_kind_name(s->kind)), "username", BCON_UTF8(s0(s->username)),
                "name", BCON_UTF8(s0(s->name)), "email", BCON_UTF8(s0(s->email)), "password_hash",
                BCON_UTF8(s0(s->password_hash)), "is_super", BCON_INT32(s->is_super ? 1 : 0), "staff_level",
                BCON_UTF8(s0(s->staff_level)), "created_by", BCON_UTF8(s0(s->created_by)), "is_active",
                BCON_INT32(s->is_active ? 1 : 0), "failed_logins", BCON_INT32(s->failed_logins), "locked_until",
                BCON_INT64(s->locked_until), "created_at", BCON_INT64(s->created_at), "updated_at",
                BCON_INT64(s->updated_at), "last_login", BCON_INT64(s->last_login));
    /* NB: claims first, in a fixed order, as for users: of concurrent creates sharing a value
     * exactly one inserts its claim; the others give back what they took. */
    for (i = 0; i < 2 && rs == PE_STORE_OK; i++)
        if ((rs = pe_mg_claim_take(st, PE_MC_STAFF, claim_kind(pe_store_pool(st), s->kind, fields[i]), fields[i],
                                   values[i], s->id, 0)) == PE_STORE_OK)
            held++;
    if (rs == PE_STORE_OK && (rs = pe_mg_insert(st, PE_MC_STAFF, d)) == PE_STORE_CONFLICT)
        pe_store_set_conflict(st, "id");
    if (rs != PE_STORE_OK)
        for (i = 0; i < held; i++)
            pe_mg_claim_release(st, claim_kind(pe_store_pool(st), s->kind, fields[i]), values[i], s->id);
    bson_destroy(d);
    return rs;
}

static pe_store_status_e staff_by(pe_store_t *st, bson_t *f, pe_staff_t **out)
{
    const bson_t *doc = NULL;
    pe_store_status_e rs;

    *out = NULL;
    if (!f)
        return PE_STORE_NOTFOUND;
    rs = pe_mg_find_one(st, PE_MC_STAFF, f, NULL, &doc);
    bson_destroy(f);
    if (rs == PE_STORE_OK)
        *out = staff_from_doc(pe_store_pool(st), doc);
    return rs;
}

pe_store_status_e pe_mg_staff_by_id(pe_store_t *st, pe_principal_kind_e kind, const char *id, pe_staff_t **out)
{
    return staff_by(st, staff_filter(kind, id), out);
}

pe_store_status_e pe_mg_staff_by_username(pe_store_t *st, pe_principal_kind_e kind, const char *username,
                                          pe_staff_t **out)
{
    return staff_by(st, BCON_NEW("kind", BCON_UTF8(pe_principal_kind_name(kind)), "username", BCON_UTF8(s0(username))),
                    out);
}

pe_store_status_e pe_mg_staff_list(pe_store_t *st, pe_principal_kind_e kind, apr_array_header_t **out)
{
    bson_t *f = BCON_NEW("kind", BCON_UTF8(pe_principal_kind_name(kind)));
    bson_t *opts = BCON_NEW("sort", "{", "created_at", BCON_INT32(1), "_id", BCON_INT32(1), "}");
    mongoc_cursor_t *cur = mongoc_collection_find_with_opts(pe_mg_coll(st, PE_MC_STAFF), f, opts, NULL);
    const bson_t *d;
    bson_error_t err;
    pe_store_status_e rs = PE_STORE_OK;

    while (mongoc_cursor_next(cur, &d))
        APR_ARRAY_PUSH(*out, pe_staff_t *) = staff_from_doc(pe_store_pool(st), d);
    if (mongoc_cursor_error(cur, &err)) {
        (*out)->nelts = 0;
        rs = pe_mg_fail(st, PE_MC_STAFF, &err);
    }
    mongoc_cursor_destroy(cur);
    bson_destroy(opts);
    bson_destroy(f);
    return rs;
}

/* One update of an operator; NOTFOUND when nothing matched. Takes f and up. */
static pe_store_status_e staff_update(pe_store_t *st, bson_t *f, bson_t *up)
{
    long matched = 0;
    pe_store_status_e rs = f ? pe_mg_update_one(st, PE_MC_STAFF, f, up, 0, &matched) : PE_STORE_OK;

    if (f)
        bson_destroy(f);
    bson_destroy(up);
    return (rs == PE_STORE_OK && matched == 0) ? PE_STORE_NOTFOUND : rs;
}

pe_store_status_e pe_mg_staff_set_password(pe_store_t *st, pe_principal_kind_e kind, const char *id,
                                           const char *hash, apr_time_t now)
{
    return staff_update(st, staff_filter(kind, id),
                        BCON_NEW("$set", "{", "password_hash", BCON_UTF8(s0(hash)), "failed_logins", BCON_INT32(0),
                                 "locked_until", BCON_INT64(0), "updated_at", BCON_INT64(now), "}"));
}

/* Count first, then check: the users' reservation (pe_mg_login_reserve) on the operator's document. */
pe_store_status_e pe_mg_staff_login_reserve(pe_store_t *st, pe_principal_kind_e kind, const char *id, apr_time_t now,
                                            int max, apr_time_t lock, int *attempt, apr_time_t *locked_until)
{
    bson_t *who = staff_filter(kind, id);
    pe_store_status_e rs;

    if (!who)
        return PE_STORE_NOTFOUND;
    rs = pe_mg_login_reserve(st, PE_MC_STAFF, who, now, max, lock, attempt, locked_until);
    bson_destroy(who);
    return rs;
}

pe_store_status_e pe_mg_staff_login_ok(pe_store_t *st, pe_principal_kind_e kind, const char *id, apr_time_t now)
{
    return staff_update(st, staff_filter(kind, id),
                        BCON_NEW("$set", "{", "failed_logins", BCON_INT32(0), "locked_until", BCON_INT64(0),
                                 "last_login", BCON_INT64(now), "}"));
}

/*
 * Deactivate, keeping one super-administrator active. No single MongoDB write sees the other
 * super-administrators while it changes one, so the deactivation is written first, marked as in
 * flight (a guarded {is_active: 1} -> {is_active: 0, deactivating: token}: of concurrent ones
 * exactly one writes), then the active ones are counted: none left, it is undone (EMPTY), else
 * the mark is taken off. Of super-administrators deactivated at once, the one whose write came
 * last counts after every other write, so it sees them and undoes its own when none is left: one
 * stays active (under contention more may be refused; repeated, one goes through). An account
 * inactive already is OK, one in flight is EMPTY (it may come back; a removal waits for the mark
 * to go, so it never removes one that is about to be undone). Reactivating clears a mark that a
 * stopped process left.
 */
static pe_store_status_e staff_deactivate(pe_store_t *st, pe_principal_kind_e kind, const char *id, apr_time_t now)
{
    bson_t *f = staff_filter(kind, id), *up;
    const bson_t *old = NULL;
    const char *token = pe_store_new_id(pe_store_pool(st));
    pe_staff_t *s;
    pe_store_status_e rs;
    long n = 0;

    if (!f)
        return PE_STORE_NOTFOUND;
    if (!token) {
        bson_destroy(f);
        return pe_mg_fail(st, "staff_set_active: no random id", NULL);
    }
    BCON_APPEND(f, "is_active", BCON_INT32(1));
    up = BCON_NEW("$set", "{", "is_active", BCON_INT32(0), "updated_at", BCON_INT64(now), "deactivating",
                  BCON_UTF8(token), "}");
    rs = pe_mg_fam(st, PE_MC_STAFF, f, up, NULL, 0, &old);
    bson_destroy(f);
    bson_destroy(up);
    if (rs == PE_STORE_NOTFOUND) {
        if ((rs = staff_by(st, staff_filter(kind, id), &s)) != PE_STORE_OK)
            return rs;
        f = staff_filter(kind, id);
        BCON_APPEND(f, "deactivating", "{", "$exists", BCON_BOOL(true), "}");
        rs = pe_mg_count(st, PE_MC_STAFF, f, &n);
        bson_destroy(f);
        return rs != PE_STORE_OK ? rs : n ? PE_STORE_EMPTY : PE_STORE_OK;
    }
    if (rs != PE_STORE_OK)
        return rs;
    if (pe_mg_i64(old, "is_super")) {
        f = BCON_NEW("kind", BCON_UTF8(pe_principal_kind_name(PE_PRINCIPAL_ADMIN)), "is_super", BCON_INT32(1),
                     "is_active", BCON_INT32(1));
        rs = pe_mg_count(st, PE_MC_STAFF, f, &n);
        bson_destroy(f);
    }
    else
        n = 1;
    f = staff_filter(kind, id);
    BCON_APPEND(f, "deactivating", BCON_UTF8(token));
    if (rs == PE_STORE_OK && n > 0)
        up = BCON_NEW("$unset", "{", "deactivating", BCON_UTF8(""), "}");
    else
        up = BCON_NEW("$set", "{", "is_active", BCON_INT32(1), "}", "$unset", "{", "deactivating", BCON_UTF8(""), "}");
    if (staff_update(st, f, up) == PE_STORE_EIO && rs == PE_STORE_OK)
        return PE_STORE_EIO;
    return rs != PE_STORE_OK ? rs : n > 0 ? PE_STORE_OK : PE_STORE_EMPTY;
}

pe_store_status_e pe_mg_staff_set_active(pe_store_t *st, pe_principal_kind_e kind, const char *id, int active,
                                         apr_time_t now)
{
    pe_store_status_e rs;

    if (active)
        return staff_update(st, staff_filter(kind, id),
                            BCON_NEW("$set", "{", "is_active", BCON_INT32(1), "updated_at", BCON_INT64(now), "}",
                                     "$unset", "{", "deactivating", BCON_UTF8(""), "}"));
    if ((rs = staff_deactivate(st, kind, id, now)) != PE_STORE_OK)
        return rs;
    return pe_mg_session_delete_all(st, kind, id, NULL);
}

/* Deactivated first (the guard), then removed; of concurrent removals one finds the document. */
pe_store_status_e pe_mg_staff_delete(pe_store_t *st, pe_principal_kind_e kind, const char *id)
{
    apr_pool_t *p = pe_store_pool(st);
    const bson_t *doc = NULL;
    pe_store_status_e rs = staff_deactivate(st, kind, id, apr_time_now());
    bson_t *f;

    if (rs != PE_STORE_OK)
        return rs;
    f = staff_filter(kind, id);
    BCON_APPEND(f, "is_active", BCON_INT32(0), "deactivating", "{", "$exists", BCON_BOOL(false), "}");
    rs = pe_mg_fam(st, PE_MC_STAFF, f, NULL, NULL, PE_MG_REMOVE, &doc);
    bson_destroy(f);
    if (rs != PE_STORE_OK)
        return rs;
    pe_mg_claim_release(st, claim_kind(p, kind, "username"), s0(pe_mg_str(p, doc, "username")), id);
    pe_mg_claim_release(st, claim_kind(p, kind, "email"), s0(pe_mg_str(p, doc, "email")), id);
    return pe_mg_session_delete_all(st, kind, id, NULL);
}

/* An operator's change of a user: one update_one with the fields given (in this file: it is
 * the operators' write). */
pe_store_status_e pe_mg_user_update(pe_store_t *st, const char *id, const pe_user_change_t *ch, apr_time_t now)
{
    static const char *const names[] = {"name", "about_me", "hobbies", "user_type", "subscription_plan",
                                        "access_rtype", "level", "additional_notes"};
    const char *values[] = {ch->name, ch->about_me, ch->hobbies, ch->user_type, ch->subscription_plan,
                            ch->access_rtype, ch->level, ch->additional_notes};
    bson_t *f = bson_new(), *up = bson_new(), set;
    long matched = 0;
    pe_store_status_e rs;
    int i;

    if (!pe_mg_append_oid(f, "_id", id)) {
        bson_destroy(f);
        bson_destroy(up);
        return PE_STORE_NOTFOUND;
    }
    BSON_APPEND_DOCUMENT_BEGIN(up, "$set", &set);
    for (i = 0; i < 8; i++)
        if (values[i])
            BSON_APPEND_UTF8(&set, names[i], values[i]);
    if (ch->set_credits) {
        BSON_APPEND_INT64(&set, "credits_main", ch->credits_main);
        BSON_APPEND_INT64(&set, "credits_reset", ch->credits_reset);
    }
    if (ch->set_limits) {
        BSON_APPEND_INT64(&set, "conv_limit", ch->conv_limit);
        BSON_APPEND_INT64(&set, "conv_reset", ch->conv_reset);
    }
    if (ch->set_active)
        BSON_APPEND_INT32(&set, "is_active", ch->is_active ? 1 : 0);
    if (ch->set_verified)
        BSON_APPEND_INT32(&set, "is_verified", ch->is_verified ? 1 : 0);
    BSON_APPEND_INT64(&set, "updated_at", now);
    bson_append_document_end(up, &set);
    rs = pe_mg_update_one(st, PE_MC_USERS, f, up, 0, &matched);
    bson_destroy(f);
    bson_destroy(up);
    return (rs == PE_STORE_OK && matched == 0) ? PE_STORE_NOTFOUND : rs;
}
