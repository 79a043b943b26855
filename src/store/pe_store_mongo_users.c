/*
 * pe_store_mongo_users.c: users, their uniqueness claims, and credits on MongoDB.
 *
 * Uniqueness of username, e-mail and API key digest (docs/mongodb.md): a unique secondary index cannot span the
 * shards of a sharded collection, so each taken value is a claim document in pe_claims whose
 * _id is derived from it (pe_mg_derived_oid("email", value)); _id is unique on every
 * deployment. A registration inserts its claims before the user, and the duplicate-key error of
 * a claim is the refusal. A claim left behind by a registration or a deletion that stopped half
 * way (its user does not exist) is taken over after PE_MG_CLAIM_STALE.
 */
#include "pe_store_mongo_int.h"

#include <apr_strings.h>
#include <string.h>

/* A claim without its user is given up after this long (a registration in flight takes
 * milliseconds between its claims and its user). */
#define PE_MG_CLAIM_STALE apr_time_from_sec(60)

static const char *s0(const char *s)
{
    return s ? s : "";
}

/* {_id: ObjectId(id)}; NULL when id is not 24 hex (no such document can exist). */
static bson_t *by_id(const char *id)
{
    bson_t *b = bson_new();

    if (!pe_mg_append_oid(b, "_id", id)) {
        bson_destroy(b);
        return NULL;
    }
    return b;
}

/* ----------------------------------------------------------------------------------------- */
/* Users */

pe_user_t *pe_mg_user_from_doc(apr_pool_t *p, const bson_t *d)
{
    pe_user_t *u = apr_pcalloc(p, sizeof(*u));

    u->id = pe_mg_id(p, d);
    u->username = pe_mg_str(p, d, "username");
    u->name = pe_mg_str(p, d, "name");
    u->email = pe_mg_str(p, d, "email");
    u->password_hash = pe_mg_str(p, d, "password_hash");
    u->about_me = s0(pe_mg_str(p, d, "about_me"));
    u->hobbies = s0(pe_mg_str(p, d, "hobbies"));
    u->user_type = pe_mg_str(p, d, "user_type");
    u->subscription_plan = pe_mg_str(p, d, "subscription_plan");
    u->credits_main = pe_mg_i64(d, "credits_main");
    u->credits_reset = pe_mg_i64(d, "credits_reset");
    u->conv_limit = pe_mg_i64(d, "conv_limit");
    u->conv_reset = pe_mg_i64(d, "conv_reset");
    u->reset_day = pe_mg_i64(d, "reset_day");
    u->access_rtype = s0(pe_mg_str(p, d, "access_rtype"));
    u->level = pe_mg_str(p, d, "level");
    u->additional_notes = s0(pe_mg_str(p, d, "additional_notes"));
    u->api_key_digest = pe_mg_str(p, d, "api_key_digest");
    u->api_key_prefix = pe_mg_str(p, d, "api_key_prefix");
    u->api_key_enc = pe_mg_str(p, d, "api_key_enc");
    u->is_active = (int)pe_mg_i64(d, "is_active");
    u->is_verified = (int)pe_mg_i64(d, "is_verified");
    u->failed_logins = (int)pe_mg_i64(d, "failed_logins");
    u->locked_until = pe_mg_i64(d, "locked_until");
    u->created_at = pe_mg_i64(d, "created_at");
    u->updated_at = pe_mg_i64(d, "updated_at");
    u->last_login = pe_mg_i64(d, "last_login");
    u->last_activity = pe_mg_i64(d, "last_activity");
    return u;
}

