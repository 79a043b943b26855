/*
 * test_store.c: the store's conformance suite. The same tests run on every backend available
 * here (a check loop test per backend: iteration i is pe_backends_here[i], listed on stderr):
 *  - sqlite3 always (a file per test);
 *  - pgsql when PE_TEST_PG_PARAMS holds apr_dbd_pgsql parameters of an empty database (make
 *    test starts a private cluster: tests/unit/with-stores.py);
 *  - mongodb when PE_TEST_MONGODB_URI names a server (a database per test; make test starts the
 *    stand-in: tests/unit/with-stores.py, pe_test_mongo.h);
 * A backend is one entry of pe_backends[]: when it is not tested here, how to empty its database
 * and how to open a handle on a connection of its own (the concurrency tests open one per
 * process). The backend's name must be what pe_store_backend_name() says of its handles.
 */
#include "pe_json.h"
#include "pe_logno.h"
#include "pe_store_dbd.h"
#include "pe_test.h"
#include "pe_test_mongo.h"
#include "pe_test_usage.h"

#include <apr_strings.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

typedef struct pe_backend_t {
    const char *name;
    /** Why this backend is not tested here (NULL: it is). */
    const char *(*skip)(void);
    /** An empty database for the next test (runs in the test's process, before open). */
    void (*fresh)(void);
    /** A handle on a connection of its own, closed when p is destroyed; NULL on failure. */
    pe_store_t *(*open)(apr_pool_t *p);
} pe_backend_t;

/* ----------------------------------------------------------------------------------------- */
/* dbd connections (SQLite, PostgreSQL) */

/* A dbd handle on a new connection of driver to params, closed with p. */
static pe_store_t *dbd_open(apr_pool_t *p, const char *driver, const char *params)
{
    const apr_dbd_driver_t *drv;
    apr_dbd_t *h = pe_test_dbd_open(p, driver, params, &drv);

    return h ? pe_store_dbd_make(p, drv, h, apr_hash_make(p), p) : NULL;
}

static char sqlite_path[96];

static const char *sqlite_skip(void)
{
    return NULL;
}

static void sqlite_fresh(void)
{
    static const char *const ext[] = {"", "-wal", "-shm"};
    int i;

    snprintf(sqlite_path, sizeof(sqlite_path), "/tmp/pe-unit-store-%d.db", (int)getpid());
    for (i = 0; i < 3; i++)
        unlink(apr_pstrcat(pe_tp, sqlite_path, ext[i], NULL));
}

static pe_store_t *sqlite_open(apr_pool_t *p)
{
    return dbd_open(p, "sqlite3", sqlite_path);
}

static const char *pg_skip(void)
{
    const char *params = getenv("PE_TEST_PG_PARAMS");

    return params && *params ? NULL : "PE_TEST_PG_PARAMS is not set";
}

static pe_store_t *pg_open(apr_pool_t *p)
{
    return dbd_open(p, "pgsql", getenv("PE_TEST_PG_PARAMS"));
}

/* Every table dropped: the schema is applied again by the test. */
static void pg_fresh(void)
{
    apr_pool_t *p;
    const apr_dbd_driver_t *drv;
    apr_dbd_t *h;
    int n;

    apr_pool_create(&p, NULL);
    h = pe_test_dbd_open(p, "pgsql", getenv("PE_TEST_PG_PARAMS"), &drv);
    ck_assert_msg(h != NULL, "no PostgreSQL at PE_TEST_PG_PARAMS");
    ck_assert_int_eq(apr_dbd_query(drv, h, &n, "DROP SCHEMA IF EXISTS public CASCADE"), 0);
    ck_assert_int_eq(apr_dbd_query(drv, h, &n, "CREATE SCHEMA public"), 0);
    apr_pool_destroy(p);
}

/* The backends; a new one is one entry. */
static const pe_backend_t pe_backends[] = {
    {"sqlite3", sqlite_skip, sqlite_fresh, sqlite_open},
    {"pgsql", pg_skip, pg_fresh, pg_open},
    {"mongodb", mg_why_not, mg_fresh, mg_open},
};
#define PE_NBACKENDS ((int)(sizeof(pe_backends) / sizeof(pe_backends[0])))

/* The backends tested in this run, by loop index. */
static const pe_backend_t *pe_backends_here[PE_NBACKENDS];
static int pe_nbackends_here;

/* An empty database of backend i with the schema, and a handle on it. */
static pe_store_t *open_store(int i)
{
    const pe_backend_t *b = pe_backends_here[i];
    pe_store_t *st;
    int applied = -1;

    b->fresh();
    st = b->open(pe_tp);
    ck_assert_msg(st != NULL, "%s: no connection", b->name);
    ck_assert_msg(pe_store_schema_apply(st, &applied) == PE_STORE_OK, "%s: schema: %s", b->name, pe_store_error(st));
    ck_assert_int_ge(applied, 1);
    return st;
}

/* Another handle on backend i's database, as another process or thread would have. */
static pe_store_t *open_again(int i, apr_pool_t *p)
{
    pe_store_t *st = pe_backends_here[i]->open(p);

    ck_assert_ptr_nonnull(st);
    return st;
}

/* A token digest as the product stores them (64 hex digits), made from a short tag. */
static const char *dg(const char *tag)
{
    char *d = apr_pcalloc(pe_tp, 65);
    apr_size_t i, n = strlen(tag);

    for (i = 0; i < 32; i++) {
        unsigned char c = i < n ? (unsigned char)tag[i] : 0;

        d[2 * i] = "0123456789abcdef"[c >> 4];
        d[2 * i + 1] = "0123456789abcdef"[c & 15];
    }
    return d;
}

static pe_user_t *mkuser(const char *name, const char *email, const char *digest)
{
    pe_user_t *u = apr_pcalloc(pe_tp, sizeof(*u));
    apr_time_t now = apr_time_now();

    u->id = pe_store_new_id(pe_tp);
    u->username = name;
    u->name = "Test User";
    u->email = email;
    u->password_hash = "$argon2id$v=19$m=1024,t=1,p=1$c2FsdHNhbHQ$aGFzaA";
    u->user_type = "Personal";
    u->subscription_plan = "free";
    u->credits_main = 5;
    u->credits_reset = 5;
    u->conv_limit = 10;
    u->conv_reset = 10;
    u->access_rtype = "bpe,tot";
    u->level = "low";
    u->api_key_digest = digest;
    u->api_key_prefix = "pe-abc";
    u->api_key_enc = "v1.0.xxx";
    u->is_active = 1;
    u->created_at = u->updated_at = now;
    return u;
}

START_TEST(schema_idempotent)
{
    pe_store_t *st = open_store(_i);
    int applied = -1;

    ck_assert_int_eq(pe_store_schema_apply(st, &applied), PE_STORE_OK);
    ck_assert_int_eq(applied, 0);
}
END_TEST

START_TEST(user_create_find_conflicts)
{
    pe_store_t *st = open_store(_i);
    pe_user_t *u = mkuser("alice", "alice@example.com", "d1"), *got;

    ck_assert_int_eq(pe_store_user_create(st, u), PE_STORE_OK);
    ck_assert_int_eq(pe_store_user_by_email(st, "alice@example.com", &got), PE_STORE_OK);
    ck_assert_str_eq(got->id, u->id);
    ck_assert_str_eq(got->username, "alice");
    ck_assert_int_eq(got->conv_limit, 10);
    ck_assert_str_eq(got->access_rtype, "bpe,tot");
    ck_assert_int_eq(got->created_at, u->created_at);
    ck_assert_int_eq(pe_store_user_by_key_digest(st, "d1", &got), PE_STORE_OK);
    ck_assert_int_eq(pe_store_user_by_id(st, u->id, &got), PE_STORE_OK);
    ck_assert_int_eq(pe_store_user_by_email(st, "nobody@example.com", &got), PE_STORE_NOTFOUND);
    ck_assert_ptr_null(got);

    ck_assert_int_eq(pe_store_user_create(st, mkuser("alice", "other@example.com", "d2")), PE_STORE_CONFLICT);
    ck_assert_str_eq(pe_store_conflict(st), "username");
    ck_assert_int_eq(pe_store_user_create(st, mkuser("bob", "alice@example.com", "d3")), PE_STORE_CONFLICT);
    ck_assert_str_eq(pe_store_conflict(st), "email");
    ck_assert_int_eq(pe_store_user_create(st, mkuser("carol", "carol@example.com", "d1")), PE_STORE_CONFLICT);
    ck_assert_str_eq(pe_store_conflict(st), "api_key");
    /* usernames are case-sensitive (SPEC 6.1) */
    ck_assert_int_eq(pe_store_user_create(st, mkuser("Alice", "alice2@example.com", "d4")), PE_STORE_OK);
}
END_TEST

START_TEST(user_updates)
{
    pe_store_t *st = open_store(_i);
    pe_user_t *u = mkuser("dave", "dave@example.com", "k1"), *got;

    ck_assert_int_eq(pe_store_user_create(st, u), PE_STORE_OK);
    ck_assert_int_eq(pe_store_user_update_profile(st, u->id, NULL, "about", NULL, 5), PE_STORE_OK);
    pe_store_user_by_id(st, u->id, &got);
    ck_assert_str_eq(got->name, "Test User");
    ck_assert_str_eq(got->about_me, "about");
    ck_assert_int_eq(got->updated_at, 5);
    ck_assert_int_eq(pe_store_user_set_api_key(st, u->id, "k2", "pe-new", "enc2", 6), PE_STORE_OK);
    ck_assert_int_eq(pe_store_user_by_key_digest(st, "k1", &got), PE_STORE_NOTFOUND);
    ck_assert_int_eq(pe_store_user_by_key_digest(st, "k2", &got), PE_STORE_OK);
    ck_assert_str_eq(got->api_key_enc, "enc2");
    ck_assert_int_eq(pe_store_user_set_email(st, u->id, "dave2@example.com", 0, 7), PE_STORE_OK);
    ck_assert_int_eq(pe_store_user_by_email(st, "dave2@example.com", &got), PE_STORE_OK);
    ck_assert_int_eq(pe_store_user_update_profile(st, "nope", "x", NULL, NULL, 5), PE_STORE_NOTFOUND);
}
END_TEST

START_TEST(login_reserve_counts_first)
{
    pe_store_t *st = open_store(_i);
    pe_user_t *u = mkuser("fay", "fay@example.com", "f1");
    apr_time_t hour = apr_time_from_sec(3600), lu = -1;
    int attempt = -1, i;

    pe_store_user_create(st, u);
    /* attempts 1..4 are granted without a lock */
    for (i = 1; i <= 4; i++) {
        ck_assert_int_eq(pe_store_user_login_reserve(st, u->id, 1000, 5, hour, &attempt, &lu), PE_STORE_OK);
        ck_assert_int_eq(attempt, i);
        ck_assert_int_eq(lu, 0);
    }
    /* the 5th is granted and locks at once, before its password is checked */
    ck_assert_int_eq(pe_store_user_login_reserve(st, u->id, 1001, 5, hour, &attempt, &lu), PE_STORE_OK);
    ck_assert_int_eq(attempt, 5);
    ck_assert_int_eq(lu, 1001 + hour);
    /* every later one is refused while locked, and does not extend the lock */
    for (i = 0; i < 6; i++) {
        ck_assert_int_eq(pe_store_user_login_reserve(st, u->id, 2000, 5, hour, &attempt, &lu), PE_STORE_EMPTY);
        ck_assert_int_eq(lu, 1001 + hour);
    }
    pe_store_user_by_id(st, u->id, &u);
    ck_assert_int_eq(u->failed_logins, 5);
    ck_assert_int_eq(u->locked_until, 1001 + hour);
    /* after expiry the counter starts again at 1, with no lock */
    ck_assert_int_eq(pe_store_user_login_reserve(st, u->id, 1001 + hour, 5, hour, &attempt, &lu), PE_STORE_OK);
    ck_assert_int_eq(attempt, 1);
    ck_assert_int_eq(lu, 0);
    /* a success clears counter and lock and records the login; a max of 1 locks on the first attempt */
    ck_assert_int_eq(pe_store_user_login_ok(st, u->id, 9), PE_STORE_OK);
    pe_store_user_by_id(st, u->id, &u);
    ck_assert_int_eq(u->failed_logins, 0);
    ck_assert_int_eq(u->locked_until, 0);
    ck_assert_int_eq(u->last_login, 9);
    ck_assert_int_eq(u->last_activity, 9);
    ck_assert_int_eq(pe_store_user_login_reserve(st, u->id, 3000, 1, hour, &attempt, &lu), PE_STORE_OK);
    ck_assert_int_eq(attempt, 1);
    ck_assert_int_eq(lu, 3000 + hour);
    ck_assert_int_eq(pe_store_user_login_reserve(st, u->id, 3001, 1, hour, &attempt, &lu), PE_STORE_EMPTY);
    /* a lowered maximum below the counter: one more attempt, which locks */
    ck_assert_int_eq(pe_store_user_login_ok(st, u->id, 9), PE_STORE_OK);
    for (i = 1; i <= 3; i++)
        ck_assert_int_eq(pe_store_user_login_reserve(st, u->id, 4000, 10, hour, &attempt, &lu), PE_STORE_OK);
    ck_assert_int_eq(pe_store_user_login_reserve(st, u->id, 4000, 2, hour, &attempt, &lu), PE_STORE_OK);
    ck_assert_int_eq(attempt, 4);
    ck_assert_int_eq(lu, 4000 + hour);
    ck_assert_int_eq(pe_store_user_login_reserve(st, u->id, 4000, 2, hour, &attempt, &lu), PE_STORE_EMPTY);
    /* no such user */
    ck_assert_int_eq(pe_store_user_login_reserve(st, "000000000000000000000000", 4000, 5, hour, &attempt, &lu),
                     PE_STORE_NOTFOUND);
}
END_TEST

