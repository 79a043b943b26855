/*
 * pe_store_mongo_int.h: what the MongoDB backend's files share (not a public header).
 *
 * Documents keep the SQL schema's column names as fields (conf/schema/sqlite3.sql), times as int64
 * microseconds and flags as int32 0/1; every _id is an ObjectId (24 hex): the store's own ids
 * are 24 hex already, and a natural key (an e-mail, an r_type, a request id) becomes an _id by
 * pe_mg_derived_oid(). The natural key is kept in a field of its own.
 */
#ifndef PE_STORE_MONGO_INT_H
#define PE_STORE_MONGO_INT_H

#include <mongoc/mongoc.h>

#include "pe_store.h"
#include "pe_store_mongo.h"

#include "pe_store_backend.h"

/* Collections. */
#define PE_MC_USERS "pe_users"
#define PE_MC_CLAIMS "pe_claims"
#define PE_MC_SESSIONS "pe_sessions"
#define PE_MC_DELETED "pe_deleted_users"
#define PE_MC_EVENTS "pe_security_events"
#define PE_MC_MSGLOGS "pe_message_logs"
#define PE_MC_BLOCKED "pe_blocked_ips"
#define PE_MC_WHITELIST "pe_ip_whitelist"
#define PE_MC_PROMPTS "pe_system_prompts"
#define PE_MC_COUNTERS "pe_counters"
#define PE_MC_SCHEMA "pe_schema_version"
#define PE_MC_STAFF "pe_staff"
#define PE_MC_API_USAGE "pe_api_usage"

/** One store handle's connection: a client borrowed from the process's pool. */
typedef struct pe_mgconn_t {
    pe_mongo_t *m;
    mongoc_client_t *client;
    apr_pool_t *pool;
    uint32_t last_domain;    /* of the last failure (bson_error_t.domain) */
} pe_mgconn_t;

/* find-and-modify flags */
#define PE_MG_RETURN_NEW 1
#define PE_MG_UPSERT 2
#define PE_MG_REMOVE 4

/** The handle's collection `name` (destroyed with the handle's pool). */
mongoc_collection_t *pe_mg_coll(pe_store_t *st, const char *name);

/** A backend failure: the error is kept on st, logged once with the operation's name; EIO. */
pe_store_status_e pe_mg_fail(pe_store_t *st, const char *op, const bson_error_t *err);

/** True when err is a duplicate-key error (E11000). */
int pe_mg_is_dup(const bson_error_t *err);

/** Append an ObjectId from 24 hex characters; 0 when hex is not one (nothing appended). */
int pe_mg_append_oid(bson_t *b, const char *key, const char *hex);

/** The ObjectId derived from (kind, value): the first 12 bytes of SHA-256("kind\0value"). */
void pe_mg_derived_oid(bson_oid_t *oid, const char *kind, const char *value);

/** Document readers (NULL/0 when the field is missing or of another type). */
const char *pe_mg_str(apr_pool_t *p, const bson_t *doc, const char *key);
apr_int64_t pe_mg_i64(const bson_t *doc, const char *key);
/** The _id as 24 hex (NULL when it is not an ObjectId). */
const char *pe_mg_id(apr_pool_t *p, const bson_t *doc);

/** Keep a document until the handle's pool is cleaned up. */
bson_t *pe_mg_keep(pe_store_t *st, bson_t *doc);

/**
 * findAndModify on one collection.
 * @param fields projection (NULL: the whole document)
 * @param out the document before (or, with PE_MG_RETURN_NEW, after) the change; NULL to ignore
 * @return PE_STORE_OK, PE_STORE_NOTFOUND (nothing matched), PE_STORE_CONFLICT (duplicate key,
 *         not logged: the caller names the field) or PE_STORE_EIO
 */
pe_store_status_e pe_mg_fam(pe_store_t *st, const char *coll, const bson_t *filter, const bson_t *update,
                            const bson_t *fields, int flags, const bson_t **out);

/** update_one; *matched gets the number of matched documents (0 or 1). */
pe_store_status_e pe_mg_update_one(pe_store_t *st, const char *coll, const bson_t *filter, const bson_t *update,
                                   int upsert, long *matched);

/** insert_one; a duplicate key is PE_STORE_CONFLICT (not logged). */
pe_store_status_e pe_mg_insert(pe_store_t *st, const char *coll, const bson_t *doc);

/** delete_one / delete_many; *deleted gets the count (may be NULL). */
pe_store_status_e pe_mg_delete(pe_store_t *st, const char *coll, const bson_t *filter, int many, long *deleted);

/** find_one: the first match (sorted by sort when not NULL), or PE_STORE_NOTFOUND. */
pe_store_status_e pe_mg_find_one(pe_store_t *st, const char *coll, const bson_t *filter, const bson_t *fields,
                                 const bson_t **out);

