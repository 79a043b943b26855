/* pe_gate.c: a cross-process counting gate (POSIX semaphore in anonymous shared memory). */
#include "pe_gate.h"

#include <apr_shm.h>
#include <errno.h>
#include <semaphore.h>
#include <time.h>

struct pe_gate_t {
    apr_shm_t *shm;
    sem_t *sem;
};

/* Pool cleanup: destroy the semaphore before its segment goes. */
static apr_status_t gate_cleanup(void *data)
{
    pe_gate_t *g = data;

    sem_destroy(g->sem);
    return APR_SUCCESS;
}

apr_status_t pe_gate_create(apr_pool_t *p, unsigned n, pe_gate_t **out)
{
    pe_gate_t *g = apr_pcalloc(p, sizeof(*g));
    apr_status_t rv = apr_shm_create(&g->shm, sizeof(sem_t), NULL, p);

    if (rv != APR_SUCCESS)
        return rv;
    g->sem = apr_shm_baseaddr_get(g->shm);
    if (sem_init(g->sem, 1, n) != 0)
        return APR_FROM_OS_ERROR(errno);
    /* NB: registered after the shm's own cleanup, so it runs first (cleanups run LIFO). */
    apr_pool_cleanup_register(p, g, gate_cleanup, apr_pool_cleanup_null);
    *out = g;
    return APR_SUCCESS;
}

apr_status_t pe_gate_enter(pe_gate_t *g, apr_interval_time_t wait)
{
    struct timespec ts;
    apr_time_t until;

    clock_gettime(CLOCK_REALTIME, &ts);
    until = apr_time_from_sec(ts.tv_sec) + ts.tv_nsec / 1000 + wait;
    ts.tv_sec = (time_t)apr_time_sec(until);
    ts.tv_nsec = (long)apr_time_usec(until) * 1000;
    for (;;) {
        if (sem_timedwait(g->sem, &ts) == 0)
            return APR_SUCCESS;
        if (errno == ETIMEDOUT)
            return APR_TIMEUP;
        if (errno != EINTR)
            return APR_FROM_OS_ERROR(errno);
    }
}

void pe_gate_leave(pe_gate_t *g)
{
    sem_post(g->sem);
}

int pe_gate_free(pe_gate_t *g)
{
    int v = 0;

    sem_getvalue(g->sem, &v);
    return v;
}
