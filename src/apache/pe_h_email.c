/*
 * pe_h_email.c: the email route group (/v1/email/...; SPEC 7 with the fixes of 16.1 items 10-11
 * and 16.2 items 21, 29): one-time codes sent over SMTP, checked with a limit of attempts, and
 * the gate that keeps an unverified user's API key closed.
 *
 * A send is counted against the day's limit before the mail goes (so N parallel sends cannot pass
 * the limit) and given back when the mail server cannot take it: the request answers 503
 * MAIL_UNAVAILABLE within PESMTPTimeout, the count and the current code unchanged. The code is
 * stored (as a digest) only once the server has accepted the mail, replacing the previous one.
 */
#include "pe_principal_ap.h"
#include "pe_auth.h"
#include "pe_config.h"
#include "pe_crypto.h"
#include "pe_email.h"
#include "pe_email_ap.h"
#include "pe_global.h"
#include "pe_json.h"
#include "pe_log.h"
#include "pe_valid.h"

#include "http_core.h"
#include "http_protocol.h"
#include <apr_strings.h>

/* Sends in progress in the whole server (PESMTPMaxConcurrent): a hung mail server holds at most
 * this many workers, each for at most PESMTPTimeout. Made in post_config, inherited by children. */
static pe_gate_t *pe_mail_gate;

int pe_email_verification_on(request_rec *r)
{
    return pe_srv_email_verification(pe_config_srv(r->server));
}

int pe_email_unverified(request_rec *r, const pe_user_t *u)
{
    return pe_email_verification_on(r) && u && !u->is_verified;
}

int pe_email_gate(request_rec *r, const pe_principal_t *p)
{
    if (!p || p->via != PE_AUTH_USER_KEY || !pe_email_unverified(r, p->user))
        return OK;
    return pe_http_fail(r, HTTP_FORBIDDEN, "EMAIL_NOT_VERIFIED", NULL,
                        "Email verification required: verify your email address before using the API "
                        "(POST /v1/email/send-verification with your session token, then POST /v1/email/verify "
                        "with the code from the email)");
}

/* A security event; a failure to store it is logged, never fatal. Takes details (new ref). */
static void email_event(request_rec *r, pe_store_t *st, const char *type, const pe_user_t *u, json_t *details,
                        const char *severity)
{
    pe_json_bind(r->pool, details);
    if (pe_store_event(st, type, PE_PRINCIPAL_USER, u->id, u->username, r->useragent_ip, details, severity,
                       apr_time_now()) != PE_STORE_OK)
        pe_rlog(r, APLOG_WARNING, 0, PE_LOGNO(11004) "security event %s was not stored: %s", type,
                pe_store_error(st) ? pe_store_error(st) : "store error");
}

static int email_store_down(request_rec *r)
{
    apr_table_setn(r->err_headers_out, "Retry-After", "5");
    return pe_http_error(r, HTTP_SERVICE_UNAVAILABLE, "STORE_UNAVAILABLE", "the user store is unavailable");
}

/* {"success":ok,"message":msg,"expires_at":at or null} plus extra's members. */
static int email_reply(request_rec *r, int ok, const char *msg, apr_time_t expires_at, json_t *extra)
{
    json_t *o = pe_json_object(r->pool);

    json_object_set_new(o, "success", json_boolean(ok));
    json_object_set_new(o, "message", json_string(msg));
    json_object_set_new(o, "expires_at", expires_at ? pe_http_time(r->pool, expires_at) : json_null());
    if (extra) {
        json_object_update(o, extra);
        json_decref(extra);
    }
    return pe_http_send_json(r, HTTP_OK, o);
}

/* Disabled (400) or already verified (200, success false): the answers every route starts with. */
static int email_precheck(request_rec *r, const pe_user_t *u, int *done)
{
    *done = 1;
    if (!pe_email_verification_on(r))
        return pe_http_error(r, HTTP_BAD_REQUEST, "EMAIL_VERIFICATION_DISABLED", "Email verification is disabled");
    if (u->is_verified)
        return email_reply(r, 0, "Email is already verified", 0, NULL);
    *done = 0;
    return OK;
}

/* 422 naming every field problem. */
static int email_invalid(request_rec *r, const pe_valid_t *v)
{
    json_t *extra = pe_json_object(r->pool);

    json_object_set_new(extra, "errors", pe_valid_errors_json(v));
    return pe_http_error_ex(r, HTTP_UNPROCESSABLE_ENTITY, "VALIDATION_ERROR", extra, "%s", pe_valid_first(v));
}

/* After the body: its problems (422), the precheck, a store; *done when an answer was sent. */
static int email_ready(request_rec *r, const pe_valid_t *v, const pe_user_t *u, pe_store_t *st, int *done)
{
    int rc;

    *done = 1;
    if (!pe_valid_ok(v))
        return email_invalid(r, v);
    if ((rc = email_precheck(r, u, done)) != OK || *done)
        return rc;
    if (!st) {
        *done = 1;
        return email_store_down(r);
    }
    return OK;
}