static pe_session_t *mksess(const char *uid, const char *td, const char *rd, apr_time_t exp)
{
    pe_session_t *s = apr_pcalloc(pe_tp, sizeof(*s));

    s->id = pe_store_new_id(pe_tp);
    s->kind = PE_PRINCIPAL_USER;
    s->principal_id = uid;
    s->token_digest = td;
    s->refresh_digest = rd;
    s->expires_at = exp;
    s->refresh_expires_at = exp * 2;
    s->created_at = s->last_used = 1;
    return s;
}

START_TEST(sessions)
{
    pe_store_t *st = open_store(_i);
    pe_session_t *s1 = mksess("u1", dg("t1"), dg("r1"), 100), *got;

    ck_assert_int_eq(pe_store_session_create(st, s1), PE_STORE_OK);
    ck_assert_int_eq(pe_store_session_create(st, mksess("u1", dg("t2"), dg("r2"), 100)), PE_STORE_OK);
    ck_assert_int_eq(pe_store_session_create(st, mksess("u2", dg("t3"), dg("r3"), 100)), PE_STORE_OK);
    ck_assert_int_eq(pe_store_session_by_token(st, dg("t1"), 50, &got), PE_STORE_OK);
    ck_assert_int_eq(got->kind, PE_PRINCIPAL_USER);
    ck_assert_str_eq(got->principal_id, "u1");
    ck_assert_int_eq(got->last_used, 50);
    ck_assert_int_eq(pe_store_session_by_token(st, dg("t1"), 100, &got), PE_STORE_NOTFOUND); /* expired */
    /* rotation: the first wins, the old refresh token is dead */
    ck_assert_int_eq(pe_store_session_rotate(st, dg("r1"), dg("t1b"), dg("r1b"), 300, 400, 60, &got), PE_STORE_OK);
    ck_assert_str_eq(got->token_digest, dg("t1b"));
    ck_assert_str_eq(got->id, s1->id);
    ck_assert_int_eq(pe_store_session_rotate(st, dg("r1"), dg("t1c"), dg("r1c"), 300, 400, 61, &got),
                     PE_STORE_NOTFOUND);
    ck_assert_int_eq(pe_store_session_by_token(st, dg("t1"), 61, &got), PE_STORE_NOTFOUND);
    ck_assert_int_eq(pe_store_session_by_token(st, dg("t1b"), 61, &got), PE_STORE_OK);
    /* expired refresh tokens do not rotate */
    ck_assert_int_eq(pe_store_session_rotate(st, dg("r2"), dg("x"), dg("y"), 1, 2, 1000, &got), PE_STORE_NOTFOUND);
    /* delete all but one, then logout */
    ck_assert_int_eq(pe_store_session_delete_all(st, PE_PRINCIPAL_USER, "u1", s1->id), PE_STORE_OK);
    ck_assert_int_eq(pe_store_session_by_token(st, dg("t2"), 61, &got), PE_STORE_NOTFOUND);
    ck_assert_int_eq(pe_store_session_by_token(st, dg("t3"), 61, &got), PE_STORE_OK);
    ck_assert_int_eq(pe_store_session_delete(st, dg("t1b")), PE_STORE_OK);
    ck_assert_int_eq(pe_store_session_delete(st, dg("t1b")), PE_STORE_NOTFOUND);
    /* an admin session for the same id is not a user session */
    got = mksess("u2", dg("t4"), dg("r4"), 100);
    got->kind = PE_PRINCIPAL_ADMIN;
    pe_store_session_create(st, got);
    ck_assert_int_eq(pe_store_session_delete_all(st, PE_PRINCIPAL_USER, "u2", NULL), PE_STORE_OK);
    ck_assert_int_eq(pe_store_session_by_token(st, dg("t4"), 61, &got), PE_STORE_OK);
    ck_assert_int_eq(got->kind, PE_PRINCIPAL_ADMIN);
}
END_TEST

START_TEST(delete_archives)
{
    pe_store_t *st = open_store(_i);
    pe_user_t *u = mkuser("frank", "frank@example.com", dg("f1")), *got;
    json_t *d = json_pack("{s:s}", "why", "test");
    long n = -1;

    pe_store_user_create(st, u);
    pe_store_session_create(st, mksess(u->id, dg("ft"), dg("fr"), 100));
    ck_assert_int_eq(pe_store_user_delete(st, u, "bye", "self", 77), PE_STORE_OK);
    ck_assert_int_eq(pe_store_user_by_id(st, u->id, &got), PE_STORE_NOTFOUND);
    ck_assert_int_eq(pe_store_session_by_token(st, dg("ft"), 1, (pe_session_t **)&got), PE_STORE_NOTFOUND);
    ck_assert_int_eq(pe_store_user_delete(st, u, "bye", "self", 78), PE_STORE_NOTFOUND); /* archived once */
    /* no such user: nothing is archived */
    got = mkuser("ghost", "ghost@example.com", "g0");
    ck_assert_int_eq(pe_store_user_delete(st, got, "bye", "self", 78), PE_STORE_NOTFOUND);
    ck_assert_int_eq(pe_store_user_delete(st, got, "bye", "self", 79), PE_STORE_NOTFOUND);
    ck_assert_int_eq(
        pe_store_event(st, "account_deleted", PE_PRINCIPAL_USER, u->id, "frank", "127.0.0.1", d, "info", 79),
        PE_STORE_OK);
    ck_assert_int_eq(pe_store_event_count(st, "account_deleted", u->id, &n), PE_STORE_OK);
    ck_assert_int_eq(n, 1);
    ck_assert_int_eq(pe_store_event_count(st, "account_deleted", "other", &n), PE_STORE_OK);
    ck_assert_int_eq(n, 0);
    json_decref(d);
}
END_TEST

START_TEST(system_prompts)
{
    pe_store_t *st = open_store(_i);
    const char *p = "x";

    ck_assert_int_eq(pe_store_system_prompt_get(st, "custom", &p), PE_STORE_NOTFOUND);
    ck_assert_ptr_null(p);
    ck_assert_int_eq(pe_store_system_prompt_set(st, "custom", "Be a pirate.", "admin", 5), PE_STORE_OK);
    ck_assert_int_eq(pe_store_system_prompt_get(st, "custom", &p), PE_STORE_OK);
    ck_assert_str_eq(p, "Be a pirate.");
    /* a transaction as the first operation of a connection */
    ck_assert_int_eq(pe_store_system_prompt_set(open_again(_i, pe_tp), "custom", "Be a poet.", "admin", 6), PE_STORE_OK);
    ck_assert_int_eq(pe_store_system_prompt_get(st, "custom", &p), PE_STORE_OK);
    ck_assert_str_eq(p, "Be a poet.");
    ck_assert_int_eq(pe_store_system_prompt_get(st, "bpe", &p), PE_STORE_NOTFOUND);
}
END_TEST

/* The access layer's lists: add, active entries (expiry, is_active), remove; both lists apart. */
START_TEST(ip_lists)
{
    pe_store_t *st = open_store(_i);
    pe_ipentry_t e = {0, "192.0.2.7", "abuse", "admin", 10, 0, 1};
    apr_array_header_t *rows;
    const pe_ipentry_t *got;

    ck_assert_int_eq(pe_store_iplist_add(st, PE_IPLIST_BLOCKED, &e), PE_STORE_OK);
    e.network = "10.0.0.0/8";
    e.note = "until 1000";
    e.expires_at = 1000;
    ck_assert_int_eq(pe_store_iplist_add(st, PE_IPLIST_BLOCKED, &e), PE_STORE_OK);
    e.network = "198.51.100.1";
    e.note = "off";
    e.expires_at = 0;
    e.is_active = 0;
    ck_assert_int_eq(pe_store_iplist_add(st, PE_IPLIST_BLOCKED, &e), PE_STORE_OK);
    e.network = "2001:db8::/32";
    e.note = "office";
    e.is_active = 1;
    ck_assert_int_eq(pe_store_iplist_add(st, PE_IPLIST_WHITELIST, &e), PE_STORE_OK);

    ck_assert_int_eq(pe_store_iplist_active(st, PE_IPLIST_BLOCKED, 999, &rows), PE_STORE_OK);
    ck_assert_int_eq(rows->nelts, 2); /* the switched-off entry is not read */
    got = &APR_ARRAY_IDX(rows, 0, pe_ipentry_t);
    ck_assert_str_eq(got->network, "192.0.2.7");
    ck_assert_str_eq(got->note, "abuse");
    ck_assert_str_eq(got->created_by, "admin");
    ck_assert_int_eq(got->created_at, 10);
    ck_assert_int_eq(got->expires_at, 0);
    ck_assert_int_eq(got->is_active, 1);
    ck_assert_int_eq(APR_ARRAY_IDX(rows, 1, pe_ipentry_t).expires_at, 1000);
    /* at its expiry the entry is no longer active */
    ck_assert_int_eq(pe_store_iplist_active(st, PE_IPLIST_BLOCKED, 1000, &rows), PE_STORE_OK);
    ck_assert_int_eq(rows->nelts, 1);

    ck_assert_int_eq(pe_store_iplist_active(st, PE_IPLIST_WHITELIST, 999, &rows), PE_STORE_OK);
    ck_assert_int_eq(rows->nelts, 1);
    got = &APR_ARRAY_IDX(rows, 0, pe_ipentry_t);
    ck_assert_str_eq(got->network, "2001:db8::/32");
    ck_assert_str_eq(got->note, "office");

    ck_assert_int_eq(pe_store_iplist_remove(st, PE_IPLIST_WHITELIST, got->id), PE_STORE_OK);
    ck_assert_int_eq(pe_store_iplist_remove(st, PE_IPLIST_WHITELIST, got->id), PE_STORE_NOTFOUND);
    ck_assert_int_eq(pe_store_iplist_active(st, PE_IPLIST_WHITELIST, 999, &rows), PE_STORE_OK);
    ck_assert_int_eq(rows->nelts, 0);
    ck_assert_int_eq(pe_store_iplist_active(st, PE_IPLIST_BLOCKED, 999, &rows), PE_STORE_OK);
    ck_assert_int_eq(rows->nelts, 2); /* removing from one list leaves the other alone */
}
END_TEST

/* ----------------------------------------------------------------------------------------- */
/* Credits */

/* A user with a fresh id and the given credits; its id. */
static const char *user_with_credits(pe_store_t *st, apr_int64_t limit, apr_int64_t reset, apr_int64_t day)
{
    pe_user_t *u =
        mkuser(apr_psprintf(pe_tp, "c%d", (int)getpid()), apr_psprintf(pe_tp, "c%d@example.com", (int)getpid()), NULL);

    u->api_key_digest = apr_pstrcat(pe_tp, "digest-", u->id, NULL);
    u->conv_limit = limit;
    u->conv_reset = reset;
    u->reset_day = day;
    ck_assert_int_eq(pe_store_user_create(st, u), PE_STORE_OK);
    return u->id;
}

START_TEST(credits_take_until_empty)
{
    pe_store_t *st = open_store(_i);
    const char *id = user_with_credits(st, 3, 10, 100);
    apr_int64_t limit, reset;
    pe_user_t *u;

    ck_assert_int_eq(pe_store_credits_take(st, id, 100, 1), PE_STORE_OK);
    ck_assert_int_eq(pe_store_credits_take(st, id, 100, 2), PE_STORE_OK);
    ck_assert_int_eq(pe_store_credits_take(st, id, 100, 3), PE_STORE_OK);
    ck_assert_int_eq(pe_store_credits_take(st, id, 100, 4), PE_STORE_EMPTY);
    ck_assert_int_eq(pe_store_credits_get(st, id, 100, &limit, &reset), PE_STORE_OK);
    ck_assert_int_eq(limit, 0);
    ck_assert_int_eq(reset, 10);
    ck_assert_int_eq(pe_store_user_by_id(st, id, &u), PE_STORE_OK);
    ck_assert_int_eq(u->conv_limit, 0);
    ck_assert_int_eq(u->last_activity, 3);
    /* an unknown user has nothing to take */
    ck_assert_int_eq(pe_store_credits_take(st, pe_store_new_id(pe_tp), 100, 5), PE_STORE_EMPTY);
    ck_assert_int_eq(pe_store_credits_get(st, pe_store_new_id(pe_tp), 100, &limit, &reset), PE_STORE_NOTFOUND);
    /* the next day the limit is back to reset, once: the take writes reset_day */
    ck_assert_int_eq(pe_store_credits_get(st, id, 101, &limit, &reset), PE_STORE_OK);
    ck_assert_int_eq(limit, 10);
    ck_assert_int_eq(pe_store_credits_take(st, id, 101, 6), PE_STORE_OK);
    ck_assert_int_eq(pe_store_user_by_id(st, id, &u), PE_STORE_OK);
    ck_assert_int_eq(u->conv_limit, 9);
    ck_assert_int_eq(u->reset_day, 101);
    ck_assert_int_eq(pe_store_credits_take(st, id, 101, 7), PE_STORE_OK);
    ck_assert_int_eq(pe_store_user_by_id(st, id, &u), PE_STORE_OK);
    ck_assert_int_eq(u->conv_limit, 8);
}
END_TEST

