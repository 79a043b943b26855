/*
 * pe_auth.h: who is calling. A bearer credential (API key or session token, both looked up by
 * their HMAC digest) becomes a principal of exactly one kind; `AuthType PromptEnchanter`
 * (check_authn) and the route table's auth bits both go through pe_auth_principal, and the
 * authz providers `Require pe-role ...` and `Require pe-verified` read its result.
 */
#ifndef PE_AUTH_H
#define PE_AUTH_H

#include "httpd.h"
#include "pe_store.h"

typedef struct pe_principal_t {
    pe_principal_kind_e kind;
    unsigned via; /* PE_AUTH_* bit of the credential used */
    const char *id, *username;
    int is_verified, is_super;
    pe_user_t *user;       /* users */
    pe_session_t *session; /* session credentials */
    pe_staff_t *staff;     /* administrators and support staff */
    int role;              /* pe_role_e of an operator (pe_staff.h); 0 for users */
} pe_principal_t;

/**
 * The request's principal from its bearer credential, looked up once per request.
 * @return OK with *out set; HTTP_UNAUTHORIZED (message noted for the error envelope, and
 *         WWW-Authenticate: Bearer set); or HTTP_SERVICE_UNAVAILABLE when the store is down
 */
int pe_auth_principal(request_rec *r, pe_principal_t **out);

/** May principal p take the route's action (pe_action_e; pe_staff.h)? OK, or 403 noted. */
int pe_auth_need_check(request_rec *r, int need, pe_principal_t *p);

/** Does principal p satisfy a route's PE_AUTH_* bits? OK, or a status with the error noted. */
int pe_auth_route_check(request_rec *r, unsigned auth, pe_principal_t *p);

/** The request's store (mod_dbd), or NULL with a 503 noted. */
pe_store_t *pe_auth_store(request_rec *r);

/** check_authn for AuthType PromptEnchanter. */
int pe_auth_check_authn(request_rec *r);

/** Register the authz providers pe-role and pe-verified. */
void pe_auth_register_providers(apr_pool_t *p);

#define PE_AUTH_TYPE "PromptEnchanter"

#endif
