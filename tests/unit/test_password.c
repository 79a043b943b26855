/* test_password.c: Argon2id hashes (PHC), rehash decisions, password policy and the common-password list. */
#include "pe_crypto.h"
#include "pe_identity.h"
#include "pe_test.h"

#include <apr_file_io.h>
#include <apr_hash.h>
#include <apr_strings.h>
#include <string.h>
#include <unistd.h>

/* Vectors from the Argon2 reference implementation (its `argon2` tool; the first is also in its test suite). */
#define VEC_DEFAULTS "$argon2id$v=19$m=65536,t=2,p=1$c29tZXNhbHQ$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc"
#define VEC_SMALL "$argon2id$v=19$m=1024,t=1,p=1$c2FsdHNhbHRzYWx0MTIzNA$gYw8nTtJB9Rk12pVLgNMLzkA5U3BqpuV7omQ3NODblc"
#define VEC_P2 "$argon2id$v=19$m=1024,t=2,p=2$MDEyMzQ1Njc4OWFiY2RlZg$pDphndHBj7gFomRVtOJGQM+TaBVZxCSk1b6FRpjw6jo"
#define VEC_ARGON2I "$argon2i$v=19$m=1024,t=1,p=1$c2FsdHNhbHRzYWx0MTIzNA$mBrThbRgma2Y2ugTErrX71ccOdx4nNxufIlehxOZHOQ"

#define PW(s) (s), strlen(s)

/* Salt and tag lengths of a PHC string we produced. */
static void phc_lengths(const char *enc, apr_size_t *saltlen, apr_size_t *taglen)
{
    const char *salt = strrchr(enc, '$');
    const char *p = salt - 1;
    unsigned char *out;

    while (*p != '$')
        p--;
    ck_assert_int_eq(pe_b64_decode_strict(pe_tp, p + 1, (apr_size_t)(salt - p - 1), 0, &out, saltlen), APR_SUCCESS);
    ck_assert_int_eq(pe_b64_decode_strict(pe_tp, salt + 1, strlen(salt + 1), 0, &out, taglen), APR_SUCCESS);
}

START_TEST(argon2_round_trip_small)
{
    const char *e1, *e2;
    apr_size_t sl, tl;

    ck_assert_int_eq(pe_password_hash(pe_tp, PW("Correct-Horse1"), 1, 1024, 1, &e1), APR_SUCCESS);
    ck_assert(strncmp(e1, "$argon2id$v=19$m=1024,t=1,p=1$", 30) == 0);
    phc_lengths(e1, &sl, &tl);
    ck_assert_uint_eq(sl, 16);
    ck_assert_uint_eq(tl, 32);
    ck_assert_int_eq(pe_password_verify(e1, PW("Correct-Horse1")), APR_SUCCESS);
    ck_assert_int_eq(pe_password_verify(e1, PW("Correct-Horse2")), PE_CRYPTO_EMISMATCH);
    ck_assert_int_eq(pe_password_verify(e1, PW("correct-Horse1")), PE_CRYPTO_EMISMATCH);
    ck_assert_int_eq(pe_password_verify(e1, PW("Correct-Horse")), PE_CRYPTO_EMISMATCH);
    ck_assert_int_eq(pe_password_verify(e1, PW("Correct-Horse1 ")), PE_CRYPTO_EMISMATCH);
    ck_assert_int_eq(pe_password_verify(e1, PW("")), PE_CRYPTO_EMISMATCH);
    /* same password, new salt, different string; both verify */
    ck_assert_int_eq(pe_password_hash(pe_tp, PW("Correct-Horse1"), 1, 1024, 1, &e2), APR_SUCCESS);
    ck_assert_str_ne(e1, e2);
    ck_assert_int_eq(pe_password_verify(e2, PW("Correct-Horse1")), APR_SUCCESS);
    /* bytes, not C strings: an embedded NUL is part of the password */
    ck_assert_int_eq(pe_password_hash(pe_tp, "Abcdefg1\0xy", 11, 1, 1024, 1, &e1), APR_SUCCESS);
    ck_assert_int_eq(pe_password_verify(e1, "Abcdefg1\0xy", 11), APR_SUCCESS);
    ck_assert_int_eq(pe_password_verify(e1, "Abcdefg1", 8), PE_CRYPTO_EMISMATCH);
    /* multibyte and p > 1 */
    ck_assert_int_eq(pe_password_hash(pe_tp, PW("Pässwörd-ß-1"), 2, 1024, 2, &e1), APR_SUCCESS);
    ck_assert(strncmp(e1, "$argon2id$v=19$m=1024,t=2,p=2$", 30) == 0);
    ck_assert_int_eq(pe_password_verify(e1, PW("Pässwörd-ß-1")), APR_SUCCESS);
}
END_TEST

