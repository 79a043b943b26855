/*
 * pe_store_mongo.c: the store on MongoDB through libmongoc: the per-process client pool, a
 * client per store handle, the document helpers the operation files share, and the collection
 * layout (indexes and its version document). The operations are in pe_store_mongo_users.c
 * (users, uniqueness claims, credits) and pe_store_mongo_misc.c (sessions, events, logs,
 * prompts, address lists).
 */
#include "pe_store_mongo_int.h"
#include "pe_logno.h"

#include <apr_strings.h>
#include <apr_thread_mutex.h>
#include <openssl/evp.h>
#include <string.h>

struct pe_mongo_t {
    mongoc_client_pool_t *pool;
    mongoc_uri_t *uri;
    const char *db;
    apr_thread_mutex_t *schema_lock;
    volatile int schema_ok;          /* the layout is known to be current in this process */
    apr_time_t schema_next_try;      /* after a failure, not before this */
};

/* Defaults for options the operator's URI does not set (RELIABILITY R71). */
#define PE_MG_SELECT_MS 2000
#define PE_MG_CONNECT_MS 2000
#define PE_MG_SOCKET_MS 10000

/* ----------------------------------------------------------------------------------------- */
/* The process's client pool */

/* libmongoc's own log lines go to the module's log (they would go to stderr). */
static void mg_log(mongoc_log_level_t level, const char *domain, const char *message, void *data)
{
    int lv = level <= MONGOC_LOG_LEVEL_WARNING ? PE_LOG_WARNING : PE_LOG_DEBUG;

    if (level == MONGOC_LOG_LEVEL_TRACE)
        return;
    pe_clog(lv, 0, PE_LOGNO(31004) "libmongoc (%s): %s", domain, message);
}

const char *pe_mongo_uri_check(apr_pool_t *p, const char *uri)
{
    bson_error_t err;
    mongoc_uri_t *u;

    mongoc_log_set_handler(mg_log, NULL);

    if (!uri || !*uri)
        return "the URI is empty";
    u = mongoc_uri_new_with_error(uri, &err);
    if (!u)
        return apr_pstrdup(p, err.message);
    mongoc_uri_destroy(u);
    return NULL;
}

static apr_status_t pe_mongo_cleanup_global(void *data)
{
    mongoc_cleanup();
    return APR_SUCCESS;
}

void pe_mongo_global_init(apr_pool_t *p)
{
    mongoc_log_set_handler(mg_log, NULL);
    mongoc_init();
    apr_pool_cleanup_register(p, NULL, pe_mongo_cleanup_global, apr_pool_cleanup_null);
}

static apr_status_t pe_mongo_destroy(void *data)
{
    pe_mongo_t *m = data;

    if (m->pool)
        mongoc_client_pool_destroy(m->pool);
    if (m->uri)
        mongoc_uri_destroy(m->uri);
    m->pool = NULL;
    m->uri = NULL;
    return APR_SUCCESS;
}

static void uri_default_i32(mongoc_uri_t *u, const char *opt, int32_t v)
{
    if (!mongoc_uri_has_option(u, opt))
        mongoc_uri_set_option_as_int32(u, opt, v);
}

