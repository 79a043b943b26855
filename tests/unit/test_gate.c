/* test_gate.c: the cross-process gate admits at most N holders across processes. */
#include "pe_gate.h"
#include "pe_test.h"

#include <apr_shm.h>
#include <sys/wait.h>
#include <unistd.h>

START_TEST(gate_counts_and_times_out)
{
    pe_gate_t *g;

    ck_assert_int_eq(pe_gate_create(pe_tp, 2, &g), APR_SUCCESS);
    ck_assert_int_eq(pe_gate_free(g), 2);
    ck_assert_int_eq(pe_gate_enter(g, 0), APR_SUCCESS);
    ck_assert_int_eq(pe_gate_enter(g, 0), APR_SUCCESS);
    ck_assert_int_eq(pe_gate_free(g), 0);
    ck_assert_int_eq(pe_gate_enter(g, apr_time_from_msec(50)), APR_TIMEUP);
    pe_gate_leave(g);
    ck_assert_int_eq(pe_gate_enter(g, apr_time_from_msec(50)), APR_SUCCESS);
    pe_gate_leave(g);
    pe_gate_leave(g);
    ck_assert_int_eq(pe_gate_free(g), 2);
}
END_TEST

/* Six processes hold the gate of 2 for a while each; the most ever inside at once is 2. */
START_TEST(gate_across_processes)
{
    pe_gate_t *g;
    apr_shm_t *shm;
    volatile int *inside, *most;
    int i, status;

    ck_assert_int_eq(pe_gate_create(pe_tp, 2, &g), APR_SUCCESS);
    ck_assert_int_eq(apr_shm_create(&shm, 2 * sizeof(int), NULL, pe_tp), APR_SUCCESS);
    inside = apr_shm_baseaddr_get(shm);
    most = inside + 1;
    *inside = *most = 0;
    for (i = 0; i < 6; i++) {
        if (fork() == 0) {
            int n;
            if (pe_gate_enter(g, apr_time_from_sec(10)) != APR_SUCCESS)
                _exit(1);
            n = __sync_add_and_fetch(inside, 1);
            for (;;) {
                int m = *most;
                if (n <= m || __sync_bool_compare_and_swap(most, m, n))
                    break;
            }
            usleep(30000);
            __sync_sub_and_fetch(inside, 1);
            pe_gate_leave(g);
            _exit(0);
        }
    }
    for (i = 0; i < 6; i++) {
        wait(&status);
        ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    }
    ck_assert_int_eq(*most, 2);
    ck_assert_int_eq(pe_gate_free(g), 2);
}
END_TEST

Suite *pe_suite_gate(void)
{
    Suite *s = suite_create("gate");
    TCase *tc = pe_tcase("gate");

    tcase_add_test(tc, gate_counts_and_times_out);
    tcase_add_test(tc, gate_across_processes);
    suite_add_tcase(s, tc);
    return s;
}
