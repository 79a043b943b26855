/*
 * test_email.c: e-mail verification's core: codes and their digests, header text that user input
 * cannot break (CR/LF, non-ASCII), the message, and real sends to the SMTP sink of tests/fakes
 * (read back through its control port): plain, STARTTLS required against a server without it,
 * a server that never answers (the time limit), nothing listening.
 */
#include "pe_email.h"
#include "pe_fakeproc.h"
#include "pe_test.h"

#include <apr_base64.h>
#include <apr_strings.h>
#include <arpa/inet.h>
#include <curl/curl.h>
#include <jansson.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>

static const unsigned char secret[32] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16,
                                         17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32};

START_TEST(codes_are_six_uniform_digits)
{
    int seen[PE_EMAIL_CODE_LEN][10] = {{0}}, i, k, distinct = 0;
    const char *prev = NULL;

    for (i = 0; i < 2000; i++) {
        const char *c = pe_email_code_new(pe_tp);

        ck_assert_ptr_nonnull(c);
        ck_assert_uint_eq(strlen(c), PE_EMAIL_CODE_LEN);
        for (k = 0; k < PE_EMAIL_CODE_LEN; k++) {
            ck_assert(c[k] >= '0' && c[k] <= '9');
            seen[k][c[k] - '0']++;
        }
        distinct += prev && strcmp(prev, c) != 0;
        prev = c;
    }
    /* every digit in every place, none far from 200 of 2000 (a modulo bias or a stuck byte shows) */
    for (k = 0; k < PE_EMAIL_CODE_LEN; k++)
        for (i = 0; i < 10; i++)
            ck_assert_msg(seen[k][i] > 120 && seen[k][i] < 280, "digit %d at %d: %d", i, k, seen[k][i]);
    ck_assert_int_gt(distinct, 1990);
}
END_TEST

START_TEST(digest_binds_user_address_and_code)
{
    const char *d = pe_email_code_digest(pe_tp, secret, "u1", "a@example.com", "123456");
    unsigned char other[32];

    ck_assert_ptr_nonnull(d);
    ck_assert_uint_eq(strlen(d), 64);
    ck_assert(strspn(d, "0123456789abcdef") == 64);
    ck_assert(strstr(d, "123456") == NULL);
    ck_assert(pe_email_digest_equal(d, pe_email_code_digest(pe_tp, secret, "u1", "a@example.com", "123456")));
    ck_assert(!pe_email_digest_equal(d, pe_email_code_digest(pe_tp, secret, "u2", "a@example.com", "123456")));
    ck_assert(!pe_email_digest_equal(d, pe_email_code_digest(pe_tp, secret, "u1", "b@example.com", "123456")));
    ck_assert(!pe_email_digest_equal(d, pe_email_code_digest(pe_tp, secret, "u1", "a@example.com", "123457")));
    memcpy(other, secret, 32);
    other[0] ^= 1;
    ck_assert(!pe_email_digest_equal(d, pe_email_code_digest(pe_tp, other, "u1", "a@example.com", "123456")));
    ck_assert(!pe_email_digest_equal(d, NULL));
    ck_assert(!pe_email_digest_equal(d, ""));
    ck_assert_ptr_null(pe_email_code_digest(pe_tp, secret, NULL, "a@example.com", "1"));
}
END_TEST

START_TEST(days)
{
    ck_assert_int_eq(pe_email_day(apr_time_from_sec(86400 * 3 + 5)), 3);
    ck_assert_int_eq(pe_email_day(apr_time_from_sec(86400 * 3 - 1)), 2);
    ck_assert_int_eq(pe_email_day_end(3), apr_time_from_sec(86400 * 4));
}
END_TEST

/* Decode the encoded-words of a header value (test helper: base64 words only). */
static const char *ew_decode(const char *v)
{
    const char *out = "", *s = v;

    while ((s = strstr(s, "=?UTF-8?B?"))) {
        const char *e = strstr(s + 10, "?=");
        char *b64 = apr_pstrmemdup(pe_tp, s + 10, (apr_size_t)(e - s - 10));
        char *plain = apr_palloc(pe_tp, (apr_size_t)apr_base64_decode_len(b64) + 1);
        int n = apr_base64_decode(plain, b64);

        plain[n] = '\0';
        ck_assert_int_le((int)(e + 2 - s), 75);
        out = apr_pstrcat(pe_tp, out, plain, NULL);
        s = e + 2;
    }
    return out;
}