/* A body of the given fields, or none at all (send and resend take none; {} is accepted). */
static int email_body(request_rec *r, const char *const *fields, int required, pe_valid_t *v)
{
    json_t *body = NULL;
    int rc;

    if (required || apr_table_get(r->headers_in, "Transfer-Encoding") ||
        apr_atoi64(apr_table_get(r->headers_in, "Content-Length") ? apr_table_get(r->headers_in, "Content-Length")
                                                                   : "0") > 0) {
        if ((rc = pe_http_read_json(r, &body)) != OK)
            return rc;
    }
    pe_valid_init(v, r->pool, body, fields);
    return OK;
}

/* The sender: PEMailFrom, else PromptEnchanter <noreply@ServerName>. */
static const char *email_from(request_rec *r, const pe_srv_conf_t *sc)
{
    if (pe_srv_mail_from(sc))
        return pe_srv_mail_from(sc);
    return apr_pstrcat(r->pool, "PromptEnchanter <noreply@", r->server->server_hostname, ">", NULL);
}

static int email_send_mail(request_rec *r, pe_srv_conf_t *sc, pe_store_t *st, pe_user_t *u, apr_int64_t day,
                           const char *route, int sends);

/* POST /v1/email/send-verification and /v1/email/resend: count, send, then keep the code. */
static int email_send(pe_ctx_t *cx, const char *route)
{
    static const char *const fields[] = {NULL};
    request_rec *r = cx->r;
    pe_srv_conf_t *sc = pe_config_srv(r->server);
    pe_user_t *u = cx->rq->principal->user;
    pe_store_t *st = pe_auth_store(r);
    apr_time_t now = apr_time_now();
    apr_int64_t day = pe_email_day(now);
    int limit = pe_srv_email_send_limit(sc), sends = 0, rc, done;
    pe_store_status_e rs;
    pe_valid_t v;

    if ((rc = email_body(r, fields, 0, &v)) != OK)
        return rc;
    if ((rc = email_ready(r, &v, u, st, &done)) != OK || done)
        return rc;
    rs = pe_store_email_send_take(st, u->id, day, limit, &sends);
    if (rs == PE_STORE_EMPTY) {
        apr_time_t reset = pe_email_day_end(day);

        apr_table_setn(r->err_headers_out, "Retry-After",
                       apr_psprintf(r->pool, "%" APR_INT64_T_FMT, (apr_int64_t)apr_time_sec(reset - now) + 1));
        email_event(r, st, "verification_email_limited", u, json_pack("{s:i,s:s}", "limit", limit, "route", route),
                    "warning");
        return pe_http_error_ex(r, HTTP_TOO_MANY_REQUESTS, "EMAIL_SEND_LIMIT",
                                pe_json_bind(r->pool, json_pack("{s:i,s:o}", "limit", limit, "reset_at",
                                                                pe_http_time(r->pool, reset))),
                                "Daily limit of %d verification emails exceeded; the limit resets at %s", limit,
                                json_string_value(pe_json_bind(r->pool, pe_http_time(r->pool, reset))));
    }
    if (rs != PE_STORE_OK)
        return email_store_down(r);
    if (pe_mail_gate && pe_gate_enter(pe_mail_gate, 0) != APR_SUCCESS) {
        pe_store_email_send_release(st, u->id, day);
        pe_rlog(r, APLOG_WARNING, 0, PE_LOGNO(11005) "verification mail refused: PESMTPMaxConcurrent %d sends are "
                "in progress", pe_srv_smtp_max_concurrent(sc));
        apr_table_setn(r->err_headers_out, "Retry-After", "30");
        return pe_http_error(r, HTTP_SERVICE_UNAVAILABLE, "MAIL_BUSY",
                             "Too many verification emails are being sent right now. Nothing was counted against "
                             "your daily limit; try again in a moment");
    }
    rc = email_send_mail(r, sc, st, u, day, route, sends);
    if (pe_mail_gate)
        pe_gate_leave(pe_mail_gate);
    return rc;
}

/* The SMTP settings of server s (PESMTPURL, PESMTPStartTLS, PESMTPUser...). */
void pe_email_smtp_conf(server_rec *s, pe_smtp_conf_t *c)
{
    pe_srv_conf_t *sc = pe_config_srv(s);

    memset(c, 0, sizeof(*c));
    c->url = pe_srv_smtp_url(sc);
    c->tls = pe_srv_smtp_starttls(sc) ? PE_SMTP_TLS_OPTIONAL : PE_SMTP_TLS_REQUIRED;
    c->user = pe_srv_smtp_user(sc);
    c->password = pe_srv_smtp_password(sc);
    c->ca_file = pe_srv_smtp_ca_file(sc);
    c->timeout = apr_time_from_msec(pe_srv_smtp_timeout_ms(sc));
}