START_TEST(argon2_defaults)
{
    const char *e;

    ck_assert_int_eq(PE_ARGON2_T_DEFAULT, 3);
    ck_assert_int_eq(PE_ARGON2_M_DEFAULT, 65536);
    ck_assert_int_eq(PE_ARGON2_P_DEFAULT, 1);
    ck_assert_int_eq(pe_password_hash(pe_tp, PW("Tr0ub4dor&3"), PE_ARGON2_T_DEFAULT, PE_ARGON2_M_DEFAULT,
                                      PE_ARGON2_P_DEFAULT, &e),
                     APR_SUCCESS);
    ck_assert(strncmp(e, "$argon2id$v=19$m=65536,t=3,p=1$", 31) == 0);
    ck_assert_int_eq(pe_password_verify(e, PW("Tr0ub4dor&3")), APR_SUCCESS);
    ck_assert_int_eq(pe_password_verify(e, PW("Tr0ub4dor&4")), PE_CRYPTO_EMISMATCH);
    ck_assert_int_eq(pe_password_needs_rehash(e, PE_ARGON2_T_DEFAULT, PE_ARGON2_M_DEFAULT, PE_ARGON2_P_DEFAULT), 0);
}
END_TEST

START_TEST(argon2_salts_unique)
{
    apr_hash_t *salts = apr_hash_make(pe_tp);
    const char *e, *salt_end, *salt;
    int i;

    /* the cheapest parameters, so 10 000 hashes stay quick: only the salt matters here */
    for (i = 0; i < 10000; i++) {
        ck_assert_int_eq(pe_password_hash(pe_tp, PW("Same-Password1"), 1, 8, 1, &e), APR_SUCCESS);
        salt_end = strrchr(e, '$');
        for (salt = salt_end - 1; *salt != '$'; salt--)
            ;
        salt = apr_pstrndup(pe_tp, salt + 1, (apr_size_t)(salt_end - salt - 1));
        ck_assert_uint_eq(strlen(salt), 22); /* 16 bytes */
        ck_assert_ptr_null(apr_hash_get(salts, salt, APR_HASH_KEY_STRING));
        apr_hash_set(salts, salt, APR_HASH_KEY_STRING, "");
    }
    ck_assert_uint_eq(apr_hash_count(salts), 10000);
}
END_TEST

START_TEST(argon2_known_vectors)
{
    ck_assert_int_eq(pe_password_verify(VEC_DEFAULTS, PW("password")), APR_SUCCESS);
    ck_assert_int_eq(pe_password_verify(VEC_DEFAULTS, PW("Password")), PE_CRYPTO_EMISMATCH);
    ck_assert_int_eq(pe_password_verify(VEC_SMALL, PW("Tr0ub4dor&3")), APR_SUCCESS);
    ck_assert_int_eq(pe_password_verify(VEC_SMALL, PW("Tr0ub4dor&33")), PE_CRYPTO_EMISMATCH);
    ck_assert_int_eq(pe_password_verify(VEC_P2, PW("Ünïcødé-Pass1")), APR_SUCCESS);
    ck_assert_int_eq(pe_password_verify(VEC_P2, PW("Unicode-Pass1")), PE_CRYPTO_EMISMATCH);
    /* only Argon2id: an argon2i string is not accepted, even with the right password */
    ck_assert_int_eq(pe_password_verify(VEC_ARGON2I, PW("Tr0ub4dor&3")), PE_CRYPTO_EFORMAT);
}
END_TEST

