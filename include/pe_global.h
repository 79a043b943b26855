/*
 * pe_global.h: process-global state of one configuration generation (never merged):
 * loaded keys now; shm, mutexes and backends as they come. Reset in pre_config, filled in
 * post_config, inherited by the children.
 */
#ifndef PE_GLOBAL_H
#define PE_GLOBAL_H

#include <apr_hash.h>
#include <apr_pools.h>

#include "pe_crypto.h"
#include "pe_gate.h"

typedef struct pe_global_t {
    apr_pool_t *pconf;
    int have_secret_key;
    unsigned char secret_key[32];
    int have_encryption_key;
    unsigned char encryption_key[32];
    pe_keyring_t *keyring;       /* encryption keys by id; the current one seals */
    apr_hash_t *common_passwords; /* lower-cased; NULL when PECommonPasswordFile is unset */
    pe_gate_t *hash_gate;        /* concurrent Argon2 computations, server-wide */
    const char *dummy_hash;      /* verified for unknown e-mails, so both cases take as long */
} pe_global_t;

/** This generation's globals (allocated in pre_config on pconf). */
pe_global_t *pe_global(void);

/** Start a new generation on pconf (pre_config). */
void pe_global_reset(apr_pool_t *pconf);

#endif