/* The mail and the code, once the send is counted and a place of the gate is held. */
static int email_send_mail(request_rec *r, pe_srv_conf_t *sc, pe_store_t *st, pe_user_t *u, apr_int64_t day,
                           const char *route, int sends)
{
    apr_time_t now = apr_time_now(), exp;
    apr_interval_time_t life = apr_time_from_msec(pe_srv_email_code_lifetime_ms(sc));
    int limit = pe_srv_email_send_limit(sc);
    const char *code, *digest, *err = NULL;
    pe_smtp_conf_t smtp;
    pe_mail_msg_t m;
    pe_store_status_e rs;
    apr_status_t rv;

    if (!(code = pe_email_code_new(r->pool)) ||
        !(digest = pe_email_code_digest(r->pool, pe_global()->secret_key, u->id, u->email, code))) {
        pe_store_email_send_release(st, u->id, day);
        return pe_http_error(r, HTTP_INTERNAL_SERVER_ERROR, PE_E_INTERNAL, "internal error");
    }
    exp = now + life;
    memset(&m, 0, sizeof(m));
    m.from = email_from(r, sc);
    m.to = u->email;
    m.to_name = u->name;
    pe_mail_verification(r->pool, u->name, code, exp, life, &m);
    pe_email_smtp_conf(r->server, &smtp);
    rv = smtp.url ? pe_smtp_send(r->pool, &smtp, &m, &err) : APR_ENOTIMPL;
    if (rv != APR_SUCCESS) {
        /* NB: not counted: the user may ask again at once, and the current code still works. */
        pe_store_email_send_release(st, u->id, day);
        pe_rlog(r, APLOG_WARNING, rv, PE_LOGNO(11002) "the verification mail of user %s was not sent: %s", u->id,
                err ? err : "no mail server (PESMTPURL)");
        email_event(r, st, "verification_email_failed", u,
                    json_pack("{s:s,s:s}", "reason", rv == APR_TIMEUP ? "timeout" : "mail_server_error", "route", route),
                    "warning");
        apr_table_setn(r->err_headers_out, "Retry-After", "60");
        return pe_http_error(r, HTTP_SERVICE_UNAVAILABLE, "MAIL_UNAVAILABLE",
                             "The verification email could not be sent: the mail server is not available. Nothing "
                             "was counted against your daily limit; try again in a minute");
    }
    if ((rs = pe_store_email_code_set(st, u->id, digest, exp)) != PE_STORE_OK) {
        pe_rlog(r, APLOG_ERR, 0, PE_LOGNO(11003) "the code mailed to user %s could not be stored; it will not work",
                u->id);
        return rs == PE_STORE_NOTFOUND ? pe_http_error(r, HTTP_NOT_FOUND, PE_E_NOT_FOUND, "User not found")
                                       : email_store_down(r);
    }
    email_event(r, st, "verification_email_sent", u, json_pack("{s:i,s:s}", "sends_today", sends, "route", route),
                "info");
    return email_reply(r, 1, "Verification email sent successfully", exp,
                       json_pack("{s:i,s:i}", "sends_today", sends, "sends_left", limit > sends ? limit - sends : 0));
}

int pe_h_email_send(pe_ctx_t *cx)
{
    return email_send(cx, "send-verification");
}

int pe_h_email_resend(pe_ctx_t *cx)
{
    return email_send(cx, "resend");
}

/* 400 OTP_EXPIRED: the user has no code that could match. */
static int email_no_code(request_rec *r)
{
    return pe_http_error(r, HTTP_BAD_REQUEST, "OTP_EXPIRED",
                             "No valid verification code: it expired, was used or replaced, or none was sent. "
                             "Request a new one (POST /v1/email/send-verification)");
}

