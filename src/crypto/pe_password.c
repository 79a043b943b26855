/* pe_password.c: Argon2id password hashes in PHC form (hash, verify, rehash decision). */
#include "pe_crypto.h"
#include "pe_logno.h"

#include <argon2.h>
#include <apr_strings.h>
#include <string.h>

/* The parts of "$argon2id$v=19$m=..,t=..,p=..$salt$tag". */
typedef struct {
    unsigned m, t, p;
    unsigned char *salt, *tag;
    apr_size_t saltlen, taglen;
} phc_t;

/* Shortest and longest salt and tag accepted from a stored string (bytes). */
#define PHC_SALT_MIN 8
#define PHC_SALT_MAX 64
#define PHC_TAG_MIN 16
#define PHC_TAG_MAX 64

/* 1 when the parameters are within what we compute. */
static int password_params_ok(unsigned t, unsigned m, unsigned p)
{
    return t >= 1 && t <= PE_ARGON2_T_MAX && p >= 1 && p <= PE_ARGON2_P_MAX && m >= 8 * p && m <= PE_ARGON2_M_MAX;
}

/* Parse "<name>=<decimal>" at *s (no sign, no leading zero), advance past it. */
static int phc_num(const char **s, const char *name, unsigned *out)
{
    apr_size_t nl = strlen(name);
    const char *c = *s;
    unsigned long v = 0;

    if (strncmp(c, name, nl) != 0 || c[nl] != '=')
        return -1;
    c += nl + 1;
    if (*c < '0' || *c > '9' || (*c == '0' && c[1] >= '0' && c[1] <= '9'))
        return -1;
    for (; *c >= '0' && *c <= '9'; c++) {
        v = v * 10 + (unsigned long)(*c - '0');
        if (v > 0xFFFFFFFFul)
            return -1;
    }
    *out = (unsigned)v;
    *s = c;
    return 0;
}

/* Strict parse of an Argon2id v=19 PHC string (standard base64 without padding). */
static apr_status_t phc_parse(apr_pool_t *p, const char *enc, phc_t *h)
{
    const char *s = enc, *salt, *tag;
    unsigned v;

    memset(h, 0, sizeof(*h));
    if (!enc || strncmp(s, "$argon2id$", 10) != 0)
        return PE_CRYPTO_EFORMAT;
    s += 10;
    if (phc_num(&s, "v", &v) != 0 || v != ARGON2_VERSION_13 || *s++ != '$')
        return PE_CRYPTO_EFORMAT;
    if (phc_num(&s, "m", &h->m) != 0 || *s++ != ',' || phc_num(&s, "t", &h->t) != 0 || *s++ != ',' ||
        phc_num(&s, "p", &h->p) != 0 || *s++ != '$')
        return PE_CRYPTO_EFORMAT;
    salt = s;
    if (!(tag = strchr(salt, '$')))
        return PE_CRYPTO_EFORMAT;
    tag++;
    if (strchr(tag, '$'))
        return PE_CRYPTO_EFORMAT;
    if (pe_b64_decode_strict(p, salt, (apr_size_t)(tag - 1 - salt), 0, &h->salt, &h->saltlen) != APR_SUCCESS ||
        pe_b64_decode_strict(p, tag, strlen(tag), 0, &h->tag, &h->taglen) != APR_SUCCESS)
        return PE_CRYPTO_EFORMAT;
    if (h->saltlen < PHC_SALT_MIN || h->saltlen > PHC_SALT_MAX || h->taglen < PHC_TAG_MIN || h->taglen > PHC_TAG_MAX)
        return PE_CRYPTO_EFORMAT;
    return APR_SUCCESS;
}