pe_mongo_t *pe_mongo_create(apr_pool_t *p, const char *uri, int max_clients, const char **err)
{
    pe_mongo_t *m = apr_pcalloc(p, sizeof(*m));
    bson_error_t e;
    const char *db;

    mongoc_log_set_handler(mg_log, NULL);
    m->uri = mongoc_uri_new_with_error(uri, &e);
    if (!m->uri) {
        *err = apr_pstrdup(p, e.message);
        return NULL;
    }
    apr_pool_cleanup_register(p, m, pe_mongo_destroy, apr_pool_cleanup_null);
    uri_default_i32(m->uri, MONGOC_URI_SERVERSELECTIONTIMEOUTMS, PE_MG_SELECT_MS);
    uri_default_i32(m->uri, MONGOC_URI_CONNECTTIMEOUTMS, PE_MG_CONNECT_MS);
    uri_default_i32(m->uri, MONGOC_URI_SOCKETTIMEOUTMS, PE_MG_SOCKET_MS);
    if (!mongoc_uri_has_option(m->uri, MONGOC_URI_W)) {
        /* NB: credits and sessions must survive a primary's failover: majority by default. */
        mongoc_write_concern_t *wc = mongoc_write_concern_new();

        mongoc_write_concern_set_wmajority(wc, 0);
        mongoc_uri_set_write_concern(m->uri, wc);
        mongoc_write_concern_destroy(wc);
    }
    if (!mongoc_uri_get_appname(m->uri))
        mongoc_uri_set_appname(m->uri, "mod_promptenchanter");
    m->pool = mongoc_client_pool_new_with_error(m->uri, &e);
    if (!m->pool) {
        *err = apr_pstrdup(p, e.message);
        return NULL;
    }
    mongoc_client_pool_set_error_api(m->pool, MONGOC_ERROR_API_VERSION_2);
    if (max_clients > 0 && !mongoc_uri_has_option(m->uri, MONGOC_URI_MAXPOOLSIZE))
        mongoc_client_pool_max_size(m->pool, (uint32_t)max_clients);
    db = mongoc_uri_get_database(m->uri);
    m->db = apr_pstrdup(p, db && *db ? db : PE_MONGO_DEFAULT_DB);
    apr_thread_mutex_create(&m->schema_lock, APR_THREAD_MUTEX_DEFAULT, p);
    return m;
}

const char *pe_mongo_db_name(const pe_mongo_t *m)
{
    return m->db;
}

/* ----------------------------------------------------------------------------------------- */
/* A handle's connection */

#define PE_MG_NCOLL 12

typedef struct {
    pe_mgconn_t c;
    int owned;                       /* the client is a pe_mongo_own_t's, not the pool's */
    const char *names[PE_MG_NCOLL];
    mongoc_collection_t *colls[PE_MG_NCOLL];
} pe_mgconn_full_t;

/* Pool cleanup: collections destroyed, the client given back. */
static apr_status_t conn_release(void *data)
{
    pe_mgconn_full_t *cf = data;
    int i;

    for (i = 0; i < PE_MG_NCOLL; i++) {
        if (cf->colls[i])
            mongoc_collection_destroy(cf->colls[i]);
        cf->colls[i] = NULL;
    }
    if (cf->c.client && !cf->owned)
        mongoc_client_pool_push(cf->c.m->pool, cf->c.client);
    cf->c.client = NULL;
    return APR_SUCCESS;
}

mongoc_collection_t *pe_mg_coll(pe_store_t *st, const char *name)
{
    pe_mgconn_full_t *cf = pe_store_conn(st);
    int i;

    for (i = 0; i < PE_MG_NCOLL && cf->names[i]; i++)
        if (cf->names[i] == name || !strcmp(cf->names[i], name))
            return cf->colls[i];
    if (i == PE_MG_NCOLL)
        i = 0; /* not reached: the backend has fewer collections */
    if (cf->colls[i])
        mongoc_collection_destroy(cf->colls[i]);
    cf->names[i] = name;
    cf->colls[i] = mongoc_client_get_collection(cf->c.client, cf->c.m->db, name);
    return cf->colls[i];
}

/* ----------------------------------------------------------------------------------------- */
/* Helpers */

pe_store_status_e pe_mg_fail(pe_store_t *st, const char *op, const bson_error_t *err)
{
    pe_mgconn_t *c = pe_store_conn(st);

    c->last_domain = err ? err->domain : 0;
    return pe_store_fail(st, "%s: %s", op, err ? err->message : "unexpected reply");
}

int pe_mg_is_dup(const bson_error_t *err)
{
    return err->code == 11000 || err->code == 11001 || err->code == 12582;
}

