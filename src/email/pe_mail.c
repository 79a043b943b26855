/*
 * pe_mail.c: the verification message (headers, MIME body through libcurl's curl_mime with its
 * quoted-printable encoder) and its sending over SMTP with libcurl (include/pe_email.h).
 */
#include "pe_crypto.h"
#include "pe_email.h"
#include "pe_util.h"

#include <apr_base64.h>
#include <apr_strings.h>
#include <curl/curl.h>
#include <string.h>

/* ----------------------------------------------------------------------------------------- */
/* Header text */

/* Length of the valid UTF-8 sequence at s (1 for ASCII), 0 when it is not one. */
static apr_size_t utf8_len(const unsigned char *s)
{
    apr_size_t n, i;
    unsigned cp;

    if (s[0] < 0x80)
        return 1;
    if ((s[0] & 0xe0) == 0xc0)
        n = 2, cp = s[0] & 0x1f;
    else if ((s[0] & 0xf0) == 0xe0)
        n = 3, cp = s[0] & 0x0f;
    else if ((s[0] & 0xf8) == 0xf0)
        n = 4, cp = s[0] & 0x07;
    else
        return 0;
    for (i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    if ((n == 2 && cp < 0x80) || (n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
        (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return n;
}

/* s with control characters (C0, DEL; also tab when keep_tab is 0) as spaces; NULL for invalid UTF-8. */
static char *decontrol(apr_pool_t *p, const char *s, int keep_tab)
{
    char *o = apr_pstrdup(p, s ? s : "");
    unsigned char *u = (unsigned char *)o;

    while (*u) {
        apr_size_t n = utf8_len(u);

        if (!n)
            return NULL;
        if (n == 1 && (*u < 0x20 || *u == 0x7f) && !(keep_tab && *u == '\t'))
            *u = ' ';
        u += n;
    }
    return o;
}

const char *pe_mail_text(apr_pool_t *p, const char *s)
{
    const char *t = decontrol(p, s, 1);

    return t ? t : "";
}

const char *pe_mail_html_escape(apr_pool_t *p, const char *s)
{
    const char *t = pe_mail_text(p, s), *c;
    char *o = apr_palloc(p, strlen(t) * 6 + 1), *w = o;

    for (c = t; *c; c++) {
        const char *rep = *c == '&' ? "&amp;" : *c == '<' ? "&lt;" : *c == '>' ? "&gt;" : *c == '"' ? "&quot;"
                        : *c == '\'' ? "&#39;" : NULL;
        if (rep) {
            memcpy(w, rep, strlen(rep));
            w += strlen(rep);
        }
        else
            *w++ = *c;
    }
    *w = '\0';
    return o;
}

/* RFC 2047 encoded-words (B encoding) of UTF-8 text, each at most 75 characters, split at
 * character boundaries and separated by folding white space. */
static const char *encoded_words(apr_pool_t *p, const char *s)
{
    const char *out = NULL;
    apr_size_t len = strlen(s), at = 0;

    while (at < len) {
        apr_size_t take = 0, n;
        char *b64;

        /* 45 bytes of text: 60 characters of base64, 72 with "=?UTF-8?B?" and "?=". */
        while (at + take < len && take + (n = utf8_len((const unsigned char *)s + at + take)) <= 45)
            take += n;
        b64 = apr_palloc(p, (apr_size_t)apr_base64_encode_len((int)take));
        apr_base64_encode(b64, s + at, (int)take);
        out = apr_pstrcat(p, out ? out : "", out ? "\r\n " : "", "=?UTF-8?B?", b64, "?=", NULL);
        at += take;
    }
    return out ? out : "";
}

static int is_ascii(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s >= 0x80)
            return 0;
    return 1;
}

/* Collapse runs of spaces and trim them at both ends (a phrase of spaces only is ""). */
static char *squeeze(char *s)
{
    char *r = s, *w = s;

    while (*r == ' ')
        r++;
    while (*r) {
        if (*r == ' ' && (r[1] == ' ' || r[1] == '\0')) {
            r++;
            continue;
        }
        *w++ = *r++;
    }
    *w = '\0';
    return s;
}

const char *pe_mail_phrase(apr_pool_t *p, const char *s)
{
    char *t = decontrol(p, s, 0), *q, *w;
    const char *c;

    if (!t)
        return NULL;
    squeeze(t);
    if (!is_ascii(t))
        return encoded_words(p, t);
    if (!strpbrk(t, "()<>[]:;@\\,.\"") && !strstr(t, "=?"))
        return t;
    /* A quoted-string: backslash before " and \. */
    q = w = apr_palloc(p, strlen(t) * 2 + 3);
    *w++ = '"';
    for (c = t; *c; c++) {
        if (*c == '"' || *c == '\\')
            *w++ = '\\';
        *w++ = *c;
    }
    *w++ = '"';
    *w = '\0';
    return q;
}

const char *pe_mail_unstructured(apr_pool_t *p, const char *s)
{
    char *t = decontrol(p, s, 0);

    if (!t)
        return NULL;
    squeeze(t);
    return (is_ascii(t) && !strstr(t, "=?")) ? t : encoded_words(p, t);
}

int pe_mail_address_ok(const char *a)
{
    const char *at;

    if (!a || !*a || strlen(a) > 254 || !(at = strchr(a, '@')) || at == a || !at[1] || strchr(at + 1, '@'))
        return 0;
    for (; *a; a++)
        if ((unsigned char)*a <= 0x20 || (unsigned char)*a >= 0x7f || strchr("<>\"(),;:\\[]", *a))
            return 0;
    return 1;
}

/* The address of a From value ("Name <addr>" or "addr"), in p; NULL when it has none usable. */
static const char *from_address(apr_pool_t *p, const char *from, const char **name)
{
    const char *lt = strrchr(from, '<'), *gt;
    const char *addr;

    *name = NULL;
    if (!lt)
        return pe_mail_address_ok(from) ? from : NULL;
    gt = strchr(lt, '>');
    if (!gt || gt[1])
        return NULL;
    addr = apr_pstrmemdup(p, lt + 1, (apr_size_t)(gt - lt - 1));
    if (lt > from)
        *name = apr_pstrmemdup(p, from, (apr_size_t)(lt - from));
    return pe_mail_address_ok(addr) ? addr : NULL;
}

/* "phrase <addr>" or "addr". */
static const char *mailbox(apr_pool_t *p, const char *name, const char *addr)
{
    const char *ph = name ? pe_mail_phrase(p, name) : NULL;

    return (ph && *ph) ? apr_pstrcat(p, ph, " <", addr, ">", NULL) : addr;
}

const char *pe_mail_headers(apr_pool_t *p, const pe_mail_msg_t *m, apr_time_t now, apr_array_header_t **lines)
{
    const char *from_name, *from = from_address(p, m->from ? m->from : "", &from_name), *subject, *domain;
    apr_array_header_t *a = apr_array_make(p, 8, sizeof(const char *));
    apr_time_exp_t tm;
    apr_size_t len;
    char date[64];
    unsigned char rnd[12];
    int i;

    *lines = a;
    if (!from)
        return "the sender address (PEMailFrom) is not a usable address";
    if (!pe_mail_address_ok(m->to))
        return "the recipient address is not usable in a message";
    if (!(subject = pe_mail_unstructured(p, m->subject)))
        return "the subject is not valid UTF-8";
    if (m->to_name && !pe_mail_phrase(p, m->to_name))
        return "the recipient's name is not valid UTF-8";
    if (pe_random_bytes(rnd, sizeof(rnd)) != APR_SUCCESS)
        return "no random bytes for the Message-ID";
    apr_time_exp_gmt(&tm, now);
    apr_strftime(date, &len, sizeof(date), "%a, %d %b %Y %H:%M:%S +0000", &tm);
    domain = strchr(from, '@') + 1;
    APR_ARRAY_PUSH(a, const char *) = apr_pstrcat(p, "Date: ", date, NULL);
    APR_ARRAY_PUSH(a, const char *) =
        apr_psprintf(p, "Message-ID: <%" APR_INT64_T_FMT ".%s@%s>", (apr_int64_t)apr_time_sec(now),
                     pe_hex_encode(p, rnd, sizeof(rnd)), domain);
    APR_ARRAY_PUSH(a, const char *) = apr_pstrcat(p, "From: ", mailbox(p, from_name, from), NULL);
    APR_ARRAY_PUSH(a, const char *) = apr_pstrcat(p, "To: ", mailbox(p, m->to_name, m->to), NULL);
    APR_ARRAY_PUSH(a, const char *) = apr_pstrcat(p, "Subject: ", subject, NULL);
    APR_ARRAY_PUSH(a, const char *) = "MIME-Version: 1.0";
    /* NB: the one place a line break may be is between encoded-words ("\r\n " folding). */
    for (i = 0; i < a->nelts; i++) {
        const char *l = APR_ARRAY_IDX(a, i, const char *), *c;

        for (c = l; (c = strpbrk(c, "\r\n")); c++)
            if (!(c[0] == '\r' && c[1] == '\n' && c[2] == ' ' && c[3] == '=' && c[4] == '?'))
                return "a header line would hold a line break";
            else
                c++;
    }
    return NULL;
}

/* ----------------------------------------------------------------------------------------- */
/* The verification message */

void pe_mail_verification(apr_pool_t *p, const char *name, const char *code, apr_time_t expires,
                          apr_interval_time_t lifetime, pe_mail_msg_t *m)
{
    apr_time_exp_t tm;
    apr_size_t len;
    char when[64];
    apr_int64_t mins = (apr_int64_t)(lifetime / apr_time_from_sec(60));
    const char *span, *hi = pe_mail_text(p, name), *hi_html = pe_mail_html_escape(p, name);

    apr_time_exp_gmt(&tm, expires);
    apr_strftime(when, &len, sizeof(when), "%Y-%m-%d %H:%M UTC", &tm);
    if (mins >= 120 && mins % 60 == 0)
        span = apr_psprintf(p, "%" APR_INT64_T_FMT " hours", mins / 60);
    else if (mins >= 1)
        span = apr_psprintf(p, "%" APR_INT64_T_FMT " minute%s", mins, mins == 1 ? "" : "s");
    else
        span = apr_psprintf(p, "%" APR_INT64_T_FMT " second%s", (apr_int64_t)apr_time_sec(lifetime),
                            apr_time_sec(lifetime) == 1 ? "" : "s");
    m->subject = "Verify your email - PromptEnchanter";
    m->text = apr_psprintf(p,
                           "Hello %s,\r\n\r\n"
                           "please confirm your email address for PromptEnchanter with this code:\r\n\r\n"
                           "    %s\r\n\r\n"
                           "The code is valid for %s (until %s) and can be used once.\r\n"
                           "Never share this code with anyone. If you did not ask for it, ignore this message.\r\n\r\n"
                           "PromptEnchanter\r\n"
                           "(an automated message: replies are not read)\r\n",
                           hi, code, span, when);
    m->html = apr_psprintf(p,
                           "<!DOCTYPE html>\r\n<html><head><meta charset=\"utf-8\"><title>Verify your email</title></head>\r\n"
                           "<body style=\"font-family:sans-serif\">\r\n<h2>PromptEnchanter</h2>\r\n"
                           "<p>Hello %s,</p>\r\n<p>please confirm your email address with this code:</p>\r\n"
                           "<p style=\"font-size:28px;letter-spacing:6px;font-weight:bold;background:#eef;"
                           "padding:12px;display:inline-block\">%s</p>\r\n"
                           "<p>The code is valid for %s (until %s) and can be used once.</p>\r\n"
                           "<p>Never share this code with anyone. If you did not ask for it, ignore this message.</p>\r\n"
                           "<p style=\"color:#777;font-size:12px\">An automated message: replies are not read.</p>\r\n"
                           "</body></html>\r\n",
                           hi_html, code, span, when);
}

/* ----------------------------------------------------------------------------------------- */
/* Sending */

const char *pe_smtp_url_check(apr_pool_t *p, const char *url)
{
    CURLU *u = curl_url();
    char *scheme = NULL, *host = NULL;
    const char *err = NULL;

    if (!u)
        return "out of memory";
    if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK)
        err = "not a URL";
    else if (curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
             (strcasecmp(scheme, "smtp") && strcasecmp(scheme, "smtps")))
        err = "the scheme must be smtp:// or smtps://";
    else if (curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK || !*host)
        err = "the URL has no host";
    curl_free(scheme);
    curl_free(host);
    curl_url_cleanup(u);
    return err ? apr_pstrcat(p, "'", url, "': ", err, NULL) : NULL;
}

static apr_status_t curl_easy_free(void *data)
{
    curl_easy_cleanup(data);
    return APR_SUCCESS;
}

static apr_status_t curl_mime_free_(void *data)
{
    curl_mime_free(data);
    return APR_SUCCESS;
}

static apr_status_t curl_slist_free(void *data)
{
    curl_slist_free_all(data);
    return APR_SUCCESS;
}

/* One text part of the alternative: UTF-8, quoted-printable by libcurl. */
static CURLcode add_text(curl_mime *alt, const char *type, const char *text)
{
    curl_mimepart *part = curl_mime_addpart(alt);
    CURLcode rc;

    if (!part)
        return CURLE_OUT_OF_MEMORY;
    if ((rc = curl_mime_data(part, text, CURL_ZERO_TERMINATED)) != CURLE_OK ||
        (rc = curl_mime_type(part, type)) != CURLE_OK)
        return rc;
    return curl_mime_encoder(part, "quoted-printable");
}

/* The options of a session with the server of c, within c->timeout (sending and the check). */
static void session_opts(CURL *h, const pe_smtp_conf_t *c, char *errbuf)
{
    long ms = (long)apr_time_as_msec(c->timeout);

    curl_easy_setopt(h, CURLOPT_URL, c->url);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "smtp,smtps");
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, ms > 0 ? ms : 1L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, ms > 0 ? ms : 1L);
    curl_easy_setopt(h, CURLOPT_USE_SSL, (long)(c->tls == PE_SMTP_TLS_OPTIONAL ? CURLUSESSL_TRY : CURLUSESSL_ALL));
    if (c->ca_file)
        curl_easy_setopt(h, CURLOPT_CAINFO, c->ca_file);
    if (c->user) {
        curl_easy_setopt(h, CURLOPT_USERNAME, c->user);
        curl_easy_setopt(h, CURLOPT_PASSWORD, c->password ? c->password : "");
    }
}

