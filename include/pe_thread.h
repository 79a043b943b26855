#ifndef PE_THREAD_H
#define PE_THREAD_H
/* pe_thread.h: the module's threads and the process's termination signals. */
#include <apr_thread_proc.h>
#include <signal.h>

/* apr_thread_create with every asynchronous signal blocked in the new thread (the faults that a
 * thread raises itself still reach it), so the MPM's handlers of SIGTERM and SIGHUP (which exit
 * the process and destroy pchild) never run on a thread of the module. */
apr_status_t pe_thread_create(apr_thread_t **t, apr_threadattr_t *attr, apr_thread_start_t fn, void *data,
                              apr_pool_t *p);

/* Block SIGTERM and SIGHUP in the calling thread; the previous mask in *old. */
void pe_term_signals_hold(sigset_t *old);

/* Restore the mask saved by pe_term_signals_hold: a termination signal received meanwhile is
 * delivered now. */
void pe_term_signals_release(const sigset_t *old);

#endif
