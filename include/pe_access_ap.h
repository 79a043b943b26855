/*
 * pe_access_ap.h: the access layer's httpd side: firewall (automatic and stored blocks), IP
 * whitelist, per-address and per-principal rate limits (src/apache/pe_access_ap.c).
 *
 * State shared by every process (counters, strikes, automatic blocks) lives in one pe_shm table
 * guarded by the "pe-access" global mutex; both are made once per httpd parent and kept across
 * graceful restarts, so a restart does not hand out fresh allowances. With memcached servers
 * (PEAccessServers, default PECacheServers) the rate-limit counters are also shared by all nodes.
 */
#ifndef PE_ACCESS_AP_H
#define PE_ACCESS_AP_H

#include "httpd.h"
#include "pe_auth.h"

/** pre_config: register the pe-access mutex (so `Mutex pe-access ...` works). */
int pe_access_pre_config(apr_pool_t *pconf, apr_pool_t *plog, apr_pool_t *ptemp);

/** post_config (not the dry run): the shared table and its mutex, made once per httpd parent. */
int pe_access_post_config(apr_pool_t *pconf, apr_pool_t *ptemp, server_rec *s);

/** child_init: the mutex in this child, the stored-list cache, the memcached client. */
void pe_access_child_init(apr_pool_t *pchild, server_rec *s);

/**
 * access_checker hook, before authentication, on PromptEnchanter locations: automatic and stored
 * blocks (403), whitelist mode (403), the per-address rate limit (429).
 */
int pe_access_check(request_rec *r);

/**
 * The per-principal rate limit of p's plan (PEPrincipalRateLimit), once authenticated.
 * @return OK, or HTTP_TOO_MANY_REQUESTS noted with pe_http_fail (headers set either way)
 */
int pe_access_principal(request_rec *r, const pe_principal_t *p);

/** How long pe_access_attempt_begin waits for attempts in progress to decide. */
#define PE_ACCESS_ATTEMPT_WAIT apr_time_from_sec(5)

/**
 * Before a credential from r's client address is verified: reserve the attempt in PEAutoBlock's
 * shared counters (count first, then check), so that however many attempts run at once, no more
 * than the PEAutoBlock count of failures is ever verified before the address is blocked. While
 * failures and attempts in progress fill the allowance, waits (at most PE_ACCESS_ATTEMPT_WAIT) for
 * those attempts to decide. Settle with pe_access_attempt_end; an attempt not settled when the
 * request ends is given back. Does nothing when PEAutoBlock is off or the request is not ours.
 * @return OK (reserved, or nothing to do), or an HTTP status noted with pe_http_fail: 403
 *         IP_BLOCKED (the address is blocked), 429 TOO_MANY_ATTEMPTS (the wait ran out)
 */
int pe_access_attempt_begin(request_rec *r);

/**
 * The attempt of r is decided: failed counts it towards PEAutoBlock (and may start the block:
 * PE45030 and the ip_temporarily_blocked event), passed gives it back. Without a reserved
 * attempt a failure is still counted.
 * @param reason what failed (for the log and the security event), e.g. "login_failed"
 */
void pe_access_attempt_end(request_rec *r, int failed, const char *reason);

/** pe_access_attempt_end(r, 1, reason): one failed authentication or login from r's address. */
void pe_access_auth_failed(request_rec *r, const char *reason);

/**
 * Count a wrong API key (or a credential of no known format) towards PEAutoBlock once per
 * distinct credential, address and PEAutoBlock window: a client that keeps retrying its one stale
 * key makes one strike; trying a list of keys makes one per key.
 * @param digest the credential's lookup digest (the credential itself is never kept)
 */
void pe_access_credential_failed(request_rec *r, const char *reason, const char *digest);

#endif