int pe_mg_append_oid(bson_t *b, const char *key, const char *hex)
{
    bson_oid_t oid;

    if (!hex || strlen(hex) != 24 || !bson_oid_is_valid(hex, 24))
        return 0;
    bson_oid_init_from_string(&oid, hex);
    return BSON_APPEND_OID(b, key, &oid);
}

void pe_mg_derived_oid(bson_oid_t *oid, const char *kind, const char *value)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();

    EVP_DigestInit_ex(ctx, EVP_sha256(), NULL);
    EVP_DigestUpdate(ctx, kind, strlen(kind) + 1); /* with its NUL: "a" "bc" != "ab" "c" */
    EVP_DigestUpdate(ctx, value ? value : "", value ? strlen(value) : 0);
    EVP_DigestFinal_ex(ctx, md, &n);
    EVP_MD_CTX_free(ctx);
    memcpy(oid->bytes, md, 12);
}

const char *pe_mg_str(apr_pool_t *p, const bson_t *doc, const char *key)
{
    bson_iter_t it;
    uint32_t len;
    const char *s;

    if (!doc || !bson_iter_init_find(&it, doc, key) || !BSON_ITER_HOLDS_UTF8(&it))
        return NULL;
    s = bson_iter_utf8(&it, &len);
    return apr_pstrmemdup(p, s, len);
}

apr_int64_t pe_mg_i64(const bson_t *doc, const char *key)
{
    bson_iter_t it;

    if (!doc || !bson_iter_init_find(&it, doc, key))
        return 0;
    if (BSON_ITER_HOLDS_INT32(&it) || BSON_ITER_HOLDS_INT64(&it) || BSON_ITER_HOLDS_DOUBLE(&it) ||
        BSON_ITER_HOLDS_BOOL(&it))
        return (apr_int64_t)bson_iter_as_int64(&it);
    return 0;
}

const char *pe_mg_id(apr_pool_t *p, const bson_t *doc)
{
    bson_iter_t it;
    char *hex;

    if (!doc || !bson_iter_init_find(&it, doc, "_id") || !BSON_ITER_HOLDS_OID(&it))
        return NULL;
    hex = apr_palloc(p, 25);
    bson_oid_to_string(bson_iter_oid(&it), hex);
    return hex;
}

static apr_status_t bson_free_cleanup(void *data)
{
    bson_destroy(data);
    return APR_SUCCESS;
}

bson_t *pe_mg_keep(pe_store_t *st, bson_t *doc)
{
    apr_pool_cleanup_register(pe_store_pool(st), doc, bson_free_cleanup, apr_pool_cleanup_null);
    return doc;
}

pe_store_status_e pe_mg_fam(pe_store_t *st, const char *coll, const bson_t *filter, const bson_t *update,
                            const bson_t *fields, int flags, const bson_t **out)
{
    mongoc_find_and_modify_opts_t *o = mongoc_find_and_modify_opts_new();
    bson_t reply;
    bson_error_t err;
    bson_iter_t it;
    int mflags = MONGOC_FIND_AND_MODIFY_NONE;
    pe_store_status_e rs = PE_STORE_NOTFOUND;
    bool ok;

    if (out)
        *out = NULL;
    if (flags & PE_MG_RETURN_NEW)
        mflags |= MONGOC_FIND_AND_MODIFY_RETURN_NEW;
    if (flags & PE_MG_UPSERT)
        mflags |= MONGOC_FIND_AND_MODIFY_UPSERT;
    if (flags & PE_MG_REMOVE)
        mflags |= MONGOC_FIND_AND_MODIFY_REMOVE;
    mongoc_find_and_modify_opts_set_flags(o, (mongoc_find_and_modify_flags_t)mflags);
    if (update)
        mongoc_find_and_modify_opts_set_update(o, update);
    if (fields)
        mongoc_find_and_modify_opts_set_fields(o, fields);
    ok = mongoc_collection_find_and_modify_with_opts(pe_mg_coll(st, coll), filter, o, &reply, &err);
    mongoc_find_and_modify_opts_destroy(o);
    if (!ok) {
        bson_destroy(&reply);
        return pe_mg_is_dup(&err) ? PE_STORE_CONFLICT : pe_mg_fail(st, coll, &err);
    }
    if (bson_iter_init_find(&it, &reply, "value") && BSON_ITER_HOLDS_DOCUMENT(&it)) {
        uint32_t len;
        const uint8_t *data;

        bson_iter_document(&it, &len, &data);
        if (out)
            *out = pe_mg_keep(st, bson_new_from_data(data, len));
        rs = PE_STORE_OK;
    }
    bson_destroy(&reply);
    return rs;
}

