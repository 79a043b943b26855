/* test_crypto.c: CSPRNG use, API keys, tokens, HMAC digests, constant-time compare, AES-256-GCM sealing. */
#define OPENSSL_SUPPRESS_DEPRECATED /* RAND_set_rand_method: the only way to make RAND_bytes fail in a test */
#include "pe_crypto.h"
#include "pe_logno.h"
#include "pe_test.h"
#include "pe_util.h"

#include <apr_hash.h>
#include <apr_strings.h>
#include <openssl/rand.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static const unsigned char key_a[32] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16,
                                        17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32};
static const unsigned char key_b[32] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16,
                                        17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 33};

/* ---- log capture ---- */
static int log_hits;
static char log_last[1024];

static void capture_log(int level, apr_status_t rv, const char *msg)
{
    log_hits++;
    apr_cpystrn(log_last, msg, sizeof(log_last));
}

/* ---- a RAND method that always fails ---- */
static int failing_bytes(unsigned char *buf, int num)
{
    memset(buf, 0x5A, (size_t)num); /* partial garbage the caller must not use */
    return 0;
}
static int failing_status(void)
{
    return 0;
}
static RAND_METHOD failing_rand = {NULL, failing_bytes, NULL, NULL, failing_bytes, failing_status};

START_TEST(random_bytes_basic)
{
    unsigned char a[32], b[32], zero[32] = {0};
    unsigned char *big = apr_palloc(pe_tp, 1 << 20);
    apr_size_t i, zeros = 0;

    ck_assert_int_eq(pe_random_bytes(a, sizeof(a)), APR_SUCCESS);
    ck_assert_int_eq(pe_random_bytes(b, sizeof(b)), APR_SUCCESS);
    ck_assert(memcmp(a, b, sizeof(a)) != 0);
    ck_assert(memcmp(a, zero, sizeof(a)) != 0);
    ck_assert_int_eq(pe_random_bytes(a, 0), APR_SUCCESS);
    memset(big, 0, 1 << 20);
    ck_assert_int_eq(pe_random_bytes(big, 1 << 20), APR_SUCCESS);
    for (i = 0; i < (1 << 20); i++)
        zeros += big[i] == 0;
    /* expected 4096 zero bytes; a buffer left unfilled would have 1 Mi */
    ck_assert_uint_lt(zeros, 5000);
    ck_assert_uint_gt(zeros, 3200);
}
END_TEST

/* Ids: 20,000 distinct 16-byte values; a forked child does not repeat what its parent draws next. */
START_TEST(id_bytes_unique_and_fork_safe)
{
    apr_hash_t *seen = apr_hash_make(pe_tp);
    unsigned char b[16], mine[16], theirs[16];
    int i, fd[2], status;
    pid_t pid;

    for (i = 0; i < 20000; i++) {
        ck_assert_int_eq(pe_id_bytes(b, sizeof(b)), APR_SUCCESS);
        ck_assert_ptr_null(apr_hash_get(seen, b, sizeof(b)));
        apr_hash_set(seen, apr_pmemdup(pe_tp, b, sizeof(b)), sizeof(b), "");
    }
    ck_assert_int_eq(pipe(fd), 0);
    if ((pid = fork()) == 0) {
        close(fd[0]);
        _exit(pe_id_bytes(theirs, sizeof(theirs)) == APR_SUCCESS &&
                      write(fd[1], theirs, sizeof(theirs)) == (ssize_t)sizeof(theirs)
                  ? 0
                  : 1);
    }
    ck_assert_int_gt(pid, 0);
    close(fd[1]);
    ck_assert_int_eq(pe_id_bytes(mine, sizeof(mine)), APR_SUCCESS);
    ck_assert_int_eq(read(fd[0], theirs, sizeof(theirs)), (int)sizeof(theirs));
    close(fd[0]);
    waitpid(pid, &status, 0);
    ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    ck_assert(memcmp(mine, theirs, sizeof(mine)) != 0);
    ck_assert_ptr_null(apr_hash_get(seen, theirs, sizeof(theirs)));
}
END_TEST