START_TEST(credits_refund_exact)
{
    pe_store_t *st = open_store(_i);
    const char *id = user_with_credits(st, 1, 5, 200);
    pe_user_t *u;

    ck_assert_int_eq(pe_store_credits_take(st, id, 200, 1), PE_STORE_OK);
    ck_assert_int_eq(pe_store_credits_refund(st, id, 200), PE_STORE_OK);
    ck_assert_int_eq(pe_store_user_by_id(st, id, &u), PE_STORE_OK);
    ck_assert_int_eq(u->conv_limit, 1);
    /* a take on day 200 refunded after the day-201 reset gives nothing back */
    ck_assert_int_eq(pe_store_credits_take(st, id, 200, 2), PE_STORE_OK);
    ck_assert_int_eq(pe_store_credits_take(st, id, 201, 3), PE_STORE_OK);
    ck_assert_int_eq(pe_store_credits_refund(st, id, 200), PE_STORE_NOTFOUND);
    ck_assert_int_eq(pe_store_user_by_id(st, id, &u), PE_STORE_OK);
    ck_assert_int_eq(u->conv_limit, 4);
}
END_TEST

START_TEST(credits_zero_reset_never_refills)
{
    pe_store_t *st = open_store(_i);
    const char *id = user_with_credits(st, 1, 0, 0);
    apr_int64_t limit, reset;

    ck_assert_int_eq(pe_store_credits_take(st, id, 300, 1), PE_STORE_OK);
    ck_assert_int_eq(pe_store_credits_take(st, id, 301, 2), PE_STORE_EMPTY);
    ck_assert_int_eq(pe_store_credits_get(st, id, 302, &limit, &reset), PE_STORE_OK);
    ck_assert_int_eq(limit, 0);
}
END_TEST

START_TEST(credits_take_n_all_or_nothing)
{
    pe_store_t *st = open_store(_i);
    const char *id = user_with_credits(st, 5, 8, 300);
    pe_user_t *u;

    /* more than are left: nothing taken */
    ck_assert_int_eq(pe_store_credits_take_n(st, id, 6, 300, 1), PE_STORE_EMPTY);
    ck_assert_int_eq(pe_store_user_by_id(st, id, &u), PE_STORE_OK);
    ck_assert_int_eq(u->conv_limit, 5);
    ck_assert_int_eq(pe_store_credits_take_n(st, id, 3, 300, 2), PE_STORE_OK);
    ck_assert_int_eq(pe_store_user_by_id(st, id, &u), PE_STORE_OK);
    ck_assert_int_eq(u->conv_limit, 2);
    ck_assert_int_eq(u->last_activity, 2);
    /* exactly what is left */
    ck_assert_int_eq(pe_store_credits_take_n(st, id, 2, 300, 3), PE_STORE_OK);
    ck_assert_int_eq(pe_store_credits_take_n(st, id, 1, 300, 4), PE_STORE_EMPTY);
    /* exact refund of the failed tasks */
    ck_assert_int_eq(pe_store_credits_refund_n(st, id, 2, 300), PE_STORE_OK);
    ck_assert_int_eq(pe_store_user_by_id(st, id, &u), PE_STORE_OK);
    ck_assert_int_eq(u->conv_limit, 2);
    ck_assert_int_eq(pe_store_credits_take_n(st, id, 0, 300, 5), PE_STORE_OK);
    ck_assert_int_eq(pe_store_credits_refund_n(st, id, 0, 300), PE_STORE_OK);
    /* the next day: the daily value, then the batch */
    ck_assert_int_eq(pe_store_credits_take_n(st, id, 8, 301, 6), PE_STORE_OK);
    ck_assert_int_eq(pe_store_user_by_id(st, id, &u), PE_STORE_OK);
    ck_assert_int_eq(u->conv_limit, 0);
    ck_assert_int_eq(u->reset_day, 301);
    /* a refund for the day before the reset gives nothing */
    ck_assert_int_eq(pe_store_credits_refund_n(st, id, 3, 300), PE_STORE_NOTFOUND);
    ck_assert_int_eq(pe_store_credits_take_n(st, pe_store_new_id(pe_tp), 1, 301, 7), PE_STORE_EMPTY);
}
END_TEST

/* ----------------------------------------------------------------------------------------- */
/* Concurrency: N processes, each with its own connection, released at once */

/* What a racing process does with its handle; its exit code is the outcome (< 100). */
typedef int racer_fn(pe_store_t *st, int k, const void *arg);

/*
 * Fork n processes that each open a connection of backend i, wait on a pipe until all are
 * forked, run fn once and exit with its code; counts[c] gets how many exited with code c.
 */
static void race(int i, int n, racer_fn *fn, const void *arg, int counts[100])
{
    pid_t pids[64];
    int go[2], k, status;
    char c;

    ck_assert_int_le(n, 64);
    ck_assert_int_eq(pipe(go), 0);
    for (k = 0; k < n; k++) {
        pids[k] = fork();
        ck_assert_int_ge(pids[k], 0);
        if (pids[k] == 0) {
            apr_pool_t *p;
            pe_store_t *st;
            int rc;

            close(go[1]);
            apr_pool_create(&p, NULL);
            st = pe_backends_here[i]->open(p);
            if (read(go[0], &c, 1) < 0 || !st)
                _exit(99);
            rc = fn(st, k, arg);
            apr_pool_destroy(p);
            _exit(rc);
        }
    }
    close(go[0]);
    close(go[1]); /* every racer's read ends: go */
    memset(counts, 0, 100 * sizeof(int));
    for (k = 0; k < n; k++) {
        ck_assert_int_eq(waitpid(pids[k], &status, 0), pids[k]);
        ck_assert(WIFEXITED(status));
        counts[WEXITSTATUS(status)]++;
    }
    ck_assert_msg(counts[99] == 0, "%d racers had no connection", counts[99]);
}

/* Outcome codes of the racers. */
enum { RACE_OK = 0, RACE_EMPTY = 1, RACE_CONFLICT = 2, RACE_NOTFOUND = 3, RACE_OTHER = 4 };

static int outcome(pe_store_status_e rs)
{
    switch (rs) {
    case PE_STORE_OK:
        return RACE_OK;
    case PE_STORE_EMPTY:
        return RACE_EMPTY;
    case PE_STORE_CONFLICT:
        return RACE_CONFLICT;
    case PE_STORE_NOTFOUND:
        return RACE_NOTFOUND;
    default:
        return RACE_OTHER;
    }
}

typedef struct {
    const char *id;
    apr_int64_t day;
} take_arg_t;

static int racer_take(pe_store_t *st, int k, const void *arg)
{
    const take_arg_t *a = arg;

    return outcome(pe_store_credits_take(st, a->id, a->day, k + 1));
}

/* n takes at once for a user with limit/reset on day `day`, taken on day `today`: exactly ok
 * succeed and the rest find nothing; the user ends with 0 credits on day `today`. */
static void race_takes(int i, int n, apr_int64_t limit, apr_int64_t reset, apr_int64_t day, apr_int64_t today, int ok)
{
    pe_store_t *st = open_store(i);
    take_arg_t a = {user_with_credits(st, limit, reset, day), today};
    int counts[100];
    pe_user_t *u;

    race(i, n, racer_take, &a, counts);
    ck_assert_int_eq(counts[RACE_OTHER], 0);
    ck_assert_int_eq(counts[RACE_OK], ok);
    ck_assert_int_eq(counts[RACE_EMPTY], n - ok);
    ck_assert_int_eq(pe_store_user_by_id(st, a.id, &u), PE_STORE_OK);
    ck_assert_int_eq(u->conv_limit, 0);
    ck_assert_int_eq(u->reset_day, today);
}

/* 32 takes at once for 31 credits: exactly 31 succeed, none is oversold. */
START_TEST(race_credit_takes)
{
    race_takes(_i, 32, 31, 31, 500, 500, 31);
}
END_TEST

/* 16 takes at once on the first use of a new day: the daily reset (to 5) happens once, so
 * exactly 5 succeed. */
START_TEST(race_daily_reset_once)
{
    race_takes(_i, 16, 0, 5, 600, 601, 5);
}
END_TEST

static int racer_register(pe_store_t *st, int k, const void *arg)
{
    pe_user_t *u = mkuser(apr_psprintf(pe_tp, "racer%d", k), (const char *)arg, apr_psprintf(pe_tp, "rk%d", k));
    pe_store_status_e rs = pe_store_user_create(st, u);

    if (rs == PE_STORE_CONFLICT && strcmp(pe_store_conflict(st), "email"))
        return RACE_OTHER;
    return outcome(rs);
}

/* 16 registrations of one e-mail at once: exactly one account, 15 refusals naming the e-mail. */
START_TEST(race_registrations_one_email)
{
    pe_store_t *st = open_store(_i);
    int counts[100];
    pe_user_t *u;

    race(_i, 16, racer_register, "same@example.com", counts);
    ck_assert_int_eq(counts[RACE_OTHER], 0);
    ck_assert_int_eq(counts[RACE_OK], 1);
    ck_assert_int_eq(counts[RACE_CONFLICT], 15);
    ck_assert_int_eq(pe_store_user_by_email(st, "same@example.com", &u), PE_STORE_OK);
}
END_TEST

static int racer_rotate(pe_store_t *st, int k, const void *arg)
{
    pe_session_t *s;
    const char *td = dg(apr_psprintf(pe_tp, "token-%d", k)), *rd = dg(apr_psprintf(pe_tp, "refresh-%d", k));
    pe_store_status_e rs;

    rs = pe_store_session_rotate(st, (const char *)arg, td, rd, 1000, 2000, 10, &s);
    if (rs == PE_STORE_OK && strcmp(s->token_digest, td))
        return RACE_OTHER;
    return outcome(rs);
}

static pe_session_t *mksess(const char *uid, const char *td, const char *rd, apr_time_t exp);

/* 16 rotations of one refresh token at once: exactly one wins. */
START_TEST(race_refresh_rotation_once)
{
    pe_store_t *st = open_store(_i);
    int counts[100], k, winners = 0;
    pe_session_t *s;

    ck_assert_int_eq(pe_store_session_create(st, mksess(pe_store_new_id(pe_tp), dg("t0"), dg("r0"), 100)), PE_STORE_OK);
    race(_i, 16, racer_rotate, dg("r0"), counts);
    ck_assert_int_eq(counts[RACE_OTHER], 0);
    ck_assert_int_eq(counts[RACE_OK], 1);
    ck_assert_int_eq(counts[RACE_NOTFOUND], 15);
    /* the session carries the winner's token: exactly one of them works */
    for (k = 0; k < 16; k++)
        if (pe_store_session_by_token(st, dg(apr_psprintf(pe_tp, "token-%d", k)), 20, &s) == PE_STORE_OK)
            winners++;
    ck_assert_int_eq(winners, 1);
    ck_assert_int_eq(pe_store_session_by_token(st, dg("t0"), 20, &s), PE_STORE_NOTFOUND);
}
END_TEST

/* Racer code of a granted reservation: RACE_ATTEMPT + its attempt number (other outcomes below it). */
enum { RACE_ATTEMPT = 10 };

static int racer_login_counted(pe_store_t *st, int k, const void *arg)
{
    int attempt = 0;
    apr_time_t until = 0;
    pe_store_status_e rs = pe_store_user_login_reserve(st, (const char *)arg, 1000 + k, 100, 3600, &attempt, &until);

    if (rs != PE_STORE_OK)
        return outcome(rs);
    return attempt >= 1 && attempt <= 16 && until == 0 ? RACE_ATTEMPT + attempt : RACE_OTHER;
}