pe_store_status_e pe_mg_update_one(pe_store_t *st, const char *coll, const bson_t *filter, const bson_t *update,
                                   int upsert, long *matched)
{
    bson_t reply, opts = BSON_INITIALIZER;
    bson_error_t err;
    bool ok;

    if (upsert)
        BSON_APPEND_BOOL(&opts, "upsert", true);
    ok = mongoc_collection_update_one(pe_mg_coll(st, coll), filter, update, &opts, &reply, &err);
    bson_destroy(&opts);
    if (matched)
        *matched = ok ? (long)(pe_mg_i64(&reply, "matchedCount") + pe_mg_i64(&reply, "upsertedCount")) : 0;
    bson_destroy(&reply);
    if (!ok)
        return pe_mg_is_dup(&err) ? PE_STORE_CONFLICT : pe_mg_fail(st, coll, &err);
    return PE_STORE_OK;
}

pe_store_status_e pe_mg_insert(pe_store_t *st, const char *coll, const bson_t *doc)
{
    bson_error_t err;

    if (mongoc_collection_insert_one(pe_mg_coll(st, coll), doc, NULL, NULL, &err))
        return PE_STORE_OK;
    return pe_mg_is_dup(&err) ? PE_STORE_CONFLICT : pe_mg_fail(st, coll, &err);
}

pe_store_status_e pe_mg_delete(pe_store_t *st, const char *coll, const bson_t *filter, int many, long *deleted)
{
    bson_t reply;
    bson_error_t err;
    bool ok = many ? mongoc_collection_delete_many(pe_mg_coll(st, coll), filter, NULL, &reply, &err)
                   : mongoc_collection_delete_one(pe_mg_coll(st, coll), filter, NULL, &reply, &err);

    if (deleted)
        *deleted = ok ? (long)pe_mg_i64(&reply, "deletedCount") : 0;
    bson_destroy(&reply);
    return ok ? PE_STORE_OK : pe_mg_fail(st, coll, &err);
}

pe_store_status_e pe_mg_find_one(pe_store_t *st, const char *coll, const bson_t *filter, const bson_t *fields,
                                 const bson_t **out)
{
    bson_t opts = BSON_INITIALIZER;
    mongoc_cursor_t *cur;
    const bson_t *doc;
    bson_error_t err;
    pe_store_status_e rs = PE_STORE_NOTFOUND;

    *out = NULL;
    BSON_APPEND_INT64(&opts, "limit", 1);
    if (fields)
        BSON_APPEND_DOCUMENT(&opts, "projection", fields);
    cur = mongoc_collection_find_with_opts(pe_mg_coll(st, coll), filter, &opts, NULL);
    bson_destroy(&opts);
    if (mongoc_cursor_next(cur, &doc)) {
        *out = pe_mg_keep(st, bson_copy(doc));
        rs = PE_STORE_OK;
    }
    if (mongoc_cursor_error(cur, &err))
        rs = pe_mg_fail(st, coll, &err);
    mongoc_cursor_destroy(cur);
    return rs;
}

pe_store_status_e pe_mg_count(pe_store_t *st, const char *coll, const bson_t *filter, long *count)
{
    bson_error_t err;
    int64_t n = mongoc_collection_count_documents(pe_mg_coll(st, coll), filter, NULL, NULL, NULL, &err);

    *count = n < 0 ? 0 : (long)n;
    return n < 0 ? pe_mg_fail(st, coll, &err) : PE_STORE_OK;
}

