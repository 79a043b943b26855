/* test_thread.c: the module's threads start with termination signals blocked (an MPM's exit
 * handler never runs on them); faults still reach them; the creator's mask is unchanged. */
#include "pe_test.h"
#include "pe_thread.h"

#include <pthread.h>
#include <string.h>

static void *APR_THREAD_FUNC mask_of_thread(apr_thread_t *t, void *data)
{
    sigset_t *m = data;

    (void)t;
    pthread_sigmask(SIG_BLOCK, NULL, m);
    return NULL;
}

START_TEST(thread_blocks_termination_signals)
{
    sigset_t before, after, inside;
    apr_thread_t *t;
    apr_status_t rv;

    pthread_sigmask(SIG_BLOCK, NULL, &before);
    ck_assert(!sigismember(&before, SIGTERM));
    ck_assert_int_eq(pe_thread_create(&t, NULL, mask_of_thread, &inside, pe_tp), APR_SUCCESS);
    apr_thread_join(&rv, t);
    ck_assert(sigismember(&inside, SIGTERM));
    ck_assert(sigismember(&inside, SIGHUP));
    ck_assert(sigismember(&inside, SIGUSR1));
    ck_assert(!sigismember(&inside, SIGSEGV));
    ck_assert(!sigismember(&inside, SIGABRT));
    pthread_sigmask(SIG_BLOCK, NULL, &after);
    ck_assert(!sigismember(&after, SIGTERM));
}
END_TEST

/* pe_term_signals_hold holds SIGTERM and SIGHUP; a SIGTERM sent meanwhile waits for the release. */
static volatile sig_atomic_t got_term;

static void on_term(int sig)
{
    (void)sig;
    got_term = 1;
}

START_TEST(hold_defers_sigterm_to_release)
{
    struct sigaction sa, old_sa;
    sigset_t old, now;

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_term;
    sigaction(SIGTERM, &sa, &old_sa);
    got_term = 0;
    pe_term_signals_hold(&old);
    pthread_sigmask(SIG_BLOCK, NULL, &now);
    ck_assert(sigismember(&now, SIGTERM));
    ck_assert(sigismember(&now, SIGHUP));
    raise(SIGTERM);
    ck_assert_int_eq(got_term, 0);
    pe_term_signals_release(&old);
    ck_assert_int_eq(got_term, 1);
    pthread_sigmask(SIG_BLOCK, NULL, &now);
    ck_assert(!sigismember(&now, SIGTERM));
    sigaction(SIGTERM, &old_sa, NULL);
}
END_TEST

Suite *pe_suite_thread(void)
{
    Suite *s = suite_create("thread");
    TCase *tc = pe_tcase("thread");

    tcase_add_test(tc, thread_blocks_termination_signals);
    tcase_add_test(tc, hold_defers_sigterm_to_release);
    suite_add_tcase(s, tc);
    return s;
}
