/* pe_seal.c: AES-256-GCM sealing of fields at rest ("v1.<key_id>.<base64url(nonce|ct|tag)>") and key rings. */
#include "pe_crypto.h"
#include "pe_logno.h"
#include "pe_util.h"

#include <apr_strings.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <string.h>

#define SEAL_VERSION "v1"
#define SEAL_NONCE 12
#define SEAL_TAG 16

struct pe_keyring_t {
    apr_pool_t *pool;
    apr_array_header_t *keys; /* seal_key_t *: NB: pointers, so growing the array never leaves key copies behind */
    int current;              /* index into keys, -1 when none */
};

typedef struct {
    const char *id;
    unsigned char key[PE_SECRET_LEN];
} seal_key_t;

/* Key ids: 1..PE_SEAL_KEY_ID_MAX of [A-Za-z0-9_-] (never '.', the separator). */
int pe_seal_key_id_ok(const char *id)
{
    apr_size_t n;

    if (!id)
        return 0;
    for (n = 0; id[n]; n++) {
        char c = id[n];
        if (n >= PE_SEAL_KEY_ID_MAX ||
            !((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-'))
            return 0;
    }
    return n > 0;
}

/* The GCM additional data: "v1.<key_id>." + caller aad, so version and key id are authenticated too. */
static const char *seal_aad(apr_pool_t *p, const char *key_id, const char *aad)
{
    return apr_pstrcat(p, SEAL_VERSION ".", key_id, ".", aad ? aad : "", NULL);
}

/* Log an OpenSSL failure once and clear its queue. */
static apr_status_t seal_ossl_fail(const char *what)
{
    unsigned long e = ERR_get_error();
    char why[256];

    ERR_error_string_n(e, why, sizeof(why));
    ERR_clear_error();
    pe_clog(PE_LOG_ERR, 0, PE_LOGNO(20002) "AES-256-GCM %s failed in OpenSSL: %s", what, e ? why : "no error queued");
    return PE_CRYPTO_EFAIL;
}

/* Encrypt pt with a fresh nonce and emit the printable sealed form. */
apr_status_t pe_seal(apr_pool_t *p, const unsigned char key[PE_SECRET_LEN], const char *key_id, const void *pt,
                     apr_size_t len, const char *aad, const char **sealed)
{
    EVP_CIPHER_CTX *ctx = NULL;
    unsigned char *blob;
    const char *ad;
    int outl = 0, finl = 0;
    apr_status_t rv;

    *sealed = NULL;
    if (!key || !pe_seal_key_id_ok(key_id) || len > PE_SEAL_MAX_PLAINTEXT || (len && !pt))
        return PE_CRYPTO_EPARAM;
    blob = apr_palloc(p, SEAL_NONCE + len + SEAL_TAG);
    if ((rv = pe_random_bytes(blob, SEAL_NONCE)) != APR_SUCCESS)
        return rv;
    ad = seal_aad(p, key_id, aad);

    /* NB: single exit below: ctx is freed on every path after this point */
    rv = PE_CRYPTO_EFAIL;
    if (!(ctx = EVP_CIPHER_CTX_new())) {
        seal_ossl_fail("context allocation");
        goto end;
    }
    if (EVP_EncryptInit_ex2(ctx, EVP_aes_256_gcm(), key, blob, NULL) != 1 ||
        EVP_EncryptUpdate(ctx, NULL, &outl, (const unsigned char *)ad, (int)strlen(ad)) != 1 ||
        (len && EVP_EncryptUpdate(ctx, blob + SEAL_NONCE, &outl, pt, (int)len) != 1) ||
        EVP_EncryptFinal_ex(ctx, blob + SEAL_NONCE + (len ? outl : 0), &finl) != 1 ||
        EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, SEAL_TAG, blob + SEAL_NONCE + len) != 1) {
        seal_ossl_fail("encryption");
        goto end;
    }
    if ((len ? (apr_size_t)outl : 0) + (apr_size_t)finl != len) {
        pe_clog(PE_LOG_ERR, 0, PE_LOGNO(20003) "AES-256-GCM produced %d+%d bytes for %" APR_SIZE_T_FMT, outl, finl,
                len);
        goto end;
    }
    *sealed = apr_pstrcat(p, SEAL_VERSION ".", key_id, ".", pe_base64url(p, blob, SEAL_NONCE + len + SEAL_TAG), NULL);
    rv = APR_SUCCESS;
end:
    EVP_CIPHER_CTX_free(ctx);
    return rv;
}

/* Split "v1.<key_id>.<payload>"; APR_SUCCESS with the key id copied into p and the payload pointer. */
static apr_status_t seal_parse(apr_pool_t *p, const char *sealed, const char **key_id, const char **payload)
{
    const char *dot;

    if (!sealed || strncmp(sealed, SEAL_VERSION ".", 3) != 0)
        return PE_CRYPTO_EFORMAT;
    if (!(dot = strchr(sealed + 3, '.')) || dot - (sealed + 3) > PE_SEAL_KEY_ID_MAX)
        return PE_CRYPTO_EFORMAT;
    *key_id = apr_pstrmemdup(p, sealed + 3, (apr_size_t)(dot - (sealed + 3)));
    if (!pe_seal_key_id_ok(*key_id))
        return PE_CRYPTO_EFORMAT;
    *payload = dot + 1;
    return APR_SUCCESS;
}

/* Key id named by a sealed value. */
const char *pe_sealed_key_id(apr_pool_t *p, const char *sealed)
{
    const char *kid, *payload;

    return seal_parse(p, sealed, &kid, &payload) == APR_SUCCESS ? kid : NULL;
}

/* Decrypt and verify; the key id in the value must match the caller's. */
apr_status_t pe_open(apr_pool_t *p, const unsigned char key[PE_SECRET_LEN], const char *key_id, const char *sealed,
                     const char *aad, const unsigned char **pt, apr_size_t *ptlen)
{
    EVP_CIPHER_CTX *ctx = NULL;
    const char *kid, *payload, *ad;
    unsigned char *blob, *out, *tag;
    apr_size_t blen, clen, plen;
    int outl = 0, finl = 0, ok;
    apr_status_t rv;

    *pt = NULL;
    if (ptlen)
        *ptlen = 0;
    if (!key || !pe_seal_key_id_ok(key_id))
        return PE_CRYPTO_EPARAM;
    if ((rv = seal_parse(p, sealed, &kid, &payload)) != APR_SUCCESS)
        return rv;
    if (strcmp(kid, key_id) != 0)
        return PE_CRYPTO_EKEYID;
    plen = strlen(payload);
    if (plen > (PE_SEAL_MAX_PLAINTEXT + SEAL_NONCE + SEAL_TAG) / 3 * 4 + 4)
        return PE_CRYPTO_EAUTH;
    /* a payload that is not canonical base64url, or too short for nonce + tag, was altered */
    if (pe_b64_decode_strict(p, payload, plen, 1, &blob, &blen) != APR_SUCCESS || blen < SEAL_NONCE + SEAL_TAG)
        return PE_CRYPTO_EAUTH;
    clen = blen - SEAL_NONCE - SEAL_TAG;
    if (clen > PE_SEAL_MAX_PLAINTEXT)
        return PE_CRYPTO_EAUTH;
    tag = blob + SEAL_NONCE + clen;
    out = apr_palloc(p, clen + 1);
    ad = seal_aad(p, kid, aad);

    /* NB: single exit below: ctx is freed and a rejected plaintext wiped on every path */
    rv = PE_CRYPTO_EFAIL;
    if (!(ctx = EVP_CIPHER_CTX_new())) {
        seal_ossl_fail("context allocation");
        goto end;
    }
    if (EVP_DecryptInit_ex2(ctx, EVP_aes_256_gcm(), key, blob, NULL) != 1 ||
        EVP_DecryptUpdate(ctx, NULL, &outl, (const unsigned char *)ad, (int)strlen(ad)) != 1 ||
        (clen && EVP_DecryptUpdate(ctx, out, &outl, blob + SEAL_NONCE, (int)clen) != 1) ||
        EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, SEAL_TAG, tag) != 1) {
        seal_ossl_fail("decryption set-up");
        goto end;
    }
    ok = EVP_DecryptFinal_ex(ctx, out + (clen ? outl : 0), &finl);
    /* a failed tag check leaves no OpenSSL error worth logging: it is the caller's event to report */
    ERR_clear_error();
    if (ok != 1) {
        rv = PE_CRYPTO_EAUTH;
        goto end;
    }
    out[clen] = '\0';
    pe_wipe_on_cleanup(p, out, clen + 1);
    *pt = out;
    if (ptlen)
        *ptlen = clen;
    rv = APR_SUCCESS;
end:
    if (rv != APR_SUCCESS)
        pe_wipe(out, clen + 1);
    EVP_CIPHER_CTX_free(ctx);
    return rv;
}

/* Pool cleanup: wipe every key of a ring. */
static apr_status_t keyring_wipe(void *data)
{
    pe_keyring_t *kr = data;
    int i;

    for (i = 0; i < kr->keys->nelts; i++)
        pe_wipe(APR_ARRAY_IDX(kr->keys, i, seal_key_t *)->key, PE_SECRET_LEN);
    return APR_SUCCESS;
}

/* Empty ring in p. */
pe_keyring_t *pe_keyring_create(apr_pool_t *p)
{
    pe_keyring_t *kr = apr_pcalloc(p, sizeof(*kr));

    kr->pool = p;
    kr->keys = apr_array_make(p, 2, sizeof(seal_key_t *));
    kr->current = -1;
    apr_pool_cleanup_register(p, kr, keyring_wipe, apr_pool_cleanup_null);
    return kr;
}

/* Find a key by id; NULL when absent. */
static const seal_key_t *keyring_find(const pe_keyring_t *kr, const char *id, int *index)
{
    int i;

    for (i = 0; i < kr->keys->nelts; i++) {
        const seal_key_t *k = APR_ARRAY_IDX(kr->keys, i, seal_key_t *);
        if (strcmp(k->id, id) == 0) {
            if (index)
                *index = i;
            return k;
        }
    }
    return NULL;
}

/* Add a copy of a key. */
const char *pe_keyring_add(pe_keyring_t *kr, const char *key_id, const unsigned char key[PE_SECRET_LEN],
                           int current)
{
    seal_key_t *k;

    if (!pe_seal_key_id_ok(key_id))
        return apr_psprintf(kr->pool, "key id '%s' must be 1 to %d characters of A-Z a-z 0-9 _ -",
                            key_id ? key_id : "", PE_SEAL_KEY_ID_MAX);
    if (keyring_find(kr, key_id, NULL))
        return apr_psprintf(kr->pool, "key id '%s' is given twice", key_id);
    k = apr_palloc(kr->pool, sizeof(*k));
    APR_ARRAY_PUSH(kr->keys, seal_key_t *) = k;
    k->id = apr_pstrdup(kr->pool, key_id);
    memcpy(k->key, key, PE_SECRET_LEN);
    if (current)
        kr->current = kr->keys->nelts - 1;
    return NULL;
}

/* Seal with the current key. */
apr_status_t pe_keyring_seal(apr_pool_t *p, const pe_keyring_t *kr, const void *pt, apr_size_t len, const char *aad,
                             const char **sealed)
{
    const seal_key_t *k;

    *sealed = NULL;
    if (!kr || kr->current < 0)
        return PE_CRYPTO_EKEYID;
    k = APR_ARRAY_IDX(kr->keys, kr->current, seal_key_t *);
    return pe_seal(p, k->key, k->id, pt, len, aad, sealed);
}

/* Open with the key the value names; report a value sealed with an older key as stale. */
apr_status_t pe_keyring_open(apr_pool_t *p, const pe_keyring_t *kr, const char *sealed, const char *aad,
                             const unsigned char **pt, apr_size_t *ptlen, int *stale)
{
    const char *kid, *payload;
    const seal_key_t *k;
    apr_status_t rv;
    int idx = -1;

    *pt = NULL;
    if (ptlen)
        *ptlen = 0;
    if (stale)
        *stale = 0;
    if ((rv = seal_parse(p, sealed, &kid, &payload)) != APR_SUCCESS)
        return rv;
    if (!kr || !(k = keyring_find(kr, kid, &idx)))
        return PE_CRYPTO_EKEYID;
    rv = pe_open(p, k->key, k->id, sealed, aad, pt, ptlen);
    if (rv == APR_SUCCESS && stale)
        *stale = idx != kr->current;
    return rv;
}