/* 16 logins at once below the maximum (100): every one is counted, each gets its own attempt number. */
START_TEST(race_login_reserve_all_counted)
{
    pe_store_t *st = open_store(_i);
    pe_user_t *u = mkuser("kate", "kate@example.com", dg("k1"));
    int counts[100], a;

    ck_assert_int_eq(pe_store_user_create(st, u), PE_STORE_OK);
    race(_i, 16, racer_login_counted, u->id, counts);
    for (a = 1; a <= 16; a++)
        ck_assert_msg(counts[RACE_ATTEMPT + a] == 1, "attempt %d granted %d times", a, counts[RACE_ATTEMPT + a]);
    ck_assert_int_eq(pe_store_user_by_id(st, u->id, &u), PE_STORE_OK);
    ck_assert_int_eq(u->failed_logins, 16);
    ck_assert_int_eq(u->locked_until, 0);
}
END_TEST

static int racer_login_reserve(pe_store_t *st, int k, const void *arg)
{
    int attempt = 0;
    apr_time_t until = 0;

    return outcome(pe_store_user_login_reserve(st, (const char *)arg, 1000 + k, 5, 3600, &attempt, &until));
}

/* 29 logins at once with a maximum of 5: exactly 5 get to check their password (count first). */
START_TEST(race_login_reserve_exact)
{
    pe_store_t *st = open_store(_i);
    pe_user_t *u = mkuser("lena", "lena@example.com", dg("l1"));
    int counts[100];

    ck_assert_int_eq(pe_store_user_create(st, u), PE_STORE_OK);
    race(_i, 29, racer_login_reserve, u->id, counts);
    ck_assert_int_eq(counts[RACE_OK], 5);
    ck_assert_int_eq(counts[RACE_OK] + counts[RACE_EMPTY], 29);
    ck_assert_int_eq(pe_store_user_by_id(st, u->id, &u), PE_STORE_OK);
    ck_assert_int_eq(u->failed_logins, 5);
    ck_assert_int_ne(u->locked_until, 0);
}
END_TEST

static int racer_delete(pe_store_t *st, int k, const void *arg)
{
    return outcome(pe_store_user_delete(st, (const pe_user_t *)arg, "race", "test", k + 1));
}

/* 8 deletions of one user at once: exactly one archives and deletes; nothing else changes. */
START_TEST(race_deletions_once)
{
    pe_store_t *st = open_store(_i);
    pe_user_t *u = mkuser("june", "june@example.com", dg("j1")), *got;
    int counts[100];

    ck_assert_int_eq(pe_store_user_create(st, u), PE_STORE_OK);
    race(_i, 8, racer_delete, u, counts);
    ck_assert_int_eq(counts[RACE_OTHER], 0);
    ck_assert_int_eq(counts[RACE_OK], 1);
    ck_assert_int_eq(counts[RACE_CONFLICT] + counts[RACE_NOTFOUND], 7);
    ck_assert_int_eq(pe_store_user_by_id(st, u->id, &got), PE_STORE_NOTFOUND);
    /* the e-mail is free again */
    ck_assert_int_eq(pe_store_user_create(st, mkuser("june2", "june@example.com", dg("j2"))), PE_STORE_OK);
}
END_TEST

/* ----------------------------------------------------------------------------------------- */
/* Conversation logs */

START_TEST(msglog_batch_idempotent)
{
    pe_store_t *st = open_store(_i);
    pe_user_t *ua = mkuser("mia", "mia@example.com", dg("m1")), *ub = mkuser("ned", "ned@example.com", dg("n1"));
    pe_user_t *gone = mkuser("olga", "olga@example.com", dg("o1"));
    const char *uid = ua->id, *u6 = ub->id;
    pe_message_log_t recs[3];
    long n;
    int i;

    ck_assert_int_eq(pe_store_user_create(st, ua), PE_STORE_OK);
    ck_assert_int_eq(pe_store_user_create(st, ub), PE_STORE_OK);
    ck_assert_int_eq(pe_store_user_create(st, gone), PE_STORE_OK);

    memset(recs, 0, sizeof(recs));
    for (i = 0; i < 3; i++) {
        recs[i].request_id = apr_psprintf(pe_tp, "req-%d", i);
        recs[i].user_id = uid;
        recs[i].model = "gpt-4o-mini";
        recs[i].messages = "[{\"role\":\"user\",\"content\":\"hi\"}]";
        recs[i].response = "hello";
        recs[i].status = 200;
        recs[i].tokens_used = 12;
        recs[i].created_at = 1;
    }
    ck_assert_int_eq(pe_store_msglog_insert(st, recs, 2), PE_STORE_OK);
    ck_assert_int_eq(pe_store_msglog_count(st, uid, &n), PE_STORE_OK);
    ck_assert_int_eq(n, 2);
    /* the same batch again plus one new record: only the new one is added */
    ck_assert_int_eq(pe_store_msglog_insert(st, recs, 3), PE_STORE_OK);
    ck_assert_int_eq(pe_store_msglog_count(st, NULL, &n), PE_STORE_OK);
    ck_assert_int_eq(n, 3);
    ck_assert_int_eq(pe_store_msglog_count(st, "other", &n), PE_STORE_OK);
    ck_assert_int_eq(n, 0);
    ck_assert_int_eq(pe_store_msglog_insert(st, recs, 0), PE_STORE_OK);
    /* on a connection that has not been used yet */
    recs[0].request_id = "req-fresh";
    ck_assert_int_eq(pe_store_msglog_insert(open_again(_i, pe_tp), recs, 1), PE_STORE_OK);
    ck_assert_int_eq(pe_store_msglog_count(st, NULL, &n), PE_STORE_OK);
    ck_assert_int_eq(n, 4);
    /* a batch of several statements' worth of rows, repeated: no duplicates */
    {
        pe_message_log_t many[130];

        memset(many, 0, sizeof(many));
        for (i = 0; i < 130; i++) {
            many[i].request_id = apr_psprintf(pe_tp, "many-%d", i);
            many[i].user_id = u6;
            many[i].created_at = i;
        }
        ck_assert_int_eq(pe_store_msglog_insert(st, many, 130), PE_STORE_OK);
        ck_assert_int_eq(pe_store_msglog_insert(st, many + 10, 120), PE_STORE_OK);
        ck_assert_int_eq(pe_store_msglog_count(st, u6, &n), PE_STORE_OK);
        ck_assert_int_eq(n, 130);
    }
    /* rows of an account deleted while they were queued are not stored (SPEC 6.7), the others are */
    ck_assert_int_eq(pe_store_user_delete(st, gone, "test", "test", 5), PE_STORE_OK);
    recs[0].request_id = "req-gone-0";
    recs[0].user_id = gone->id;
    recs[1].request_id = "req-kept";
    recs[1].user_id = uid;
    recs[2].request_id = "req-gone-1";
    recs[2].user_id = gone->id;
    ck_assert_int_eq(pe_store_msglog_insert(st, recs, 3), PE_STORE_OK);
    ck_assert_int_eq(pe_store_msglog_count(st, gone->id, &n), PE_STORE_OK);
    ck_assert_int_eq(n, 0);
    ck_assert_int_eq(pe_store_msglog_count(st, uid, &n), PE_STORE_OK);
    ck_assert_int_eq(n, 5);
}
END_TEST

/* ----------------------------------------------------------------------------------------- */
/* E-mail verification: the daily send count and the one code */

/* A new user; its id. */
static const char *email_user(pe_store_t *st, const char *name)
{
    pe_user_t *u = mkuser(name, apr_pstrcat(pe_tp, name, "@example.com", NULL), dg(name));

    ck_assert_int_eq(pe_store_user_create(st, u), PE_STORE_OK);
    return u->id;
}

START_TEST(email_send_limit_per_day)
{
    pe_store_t *st = open_store(_i);
    const char *id = email_user(st, "mia");
    int sends = -1, k;

    for (k = 1; k <= 3; k++) {
        ck_assert_int_eq(pe_store_email_send_take(st, id, 700, 3, &sends), PE_STORE_OK);
        ck_assert_int_eq(sends, k);
    }
    ck_assert_int_eq(pe_store_email_send_take(st, id, 700, 3, &sends), PE_STORE_EMPTY);
    ck_assert_int_eq(sends, 3);
    /* a send that could not go out is given back once */
    ck_assert_int_eq(pe_store_email_send_release(st, id, 700), PE_STORE_OK);
    ck_assert_int_eq(pe_store_email_send_take(st, id, 700, 3, &sends), PE_STORE_OK);
    ck_assert_int_eq(sends, 3);
    ck_assert_int_eq(pe_store_email_send_take(st, id, 700, 3, &sends), PE_STORE_EMPTY);
    /* the next day starts again at 1; a release for the old day gives nothing back */
    ck_assert_int_eq(pe_store_email_send_take(st, id, 701, 3, &sends), PE_STORE_OK);
    ck_assert_int_eq(sends, 1);
    ck_assert_int_eq(pe_store_email_send_release(st, id, 700), PE_STORE_NOTFOUND);
    ck_assert_int_eq(pe_store_email_send_take(st, pe_store_new_id(pe_tp), 701, 3, &sends), PE_STORE_NOTFOUND);
}
END_TEST

START_TEST(email_code_attempts_and_use)
{
    pe_store_t *st = open_store(_i);
    const char *id = email_user(st, "noah"), *d = NULL;
    pe_user_t *u;
    int n = -1, k;

    /* no code yet */
    ck_assert_int_eq(pe_store_email_code_attempt(st, id, 100, 5, &d, &n), PE_STORE_NOTFOUND);
    ck_assert_int_eq(pe_store_email_code_set(st, id, dg("code1"), 1000), PE_STORE_OK);
    for (k = 1; k <= 5; k++) {
        ck_assert_int_eq(pe_store_email_code_attempt(st, id, 100, 5, &d, &n), PE_STORE_OK);
        ck_assert_str_eq(d, dg("code1"));
        ck_assert_int_eq(n, k);
    }
    /* the sixth is not counted: the code is dead, even for its right value */
    ck_assert_int_eq(pe_store_email_code_attempt(st, id, 100, 5, &d, &n), PE_STORE_EMPTY);
    ck_assert_int_eq(n, 5);
    /* a new code replaces it with a fresh count */
    ck_assert_int_eq(pe_store_email_code_set(st, id, dg("code2"), 1000), PE_STORE_OK);
    ck_assert_int_eq(pe_store_email_code_attempt(st, id, 100, 5, &d, &n), PE_STORE_OK);
    ck_assert_str_eq(d, dg("code2"));
    ck_assert_int_eq(n, 1);
    /* expired: neither counted nor usable */
    ck_assert_int_eq(pe_store_email_code_attempt(st, id, 1000, 5, &d, &n), PE_STORE_NOTFOUND);
    ck_assert_int_eq(pe_store_email_code_use(st, id, "noah@example.com", dg("code2"), 1000), PE_STORE_NOTFOUND);
    /* the old code, another address: refused; the live code and the address: verified once */
    ck_assert_int_eq(pe_store_email_code_use(st, id, "noah@example.com", dg("code1"), 100), PE_STORE_NOTFOUND);
    ck_assert_int_eq(pe_store_email_code_use(st, id, "other@example.com", dg("code2"), 100), PE_STORE_NOTFOUND);
    ck_assert_int_eq(pe_store_user_by_id(st, id, &u), PE_STORE_OK);
    ck_assert_int_eq(u->is_verified, 0);
    ck_assert_int_eq(pe_store_email_code_use(st, id, "noah@example.com", dg("code2"), 100), PE_STORE_OK);
    ck_assert_int_eq(pe_store_user_by_id(st, id, &u), PE_STORE_OK);
    ck_assert_int_eq(u->is_verified, 1);
    ck_assert_int_eq(pe_store_email_code_use(st, id, "noah@example.com", dg("code2"), 100), PE_STORE_NOTFOUND);
    ck_assert_int_eq(pe_store_email_code_attempt(st, id, 100, 5, &d, &n), PE_STORE_NOTFOUND);
    ck_assert_int_eq(pe_store_email_code_set(st, pe_store_new_id(pe_tp), dg("x"), 1000), PE_STORE_NOTFOUND);
}
END_TEST

static int racer_email_send(pe_store_t *st, int k, const void *arg)
{
    int sends = 0;
    pe_store_status_e rs = pe_store_email_send_take(st, (const char *)arg, 800, 3, &sends);

    if (sends < 1 || sends > 3)
        return RACE_OTHER;
    return outcome(rs);
}

/* 16 sends at once, limit 3 a day: exactly 3 are counted (also on the first send of a day). */
START_TEST(race_email_sends)
{
    pe_store_t *st = open_store(_i);
    const char *id = email_user(st, "olga");
    int counts[100], sends = 0;

    ck_assert_int_eq(pe_store_email_send_take(st, id, 799, 3, &sends), PE_STORE_OK); /* yesterday's */
    race(_i, 16, racer_email_send, id, counts);
    ck_assert_int_eq(counts[RACE_OTHER], 0);
    ck_assert_int_eq(counts[RACE_OK], 3);
    ck_assert_int_eq(counts[RACE_EMPTY], 13);
    ck_assert_int_eq(pe_store_email_send_take(st, id, 800, 3, &sends), PE_STORE_EMPTY);
    ck_assert_int_eq(sends, 3);
}
END_TEST

