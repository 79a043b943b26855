/*
 * test_store_mongo.c: what only the MongoDB backend has (the conformance suite, test_store.c,
 * runs every store operation on it too): uniqueness claims, their stale take-over, the layout
 * version stepped once, a server that is down, and the unique secondary indexes, which only a
 * real server enforces.
 *
 * Needs PE_TEST_MONGODB_URI (mongodb://host:port/; make test starts the stand-in with
 * tests/unit/with-stores.py and sets PE_TEST_MONGODB_STANDIN=1). Without it every test returns at
 * once and says why on stderr. Each test works in a database of its own.
 */
#include "pe_store_mongo.h"
#include "pe_store_backend.h"
#include "pe_test.h"
#include "pe_test_usage.h"
#include "pe_test_mongo.h"

#include <arpa/inet.h>
#include <mongoc/mongoc.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <string.h>
#include <sys/socket.h>
#include <apr_strings.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

static pe_store_t *mg_store(void)
{
    pe_store_t *st;
    int applied = -1;

    mg_fresh();
    st = mg_open(pe_tp);
    ck_assert_msg(pe_store_schema_apply(st, &applied) == PE_STORE_OK, "schema: %s", pe_store_error(st));
    ck_assert_int_eq(applied, pe_store_mongo_schema_version());
    return st;
}

/* A user with these unique values. */
static pe_user_t *mk_user(const char *username, const char *email)
{
    pe_user_t *u = apr_pcalloc(pe_tp, sizeof(*u));

    u->id = pe_store_new_id(pe_tp);
    u->username = username;
    u->name = "Test";
    u->email = email;
    u->password_hash = "x";
    u->api_key_digest = apr_pstrcat(pe_tp, "digest-", u->id, NULL);
    u->api_key_prefix = "pe-abc";
    u->api_key_enc = "enc";
    u->is_active = 1;
    u->conv_limit = u->conv_reset = 10;
    return u;
}

/* Documents of a collection matching a JSON filter (read straight from the server). */
static long mg_count(const char *coll, const char *json)
{
    mongoc_client_t *c = mongoc_client_new(mg_uri(pe_tp));
    mongoc_collection_t *col = mongoc_client_get_collection(c, mg_db, coll);
    bson_t *f = bson_new_from_json((const uint8_t *)json, -1, NULL);
    bson_error_t err;
    int64_t n;

    ck_assert_ptr_nonnull(f);
    n = mongoc_collection_count_documents(col, f, NULL, NULL, NULL, &err);
    ck_assert_msg(n >= 0, "count %s: %s", coll, err.message);
    bson_destroy(f);
    mongoc_collection_destroy(col);
    mongoc_client_destroy(c);
    return (long)n;
}

/* Insert a raw document (extended JSON). */
static void mg_insert(const char *coll, bson_t *doc)
{
    mongoc_client_t *c = mongoc_client_new(mg_uri(pe_tp));
    mongoc_collection_t *col = mongoc_client_get_collection(c, mg_db, coll);
    bson_error_t err;

    ck_assert_msg(mongoc_collection_insert_one(col, doc, NULL, NULL, &err), "insert %s: %s", coll, err.message);
    mongoc_collection_destroy(col);
    mongoc_client_destroy(c);
}

/* Every claim made `age` older. */
static void mg_age_claims(apr_interval_time_t age)
{
    mongoc_client_t *c = mongoc_client_new(mg_uri(pe_tp));
    mongoc_collection_t *col = mongoc_client_get_collection(c, mg_db, "pe_claims");
    bson_t *f = bson_new(), *up = BCON_NEW("$set", "{", "created_at", BCON_INT64(apr_time_now() - age), "}");
    bson_error_t err;

    ck_assert_msg(mongoc_collection_update_many(col, f, up, NULL, NULL, &err), "age claims: %s", err.message);
    bson_destroy(f);
    bson_destroy(up);
    mongoc_collection_destroy(col);
    mongoc_client_destroy(c);
}