START_TEST(phrases_cannot_break_lines)
{
    const char *p;

    ck_assert_str_eq(pe_mail_phrase(pe_tp, "Alice Smith"), "Alice Smith");
    /* CR/LF become spaces; the ':' makes it a quoted string */
    p = pe_mail_phrase(pe_tp, "Eve\r\nBcc: victim@example.com");
    ck_assert_str_eq(p, "\"Eve Bcc: victim@example.com\"");
    ck_assert_str_eq(pe_mail_phrase(pe_tp, "a \"q\" \\ b."), "\"a \\\"q\\\" \\\\ b.\"");
    ck_assert_str_eq(pe_mail_phrase(pe_tp, "\r\n"), "");
    /* non-ASCII: encoded-words, also with a line break inside */
    p = pe_mail_phrase(pe_tp, "Zoë\nÅsa");
    ck_assert(strncmp(p, "=?UTF-8?B?", 10) == 0);
    ck_assert_str_eq(ew_decode(p), "Zoë Åsa");
    ck_assert_ptr_null(pe_mail_phrase(pe_tp, "bad \xff utf-8"));
    ck_assert_ptr_null(pe_mail_phrase(pe_tp, "overlong \xc0\xaf"));
    ck_assert_str_eq(pe_mail_text(pe_tp, "a\r\nb\tc"), "a  b\tc");
    ck_assert_str_eq(pe_mail_html_escape(pe_tp, "<b>&\"x'"), "&lt;b&gt;&amp;&quot;x&#39;");
    ck_assert(pe_mail_address_ok("a@example.com"));
    ck_assert(!pe_mail_address_ok("a@example.com\r\nRCPT TO:<b@example.com>"));
    ck_assert(!pe_mail_address_ok("a b@example.com"));
    ck_assert(!pe_mail_address_ok("<a@example.com>"));
    ck_assert(!pe_mail_address_ok("example.com"));
}
END_TEST

static pe_mail_msg_t *msg(const char *name, const char *to)
{
    pe_mail_msg_t *m = apr_pcalloc(pe_tp, sizeof(*m));

    m->from = "PromptEnchanter <noreply@example.org>";
    m->to = to;
    m->to_name = name;
    pe_mail_verification(pe_tp, name, "042917", apr_time_from_sec(1800000000), apr_time_from_sec(86400), m);
    return m;
}

START_TEST(headers_of_a_message)
{
    apr_array_header_t *h;
    const char *subj_long = "Vérifiez votre adresse électronique — une très longue ligne d'objet ✓✓✓✓✓✓✓✓✓✓";
    pe_mail_msg_t *m = msg("Jörg\r\nBcc: x@evil.example", "jorg@example.com");
    int i;

    ck_assert_ptr_null(pe_mail_headers(pe_tp, m, apr_time_from_sec(1800000000), &h));
    ck_assert_int_eq(h->nelts, 6);
    ck_assert_str_eq(APR_ARRAY_IDX(h, 0, const char *), "Date: Fri, 15 Jan 2027 08:00:00 +0000");
    ck_assert(strncmp(APR_ARRAY_IDX(h, 1, const char *), "Message-ID: <1800000000.", 24) == 0);
    ck_assert(strstr(APR_ARRAY_IDX(h, 1, const char *), "@example.org>") != NULL);
    ck_assert_str_eq(APR_ARRAY_IDX(h, 2, const char *), "From: PromptEnchanter <noreply@example.org>");
    ck_assert(strncmp(APR_ARRAY_IDX(h, 3, const char *), "To: =?UTF-8?B?", 14) == 0);
    ck_assert_str_eq(ew_decode(APR_ARRAY_IDX(h, 3, const char *)), "Jörg Bcc: x@evil.example");
    ck_assert_str_eq(APR_ARRAY_IDX(h, 4, const char *), "Subject: Verify your email - PromptEnchanter");
    for (i = 0; i < h->nelts; i++)
        ck_assert_ptr_null(strpbrk(APR_ARRAY_IDX(h, i, const char *), "\r\n"));
    /* the text holds the code, its lifetime and when it ends */
    ck_assert(strstr(m->text, "042917") && strstr(m->text, "24 hours") && strstr(m->text, "2027-01-15 08:00 UTC"));
    ck_assert(strstr(m->html, "J&ouml;rg") == NULL && strstr(m->html, "Jörg  Bcc: x@evil.example"));
    m = msg("<script>", "s@example.com");
    ck_assert(strstr(m->html, "&lt;script&gt;") && !strstr(m->html, "<script>"));
    /* a long non-ASCII subject: folded encoded-words of at most 75 characters */
    m->subject = subj_long;
    ck_assert_ptr_null(pe_mail_headers(pe_tp, m, 0, &h));
    ck_assert(strstr(APR_ARRAY_IDX(h, 4, const char *), "?=\r\n =?UTF-8?B?") != NULL);
    ck_assert_str_eq(ew_decode(APR_ARRAY_IDX(h, 4, const char *)), subj_long);
    /* what cannot be made is refused */
    ck_assert_ptr_nonnull(pe_mail_headers(pe_tp, msg("a", "a@example.com\r\nBcc: b@example.com"), 0, &h));
    m = msg("a", "a@example.com");
    m->from = "nobody";
    ck_assert_ptr_nonnull(pe_mail_headers(pe_tp, m, 0, &h));
    m = msg("a", "a@example.com");
    m->subject = "\xfe";
    ck_assert_ptr_nonnull(pe_mail_headers(pe_tp, m, 0, &h));
}
END_TEST