static int racer_email_attempt(pe_store_t *st, int k, const void *arg)
{
    const char *d = NULL;
    int n = 0;
    pe_store_status_e rs = pe_store_email_code_attempt(st, (const char *)arg, 100, 5, &d, &n);

    if (rs == PE_STORE_OK && (n < 1 || n > 5 || !d || strcmp(d, dg("live"))))
        return RACE_OTHER;
    return outcome(rs);
}

/* 16 wrong attempts at once: exactly 5 are counted, the others find the code dead. */
START_TEST(race_email_attempts)
{
    pe_store_t *st = open_store(_i);
    const char *id = email_user(st, "paul"), *d;
    int counts[100], n;

    ck_assert_int_eq(pe_store_email_code_set(st, id, dg("live"), 1000), PE_STORE_OK);
    race(_i, 16, racer_email_attempt, id, counts);
    ck_assert_int_eq(counts[RACE_OTHER], 0);
    ck_assert_int_eq(counts[RACE_OK], 5);
    ck_assert_int_eq(counts[RACE_EMPTY], 11);
    ck_assert_int_eq(pe_store_email_code_attempt(st, id, 100, 5, &d, &n), PE_STORE_EMPTY);
    ck_assert_int_eq(n, 5);
}
END_TEST

static int racer_email_use(pe_store_t *st, int k, const void *arg)
{
    return outcome(pe_store_email_code_use(st, (const char *)arg, "quinn@example.com", dg("once"), 100));
}

/* The right code 16 times at once: exactly one use succeeds. */
START_TEST(race_email_code_used_once)
{
    pe_store_t *st = open_store(_i);
    const char *id = email_user(st, "quinn");
    int counts[100];
    pe_user_t *u;

    ck_assert_int_eq(pe_store_email_code_set(st, id, dg("once"), 1000), PE_STORE_OK);
    race(_i, 16, racer_email_use, id, counts);
    ck_assert_int_eq(counts[RACE_OTHER], 0);
    ck_assert_int_eq(counts[RACE_OK], 1);
    ck_assert_int_eq(counts[RACE_NOTFOUND], 15);
    ck_assert_int_eq(pe_store_user_by_id(st, id, &u), PE_STORE_OK);
    ck_assert_int_eq(u->is_verified, 1);
}
END_TEST

/* ----------------------------------------------------------------------------------------- */
/* The front end: outcomes, the retry, a handle without a connection */

START_TEST(front_end_outcomes)
{
    pe_store_t *st = open_store(_i), *none;
    pe_user_t *u = mkuser("hank", "hank@example.com", "h1"), *got = (pe_user_t *)1;
    long n = 5;

    ck_assert_str_eq(pe_store_backend_name(st), pe_backends_here[_i]->name);
    ck_assert_int_eq(pe_store_user_create(st, u), PE_STORE_OK);
    ck_assert_ptr_null(pe_store_error(st));
    ck_assert_ptr_null(pe_store_conflict(st));
    ck_assert_int_eq(pe_store_user_create(st, u), PE_STORE_CONFLICT);
    ck_assert_ptr_nonnull(pe_store_conflict(st));
    /* the next operation clears the last outcome */
    ck_assert_int_eq(pe_store_user_by_id(st, u->id, &got), PE_STORE_OK);
    ck_assert_ptr_null(pe_store_conflict(st));
    /* a handle without a connection fails every operation with EIO, outputs cleared */
    none = pe_store_dbd_make(pe_tp, NULL, NULL, NULL, NULL);
    ck_assert_int_eq(pe_store_user_by_id(none, u->id, &got), PE_STORE_EIO);
    ck_assert_ptr_null(got);
    ck_assert_int_eq(pe_store_msglog_count(none, NULL, &n), PE_STORE_EIO);
    ck_assert_int_eq(n, 0);
    ck_assert_ptr_nonnull(pe_store_error(none));
    ck_assert_str_eq(pe_principal_kind_name(PE_PRINCIPAL_SUPPORT), "support");
    ck_assert_int_eq(pe_principal_kind_parse("admin"), PE_PRINCIPAL_ADMIN);
    ck_assert_int_eq(pe_principal_kind_parse("root"), PE_PRINCIPAL_NONE);
    ck_assert_int_eq(strlen(pe_store_new_id(pe_tp)), 24);
}
END_TEST

/*
 * The front end's retry policy on a scripted backend (its only op fails `fails` times; its
 * reset succeeds or not): one retry, the reset first, the maker's hook only when the reset
 * cannot repair, and the hook called on a handle already detached from the broken connection.
 */
typedef struct {
    int calls, fails, reset_ok, resets, hook_calls, hook_saw_conn;
} script_t;

static script_t script;
static char conn_a, conn_b;

static pe_store_status_e script_msglog_count(pe_store_t *st, const char *user_id, long *count)
{
    script.calls++;
    if (script.calls <= script.fails)
        return pe_store_fail(st, "scripted failure %d on connection %s", script.calls,
                             pe_store_conn(st) == &conn_a ? "a" : "b");
    *count = pe_store_conn(st) == &conn_a ? 1 : 2;
    return PE_STORE_OK;
}

static pe_store_status_e script_reset(pe_store_t *st)
{
    script.resets++;
    return script.reset_ok ? PE_STORE_OK : pe_store_fail(st, "cannot reset");
}

static apr_status_t script_reconnect(pe_store_t *st, void *baton)
{
    script.hook_calls++;
    script.hook_saw_conn = pe_store_conn(st) != NULL;
    pe_store_set_conn(st, baton);
    return APR_SUCCESS;
}

static const pe_store_ops_t script_ops = {.name = "script", .reset = script_reset, .msglog_count = script_msglog_count};

static pe_store_t *script_store(int fails, int reset_ok)
{
    pe_store_t *st = pe_store_make(pe_tp, &script_ops, &conn_a);

    memset(&script, 0, sizeof(script));
    script.fails = fails;
    script.reset_ok = reset_ok;
    pe_store_set_reconnect(st, script_reconnect, &conn_b);
    return st;
}

START_TEST(front_end_retry_policy)
{
    pe_store_t *st;
    long n = -1;
    const char *id;

    /* a failure the reset repairs: retried on the same connection, no new connection taken */
    st = script_store(1, 1);
    ck_assert_int_eq(pe_store_msglog_count(st, NULL, &n), PE_STORE_OK);
    ck_assert_int_eq(n, 1);
    ck_assert_int_eq(script.calls, 2);
    ck_assert_int_eq(script.resets, 1);
    ck_assert_int_eq(script.hook_calls, 0);
    ck_assert_ptr_null(pe_store_error(st));
    /* the reset cannot repair: the hook, on a detached handle, then the retry on its connection */
    st = script_store(1, 0);
    ck_assert_int_eq(pe_store_msglog_count(st, NULL, &n), PE_STORE_OK);
    ck_assert_int_eq(n, 2);
    ck_assert_int_eq(script.hook_calls, 1);
    ck_assert_int_eq(script.hook_saw_conn, 0);
    /* one retry per operation: two failures are an EIO with the last message */
    st = script_store(2, 1);
    ck_assert_int_eq(pe_store_msglog_count(st, NULL, &n), PE_STORE_EIO);
    ck_assert_int_eq(n, 0);
    ck_assert_int_eq(script.calls, 2);
    ck_assert_str_eq(pe_store_error(st), "scripted failure 2 on connection a");
    /* ... and the next operation has its own retry */
    script.fails = 3;
    ck_assert_int_eq(pe_store_msglog_count(st, NULL, &n), PE_STORE_OK);
    ck_assert_int_eq(script.calls, 4);
    /* an op the backend lacks: EIO naming it, nothing called */
    ck_assert_int_eq(pe_store_user_by_id(st, "x", (pe_user_t **)&id), PE_STORE_EIO);
    ck_assert_ptr_nonnull(strstr(pe_store_error(st), "user_by_id"));
    ck_assert_int_eq(script.calls, 4);
}
END_TEST

/*
 * PostgreSQL: the server ends the handle's connection (as a restart does); the next operation
 * fails once on it, the reset reconnects in place (no second connection is taken) and the
 * retry succeeds.
 */
static int retries_logged;

static void count_retries(int level, apr_status_t rv, const char *msg)
{
    if (strstr(msg, "PE30003"))
        retries_logged++;
}

/* End every other connection to the test database and wait until they are gone. */
static void pg_end_other_connections(void)
{
    apr_pool_t *p;
    struct {
        const apr_dbd_driver_t *drv;
        apr_dbd_t *h;
    } c;
    apr_dbd_results_t *res;
    apr_dbd_row_t *row;
    int n, tries, left = -1;

    apr_pool_create(&p, NULL);
    ck_assert_ptr_nonnull(c.h = pe_test_dbd_open(p, "pgsql", getenv("PE_TEST_PG_PARAMS"), &c.drv));
    ck_assert_int_eq(apr_dbd_query(c.drv, c.h, &n,
                                   "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE "
                                   "datname = current_database() AND pid <> pg_backend_pid()"),
                     0);
    for (tries = 0; tries < 100 && left != 0; tries++) {
        res = NULL;
        row = NULL;
        ck_assert_int_eq(apr_dbd_select(c.drv, p, c.h, &res,
                                        "SELECT COUNT(*) FROM pg_stat_activity WHERE datname = "
                                        "current_database() AND pid <> pg_backend_pid()",
                                        1),
                         0);
        while (apr_dbd_get_row(c.drv, p, res, &row, -1) == 0)
            left = atoi(apr_dbd_get_entry(c.drv, row, 0));
        if (left)
            apr_sleep(apr_time_from_msec(50));
    }
    ck_assert_int_eq(left, 0);
    apr_pool_destroy(p);
}

START_TEST(pgsql_retry_after_connection_ended)
{
    pe_store_t *st;
    pe_user_t *u = mkuser("ivan", "ivan@example.com", "i1"), *got;
    int n;

    pg_fresh();
    st = pg_open(pe_tp);
    ck_assert_ptr_nonnull(st);
    ck_assert_int_eq(pe_store_schema_apply(st, &n), PE_STORE_OK);
    ck_assert_int_eq(pe_store_user_create(st, u), PE_STORE_OK);
    pg_end_other_connections();
    retries_logged = 0;
    pe_log_set(count_retries);
    ck_assert_int_eq(pe_store_user_by_id(st, u->id, &got), PE_STORE_OK);
    ck_assert_str_eq(got->username, "ivan");
    ck_assert_int_eq(retries_logged, 1);
    /* the connection works again without a retry */
    ck_assert_int_eq(pe_store_user_by_email(st, "ivan@example.com", &got), PE_STORE_OK);
    ck_assert_int_eq(retries_logged, 1);
}
END_TEST

/* ----------------------------------------------------------------------------------------- */
/* Operators (administrators and support staff) */

static pe_staff_t *mkstaff(pe_principal_kind_e kind, const char *username, const char *email, apr_time_t at)
{
    pe_staff_t *s = apr_pcalloc(pe_tp, sizeof(*s));

    s->id = pe_store_new_id(pe_tp);
    s->kind = kind;
    s->username = username;
    s->name = "Operator";
    s->email = email;
    s->password_hash = "$argon2id$v=19$m=1024,t=1,p=1$c2FsdHNhbHQ$aGFzaA";
    s->staff_level = kind == PE_PRINCIPAL_SUPPORT ? "support" : "";
    s->created_by = "root";
    s->is_active = 1;
    s->created_at = s->updated_at = at;
    return s;
}