START_TEST(random_failure_is_fatal)
{
    unsigned char buf[40];
    const char *s = "x", *sealed = "x", *enc = "x";
    apr_size_t i;

    pe_log_set(capture_log);
    log_hits = 0;
    ck_assert_int_eq(RAND_set_rand_method(&failing_rand), 1);
    memset(buf, 0xAA, sizeof(buf));
    ck_assert_int_eq(pe_random_bytes(buf, sizeof(buf)), PE_CRYPTO_ERNG);
    for (i = 0; i < sizeof(buf); i++)
        ck_assert_uint_eq(buf[i], 0); /* never partly random, never the RNG's garbage */
    ck_assert_int_ge(log_hits, 1);
    ck_assert_ptr_nonnull(strstr(log_last, "PE20000: "));
    ck_assert_int_eq(pe_apikey_generate(pe_tp, &s), PE_CRYPTO_ERNG);
    ck_assert_ptr_null(s);
    s = "x";
    ck_assert_int_eq(pe_token_generate(pe_tp, &s), PE_CRYPTO_ERNG);
    ck_assert_ptr_null(s);
    s = "x";
    ck_assert_int_eq(pe_random_string(pe_tp, "0123456789", 6, &s), PE_CRYPTO_ERNG);
    ck_assert_ptr_null(s);
    ck_assert_int_eq(pe_seal(pe_tp, key_a, "k1", "secret", 6, NULL, &sealed), PE_CRYPTO_ERNG);
    ck_assert_ptr_null(sealed);
    ck_assert_int_eq(pe_password_hash(pe_tp, "Secret12", 8, 1, 64, 1, &enc), PE_CRYPTO_ERNG);
    ck_assert_ptr_null(enc);
    RAND_set_rand_method(NULL);
    ck_assert_int_eq(pe_random_bytes(buf, sizeof(buf)), APR_SUCCESS);
    ck_assert_int_eq(pe_apikey_generate(pe_tp, &s), APR_SUCCESS);
    pe_log_set(NULL);
}
END_TEST