static bson_t *user_doc(const pe_user_t *u)
{
    bson_t *d = bson_new();

    if (!pe_mg_append_oid(d, "_id", u->id)) {
        bson_destroy(d);
        return NULL;
    }
    BCON_APPEND(d, "username", BCON_UTF8(s0(u->username)), "name", BCON_UTF8(s0(u->name)), "email",
                BCON_UTF8(s0(u->email)), "password_hash", BCON_UTF8(s0(u->password_hash)), "about_me",
                BCON_UTF8(s0(u->about_me)), "hobbies", BCON_UTF8(s0(u->hobbies)), "user_type",
                BCON_UTF8(s0(u->user_type)), "subscription_plan", BCON_UTF8(s0(u->subscription_plan)),
                "credits_main", BCON_INT64(u->credits_main), "credits_reset", BCON_INT64(u->credits_reset),
                "conv_limit", BCON_INT64(u->conv_limit), "conv_reset", BCON_INT64(u->conv_reset), "reset_day",
                BCON_INT64(u->reset_day), "access_rtype", BCON_UTF8(s0(u->access_rtype)), "level",
                BCON_UTF8(s0(u->level)), "additional_notes", BCON_UTF8(s0(u->additional_notes)),
                "api_key_digest", BCON_UTF8(s0(u->api_key_digest)), "api_key_prefix",
                BCON_UTF8(s0(u->api_key_prefix)), "api_key_enc", BCON_UTF8(s0(u->api_key_enc)), "is_active",
                BCON_INT32(u->is_active ? 1 : 0), "is_verified", BCON_INT32(u->is_verified ? 1 : 0),
                "failed_logins", BCON_INT32(u->failed_logins), "locked_until", BCON_INT64(u->locked_until),
                "created_at", BCON_INT64(u->created_at), "updated_at", BCON_INT64(u->updated_at), "last_login",
                BCON_INT64(u->last_login), "last_activity", BCON_INT64(u->last_activity));
    return d;
}

/* Claims ------------------------------------------------------------------------------------ */

/* {_id: derived(field, value)} */
static bson_t *claim_filter(const char *field, const char *value)
{
    bson_oid_t oid;
    bson_t *f = bson_new();

    pe_mg_derived_oid(&oid, field, value);
    BSON_APPEND_OID(f, "_id", &oid);
    return f;
}

/* The owner document's field holding a claimed value (name: the claim's field name). */
static const char *claim_doc_field(const char *field)
{
    return strcmp(field, "api_key") ? field : "api_key_digest";
}

/*
 * Take over a claim older than PE_MG_CLAIM_STALE whose owner (a document of `owners`) does not
 * hold the value in its field `name` (the owner does not exist, or a change of the value stopped
 * before it gave the old claim back): the delete
 * is guarded by the claim's user_id and time, so it removes only what was looked at.
 * @return 1 when the claim was removed (the caller inserts again)
 */
static int claim_reclaim_stale(pe_store_t *st, const char *owners, const char *field, const char *name,
                               const char *value)
{
    apr_pool_t *p = pe_store_pool(st);
    bson_t *f = claim_filter(field, value), *uf;
    const bson_t *claim = NULL, *user = NULL;
    const char *owner;
    apr_int64_t at;
    long n = 0;
    int done = 0;

    if (pe_mg_find_one(st, PE_MC_CLAIMS, f, NULL, &claim) != PE_STORE_OK)
        goto out;
    owner = pe_mg_str(p, claim, "user_id");
    at = pe_mg_i64(claim, "created_at");
    if (!owner || apr_time_now() - at < PE_MG_CLAIM_STALE)
        goto out;
    if ((uf = by_id(owner))) {
        pe_store_status_e rs;

        BSON_APPEND_UTF8(uf, claim_doc_field(name), value);
        rs = pe_mg_find_one(st, owners, uf, NULL, &user);

        bson_destroy(uf);
        if (rs != PE_STORE_NOTFOUND)
            goto out;
    }
    BCON_APPEND(f, "user_id", BCON_UTF8(owner), "created_at", BCON_INT64(at));
    done = pe_mg_delete(st, PE_MC_CLAIMS, f, 0, &n) == PE_STORE_OK && n == 1;
out:
    bson_destroy(f);
    return done;
}

