/* test_identity.c: UTF-8 helpers, e-mail syntax and normalisation, username rule. */
#include "pe_identity.h"
#include "pe_test.h"

#include <apr_strings.h>
#include <string.h>

START_TEST(utf8_helpers)
{
    ck_assert_int_eq(pe_utf8_count("", 0), 0);
    ck_assert_int_eq(pe_utf8_count("abc", 3), 3);
    ck_assert_int_eq(pe_utf8_count("\xc3\xa9t\xc3\xa9", 5), 3);
    ck_assert_int_eq(pe_utf8_count("\xe2\x82\xac", 3), 1);
    ck_assert_int_eq(pe_utf8_count("\xf0\x9f\x98\x80", 4), 1);
    ck_assert_int_eq(pe_utf8_count("\xf4\x8f\xbf\xbf", 4), 1);  /* U+10FFFF */
    ck_assert_int_eq(pe_utf8_count("a\0b", 3), 3);               /* NUL is a code point */
    ck_assert_int_eq(pe_utf8_count("\xf4\x90\x80\x80", 4), -1); /* U+110000 */
    ck_assert_int_eq(pe_utf8_count("\xed\xbf\xbf", 3), -1);     /* surrogate */
    ck_assert_int_eq(pe_utf8_count("\xe0\x80\xaf", 3), -1);     /* overlong */
    ck_assert_int_eq(pe_utf8_count("\xc1\xbf", 2), -1);         /* overlong */
    ck_assert_int_eq(pe_utf8_count("\xe2\x82", 2), -1);         /* truncated */
    ck_assert_int_eq(pe_utf8_count("\xe2\x82\xac", 2), -1);     /* length cuts it */
    ck_assert_int_eq(pe_utf8_count("\xbf", 1), -1);             /* lone continuation */
    ck_assert_int_eq(pe_utf8_count("\xf8\x88\x80\x80\x80", 5), -1);

    ck_assert_str_eq(pe_utf8_lower(pe_tp, "AbC-09", 6), "abc-09");
    ck_assert_str_eq(pe_utf8_lower(pe_tp, "\xc3\x84\xd0\x9f\xce\xa3", 6), "\xc3\xa4\xd0\xbf\xcf\x83"); /* ÄПΣ -> äпσ */
    ck_assert_str_eq(pe_utf8_lower(pe_tp, "\xc8\xba", 2), "\xe2\xb1\xa5"); /* U+023A -> U+2C65 grows a byte */
    ck_assert_str_eq(pe_utf8_lower(pe_tp, "", 0), "");
    ck_assert_ptr_null(pe_utf8_lower(pe_tp, "A\xff", 2));
}
END_TEST

START_TEST(email_valid)
{
    static const struct {
        const char *in, *out;
    } t[] = {
        {"User@Example.com", "user@example.com"},
        {"a@b.co", "a@b.co"},
        {"first.last+tag@sub.example.org", "first.last+tag@sub.example.org"},
        {"o'brien@example.ie", "o'brien@example.ie"},
        {"x_y-z!#$%&*/=?^`{|}~@example.com", "x_y-z!#$%&*/=?^`{|}~@example.com"},
        {"user@xn--bcher-kva.example", "user@xn--bcher-kva.example"},
        {"user@my-host.example.com", "user@my-host.example.com"},
        {"user@123.example.com", "user@123.example.com"},
        {"\xc3\x9cser@Ex\xc3\xa4mple.DE", "\xc3\xbcser@ex\xc3\xa4mple.de"}, /* Üser@Exämple.DE */
    };
    const char *out, *m;
    apr_size_t i;

    for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
        m = pe_email_normalize(pe_tp, t[i].in, &out);
        ck_assert_msg(m == NULL, "%s: %s", t[i].in, m);
        ck_assert_str_eq(out, t[i].out);
    }
    /* limits: 64-byte local part, 254 bytes in all */
    m = pe_email_normalize(pe_tp, apr_pstrcat(pe_tp, apr_psprintf(pe_tp, "%064d", 0), "@example.com", NULL), &out);
    ck_assert_ptr_null(m);
    {
        /* 64 + 1 + 63 + 1 + 63 + 1 + 61 = 254 */
        const char *d = apr_psprintf(pe_tp, "%063d.%063d.%s", 0, 0, apr_pstrndup(pe_tp, "abcdefghijabcdefghijabcdefghij"
                                                                                      "abcdefghijabcdefghijabcdefghij"
                                                                                      "abcdefghij", 61));
        const char *e = apr_pstrcat(pe_tp, apr_psprintf(pe_tp, "%064d", 0), "@", d, NULL);
        ck_assert_uint_eq(strlen(e), 254);
        ck_assert_ptr_null(pe_email_normalize(pe_tp, e, &out));
        ck_assert_ptr_nonnull(pe_email_normalize(pe_tp, apr_pstrcat(pe_tp, "1", e, NULL), &out));
        ck_assert_ptr_null(out);
    }
}
END_TEST