/* ----------------------------------------------------------------------------------------- */
/* Collection layout: indexes per version, and its version document */

typedef struct {
    const char *coll, *name;
    const char *keys;   /* canonical extended JSON */
    int unique;
} pe_mg_index_t;

/*
 * Version 1. NB: every uniqueness the product relies on is an _id (claims, derived ids), which
 * holds on a sharded cluster too; the unique secondary indexes below back it up on an
 * unsharded deployment (a sharded collection refuses a unique index not prefixed by its shard
 * key: shard those collections on the indexed field, or not at all; docs/mongodb.md).
 */
static const pe_mg_index_t pe_mg_v1[] = {
    {PE_MC_USERS, "email", "{\"email\": 1}", 1},
    {PE_MC_USERS, "username", "{\"username\": 1}", 1},
    {PE_MC_USERS, "api_key_digest", "{\"api_key_digest\": 1}", 1},
    {PE_MC_CLAIMS, "user_id", "{\"user_id\": 1}", 0},
    {PE_MC_SESSIONS, "token_digest", "{\"token_digest\": 1}", 1},
    {PE_MC_SESSIONS, "refresh_digest", "{\"refresh_digest\": 1}", 1},
    {PE_MC_SESSIONS, "principal", "{\"principal_kind\": 1, \"principal_id\": 1}", 0},
    {PE_MC_EVENTS, "type", "{\"event_type\": 1, \"created_at\": 1}", 0},
    {PE_MC_EVENTS, "principal", "{\"principal_id\": 1, \"created_at\": 1}", 0},
    {PE_MC_MSGLOGS, "user", "{\"user_id\": 1, \"created_at\": 1}", 0},
    {PE_MC_BLOCKED, "id", "{\"id\": 1}", 1},
    {PE_MC_BLOCKED, "active", "{\"is_active\": 1, \"expires_at\": 1}", 0},
    {PE_MC_WHITELIST, "id", "{\"id\": 1}", 1},
    {PE_MC_WHITELIST, "active", "{\"is_active\": 1, \"expires_at\": 1}", 0},
    {PE_MC_DELETED, "original_user_id", "{\"original_user_id\": 1}", 0},
    {NULL, NULL, NULL, 0}};

/* Version 2: operators (administrators and support staff); uniqueness by claims, as for users. */
static const pe_mg_index_t pe_mg_v2[] = {
    {PE_MC_STAFF, "username", "{\"kind\": 1, \"username\": 1}", 1},
    {PE_MC_STAFF, "email", "{\"kind\": 1, \"email\": 1}", 1},
    {PE_MC_STAFF, "created", "{\"kind\": 1, \"created_at\": 1}", 0},
    {NULL, NULL, NULL, 0}};

/* Version 3: API-usage records: a user's by time, and the retention's oldest first. */
static const pe_mg_index_t pe_mg_v3[] = {
    {PE_MC_API_USAGE, "user", "{\"user_id\": 1, \"created_at\": 1}", 0},
    {PE_MC_API_USAGE, "created", "{\"created_at\": 1}", 0},
    {NULL, NULL, NULL, 0}};

static const pe_mg_index_t *const pe_mg_versions[] = {pe_mg_v1, pe_mg_v2, pe_mg_v3};
#define PE_MG_NVERSIONS ((int)(sizeof(pe_mg_versions) / sizeof(pe_mg_versions[0])))

int pe_store_mongo_schema_version(void)
{
    return PE_MG_NVERSIONS;
}

