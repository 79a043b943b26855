/*
 * pe_principal_ap.h: the per-node principal cache (src/apache/pe_principal_ap.c).
 *
 * An API key's user, as the completion routes need it (id, username, level, r_types, plan,
 * verified), kept in shared memory keyed by the key's digest, so a completion does not read the
 * user row on every request. Every entry carries the node's generation counter as it was before
 * the row was read; pe_principal_changed() bumps the counter, which makes every entry of the node
 * stale at once, in every child. Changes made on another node (or directly in the store) are seen
 * here within PEPrincipalCacheTTL (an entry is never used longer than that; 0 = no cache).
 * Only active users with an API key are cached; a refused key is never cached.
 */
#ifndef PE_PRINCIPAL_AP_H
#define PE_PRINCIPAL_AP_H

#include "httpd.h"
#include "pe_store.h"

/** The `Mutex` type of the cache's table. */
#define PE_PRINCIPAL_MUTEX "pe-principal"

/** Entries of the shared table (about 440 bytes each). */
#define PE_PRINCIPAL_SLOTS 4096

/** pre_config: register the mutex type. */
int pe_principal_pre_config(apr_pool_t *pconf, apr_pool_t *plog, apr_pool_t *ptemp);

/** post_config: the shared table, made once per httpd parent (kept over graceful restarts). */
int pe_principal_post_config(apr_pool_t *pconf, apr_pool_t *ptemp, server_rec *s);

/** child_init: this child's handle of the table's mutex. */
void pe_principal_child_init(apr_pool_t *pchild, server_rec *s);

/**
 * The cached user of an API key digest.
 * @param gen receives the generation to pass to pe_principal_remember() after a miss (read
 *            before the store is, so a change made meanwhile makes the new entry stale)
 * @return 1 and *out (in r->pool, is_active 1) on a hit; 0 on a miss or with the cache off
 */
int pe_principal_lookup(request_rec *r, const char *digest, pe_user_t **out, apr_uint64_t *gen);

/** Keep an active user read from the store under its key digest, tagged with gen. */
void pe_principal_remember(request_rec *r, const char *digest, apr_uint64_t gen, const pe_user_t *u);

/**
 * A user changed on this node (API key regenerated, deactivated, deleted, level, r_types, plan or
 * limits changed...): call it after the store write succeeded and before answering. Every cached
 * principal of this node is stale from now on, in every child; other nodes see the change within
 * PEPrincipalCacheTTL. user_id is for the debug log (may be NULL). Safe to call from any thread.
 */
void pe_principal_changed(server_rec *s, const char *user_id);

#endif