START_TEST(staff_create_find_conflicts)
{
    pe_store_t *st = open_store(_i);
    pe_staff_t *root = mkstaff(PE_PRINCIPAL_ADMIN, "root", "root@example.com", 10), *got;
    pe_staff_t *sup = mkstaff(PE_PRINCIPAL_SUPPORT, "root", "root@example.com", 20);
    pe_user_t *u = mkuser("root", "root@example.com", "sk1");
    apr_array_header_t *list;

    root->is_super = 1;
    root->created_by = "";
    ck_assert_int_eq(pe_store_staff_create(st, root), PE_STORE_OK);
    ck_assert_int_eq(pe_store_staff_by_username(st, PE_PRINCIPAL_ADMIN, "root", &got), PE_STORE_OK);
    ck_assert_str_eq(got->id, root->id);
    ck_assert_int_eq(got->kind, PE_PRINCIPAL_ADMIN);
    ck_assert_int_eq(got->is_super, 1);
    ck_assert_str_eq(got->email, "root@example.com");
    ck_assert_str_eq(got->password_hash, root->password_hash);
    ck_assert_str_eq(got->created_by, "");
    ck_assert_int_eq(got->created_at, 10);
    ck_assert_int_eq(pe_store_staff_by_id(st, PE_PRINCIPAL_ADMIN, root->id, &got), PE_STORE_OK);
    ck_assert_str_eq(got->username, "root");

    /* unique within a kind: username, then e-mail, each named */
    ck_assert_int_eq(pe_store_staff_create(st, mkstaff(PE_PRINCIPAL_ADMIN, "root", "other@example.com", 11)),
                     PE_STORE_CONFLICT);
    ck_assert_str_eq(pe_store_conflict(st), "username");
    ck_assert_int_eq(pe_store_staff_create(st, mkstaff(PE_PRINCIPAL_ADMIN, "root2", "root@example.com", 12)),
                     PE_STORE_CONFLICT);
    ck_assert_str_eq(pe_store_conflict(st), "email");
    /* nothing of a refused account is stored: its other value is still free */
    ck_assert_int_eq(pe_store_staff_create(st, mkstaff(PE_PRINCIPAL_ADMIN, "root2", "r2@example.com", 13)),
                     PE_STORE_OK);
    ck_assert_int_eq(pe_store_staff_create(st, mkstaff(PE_PRINCIPAL_ADMIN, "root3", "other@example.com", 14)),
                     PE_STORE_OK);

    /* the kinds never meet: the same names are free for support staff and users */
    ck_assert_int_eq(pe_store_staff_create(st, sup), PE_STORE_OK);
    ck_assert_int_eq(pe_store_user_create(st, u), PE_STORE_OK);
    ck_assert_int_eq(pe_store_staff_by_id(st, PE_PRINCIPAL_SUPPORT, root->id, &got), PE_STORE_NOTFOUND);
    ck_assert_ptr_null(got);
    ck_assert_int_eq(pe_store_staff_by_id(st, PE_PRINCIPAL_ADMIN, sup->id, &got), PE_STORE_NOTFOUND);
    ck_assert_int_eq(pe_store_staff_by_id(st, PE_PRINCIPAL_ADMIN, u->id, &got), PE_STORE_NOTFOUND);
    ck_assert_int_eq(pe_store_staff_by_id(st, PE_PRINCIPAL_ADMIN, "not-an-id", &got), PE_STORE_NOTFOUND);
    ck_assert_int_eq(pe_store_staff_by_username(st, PE_PRINCIPAL_SUPPORT, "root", &got), PE_STORE_OK);
    ck_assert_str_eq(got->id, sup->id);
    ck_assert_str_eq(got->staff_level, "support");
    ck_assert_int_eq(got->is_super, 0);
    ck_assert_int_eq(pe_store_staff_by_username(st, PE_PRINCIPAL_SUPPORT, "Root", &got), PE_STORE_NOTFOUND);

    /* lists: one kind, oldest first */
    ck_assert_int_eq(pe_store_staff_list(st, PE_PRINCIPAL_ADMIN, &list), PE_STORE_OK);
    ck_assert_int_eq(list->nelts, 3);
    ck_assert_str_eq(APR_ARRAY_IDX(list, 0, pe_staff_t *)->username, "root");
    ck_assert_str_eq(APR_ARRAY_IDX(list, 1, pe_staff_t *)->username, "root2");
    ck_assert_str_eq(APR_ARRAY_IDX(list, 2, pe_staff_t *)->username, "root3");
    ck_assert_int_eq(pe_store_staff_list(st, PE_PRINCIPAL_SUPPORT, &list), PE_STORE_OK);
    ck_assert_int_eq(list->nelts, 1);
}
END_TEST

START_TEST(staff_login_reserve_lock_and_password)
{
    pe_store_t *st = open_store(_i);
    pe_staff_t *a = mkstaff(PE_PRINCIPAL_ADMIN, "ann", "ann@example.com", 1), *got;
    apr_time_t lock = apr_time_from_sec(7200), lu = 0;
    int attempt = 0, i;

    ck_assert_int_eq(pe_store_staff_create(st, a), PE_STORE_OK);
    /* counted before the check: attempts 1, 2 granted, the 3rd granted and locking at once */
    for (i = 1; i <= 2; i++) {
        ck_assert_int_eq(pe_store_staff_login_reserve(st, PE_PRINCIPAL_ADMIN, a->id, 1000, 3, lock, &attempt, &lu),
                         PE_STORE_OK);
        ck_assert_int_eq(attempt, i);
        ck_assert_int_eq(lu, 0);
    }
    ck_assert_int_eq(pe_store_staff_login_reserve(st, PE_PRINCIPAL_ADMIN, a->id, 1000, 3, lock, &attempt, &lu),
                     PE_STORE_OK);
    ck_assert_int_eq(attempt, 3);
    ck_assert_int_eq(lu, 1000 + lock);
    /* locked: refused with the lock's end, which does not move */
    ck_assert_int_eq(pe_store_staff_login_reserve(st, PE_PRINCIPAL_ADMIN, a->id, 2000, 3, lock, &attempt, &lu),
                     PE_STORE_EMPTY);
    ck_assert_int_eq(lu, 1000 + lock);
    ck_assert_int_eq(pe_store_staff_by_id(st, PE_PRINCIPAL_ADMIN, a->id, &got), PE_STORE_OK);
    ck_assert_int_eq(got->failed_logins, 3);
    ck_assert_int_eq(got->locked_until, 1000 + lock);
    /* after expiry the counter starts again */
    ck_assert_int_eq(
        pe_store_staff_login_reserve(st, PE_PRINCIPAL_ADMIN, a->id, 1000 + lock, 3, lock, &attempt, &lu),
        PE_STORE_OK);
    ck_assert_int_eq(attempt, 1);
    ck_assert_int_eq(lu, 0);
    /* the other kind's operation does not find it; no such operator */
    ck_assert_int_eq(pe_store_staff_login_reserve(st, PE_PRINCIPAL_SUPPORT, a->id, 1, 3, lock, &attempt, &lu),
                     PE_STORE_NOTFOUND);
    ck_assert_int_eq(pe_store_staff_login_reserve(st, PE_PRINCIPAL_ADMIN, pe_store_new_id(pe_tp), 1, 3, lock,
                                                  &attempt, &lu),
                     PE_STORE_NOTFOUND);
    ck_assert_int_eq(pe_store_staff_login_ok(st, PE_PRINCIPAL_SUPPORT, a->id, 9), PE_STORE_NOTFOUND);
    /* a success clears the count */
    ck_assert_int_eq(pe_store_staff_login_ok(st, PE_PRINCIPAL_ADMIN, a->id, 9), PE_STORE_OK);
    ck_assert_int_eq(pe_store_staff_by_id(st, PE_PRINCIPAL_ADMIN, a->id, &got), PE_STORE_OK);
    ck_assert_int_eq(got->failed_logins, 0);
    ck_assert_int_eq(got->locked_until, 0);
    ck_assert_int_eq(got->last_login, 9);
    /* a new password clears a lock */
    for (i = 0; i < 3; i++)
        pe_store_staff_login_reserve(st, PE_PRINCIPAL_ADMIN, a->id, 3000, 3, lock, &attempt, &lu);
    ck_assert_int_eq(lu, 3000 + lock);
    ck_assert_int_eq(pe_store_staff_set_password(st, PE_PRINCIPAL_ADMIN, a->id, "$argon2id$new", 3001), PE_STORE_OK);
    ck_assert_int_eq(pe_store_staff_by_id(st, PE_PRINCIPAL_ADMIN, a->id, &got), PE_STORE_OK);
    ck_assert_str_eq(got->password_hash, "$argon2id$new");
    ck_assert_int_eq(got->failed_logins, 0);
    ck_assert_int_eq(got->locked_until, 0);
    ck_assert_int_eq(got->updated_at, 3001);
    ck_assert_int_eq(pe_store_staff_login_reserve(st, PE_PRINCIPAL_ADMIN, a->id, 3002, 3, lock, &attempt, &lu),
                     PE_STORE_OK);
    ck_assert_int_eq(attempt, 1);
    ck_assert_int_eq(pe_store_staff_set_password(st, PE_PRINCIPAL_SUPPORT, a->id, "x", 1), PE_STORE_NOTFOUND);
    ck_assert_int_eq(pe_store_staff_set_password(st, PE_PRINCIPAL_ADMIN, pe_store_new_id(pe_tp), "x", 1),
                     PE_STORE_NOTFOUND);
}
END_TEST

typedef struct {
    pe_principal_kind_e kind;
    const char *id;
    int max;
} staff_reserve_arg_t;

static int racer_staff_reserve(pe_store_t *st, int k, const void *arg)
{
    const staff_reserve_arg_t *a = arg;
    int attempt = 0;
    apr_time_t until = 0;

    return outcome(pe_store_staff_login_reserve(st, a->kind, a->id, 1000 + k, a->max, 3600, &attempt, &until));
}

/* 29 logins of an administrator (max 3) and of a support member (max 5) at once: exactly max
 * get to check their password. */
START_TEST(race_staff_login_reserve_exact)
{
    pe_store_t *st = open_store(_i);
    pe_staff_t *a = mkstaff(PE_PRINCIPAL_ADMIN, "amy", "amy@example.com", 1);
    pe_staff_t *s = mkstaff(PE_PRINCIPAL_SUPPORT, "sam", "sam@example.com", 1), *got;
    staff_reserve_arg_t arg[] = {{PE_PRINCIPAL_ADMIN, a->id, 3}, {PE_PRINCIPAL_SUPPORT, s->id, 5}};
    int counts[100], k;

    ck_assert_int_eq(pe_store_staff_create(st, a), PE_STORE_OK);
    ck_assert_int_eq(pe_store_staff_create(st, s), PE_STORE_OK);
    for (k = 0; k < 2; k++) {
        race(_i, 29, racer_staff_reserve, &arg[k], counts);
        ck_assert_int_eq(counts[RACE_OK], arg[k].max);
        ck_assert_int_eq(counts[RACE_OK] + counts[RACE_EMPTY], 29);
        ck_assert_int_eq(pe_store_staff_by_id(st, arg[k].kind, arg[k].id, &got), PE_STORE_OK);
        ck_assert_int_eq(got->failed_logins, arg[k].max);
        ck_assert_int_ne(got->locked_until, 0);
    }
}
END_TEST

static pe_session_t *mkstaffsess(const pe_staff_t *s, const char *td)
{
    pe_session_t *x = mksess(s->id, dg(td), dg(apr_pstrcat(pe_tp, td, "r", NULL)), 1000);

    x->kind = s->kind;
    return x;
}