/* One collection's indexes of a version, in one createIndexes command (idempotent). */
static pe_store_status_e create_indexes(pe_store_t *st, const pe_mg_index_t *ix, const char *coll)
{
    pe_mgconn_t *c = pe_store_conn(st);
    mongoc_database_t *db = mongoc_client_get_database(c->client, c->m->db);
    bson_t cmd = BSON_INITIALIZER, arr, reply;
    bson_error_t err;
    int i, n = 0;
    bool ok;

    BSON_APPEND_UTF8(&cmd, "createIndexes", coll);
    BSON_APPEND_ARRAY_BEGIN(&cmd, "indexes", &arr);
    for (i = 0; ix[i].coll; i++) {
        bson_t spec, *keys;
        char k[16];
        const char *key;

        if (strcmp(ix[i].coll, coll))
            continue;
        keys = bson_new_from_json((const uint8_t *)ix[i].keys, -1, NULL);
        bson_uint32_to_string((uint32_t)n++, &key, k, sizeof(k));
        bson_append_document_begin(&arr, key, -1, &spec);
        BSON_APPEND_DOCUMENT(&spec, "key", keys);
        BSON_APPEND_UTF8(&spec, "name", ix[i].name);
        if (ix[i].unique)
            BSON_APPEND_BOOL(&spec, "unique", true);
        bson_append_document_end(&arr, &spec);
        bson_destroy(keys);
    }
    bson_append_array_end(&cmd, &arr);
    /* NB: libmongoc 1.23 has no mongoc_collection_create_indexes_with_opts: the command. */
    ok = mongoc_database_write_command_with_opts(db, &cmd, NULL, &reply, &err);
    bson_destroy(&cmd);
    bson_destroy(&reply);
    mongoc_database_destroy(db);
    return ok ? PE_STORE_OK : pe_mg_fail(st, "createIndexes", &err);
}

static pe_store_status_e apply_version(pe_store_t *st, const pe_mg_index_t *ix)
{
    int i, j;

    for (i = 0; ix[i].coll; i++) {
        int seen = 0;

        for (j = 0; j < i; j++)
            seen |= !strcmp(ix[j].coll, ix[i].coll);
        if (!seen && create_indexes(st, ix, ix[i].coll) != PE_STORE_OK)
            return PE_STORE_EIO;
    }
    return PE_STORE_OK;
}

/*
 * The version document {_id: derived("schema", "layout"), version, applied_at}. Creating an
 * index that exists does nothing, so processes and nodes starting together may all run a
 * version's createIndexes; the step of the version number is one conditional write
 * ({version < v} -> v, on a document inserted at version 0 the first time), so exactly one of
 * them counts (and logs) each version as applied, and the number only grows.
 */
static pe_store_status_e mg_schema_apply(pe_store_t *st, int *applied)
{
    bson_t *filter, *up;
    bson_oid_t oid;
    const bson_t *doc = NULL;
    pe_store_status_e rs;
    int cur, v, exists;

    *applied = 0;
    pe_mg_derived_oid(&oid, "schema", "layout");
    filter = BCON_NEW("_id", BCON_OID(&oid));
    rs = pe_mg_find_one(st, PE_MC_SCHEMA, filter, NULL, &doc);
    bson_destroy(filter);
    if (rs == PE_STORE_EIO)
        return rs;
    cur = (int)pe_mg_i64(doc, "version");
    exists = doc != NULL;
    for (v = cur + 1; v <= PE_MG_NVERSIONS; v++) {
        long matched = 0;

        if (apply_version(st, pe_mg_versions[v - 1]) != PE_STORE_OK)
            return PE_STORE_EIO;
        if (!exists) { /* the first version: the document, at 0, unless another process made it */
            up = BCON_NEW("_id", BCON_OID(&oid), "version", BCON_INT32(0), "applied_at", BCON_INT64(0));
            rs = pe_mg_insert(st, PE_MC_SCHEMA, up);
            bson_destroy(up);
            if (rs == PE_STORE_EIO)
                return rs;
            exists = 1;
        }
        filter = BCON_NEW("_id", BCON_OID(&oid), "version", "{", "$lt", BCON_INT32(v), "}");
        up = BCON_NEW("$set", "{", "version", BCON_INT32(v), "applied_at", BCON_INT64(apr_time_now()), "}");
        rs = pe_mg_update_one(st, PE_MC_SCHEMA, filter, up, 0, &matched);
        bson_destroy(filter);
        bson_destroy(up);
        if (rs != PE_STORE_OK)
            return rs;
        if (matched) {
            pe_clog(PE_LOG_NOTICE, 0, PE_LOGNO(31002) "store: MongoDB collection layout version %d applied (%s)",
                    v, pe_mongo_db_name(((pe_mgconn_t *)pe_store_conn(st))->m));
            (*applied)++;
        }
    }
    return PE_STORE_OK;
}