START_TEST(argon2_malformed)
{
    static const char *bad[] = {
        "",
        "argon2id$v=19$m=1024,t=1,p=1$c2FsdHNhbHRzYWx0MTIzNA$gYw8nTtJB9Rk12pVLgNMLzkA5U3BqpuV7omQ3NODblc",
        "$ARGON2ID$v=19$m=1024,t=1,p=1$c2FsdHNhbHRzYWx0MTIzNA$gYw8nTtJB9Rk12pVLgNMLzkA5U3BqpuV7omQ3NODblc",
        "$argon2d$v=19$m=1024,t=1,p=1$c2FsdHNhbHRzYWx0MTIzNA$gYw8nTtJB9Rk12pVLgNMLzkA5U3BqpuV7omQ3NODblc",
        "$argon2id$v=16$m=1024,t=1,p=1$c2FsdHNhbHRzYWx0MTIzNA$gYw8nTtJB9Rk12pVLgNMLzkA5U3BqpuV7omQ3NODblc",
        "$argon2id$m=1024,t=1,p=1$c2FsdHNhbHRzYWx0MTIzNA$gYw8nTtJB9Rk12pVLgNMLzkA5U3BqpuV7omQ3NODblc",
        "$argon2id$v=19$t=1,m=1024,p=1$c2FsdHNhbHRzYWx0MTIzNA$gYw8nTtJB9Rk12pVLgNMLzkA5U3BqpuV7omQ3NODblc",
        "$argon2id$v=19$m=01024,t=1,p=1$c2FsdHNhbHRzYWx0MTIzNA$gYw8nTtJB9Rk12pVLgNMLzkA5U3BqpuV7omQ3NODblc",
        "$argon2id$v=19$m=+1024,t=1,p=1$c2FsdHNhbHRzYWx0MTIzNA$gYw8nTtJB9Rk12pVLgNMLzkA5U3BqpuV7omQ3NODblc",
        "$argon2id$v=19$m=1024,t=1,p=1,k=2$c2FsdHNhbHRzYWx0MTIzNA$gYw8nTtJB9Rk12pVLgNMLzkA5U3BqpuV7omQ3NODblc",
        "$argon2id$v=19$m=1024,t=0,p=1$c2FsdHNhbHRzYWx0MTIzNA$gYw8nTtJB9Rk12pVLgNMLzkA5U3BqpuV7omQ3NODblc",
        "$argon2id$v=19$m=1024,t=1,p=0$c2FsdHNhbHRzYWx0MTIzNA$gYw8nTtJB9Rk12pVLgNMLzkA5U3BqpuV7omQ3NODblc",
        "$argon2id$v=19$m=4,t=1,p=1$c2FsdHNhbHRzYWx0MTIzNA$gYw8nTtJB9Rk12pVLgNMLzkA5U3BqpuV7omQ3NODblc",
        /* corrupt record asking for 4 GiB, or for 100 passes: refused without computing */
        "$argon2id$v=19$m=4194304,t=1,p=1$c2FsdHNhbHRzYWx0MTIzNA$gYw8nTtJB9Rk12pVLgNMLzkA5U3BqpuV7omQ3NODblc",
        "$argon2id$v=19$m=1024,t=100,p=1$c2FsdHNhbHRzYWx0MTIzNA$gYw8nTtJB9Rk12pVLgNMLzkA5U3BqpuV7omQ3NODblc",
        "$argon2id$v=19$m=99999999999,t=1,p=1$c2FsdHNhbHRzYWx0MTIzNA$gYw8nTtJB9Rk12pVLgNMLzkA5U3BqpuV7omQ3NODblc",
        "$argon2id$v=19$m=1024,t=1,p=1$c2FsdHNhbHRzYWx0MTIzNA==$gYw8nTtJB9Rk12pVLgNMLzkA5U3BqpuV7omQ3NODblc",
        "$argon2id$v=19$m=1024,t=1,p=1$c2FsdHNhbHRz_Wx0MTIzNA$gYw8nTtJB9Rk12pVLgNMLzkA5U3BqpuV7omQ3NODblc",
        "$argon2id$v=19$m=1024,t=1,p=1$c2FsdA$gYw8nTtJB9Rk12pVLgNMLzkA5U3BqpuV7omQ3NODblc", /* 4-byte salt */
        "$argon2id$v=19$m=1024,t=1,p=1$c2FsdHNhbHRzYWx0MTIzNA$gYw8nTtJB9Rk12o",              /* 11-byte tag */
        "$argon2id$v=19$m=1024,t=1,p=1$c2FsdHNhbHRzYWx0MTIzNA$",
        "$argon2id$v=19$m=1024,t=1,p=1$c2FsdHNhbHRzYWx0MTIzNA",
        "$argon2id$v=19$m=1024,t=1,p=1$c2FsdHNhbHRzYWx0MTIzNA$gYw8nTtJB9Rk12pVLgNMLzkA5U3BqpuV7omQ3NODblc$",
        "$argon2id$v=19$m=1024,t=1,p=1$c2FsdHNhbHRzYWx0MTIzNA$gYw8nTtJB9Rk12pVLgNMLzkA5U3BqpuV7omQ3NODblc ",
        " $argon2id$v=19$m=1024,t=1,p=1$c2FsdHNhbHRzYWx0MTIzNA$gYw8nTtJB9Rk12pVLgNMLzkA5U3BqpuV7omQ3NODblc",
        "$argon2id$v=19$m=1024, t=1,p=1$c2FsdHNhbHRzYWx0MTIzNA$gYw8nTtJB9Rk12pVLgNMLzkA5U3BqpuV7omQ3NODblc",
        "$2b$12$R9h/cIPz0gi.URNNX3kh2OPST9/PgBkqquzi.Ss7KIUgO2t0jWMUW",
    };
    apr_size_t i;

    /* the well-formed string really verifies, so each failure below is due to the one change made */
    ck_assert_int_eq(pe_password_verify(VEC_SMALL, PW("Tr0ub4dor&3")), APR_SUCCESS);
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        ck_assert_msg(pe_password_verify(bad[i], PW("Tr0ub4dor&3")) == PE_CRYPTO_EFORMAT, "accepted: %s", bad[i]);
    ck_assert_int_eq(pe_password_verify(NULL, PW("Tr0ub4dor&3")), PE_CRYPTO_EFORMAT);
}
END_TEST