pe_store_status_e pe_mg_claim_take(pe_store_t *st, const char *owners, const char *field, const char *name,
                                   const char *value, const char *user_id, int own_ok)
{
    pe_store_status_e rs = PE_STORE_CONFLICT;
    int attempt;

    for (attempt = 0; attempt < 2 && rs == PE_STORE_CONFLICT; attempt++) {
        bson_t *d = claim_filter(field, value);

        BCON_APPEND(d, "field", BCON_UTF8(field), "value", BCON_UTF8(value), "user_id", BCON_UTF8(user_id),
                    "created_at", BCON_INT64(apr_time_now()));
        rs = pe_mg_insert(st, PE_MC_CLAIMS, d);
        bson_destroy(d);
        if (rs == PE_STORE_CONFLICT && own_ok) {
            bson_t *mine = claim_filter(field, value);
            const bson_t *doc = NULL;

            BCON_APPEND(mine, "user_id", BCON_UTF8(user_id));
            if (pe_mg_find_one(st, PE_MC_CLAIMS, mine, NULL, &doc) == PE_STORE_OK)
                rs = PE_STORE_OK;
            bson_destroy(mine);
        }
        if (rs == PE_STORE_CONFLICT && !claim_reclaim_stale(st, owners, field, name, value))
            break;
    }
    return rs == PE_STORE_CONFLICT ? pe_store_set_conflict(st, name) : rs;
}

/* A user's claim of (field, value): the user is the owner, the field names a conflict. */
static pe_store_status_e claim_take(pe_store_t *st, const char *field, const char *value, const char *user_id,
                                    int own_ok)
{
    return pe_mg_claim_take(st, PE_MC_USERS, field, field, value, user_id, own_ok);
}

void pe_mg_claim_release(pe_store_t *st, const char *field, const char *value, const char *user_id)
{
    bson_t *f = claim_filter(field, value);

    BCON_APPEND(f, "user_id", BCON_UTF8(user_id));
    pe_mg_delete(st, PE_MC_CLAIMS, f, 0, NULL);
    bson_destroy(f);
}

/* The unique values of a user, each held by a claim, in the order they are claimed. */
static const char *const claim_fields[] = {"username", "email", "api_key"};
#define PE_MG_NCLAIMS 3

static const char *claim_value(const pe_user_t *u, int i)
{
    return s0(i == 0 ? u->username : i == 1 ? u->email : u->api_key_digest);
}

/* Insert the user document; a duplicate key (only an _id can be taken here once the claims are
 * held; a unique index backs the claims up on an unsharded deployment) names its field. */
static pe_store_status_e user_insert(pe_store_t *st, const bson_t *d)
{
    bson_error_t err;

    if (mongoc_collection_insert_one(pe_mg_coll(st, PE_MC_USERS), d, NULL, NULL, &err))
        return PE_STORE_OK;
    if (!pe_mg_is_dup(&err))
        return pe_mg_fail(st, PE_MC_USERS, &err);
    if (strstr(err.message, "api_key"))
        return pe_store_set_conflict(st, "api_key");
    if (strstr(err.message, "email"))
        return pe_store_set_conflict(st, "email");
    if (strstr(err.message, "username"))
        return pe_store_set_conflict(st, "username");
    return pe_store_set_conflict(st, "id");
}

pe_store_status_e pe_mg_user_create(pe_store_t *st, const pe_user_t *u)
{
    bson_t *d = user_doc(u);
    pe_store_status_e rs = PE_STORE_OK;
    int i, held = 0;

    if (!d)
        return pe_mg_fail(st, "user_create: the id is not 24 hex", NULL);
    /* NB: claims first, in a fixed order: of concurrent registrations sharing a value exactly
     * one inserts its claim; the others are refused naming the field, and give back the claims
     * they took before it. */
    for (i = 0; i < PE_MG_NCLAIMS && rs == PE_STORE_OK; i++)
        if ((rs = claim_take(st, claim_fields[i], claim_value(u, i), u->id, 0)) == PE_STORE_OK)
            held++;
    if (rs == PE_STORE_OK)
        rs = user_insert(st, d);
    if (rs != PE_STORE_OK && !(rs == PE_STORE_CONFLICT && !strcmp(pe_store_conflict(st), "id")))
        for (i = 0; i < held; i++)
            pe_mg_claim_release(st, claim_fields[i], claim_value(u, i), u->id);
    bson_destroy(d);
    return rs;
}

