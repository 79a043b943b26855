/*
 * pe_store_mongo_misc.c: sessions, security events, conversation logs, system prompts and the
 * access layer's address lists on MongoDB.
 */
#include "pe_store_mongo_int.h"

#include <apr_strings.h>
#include <stdlib.h>
#include <string.h>

static const char *s0(const char *s)
{
    return s ? s : "";
}

/* ----------------------------------------------------------------------------------------- */
/* Sessions */

static pe_principal_kind_e kind_from_name(const char *s)
{
    if (s && !strcmp(s, "user"))
        return PE_PRINCIPAL_USER;
    if (s && !strcmp(s, "admin"))
        return PE_PRINCIPAL_ADMIN;
    if (s && !strcmp(s, "support"))
        return PE_PRINCIPAL_SUPPORT;
    return PE_PRINCIPAL_NONE;
}

static pe_session_t *sess_from_doc(apr_pool_t *p, const bson_t *d)
{
    pe_session_t *s = apr_pcalloc(p, sizeof(*s));

    s->id = pe_mg_id(p, d);
    s->kind = kind_from_name(pe_mg_str(p, d, "principal_kind"));
    s->principal_id = pe_mg_str(p, d, "principal_id");
    s->token_digest = pe_mg_str(p, d, "token_digest");
    s->refresh_digest = pe_mg_str(p, d, "refresh_digest");
    s->expires_at = pe_mg_i64(d, "expires_at");
    s->refresh_expires_at = pe_mg_i64(d, "refresh_expires_at");
    s->ip_address = s0(pe_mg_str(p, d, "ip_address"));
    s->user_agent = s0(pe_mg_str(p, d, "user_agent"));
    s->created_at = pe_mg_i64(d, "created_at");
    s->last_used = pe_mg_i64(d, "last_used");
    return s;
}

pe_store_status_e pe_mg_session_create(pe_store_t *st, const pe_session_t *s)
{
    bson_t *d = bson_new();
    pe_store_status_e rs;

    if (!pe_mg_append_oid(d, "_id", s->id)) {
        bson_destroy(d);
        return pe_mg_fail(st, "session_create: the id is not 24 hex", NULL);
    }
    BCON_APPEND(d, "principal_kind", BCON_UTF8(pe_principal_kind_name(s->kind)), "principal_id",
                BCON_UTF8(s0(s->principal_id)), "token_digest", BCON_UTF8(s0(s->token_digest)), "refresh_digest",
                BCON_UTF8(s0(s->refresh_digest)), "expires_at", BCON_INT64(s->expires_at), "refresh_expires_at",
                BCON_INT64(s->refresh_expires_at), "ip_address", BCON_UTF8(s0(s->ip_address)), "user_agent",
                BCON_UTF8(s0(s->user_agent)), "created_at", BCON_INT64(s->created_at), "last_used",
                BCON_INT64(s->last_used));
    rs = pe_mg_insert(st, PE_MC_SESSIONS, d);
    bson_destroy(d);
    return rs == PE_STORE_CONFLICT ? pe_store_set_conflict(st, "id") : rs;
}

/* Find and touch in one write: the session is unexpired, and last_used becomes now. */
pe_store_status_e pe_mg_session_by_token(pe_store_t *st, const char *digest, apr_time_t now, pe_session_t **out)
{
    bson_t *f = BCON_NEW("token_digest", BCON_UTF8(s0(digest)), "expires_at", "{", "$gt", BCON_INT64(now), "}");
    bson_t *up = BCON_NEW("$set", "{", "last_used", BCON_INT64(now), "}");
    const bson_t *doc = NULL;
    pe_store_status_e rs = pe_mg_fam(st, PE_MC_SESSIONS, f, up, NULL, PE_MG_RETURN_NEW, &doc);

    bson_destroy(f);
    bson_destroy(up);
    *out = rs == PE_STORE_OK ? sess_from_doc(pe_store_pool(st), doc) : NULL;
    return rs;
}

/* NB: the write is guarded by the old refresh digest, so of concurrent rotations exactly one
 * matches; the others find nothing (NOTFOUND). */