START_TEST(argon2_limits)
{
    char *longpw = apr_palloc(pe_tp, PE_PASSWORD_MAX_BYTES + 2);
    const char *e;

    memset(longpw, 'A', PE_PASSWORD_MAX_BYTES + 1);
    longpw[PE_PASSWORD_MAX_BYTES + 1] = '\0';
    ck_assert_int_eq(pe_password_hash(pe_tp, longpw, PE_PASSWORD_MAX_BYTES + 1, 1, 1024, 1, &e), PE_CRYPTO_EPARAM);
    ck_assert_ptr_null(e);
    ck_assert_int_eq(pe_password_hash(pe_tp, longpw, PE_PASSWORD_MAX_BYTES, 1, 1024, 1, &e), APR_SUCCESS);
    ck_assert_int_eq(pe_password_verify(e, longpw, PE_PASSWORD_MAX_BYTES), APR_SUCCESS);
    ck_assert_int_eq(pe_password_verify(e, longpw, PE_PASSWORD_MAX_BYTES + 1), PE_CRYPTO_EMISMATCH);
    ck_assert_int_eq(pe_password_hash(pe_tp, PW("Abcdefg1"), 0, 1024, 1, &e), PE_CRYPTO_EPARAM);
    ck_assert_int_eq(pe_password_hash(pe_tp, PW("Abcdefg1"), PE_ARGON2_T_MAX + 1, 1024, 1, &e), PE_CRYPTO_EPARAM);
    ck_assert_int_eq(pe_password_hash(pe_tp, PW("Abcdefg1"), 1, 7, 1, &e), PE_CRYPTO_EPARAM);
    ck_assert_int_eq(pe_password_hash(pe_tp, PW("Abcdefg1"), 1, 15, 2, &e), PE_CRYPTO_EPARAM);
    ck_assert_int_eq(pe_password_hash(pe_tp, PW("Abcdefg1"), 1, PE_ARGON2_M_MAX + 1, 1, &e), PE_CRYPTO_EPARAM);
    ck_assert_int_eq(pe_password_hash(pe_tp, PW("Abcdefg1"), 1, 1024, 0, &e), PE_CRYPTO_EPARAM);
    ck_assert_int_eq(pe_password_hash(pe_tp, PW("Abcdefg1"), 1, 1024, PE_ARGON2_P_MAX + 1, &e), PE_CRYPTO_EPARAM);
    ck_assert_int_eq(pe_password_hash(pe_tp, NULL, 3, 1, 1024, 1, &e), PE_CRYPTO_EPARAM);
}
END_TEST