/* The outcome of a session: APR_SUCCESS, or libcurl's reason in *err. */
static apr_status_t session_result(apr_pool_t *p, CURLcode rc, const char *errbuf, const char **err)
{
    if (rc == CURLE_OK)
        return APR_SUCCESS;
    *err = apr_pstrcat(p, curl_easy_strerror(rc), *errbuf ? ": " : "", errbuf, NULL);
    return rc == CURLE_OPERATION_TIMEDOUT ? APR_TIMEUP : APR_EGENERAL;
}

apr_status_t pe_smtp_send(apr_pool_t *p, const pe_smtp_conf_t *c, const pe_mail_msg_t *m, const char **err)
{
    apr_array_header_t *lines;
    struct curl_slist *hdrs = NULL, *rcpt = NULL;
    curl_mime *mime, *alt;
    curl_mimepart *part;
    const char *from_name, *from, *bad;
    char *errbuf = apr_pcalloc(p, CURL_ERROR_SIZE);
    CURL *h;
    int i;

    *err = NULL;
    if ((bad = pe_mail_headers(p, m, apr_time_now(), &lines))) {
        *err = bad;
        return APR_EINVAL;
    }
    from = from_address(p, m->from, &from_name);
    if (!(h = curl_easy_init())) {
        *err = "out of memory";
        return APR_EGENERAL;
    }
    apr_pool_cleanup_register(p, h, curl_easy_free, apr_pool_cleanup_null);
    for (i = 0; i < lines->nelts; i++)
        hdrs = curl_slist_append(hdrs, APR_ARRAY_IDX(lines, i, const char *));
    rcpt = curl_slist_append(NULL, m->to);
    /* NB: registered after the handle, so cleaned up before it (cleanups run in reverse). */
    apr_pool_cleanup_register(p, hdrs, curl_slist_free, apr_pool_cleanup_null);
    apr_pool_cleanup_register(p, rcpt, curl_slist_free, apr_pool_cleanup_null);
    mime = curl_mime_init(h);
    alt = curl_mime_init(h);
    apr_pool_cleanup_register(p, mime, curl_mime_free_, apr_pool_cleanup_null);
    if (!hdrs || !rcpt || !mime || !alt || add_text(alt, "text/plain; charset=UTF-8", m->text) != CURLE_OK ||
        (m->html && add_text(alt, "text/html; charset=UTF-8", m->html) != CURLE_OK) ||
        !(part = curl_mime_addpart(mime)) || curl_mime_subparts(part, alt) != CURLE_OK ||
        curl_mime_type(part, "multipart/alternative") != CURLE_OK) {
        *err = "the message could not be made";
        return APR_EINVAL;
    }
    session_opts(h, c, errbuf);
    curl_easy_setopt(h, CURLOPT_MAIL_FROM, apr_pstrcat(p, "<", from, ">", NULL));
    curl_easy_setopt(h, CURLOPT_MAIL_RCPT, rcpt);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(h, CURLOPT_MIMEPOST, mime);
    return session_result(p, curl_easy_perform(h), errbuf, err);
}

/* The replies of the check are not kept. */
static size_t discard(char *ptr, size_t size, size_t n, void *baton)
{
    return size * n;
}

apr_status_t pe_smtp_check(apr_pool_t *p, const pe_smtp_conf_t *c, const char **err)
{
    char *errbuf = apr_pcalloc(p, CURL_ERROR_SIZE);
    CURL *h;

    *err = NULL;
    if (!(h = curl_easy_init())) {
        *err = "out of memory";
        return APR_EGENERAL;
    }
    apr_pool_cleanup_register(p, h, curl_easy_free, apr_pool_cleanup_null);
    session_opts(h, c, errbuf);
    /* NB: without recipients and without a body libcurl sends this one command (no MAIL FROM). */
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, "NOOP");
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, discard);
    return session_result(p, curl_easy_perform(h), errbuf, err);
}