/* Once per process (after a failure, again at most every 5 s). */
void pe_store_mongo_ensure_schema(pe_store_t *st)
{
    pe_mongo_t *m = ((pe_mgconn_t *)pe_store_conn(st))->m;
    int applied;

    if (m->schema_ok || apr_time_now() < m->schema_next_try)
        return;
    apr_thread_mutex_lock(m->schema_lock);
    if (!m->schema_ok && apr_time_now() >= m->schema_next_try) {
        if (mg_schema_apply(st, &applied) == PE_STORE_OK)
            m->schema_ok = 1;
        else {
            m->schema_next_try = apr_time_now() + apr_time_from_sec(5);
            pe_clog(PE_LOG_INFO, 0, PE_LOGNO(31003) "store: the MongoDB collection layout could not be checked "
                    "(tried again in 5 s): %s", pe_store_error(st));
        }
    }
    apr_thread_mutex_unlock(m->schema_lock);
}

static pe_store_status_e pe_mg_schema_apply(pe_store_t *st, int *applied)
{
    pe_mgconn_t *c = pe_store_conn(st);
    pe_store_status_e rs = mg_schema_apply(st, applied);

    if (rs == PE_STORE_OK)
        c->m->schema_ok = 1;
    return rs;
}

/* ----------------------------------------------------------------------------------------- */
/* The handle */

static const pe_store_ops_t pe_mongo_ops;

/* A handle on client (owned: not given back to the pool with p). */
static pe_store_t *mongo_handle(apr_pool_t *p, pe_mongo_t *m, mongoc_client_t *client, int owned)
{
    pe_mgconn_full_t *cf = apr_pcalloc(p, sizeof(*cf));

    cf->c.m = m;
    cf->c.pool = p;
    cf->c.client = client;
    cf->owned = owned;
    apr_pool_cleanup_register(p, cf, conn_release, apr_pool_cleanup_null);
    return pe_store_make(p, &pe_mongo_ops, cf);
}

pe_store_t *pe_store_mongo_make(apr_pool_t *p, pe_mongo_t *m)
{
    /* NB: pop waits while every client of the pool is in use (sized to the threads). */
    return mongo_handle(p, m, mongoc_client_pool_pop(m->pool), 0);
}

/* An owned client: outside the pool, kept across uses, for one thread at a time. */
struct pe_mongo_own_t {
    pe_mongo_t *m;
    mongoc_client_t *client;
};

static apr_status_t own_cleanup(void *data)
{
    pe_mongo_own_close(data);
    return APR_SUCCESS;
}

pe_mongo_own_t *pe_mongo_own_create(apr_pool_t *p, pe_mongo_t *m)
{
    pe_mongo_own_t *o = apr_pcalloc(p, sizeof(*o));

    o->m = m;
    apr_pool_cleanup_register(p, o, own_cleanup, apr_pool_cleanup_null);
    return o;
}

pe_store_t *pe_mongo_own_get(pe_mongo_own_t *o, apr_pool_t *p)
{
    if (!o->client) {
        o->client = mongoc_client_new_from_uri(o->m->uri);
        if (!o->client)
            return NULL;
        mongoc_client_set_error_api(o->client, MONGOC_ERROR_API_VERSION_2);
    }
    return mongo_handle(p, o->m, o->client, 1);
}

void pe_mongo_own_close(pe_mongo_own_t *o)
{
    if (o->client)
        mongoc_client_destroy(o->client);
    o->client = NULL;
}