/* The claim _id of (field, value): SHA-256(field NUL value), first 12 bytes. */
static void claim_oid(bson_oid_t *oid, const char *field, const char *value)
{
    unsigned char md[32];
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();

    EVP_DigestInit_ex(ctx, EVP_sha256(), NULL);
    EVP_DigestUpdate(ctx, field, strlen(field) + 1);
    EVP_DigestUpdate(ctx, value, strlen(value));
    EVP_DigestFinal_ex(ctx, md, NULL);
    EVP_MD_CTX_free(ctx);
    memcpy(oid->bytes, md, 12);
}

START_TEST(mongodb_claims_refuse_and_leave_nothing)
{
    pe_store_t *st;
    pe_user_t *a, *b;

    if (mg_skip("mongodb_claims_refuse_and_leave_nothing"))
        return;
    st = mg_store();
    a = mk_user("alice", "alice@example.com");
    ck_assert_int_eq(pe_store_user_create(st, a), PE_STORE_OK);
    ck_assert_int_eq(mg_count("pe_claims", "{\"user_id\": {\"$exists\": true}}"), 3);
    b = mk_user("alice", "bob@example.com");
    ck_assert_int_eq(pe_store_user_create(st, b), PE_STORE_CONFLICT);
    ck_assert_str_eq(pe_store_conflict(st), "username");
    b = mk_user("bob", "alice@example.com");
    ck_assert_int_eq(pe_store_user_create(st, b), PE_STORE_CONFLICT);
    ck_assert_str_eq(pe_store_conflict(st), "email");
    /* the refused user took back its username claim: nothing of it is stored */
    ck_assert_int_eq(mg_count("pe_claims", apr_psprintf(pe_tp, "{\"user_id\": \"%s\"}", b->id)), 0);
    ck_assert_int_eq(mg_count("pe_users", "{}"), 1);
    /* usernames are case-sensitive, as on SQL */
    ck_assert_int_eq(pe_store_user_create(st, mk_user("Alice", "alice2@example.com")), PE_STORE_OK);
}
END_TEST

START_TEST(mongodb_email_change_moves_the_claim)
{
    pe_store_t *st;
    pe_user_t *a, *b;

    if (mg_skip("mongodb_email_change_moves_the_claim"))
        return;
    st = mg_store();
    a = mk_user("carol", "carol@example.com");
    b = mk_user("dave", "dave@example.com");
    ck_assert_int_eq(pe_store_user_create(st, a), PE_STORE_OK);
    ck_assert_int_eq(pe_store_user_create(st, b), PE_STORE_OK);
    ck_assert_int_eq(pe_store_user_set_email(st, a->id, "dave@example.com", 0, 1), PE_STORE_CONFLICT);
    ck_assert_str_eq(pe_store_conflict(st), "email");
    ck_assert_int_eq(pe_store_user_set_email(st, a->id, "carol.new@example.com", 0, 1), PE_STORE_OK);
    /* the old address is free, the new one taken */
    ck_assert_int_eq(pe_store_user_create(st, mk_user("erin", "carol@example.com")), PE_STORE_OK);
    ck_assert_int_eq(pe_store_user_create(st, mk_user("frank", "carol.new@example.com")), PE_STORE_CONFLICT);
    /* setting the same address again is no conflict with oneself */
    ck_assert_int_eq(pe_store_user_set_email(st, a->id, "carol.new@example.com", 1, 2), PE_STORE_OK);
    /* a new API key moves its claim the same way */
    ck_assert_int_eq(pe_store_user_set_api_key(st, a->id, b->api_key_digest, "pe-x", "e", 3), PE_STORE_CONFLICT);
    ck_assert_str_eq(pe_store_conflict(st), "api_key");
    ck_assert_int_eq(pe_store_user_set_api_key(st, a->id, "digest-new", "pe-x", "e", 3), PE_STORE_OK);
    ck_assert_int_eq(mg_count("pe_claims", apr_psprintf(pe_tp, "{\"user_id\": \"%s\"}", a->id)), 3);
}
END_TEST

