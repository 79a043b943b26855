/* test_store_dbd.c: the dbd store against a real SQLite file through apr_dbd. */
#include "pe_store.h"
#include "pe_test.h"

#include <apr_strings.h>
#include <stdio.h>
#include <unistd.h>

static const apr_dbd_driver_t *drv;
static char dbpath[64];

/* Open dbpath (or name), closed with the test pool. */
static apr_dbd_t *open_conn(const char *name)
{
    return pe_test_dbd_open(name, &drv);
}

/* A fresh database file and a store on it. */
static pe_store_t *open_store(void)
{
    apr_dbd_t *h;
    pe_store_t *st;
    int applied;

    if (!dbpath[0]) {
        snprintf(dbpath, sizeof(dbpath), "/tmp/pe-unit-store-%d.db", (int)getpid());
        unlink(dbpath);
    }
    ck_assert_ptr_nonnull(h = open_conn(dbpath));
    st = pe_store_dbd_make(pe_tp, drv, h, apr_hash_make(pe_tp), pe_tp);
    ck_assert_int_eq(pe_store_schema_apply(st, &applied), PE_STORE_OK);
    return st;
}

static void close_db(void)
{
    unlink(dbpath);
    dbpath[0] = '\0';
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
    pe_store_t *st = open_store();
    int applied = -1;

    ck_assert_int_eq(pe_store_schema_apply(st, &applied), PE_STORE_OK);
    ck_assert_int_eq(applied, 0);
    ck_assert_int_ge(pe_store_schema_version(), 1);
    close_db();
}
END_TEST

START_TEST(user_create_find_conflicts)
{
    pe_store_t *st = open_store();
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
    ck_assert_str_eq(st->conflict, "username");
    ck_assert_int_eq(pe_store_user_create(st, mkuser("bob", "alice@example.com", "d3")), PE_STORE_CONFLICT);
    ck_assert_str_eq(st->conflict, "email");
    ck_assert_int_eq(pe_store_user_create(st, mkuser("carol", "carol@example.com", "d1")), PE_STORE_CONFLICT);
    ck_assert_str_eq(st->conflict, "api_key");
    /* usernames are case-sensitive (SPEC 6.1) */
    ck_assert_int_eq(pe_store_user_create(st, mkuser("Alice", "alice2@example.com", "d4")), PE_STORE_OK);
    close_db();
}
END_TEST

START_TEST(user_updates)
{
    pe_store_t *st = open_store();
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
    close_db();
}
END_TEST

START_TEST(login_failures_lock_and_expiry)
{
    pe_store_t *st = open_store();
    pe_user_t *u = mkuser("erin", "erin@example.com", "e1");
    apr_time_t hour = apr_time_from_sec(3600), lu = 0;
    int failed = 0, i;

    pe_store_user_create(st, u);
    for (i = 1; i <= 4; i++) {
        ck_assert_int_eq(pe_store_user_login_failed(st, u->id, 1000, 5, hour, &failed, &lu), PE_STORE_OK);
        ck_assert_int_eq(failed, i);
        ck_assert_int_eq(lu, 0);
    }
    ck_assert_int_eq(pe_store_user_login_failed(st, u->id, 1000, 5, hour, &failed, &lu), PE_STORE_OK);
    ck_assert_int_eq(failed, 5);
    ck_assert_int_eq(lu, 1000 + hour);
    /* a failure during the lock does not extend it */
    pe_store_user_login_failed(st, u->id, 2000, 5, hour, &failed, &lu);
    ck_assert_int_eq(lu, 1000 + hour);
    /* after expiry, the counter starts again: one failure does not re-lock */
    pe_store_user_login_failed(st, u->id, 1000 + hour + 1, 5, hour, &failed, &lu);
    ck_assert_int_eq(failed, 1);
    ck_assert_int_eq(lu, 0);
    ck_assert_int_eq(pe_store_user_login_ok(st, u->id, 9), PE_STORE_OK);
    pe_store_user_by_id(st, u->id, &u);
    ck_assert_int_eq(u->failed_logins, 0);
    ck_assert_int_eq(u->last_login, 9);
    close_db();
}
END_TEST