/* Deactivation, reactivation and deletion of operators, their sessions, the last super-administrator. */
START_TEST(staff_lifecycle)
{
    pe_store_t *st = open_store(_i);
    pe_staff_t *root = mkstaff(PE_PRINCIPAL_ADMIN, "root", "root@example.com", 1);
    pe_staff_t *adm = mkstaff(PE_PRINCIPAL_ADMIN, "adm", "adm@example.com", 2);
    pe_staff_t *sup = mkstaff(PE_PRINCIPAL_SUPPORT, "sup", "sup@example.com", 3), *got;
    pe_session_t *s;

    root->is_super = 1;
    ck_assert_int_eq(pe_store_staff_create(st, root), PE_STORE_OK);
    ck_assert_int_eq(pe_store_staff_create(st, adm), PE_STORE_OK);
    ck_assert_int_eq(pe_store_staff_create(st, sup), PE_STORE_OK);
    ck_assert_int_eq(pe_store_session_create(st, mkstaffsess(adm, "adm1")), PE_STORE_OK);
    ck_assert_int_eq(pe_store_session_create(st, mkstaffsess(root, "root1")), PE_STORE_OK);
    ck_assert_int_eq(pe_store_session_create(st, mkstaffsess(sup, "sup1")), PE_STORE_OK);

    /* deactivating ends the sessions; again is OK; reactivating gives none back */
    ck_assert_int_eq(pe_store_staff_set_active(st, PE_PRINCIPAL_ADMIN, adm->id, 0, 50), PE_STORE_OK);
    ck_assert_int_eq(pe_store_staff_by_id(st, PE_PRINCIPAL_ADMIN, adm->id, &got), PE_STORE_OK);
    ck_assert_int_eq(got->is_active, 0);
    ck_assert_int_eq(got->updated_at, 50);
    ck_assert_int_eq(pe_store_session_by_token(st, dg("adm1"), 10, &s), PE_STORE_NOTFOUND);
    ck_assert_int_eq(pe_store_session_by_token(st, dg("root1"), 10, &s), PE_STORE_OK);
    ck_assert_int_eq(pe_store_staff_set_active(st, PE_PRINCIPAL_ADMIN, adm->id, 0, 51), PE_STORE_OK);
    ck_assert_int_eq(pe_store_staff_set_active(st, PE_PRINCIPAL_ADMIN, adm->id, 1, 52), PE_STORE_OK);
    ck_assert_int_eq(pe_store_staff_by_id(st, PE_PRINCIPAL_ADMIN, adm->id, &got), PE_STORE_OK);
    ck_assert_int_eq(got->is_active, 1);
    ck_assert_int_eq(pe_store_staff_set_active(st, PE_PRINCIPAL_ADMIN, adm->id, 1, 53), PE_STORE_OK);

    /* the kind is part of the key; no such operator */
    ck_assert_int_eq(pe_store_staff_set_active(st, PE_PRINCIPAL_SUPPORT, adm->id, 0, 1), PE_STORE_NOTFOUND);
    ck_assert_int_eq(pe_store_staff_set_active(st, PE_PRINCIPAL_ADMIN, pe_store_new_id(pe_tp), 0, 1),
                     PE_STORE_NOTFOUND);
    ck_assert_int_eq(pe_store_staff_set_active(st, PE_PRINCIPAL_ADMIN, "not-an-id", 1, 1), PE_STORE_NOTFOUND);
    ck_assert_int_eq(pe_store_staff_delete(st, PE_PRINCIPAL_SUPPORT, adm->id), PE_STORE_NOTFOUND);

    /* the only super-administrator is neither deactivated nor deleted, and keeps its session */
    ck_assert_int_eq(pe_store_staff_set_active(st, PE_PRINCIPAL_ADMIN, root->id, 0, 60), PE_STORE_EMPTY);
    ck_assert_int_eq(pe_store_staff_delete(st, PE_PRINCIPAL_ADMIN, root->id), PE_STORE_EMPTY);
    ck_assert_int_eq(pe_store_staff_by_id(st, PE_PRINCIPAL_ADMIN, root->id, &got), PE_STORE_OK);
    ck_assert_int_eq(got->is_active, 1);
    ck_assert_int_eq(pe_store_session_by_token(st, dg("root1"), 10, &s), PE_STORE_OK);
    /* with a second active super-administrator it can be, and then the second is the last */
    adm->is_super = 1;
    adm = mkstaff(PE_PRINCIPAL_ADMIN, "root2", "root2@example.com", 4);
    adm->is_super = 1;
    ck_assert_int_eq(pe_store_staff_create(st, adm), PE_STORE_OK);
    ck_assert_int_eq(pe_store_staff_set_active(st, PE_PRINCIPAL_ADMIN, root->id, 0, 61), PE_STORE_OK);
    ck_assert_int_eq(pe_store_session_by_token(st, dg("root1"), 10, &s), PE_STORE_NOTFOUND);
    ck_assert_int_eq(pe_store_staff_delete(st, PE_PRINCIPAL_ADMIN, adm->id), PE_STORE_EMPTY);
    ck_assert_int_eq(pe_store_staff_set_active(st, PE_PRINCIPAL_ADMIN, adm->id, 0, 62), PE_STORE_EMPTY);
    /* an inactive super-administrator can be deleted */
    ck_assert_int_eq(pe_store_staff_delete(st, PE_PRINCIPAL_ADMIN, root->id), PE_STORE_OK);
    ck_assert_int_eq(pe_store_staff_by_id(st, PE_PRINCIPAL_ADMIN, root->id, &got), PE_STORE_NOTFOUND);
    ck_assert_int_eq(pe_store_staff_delete(st, PE_PRINCIPAL_ADMIN, root->id), PE_STORE_NOTFOUND);

    /* support staff: deleted with its sessions; its username and e-mail are free again */
    ck_assert_int_eq(pe_store_staff_delete(st, PE_PRINCIPAL_SUPPORT, sup->id), PE_STORE_OK);
    ck_assert_int_eq(pe_store_staff_by_id(st, PE_PRINCIPAL_SUPPORT, sup->id, &got), PE_STORE_NOTFOUND);
    ck_assert_int_eq(pe_store_session_by_token(st, dg("sup1"), 10, &s), PE_STORE_NOTFOUND);
    ck_assert_int_eq(pe_store_staff_create(st, mkstaff(PE_PRINCIPAL_SUPPORT, "sup", "sup@example.com", 5)),
                     PE_STORE_OK);
}
END_TEST

typedef struct {
    const char *ids[2];
    int delete;
} super_race_arg_t;

static int racer_super(pe_store_t *st, int k, const void *arg)
{
    const super_race_arg_t *a = arg;
    const char *id = a->ids[k % 2];

    return outcome(a->delete ? pe_store_staff_delete(st, PE_PRINCIPAL_ADMIN, id)
                             : pe_store_staff_set_active(st, PE_PRINCIPAL_ADMIN, id, 0, 100 + k));
}

/* Two active super-administrators deactivated (then deleted) by 16 racers at once, each half
 * taking one of them: one stays active. */
START_TEST(race_last_super_admin)
{
    pe_store_t *st = open_store(_i);
    super_race_arg_t arg = {{NULL, NULL}, 0};
    const char *prev[2];
    pe_staff_t *got;
    int counts[100], round, k, active;

    for (round = 0; round < 2; round++) {
        for (k = 0; k < 2; k++) {
            pe_staff_t *s = mkstaff(PE_PRINCIPAL_ADMIN, apr_psprintf(pe_tp, "sa%d%d", round, k),
                                    apr_psprintf(pe_tp, "sa%d%d@example.com", round, k), 1);

            s->is_super = 1;
            ck_assert_int_eq(pe_store_staff_create(st, s), PE_STORE_OK);
            prev[k] = arg.ids[k];
            arg.ids[k] = s->id;
        }
        if (round == 1) /* the first round's survivor out of the way: the new two are the only active ones */
            for (k = 0; k < 2; k++)
                ck_assert_int_eq(pe_store_staff_set_active(st, PE_PRINCIPAL_ADMIN, prev[k], 0, 99), PE_STORE_OK);
        arg.delete = round;
        race(_i, 16, racer_super, &arg, counts);
        ck_assert_int_eq(counts[RACE_OTHER], 0);
        ck_assert_int_eq(counts[RACE_CONFLICT], 0);
        for (active = 0, k = 0; k < 2; k++)
            if (pe_store_staff_by_id(st, PE_PRINCIPAL_ADMIN, arg.ids[k], &got) == PE_STORE_OK)
                active += got->is_active;
        ck_assert_int_ge(active, 1);
    }
}
END_TEST

static int racer_staff(pe_store_t *st, int k, const void *arg)
{
    pe_staff_t *s = mkstaff(PE_PRINCIPAL_ADMIN, (const char *)arg, apr_psprintf(pe_tp, "op%d@example.com", k), k);
    pe_store_status_e rs = pe_store_staff_create(st, s);

    if (rs == PE_STORE_CONFLICT && strcmp(pe_store_conflict(st), "username"))
        return RACE_OTHER;
    return outcome(rs);
}

/* 16 creates of one administrator's username at once: exactly one account. */
START_TEST(race_staff_one_username)
{
    pe_store_t *st = open_store(_i);
    apr_array_header_t *list;
    int counts[100];

    race(_i, 16, racer_staff, "first", counts);
    ck_assert_int_eq(counts[RACE_OTHER], 0);
    ck_assert_int_eq(counts[RACE_OK], 1);
    ck_assert_int_eq(counts[RACE_CONFLICT], 15);
    ck_assert_int_eq(pe_store_staff_list(st, PE_PRINCIPAL_ADMIN, &list), PE_STORE_OK);
    ck_assert_int_eq(list->nelts, 1);
}
END_TEST

/* An operator's change: only the given fields move, in one write; NOTFOUND for no user. */
START_TEST(user_update_by_operator)
{
    pe_store_t *st = open_store(_i);
    pe_user_t *u = mkuser("olga", "olga@example.com", "uu1"), *got;
    pe_user_change_t ch;

    ck_assert_int_eq(pe_store_user_create(st, u), PE_STORE_OK);
    memset(&ch, 0, sizeof(ch));
    ch.level = "high";
    ch.access_rtype = "bpe,tot,react";
    ch.set_limits = 1;
    ch.conv_limit = 77;
    ch.conv_reset = 50;
    ch.set_active = 1;
    ch.is_active = 0;
    ck_assert_int_eq(pe_store_user_update(st, u->id, &ch, 1234), PE_STORE_OK);
    ck_assert_int_eq(pe_store_user_by_id(st, u->id, &got), PE_STORE_OK);
    ck_assert_str_eq(got->level, "high");
    ck_assert_str_eq(got->access_rtype, "bpe,tot,react");
    ck_assert_int_eq(got->conv_limit, 77);
    ck_assert_int_eq(got->conv_reset, 50);
    ck_assert_int_eq(got->is_active, 0);
    ck_assert_int_eq(got->updated_at, 1234);
    /* untouched */
    ck_assert_str_eq(got->name, "Test User");
    ck_assert_str_eq(got->subscription_plan, "free");
    ck_assert_int_eq(got->credits_main, 5);
    ck_assert_int_eq(got->is_verified, 0);
    /* an inactive user takes no credit */
    ck_assert_int_eq(pe_store_credits_take(st, u->id, 1, 1), PE_STORE_EMPTY);
    memset(&ch, 0, sizeof(ch));
    ch.set_active = ch.is_active = 1;
    ch.set_verified = ch.is_verified = 1;
    ch.set_credits = 1;
    ch.credits_main = -3; /* operators may set any integer (SPEC 6.6) */
    ch.credits_reset = 9;
    ch.additional_notes = "vip";
    ch.name = "Olga P";
    ck_assert_int_eq(pe_store_user_update(st, u->id, &ch, 1235), PE_STORE_OK);
    ck_assert_int_eq(pe_store_user_by_id(st, u->id, &got), PE_STORE_OK);
    ck_assert_int_eq(got->is_active, 1);
    ck_assert_int_eq(got->is_verified, 1);
    ck_assert_int_eq(got->credits_main, -3);
    ck_assert_int_eq(got->credits_reset, 9);
    ck_assert_int_eq(got->conv_limit, 77);
    ck_assert_str_eq(got->additional_notes, "vip");
    ck_assert_str_eq(got->name, "Olga P");
    ck_assert_str_eq(got->level, "high");
    ck_assert_int_eq(pe_store_credits_take(st, u->id, 1, 1), PE_STORE_OK);
    ck_assert_int_eq(pe_store_user_update(st, pe_store_new_id(pe_tp), &ch, 1), PE_STORE_NOTFOUND);
    ck_assert_int_eq(pe_store_user_update(st, "nope", &ch, 1), PE_STORE_NOTFOUND);
}
END_TEST