/* The user document matching f (taken; NULL: no such user), with fields (NULL: all). */
static pe_store_status_e find_user(pe_store_t *st, bson_t *f, const bson_t *fields, const bson_t **doc)
{
    pe_store_status_e rs;

    *doc = NULL;
    if (!f)
        return PE_STORE_NOTFOUND;
    rs = pe_mg_find_one(st, PE_MC_USERS, f, fields, doc);
    bson_destroy(f);
    return rs;
}

static pe_store_status_e user_by(pe_store_t *st, bson_t *f, pe_user_t **out)
{
    const bson_t *doc = NULL;
    pe_store_status_e rs = find_user(st, f, NULL, &doc);

    *out = NULL;
    if (rs == PE_STORE_OK)
        *out = pe_mg_user_from_doc(pe_store_pool(st), doc);
    return rs;
}

pe_store_status_e pe_mg_user_by_id(pe_store_t *st, const char *id, pe_user_t **out)
{
    return user_by(st, by_id(id), out);
}

pe_store_status_e pe_mg_user_by_email(pe_store_t *st, const char *email, pe_user_t **out)
{
    return user_by(st, BCON_NEW("email", BCON_UTF8(s0(email))), out);
}

pe_store_status_e pe_mg_user_by_key_digest(pe_store_t *st, const char *digest, pe_user_t **out)
{
    return user_by(st, BCON_NEW("api_key_digest", BCON_UTF8(s0(digest))), out);
}

/* One update by id; NOTFOUND when nothing matched. Takes f and up. */
static pe_store_status_e update_by_id(pe_store_t *st, bson_t *f, bson_t *up)
{
    long matched = 0;
    pe_store_status_e rs = f ? pe_mg_update_one(st, PE_MC_USERS, f, up, 0, &matched) : PE_STORE_OK;

    if (f)
        bson_destroy(f);
    bson_destroy(up);
    return (rs == PE_STORE_OK && matched == 0) ? PE_STORE_NOTFOUND : rs;
}

pe_store_status_e pe_mg_user_update_profile(pe_store_t *st, const char *id, const char *name, const char *about_me,
                                            const char *hobbies, apr_time_t now)
{
    bson_t *up = bson_new(), set;

    BSON_APPEND_DOCUMENT_BEGIN(up, "$set", &set);
    if (name)
        BSON_APPEND_UTF8(&set, "name", name);
    if (about_me)
        BSON_APPEND_UTF8(&set, "about_me", about_me);
    if (hobbies)
        BSON_APPEND_UTF8(&set, "hobbies", hobbies);
    BSON_APPEND_INT64(&set, "updated_at", now);
    bson_append_document_end(up, &set);
    return update_by_id(st, by_id(id), up);
}

/*
 * Change a unique value (e-mail, API key digest): the new value is claimed first (refused if
 * another user holds it), then the user changes, then the old claim is given up: at every
 * moment each value belongs to at most one user. Takes up.
 */
static pe_store_status_e change_unique(pe_store_t *st, const char *id, const char *field, const char *doc_field,
                                       const char *value, bson_t *up)
{
    bson_t *f = by_id(id);
    const bson_t *old = NULL;
    const char *was;
    pe_store_status_e rs;

    if (!f) {
        bson_destroy(up);
        return PE_STORE_NOTFOUND;
    }
    rs = claim_take(st, field, value, id, 1);
    if (rs == PE_STORE_OK) {
        rs = pe_mg_fam(st, PE_MC_USERS, f, up, NULL, 0, &old);
        was = pe_mg_str(pe_store_pool(st), old, doc_field);
        if (rs != PE_STORE_OK)
            pe_mg_claim_release(st, field, value, id);
        else if (was && strcmp(was, value))
            pe_mg_claim_release(st, field, was, id);
        if (rs == PE_STORE_CONFLICT)
            rs = pe_store_set_conflict(st, field);
    }
    bson_destroy(f);
    bson_destroy(up);
    return rs;
}