START_TEST(smtp_urls)
{
    ck_assert_ptr_null(pe_smtp_url_check(pe_tp, "smtp://127.0.0.1:2525"));
    ck_assert_ptr_null(pe_smtp_url_check(pe_tp, "smtps://mail.example.com"));
    ck_assert_ptr_nonnull(pe_smtp_url_check(pe_tp, "http://mail.example.com"));
    ck_assert_ptr_nonnull(pe_smtp_url_check(pe_tp, "smtp://"));
    ck_assert_ptr_nonnull(pe_smtp_url_check(pe_tp, "mail.example.com"));
}
END_TEST

/* ----------------------------------------------------------------------------------------- */
/* Sending to the sink */

static size_t collect(char *d, size_t sz, size_t n, void *u)
{
    const char **acc = u;

    *acc = apr_pstrcat(pe_tp, *acc, apr_pstrmemdup(pe_tp, d, sz * n), NULL);
    return sz * n;
}

/* The sink's stored messages (its control API). */
static json_t *sink_messages(const pe_fake_t *f)
{
    CURL *h = curl_easy_init();
    const char *body = "";
    json_t *j;

    curl_easy_setopt(h, CURLOPT_URL, apr_psprintf(pe_tp, "http://127.0.0.1:%d/_control/messages", f->control_port));
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &body);
    curl_easy_setopt(h, CURLOPT_NOPROXY, "*");
    ck_assert_int_eq(curl_easy_perform(h), CURLE_OK);
    curl_easy_cleanup(h);
    j = json_loads(body, 0, NULL);
    ck_assert_ptr_nonnull(j);
    return j;
}

static void sink_post(const pe_fake_t *f, const char *path, const char *json)
{
    CURL *h = curl_easy_init();
    struct curl_slist *hd = curl_slist_append(NULL, "Content-Type: application/json");
    const char *body = "";

    curl_easy_setopt(h, CURLOPT_URL, apr_psprintf(pe_tp, "http://127.0.0.1:%d%s", f->control_port, path));
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, json);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hd);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &body);
    curl_easy_setopt(h, CURLOPT_NOPROXY, "*");
    ck_assert_int_eq(curl_easy_perform(h), CURLE_OK);
    curl_slist_free_all(hd);
    curl_easy_cleanup(h);
}

static pe_smtp_conf_t *conf(int port, pe_smtp_tls_e tls, long ms)
{
    pe_smtp_conf_t *c = apr_pcalloc(pe_tp, sizeof(*c));

    c->url = apr_psprintf(pe_tp, "smtp://127.0.0.1:%d", port);
    c->tls = tls;
    c->timeout = apr_time_from_msec(ms);
    return c;
}