pe_store_status_e pe_mg_session_rotate(pe_store_t *st, const char *refresh_digest, const char *new_token_digest,
                                       const char *new_refresh_digest, apr_time_t expires_at,
                                       apr_time_t refresh_expires_at, apr_time_t now, pe_session_t **out)
{
    bson_t *f = BCON_NEW("refresh_digest", BCON_UTF8(s0(refresh_digest)), "refresh_expires_at", "{", "$gt",
                         BCON_INT64(now), "}");
    bson_t *up = BCON_NEW("$set", "{", "token_digest", BCON_UTF8(s0(new_token_digest)), "refresh_digest",
                          BCON_UTF8(s0(new_refresh_digest)), "expires_at", BCON_INT64(expires_at),
                          "refresh_expires_at", BCON_INT64(refresh_expires_at), "last_used", BCON_INT64(now), "}");
    const bson_t *doc = NULL;
    pe_store_status_e rs = pe_mg_fam(st, PE_MC_SESSIONS, f, up, NULL, PE_MG_RETURN_NEW, &doc);

    bson_destroy(f);
    bson_destroy(up);
    *out = rs == PE_STORE_OK ? sess_from_doc(pe_store_pool(st), doc) : NULL;
    return rs;
}

pe_store_status_e pe_mg_session_delete(pe_store_t *st, const char *token_digest)
{
    bson_t *f = BCON_NEW("token_digest", BCON_UTF8(s0(token_digest)));
    long n = 0;
    pe_store_status_e rs = pe_mg_delete(st, PE_MC_SESSIONS, f, 0, &n);

    bson_destroy(f);
    return (rs == PE_STORE_OK && n == 0) ? PE_STORE_NOTFOUND : rs;
}

pe_store_status_e pe_mg_session_delete_all(pe_store_t *st, pe_principal_kind_e kind, const char *principal_id,
                                           const char *keep_id)
{
    bson_t *f = BCON_NEW("principal_kind", BCON_UTF8(pe_principal_kind_name(kind)), "principal_id",
                         BCON_UTF8(s0(principal_id)));
    pe_store_status_e rs;

    if (keep_id) {
        bson_t ne;

        BSON_APPEND_DOCUMENT_BEGIN(f, "_id", &ne);
        if (!pe_mg_append_oid(&ne, "$ne", keep_id))
            BSON_APPEND_UTF8(&ne, "$ne", keep_id); /* not an ObjectId: matches every session */
        bson_append_document_end(f, &ne);
    }
    rs = pe_mg_delete(st, PE_MC_SESSIONS, f, 1, NULL);
    bson_destroy(f);
    return rs;
}

/* ----------------------------------------------------------------------------------------- */
/* Security events */

pe_store_status_e pe_mg_event(pe_store_t *st, const char *event_type, pe_principal_kind_e kind,
                              const char *principal_id, const char *username, const char *ip, const json_t *details,
                              const char *severity, apr_time_t now)
{
    char *js = details ? json_dumps(details, JSON_COMPACT) : NULL;
    bson_t *d = bson_new(), *det = NULL;
    bson_oid_t oid;
    pe_store_status_e rs;

    bson_oid_init(&oid, NULL);
    BSON_APPEND_OID(d, "_id", &oid);
    if (js && json_is_object(details))
        det = bson_new_from_json((const uint8_t *)js, -1, NULL);
    BCON_APPEND(d, "event_type", BCON_UTF8(s0(event_type)), "principal_kind", BCON_UTF8(pe_principal_kind_name(kind)),
                "principal_id", BCON_UTF8(s0(principal_id)), "username", BCON_UTF8(s0(username)), "ip_address",
                BCON_UTF8(s0(ip)), "severity", BCON_UTF8(severity ? severity : "info"), "created_at",
                BCON_INT64(now));
    if (!det)
        det = bson_new(); /* no details, or not an object: {} as in SQL */
    BSON_APPEND_DOCUMENT(d, "details", det);
    rs = pe_mg_insert(st, PE_MC_EVENTS, d);
    bson_destroy(det);
    bson_destroy(d);
    free(js);
    return rs;
}

pe_store_status_e pe_mg_event_count(pe_store_t *st, const char *event_type, const char *principal_id, long *count)
{
    bson_t *f = BCON_NEW("event_type", BCON_UTF8(s0(event_type)));
    pe_store_status_e rs;

    if (principal_id)
        BSON_APPEND_UTF8(f, "principal_id", principal_id);
    rs = pe_mg_count(st, PE_MC_EVENTS, f, count);
    bson_destroy(f);
    return rs;
}

/* ----------------------------------------------------------------------------------------- */
/* Conversation logs */

/* Documents per insert command. */
#define PE_MG_MSGLOG_CHUNK 100