START_TEST(mongodb_stale_claim_is_taken_over)
{
    pe_store_t *st;
    bson_oid_t oid;
    bson_t *d;
    const char *ghost = "0123456789abcdef01234567";

    if (mg_skip("mongodb_stale_claim_is_taken_over"))
        return;
    st = mg_store();
    /* a claim left by a registration that stopped before its user, two minutes ago */
    claim_oid(&oid, "email", "gone@example.com");
    d = BCON_NEW("_id", BCON_OID(&oid), "field", "email", "value", "gone@example.com", "user_id", BCON_UTF8(ghost),
                 "created_at", BCON_INT64(apr_time_now() - apr_time_from_sec(120)));
    mg_insert("pe_claims", d);
    bson_destroy(d);
    /* one that is being registered right now is respected */
    claim_oid(&oid, "email", "busy@example.com");
    d = BCON_NEW("_id", BCON_OID(&oid), "field", "email", "value", "busy@example.com", "user_id", BCON_UTF8(ghost),
                 "created_at", BCON_INT64(apr_time_now()));
    mg_insert("pe_claims", d);
    bson_destroy(d);
    ck_assert_int_eq(pe_store_user_create(st, mk_user("gina", "gone@example.com")), PE_STORE_OK);
    ck_assert_int_eq(pe_store_user_create(st, mk_user("hank", "busy@example.com")), PE_STORE_CONFLICT);
    ck_assert_str_eq(pe_store_conflict(st), "email");
    /* an e-mail change that stopped before it gave the old address back: its user exists but
     * holds another address, so the old claim is stale too */
    {
        pe_user_t *ivy = mk_user("ivy", "ivy.new@example.com");

        ck_assert_int_eq(pe_store_user_create(st, ivy), PE_STORE_OK);
        claim_oid(&oid, "email", "ivy.old@example.com");
        d = BCON_NEW("_id", BCON_OID(&oid), "field", "email", "value", "ivy.old@example.com", "user_id",
                     BCON_UTF8(ivy->id), "created_at", BCON_INT64(apr_time_now() - apr_time_from_sec(120)));
        mg_insert("pe_claims", d);
        bson_destroy(d);
        ck_assert_int_eq(pe_store_user_create(st, mk_user("jack", "ivy.old@example.com")), PE_STORE_OK);
        /* and an old claim of a value its user still holds stays */
        mg_age_claims(apr_time_from_sec(120));
        ck_assert_int_eq(pe_store_user_create(st, mk_user("kim", "ivy.new@example.com")), PE_STORE_CONFLICT);
    }
}
END_TEST

START_TEST(mongodb_delete_frees_the_values)
{
    pe_store_t *st;
    pe_user_t *a, *got = NULL;

    if (mg_skip("mongodb_delete_frees_the_values"))
        return;
    st = mg_store();
    a = mk_user("ivan", "ivan@example.com");
    ck_assert_int_eq(pe_store_user_create(st, a), PE_STORE_OK);
    ck_assert_int_eq(pe_store_user_delete(st, a, "test", "unit", 5), PE_STORE_OK);
    ck_assert_int_eq(mg_count("pe_claims", "{}"), 0);
    ck_assert_int_eq(mg_count("pe_deleted_users", apr_psprintf(pe_tp, "{\"original_user_id\": \"%s\"}", a->id)), 1);
    ck_assert_int_eq(pe_store_user_by_id(st, a->id, &got), PE_STORE_NOTFOUND);
    ck_assert_int_eq(pe_store_user_delete(st, a, "again", "unit", 6), PE_STORE_NOTFOUND); /* archived once */
    ck_assert_int_eq(pe_store_user_create(st, mk_user("ivan", "ivan@example.com")), PE_STORE_OK);
}
END_TEST

/* Processes starting together on a fresh database: each version is stepped exactly once. */
START_TEST(mongodb_layout_version_stepped_once)
{
    enum { N = 4 };
    int fds[2], i, total = 0, status;
    pid_t pids[N];
    char go = 'g';

    if (mg_skip("mongodb_layout_version_stepped_once"))
        return;
    mg_fresh();
    ck_assert_int_eq(pipe(fds), 0);
    for (i = 0; i < N; i++) {
        pids[i] = fork();
        ck_assert_int_ge(pids[i], 0);
        if (pids[i] == 0) {
            apr_pool_t *p;
            pe_store_t *st;
            int applied = 0;
            char c;

            close(fds[1]);
            apr_pool_create(&p, NULL);
            st = mg_open(p);
            if (read(fds[0], &c, 1) != 1)
                _exit(100);
            _exit(pe_store_schema_apply(st, &applied) == PE_STORE_OK ? applied : 101);
        }
    }
    close(fds[0]);
    for (i = 0; i < N; i++)
        ck_assert_int_eq(write(fds[1], &go, 1), 1);
    close(fds[1]);
    for (i = 0; i < N; i++) {
        ck_assert_int_eq(waitpid(pids[i], &status, 0), pids[i]);
        ck_assert(WIFEXITED(status));
        ck_assert_int_lt(WEXITSTATUS(status), 100);
        total += WEXITSTATUS(status);
    }
    ck_assert_int_eq(total, pe_store_mongo_schema_version());
    ck_assert_int_eq(mg_count("pe_schema_version", apr_psprintf(pe_tp, "{\"version\": %d}",
                                                                pe_store_mongo_schema_version())), 1);
}
END_TEST