START_TEST(argon2_needs_rehash)
{
    const char *e;

    ck_assert_int_eq(pe_password_hash(pe_tp, PW("Correct-Horse1"), 1, 1024, 1, &e), APR_SUCCESS);
    ck_assert_int_eq(pe_password_needs_rehash(e, 1, 1024, 1), 0);
    ck_assert_int_eq(pe_password_needs_rehash(e, 1, 512, 1), 0); /* stronger than policy: keep */
    ck_assert_int_eq(pe_password_needs_rehash(e, 2, 1024, 1), 1);
    ck_assert_int_eq(pe_password_needs_rehash(e, 1, 2048, 1), 1);
    ck_assert_int_eq(pe_password_needs_rehash(e, 1, 1024, 2), 1);
    ck_assert_int_eq(pe_password_needs_rehash(e, PE_ARGON2_T_DEFAULT, PE_ARGON2_M_DEFAULT, PE_ARGON2_P_DEFAULT), 1);
    /* the reference vector has t=2 and an 8-byte salt: below t=3, and below our salt length even at t=2 */
    ck_assert_int_eq(pe_password_needs_rehash(VEC_DEFAULTS, 3, 65536, 1), 1);
    ck_assert_int_eq(pe_password_needs_rehash(VEC_DEFAULTS, 2, 65536, 1), 1);
    /* 16-byte salt, 32-byte tag, params at policy */
    ck_assert_int_eq(pe_password_needs_rehash(VEC_SMALL, 1, 1024, 1), 0);
    ck_assert_int_eq(pe_password_needs_rehash(VEC_P2, 2, 1024, 2), 0);
    ck_assert_int_eq(pe_password_needs_rehash(VEC_P2, 2, 1024, 1), 0);
    ck_assert_int_eq(pe_password_needs_rehash(VEC_ARGON2I, 1, 1024, 1), 1);
    ck_assert_int_eq(pe_password_needs_rehash("$2b$12$R9h/cIPz0gi.URNNX3kh2OPST9/PgBkqquzi.Ss7KIUgO2t0jWMUW", 1, 8, 1),
                     1);
    ck_assert_int_eq(pe_password_needs_rehash("", 1, 8, 1), 1);
    ck_assert_int_eq(pe_password_needs_rehash(NULL, 1, 8, 1), 1);
}
END_TEST

/* The check result as a string ("" when accepted) for table comparison. */
static const char *chk(apr_hash_t *list, const char *pw, apr_size_t len, const char *email, const char *user)
{
    const char *m = pe_password_check(pe_tp, list, pw, len, email, user);
    return m ? m : "";
}

/* n copies of a UTF-8 unit followed by a suffix. */
static const char *rep(const char *unit, int n, const char *suffix)
{
    char *s = "";
    int i;

    for (i = 0; i < n; i++)
        s = apr_pstrcat(pe_tp, s, unit, NULL);
    return apr_pstrcat(pe_tp, s, suffix, NULL);
}

#define MSG_SHORT "password must be at least 8 characters long"
#define MSG_LONG "password must be at most 128 characters long"
#define MSG_UPPER "password must contain at least one upper-case letter"
#define MSG_LOWER "password must contain at least one lower-case letter"
#define MSG_DIGIT "password must contain at least one digit"
#define MSG_UTF8 "password must be valid UTF-8"
#define MSG_COMMON "password is too common"

