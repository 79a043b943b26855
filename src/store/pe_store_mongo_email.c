/*
 * pe_store_mongo_email.c: e-mail verification on MongoDB: fields of the user's document
 * (email_code_digest, email_code_expires, email_code_attempts, email_send_day, email_sends; the SQL
 * schema's version 4 columns), each decision the filter of one guarded write, as the credits are.
 * Documents written before these fields existed lack them: a missing field counts as 0 or "".
 */
#include "pe_store_mongo_int.h"

#include <apr_strings.h>

/* {_id: ObjectId(id)} plus nothing; NULL when id is not 24 hex (no such user). */
static bson_t *email_by_id(const char *id)
{
    bson_t *b = bson_new();

    if (!pe_mg_append_oid(b, "_id", id)) {
        bson_destroy(b);
        return NULL;
    }
    return b;
}

/* Does the user exist? PE_STORE_OK, PE_STORE_NOTFOUND or PE_STORE_EIO; *doc its e-mail fields. */
static pe_store_status_e email_read(pe_store_t *st, const char *user_id, const bson_t **doc)
{
    bson_t *f = email_by_id(user_id), *fields;
    pe_store_status_e rs;

    *doc = NULL;
    if (!f)
        return PE_STORE_NOTFOUND;
    fields = BCON_NEW("email_code_digest", BCON_INT32(1), "email_code_expires", BCON_INT32(1), "email_code_attempts",
                      BCON_INT32(1), "email_send_day", BCON_INT32(1), "email_sends", BCON_INT32(1));
    rs = pe_mg_find_one(st, PE_MC_USERS, f, fields, doc);
    bson_destroy(f);
    bson_destroy(fields);
    return rs;
}

/*
 * A: {same day, sends < limit} -> $inc; else B: {day before (or never)} -> sends 1, day set. Of
 * concurrent first sends of a day one B wins and the others go round to A again.
 */
pe_store_status_e pe_mg_email_send_take(pe_store_t *st, const char *user_id, apr_int64_t day, int limit, int *sends)
{
    int round;

    *sends = 0;
    for (round = 0; round < 4; round++) {
        bson_t *f = email_by_id(user_id), *up;
        const bson_t *doc = NULL;
        pe_store_status_e rs;

        if (!f)
            return PE_STORE_NOTFOUND;
        BCON_APPEND(f, "email_send_day", "{", "$gte", BCON_INT64(day), "}", "email_sends", "{", "$lt",
                    BCON_INT32(limit), "}");
        up = BCON_NEW("$inc", "{", "email_sends", BCON_INT32(1), "}");
        rs = pe_mg_fam(st, PE_MC_USERS, f, up, NULL, PE_MG_RETURN_NEW, &doc);
        bson_destroy(f);
        bson_destroy(up);
        if (rs == PE_STORE_OK)
            *sends = (int)pe_mg_i64(doc, "email_sends");
        if (rs != PE_STORE_NOTFOUND)
            return rs;
        if (limit <= 0)
            break;
        f = email_by_id(user_id);
        BCON_APPEND(f, "$or", "[", "{", "email_send_day", "{", "$lt", BCON_INT64(day), "}", "}", "{",
                    "email_send_day", "{", "$exists", BCON_BOOL(false), "}", "}", "]");
        up = BCON_NEW("$set", "{", "email_send_day", BCON_INT64(day), "email_sends", BCON_INT32(1), "}");
        rs = pe_mg_fam(st, PE_MC_USERS, f, up, NULL, PE_MG_RETURN_NEW, &doc);
        bson_destroy(f);
        bson_destroy(up);
        if (rs == PE_STORE_OK)
            *sends = 1;
        if (rs != PE_STORE_NOTFOUND)
            return rs;
        /* Neither: the limit is reached, another send started the day first, or no such user. */
        if ((rs = email_read(st, user_id, &doc)) != PE_STORE_OK)
            return rs;
        if (pe_mg_i64(doc, "email_send_day") >= day && pe_mg_i64(doc, "email_sends") >= limit) {
            *sends = (int)pe_mg_i64(doc, "email_sends");
            return PE_STORE_EMPTY;
        }
    }
    return PE_STORE_EMPTY;
}