/* Hash with a fresh salt into the standard PHC encoding. */
apr_status_t pe_password_hash(apr_pool_t *p, const char *password, apr_size_t len, unsigned t_cost,
                              unsigned m_cost_kib, unsigned parallelism, const char **encoded)
{
    unsigned char salt[PE_ARGON2_SALT_LEN];
    apr_size_t enclen;
    char *enc;
    apr_status_t rv;
    int rc;

    *encoded = NULL;
    if ((len && !password) || len > PE_PASSWORD_MAX_BYTES || !password_params_ok(t_cost, m_cost_kib, parallelism))
        return PE_CRYPTO_EPARAM;
    if ((rv = pe_random_bytes(salt, sizeof(salt))) != APR_SUCCESS)
        return rv;
    enclen = argon2_encodedlen(t_cost, m_cost_kib, parallelism, PE_ARGON2_SALT_LEN, PE_ARGON2_HASH_LEN, Argon2_id);
    enc = apr_palloc(p, enclen + 1);
    rc = argon2id_hash_encoded(t_cost, m_cost_kib, parallelism, len ? password : "", len, salt, sizeof(salt),
                               PE_ARGON2_HASH_LEN, enc, enclen + 1);
    pe_wipe(salt, sizeof(salt));
    if (rc != ARGON2_OK) {
        pe_clog(PE_LOG_ERR, 0, PE_LOGNO(20004) "Argon2id hashing (t=%u, m=%u KiB, p=%u) failed: %s", t_cost,
                m_cost_kib, parallelism, argon2_error_message(rc));
        return PE_CRYPTO_EFAIL;
    }
    *encoded = enc;
    return APR_SUCCESS;
}

/* Recompute the tag with the stored parameters and compare in constant time. */
apr_status_t pe_password_verify(const char *encoded, const char *password, apr_size_t len)
{
    apr_pool_t *p;
    unsigned char tag[PHC_TAG_MAX];
    phc_t h;
    apr_status_t rv;
    int rc;

    if (len > PE_PASSWORD_MAX_BYTES)
        return PE_CRYPTO_EMISMATCH;
    if (len && !password)
        return PE_CRYPTO_EPARAM;
    if (apr_pool_create(&p, NULL) != APR_SUCCESS)
        return PE_CRYPTO_EFAIL;
    /* NB: single exit below: the scratch pool is destroyed on every path */
    if ((rv = phc_parse(p, encoded, &h)) != APR_SUCCESS)
        goto end;
    if (!password_params_ok(h.t, h.m, h.p)) {
        rv = PE_CRYPTO_EFORMAT;
        goto end;
    }
    rc = argon2id_hash_raw(h.t, h.m, h.p, len ? password : "", len, h.salt, h.saltlen, tag, h.taglen);
    if (rc != ARGON2_OK) {
        pe_clog(PE_LOG_ERR, 0, PE_LOGNO(20005) "Argon2id verification (t=%u, m=%u KiB, p=%u) failed: %s", h.t, h.m,
                h.p, argon2_error_message(rc));
        rv = PE_CRYPTO_EFAIL;
        goto end;
    }
    rv = pe_ct_equal(tag, h.taglen, h.tag, h.taglen) ? APR_SUCCESS : PE_CRYPTO_EMISMATCH;
end:
    pe_wipe(tag, sizeof(tag));
    apr_pool_destroy(p);
    return rv;
}

/* Stored parameters below the policy, short salt/tag or an unreadable string: rehash. */
int pe_password_needs_rehash(const char *encoded, unsigned t_cost, unsigned m_cost_kib, unsigned parallelism)
{
    apr_pool_t *p;
    phc_t h;
    int need;

    if (apr_pool_create(&p, NULL) != APR_SUCCESS)
        return 1;
    if (phc_parse(p, encoded, &h) != APR_SUCCESS)
        need = 1;
    else
        need = h.t < t_cost || h.m < m_cost_kib || h.p < parallelism || h.saltlen < PE_ARGON2_SALT_LEN ||
               h.taglen < PE_ARGON2_HASH_LEN;
    apr_pool_destroy(p);
    return need;
}