START_TEST(policy_length_and_classes)
{
    static const struct {
        const char *pw, *want;
    } t[] = {
        {"Abcde1x", MSG_SHORT},                        /* 7 */
        {"Abcdef1x", ""},                              /* 8 */
        {"", MSG_SHORT},
        {"abcdefg1", MSG_UPPER},
        {"ABCDEFG1", MSG_LOWER},
        {"Abcdefgh", MSG_DIGIT},
        {"12345678", MSG_UPPER},
        {"Abc def 1 !", ""},                           /* spaces and symbols are fine */
        {"\xc3\x84" "bcdef1\xc3\xbc", ""},             /* "Äbcdef1ü": 8 code points, 10 bytes */
        {"\xc3\x84" "bcd\xc3\xa9" "1\xc3\xbc", MSG_SHORT}, /* "Äbcdé1ü": 7 code points, 10 bytes */
        {"\xc3\x84\xc3\xb6\xc3\xb6\xc3\xb6\xc3\xb6\xc3\xb6\xc3\xb6" "1", ""}, /* "Äöööööö1": upper/lower non-ASCII */
        {"\xd0\x9f\xd0\xb0\xd1\x80\xd0\xbe\xd0\xbb\xd1\x8c" "123", ""},     /* "Пароль123" */
        {"\xd0\x9f\xd0\x90\xd0\xa0\xd0\x9e\xd0\x9b\xd0\xac" "123", MSG_LOWER}, /* "ПАРОЛЬ123" */
        {"\xe5\xaf\x86\xe7\xa0\x81\xe5\xaf\x86\xe7\xa0\x81" "Aa1x", ""},    /* CJK has no case; Aa give it */
        {"Abcdef1\xf0\x9f\x98\x80", ""},               /* emoji: 8 code points */
        {"Abcdef\xd9\xa3\xd9\xa3", MSG_DIGIT},         /* Arabic-Indic digits do not count as digits */
        {"\xc3\x28" "bcdefG1", MSG_UTF8},              /* bad continuation */
        {"Abcdefg1\xc0\xaf", MSG_UTF8},                /* overlong '/' */
        {"Abcdefg1\xed\xa0\x80", MSG_UTF8},            /* surrogate */
        {"Abcdefg1\xf4\x90\x80\x80", MSG_UTF8},        /* above U+10FFFF */
        {"Abcdefg1\xe2\x82", MSG_UTF8},                /* truncated */
        {"Abcdefg1\xff", MSG_UTF8},
        {"Abcdefg1\x80", MSG_UTF8},
    };
    apr_size_t i;

    for (i = 0; i < sizeof(t) / sizeof(t[0]); i++)
        ck_assert_msg(strcmp(chk(NULL, PW(t[i].pw), NULL, NULL), t[i].want) == 0, "case %u: got '%s' want '%s'",
                      (unsigned)i, chk(NULL, PW(t[i].pw), NULL, NULL), t[i].want);

    /* 128 / 129 code points, ASCII and two-byte */
    ck_assert_str_eq(chk(NULL, PW(rep("a", 126, "B1")), NULL, NULL), "");
    ck_assert_str_eq(chk(NULL, PW(rep("a", 127, "B1")), NULL, NULL), MSG_LONG);
    ck_assert_str_eq(chk(NULL, PW(rep("\xc3\xa9", 126, "B1")), NULL, NULL), ""); /* 254 bytes */
    ck_assert_str_eq(chk(NULL, PW(rep("\xc3\xa9", 127, "B1")), NULL, NULL), MSG_LONG);
    ck_assert_str_eq(chk(NULL, PW(rep("\xf0\x9f\x98\x80", 125, "Bb1")), NULL, NULL), ""); /* 503 bytes */
    ck_assert_str_eq(chk(NULL, PW(rep("\xf0\x9f\x98\x80", 126, "Bb1")), NULL, NULL), MSG_LONG);
    /* NUL anywhere */
    ck_assert_str_eq(chk(NULL, "Abcd\0efg1", 9, NULL, NULL), "password must not contain NUL characters");
    ck_assert_str_eq(chk(NULL, "Abcdefg1\0", 9, NULL, NULL), "password must not contain NUL characters");
}
END_TEST