pe_store_status_e pe_mg_email_send_release(pe_store_t *st, const char *user_id, apr_int64_t day)
{
    bson_t *f = email_by_id(user_id), *up;
    long matched = 0;
    pe_store_status_e rs;

    if (!f)
        return PE_STORE_NOTFOUND;
    BCON_APPEND(f, "email_send_day", BCON_INT64(day), "email_sends", "{", "$gt", BCON_INT32(0), "}");
    up = BCON_NEW("$inc", "{", "email_sends", BCON_INT32(-1), "}");
    rs = pe_mg_update_one(st, PE_MC_USERS, f, up, 0, &matched);
    bson_destroy(f);
    bson_destroy(up);
    return (rs == PE_STORE_OK && !matched) ? PE_STORE_NOTFOUND : rs;
}

pe_store_status_e pe_mg_email_code_set(pe_store_t *st, const char *user_id, const char *digest, apr_time_t expires_at)
{
    bson_t *f = email_by_id(user_id), *up;
    long matched = 0;
    pe_store_status_e rs;

    if (!f)
        return PE_STORE_NOTFOUND;
    up = BCON_NEW("$set", "{", "email_code_digest", BCON_UTF8(digest ? digest : ""), "email_code_expires",
                  BCON_INT64(expires_at), "email_code_attempts", BCON_INT32(0), "}");
    rs = pe_mg_update_one(st, PE_MC_USERS, f, up, 0, &matched);
    bson_destroy(f);
    bson_destroy(up);
    return (rs == PE_STORE_OK && !matched) ? PE_STORE_NOTFOUND : rs;
}

/* NB: find-and-modify returns the document it counted on: the digest compared is that code's. */
pe_store_status_e pe_mg_email_code_attempt(pe_store_t *st, const char *user_id, apr_time_t now, int max,
                                           const char **digest, int *attempts)
{
    apr_pool_t *p = pe_store_pool(st);
    bson_t *f = email_by_id(user_id), *up;
    const bson_t *doc = NULL;
    pe_store_status_e rs;

    if (!f)
        return PE_STORE_NOTFOUND;
    BCON_APPEND(f, "email_code_digest", "{", "$gt", BCON_UTF8(""), "}", "email_code_expires", "{", "$gt",
                BCON_INT64(now), "}", "email_code_attempts", "{", "$lt", BCON_INT32(max), "}");
    up = BCON_NEW("$inc", "{", "email_code_attempts", BCON_INT32(1), "}");
    rs = pe_mg_fam(st, PE_MC_USERS, f, up, NULL, PE_MG_RETURN_NEW, &doc);
    bson_destroy(f);
    bson_destroy(up);
    if (rs == PE_STORE_OK) {
        *digest = pe_mg_str(p, doc, "email_code_digest");
        *attempts = (int)pe_mg_i64(doc, "email_code_attempts");
        return PE_STORE_OK;
    }
    if (rs != PE_STORE_NOTFOUND)
        return rs;
    if ((rs = email_read(st, user_id, &doc)) != PE_STORE_OK)
        return rs;
    {
        const char *d = pe_mg_str(p, doc, "email_code_digest");

        if (!d || !*d || pe_mg_i64(doc, "email_code_expires") <= now)
            return PE_STORE_NOTFOUND;
    }
    *attempts = (int)pe_mg_i64(doc, "email_code_attempts");
    return PE_STORE_EMPTY;
}

pe_store_status_e pe_mg_email_code_use(pe_store_t *st, const char *user_id, const char *email, const char *digest,
                                       apr_time_t now)
{
    bson_t *f = email_by_id(user_id), *up;
    long matched = 0;
    pe_store_status_e rs;

    if (!f)
        return PE_STORE_NOTFOUND;
    if (!digest || !*digest) {
        bson_destroy(f);
        return PE_STORE_NOTFOUND;
    }
    BCON_APPEND(f, "email", BCON_UTF8(email ? email : ""), "email_code_digest", BCON_UTF8(digest),
                "email_code_expires", "{", "$gt", BCON_INT64(now), "}");
    up = BCON_NEW("$set", "{", "is_verified", BCON_INT32(1), "email_code_digest", BCON_UTF8(""),
                  "email_code_attempts", BCON_INT32(0), "updated_at", BCON_INT64(now), "}");
    rs = pe_mg_update_one(st, PE_MC_USERS, f, up, 0, &matched);
    bson_destroy(f);
    bson_destroy(up);
    return (rs == PE_STORE_OK && !matched) ? PE_STORE_NOTFOUND : rs;
}
