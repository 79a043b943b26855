/*
 * pe_test.h: shared fixture for the check unit tests.
 * Each test gets a fresh APR pool `pe_tp` (created in the forked child, destroyed after).
 * A suite file defines `Suite *pe_suite_<name>(void)`; the Makefile registers it.
 */
#ifndef PE_TEST_H
#define PE_TEST_H

#include <apr_general.h>
#include <apr_pools.h>
#include <check.h>

extern apr_pool_t *pe_tp;

void pe_test_setup(void);
void pe_test_teardown(void);

#include <apr_dbd.h>

/** A database connection for a test: apr_dbd driver `driver` ("sqlite3", "pgsql") with its
 *  parameters (an SQLite file or ":memory:"), closed when pool p is destroyed. NULL when it cannot
 *  be opened (the reason on stderr). *drv gets the driver. */
apr_dbd_t *pe_test_dbd_open(apr_pool_t *p, const char *driver, const char *params, const apr_dbd_driver_t **drv);

/* A test case with the pool fixture. */
static inline TCase *pe_tcase(const char *name)
{
    TCase *tc = tcase_create(name);
    tcase_add_checked_fixture(tc, pe_test_setup, pe_test_teardown);
    tcase_set_timeout(tc, 60);
    return tc;
}

#endif