int pe_mongo_schema_ok(const pe_mongo_t *m)
{
    return m->schema_ok;
}

/*
 * The front end's one retry after EIO: on the same client (libmongoc reconnects its sockets and
 * retries a retryable read or write once itself), except after a server-selection failure: no
 * server was found within serverSelectionTimeoutMS, and trying at once again would only double
 * the wait of a request that gets 503.
 */
static pe_store_status_e mg_reset(pe_store_t *st)
{
    pe_mgconn_t *c = pe_store_conn(st);

    return c->last_domain == MONGOC_ERROR_SERVER_SELECTION ? PE_STORE_EIO : PE_STORE_OK;
}

static const pe_store_ops_t pe_mongo_ops = {
    .name = "mongodb",
    .reset = mg_reset,
    .schema_apply = pe_mg_schema_apply,
    .user_create = pe_mg_user_create,
    .user_by_id = pe_mg_user_by_id,
    .user_by_email = pe_mg_user_by_email,
    .user_by_key_digest = pe_mg_user_by_key_digest,
    .user_update_profile = pe_mg_user_update_profile,
    .user_set_api_key = pe_mg_user_set_api_key,
    .user_set_email = pe_mg_user_set_email,
    .user_set_password = pe_mg_user_set_password,
    .user_login_reserve = pe_mg_user_login_reserve,
    .user_login_ok = pe_mg_user_login_ok,
    .user_delete = pe_mg_user_delete,
    .session_create = pe_mg_session_create,
    .session_by_token = pe_mg_session_by_token,
    .session_rotate = pe_mg_session_rotate,
    .session_delete = pe_mg_session_delete,
    .session_delete_all = pe_mg_session_delete_all,
    .event = pe_mg_event,
    .event_count = pe_mg_event_count,
    .credits_take = pe_mg_credits_take,
    .credits_refund = pe_mg_credits_refund,
    .credits_get = pe_mg_credits_get,
    .credits_take_n = pe_mg_credits_take_n,
    .credits_refund_n = pe_mg_credits_refund_n,
    .msglog_insert = pe_mg_msglog_insert,
    .msglog_count = pe_mg_msglog_count,
    .system_prompt_get = pe_mg_system_prompt_get,
    .system_prompt_set = pe_mg_system_prompt_set,
    .iplist_active = pe_mg_iplist_active,
    .iplist_add = pe_mg_iplist_add,
    .iplist_remove = pe_mg_iplist_remove,
    .staff_create = pe_mg_staff_create,
    .staff_by_id = pe_mg_staff_by_id,
    .staff_by_username = pe_mg_staff_by_username,
    .staff_list = pe_mg_staff_list,
    .staff_set_password = pe_mg_staff_set_password,
    .staff_login_reserve = pe_mg_staff_login_reserve,
    .staff_login_ok = pe_mg_staff_login_ok,
    .staff_set_active = pe_mg_staff_set_active,
    .staff_delete = pe_mg_staff_delete,
    .user_update = pe_mg_user_update,
    .user_list = pe_mg_user_list,
    .event_list = pe_mg_event_list,
    .msglog_list = pe_mg_msglog_list,
    .system_prompt_reset = pe_mg_system_prompt_reset,
    .msglog_usage = pe_mg_msglog_usage,
    .msglog_top_users = pe_mg_msglog_top_users,
    .ping = pe_mg_ping,
    .usage = pe_mg_usage,
    .email_send_take = pe_mg_email_send_take,
    .email_send_release = pe_mg_email_send_release,
    .email_code_set = pe_mg_email_code_set,
    .email_code_attempt = pe_mg_email_code_attempt,
    .email_code_use = pe_mg_email_code_use,
    .api_usage_insert = pe_mg_api_usage_insert,
    .api_usage_purge = pe_mg_api_usage_purge,
    .api_usage_sum = pe_mg_api_usage_sum,
    .api_usage_get = pe_mg_api_usage_get,
};