pe_store_status_e pe_mg_user_set_api_key(pe_store_t *st, const char *id, const char *digest, const char *prefix,
                                         const char *enc, apr_time_t now)
{
    return change_unique(st, id, "api_key", "api_key_digest", s0(digest),
                         BCON_NEW("$set", "{", "api_key_digest", BCON_UTF8(s0(digest)), "api_key_prefix",
                                  BCON_UTF8(s0(prefix)), "api_key_enc", BCON_UTF8(s0(enc)), "updated_at",
                                  BCON_INT64(now), "}"));
}

pe_store_status_e pe_mg_user_set_email(pe_store_t *st, const char *id, const char *email, int is_verified,
                                       apr_time_t now)
{
    return change_unique(st, id, "email", "email", s0(email),
                         BCON_NEW("$set", "{", "email", BCON_UTF8(s0(email)), "is_verified",
                                  BCON_INT32(is_verified ? 1 : 0), "updated_at", BCON_INT64(now), "}"));
}

pe_store_status_e pe_mg_user_set_password(pe_store_t *st, const char *id, const char *hash, apr_time_t now)
{
    return update_by_id(st, by_id(id),
                        BCON_NEW("$set", "{", "password_hash", BCON_UTF8(s0(hash)), "failed_logins", BCON_INT32(0),
                                 "locked_until", BCON_INT64(0), "updated_at", BCON_INT64(now), "}"));
}

/* A copy of the account filter `who` (to add conditions to). */
static bson_t *who_copy(const bson_t *who)
{
    return bson_copy(who);
}

/*
 * Reserve a password check in guarded writes, each atomic on its own (no value is read and
 * written back); the first whose filter matches takes the attempt:
 *  1. unlocked, below max - 1: $inc failed_logins;
 *  2. unlocked, reaching max: $inc failed_logins and set the lock;
 *  3. an expired lock: the count starts again at 1 (and locks when max is 1).
 * None matching: locked (or no such user), read what there is.
 */
pe_store_status_e pe_mg_login_reserve(pe_store_t *st, const char *coll, const bson_t *who, apr_time_t now, int max,
                                      apr_time_t lock, int *attempt, apr_time_t *locked_until)
{
    const bson_t *doc = NULL;
    pe_store_status_e rs = PE_STORE_NOTFOUND;
    int step;

    for (step = 0; step < 3 && rs == PE_STORE_NOTFOUND; step++) {
        bson_t *f = who_copy(who), *up;

        if (step == 0) {
            BCON_APPEND(f, "locked_until", BCON_INT64(0), "failed_logins", "{", "$lt", BCON_INT32(max - 1), "}");
            up = BCON_NEW("$inc", "{", "failed_logins", BCON_INT32(1), "}");
        }
        else if (step == 1) {
            BCON_APPEND(f, "locked_until", BCON_INT64(0), "failed_logins", "{", "$gte", BCON_INT32(max - 1), "}");
            up = BCON_NEW("$inc", "{", "failed_logins", BCON_INT32(1), "}", "$set", "{", "locked_until",
                          BCON_INT64(now + lock), "}");
        }
        else {
            BCON_APPEND(f, "locked_until", "{", "$gt", BCON_INT64(0), "$lte", BCON_INT64(now), "}");
            up = BCON_NEW("$set", "{", "failed_logins", BCON_INT32(1), "locked_until",
                          BCON_INT64(max <= 1 ? now + lock : 0), "}");
        }
        rs = pe_mg_fam(st, coll, f, up, NULL, PE_MG_RETURN_NEW, &doc);
        bson_destroy(f);
        bson_destroy(up);
    }
    if (rs == PE_STORE_OK) {
        *attempt = (int)pe_mg_i64(doc, "failed_logins");
        *locked_until = pe_mg_i64(doc, "locked_until");
        return PE_STORE_OK;
    }
    if (rs != PE_STORE_NOTFOUND)
        return rs;
    if ((rs = pe_mg_find_one(st, coll, who, NULL, &doc)) != PE_STORE_OK)
        return rs;
    *locked_until = pe_mg_i64(doc, "locked_until");
    return PE_STORE_EMPTY;
}

