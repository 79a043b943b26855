/*
 * pe_global.h: process-global state of one configuration generation (never merged):
 * loaded keys now; shm, mutexes and backends as they come. Reset in pre_config, filled in
 * post_config, inherited by the children.
 */
#ifndef PE_GLOBAL_H
#define PE_GLOBAL_H

#include <apr_pools.h>

typedef struct pe_global_t {
    apr_pool_t *pconf;
    int have_secret_key;
    unsigned char secret_key[32];
    int have_encryption_key;
    unsigned char encryption_key[32];
} pe_global_t;

/** This generation's globals (allocated in pre_config on pconf). */
pe_global_t *pe_global(void);

/** Start a new generation on pconf (pre_config). */
void pe_global_reset(apr_pool_t *pconf);

#endif
