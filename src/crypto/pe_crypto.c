/* pe_crypto.c: CSPRNG, constant-time compare, wiping, HMAC lookup digests, API keys, tokens, base64 decoding. */
#include "pe_crypto.h"
#include "pe_logno.h"
#include "pe_util.h"

#include <apr_strings.h>
#include <limits.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <string.h>

static const char pe_base62[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/* Text for our status codes, apr_strerror for the rest. */
const char *pe_crypto_strerror(apr_pool_t *p, apr_status_t rv)
{
    char buf[256];

    switch (rv) {
    case PE_CRYPTO_ERNG:
        return "random number generator failed";
    case PE_CRYPTO_EFORMAT:
        return "malformed value";
    case PE_CRYPTO_EKEYID:
        return "value was sealed with an unknown key";
    case PE_CRYPTO_EAUTH:
        return "authentication failed";
    case PE_CRYPTO_EMISMATCH:
        return "password does not match";
    case PE_CRYPTO_EPARAM:
        return "argument out of range";
    case PE_CRYPTO_EFAIL:
        return "cryptographic library failure";
    default:
        return apr_pstrdup(p, apr_strerror(rv, buf, sizeof(buf)));
    }
}

/* RAND_bytes in int-sized chunks; any failure is fatal for the caller. */
apr_status_t pe_random_bytes(void *buf, apr_size_t n)
{
    unsigned char *b = buf;
    apr_size_t done = 0;

    while (done < n) {
        apr_size_t chunk = n - done > (apr_size_t)INT_MAX ? (apr_size_t)INT_MAX : n - done;
        if (RAND_bytes(b + done, (int)chunk) != 1) {
            unsigned long e = ERR_get_error();
            char why[256];
            ERR_error_string_n(e, why, sizeof(why));
            ERR_clear_error();
            OPENSSL_cleanse(buf, n);
            pe_clog(PE_LOG_ERR, 0, PE_LOGNO(20000) "CSPRNG failure (RAND_bytes): %s", e ? why : "no error queued");
            return PE_CRYPTO_ERNG;
        }
        done += chunk;
    }
    return APR_SUCCESS;
}

/* pe_id_bytes: xoshiro256** (Blackman and Vigna) per thread; a fork bumps the generation, so
 * the child's copy of the forking thread's state is replaced before it is used. */
static pthread_once_t ids_once = PTHREAD_ONCE_INIT;
static unsigned ids_fork_gen;
static __thread struct {
    apr_uint64_t s[4];
    unsigned gen;
    int seeded;
} ids;

static void ids_forked(void)
{
    __atomic_add_fetch(&ids_fork_gen, 1, __ATOMIC_RELAXED);
}

static void ids_once_init(void)
{
    pthread_atfork(NULL, NULL, ids_forked); /* NB: glibc drops it when the module is unloaded */
}

static apr_uint64_t ids_rotl(apr_uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

static apr_uint64_t ids_next(void)
{
    apr_uint64_t *s = ids.s, r = ids_rotl(s[1] * 5, 7) * 9, t = s[1] << 17;

    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = ids_rotl(s[3], 45);
    return r;
}

apr_status_t pe_id_bytes(void *buf, apr_size_t n)
{
    unsigned char *o = buf;
    unsigned gen;

    pthread_once(&ids_once, ids_once_init);
    gen = __atomic_load_n(&ids_fork_gen, __ATOMIC_RELAXED);
    if (!ids.seeded || ids.gen != gen) {
        if (pe_random_bytes(ids.s, sizeof(ids.s)) != APR_SUCCESS)
            return PE_CRYPTO_EFAIL;
        if (!(ids.s[0] | ids.s[1] | ids.s[2] | ids.s[3]))
            ids.s[0] = 1; /* the one state the generator never leaves */
        ids.gen = gen;
        ids.seeded = 1;
    }
    while (n) {
        apr_uint64_t v = ids_next();
        apr_size_t k = n < sizeof(v) ? n : sizeof(v);

        memcpy(o, &v, k);
        o += k;
        n -= k;
    }
    return APR_SUCCESS;
}

/* Uniform characters from an alphabet by rejection sampling over random bytes. */
apr_status_t pe_random_string(apr_pool_t *p, const char *alphabet, apr_size_t n, const char **out)
{
    unsigned char rnd[64];
    apr_size_t k, alen, limit, have = 0, used = 0, i;
    char *s;
    apr_status_t rv;

    *out = NULL;
    alen = alphabet ? strlen(alphabet) : 0;
    if (alen < 2 || alen > 256)
        return PE_CRYPTO_EPARAM;
    for (i = 0; i < alen; i++)
        if (memchr(alphabet + i + 1, alphabet[i], alen - i - 1))
            return PE_CRYPTO_EPARAM;
    if (n >= APR_SIZE_MAX)
        return PE_CRYPTO_EPARAM;
    /* NB: a byte b is used only when b < limit, the largest multiple of alen <= 256, so b % alen is uniform. */
    limit = 256 - 256 % alen;
    s = apr_palloc(p, n + 1);
    for (k = 0; k < n;) {
        if (used == have) {
            if ((rv = pe_random_bytes(rnd, sizeof(rnd))) != APR_SUCCESS) {
                pe_wipe(s, n + 1);
                return rv;
            }
            have = sizeof(rnd);
            used = 0;
        }
        if (rnd[used] < limit)
            s[k++] = alphabet[rnd[used] % alen];
        used++;
    }
    s[n] = '\0';
    pe_wipe(rnd, sizeof(rnd));
    *out = s;
    return APR_SUCCESS;
}

/* CRYPTO_memcmp after a length check; the content compare has no early exit. */
int pe_ct_equal(const void *a, apr_size_t alen, const void *b, apr_size_t blen)
{
    if (alen != blen || (alen && (!a || !b)))
        return 0;
    if (alen == 0)
        return 1;
    return CRYPTO_memcmp(a, b, alen) == 0;
}

/* OPENSSL_cleanse wrapper. */
void pe_wipe(void *buf, apr_size_t n)
{
    if (buf && n)
        OPENSSL_cleanse(buf, n);
}

typedef struct {
    void *buf;
    apr_size_t n;
} pe_wipe_t;

/* Pool cleanup: wipe the registered buffer. */
static apr_status_t crypto_wipe_cleanup(void *data)
{
    pe_wipe_t *w = data;
    pe_wipe(w->buf, w->n);
    return APR_SUCCESS;
}

/* Register a wipe of buf at pool cleanup. */
void pe_wipe_on_cleanup(apr_pool_t *p, void *buf, apr_size_t n)
{
    pe_wipe_t *w = apr_palloc(p, sizeof(*w));

    w->buf = buf;
    w->n = n;
    apr_pool_cleanup_register(p, w, crypto_wipe_cleanup, apr_pool_cleanup_null);
}

const EVP_MD *pe_sha256(void)
{
    static EVP_MD *fetched;
    EVP_MD *md = __atomic_load_n(&fetched, __ATOMIC_ACQUIRE), *none = NULL;

    if (md)
        return md;
    /* NB: kept for the life of the process (one object; a thread that loses the race frees its own). */
    if (!(md = EVP_MD_fetch(NULL, "SHA2-256", NULL))) {
        ERR_clear_error();
        return EVP_sha256();
    }
    if (!__atomic_compare_exchange_n(&fetched, &none, md, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
        EVP_MD_free(md);
        return none;
    }
    return md;
}

/* One-shot HMAC-SHA-256. */
apr_status_t pe_hmac_sha256(const void *key, apr_size_t keylen, const void *data, apr_size_t len,
                            unsigned char out[32])
{
    /* RFC 2104 over SHA-256 with one digest context: H(K^opad || H(K^ipad || m)). NB: not
     * EVP_Q_mac, which fetches the MAC implementation on every call (a fifth of a cached
     * completion's CPU time in the module, measured with callgrind). */
    unsigned char k[64], pad[64], inner[32];
    unsigned int n = 0;
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    int i, ok = md != NULL;

    memset(k, 0, sizeof(k));
    if (ok && keylen > sizeof(k))
        ok = EVP_Digest(key, keylen, k, &n, pe_sha256(), NULL) && n == 32;
    else if (keylen)
        memcpy(k, key, keylen);
    for (i = 0; i < 64; i++)
        pad[i] = k[i] ^ 0x36;
    ok = ok && EVP_DigestInit_ex(md, pe_sha256(), NULL) && EVP_DigestUpdate(md, pad, 64) &&
         (!len || EVP_DigestUpdate(md, data, len)) && EVP_DigestFinal_ex(md, inner, &n) && n == 32;
    for (i = 0; i < 64; i++)
        pad[i] = k[i] ^ 0x5c;
    ok = ok && EVP_DigestInit_ex(md, pe_sha256(), NULL) && EVP_DigestUpdate(md, pad, 64) &&
         EVP_DigestUpdate(md, inner, 32) && EVP_DigestFinal_ex(md, out, &n) && n == 32;
    EVP_MD_CTX_free(md);
    pe_wipe(k, sizeof(k));
    pe_wipe(pad, sizeof(pad));
    pe_wipe(inner, sizeof(inner));
    if (!ok) {
        ERR_clear_error();
        pe_clog(PE_LOG_ERR, 0, PE_LOGNO(20001) "HMAC-SHA-256 failed in OpenSSL");
        return PE_CRYPTO_EFAIL;
    }
    return APR_SUCCESS;
}

/*
 * The HMAC's two key blocks (K^ipad, K^opad) for the first lookup secret of the process, hashed
 * once: a lookup then copies the two digest states and hashes only the key or token and the
 * inner digest (half the SHA-256 blocks). Kept for the life of the process, like the secret it
 * is derived from (which the configuration holds as long); another secret takes the full path.
 */
typedef struct {
    unsigned char secret[PE_SECRET_LEN];
    EVP_MD_CTX *in, *out;
} lookup_keyed_t;

static lookup_keyed_t *lookup_keyed;

static void keyed_free(lookup_keyed_t *k)
{
    EVP_MD_CTX_free(k->in);
    EVP_MD_CTX_free(k->out);
    OPENSSL_clear_free(k, sizeof(*k));
}

static const lookup_keyed_t *keyed_for(const unsigned char secret[PE_SECRET_LEN])
{
    lookup_keyed_t *k = __atomic_load_n(&lookup_keyed, __ATOMIC_ACQUIRE), *none = NULL;
    unsigned char pad[64];
    int i, ok;

    if (!k) {
        if (!(k = OPENSSL_zalloc(sizeof(*k))))
            return NULL;
        memcpy(k->secret, secret, PE_SECRET_LEN);
        k->in = EVP_MD_CTX_new();
        k->out = EVP_MD_CTX_new();
        for (i = 0; i < 64; i++)
            pad[i] = (unsigned char)((i < PE_SECRET_LEN ? secret[i] : 0) ^ 0x36);
        ok = k->in && k->out && EVP_DigestInit_ex(k->in, pe_sha256(), NULL) && EVP_DigestUpdate(k->in, pad, 64);
        for (i = 0; i < 64; i++)
            pad[i] = (unsigned char)((i < PE_SECRET_LEN ? secret[i] : 0) ^ 0x5c);
        ok = ok && EVP_DigestInit_ex(k->out, pe_sha256(), NULL) && EVP_DigestUpdate(k->out, pad, 64);
        pe_wipe(pad, sizeof(pad));
        if (!ok) {
            ERR_clear_error();
            keyed_free(k);
            return NULL;
        }
        if (!__atomic_compare_exchange_n(&lookup_keyed, &none, k, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
            keyed_free(k);
            k = none;
        }
    }
    return CRYPTO_memcmp(k->secret, secret, PE_SECRET_LEN) == 0 ? k : NULL;
}

/* HMAC-SHA-256 from the hashed key blocks (the same value as pe_hmac_sha256). */
static apr_status_t keyed_mac(const lookup_keyed_t *k, const void *data, apr_size_t len, unsigned char out[32])
{
    unsigned char inner[32];
    unsigned int n = 0;
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    int ok = md && EVP_MD_CTX_copy_ex(md, k->in) && (!len || EVP_DigestUpdate(md, data, len)) &&
             EVP_DigestFinal_ex(md, inner, &n) && n == 32 && EVP_MD_CTX_copy_ex(md, k->out) &&
             EVP_DigestUpdate(md, inner, 32) && EVP_DigestFinal_ex(md, out, &n) && n == 32;

    EVP_MD_CTX_free(md);
    pe_wipe(inner, sizeof(inner));
    if (!ok) {
        ERR_clear_error();
        return PE_CRYPTO_EFAIL;
    }
    return APR_SUCCESS;
}

/* Hex HMAC of a key or token under the server secret. */
apr_status_t pe_lookup_digest(apr_pool_t *p, const unsigned char secret[PE_SECRET_LEN], const char *s,
                              apr_size_t len, const char **hex)
{
    const lookup_keyed_t *k = keyed_for(secret);
    unsigned char mac[32];
    apr_status_t rv;

    *hex = NULL;
    if ((!k || keyed_mac(k, s, len, mac) != APR_SUCCESS) &&
        (rv = pe_hmac_sha256(secret, PE_SECRET_LEN, s, len, mac)) != APR_SUCCESS)
        return rv;
    *hex = pe_hex_encode(p, mac, sizeof(mac));
    pe_wipe(mac, sizeof(mac));
    return APR_SUCCESS;
}

/* "pe-" + 32 base62 characters. */
apr_status_t pe_apikey_generate(apr_pool_t *p, const char **key)
{
    const char *body;
    apr_status_t rv;

    *key = NULL;
    if ((rv = pe_random_string(p, pe_base62, PE_APIKEY_BODY_LEN, &body)) != APR_SUCCESS)
        return rv;
    *key = apr_pstrcat(p, PE_APIKEY_PREFIX, body, NULL);
    return APR_SUCCESS;
}

/* Exact API key shape. */
int pe_apikey_format_ok(const char *s)
{
    apr_size_t i;

    if (!s || strncmp(s, PE_APIKEY_PREFIX, 3) != 0)
        return 0;
    for (i = 3; i < PE_APIKEY_LEN; i++)
        if (!s[i] || !memchr(pe_base62, s[i], sizeof(pe_base62) - 1))
            return 0;
    return s[PE_APIKEY_LEN] == '\0';
}

/* 64 random bytes, base64url without padding. */
apr_status_t pe_token_generate(apr_pool_t *p, const char **token)
{
    unsigned char raw[PE_TOKEN_BYTES];
    apr_status_t rv;

    *token = NULL;
    if ((rv = pe_random_bytes(raw, sizeof(raw))) != APR_SUCCESS)
        return rv;
    *token = pe_base64url(p, raw, sizeof(raw));
    pe_wipe(raw, sizeof(raw));
    return APR_SUCCESS;
}

/* Value of a base64 character in the chosen alphabet, -1 if outside it. */
static int crypto_b64_val(unsigned char c, int url)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == (url ? '-' : '+'))
        return 62;
    if (c == (url ? '_' : '/'))
        return 63;
    return -1;
}

/* Exact token shape: 86 base64url characters whose last one holds only 2 data bits. */
int pe_token_format_ok(const char *s)
{
    apr_size_t i;
    int v = 0;

    if (!s)
        return 0;
    for (i = 0; i < PE_TOKEN_LEN; i++)
        if (!s[i] || (v = crypto_b64_val((unsigned char)s[i], 1)) < 0)
            return 0;
    /* 64 bytes = 512 bits = 85 full characters + 2 bits: the low 4 bits of the last must be zero */
    return s[PE_TOKEN_LEN] == '\0' && (v & 15) == 0;
}

/* Strict unpadded base64 decoding (canonical form only). */
apr_status_t pe_b64_decode_strict(apr_pool_t *p, const char *s, apr_size_t len, int url, unsigned char **out,
                                  apr_size_t *outlen)
{
    apr_size_t i, o = 0, rem = len % 4;
    unsigned acc = 0;
    int bits = 0;
    unsigned char *d;

    *out = NULL;
    *outlen = 0;
    if (rem == 1 || len > APR_SIZE_MAX / 3)
        return PE_CRYPTO_EFORMAT;
    d = apr_palloc(p, len / 4 * 3 + 3);
    for (i = 0; i < len; i++) {
        int v = crypto_b64_val((unsigned char)s[i], url);
        if (v < 0)
            return PE_CRYPTO_EFORMAT;
        acc = (acc << 6) | (unsigned)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            d[o++] = (unsigned char)(acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }
    /* the leftover (2 or 4) bits must be zero, so each byte string has exactly one encoding */
    if (acc != 0)
        return PE_CRYPTO_EFORMAT;
    d[o] = '\0';
    *out = d;
    *outlen = o;
    return APR_SUCCESS;
}