pe_store_status_e pe_mg_user_login_reserve(pe_store_t *st, const char *id, apr_time_t now, int max, apr_time_t lock,
                                           int *attempt, apr_time_t *locked_until)
{
    bson_t *who = by_id(id);
    pe_store_status_e rs;

    if (!who)
        return PE_STORE_NOTFOUND;
    rs = pe_mg_login_reserve(st, PE_MC_USERS, who, now, max, lock, attempt, locked_until);
    bson_destroy(who);
    return rs;
}

pe_store_status_e pe_mg_user_login_ok(pe_store_t *st, const char *id, apr_time_t now)
{
    return update_by_id(st, by_id(id),
                        BCON_NEW("$set", "{", "failed_logins", BCON_INT32(0), "locked_until", BCON_INT64(0),
                                 "last_login", BCON_INT64(now), "last_activity", BCON_INT64(now), "}"));
}

/* The archive of a deleted user: _id derived from the user's id, so a user is archived once. */
static bson_t *archive_doc(const pe_user_t *u, const char *reason, const char *deleted_by, apr_time_t now)
{
    bson_oid_t aid;

    pe_mg_derived_oid(&aid, "deleted", u->id);
    return BCON_NEW("_id", BCON_OID(&aid), "original_user_id", BCON_UTF8(u->id), "username",
                    BCON_UTF8(s0(u->username)), "name", BCON_UTF8(s0(u->name)), "email", BCON_UTF8(s0(u->email)),
                    "user_type", BCON_UTF8(s0(u->user_type)), "time_created", BCON_INT64(u->created_at),
                    "subscription_plan", BCON_UTF8(s0(u->subscription_plan)), "deletion_reason",
                    BCON_UTF8(s0(reason)), "deleted_at", BCON_INT64(now), "deleted_by", BCON_UTF8(s0(deleted_by)),
                    "archived_at", BCON_INT64(apr_time_now()));
}

/*
 * After the archive insert found an archive: CONFLICT, unless that delete stopped half way long
 * ago (its user still exists PE_MG_CLAIM_STALE after it was archived): then this one finishes it.
 * @return PE_STORE_OK (finish the delete), PE_STORE_NOTFOUND (deleted already), PE_STORE_EIO
 */
static pe_store_status_e archived_before(pe_store_t *st, const pe_user_t *u)
{
    bson_oid_t aid;
    bson_t *af;
    const bson_t *arch = NULL, *user = NULL;
    pe_store_status_e rs;

    pe_mg_derived_oid(&aid, "deleted", u->id);
    af = BCON_NEW("_id", BCON_OID(&aid));
    rs = pe_mg_find_one(st, PE_MC_DELETED, af, NULL, &arch);
    bson_destroy(af);
    /* NB: the clock of the store's processes (archived_at), not the caller's deleted_at */
    if (rs == PE_STORE_OK && apr_time_now() - pe_mg_i64(arch, "archived_at") >= PE_MG_CLAIM_STALE)
        rs = find_user(st, by_id(u->id), NULL, &user);
    else if (rs == PE_STORE_OK)
        rs = PE_STORE_NOTFOUND;
    if (rs == PE_STORE_EIO)
        return rs;
    /* NB: deleted already: no such user (as the contract says; the archive stays as it was) */
    return rs == PE_STORE_OK ? PE_STORE_OK : PE_STORE_NOTFOUND;
}

/*
 * Delete: the archive is inserted first, and its _id (derived from the user's) is the arbiter:
 * of concurrent deletions one inserts it, the others get NOTFOUND and change nothing; a
 * user that does not exist has its archive taken back (NOTFOUND). Then the sessions, the user,
 * its logs, and last its claims (a claim without its user is taken over after
 * PE_MG_CLAIM_STALE; a user without its claims could lose its uniqueness).
 * NB: not one transaction (multi-document transactions need a replica set): a delete that stops
 * half way leaves a user with fewer sessions and logs, which a delete finishes once the archive is
 * PE_MG_CLAIM_STALE old, or stale claims (docs/mongodb.md).
 */