/** Insert k documents unordered and destroy them; those whose _id exists are skipped (a batch written again). */
pe_store_status_e pe_mg_insert_new(pe_store_t *st, const char *coll, bson_t **docs, int k);

/** count_documents. */
pe_store_status_e pe_mg_count(pe_store_t *st, const char *coll, const bson_t *filter, long *count);

/* The operations, by file (pe_store_mongo_users.c, pe_store_mongo_misc.c). */
pe_store_status_e pe_mg_user_create(pe_store_t *st, const pe_user_t *u);
pe_store_status_e pe_mg_user_by_id(pe_store_t *st, const char *id, pe_user_t **out);
pe_store_status_e pe_mg_user_by_email(pe_store_t *st, const char *email, pe_user_t **out);
pe_store_status_e pe_mg_user_by_key_digest(pe_store_t *st, const char *digest, pe_user_t **out);
pe_store_status_e pe_mg_user_update_profile(pe_store_t *st, const char *id, const char *name, const char *about_me,
                                            const char *hobbies, apr_time_t now);
pe_store_status_e pe_mg_user_set_api_key(pe_store_t *st, const char *id, const char *digest, const char *prefix,
                                         const char *enc, apr_time_t now);
pe_store_status_e pe_mg_user_set_email(pe_store_t *st, const char *id, const char *email, int is_verified,
                                       apr_time_t now);
pe_store_status_e pe_mg_user_set_password(pe_store_t *st, const char *id, const char *hash, apr_time_t now);
pe_store_status_e pe_mg_user_login_reserve(pe_store_t *st, const char *id, apr_time_t now, int max, apr_time_t lock,
                                           int *attempt, apr_time_t *locked_until);
pe_store_status_e pe_mg_user_login_ok(pe_store_t *st, const char *id, apr_time_t now);
pe_store_status_e pe_mg_user_delete(pe_store_t *st, const pe_user_t *u, const char *reason, const char *deleted_by,
                                    apr_time_t now);
pe_store_status_e pe_mg_credits_take(pe_store_t *st, const char *user_id, apr_int64_t today, apr_time_t now);
pe_store_status_e pe_mg_credits_refund(pe_store_t *st, const char *user_id, apr_int64_t day);
pe_store_status_e pe_mg_credits_get(pe_store_t *st, const char *user_id, apr_int64_t today, apr_int64_t *limit,
                                    apr_int64_t *reset);
pe_store_status_e pe_mg_credits_take_n(pe_store_t *st, const char *user_id, apr_int64_t n, apr_int64_t today,
                                       apr_time_t now);
pe_store_status_e pe_mg_credits_refund_n(pe_store_t *st, const char *user_id, apr_int64_t n, apr_int64_t day);

pe_store_status_e pe_mg_session_create(pe_store_t *st, const pe_session_t *s);
pe_store_status_e pe_mg_session_by_token(pe_store_t *st, const char *digest, apr_time_t now, pe_session_t **out);
pe_store_status_e pe_mg_session_rotate(pe_store_t *st, const char *refresh_digest, const char *new_token_digest,
                                       const char *new_refresh_digest, apr_time_t expires_at,
                                       apr_time_t refresh_expires_at, apr_time_t now, pe_session_t **out);
pe_store_status_e pe_mg_session_delete(pe_store_t *st, const char *token_digest);
pe_store_status_e pe_mg_session_delete_all(pe_store_t *st, pe_principal_kind_e kind, const char *principal_id,
                                           const char *keep_id);
pe_store_status_e pe_mg_event(pe_store_t *st, const char *event_type, pe_principal_kind_e kind,
                              const char *principal_id, const char *username, const char *ip, const json_t *details,
                              const char *severity, apr_time_t now);
pe_store_status_e pe_mg_event_count(pe_store_t *st, const char *event_type, const char *principal_id, long *count);
pe_store_status_e pe_mg_msglog_insert(pe_store_t *st, const pe_message_log_t *recs, int n);
pe_store_status_e pe_mg_msglog_count(pe_store_t *st, const char *user_id, long *count);
pe_store_status_e pe_mg_system_prompt_get(pe_store_t *st, const char *r_type, const char **prompt);
pe_store_status_e pe_mg_system_prompt_set(pe_store_t *st, const char *r_type, const char *prompt,
                                          const char *updated_by, apr_time_t now);
pe_store_status_e pe_mg_iplist_active(pe_store_t *st, pe_iplist_e which, apr_time_t now, apr_array_header_t **out);
pe_store_status_e pe_mg_iplist_add(pe_store_t *st, pe_iplist_e which, const pe_ipentry_t *e);
pe_store_status_e pe_mg_iplist_remove(pe_store_t *st, pe_iplist_e which, apr_int64_t id);
pe_store_status_e pe_mg_staff_create(pe_store_t *st, const pe_staff_t *s);
pe_store_status_e pe_mg_staff_by_id(pe_store_t *st, pe_principal_kind_e kind, const char *id, pe_staff_t **out);
pe_store_status_e pe_mg_staff_by_username(pe_store_t *st, pe_principal_kind_e kind, const char *username,
                                          pe_staff_t **out);
