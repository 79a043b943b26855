/*
 * pe_email_ap.h: e-mail verification in httpd (src/apache/pe_h_email.c): the /v1/email routes,
 * the gate on API-key routes, and the start-up check of its settings.
 */
#ifndef PE_EMAIL_AP_H
#define PE_EMAIL_AP_H

#include "httpd.h"

#include "pe_auth.h"
#include "pe_email.h"
#include "pe_http.h"

/** The SMTP settings of server s (the mail sender and the readiness check use the same). */
void pe_email_smtp_conf(server_rec *s, pe_smtp_conf_t *c);

/** PEEmailVerification of the request's server. */
int pe_email_verification_on(request_rec *r);

/** 1 when verification is on and the user has not verified the address (API access is closed). */
int pe_email_unverified(request_rec *r, const pe_user_t *u);

/**
 * The gate of the routes an API key opens (completions, batch and research with them, models):
 * OK, or 403 EMAIL_NOT_VERIFIED noted (the caller returns it) for an unverified user's key.
 */
int pe_email_gate(request_rec *r, const pe_principal_t *p);

/** POST /v1/email/send-verification, POST /v1/email/resend, POST /v1/email/verify, GET /v1/email/status */
pe_handler_fn pe_h_email_send, pe_h_email_resend, pe_h_email_verify, pe_h_email_status;

/** test_config and post_config: PEEmailVerification On needs PESMTPURL (httpd refuses to start). */
void pe_email_test_config(apr_pool_t *pconf, server_rec *s);
int pe_email_post_config(apr_pool_t *pconf, apr_pool_t *plog, apr_pool_t *ptemp, server_rec *s);

#endif