START_TEST(email_invalid)
{
    static const char *bad[] = {
        "",
        "plainaddress",
        "@example.com",
        "user@",
        "user@example",
        "user@@example.com",
        "a@b@example.com",
        "user name@example.com",
        "user@exa mple.com",
        "user\t@example.com",
        "user@example.com\n",
        " user@example.com",
        "user@exam\x7fple.com",
        "user\x01@example.com",
        ".user@example.com",
        "user.@example.com",
        "us..er@example.com",
        "user@.example.com",
        "user@example..com",
        "user@example.com.",
        "user@-example.com",
        "user@example-.com",
        "user@example.123",
        "user@1.2.3.4",
        "user@[127.0.0.1]",
        "us(er@example.com",
        "us\"er@example.com",
        "us,er@example.com",
        "us;er@example.com",
        "us\\er@example.com",
        "user@exa_mple.com",
        "user@exa!mple.com",
        "\xff@example.com",
        "user@ex\xc3\xa4\xc3mple.com",
        "user@example.\xf0\x9f\x98\x80", /* emoji is not a letter */
    };
    const char *out = "x", *m;
    apr_size_t i;

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        out = "x";
        m = pe_email_normalize(pe_tp, bad[i], &out);
        ck_assert_msg(m != NULL, "accepted: '%s'", bad[i]);
        ck_assert_ptr_null(out);
    }
    ck_assert_str_eq(pe_email_normalize(pe_tp, NULL, &out), "e-mail address is required");
    ck_assert_str_eq(pe_email_normalize(pe_tp, "a b@example.com", &out),
                     "e-mail address must not contain spaces or control characters");
    ck_assert_str_eq(pe_email_normalize(pe_tp, "ab.example.com", &out), "e-mail address must contain exactly one '@'");
    ck_assert_str_eq(pe_email_normalize(pe_tp, "ab@localhost", &out), "e-mail domain must contain a '.'");
    /* 65-byte local part, 64-byte label */
    m = pe_email_normalize(pe_tp, apr_pstrcat(pe_tp, apr_psprintf(pe_tp, "%065d", 0), "@example.com", NULL), &out);
    ck_assert_str_eq(m, "the part of the e-mail address before '@' must be 1 to 64 characters");
    m = pe_email_normalize(pe_tp, apr_pstrcat(pe_tp, "a@", apr_psprintf(pe_tp, "%064d", 0), ".com", NULL), &out);
    ck_assert_str_eq(m, "e-mail domain labels must be at most 63 characters");
    ck_assert_ptr_null(pe_email_normalize(pe_tp, apr_pstrcat(pe_tp, "a@", apr_psprintf(pe_tp, "%063d", 0), ".com", NULL),
                                          &out));
}
END_TEST

START_TEST(username_rule)
{
    static const char *good[] = {
        "abc", "a_b", "a-b", "User_123", "___", "--x",
        "\xc3\x9cn\xc3\xaf" "code",         /* Ünïcode */
        "\xe7\x94\xa8\xe6\x88\xb7\xe5\x90\x8d", /* 用户名: 3 code points */
        "\xd0\x98\xd0\xb2\xd0\xb0\xd0\xbd",     /* Иван */
    };
    static const char *bad[] = {
        "", "ab", "a b c", "a.b.c", "a@bc", "abc!", "abc\x01", "abc\n", "ab\xff", "abc\xf0\x9f\x98\x80",
        "\xe7\x94\xa8\xe6\x88\xb7",     /* 2 code points */
        "e\xcc\x81tienne",              /* decomposed: the combining accent is not a letter (send NFC) */
        "\xc0\xaf" "abc",               /* overlong */
    };
    apr_size_t i;

    for (i = 0; i < sizeof(good) / sizeof(good[0]); i++)
        ck_assert_msg(pe_username_check(good[i]) == NULL, "rejected: %s (%s)", good[i], pe_username_check(good[i]));
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        ck_assert_msg(pe_username_check(bad[i]) != NULL, "accepted: %s", bad[i]);
    ck_assert_str_eq(pe_username_check(NULL), "username is required");
    ck_assert_str_eq(pe_username_check("ab"), "username must be 3 to 50 characters long");
    ck_assert_str_eq(pe_username_check("a.bc"), "username may contain only letters, digits, '-' and '_'");
    ck_assert_str_eq(pe_username_check("ab\xff"), "username must be valid UTF-8");
    /* 50 / 51 code points, ASCII and two-byte */
    ck_assert_ptr_null(pe_username_check(apr_psprintf(pe_tp, "%050d", 7)));
    ck_assert_str_eq(pe_username_check(apr_psprintf(pe_tp, "%051d", 7)), "username must be 3 to 50 characters long");
    {
        char *s = "";
        int i2;
        for (i2 = 0; i2 < 50; i2++)
            s = apr_pstrcat(pe_tp, s, "\xc3\xa9", NULL);
        ck_assert_ptr_null(pe_username_check(s)); /* 100 bytes, 50 code points */
        ck_assert_ptr_nonnull(pe_username_check(apr_pstrcat(pe_tp, s, "x", NULL)));
    }
}
END_TEST

Suite *pe_suite_identity(void)
{
    Suite *s = suite_create("identity");
    TCase *tc = pe_tcase("identity");

    tcase_add_test(tc, utf8_helpers);
    tcase_add_test(tc, email_valid);
    tcase_add_test(tc, email_invalid);
    tcase_add_test(tc, username_rule);
    suite_add_tcase(s, tc);
    return s;
}