/* After an unordered insert_many failed: OK when every write error is a duplicate key. */
static int only_duplicates(const bson_t *reply)
{
    bson_iter_t it, arr, e;
    int n = 0;

    if (!bson_iter_init_find(&it, reply, "writeErrors") || !BSON_ITER_HOLDS_ARRAY(&it) ||
        !bson_iter_recurse(&it, &arr))
        return 0;
    if (bson_iter_init_find(&e, reply, "writeConcernErrors") && BSON_ITER_HOLDS_ARRAY(&e)) {
        bson_iter_t wce;

        if (bson_iter_recurse(&e, &wce) && bson_iter_next(&wce))
            return 0;
    }
    while (bson_iter_next(&arr)) {
        bson_iter_t code;

        if (!BSON_ITER_HOLDS_DOCUMENT(&arr) || !bson_iter_recurse(&arr, &code) || !bson_iter_find(&code, "code") ||
            bson_iter_as_int64(&code) != 11000)
            return 0;
        n++;
    }
    return n > 0;
}

/* Insert k documents unordered (and destroy them); those whose _id exists already are skipped. */
pe_store_status_e pe_mg_insert_new(pe_store_t *st, const char *coll, bson_t **docs, int k)
{
    bson_t reply, *opts = BCON_NEW("ordered", BCON_BOOL(false));
    bson_error_t err;
    bool ok = mongoc_collection_insert_many(pe_mg_coll(st, coll), (const bson_t **)docs, (size_t)k, opts, &reply,
                                            &err);
    int i;

    if (!ok && only_duplicates(&reply))
        ok = true;
    for (i = 0; i < k; i++)
        bson_destroy(docs[i]);
    bson_destroy(opts);
    bson_destroy(&reply);
    return ok ? PE_STORE_OK : pe_mg_fail(st, coll, &err);
}

/*
 * After a batch is written: the rows of users that no longer exist go (SPEC 6.7: deleting an
 * account destroys its conversation logs, also those still queued or in flight when it was
 * deleted). The deletion removes the user first and its logs after; this insert comes first and
 * the check after, so whichever order the two meet in, no row of a deleted user is left.
 */
static pe_store_status_e msglog_sweep_deleted(pe_store_t *st, const pe_message_log_t *recs, int k)
{
    int i, j;

    for (i = 0; i < k; i++) {
        const char *uid = recs[i].user_id;
        bson_t *f;
        long n = 0;
        pe_store_status_e rs;

        for (j = 0; j < i && (!uid || !recs[j].user_id || strcmp(recs[j].user_id, uid)); j++)
            ;
        if (!uid || j < i) /* none, or seen already */
            continue;
        f = bson_new();
        if (!pe_mg_append_oid(f, "_id", uid)) {
            bson_destroy(f);
            continue;
        }
        rs = pe_mg_count(st, PE_MC_USERS, f, &n);
        bson_destroy(f);
        if (rs != PE_STORE_OK)
            return rs;
        if (n == 0) {
            f = BCON_NEW("user_id", BCON_UTF8(uid));
            rs = pe_mg_delete(st, PE_MC_MSGLOGS, f, 1, NULL);
            bson_destroy(f);
            if (rs != PE_STORE_OK)
                return rs;
        }
    }
    return PE_STORE_OK;
}

/*
 * Idempotent by request_id: each document's _id is derived from it, so a batch written again
 * after a failure meets duplicate-key errors for the records it has, and those are skipped
 * (an unordered insert writes the others). Rows of deleted users do not stay (msglog_sweep_deleted).
 */