/* POST /v1/email/verify {"otp_code": "..."}: the attempt is counted before the code is compared. */
int pe_h_email_verify(pe_ctx_t *cx)
{
    static const char *const fields[] = {"otp_code", NULL};
    request_rec *r = cx->r;
    pe_user_t *u = cx->rq->principal->user, *now_u = NULL;
    pe_store_t *st = pe_auth_store(r);
    apr_time_t now = apr_time_now();
    const char *code, *stored = NULL, *mine;
    int rc, done, attempts = 0, left;
    pe_store_status_e rs;
    pe_valid_t v;

    if ((rc = email_body(r, fields, 1, &v)) != OK)
        return rc;
    code = pe_valid_str(&v, "otp_code", 1, 1, 64);
    if ((rc = email_ready(r, &v, u, st, &done)) != OK || done)
        return rc;
    rs = pe_store_email_code_attempt(st, u->id, now, PE_EMAIL_MAX_ATTEMPTS, &stored, &attempts);
    if (rs == PE_STORE_NOTFOUND) {
        email_event(r, st, "email_verification_failed", u, json_pack("{s:s}", "reason", "no_valid_code"), "info");
        return email_no_code(r);
    }
    if (rs == PE_STORE_EMPTY) {
        email_event(r, st, "email_verification_failed", u, json_pack("{s:s}", "reason", "too_many_attempts"),
                    "warning");
        return pe_http_error(r, HTTP_BAD_REQUEST, "OTP_ATTEMPTS_EXCEEDED",
                             "Too many verification attempts. Please request a new OTP "
                             "(POST /v1/email/send-verification)");
    }
    if (rs != PE_STORE_OK)
        return email_store_down(r);
    mine = pe_email_code_digest(r->pool, pe_global()->secret_key, u->id, u->email, code);
    if (!pe_email_digest_equal(mine, stored)) {
        left = PE_EMAIL_MAX_ATTEMPTS - attempts;
        email_event(r, st, "email_verification_failed", u,
                    json_pack("{s:s,s:i}", "reason", "wrong_code", "attempts", attempts), "info");
        return pe_http_error_ex(r, HTTP_BAD_REQUEST, "OTP_INVALID",
                                pe_json_bind(r->pool, json_pack("{s:i}", "attempts_left", left > 0 ? left : 0)), "%s",
                                left > 0 ? apr_psprintf(r->pool, "Invalid OTP code (%d attempts left for this code)", left)
                                         : "Invalid OTP code; no attempt is left for this code: request a new one");
    }
    rs = pe_store_email_code_use(st, u->id, u->email, stored, now);
    if (rs == PE_STORE_NOTFOUND) {
        /* Another request used it first, or the address changed meanwhile. */
        if (pe_store_user_by_id(st, u->id, &now_u) == PE_STORE_OK && now_u->is_verified)
            return email_reply(r, 0, "Email is already verified", 0, NULL);
        return email_no_code(r);
    }
    if (rs != PE_STORE_OK)
        return email_store_down(r);
    pe_principal_changed(r->server, u->id); /* verified: the API key opens the gated routes at once */
    email_event(r, st, "email_verified", u, json_pack("{s:i}", "attempts", attempts), "info");
    return email_reply(r, 1, "Email verified successfully", 0, NULL);
}

/* GET /v1/email/status */
int pe_h_email_status(pe_ctx_t *cx)
{
    request_rec *r = cx->r;
    pe_user_t *u = cx->rq->principal->user;
    int on = pe_email_verification_on(r);
    json_t *o = pe_json_object(r->pool);

    json_object_set_new(o, "success", json_true());
    json_object_set_new(o, "is_verified", json_boolean(u->is_verified));
    json_object_set_new(o, "email", json_string(u->email));
    json_object_set_new(o, "verification_enabled", json_boolean(on));
    json_object_set_new(o, "verification_required_for_api", json_boolean(on));
    return pe_http_send_json(r, HTTP_OK, o);
}

/* ----------------------------------------------------------------------------------------- */
/* Start-up */

/* Every server with PEEmailVerification On has a mail server; non-OK refuses to start. */
static int email_check(server_rec *s)
{
    server_rec *vs;

    for (vs = s; vs; vs = vs->next) {
        pe_srv_conf_t *sc = pe_config_srv(vs);

        if (pe_srv_email_verification(sc) && !pe_srv_smtp_url(sc)) {
            pe_slog(vs, APLOG_CRIT, 0,
                    PE_LOGNO(11001) "PEEmailVerification On needs PESMTPURL (the mail server that sends the codes)");
            return HTTP_INTERNAL_SERVER_ERROR;
        }
    }
    return OK;
}

void pe_email_test_config(apr_pool_t *pconf, server_rec *s)
{
    if (email_check(s) != OK) {
        /* NB: the test_config hook cannot fail; exit as httpd does for a syntax error. */
        ap_log_error(APLOG_MARK, APLOG_STARTUP, 0, NULL, "Syntax error in mod_promptenchanter settings");
        exit(1);
    }
}

int pe_email_post_config(apr_pool_t *pconf, apr_pool_t *plog, apr_pool_t *ptemp, server_rec *s)
{
    int rc = email_check(s);
    apr_status_t rv;

    pe_mail_gate = NULL;
    if (rc != OK || ap_state_query(AP_SQ_MAIN_STATE) == AP_SQ_MS_CREATE_PRE_CONFIG)
        return rc;
    rv = pe_gate_create(pconf, (unsigned)pe_srv_smtp_max_concurrent(pe_config_srv(s)), &pe_mail_gate);
    if (rv != APR_SUCCESS) {
        pe_slog(s, APLOG_CRIT, rv, PE_LOGNO(11006) "cannot create the gate of concurrent mail sends");
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    return OK;
}