START_TEST(random_string_uniform)
{
    static const char b62[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    long counts[62] = {0};
    const char *s;
    double chi = 0, expect;
    int i, k;

    /* 10000 API keys = 320000 characters; chi-square over 62 cells (61 dof, mean 61, sd 11).
     * A modulo-biased draw (byte % 62) would give about 2700; a uniform one stays under 120
     * except with probability ~1e-5. */
    for (k = 0; k < 10000; k++) {
        ck_assert_int_eq(pe_apikey_generate(pe_tp, &s), APR_SUCCESS);
        for (i = 3; s[i]; i++)
            counts[strchr(b62, s[i]) - b62]++;
    }
    expect = 320000.0 / 62;
    for (i = 0; i < 62; i++)
        chi += (counts[i] - expect) * (counts[i] - expect) / expect;
    ck_assert_msg(chi < 120, "chi-square %f", chi);

    ck_assert_int_eq(pe_random_string(pe_tp, "0123456789", 6, &s), APR_SUCCESS);
    ck_assert_uint_eq(strlen(s), 6);
    ck_assert_uint_eq(strspn(s, "0123456789"), 6);
    ck_assert_int_eq(pe_random_string(pe_tp, "ab", 0, &s), APR_SUCCESS);
    ck_assert_str_eq(s, "");
    ck_assert_int_eq(pe_random_string(pe_tp, "a", 4, &s), PE_CRYPTO_EPARAM);
    ck_assert_ptr_null(s);
    ck_assert_int_eq(pe_random_string(pe_tp, "abca", 4, &s), PE_CRYPTO_EPARAM);
    ck_assert_int_eq(pe_random_string(pe_tp, NULL, 4, &s), PE_CRYPTO_EPARAM);
}
END_TEST

START_TEST(apikey_format_and_uniqueness)
{
    apr_hash_t *seen = apr_hash_make(pe_tp);
    const char *k;
    int i;

    for (i = 0; i < 10000; i++) {
        ck_assert_int_eq(pe_apikey_generate(pe_tp, &k), APR_SUCCESS);
        ck_assert_uint_eq(strlen(k), PE_APIKEY_LEN);
        ck_assert_uint_eq(strlen(k), 35);
        ck_assert(strncmp(k, "pe-", 3) == 0);
        ck_assert_uint_eq(strspn(k + 3, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"), 32);
        ck_assert_int_eq(pe_apikey_format_ok(k), 1);
        ck_assert_ptr_null(apr_hash_get(seen, k, APR_HASH_KEY_STRING));
        apr_hash_set(seen, k, APR_HASH_KEY_STRING, "");
    }
    ck_assert_uint_eq(apr_hash_count(seen), 10000);

    ck_assert_int_eq(pe_apikey_format_ok("pe-abcdefghijABCDEFGHIJ0123456789x"), 0);   /* 31 */
    ck_assert_int_eq(pe_apikey_format_ok("pe-abcdefghijABCDEFGHIJ0123456789xyz"), 0); /* 33 */
    ck_assert_int_eq(pe_apikey_format_ok("pe-abcdefghijABCDEFGHIJ0123456789xy"), 1);  /* 32 */
    ck_assert_int_eq(pe_apikey_format_ok("PE-abcdefghijABCDEFGHIJ0123456789xy"), 0);
    ck_assert_int_eq(pe_apikey_format_ok("pe_abcdefghijABCDEFGHIJ0123456789xy"), 0);
    ck_assert_int_eq(pe_apikey_format_ok("pe-abcdefghijABCDEFGHIJ0123456789-y"), 0);
    ck_assert_int_eq(pe_apikey_format_ok("pe-abcdefghijABCDEFGHIJ0123456789_y"), 0);
    ck_assert_int_eq(pe_apikey_format_ok("pe-abcdefghijABCDEFGHIJ0123456789 y"), 0);
    ck_assert_int_eq(pe_apikey_format_ok("pe-abcdefghijABCDEFGHIJ012345678\xc3\xa9y"), 0);
    ck_assert_int_eq(pe_apikey_format_ok(" pe-abcdefghijABCDEFGHIJ0123456789xy"), 0);
    ck_assert_int_eq(pe_apikey_format_ok("pe-abcdefghijABCDEFGHIJ0123456789xy\n"), 0);
    /* the reference's 43-character base64url keys are not ours */
    ck_assert_int_eq(pe_apikey_format_ok("pe-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"), 0);
    ck_assert_int_eq(pe_apikey_format_ok("pe-"), 0);
    ck_assert_int_eq(pe_apikey_format_ok(""), 0);
    ck_assert_int_eq(pe_apikey_format_ok(NULL), 0);
}
END_TEST

START_TEST(token_format_and_uniqueness)
{
    apr_hash_t *seen = apr_hash_make(pe_tp);
    const char *t;
    unsigned char *raw;
    apr_size_t rawlen;
    char *bad;
    int i;

    for (i = 0; i < 10000; i++) {
        ck_assert_int_eq(pe_token_generate(pe_tp, &t), APR_SUCCESS);
        ck_assert_uint_eq(strlen(t), 86);
        ck_assert_uint_eq(
            strspn(t, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"), 86);
        ck_assert_ptr_nonnull(strchr("AQgw", t[85]));
        ck_assert_int_eq(pe_token_format_ok(t), 1);
        ck_assert_ptr_null(apr_hash_get(seen, t, APR_HASH_KEY_STRING));
        apr_hash_set(seen, t, APR_HASH_KEY_STRING, "");
    }
    ck_assert_int_eq(pe_b64_decode_strict(pe_tp, t, 86, 1, &raw, &rawlen), APR_SUCCESS);
    ck_assert_uint_eq(rawlen, 64);
    ck_assert_str_eq(pe_base64url(pe_tp, raw, rawlen), t);

    bad = apr_pstrdup(pe_tp, t);
    bad[85] = bad[85] == 'A' ? 'B' : 'A' + 1; /* stray low bits in the last character */
    ck_assert_int_eq(pe_token_format_ok(bad), 0);
    bad = apr_pstrdup(pe_tp, t);
    bad[10] = '+';
    ck_assert_int_eq(pe_token_format_ok(bad), 0);
    bad[10] = '/';
    ck_assert_int_eq(pe_token_format_ok(bad), 0);
    bad[10] = '=';
    ck_assert_int_eq(pe_token_format_ok(bad), 0);
    ck_assert_int_eq(pe_token_format_ok(apr_pstrndup(pe_tp, t, 85)), 0);
    ck_assert_int_eq(pe_token_format_ok(apr_pstrcat(pe_tp, t, "A", NULL)), 0);
    ck_assert_int_eq(pe_token_format_ok(apr_pstrcat(pe_tp, t, "==", NULL)), 0);
    ck_assert_int_eq(pe_token_format_ok(""), 0);
    ck_assert_int_eq(pe_token_format_ok(NULL), 0);
}
END_TEST

START_TEST(hmac_rfc4231_vectors)
{
    unsigned char k1[20], k6[131], mac[32];
    const char *hex;
    static const unsigned char secret[32] = {0,  1,  2,  3,  4,  5,  6,  7,  8,  9,  10, 11, 12, 13, 14, 15,
                                             16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31};
    const char *d1, *d2, *d3;

    memset(k1, 0x0b, sizeof(k1));
    memset(k6, 0xaa, sizeof(k6));
    /* RFC 4231 test case 1 */
    ck_assert_int_eq(pe_hmac_sha256(k1, sizeof(k1), "Hi There", 8, mac), APR_SUCCESS);
    ck_assert_str_eq(pe_hex_encode(pe_tp, mac, 32), "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");
    /* test case 2 */
    ck_assert_int_eq(pe_hmac_sha256("Jefe", 4, "what do ya want for nothing?", 28, mac), APR_SUCCESS);
    ck_assert_str_eq(pe_hex_encode(pe_tp, mac, 32), "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    /* test case 6: key longer than the block size */
    ck_assert_int_eq(pe_hmac_sha256(k6, sizeof(k6), "Test Using Larger Than Block-Size Key - Hash Key First", 54, mac),
                     APR_SUCCESS);
    ck_assert_str_eq(pe_hex_encode(pe_tp, mac, 32), "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");

    /* lookup digest = hex HMAC under the 32-byte secret (value from `openssl dgst -sha256 -mac HMAC`) */
    ck_assert_int_eq(pe_lookup_digest(pe_tp, secret, "pe-abc", 6, &hex), APR_SUCCESS);
    ck_assert_str_eq(hex, "d502659f5e778d9103531741fe84715992588acdae2301e7fce787ad411dc58c");
    ck_assert_uint_eq(strlen(hex), PE_DIGEST_HEX_LEN);
    ck_assert_int_eq(pe_lookup_digest(pe_tp, key_a, "pe-abc", 6, &d1), APR_SUCCESS);
    ck_assert_int_eq(pe_lookup_digest(pe_tp, key_b, "pe-abc", 6, &d2), APR_SUCCESS);
    ck_assert_int_eq(pe_lookup_digest(pe_tp, key_a, "pe-abd", 6, &d3), APR_SUCCESS);
    ck_assert_str_ne(d1, d2);
    ck_assert_str_ne(d1, d3);
    ck_assert_uint_eq(strspn(d1, "0123456789abcdef"), 64);
    ck_assert_int_eq(pe_lookup_digest(pe_tp, key_a, "", 0, &d1), APR_SUCCESS);
    ck_assert_uint_eq(strlen(d1), 64);
    /* the first secret's key blocks are hashed once and reused; any secret, any length, gives the HMAC */
    {
        const unsigned char *keys[] = {secret, key_a, secret, key_b};
        char long_tok[300];
        int i;

        memset(long_tok, 'x', sizeof(long_tok));
        for (i = 0; i < 4; i++) {
            apr_size_t lens[] = {0, 6, 55, 56, 64, 200, sizeof(long_tok)};
            int j;

            for (j = 0; j < (int)(sizeof(lens) / sizeof(lens[0])); j++) {
                ck_assert_int_eq(pe_hmac_sha256(keys[i], 32, long_tok, lens[j], mac), APR_SUCCESS);
                ck_assert_int_eq(pe_lookup_digest(pe_tp, keys[i], long_tok, lens[j], &d1), APR_SUCCESS);
                ck_assert_str_eq(d1, pe_hex_encode(pe_tp, mac, 32));
            }
        }
    }
}
END_TEST

START_TEST(ct_equal_cases)
{
    ck_assert_int_eq(pe_ct_equal("abcdef", 6, "abcdef", 6), 1);
    ck_assert_int_eq(pe_ct_equal("abcdef", 6, "abcdeg", 6), 0);
    ck_assert_int_eq(pe_ct_equal("abcdef", 6, "xbcdef", 6), 0);
    ck_assert_int_eq(pe_ct_equal("abcdef", 6, "abcde", 5), 0);  /* prefix is not equal */
    ck_assert_int_eq(pe_ct_equal("abcde", 5, "abcdef", 6), 0);
    ck_assert_int_eq(pe_ct_equal("a\0b", 3, "a\0c", 3), 0);     /* bytes, not C strings */
    ck_assert_int_eq(pe_ct_equal("a\0b", 3, "a\0b", 3), 1);
    ck_assert_int_eq(pe_ct_equal("", 0, "", 0), 1);
    ck_assert_int_eq(pe_ct_equal(NULL, 0, NULL, 0), 1);
    ck_assert_int_eq(pe_ct_equal(NULL, 3, "abc", 3), 0);
}
END_TEST

START_TEST(b64_strict_decoding)
{
    unsigned char src[70], *out;
    apr_size_t n, outlen;
    const char *enc;

    ck_assert_int_eq(pe_random_bytes(src, sizeof(src)), APR_SUCCESS);
    for (n = 0; n <= sizeof(src); n++) {
        enc = pe_base64url(pe_tp, src, n);
        ck_assert_int_eq(pe_b64_decode_strict(pe_tp, enc, strlen(enc), 1, &out, &outlen), APR_SUCCESS);
        ck_assert_uint_eq(outlen, n);
        ck_assert(n == 0 || memcmp(out, src, n) == 0);
    }
    ck_assert_int_eq(pe_b64_decode_strict(pe_tp, "QUJD", 4, 1, &out, &outlen), APR_SUCCESS);
    ck_assert_str_eq((char *)out, "ABC");
    ck_assert_int_eq(pe_b64_decode_strict(pe_tp, "QQ", 2, 1, &out, &outlen), APR_SUCCESS);
    ck_assert_uint_eq(outlen, 1);
    ck_assert_int_eq(pe_b64_decode_strict(pe_tp, "QR", 2, 1, &out, &outlen), PE_CRYPTO_EFORMAT); /* stray bits */
    ck_assert_ptr_null(out);
    ck_assert_int_eq(pe_b64_decode_strict(pe_tp, "QQ==", 4, 1, &out, &outlen), PE_CRYPTO_EFORMAT);
    ck_assert_int_eq(pe_b64_decode_strict(pe_tp, "QUJDR", 5, 1, &out, &outlen), PE_CRYPTO_EFORMAT);
    ck_assert_int_eq(pe_b64_decode_strict(pe_tp, "QU D", 4, 1, &out, &outlen), PE_CRYPTO_EFORMAT);
    ck_assert_int_eq(pe_b64_decode_strict(pe_tp, "-_-_", 4, 1, &out, &outlen), APR_SUCCESS);
    ck_assert_int_eq(pe_b64_decode_strict(pe_tp, "-_-_", 4, 0, &out, &outlen), PE_CRYPTO_EFORMAT);
    ck_assert_int_eq(pe_b64_decode_strict(pe_tp, "+/+/", 4, 0, &out, &outlen), APR_SUCCESS);
    ck_assert_int_eq(pe_b64_decode_strict(pe_tp, "+/+/", 4, 1, &out, &outlen), PE_CRYPTO_EFORMAT);
}
END_TEST

START_TEST(seal_round_trip)
{
    static const apr_size_t lens[] = {0, 1, 11, 12, 15, 16, 17, 31, 32, 33, 1000, 70000};
    unsigned char *pt = apr_palloc(pe_tp, 70000);
    const unsigned char *back;
    const char *s1, *s2;
    apr_size_t i, blen;

    ck_assert_int_eq(pe_random_bytes(pt, 70000), APR_SUCCESS);
    pt[3] = 0; /* binary with NUL */
    for (i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
        unsigned char *blob;
        ck_assert_int_eq(pe_seal(pe_tp, key_a, "k1", pt, lens[i], "users.email:42", &s1), APR_SUCCESS);
        ck_assert(strncmp(s1, "v1.k1.", 6) == 0);
        /* payload = nonce 12 + ciphertext + tag 16 */
        ck_assert_int_eq(pe_b64_decode_strict(pe_tp, s1 + 6, strlen(s1 + 6), 1, &blob, &blen), APR_SUCCESS);
        ck_assert_uint_eq(blen, 12 + lens[i] + 16);
        ck_assert_int_eq(pe_open(pe_tp, key_a, "k1", s1, "users.email:42", &back, &blen), APR_SUCCESS);
        ck_assert_uint_eq(blen, lens[i]);
        ck_assert(lens[i] == 0 || memcmp(back, pt, lens[i]) == 0);
        ck_assert_uint_eq(back[blen], 0);
    }
    /* a fresh nonce every time */
    ck_assert_int_eq(pe_seal(pe_tp, key_a, "k1", "same", 4, NULL, &s1), APR_SUCCESS);
    ck_assert_int_eq(pe_seal(pe_tp, key_a, "k1", "same", 4, NULL, &s2), APR_SUCCESS);
    ck_assert_str_ne(s1, s2);
    ck_assert(strncmp(s1 + 6, s2 + 6, 16) != 0);
    /* NULL aad is the empty aad */
    ck_assert_int_eq(pe_open(pe_tp, key_a, "k1", s1, "", &back, NULL), APR_SUCCESS);
    ck_assert_str_eq((const char *)back, "same");
    ck_assert_str_eq(pe_sealed_key_id(pe_tp, s1), "k1");
    ck_assert_int_eq(pe_seal(pe_tp, key_a, "rot-2024_01", "x", 1, NULL, &s1), APR_SUCCESS);
    ck_assert_str_eq(pe_sealed_key_id(pe_tp, s1), "rot-2024_01");
    ck_assert_ptr_null(pe_sealed_key_id(pe_tp, "v1.k1"));
    ck_assert_ptr_null(pe_sealed_key_id(pe_tp, "v2.k1.AAAA"));

    /* bad arguments */
    ck_assert_int_eq(pe_seal(pe_tp, key_a, "k.1", "x", 1, NULL, &s1), PE_CRYPTO_EPARAM);
    ck_assert_ptr_null(s1);
    ck_assert_int_eq(pe_seal(pe_tp, key_a, "", "x", 1, NULL, &s1), PE_CRYPTO_EPARAM);
    ck_assert_int_eq(pe_seal(pe_tp, key_a, NULL, "x", 1, NULL, &s1), PE_CRYPTO_EPARAM);
    ck_assert_int_eq(pe_seal(pe_tp, key_a, "k1234567890123456789012345678901x", "x", 1, NULL, &s1),
                     PE_CRYPTO_EPARAM); /* 33 characters */
    ck_assert_int_eq(pe_seal(pe_tp, key_a, "k123456789012345678901234567890x", "x", 1, NULL, &s1), APR_SUCCESS);
    ck_assert_int_eq(pe_seal(pe_tp, key_a, "k1", NULL, 5, NULL, &s1), PE_CRYPTO_EPARAM);
    ck_assert_int_eq(pe_seal(pe_tp, key_a, "k1", "x", (apr_size_t)PE_SEAL_MAX_PLAINTEXT + 1, NULL, &s1),
                     PE_CRYPTO_EPARAM);
}
END_TEST

/* Open s with key_a/"k1"/aad "ctx" and return the status; pt must be NULL on failure. */
static apr_status_t try_open(const char *s)
{
    const unsigned char *pt = (const unsigned char *)"sentinel";
    apr_size_t n = 99;
    apr_status_t rv = pe_open(pe_tp, key_a, "k1", s, "ctx", &pt, &n);

    if (rv != APR_SUCCESS) {
        ck_assert_ptr_null(pt);
        ck_assert_uint_eq(n, 0);
    }
    return rv;
}

START_TEST(seal_tamper_detection)
{
    static const char alpha[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    const char *s, *reenc;
    unsigned char *blob;
    apr_size_t blen, i, payload_len;
    char *t;
    int bit;
    const unsigned char *pt;

    ck_assert_int_eq(pe_seal(pe_tp, key_a, "k1", "top secret value", 16, "ctx", &s), APR_SUCCESS);
    ck_assert_int_eq(try_open(s), APR_SUCCESS);
    payload_len = strlen(s + 6);

    /* every character of the payload replaced by another alphabet character */
    for (i = 0; i < payload_len; i++) {
        t = apr_pstrdup(pe_tp, s);
        t[6 + i] = alpha[(strchr(alpha, t[6 + i]) - alpha + 1) % 64];
        ck_assert_int_eq(try_open(t), PE_CRYPTO_EAUTH);
    }
    /* every bit of nonce, ciphertext and tag flipped (re-encoded canonically) */
    ck_assert_int_eq(pe_b64_decode_strict(pe_tp, s + 6, payload_len, 1, &blob, &blen), APR_SUCCESS);
    ck_assert_uint_eq(blen, 12 + 16 + 16);
    for (i = 0; i < blen; i++) {
        for (bit = 0; bit < 8; bit++) {
            blob[i] ^= (unsigned char)(1 << bit);
            reenc = apr_pstrcat(pe_tp, "v1.k1.", pe_base64url(pe_tp, blob, blen), NULL);
            ck_assert_int_eq(try_open(reenc), PE_CRYPTO_EAUTH);
            blob[i] ^= (unsigned char)(1 << bit);
        }
    }
    reenc = apr_pstrcat(pe_tp, "v1.k1.", pe_base64url(pe_tp, blob, blen), NULL);
    ck_assert_int_eq(try_open(reenc), APR_SUCCESS);

    /* truncation: drop characters from the end, drop the tag, keep only part of the nonce */
    for (i = 1; i <= payload_len; i++)
        ck_assert_int_eq(try_open(apr_pstrndup(pe_tp, s, strlen(s) - i)), PE_CRYPTO_EAUTH);
    ck_assert_int_eq(try_open(apr_pstrcat(pe_tp, "v1.k1.", pe_base64url(pe_tp, blob, blen - 16), NULL)),
                     PE_CRYPTO_EAUTH);
    ck_assert_int_eq(try_open(apr_pstrcat(pe_tp, "v1.k1.", pe_base64url(pe_tp, blob, 27), NULL)), PE_CRYPTO_EAUTH);
    /* appended data */
    ck_assert_int_eq(try_open(apr_pstrcat(pe_tp, s, "AAAA", NULL)), PE_CRYPTO_EAUTH);
    ck_assert_int_eq(try_open(apr_pstrcat(pe_tp, s, "=", NULL)), PE_CRYPTO_EAUTH);

    /* wrong key, wrong aad, other key id */
    ck_assert_int_eq(pe_open(pe_tp, key_b, "k1", s, "ctx", &pt, NULL), PE_CRYPTO_EAUTH);
    ck_assert_int_eq(pe_open(pe_tp, key_a, "k1", s, "ctx2", &pt, NULL), PE_CRYPTO_EAUTH);
    ck_assert_int_eq(pe_open(pe_tp, key_a, "k1", s, "", &pt, NULL), PE_CRYPTO_EAUTH);
    ck_assert_int_eq(pe_open(pe_tp, key_a, "k1", s, NULL, &pt, NULL), PE_CRYPTO_EAUTH);
    ck_assert_int_eq(pe_open(pe_tp, key_a, "k2", s, "ctx", &pt, NULL), PE_CRYPTO_EKEYID);
    ck_assert_ptr_null(pt);
    /* relabelled key id: the id is authenticated, so the same key under another name fails */
    t = apr_pstrcat(pe_tp, "v1.k2.", s + 6, NULL);
    ck_assert_int_eq(pe_open(pe_tp, key_a, "k2", t, "ctx", &pt, NULL), PE_CRYPTO_EAUTH);
    /* aad boundary: "v1.k1." + "ctx" must not equal another split */
    ck_assert_int_eq(pe_open(pe_tp, key_a, "k1", s, "ct", &pt, NULL), PE_CRYPTO_EAUTH);

    /* garbage */
    ck_assert_int_eq(try_open(NULL), PE_CRYPTO_EFORMAT);
    ck_assert_int_eq(try_open(""), PE_CRYPTO_EFORMAT);
    ck_assert_int_eq(try_open("hello"), PE_CRYPTO_EFORMAT);
    ck_assert_int_eq(try_open("v1"), PE_CRYPTO_EFORMAT);
    ck_assert_int_eq(try_open("v1."), PE_CRYPTO_EFORMAT);
    ck_assert_int_eq(try_open("v1.k1"), PE_CRYPTO_EFORMAT);
    ck_assert_int_eq(try_open("v1..AAAA"), PE_CRYPTO_EFORMAT);
    ck_assert_int_eq(try_open("v1.k 1.AAAA"), PE_CRYPTO_EFORMAT);
    ck_assert_int_eq(try_open(apr_pstrcat(pe_tp, "v2.", s + 3, NULL)), PE_CRYPTO_EFORMAT);
    ck_assert_int_eq(try_open(apr_pstrcat(pe_tp, "V1.", s + 3, NULL)), PE_CRYPTO_EFORMAT);
    ck_assert_int_eq(try_open("v1.k1."), PE_CRYPTO_EAUTH);
    ck_assert_int_eq(try_open("v1.k1.!!!!"), PE_CRYPTO_EAUTH);
    ck_assert_int_eq(try_open("v1.k1.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"), PE_CRYPTO_EAUTH); /* 28 zero bytes */
    ck_assert_int_eq(try_open("v1.k1.AAAA.AAAA"), PE_CRYPTO_EAUTH);
    ck_assert_int_eq(pe_open(pe_tp, key_a, "bad.id", s, "ctx", &pt, NULL), PE_CRYPTO_EPARAM);
}
END_TEST

START_TEST(keyring_rotation)
{
    pe_keyring_t *kr = pe_keyring_create(pe_tp), *empty = pe_keyring_create(pe_tp);
    const char *old, *cur, *s;
    const unsigned char *pt;
    apr_size_t n;
    int stale = -1;

    ck_assert_int_eq(pe_keyring_seal(pe_tp, empty, "x", 1, NULL, &s), PE_CRYPTO_EKEYID);
    ck_assert_ptr_null(s);
    ck_assert_ptr_null(pe_keyring_add(kr, "k1", key_a, 1));
    ck_assert_int_eq(pe_keyring_seal(pe_tp, kr, "old secret", 10, "row:7", &old), APR_SUCCESS);
    ck_assert(strncmp(old, "v1.k1.", 6) == 0);
    ck_assert_ptr_null(pe_keyring_add(kr, "k2", key_b, 1));
    ck_assert_ptr_nonnull(pe_keyring_add(kr, "k2", key_a, 0)); /* duplicate id */
    ck_assert_ptr_nonnull(pe_keyring_add(kr, "k.3", key_a, 0));
    ck_assert_ptr_nonnull(pe_keyring_add(kr, "", key_a, 0));
    ck_assert_int_eq(pe_keyring_seal(pe_tp, kr, "new secret", 10, "row:7", &cur), APR_SUCCESS);
    ck_assert(strncmp(cur, "v1.k2.", 6) == 0);

    ck_assert_int_eq(pe_keyring_open(pe_tp, kr, old, "row:7", &pt, &n, &stale), APR_SUCCESS);
    ck_assert_int_eq(stale, 1);
    ck_assert_uint_eq(n, 10);
    ck_assert(memcmp(pt, "old secret", 10) == 0);
    ck_assert_int_eq(pe_keyring_open(pe_tp, kr, cur, "row:7", &pt, &n, &stale), APR_SUCCESS);
    ck_assert_int_eq(stale, 0);
    ck_assert(memcmp(pt, "new secret", 10) == 0);
    ck_assert_int_eq(pe_keyring_open(pe_tp, kr, cur, "row:8", &pt, &n, &stale), PE_CRYPTO_EAUTH);
    ck_assert_int_eq(stale, 0);
    /* a ring without k1 (retired) refuses the old value by key id */
    ck_assert_ptr_null(pe_keyring_add(empty, "k2", key_b, 1));
    ck_assert_int_eq(pe_keyring_open(pe_tp, empty, old, "row:7", &pt, &n, NULL), PE_CRYPTO_EKEYID);
    ck_assert_int_eq(pe_keyring_open(pe_tp, empty, cur, "row:7", &pt, &n, NULL), APR_SUCCESS);
    ck_assert_int_eq(pe_keyring_open(pe_tp, empty, "junk", "row:7", &pt, &n, NULL), PE_CRYPTO_EFORMAT);
    /* the same value opened with the plain API */
    ck_assert_int_eq(pe_open(pe_tp, key_a, "k1", old, "row:7", &pt, NULL), APR_SUCCESS);
}
END_TEST

START_TEST(wipe_on_pool_cleanup)
{
    apr_pool_t *child;
    char *secret = apr_pstrdup(pe_tp, "very secret");
    apr_size_t i;

    apr_pool_create(&child, pe_tp);
    pe_wipe_on_cleanup(child, secret, 11);
    ck_assert_str_eq(secret, "very secret");
    apr_pool_destroy(child);
    for (i = 0; i < 11; i++)
        ck_assert_int_eq(secret[i], 0);
    ck_assert_str_eq(pe_crypto_strerror(pe_tp, PE_CRYPTO_EAUTH), "authentication failed");
    ck_assert_ptr_nonnull(pe_crypto_strerror(pe_tp, APR_ENOMEM));
}
END_TEST

Suite *pe_suite_crypto(void)
{
    Suite *s = suite_create("crypto");
    TCase *tc = pe_tcase("crypto");

    tcase_add_test(tc, random_bytes_basic);
    tcase_add_test(tc, random_failure_is_fatal);
    tcase_add_test(tc, id_bytes_unique_and_fork_safe);
    tcase_add_test(tc, random_string_uniform);
    tcase_add_test(tc, apikey_format_and_uniqueness);
    tcase_add_test(tc, token_format_and_uniqueness);
    tcase_add_test(tc, hmac_rfc4231_vectors);
    tcase_add_test(tc, ct_equal_cases);
    tcase_add_test(tc, b64_strict_decoding);
    tcase_add_test(tc, seal_round_trip);
    tcase_add_test(tc, seal_tamper_detection);
    tcase_add_test(tc, keyring_rotation);
    tcase_add_test(tc, wipe_on_pool_cleanup);
    suite_add_tcase(s, tc);
    return s;
}