START_TEST(policy_all_messages_in_order)
{
    apr_array_header_t *e = pe_password_check_all(pe_tp, NULL, PW("abc"), NULL, NULL);

    ck_assert_int_eq(e->nelts, 3);
    ck_assert_str_eq(APR_ARRAY_IDX(e, 0, const char *), MSG_SHORT);
    ck_assert_str_eq(APR_ARRAY_IDX(e, 1, const char *), MSG_UPPER);
    ck_assert_str_eq(APR_ARRAY_IDX(e, 2, const char *), MSG_DIGIT);
    e = pe_password_check_all(pe_tp, NULL, PW("Abcdefg1"), NULL, NULL);
    ck_assert_int_eq(e->nelts, 0);
    e = pe_password_check_all(pe_tp, NULL, "\xff", 1, NULL, NULL);
    ck_assert_int_eq(e->nelts, 1);
    ck_assert_str_eq(APR_ARRAY_IDX(e, 0, const char *), MSG_UTF8);
}
END_TEST

START_TEST(policy_context_words)
{
    /* username, case-insensitive, only when 3+ code points */
    ck_assert_str_eq(chk(NULL, PW("xxAlice99yY1"), NULL, "alice99"), "password must not contain your username");
    ck_assert_str_eq(chk(NULL, PW("xxALICE99yY1"), NULL, "Alice99"), "password must not contain your username");
    ck_assert_str_eq(chk(NULL, PW("Alxxxxxx1"), NULL, "al"), "");
    ck_assert_str_eq(chk(NULL, PW("Xx\xc3\x89lodie-1"), NULL, "\xc3\xa9lodie"),
                     "password must not contain your username"); /* "Élodie" vs "élodie" */
    /* e-mail local part */
    ck_assert_str_eq(chk(NULL, PW("Bob.Smith2024x"), "bob.smith@example.com", NULL),
                     "password must not contain your e-mail address");
    ck_assert_str_eq(chk(NULL, PW("Example2024x"), "bob.smith@example.com", NULL), "");
    ck_assert_str_eq(chk(NULL, PW("Xy-bo-2024x"), "bo@example.com", NULL), "");
    ck_assert_str_eq(chk(NULL, PW("Xy-bob-2024x"), "not-an-email", NULL), "");
    /* the service name */
    ck_assert_str_eq(chk(NULL, PW("MyPromptEnchanter1"), NULL, NULL), "password must not contain the service name");
}
END_TEST

START_TEST(policy_common_list)
{
    static const char *common[] = {"Password1", "PASSWORd1", "pAsSwOrD1", "Qwerty123", "Welcome1",  "Passw0rd",
                                   "Admin123",  "P@ssw0rd", "Summer2024", "Iloveyou1", "Letmein1", "Abcd1234",
                                   "Zaq12wsx",  "ChangeMe123"};
    apr_hash_t *list;
    apr_size_t i;

    ck_assert_ptr_null(pe_password_list_load(pe_tp, "conf/common-passwords.txt", &list));
    ck_assert_uint_ge(apr_hash_count(list), 300);
    for (i = 0; i < sizeof(common) / sizeof(common[0]); i++) {
        ck_assert_msg(strcmp(chk(NULL, PW(common[i]), NULL, NULL), "") == 0, "%s fails composition", common[i]);
        ck_assert_msg(strcmp(chk(list, PW(common[i]), NULL, NULL), MSG_COMMON) == 0, "%s not rejected", common[i]);
    }
    /* all upper case: both the composition rule and the list say no */
    {
        apr_array_header_t *e = pe_password_check_all(pe_tp, list, PW("PASSWORD1"), NULL, NULL);
        ck_assert_int_eq(e->nelts, 2);
        ck_assert_str_eq(APR_ARRAY_IDX(e, 0, const char *), MSG_LOWER);
        ck_assert_str_eq(APR_ARRAY_IDX(e, 1, const char *), MSG_COMMON);
    }
    /* whole-password match only */
    ck_assert_str_eq(chk(list, PW("Password1x"), NULL, NULL), "");
    ck_assert_str_eq(chk(list, PW("xPassword1"), NULL, NULL), "");
    ck_assert_str_eq(chk(list, PW("Correct-Horse-Battery-9"), NULL, NULL), "");
    /* entries that fail composition are still in the set (and other messages come first) */
    ck_assert_ptr_nonnull(apr_hash_get(list, "123456", APR_HASH_KEY_STRING));
    ck_assert_ptr_nonnull(apr_hash_get(list, "password", APR_HASH_KEY_STRING));
    ck_assert_ptr_null(apr_hash_get(list, "Password1", APR_HASH_KEY_STRING)); /* stored lower-cased */
}
END_TEST

