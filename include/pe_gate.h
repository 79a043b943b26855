/*
 * pe_gate.h: a counting gate shared by every process of the server: at most N holders at
 * once, waiting a bounded time for a place. Used to cap concurrent Argon2 hashes server-wide
 * (each takes its memory cost, 64 MiB by default), so a login storm cannot exhaust memory.
 * A POSIX semaphore in an anonymous apr_shm segment made before the children fork.
 */
#ifndef PE_GATE_H
#define PE_GATE_H

#include <apr_pools.h>
#include <apr_time.h>

typedef struct pe_gate_t pe_gate_t;

/** Create a gate with n places, living as long as p (create it in the parent, on pconf). */
apr_status_t pe_gate_create(apr_pool_t *p, unsigned n, pe_gate_t **out);

/** Take a place, waiting at most `wait`; APR_TIMEUP when none freed in time. */
apr_status_t pe_gate_enter(pe_gate_t *g, apr_interval_time_t wait);

/** Give the place back. */
void pe_gate_leave(pe_gate_t *g);

/** Places free now (for tests and metrics). */
int pe_gate_free(pe_gate_t *g);

#endif