pe_store_status_e pe_mg_user_delete(pe_store_t *st, const pe_user_t *u, const char *reason, const char *deleted_by,
                                    apr_time_t now)
{
    bson_t *f = by_id(u->id), *arch;
    long n = 0;
    pe_store_status_e rs;

    if (!f)
        return PE_STORE_NOTFOUND;
    arch = archive_doc(u, reason, deleted_by, now);
    rs = pe_mg_insert(st, PE_MC_DELETED, arch);
    if (rs == PE_STORE_CONFLICT)
        rs = archived_before(st, u);
    else if (rs == PE_STORE_OK) {
        const bson_t *user = NULL;

        rs = pe_mg_find_one(st, PE_MC_USERS, f, NULL, &user);
        if (rs == PE_STORE_NOTFOUND) /* no such user: nothing is archived */
            pe_mg_delete(st, PE_MC_DELETED, arch, 0, NULL);
    }
    bson_destroy(arch);
    if (rs == PE_STORE_OK) {
        bson_t *sf = BCON_NEW("principal_kind", BCON_UTF8(pe_principal_kind_name(PE_PRINCIPAL_USER)),
                              "principal_id", BCON_UTF8(u->id));

        rs = pe_mg_delete(st, PE_MC_SESSIONS, sf, 1, NULL);
        bson_destroy(sf);
    }
    if (rs == PE_STORE_OK) {
        bson_t *lf = BCON_NEW("user_id", BCON_UTF8(u->id));

        /* NB: the user before its logs: a conversation-log batch checks after its insert that its
         * users exist (msglog_sweep_deleted), so no order of the two leaves a row behind */
        rs = pe_mg_delete(st, PE_MC_USERS, f, 0, &n);
        if (rs == PE_STORE_OK)
            rs = pe_mg_delete(st, PE_MC_MSGLOGS, lf, 1, NULL);
        if (rs == PE_STORE_OK)
            rs = pe_mg_delete(st, PE_MC_CLAIMS, lf, 1, NULL);
        bson_destroy(lf);
    }
    bson_destroy(f);
    return rs;
}

/* ----------------------------------------------------------------------------------------- */
/* Credits */

/*
 * Take n credits (the lazy daily reset folded in) with guarded writes only:
 *  A. no reset pending (reset_day >= today) and enough left: $inc conv_limit -n, guarded by
 *     conv_limit >= n. Concurrent takes each match only while credits remain: none oversold.
 *  B. a reset pending (reset_day < today): the reset and the take in one write,
 *     conv_limit = R - n, reset_day = today, guarded by reset_day < today and conv_reset == R
 *     (R read just before: the write depends on nothing else, and the guard fails if R or the
 *     day changed). Of concurrent takes exactly one performs the reset; the others' guard fails
 *     and they go back to A. With R < n (or R <= 0: no reset value) the reset alone is written.
 * NB: an update pipeline (MongoDB 4.2+) would do A and B in one write, but the stand-in server
 * the tests use has none; these guarded writes are exact on every server.
 */
