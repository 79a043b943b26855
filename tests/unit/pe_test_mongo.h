/*
 * pe_test_mongo.h: a MongoDB database per test for the unit tests that use one (the store's
 * conformance suite, test_store_mongo.c). PE_TEST_MONGODB_URI names the server
 * (mongodb://host:port/; tests/unit/with-stores.py starts the stand-in and sets it, with
 * PE_TEST_MONGODB_STANDIN=1); each test gets a database of its own, dropped when its pool goes.
 */
#ifndef PE_TEST_MONGO_H
#define PE_TEST_MONGO_H

#include "pe_store_mongo.h"
#include "pe_test.h"

#include <apr_strings.h>
#include <mongoc/mongoc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/** Why MongoDB is not tested here (NULL: it is). */
static inline const char *mg_why_not(void)
{
    const char *u = getenv("PE_TEST_MONGODB_URI");

    return u && *u ? NULL : "PE_TEST_MONGODB_URI is not set";
}

/* Skip (return 1, saying why) without a server. */
static inline int mg_skip(const char *test)
{
    const char *why = mg_why_not();

    if (why)
        fprintf(stderr, "%s: skipped: %s\n", test, why);
    return why != NULL;
}

/* Skip a test that needs a real server's behaviour on the stand-in. */
static inline int mg_skip_standin(const char *test, const char *why)
{
    if (mg_skip(test))
        return 1;
    if (!getenv("PE_TEST_MONGODB_STANDIN"))
        return 0;
    fprintf(stderr, "%s: skipped: the MongoDB stand-in %s; set PE_TEST_MONGODB_URI to a real server\n", test, why);
    return 1;
}

static char mg_db[64];
static pe_mongo_t *mg_m;
static pid_t mg_pid;

/* The URI of this test's database: PE_TEST_MONGODB_URI with its database replaced. */
static inline const char *mg_uri(apr_pool_t *p)
{
    const char *u = getenv("PE_TEST_MONGODB_URI"), *hosts = strstr(u, "://"), *slash, *q;

    ck_assert_ptr_nonnull(hosts);
    slash = strchr(hosts + 3, '/');
    if (!slash)
        return apr_pstrcat(p, u, "/", mg_db, NULL);
    q = strchr(slash, '?');
    return apr_pstrcat(p, apr_pstrmemdup(p, u, (apr_size_t)(slash - u + 1)), mg_db, q ? q : "", NULL);
}

/* Pool cleanup: the test's database dropped (only by the process that made it). */
static inline apr_status_t mg_drop(void *data)
{
    pid_t *owner = data;
    mongoc_client_t *c;
    mongoc_database_t *db;

    if (*owner != getpid())
        return APR_SUCCESS;
    c = mongoc_client_new(mg_uri(pe_tp));
    db = mongoc_client_get_database(c, mg_db);
    mongoc_database_drop(db, NULL);
    mongoc_database_destroy(db);
    mongoc_client_destroy(c);
    return APR_SUCCESS;
}

/* A fresh database for this test (in the test's process, before any handle). */
static inline void mg_fresh(void)
{
    static int n;
    pid_t *owner = apr_palloc(pe_tp, sizeof(*owner));

    snprintf(mg_db, sizeof(mg_db), "pe_unit_%d_%d", (int)getpid(), ++n);
    mg_m = NULL;
    *owner = getpid();
    mongoc_init();
    apr_pool_cleanup_register(pe_tp, owner, mg_drop, apr_pool_cleanup_null);
}

/* A handle on the test's database; the client pool is made once per process (a forked child
 * makes its own: a pool does not survive fork). */
static inline pe_store_t *mg_open(apr_pool_t *p)
{
    const char *err = NULL;

    if (!mg_m || mg_pid != getpid()) {
        mongoc_init();
        mg_m = pe_mongo_create(pe_tp, mg_uri(pe_tp), 0, &err);
        ck_assert_msg(mg_m != NULL, "pe_mongo_create: %s", err ? err : "");
        mg_pid = getpid();
    }
    return pe_store_mongo_make(p, mg_m);
}

#endif