/* Pool cleanup: remove a temporary file. */
static apr_status_t remove_file(void *path)
{
    unlink(path);
    return APR_SUCCESS;
}

/* Write text to a fresh file in the test pool's temp dir, return its path. */
static const char *tmpfile_with(const char *text, apr_size_t len)
{
    const char *dir;
    char *path;
    apr_file_t *f;
    apr_size_t n = len;

    ck_assert_int_eq(apr_temp_dir_get(&dir, pe_tp), APR_SUCCESS);
    path = apr_pstrcat(pe_tp, dir, "/pe-pwlist-XXXXXX", NULL);
    ck_assert_int_eq(
        apr_file_mktemp(&f, path, APR_FOPEN_CREATE | APR_FOPEN_READ | APR_FOPEN_WRITE | APR_FOPEN_EXCL, pe_tp),
        APR_SUCCESS);
    ck_assert_int_eq(apr_file_write_full(f, text, len, &n), APR_SUCCESS);
    apr_file_close(f);
    apr_pool_cleanup_register(pe_tp, path, remove_file, apr_pool_cleanup_null);
    return path;
}

START_TEST(list_file_parsing)
{
    static const char text[] = "\xEF\xBB\xBF# comment line\r\n"
                               "\r\n"
                               "Hunter2Hunter  \r\n"
                               "   \n"
                               "\xc3\x87" "ava1234\n"  /* "Çava1234" */
                               "#Notapassword1\n"
                               "LastLine9";
    apr_hash_t *list = NULL;
    const char *m, *path;

    path = tmpfile_with(text, sizeof(text) - 1);
    ck_assert_ptr_null(pe_password_list_load(pe_tp, path, &list));
    ck_assert_uint_eq(apr_hash_count(list), 3);
    ck_assert_str_eq(chk(list, PW("hUNTER2hUNTER"), NULL, NULL), MSG_COMMON);
    ck_assert_str_eq(chk(list, PW("\xc3\xa7" "AVA1234"), NULL, NULL), MSG_COMMON); /* "çAVA1234" */
    ck_assert_str_eq(chk(list, PW("Lastline9"), NULL, NULL), MSG_COMMON);
    ck_assert_str_eq(chk(list, PW("Notapassword1"), NULL, NULL), "");

    path = tmpfile_with("Good1Pass\nBad\xff" "Line1\n", 20);
    m = pe_password_list_load(pe_tp, path, &list);
    ck_assert_ptr_nonnull(m);
    ck_assert_ptr_nonnull(strstr(m, "line 2"));
    ck_assert_ptr_null(list);

    path = tmpfile_with("# only comments\n\n", 17);
    m = pe_password_list_load(pe_tp, path, &list);
    ck_assert_ptr_nonnull(m);
    ck_assert_ptr_nonnull(strstr(m, "no entries"));

    path = tmpfile_with("", 0);
    ck_assert_ptr_nonnull(pe_password_list_load(pe_tp, path, &list));

    m = pe_password_list_load(pe_tp, "/nonexistent/pe-common.txt", &list);
    ck_assert_ptr_nonnull(m);
    ck_assert_ptr_nonnull(strstr(m, "/nonexistent/pe-common.txt"));
}
END_TEST

Suite *pe_suite_password(void)
{
    Suite *s = suite_create("password");
    TCase *tc = pe_tcase("password");

    tcase_add_test(tc, argon2_round_trip_small);
    tcase_add_test(tc, argon2_defaults);
    tcase_add_test(tc, argon2_salts_unique);
    tcase_add_test(tc, argon2_known_vectors);
    tcase_add_test(tc, argon2_malformed);
    tcase_add_test(tc, argon2_limits);
    tcase_add_test(tc, argon2_needs_rehash);
    tcase_add_test(tc, policy_length_and_classes);
    tcase_add_test(tc, policy_all_messages_in_order);
    tcase_add_test(tc, policy_context_words);
    tcase_add_test(tc, policy_common_list);
    tcase_add_test(tc, list_file_parsing);
    suite_add_tcase(s, tc);
    return s;
}