pe_store_status_e pe_mg_staff_list(pe_store_t *st, pe_principal_kind_e kind, apr_array_header_t **out);
pe_store_status_e pe_mg_staff_set_password(pe_store_t *st, pe_principal_kind_e kind, const char *id,
                                           const char *hash, apr_time_t now);
pe_store_status_e pe_mg_staff_login_reserve(pe_store_t *st, pe_principal_kind_e kind, const char *id, apr_time_t now,
                                            int max, apr_time_t lock, int *attempt, apr_time_t *locked_until);
pe_store_status_e pe_mg_staff_set_active(pe_store_t *st, pe_principal_kind_e kind, const char *id, int active,
                                         apr_time_t now);
pe_store_status_e pe_mg_staff_delete(pe_store_t *st, pe_principal_kind_e kind, const char *id);
pe_store_status_e pe_mg_staff_login_ok(pe_store_t *st, pe_principal_kind_e kind, const char *id, apr_time_t now);
pe_store_status_e pe_mg_user_update(pe_store_t *st, const char *id, const pe_user_change_t *ch, apr_time_t now);
pe_store_status_e pe_mg_user_list(pe_store_t *st, const pe_user_query_t *q, apr_array_header_t **out, long *total);
pe_store_status_e pe_mg_event_list(pe_store_t *st, const char *event_type, const char *severity,
                                   const char *principal_id, long offset, long limit, apr_array_header_t **out,
                                   long *total);
pe_store_status_e pe_mg_msglog_list(pe_store_t *st, const char *user_id, long offset, long limit,
                                    apr_array_header_t **out, long *total);
/** A user document as a user (pe_store_mongo_users.c). */
pe_user_t *pe_mg_user_from_doc(apr_pool_t *p, const bson_t *d);
/**
 * Claim the unique value (field, value) for owner_id, a document of collection `owners` (by
 * _id; a claim whose owner is gone is taken over after a while). `name` is what a conflict names.
 * @param own_ok a claim owner_id holds already counts as taken by it
 */
pe_store_status_e pe_mg_claim_take(pe_store_t *st, const char *owners, const char *field, const char *name,
                                   const char *value, const char *owner_id, int own_ok);
/** Give up owner_id's claim of (field, value). */
void pe_mg_claim_release(pe_store_t *st, const char *field, const char *value, const char *owner_id);
/**
 * Reserve a password check of the account `who` (a filter) in coll: pe_store_user_login_reserve's
 * semantics, for users and operators.
 */
pe_store_status_e pe_mg_login_reserve(pe_store_t *st, const char *coll, const bson_t *who, apr_time_t now, int max,
                                      apr_time_t lock, int *attempt, apr_time_t *locked_until);
pe_store_status_e pe_mg_system_prompt_reset(pe_store_t *st, const char *r_type);
pe_store_status_e pe_mg_msglog_usage(pe_store_t *st, apr_time_t since, long *requests, apr_int64_t *tokens);
pe_store_status_e pe_mg_msglog_top_users(pe_store_t *st, apr_time_t since, int limit, apr_array_header_t **out);

/* pe_store_mongo_monitor.c */
pe_store_status_e pe_mg_ping(pe_store_t *st);
pe_store_status_e pe_mg_usage(pe_store_t *st, const char *user_id, apr_time_t since, apr_time_t until, pe_usage_t *out);
pe_store_status_e pe_mg_email_send_take(pe_store_t *st, const char *user_id, apr_int64_t day, int limit,
                                        int *sends);
pe_store_status_e pe_mg_email_send_release(pe_store_t *st, const char *user_id, apr_int64_t day);
pe_store_status_e pe_mg_email_code_set(pe_store_t *st, const char *user_id, const char *digest,
                                       apr_time_t expires_at);
pe_store_status_e pe_mg_email_code_attempt(pe_store_t *st, const char *user_id, apr_time_t now, int max,
                                           const char **digest, int *attempts);
pe_store_status_e pe_mg_email_code_use(pe_store_t *st, const char *user_id, const char *email, const char *digest,
                                       apr_time_t now);

/* API-usage records (pe_store_mongo_apiusage.c) */
pe_store_status_e pe_mg_api_usage_insert(pe_store_t *st, const pe_api_usage_t *recs, int n);
pe_store_status_e pe_mg_api_usage_purge(pe_store_t *st, apr_time_t before, int limit, long *removed);
pe_store_status_e pe_mg_api_usage_sum(pe_store_t *st, const char *user_id, apr_time_t since, apr_time_t until,
                                      pe_api_usage_sum_t *out);
pe_store_status_e pe_mg_api_usage_get(pe_store_t *st, const char *request_id, pe_api_usage_t **out);

#endif