/* Operators' lists: filters, sorts, pages and totals; events and conversation logs newest first. */
START_TEST(operator_lists)
{
    pe_store_t *st = open_store(_i);
    pe_user_query_t q;
    apr_array_header_t *out;
    pe_message_log_t recs[3];
    long total = -1;
    int k;

    for (k = 0; k < 12; k++) {
        pe_user_t *u = mkuser(apr_psprintf(pe_tp, "lst%02d", k), apr_psprintf(pe_tp, "lst%02d@%s.example.com", k,
                                                                                k % 3 ? "corp" : "home"),
                              apr_psprintf(pe_tp, "lk%d", k));

        u->created_at = 1000 + k;
        u->subscription_plan = k % 4 ? "free" : "pro";
        u->is_verified = k % 2;
        u->is_active = k != 5;
        ck_assert_int_eq(pe_store_user_create(st, u), PE_STORE_OK);
    }
    ck_assert_int_eq(pe_store_user_create(st, mkuser("pct_user", "100%_x@example.com", "lkp")), PE_STORE_OK);
    memset(&q, 0, sizeof(q));
    q.verified = q.active = -1;
    q.limit = 5;
    ck_assert_int_eq(pe_store_user_list(st, &q, &out, &total), PE_STORE_OK);
    ck_assert_int_eq(total, 13);
    ck_assert_int_eq(out->nelts, 5);
    /* newest first: pct_user was made now, then lst11, lst10... */
    ck_assert_str_eq(APR_ARRAY_IDX(out, 0, pe_user_t *)->username, "pct_user");
    ck_assert_str_eq(APR_ARRAY_IDX(out, 1, pe_user_t *)->username, "lst11");
    q.offset = 10;
    ck_assert_int_eq(pe_store_user_list(st, &q, &out, &total), PE_STORE_OK);
    ck_assert_int_eq(out->nelts, 3);
    ck_assert_str_eq(APR_ARRAY_IDX(out, 2, pe_user_t *)->username, "lst00");
    /* search: a case-insensitive substring of username, name or e-mail; LIKE's wildcards are literal */
    memset(&q, 0, sizeof(q));
    q.verified = q.active = -1;
    q.limit = 50;
    q.search = "HOME";
    ck_assert_int_eq(pe_store_user_list(st, &q, &out, &total), PE_STORE_OK);
    ck_assert_int_eq(total, 4);
    q.search = "0%_";
    ck_assert_int_eq(pe_store_user_list(st, &q, &out, &total), PE_STORE_OK);
    ck_assert_int_eq(total, 1);
    ck_assert_str_eq(APR_ARRAY_IDX(out, 0, pe_user_t *)->username, "pct_user");
    q.search = "lst0_";
    ck_assert_int_eq(pe_store_user_list(st, &q, &out, &total), PE_STORE_OK);
    ck_assert_int_eq(total, 0);
    /* exact filters, combined */
    q.search = NULL;
    q.plan = "pro";
    ck_assert_int_eq(pe_store_user_list(st, &q, &out, &total), PE_STORE_OK);
    ck_assert_int_eq(total, 3);
    q.plan = NULL;
    q.verified = 1;
    q.active = 0;
    ck_assert_int_eq(pe_store_user_list(st, &q, &out, &total), PE_STORE_OK);
    ck_assert_int_eq(total, 1);
    ck_assert_str_eq(APR_ARRAY_IDX(out, 0, pe_user_t *)->username, "lst05");
    q.verified = q.active = -1;
    q.email = "lst07@corp.example.com";
    ck_assert_int_eq(pe_store_user_list(st, &q, &out, &total), PE_STORE_OK);
    ck_assert_int_eq(total, 1);
    q.email = NULL;
    q.username = "lst08";
    ck_assert_int_eq(pe_store_user_list(st, &q, &out, &total), PE_STORE_OK);
    ck_assert_int_eq(total, 1);
    /* sorts */
    q.username = NULL;
    q.sort = "username";
    q.ascending = 1;
    q.limit = 2;
    ck_assert_int_eq(pe_store_user_list(st, &q, &out, &total), PE_STORE_OK);
    ck_assert_str_eq(APR_ARRAY_IDX(out, 0, pe_user_t *)->username, "lst00");
    ck_assert_str_eq(APR_ARRAY_IDX(out, 1, pe_user_t *)->username, "lst01");
    q.ascending = 0;
    ck_assert_int_eq(pe_store_user_list(st, &q, &out, &total), PE_STORE_OK);
    ck_assert_str_eq(APR_ARRAY_IDX(out, 0, pe_user_t *)->username, "pct_user");
    q.sort = "email";
    q.ascending = 1;
    ck_assert_int_eq(pe_store_user_list(st, &q, &out, &total), PE_STORE_OK);
    ck_assert_str_eq(APR_ARRAY_IDX(out, 0, pe_user_t *)->email, "100%_x@example.com");

    /* events: filters and newest first */
    for (k = 0; k < 7; k++)
        ck_assert_int_eq(pe_store_event(st, k % 2 ? "user_updated" : "admin_login_successful", PE_PRINCIPAL_ADMIN,
                                        k < 3 ? "a1" : "a2", "root", "127.0.0.1",
                                        pe_json_bind(pe_tp, json_pack("{s:i}", "k", k)), k == 6 ? "warning" : "info",
                                        100 + k),
                         PE_STORE_OK);
    ck_assert_int_eq(pe_store_event_list(st, NULL, NULL, NULL, 0, 3, &out, &total), PE_STORE_OK);
    ck_assert_int_eq(total, 7);
    ck_assert_int_eq(out->nelts, 3);
    ck_assert_int_eq(APR_ARRAY_IDX(out, 0, pe_event_t *)->created_at, 106);
    ck_assert_str_eq(APR_ARRAY_IDX(out, 0, pe_event_t *)->severity, "warning");
    ck_assert_ptr_nonnull(strstr(APR_ARRAY_IDX(out, 0, pe_event_t *)->details, "\"k\""));
    ck_assert_int_eq(APR_ARRAY_IDX(out, 0, pe_event_t *)->kind, PE_PRINCIPAL_ADMIN);
    ck_assert_int_eq(pe_store_event_list(st, "user_updated", NULL, NULL, 0, 10, &out, &total), PE_STORE_OK);
    ck_assert_int_eq(total, 3);
    ck_assert_int_eq(pe_store_event_list(st, "admin_login_successful", "info", "a2", 0, 10, &out, &total),
                     PE_STORE_OK);
    ck_assert_int_eq(total, 1);
    ck_assert_int_eq(APR_ARRAY_IDX(out, 0, pe_event_t *)->created_at, 104);
    ck_assert_int_eq(pe_store_event_list(st, NULL, NULL, NULL, 6, 10, &out, &total), PE_STORE_OK);
    ck_assert_int_eq(out->nelts, 1);
    ck_assert_int_eq(APR_ARRAY_IDX(out, 0, pe_event_t *)->created_at, 100);

    /* a user's conversation logs (rows are stored for users that exist) */
    {
        pe_user_t *l1 = mkuser("logu1", "logu1@example.com", dg("lu1")), *l2 = mkuser("logu2", "logu2@example.com",
                                                                                        dg("lu2"));

        l1->id = "0000000000000000000001a1";
        l2->id = "0000000000000000000001a2";
        ck_assert_int_eq(pe_store_user_create(st, l1), PE_STORE_OK);
        ck_assert_int_eq(pe_store_user_create(st, l2), PE_STORE_OK);
    }
    memset(recs, 0, sizeof(recs));
    for (k = 0; k < 3; k++) {
        recs[k].request_id = apr_psprintf(pe_tp, "req-%d", k);
        recs[k].user_id = k < 2 ? "0000000000000000000001a1" : "0000000000000000000001a2";
        recs[k].model = "gpt-test";
        recs[k].messages = "[{\"role\":\"user\",\"content\":\"hi\"}]";
        recs[k].tokens_used = 10 + k;
        recs[k].status = 200;
        recs[k].created_at = 500 + k;
    }
    ck_assert_int_eq(pe_store_msglog_insert(st, recs, 3), PE_STORE_OK);
    ck_assert_int_eq(pe_store_msglog_list(st, "0000000000000000000001a1", 0, 10, &out, &total), PE_STORE_OK);
    ck_assert_int_eq(total, 2);
    ck_assert_int_eq(out->nelts, 2);
    ck_assert_str_eq(APR_ARRAY_IDX(out, 0, pe_message_log_t *)->request_id, "req-1");
    ck_assert_int_eq(APR_ARRAY_IDX(out, 0, pe_message_log_t *)->tokens_used, 11);
    ck_assert_str_eq(APR_ARRAY_IDX(out, 1, pe_message_log_t *)->messages, recs[0].messages);
    ck_assert_int_eq(pe_store_msglog_list(st, "0000000000000000000001a1", 1, 10, &out, &total), PE_STORE_OK);
    ck_assert_int_eq(out->nelts, 1);
    ck_assert_int_eq(pe_store_msglog_list(st, "nobody", 0, 10, &out, &total), PE_STORE_OK);
    ck_assert_int_eq(total, 0);
    {
        long reqs = -1;
        apr_int64_t toks = -1;

        /* usage since a time: req-0 (500) is before 501 */
        ck_assert_int_eq(pe_store_msglog_usage(st, 501, &reqs, &toks), PE_STORE_OK);
        ck_assert_int_eq(reqs, 2);
        ck_assert_int_eq(toks, 11 + 12);
        ck_assert_int_eq(pe_store_msglog_usage(st, 0, &reqs, &toks), PE_STORE_OK);
        ck_assert_int_eq(reqs, 3);
        ck_assert_int_eq(toks, 33);
        ck_assert_int_eq(pe_store_msglog_usage(st, 10000, &reqs, &toks), PE_STORE_OK);
        ck_assert_int_eq(reqs, 0);
        ck_assert_int_eq(toks, 0);
        ck_assert_int_eq(pe_store_msglog_top_users(st, 0, 5, &out), PE_STORE_OK);
        ck_assert_int_eq(out->nelts, 2);
        ck_assert_str_eq(APR_ARRAY_IDX(out, 0, pe_usage_row_t *)->user_id, "0000000000000000000001a1");
        ck_assert_int_eq(APR_ARRAY_IDX(out, 0, pe_usage_row_t *)->requests, 2);
        ck_assert_int_eq(APR_ARRAY_IDX(out, 0, pe_usage_row_t *)->tokens, 21);
        ck_assert_str_eq(APR_ARRAY_IDX(out, 1, pe_usage_row_t *)->user_id, "0000000000000000000001a2");
        ck_assert_int_eq(pe_store_msglog_top_users(st, 0, 1, &out), PE_STORE_OK);
        ck_assert_int_eq(out->nelts, 1);
    }
}
END_TEST

/* An operator's reset of a stored prompt: gone, the other r_types kept; NOTFOUND the second time. */
START_TEST(system_prompt_reset)
{
    pe_store_t *st = open_store(_i);
    const char *p;

    ck_assert_int_eq(pe_store_system_prompt_set(st, "bpe", "Override.", "root", 5), PE_STORE_OK);
    ck_assert_int_eq(pe_store_system_prompt_set(st, "custom", "Be a poet.", "root", 5), PE_STORE_OK);
    ck_assert_int_eq(pe_store_system_prompt_reset(st, "bpe"), PE_STORE_OK);
    ck_assert_int_eq(pe_store_system_prompt_get(st, "bpe", &p), PE_STORE_NOTFOUND);
    ck_assert_int_eq(pe_store_system_prompt_get(st, "custom", &p), PE_STORE_OK);
    ck_assert_str_eq(p, "Be a poet.");
    ck_assert_int_eq(pe_store_system_prompt_reset(st, "bpe"), PE_STORE_NOTFOUND);
    ck_assert_int_eq(pe_store_system_prompt_set(st, "bpe", "Again.", "root", 6), PE_STORE_OK);
    ck_assert_int_eq(pe_store_system_prompt_get(st, "bpe", &p), PE_STORE_OK);
    ck_assert_str_eq(p, "Again.");
}
END_TEST

/* Monitoring: the readiness round trip and the usage figures */

START_TEST(monitoring_ping_and_usage)
{
    pe_check_ping_and_usage(open_store(_i));
}
END_TEST

/* API-usage records: batches, retention, sums */

START_TEST(api_usage_records)
{
    pe_check_api_usage(open_store(_i));
}
END_TEST

Suite *pe_suite_store(void)
{
    Suite *s = suite_create("store");
    TCase *tc = pe_tcase("conformance");
    int i, n;

    for (i = 0; i < PE_NBACKENDS; i++) {
        const char *why = pe_backends[i].skip();

        if (why)
            fprintf(stderr, "store conformance: %s not tested: %s\n", pe_backends[i].name, why);
        else
            pe_backends_here[pe_nbackends_here++] = &pe_backends[i];
    }
    for (i = 0; i < pe_nbackends_here; i++)
        fprintf(stderr, "store conformance: iteration %d is %s\n", i, pe_backends_here[i]->name);
    n = pe_nbackends_here;
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, schema_idempotent, 0, n);
    tcase_add_loop_test(tc, user_create_find_conflicts, 0, n);
    tcase_add_loop_test(tc, user_updates, 0, n);
    tcase_add_loop_test(tc, login_reserve_counts_first, 0, n);
    tcase_add_loop_test(tc, sessions, 0, n);
    tcase_add_loop_test(tc, delete_archives, 0, n);
    tcase_add_loop_test(tc, system_prompts, 0, n);
    tcase_add_loop_test(tc, ip_lists, 0, n);
    tcase_add_loop_test(tc, credits_take_until_empty, 0, n);
    tcase_add_loop_test(tc, credits_refund_exact, 0, n);
    tcase_add_loop_test(tc, credits_zero_reset_never_refills, 0, n);
    tcase_add_loop_test(tc, credits_take_n_all_or_nothing, 0, n);
    tcase_add_loop_test(tc, msglog_batch_idempotent, 0, n);
    tcase_add_loop_test(tc, race_credit_takes, 0, n);
    tcase_add_loop_test(tc, race_daily_reset_once, 0, n);
    tcase_add_loop_test(tc, race_registrations_one_email, 0, n);
    tcase_add_loop_test(tc, race_refresh_rotation_once, 0, n);
    tcase_add_loop_test(tc, race_deletions_once, 0, n);
    tcase_add_loop_test(tc, race_login_reserve_all_counted, 0, n);
    tcase_add_loop_test(tc, race_login_reserve_exact, 0, n);
    tcase_add_loop_test(tc, front_end_outcomes, 0, n);
    tcase_add_loop_test(tc, staff_create_find_conflicts, 0, n);
    tcase_add_loop_test(tc, staff_login_reserve_lock_and_password, 0, n);
    tcase_add_loop_test(tc, staff_lifecycle, 0, n);
    tcase_add_loop_test(tc, race_staff_one_username, 0, n);
    tcase_add_loop_test(tc, race_staff_login_reserve_exact, 0, n);
    tcase_add_loop_test(tc, race_last_super_admin, 0, n);
    tcase_add_loop_test(tc, user_update_by_operator, 0, n);
    tcase_add_loop_test(tc, operator_lists, 0, n);
    tcase_add_loop_test(tc, system_prompt_reset, 0, n);
    tcase_add_loop_test(tc, monitoring_ping_and_usage, 0, n);
    tcase_add_loop_test(tc, email_send_limit_per_day, 0, n);
    tcase_add_loop_test(tc, email_code_attempts_and_use, 0, n);
    tcase_add_loop_test(tc, race_email_sends, 0, n);
    tcase_add_loop_test(tc, race_email_attempts, 0, n);
    tcase_add_loop_test(tc, race_email_code_used_once, 0, n);
    tcase_add_loop_test(tc, api_usage_records, 0, n);
    suite_add_tcase(s, tc);
    tc = pe_tcase("front_end");
    tcase_add_test(tc, front_end_retry_policy);
    suite_add_tcase(s, tc);
    if (!pg_skip()) {
        tc = pe_tcase("pgsql");
        tcase_add_test(tc, pgsql_retry_after_connection_ended);
        suite_add_tcase(s, tc);
    }
    return s;
}