static pe_store_status_e credits_take(pe_store_t *st, const char *user_id, apr_int64_t n, apr_int64_t today,
                                      apr_time_t now)
{
    int round;

    for (round = 0; round < 4; round++) {
        bson_t *f = by_id(user_id), *up;
        const bson_t *doc = NULL;
        pe_store_status_e rs;
        apr_int64_t r;
        long matched = 0;

        if (!f)
            return PE_STORE_EMPTY;
        BCON_APPEND(f, "is_active", BCON_INT32(1), "reset_day", "{", "$gte", BCON_INT64(today), "}", "conv_limit",
                    "{", "$gte", BCON_INT64(n), "}");
        up = BCON_NEW("$inc", "{", "conv_limit", BCON_INT64(-n), "}", "$set", "{", "last_activity",
                      BCON_INT64(now), "}");
        rs = pe_mg_update_one(st, PE_MC_USERS, f, up, 0, &matched);
        bson_destroy(f);
        bson_destroy(up);
        if (rs != PE_STORE_OK || matched)
            return rs;
        /* A did not match: no active user, none left today, or a reset pending. */
        up = BCON_NEW("conv_reset", BCON_INT32(1), "reset_day", BCON_INT32(1), "is_active", BCON_INT32(1));
        rs = find_user(st, by_id(user_id), up, &doc);
        bson_destroy(up);
        if (rs != PE_STORE_OK)
            return rs == PE_STORE_NOTFOUND ? PE_STORE_EMPTY : rs;
        if (pe_mg_i64(doc, "is_active") != 1 || pe_mg_i64(doc, "reset_day") >= today)
            return PE_STORE_EMPTY;
        r = pe_mg_i64(doc, "conv_reset");
        f = by_id(user_id);
        BCON_APPEND(f, "is_active", BCON_INT32(1), "reset_day", "{", "$lt", BCON_INT64(today), "}", "conv_reset",
                    BCON_INT64(r));
        if (r > 0 && r >= n)
            up = BCON_NEW("$set", "{", "conv_limit", BCON_INT64(r - n), "reset_day", BCON_INT64(today),
                          "last_activity", BCON_INT64(now), "}");
        else if (r > 0)
            up = BCON_NEW("$set", "{", "conv_limit", BCON_INT64(r), "reset_day", BCON_INT64(today), "}");
        else
            up = BCON_NEW("$set", "{", "reset_day", BCON_INT64(today), "}");
        rs = pe_mg_update_one(st, PE_MC_USERS, f, up, 0, &matched);
        bson_destroy(f);
        bson_destroy(up);
        if (rs != PE_STORE_OK)
            return rs;
        if (matched && r > 0)
            return r >= n ? PE_STORE_OK : PE_STORE_EMPTY;
        /* someone else reset first, or no reset value: the day is current now; take as in A */
    }
    return PE_STORE_EMPTY;
}

pe_store_status_e pe_mg_credits_take(pe_store_t *st, const char *user_id, apr_int64_t today, apr_time_t now)
{
    return credits_take(st, user_id, 1, today, now);
}

pe_store_status_e pe_mg_credits_take_n(pe_store_t *st, const char *user_id, apr_int64_t n, apr_int64_t today,
                                       apr_time_t now)
{
    if (n <= 0)
        return PE_STORE_OK;
    return credits_take(st, user_id, n, today, now);
}

pe_store_status_e pe_mg_credits_refund_n(pe_store_t *st, const char *user_id, apr_int64_t n, apr_int64_t day)
{
    bson_t *f;

    if (n <= 0)
        return PE_STORE_OK;
    if ((f = by_id(user_id)))
        BCON_APPEND(f, "reset_day", BCON_INT64(day));
    return update_by_id(st, f, BCON_NEW("$inc", "{", "conv_limit", BCON_INT64(n), "}"));
}

pe_store_status_e pe_mg_credits_refund(pe_store_t *st, const char *user_id, apr_int64_t day)
{
    return pe_mg_credits_refund_n(st, user_id, 1, day);
}

pe_store_status_e pe_mg_credits_get(pe_store_t *st, const char *user_id, apr_int64_t today, apr_int64_t *limit,
                                    apr_int64_t *reset)
{
    const bson_t *doc = NULL;
    pe_store_status_e rs = find_user(st, by_id(user_id), NULL, &doc);

    *limit = *reset = 0;
    if (rs != PE_STORE_OK)
        return rs;
    *limit = pe_mg_i64(doc, "conv_limit");
    *reset = pe_mg_i64(doc, "conv_reset");
    if (pe_mg_i64(doc, "reset_day") < today && *reset > 0)
        *limit = *reset;
    return PE_STORE_OK;
}
