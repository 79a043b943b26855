/* pe_unit_main.c: runs every registered suite; exit status = number of failed checks. */
#include "pe_test.h"

#include "pe_logno.h"

#include <stdio.h>
#include <stdlib.h>

apr_pool_t *pe_tp;

void pe_test_setup(void)
{
    apr_pool_create(&pe_tp, NULL);
}

void pe_test_teardown(void)
{
    apr_pool_destroy(pe_tp);
    pe_tp = NULL;
}

typedef struct {
    const apr_dbd_driver_t *drv;
    apr_dbd_t *h;
} pe_test_conn_t;

/* Pool cleanup: close a test connection (sqlite's memory is not pool memory). */
static apr_status_t pe_test_dbd_close(void *data)
{
    pe_test_conn_t *c = data;

    apr_dbd_close(c->drv, c->h);
    return APR_SUCCESS;
}

apr_dbd_t *pe_test_dbd_open(apr_pool_t *p, const char *driver, const char *params, const apr_dbd_driver_t **drv)
{
    pe_test_conn_t *c = apr_pcalloc(p, sizeof(*c));
    const char *err = NULL;

    if (apr_dbd_init(p) != APR_SUCCESS || apr_dbd_get_driver(p, driver, &c->drv) != APR_SUCCESS)
        return NULL;
    if (drv)
        *drv = c->drv;
    if (apr_dbd_open_ex(c->drv, p, params, &c->h, &err) != APR_SUCCESS) {
        fprintf(stderr, "cannot open %s %s: %s\n", driver, params, err ? err : "");
        return NULL;
    }
    apr_pool_cleanup_register(p, c, pe_test_dbd_close, apr_pool_cleanup_null);
    return c->h;
}

#define PE_SUITE(fn) Suite *fn(void);
#include "pe_suites.h"
#undef PE_SUITE

/* Core log lines are noise in test output unless PE_TEST_VERBOSE is set. */
static void pe_test_log(int level, apr_status_t rv, const char *msg)
{
    if (getenv("PE_TEST_VERBOSE"))
        fprintf(stderr, "[pe:%d] %s\n", level, msg);
}

int main(void)
{
    SRunner *sr;
    int failed;

    apr_initialize();
    pe_log_set(pe_test_log);
    atexit(apr_terminate);
    sr = srunner_create(NULL);
#define PE_SUITE(fn) srunner_add_suite(sr, fn());
#include "pe_suites.h"
#undef PE_SUITE
    srunner_run_all(sr, CK_ENV);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