START_TEST(send_to_the_sink)
{
    static const char *const argv[] = {"tests/fakes/smtp_sink.py", "--port", "0", NULL};
    pe_fake_t f;
    pe_smtp_conf_t *c;
    pe_mail_msg_t *m = msg("Zoë \"Z\"\r\nBcc: x@evil.example", "zoe@example.com");
    const char *err = NULL;
    json_t *all, *one;

    ck_assert_int_eq(pe_fake_start(&f, argv), 0);
    c = conf(f.port, PE_SMTP_TLS_OPTIONAL, 10000);
    c->user = "mailer";
    c->password = "s3cret";
    ck_assert_msg(pe_smtp_send(pe_tp, c, m, &err) == APR_SUCCESS, "send: %s", err ? err : "");
    all = sink_messages(&f);
    ck_assert_int_eq(json_array_size(json_object_get(all, "messages")), 1);
    one = json_array_get(json_object_get(all, "messages"), 0);
    ck_assert_str_eq(json_string_value(json_object_get(one, "mail_from")), "noreply@example.org");
    ck_assert_str_eq(json_string_value(json_array_get(json_object_get(one, "rcpt_to"), 0)), "zoe@example.com");
    ck_assert_int_eq(json_array_size(json_object_get(one, "rcpt_to")), 1);
    ck_assert_str_eq(json_string_value(json_object_get(json_object_get(one, "auth"), "username")), "mailer");
    ck_assert_str_eq(json_string_value(json_object_get(one, "subject")), "Verify your email - PromptEnchanter");
    ck_assert(strstr(json_string_value(json_object_get(one, "text")), "042917") != NULL);
    ck_assert(strstr(json_string_value(json_object_get(one, "html")), "042917") != NULL);
    /* the name arrived whole in To and in the text, and no Bcc header was made of it */
    ck_assert(strstr(json_string_value(json_object_get(json_object_get(one, "headers"), "To")),
                     "Bcc: x@evil.example\" <zoe@example.com>") != NULL);
    ck_assert_ptr_null(json_object_get(json_object_get(one, "headers"), "Bcc"));
    ck_assert(strstr(json_string_value(json_object_get(one, "text")), "Hello Zoë \"Z\"  Bcc: x@evil.example,") != NULL);
    ck_assert(strstr(json_string_value(json_object_get(one, "data")), "Content-Transfer-Encoding: quoted-printable"));
    json_decref(all);

    /* STARTTLS required, the server has none: refused before any mail */
    c->tls = PE_SMTP_TLS_REQUIRED;
    ck_assert_int_eq(pe_smtp_send(pe_tp, c, m, &err), APR_EGENERAL);
    ck_assert_ptr_nonnull(err);
    /* a server that accepts and never answers: the time limit ends it */
    sink_post(&f, "/_control/config", "{\"greeting_delay_ms\": 20000}");
    c = conf(f.port, PE_SMTP_TLS_OPTIONAL, 700);
    ck_assert_int_eq(pe_smtp_send(pe_tp, c, m, &err), APR_TIMEUP);
    all = sink_messages(&f);
    ck_assert_int_eq(json_array_size(json_object_get(all, "messages")), 1);
    json_decref(all);
    pe_fake_stop(&f);
}
END_TEST

START_TEST(send_with_nothing_listening)
{
    struct sockaddr_in a;
    socklen_t len = sizeof(a);
    int s = socket(AF_INET, SOCK_STREAM, 0), port;
    const char *err = NULL;

    /* a port that was free a moment ago, closed again */
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_int_eq(bind(s, (struct sockaddr *)&a, sizeof(a)), 0);
    ck_assert_int_eq(getsockname(s, (struct sockaddr *)&a, &len), 0);
    port = ntohs(a.sin_port);
    close(s);
    ck_assert_int_eq(pe_smtp_send(pe_tp, conf(port, PE_SMTP_TLS_OPTIONAL, 5000), msg("a", "a@example.com"), &err),
                     APR_EGENERAL);
    ck_assert_ptr_nonnull(err);
}
END_TEST

Suite *pe_suite_email(void)
{
    Suite *s = suite_create("email");
    TCase *tc = pe_tcase("core");

    tcase_add_test(tc, codes_are_six_uniform_digits);
    tcase_add_test(tc, digest_binds_user_address_and_code);
    tcase_add_test(tc, days);
    tcase_add_test(tc, phrases_cannot_break_lines);
    tcase_add_test(tc, headers_of_a_message);
    tcase_add_test(tc, smtp_urls);
    suite_add_tcase(s, tc);
    tc = pe_tcase("smtp");
    tcase_add_test(tc, send_to_the_sink);
    tcase_add_test(tc, send_with_nothing_listening);
    suite_add_tcase(s, tc);
    return s;
}
