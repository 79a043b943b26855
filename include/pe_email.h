/*
 * pe_email.h: e-mail verification's core (httpd-free): one-time codes and their keyed digests,
 * the day count of the send limit, the verification message, and sending it over SMTP with
 * libcurl (smtp:// with STARTTLS required or optional, smtps://, AUTH, one time limit).
 *
 * Codes: PE_EMAIL_CODE_LEN decimal digits from the CSPRNG (uniform, pe_random_string). The store
 * keeps only pe_email_code_digest(): HMAC-SHA-256 under a key derived from the server secret for
 * this one purpose, over the user id, the address and the code, so a code is bound to the user
 * and the address it was sent to. Digests are compared with pe_ct_equal().
 *
 * Messages: built here (RFC 5322 / MIME): Date, Message-ID, From, To, Subject as header lines
 * whose user-controlled parts cannot carry a line break (pe_mail_phrase, pe_mail_address_ok),
 * a non-ASCII subject or name as RFC 2047 encoded-words; the body a multipart/alternative of
 * text/plain and text/html in UTF-8, quoted-printable encoded by libcurl's MIME API.
 */
#ifndef PE_EMAIL_H
#define PE_EMAIL_H

#include <apr_pools.h>
#include <apr_tables.h>
#include <apr_time.h>

#define PE_EMAIL_CODE_LEN 6
/** Wrong attempts allowed per code (RELIABILITY R14). */
#define PE_EMAIL_MAX_ATTEMPTS 5

/** A new code of PE_EMAIL_CODE_LEN digits, in p; NULL when the CSPRNG fails. */
const char *pe_email_code_new(apr_pool_t *p);

/**
 * The stored form of a code: lower-case hex HMAC-SHA-256 under a key derived from secret, over
 * user id, address and code. NULL when a part is missing or the MAC fails.
 */
const char *pe_email_code_digest(apr_pool_t *p, const unsigned char secret[32], const char *user_id,
                                 const char *email, const char *code);

/** 1 when the digests are equal (constant time in their length), else 0. NULL never equals. */
int pe_email_digest_equal(const char *a, const char *b);

/** The day number of the daily send limit: whole UTC days since the epoch. */
apr_int64_t pe_email_day(apr_time_t t);

/** When day number `day` ends (the next day's 00:00 UTC). */
apr_time_t pe_email_day_end(apr_int64_t day);

/* ----------------------------------------------------------------------------------------- */
/* Messages */

typedef struct pe_mail_msg_t {
    const char *from;    /* "Name <addr>" or "addr" (the operator's PEMailFrom) */
    const char *to;      /* the address */
    const char *to_name; /* display name (user-controlled; NULL: none) */
    const char *subject; /* UTF-8 */
    const char *text;    /* UTF-8 plain text */
    const char *html;    /* UTF-8 HTML (NULL: text only) */
} pe_mail_msg_t;

/** 1 when addr is a bare address usable in a header and an SMTP command: no space, control, <, >, quote. */
int pe_mail_address_ok(const char *addr);

/**
 * A header phrase (a display name) from user text: control characters (CR, LF...) become spaces,
 * then ASCII text without specials stays as it is, other ASCII is a quoted-string, and non-ASCII
 * UTF-8 becomes RFC 2047 encoded-words (base64). NULL for invalid UTF-8.
 */
const char *pe_mail_phrase(apr_pool_t *p, const char *s);

/** A header value of unstructured text (a subject): as pe_mail_phrase but never quoted. */
const char *pe_mail_unstructured(apr_pool_t *p, const char *s);

/** Text for a message body from user text: control characters but tab become spaces. */
const char *pe_mail_text(apr_pool_t *p, const char *s);

/** HTML-escape user text (&, <, >, ", ') after pe_mail_text. */
const char *pe_mail_html_escape(apr_pool_t *p, const char *s);

/**
 * The header lines of m ("Name: value", no CRLF): Date, Message-ID, From, To, Subject,
 * MIME-Version.
 * @return NULL, or why the message cannot be made (a bad address, invalid UTF-8)
 */
const char *pe_mail_headers(apr_pool_t *p, const pe_mail_msg_t *m, apr_time_t now, apr_array_header_t **lines);

/**
 * The verification message: subject, text and HTML with the code, the time it expires (UTC) and
 * its lifetime, greeting the user by name (escaped in HTML).
 */
void pe_mail_verification(apr_pool_t *p, const char *name, const char *code, apr_time_t expires,
                          apr_interval_time_t lifetime, pe_mail_msg_t *m);

/* ----------------------------------------------------------------------------------------- */
/* Sending */

typedef enum { PE_SMTP_TLS_REQUIRED = 0, PE_SMTP_TLS_OPTIONAL = 1 } pe_smtp_tls_e;

typedef struct pe_smtp_conf_t {
    const char *url;      /* smtp://host[:port] or smtps://host[:port] */
    pe_smtp_tls_e tls;    /* smtp://: STARTTLS required (default) or used when offered */
    const char *user;     /* AUTH (NULL: none) */
    const char *password;
    const char *ca_file;  /* CA bundle for the server's certificate (NULL: the system's) */
    apr_interval_time_t timeout; /* the whole session, connect included */
} pe_smtp_conf_t;

/** NULL when url is an smtp:// or smtps:// URL with a host, else why not. */
const char *pe_smtp_url_check(apr_pool_t *p, const char *url);

/**
 * Send m to m->to through the server of c, within c->timeout.
 * @param err why not (libcurl's reason; never the message), in p
 * @return APR_SUCCESS, APR_TIMEUP (the time limit passed), APR_EINVAL (the message could not be
 *         made), or APR_EGENERAL (the server refused or could not be reached)
 */
apr_status_t pe_smtp_send(apr_pool_t *p, const pe_smtp_conf_t *c, const pe_mail_msg_t *m, const char **err);

/**
 * Readiness of the server of c, within c->timeout: connect, greeting, EHLO, STARTTLS as c asks,
 * AUTH when c has a user, then NOOP and QUIT. Never sends a message.
 * @param err why not (libcurl's reason), in p
 * @return APR_SUCCESS, APR_TIMEUP or APR_EGENERAL
 */
apr_status_t pe_smtp_check(apr_pool_t *p, const pe_smtp_conf_t *c, const char **err);

#endif