pe_store_status_e pe_mg_msglog_insert(pe_store_t *st, const pe_message_log_t *recs, int n)
{
    int done = 0;
    pe_store_status_e rs;

    while (done < n) {
        int k = n - done > PE_MG_MSGLOG_CHUNK ? PE_MG_MSGLOG_CHUNK : n - done, i;
        bson_t *docs[PE_MG_MSGLOG_CHUNK];

        for (i = 0; i < k; i++) {
            const pe_message_log_t *m = &recs[done + i];
            bson_oid_t oid;

            pe_mg_derived_oid(&oid, "msglog", s0(m->request_id));
            docs[i] = BCON_NEW("_id", BCON_OID(&oid), "request_id", BCON_UTF8(s0(m->request_id)), "user_id",
                               BCON_UTF8(s0(m->user_id)), "username", BCON_UTF8(s0(m->username)), "model",
                               BCON_UTF8(s0(m->model)), "r_type", BCON_UTF8(s0(m->r_type)), "research_enabled",
                               BCON_INT32(m->research_enabled ? 1 : 0), "messages",
                               BCON_UTF8(m->messages ? m->messages : "[]"), "response", BCON_UTF8(s0(m->response)),
                               "status", BCON_INT32(m->status), "tokens_used", BCON_INT64(m->tokens_used),
                               "processing_time_ms", BCON_INT64(m->processing_time_ms), "ip_address",
                               BCON_UTF8(s0(m->ip_address)), "created_at", BCON_INT64(m->created_at));
        }
        rs = pe_mg_insert_new(st, PE_MC_MSGLOGS, docs, k);
        if (rs != PE_STORE_OK)
            return rs;
        if ((rs = msglog_sweep_deleted(st, recs + done, k)) != PE_STORE_OK)
            return rs;
        done += k;
    }
    return PE_STORE_OK;
}

pe_store_status_e pe_mg_msglog_count(pe_store_t *st, const char *user_id, long *count)
{
    bson_t *f = user_id ? BCON_NEW("user_id", BCON_UTF8(user_id)) : bson_new();
    pe_store_status_e rs = pe_mg_count(st, PE_MC_MSGLOGS, f, count);

    bson_destroy(f);
    return rs;
}

/* ----------------------------------------------------------------------------------------- */
/* System prompts: one document per r_type, _id derived from it (an upsert replaces). */

static bson_t *prompt_filter(const char *r_type)
{
    bson_oid_t oid;

    pe_mg_derived_oid(&oid, "prompt", s0(r_type));
    return BCON_NEW("_id", BCON_OID(&oid));
}

pe_store_status_e pe_mg_system_prompt_get(pe_store_t *st, const char *r_type, const char **prompt)
{
    bson_t *f = prompt_filter(r_type);
    const bson_t *doc = NULL;
    pe_store_status_e rs = pe_mg_find_one(st, PE_MC_PROMPTS, f, NULL, &doc);

    bson_destroy(f);
    *prompt = rs == PE_STORE_OK ? pe_mg_str(pe_store_pool(st), doc, "prompt") : NULL;
    if (rs == PE_STORE_OK && !*prompt)
        rs = PE_STORE_NOTFOUND;
    return rs;
}

pe_store_status_e pe_mg_system_prompt_set(pe_store_t *st, const char *r_type, const char *prompt,
                                          const char *updated_by, apr_time_t now)
{
    bson_t *f = prompt_filter(r_type);
    bson_t *up = BCON_NEW("$set", "{", "r_type", BCON_UTF8(s0(r_type)), "prompt", BCON_UTF8(s0(prompt)), "updated_by",
                          BCON_UTF8(s0(updated_by)), "updated_at", BCON_INT64(now), "}");
    pe_store_status_e rs = pe_mg_update_one(st, PE_MC_PROMPTS, f, up, 1, NULL);

    /* two first upserts of one r_type at once: one inserted, the other sets again */
    if (rs == PE_STORE_CONFLICT)
        rs = pe_mg_update_one(st, PE_MC_PROMPTS, f, up, 1, NULL);
    bson_destroy(f);
    bson_destroy(up);
    return rs;
}

/* ----------------------------------------------------------------------------------------- */
/* Address lists: entries are numbered (pe_ipentry_t.id) from a counter document per list. */

static const char *iplist_coll(pe_iplist_e which)
{
    return which == PE_IPLIST_WHITELIST ? PE_MC_WHITELIST : PE_MC_BLOCKED;
}

static const char *iplist_note(pe_iplist_e which)
{
    return which == PE_IPLIST_WHITELIST ? "description" : "reason";
}

