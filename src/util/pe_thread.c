/* pe_thread.c: the module's threads and the process's termination signals. */
#include "pe_thread.h"

#include <pthread.h>

apr_status_t pe_thread_create(apr_thread_t **t, apr_threadattr_t *attr, apr_thread_start_t fn, void *data,
                              apr_pool_t *p)
{
    static const int faults[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT, SIGTRAP, SIGSYS};
    sigset_t all, old;
    apr_status_t rv;
    unsigned i;

    /* NB: a new thread starts with its creator's mask; blocked here, it is blocked there. */
    sigfillset(&all);
    for (i = 0; i < sizeof(faults) / sizeof(faults[0]); i++)
        sigdelset(&all, faults[i]);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    rv = apr_thread_create(t, attr, fn, data, p);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return rv;
}

void pe_term_signals_hold(sigset_t *old)
{
    sigset_t term;

    sigemptyset(&term);
    sigaddset(&term, SIGTERM);
    sigaddset(&term, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &term, old);
}

void pe_term_signals_release(const sigset_t *old)
{
    pthread_sigmask(SIG_SETMASK, old, NULL);
}