/* A server that does not answer: EIO naming server selection (no hang, no second wait). */
START_TEST(mongodb_server_down_is_eio)
{
    pe_mongo_t *m;
    pe_store_t *st;
    pe_user_t *u = NULL;
    const char *err = NULL;
    int s;
    struct sockaddr_in a = {0};
    socklen_t len = sizeof(a);

    if (mg_skip("mongodb_server_down_is_eio"))
        return;
    /* a loopback port nobody listens on: bound, never listened to */
    s = socket(AF_INET, SOCK_STREAM, 0);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_int_eq(bind(s, (struct sockaddr *)&a, sizeof(a)), 0);
    ck_assert_int_eq(getsockname(s, (struct sockaddr *)&a, &len), 0);
    mongoc_init();
    m = pe_mongo_create(pe_tp,
                        apr_psprintf(pe_tp, "mongodb://127.0.0.1:%d/pe?serverSelectionTimeoutMS=300",
                                     ntohs(a.sin_port)), 0, &err);
    ck_assert_ptr_nonnull(m);
    st = pe_store_mongo_make(pe_tp, m);
    ck_assert_int_eq(pe_store_user_by_id(st, "0123456789abcdef01234567", &u), PE_STORE_EIO);
    ck_assert_ptr_nonnull(strstr(pe_store_error(st), "pe_users"));
    close(s);
}
END_TEST

START_TEST(mongodb_ping_and_usage)
{
    if (mg_skip("mongodb_ping_and_usage"))
        return;
    pe_check_ping_and_usage(mg_store());
}
END_TEST

START_TEST(mongodb_api_usage)
{
    if (mg_skip("mongodb_api_usage"))
        return;
    pe_check_api_usage(mg_store());
}
END_TEST

START_TEST(mongodb_unique_secondary_index_needs_real_server)
{
    pe_store_t *st;
    pe_session_t s = {0};

    if (mg_skip_standin("mongodb_unique_secondary_index_needs_real_server",
                        "accepts unique secondary indexes without enforcing them"))
        return;
    st = mg_store();
    s.id = pe_store_new_id(pe_tp);
    s.kind = PE_PRINCIPAL_USER;
    s.principal_id = "0123456789abcdef01234567";
    s.token_digest = "same-token";
    s.refresh_digest = "refresh-1";
    s.expires_at = s.refresh_expires_at = apr_time_now() + apr_time_from_sec(60);
    ck_assert_int_eq(pe_store_session_create(st, &s), PE_STORE_OK);
    s.id = pe_store_new_id(pe_tp);
    s.refresh_digest = "refresh-2";
    ck_assert_int_eq(pe_store_session_create(st, &s), PE_STORE_CONFLICT);
}
END_TEST

Suite *pe_suite_store_mongo(void)
{
    Suite *s = suite_create("store_mongo");
    TCase *tc = pe_tcase("mongodb");

    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, mongodb_claims_refuse_and_leave_nothing);
    tcase_add_test(tc, mongodb_email_change_moves_the_claim);
    tcase_add_test(tc, mongodb_stale_claim_is_taken_over);
    tcase_add_test(tc, mongodb_delete_frees_the_values);
    tcase_add_test(tc, mongodb_layout_version_stepped_once);
    tcase_add_test(tc, mongodb_server_down_is_eio);
    tcase_add_test(tc, mongodb_unique_secondary_index_needs_real_server);
    tcase_add_test(tc, mongodb_ping_and_usage);
    tcase_add_test(tc, mongodb_api_usage);
    suite_add_tcase(s, tc);
    return s;
}