pe_store_status_e pe_mg_iplist_active(pe_store_t *st, pe_iplist_e which, apr_time_t now, apr_array_header_t **out)
{
    apr_pool_t *p = pe_store_pool(st);
    bson_t *f = BCON_NEW("is_active", BCON_INT32(1), "$or", "[", "{", "expires_at", BCON_INT64(0), "}", "{",
                         "expires_at", "{", "$gt", BCON_INT64(now), "}", "}", "]");
    bson_t *opts = BCON_NEW("sort", "{", "id", BCON_INT32(1), "}");
    mongoc_cursor_t *cur = mongoc_collection_find_with_opts(pe_mg_coll(st, iplist_coll(which)), f, opts, NULL);
    const bson_t *d;
    bson_error_t err;
    pe_store_status_e rs = PE_STORE_OK;

    *out = apr_array_make(p, 4, sizeof(pe_ipentry_t));
    while (mongoc_cursor_next(cur, &d)) {
        pe_ipentry_t *e = &APR_ARRAY_PUSH(*out, pe_ipentry_t);

        e->id = pe_mg_i64(d, "id");
        e->network = s0(pe_mg_str(p, d, "network"));
        e->note = s0(pe_mg_str(p, d, iplist_note(which)));
        e->created_by = s0(pe_mg_str(p, d, "created_by"));
        e->created_at = pe_mg_i64(d, "created_at");
        e->expires_at = pe_mg_i64(d, "expires_at");
        e->is_active = (int)pe_mg_i64(d, "is_active");
    }
    if (mongoc_cursor_error(cur, &err)) {
        (*out)->nelts = 0;
        rs = pe_mg_fail(st, iplist_coll(which), &err);
    }
    mongoc_cursor_destroy(cur);
    bson_destroy(opts);
    bson_destroy(f);
    return rs;
}

/* The next number of a list: $inc on its counter document (made by the first upsert). */
static pe_store_status_e next_seq(pe_store_t *st, const char *name, apr_int64_t *seq)
{
    bson_oid_t oid;
    bson_t *f, *up;
    const bson_t *doc = NULL;
    pe_store_status_e rs;

    pe_mg_derived_oid(&oid, "counter", name);
    f = BCON_NEW("_id", BCON_OID(&oid));
    up = BCON_NEW("$inc", "{", "seq", BCON_INT64(1), "}", "$set", "{", "name", BCON_UTF8(name), "}");
    rs = pe_mg_fam(st, PE_MC_COUNTERS, f, up, NULL, PE_MG_RETURN_NEW | PE_MG_UPSERT, &doc);
    if (rs == PE_STORE_CONFLICT) /* two first upserts at once: the document exists now */
        rs = pe_mg_fam(st, PE_MC_COUNTERS, f, up, NULL, PE_MG_RETURN_NEW | PE_MG_UPSERT, &doc);
    bson_destroy(f);
    bson_destroy(up);
    *seq = rs == PE_STORE_OK ? pe_mg_i64(doc, "seq") : 0;
    return rs == PE_STORE_CONFLICT ? pe_mg_fail(st, "counter", NULL) : rs;
}

pe_store_status_e pe_mg_iplist_add(pe_store_t *st, pe_iplist_e which, const pe_ipentry_t *e)
{
    apr_int64_t id;
    bson_oid_t oid;
    bson_t *d;
    pe_store_status_e rs = next_seq(st, iplist_coll(which), &id);

    if (rs != PE_STORE_OK)
        return rs;
    bson_oid_init(&oid, NULL);
    d = BCON_NEW("_id", BCON_OID(&oid), "id", BCON_INT64(id), "network", BCON_UTF8(s0(e->network)),
                 iplist_note(which), BCON_UTF8(s0(e->note)), "created_by", BCON_UTF8(s0(e->created_by)), "created_at",
                 BCON_INT64(e->created_at), "expires_at", BCON_INT64(e->expires_at > 0 ? e->expires_at : 0),
                 "is_active", BCON_INT32(e->is_active ? 1 : 0));
    rs = pe_mg_insert(st, iplist_coll(which), d);
    bson_destroy(d);
    return rs;
}

pe_store_status_e pe_mg_iplist_remove(pe_store_t *st, pe_iplist_e which, apr_int64_t id)
{
    bson_t *f = BCON_NEW("id", BCON_INT64(id));
    long n = 0;
    pe_store_status_e rs = pe_mg_delete(st, iplist_coll(which), f, 0, &n);

    bson_destroy(f);
    return (rs == PE_STORE_OK && n == 0) ? PE_STORE_NOTFOUND : rs;
}

pe_store_status_e pe_mg_system_prompt_reset(pe_store_t *st, const char *r_type)
{
    bson_t *f = prompt_filter(r_type);
    long n = 0;
    pe_store_status_e rs = pe_mg_delete(st, PE_MC_PROMPTS, f, 0, &n);

    bson_destroy(f);
    return (rs == PE_STORE_OK && n == 0) ? PE_STORE_NOTFOUND : rs;
}