START_TEST(login_reserve_counts_first)
{
    pe_store_t *st = open_store();
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
    for (i = 0; i < 24; i++) {
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
    /* a success clears the reservations; a max of 1 locks on the first attempt */
    ck_assert_int_eq(pe_store_user_login_ok(st, u->id, 9), PE_STORE_OK);
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
    close_db();
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
    pe_store_t *st = open_store();
    pe_session_t *s1 = mksess("u1", "t1", "r1", 100), *got;

    ck_assert_int_eq(pe_store_session_create(st, s1), PE_STORE_OK);
    ck_assert_int_eq(pe_store_session_create(st, mksess("u1", "t2", "r2", 100)), PE_STORE_OK);
    ck_assert_int_eq(pe_store_session_create(st, mksess("u2", "t3", "r3", 100)), PE_STORE_OK);
    ck_assert_int_eq(pe_store_session_by_token(st, "t1", 50, &got), PE_STORE_OK);
    ck_assert_int_eq(got->kind, PE_PRINCIPAL_USER);
    ck_assert_str_eq(got->principal_id, "u1");
    ck_assert_int_eq(got->last_used, 50);
    ck_assert_int_eq(pe_store_session_by_token(st, "t1", 100, &got), PE_STORE_NOTFOUND); /* expired */
    /* rotation: the first wins, the old refresh token is dead */
    ck_assert_int_eq(pe_store_session_rotate(st, "r1", "t1b", "r1b", 300, 400, 60, &got), PE_STORE_OK);
    ck_assert_str_eq(got->token_digest, "t1b");
    ck_assert_str_eq(got->id, s1->id);
    ck_assert_int_eq(pe_store_session_rotate(st, "r1", "t1c", "r1c", 300, 400, 61, &got), PE_STORE_NOTFOUND);
    ck_assert_int_eq(pe_store_session_by_token(st, "t1", 61, &got), PE_STORE_NOTFOUND);
    ck_assert_int_eq(pe_store_session_by_token(st, "t1b", 61, &got), PE_STORE_OK);
    /* expired refresh tokens do not rotate */
    ck_assert_int_eq(pe_store_session_rotate(st, "r2", "x", "y", 1, 2, 1000, &got), PE_STORE_NOTFOUND);
    /* delete all but one, then logout */
    ck_assert_int_eq(pe_store_session_delete_all(st, PE_PRINCIPAL_USER, "u1", s1->id), PE_STORE_OK);
    ck_assert_int_eq(pe_store_session_by_token(st, "t2", 61, &got), PE_STORE_NOTFOUND);
    ck_assert_int_eq(pe_store_session_by_token(st, "t3", 61, &got), PE_STORE_OK);
    ck_assert_int_eq(pe_store_session_delete(st, "t1b"), PE_STORE_OK);
    ck_assert_int_eq(pe_store_session_delete(st, "t1b"), PE_STORE_NOTFOUND);
    /* an admin session for the same id is not a user session */
    got = mksess("u2", "t4", "r4", 100);
    got->kind = PE_PRINCIPAL_ADMIN;
    pe_store_session_create(st, got);
    ck_assert_int_eq(pe_store_session_delete_all(st, PE_PRINCIPAL_USER, "u2", NULL), PE_STORE_OK);
    ck_assert_int_eq(pe_store_session_by_token(st, "t4", 61, &got), PE_STORE_OK);
    ck_assert_int_eq(got->kind, PE_PRINCIPAL_ADMIN);
    close_db();
}
END_TEST

START_TEST(delete_archives)
{
    pe_store_t *st = open_store();
    pe_user_t *u = mkuser("frank", "frank@example.com", "f1"), *got;
    json_t *d = json_pack("{s:s}", "why", "test");
    long n = -1;

    pe_store_user_create(st, u);
    pe_store_session_create(st, mksess(u->id, "ft", "fr", 100));
    ck_assert_int_eq(pe_store_user_delete(st, u, "bye", "self", 77), PE_STORE_OK);
    ck_assert_int_eq(pe_store_user_by_id(st, u->id, &got), PE_STORE_NOTFOUND);
    ck_assert_int_eq(pe_store_session_by_token(st, "ft", 1, (pe_session_t **)&got), PE_STORE_NOTFOUND);
    ck_assert_int_eq(pe_store_user_delete(st, u, "bye", "self", 78), PE_STORE_CONFLICT); /* archived once */
    ck_assert_int_eq(pe_store_event(st, "account_deleted", PE_PRINCIPAL_USER, u->id, "frank", "127.0.0.1", d,
                                    "info", 79),
                     PE_STORE_OK);
    ck_assert_int_eq(pe_store_event_count(st, "account_deleted", u->id, &n), PE_STORE_OK);
    ck_assert_int_eq(n, 1);
    ck_assert_int_eq(pe_store_event_count(st, "account_deleted", "other", &n), PE_STORE_OK);
    ck_assert_int_eq(n, 0);
    json_decref(d);
    close_db();
}
END_TEST

/* The glue's reconnect: open the same file again. */
static int reconnects;
static apr_status_t reopen(pe_store_t *st)
{
    reconnects++;
    st->prepared = apr_hash_make(st->pool);
    st->handle = open_conn(dbpath);
    return st->handle ? APR_SUCCESS : APR_EGENERAL;
}

START_TEST(retry_on_new_connection)
{
    pe_store_t *st = open_store();
    pe_user_t *got;

    pe_store_user_create(st, mkuser("gina", "gina@example.com", "g1"));
    /* put the store on a connection without the schema: its statements fail */
    st->prepared = apr_hash_make(pe_tp);
    ck_assert_ptr_null(open_conn("/nonexistent-dir/x.db"));
    ck_assert_ptr_nonnull(st->handle = open_conn(":memory:"));
    st->reconnect = reopen;
    reconnects = 0;
    /* check_conn passes on the schema-less connection, so the first retry fails there and the
     * second gets a new connection from the glue */
    ck_assert_int_eq(pe_store_user_by_email(st, "gina@example.com", &got), PE_STORE_OK);
    ck_assert_int_eq(reconnects, 1);
    ck_assert_int_eq(st->retried, 2);
    ck_assert_str_eq(got->username, "gina");
    /* the retries of a handle are spent: no more reconnects */
    ck_assert_int_eq(pe_store_user_by_email(st, "x@example.com", &got), PE_STORE_NOTFOUND);
    ck_assert_int_eq(reconnects, 1);
    close_db();
}
END_TEST

START_TEST(system_prompts)
{
    pe_store_t *st = open_store();
    const char *p = "x";

    ck_assert_int_eq(pe_store_system_prompt_get(st, "custom", &p), PE_STORE_NOTFOUND);
    ck_assert_ptr_null(p);
    ck_assert_int_eq(pe_store_system_prompt_set(st, "custom", "Be a pirate.", "admin", 5), PE_STORE_OK);
    ck_assert_int_eq(pe_store_system_prompt_get(st, "custom", &p), PE_STORE_OK);
    ck_assert_str_eq(p, "Be a pirate.");
    ck_assert_int_eq(pe_store_system_prompt_set(st, "custom", "Be a poet.", "admin", 6), PE_STORE_OK);
    ck_assert_int_eq(pe_store_system_prompt_get(st, "custom", &p), PE_STORE_OK);
    ck_assert_str_eq(p, "Be a poet.");
    ck_assert_int_eq(pe_store_system_prompt_get(st, "bpe", &p), PE_STORE_NOTFOUND);
    close_db();
}
END_TEST

/* The access layer's lists: add, active entries (expiry, is_active), remove; both lists apart. */
START_TEST(ip_lists)
{
    pe_store_t *st = open_store();
    pe_ipentry_t e = {0, "192.0.2.7", "abuse", "admin", 10, 0, 1};
    apr_array_header_t *rows;
    const pe_ipentry_t *got;

    ck_assert_int_eq(pe_store_iplist_add(st, PE_IPLIST_BLOCKED, &e), PE_STORE_OK);
    e.network = "10.0.0.0/8"; e.note = "until 1000"; e.expires_at = 1000;
    ck_assert_int_eq(pe_store_iplist_add(st, PE_IPLIST_BLOCKED, &e), PE_STORE_OK);
    e.network = "198.51.100.1"; e.note = "off"; e.expires_at = 0; e.is_active = 0;
    ck_assert_int_eq(pe_store_iplist_add(st, PE_IPLIST_BLOCKED, &e), PE_STORE_OK);
    e.network = "2001:db8::/32"; e.note = "office"; e.is_active = 1;
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
    close_db();
}
END_TEST

Suite *pe_suite_store_dbd(void)
{
    Suite *s = suite_create("store_dbd");
    TCase *tc = pe_tcase("sqlite");

    tcase_add_test(tc, schema_idempotent);
    tcase_add_test(tc, user_create_find_conflicts);
    tcase_add_test(tc, user_updates);
    tcase_add_test(tc, login_failures_lock_and_expiry);
    tcase_add_test(tc, login_reserve_counts_first);
    tcase_add_test(tc, sessions);
    tcase_add_test(tc, delete_archives);
    tcase_add_test(tc, retry_on_new_connection);
    tcase_add_test(tc, system_prompts);
    tcase_add_test(tc, ip_lists);
    suite_add_tcase(s, tc);
    return s;
}
