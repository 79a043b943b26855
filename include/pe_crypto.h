/*
 * pe_crypto.h: CSPRNG, constant-time compare, lookup digests, API keys and opaque tokens,
 * AES-256-GCM for fields at rest, Argon2id password hashes. httpd-free (OpenSSL 3, libargon2).
 *
 * Secrets at rest (DESIGN.md crypto, SPEC 16.2 item 21, RELIABILITY 1.4/1.5/1.17):
 * - API keys ("pe-" + 32 base62) and session/refresh tokens (86 base64url) are shown to their owner
 *   once and stored only as pe_lookup_digest(): HMAC-SHA-256 under a 32-byte server secret, in hex.
 *   Lookup is by that digest (an indexed column), so no comparison of the secret itself happens in C.
 *   Use one secret per purpose (API keys, session tokens, OTP codes), each loaded with pe_key_file_load().
 * - Random values come only from RAND_bytes; a failure is an error for the caller (never a fallback).
 * - Every comparison of a MAC, digest or token in memory goes through pe_ct_equal().
 *
 * Sealed fields (AES-256-GCM), text form "v1.<key_id>.<base64url(nonce[12] | ciphertext | tag[16])>":
 * - key_id: 1 to PE_SEAL_KEY_ID_MAX characters of [A-Za-z0-9_-] naming the key that sealed the value.
 * - The GCM additional data is "v1.<key_id>." followed by the caller's aad, so the version and key id
 *   are authenticated, and a value copied to another row or column (other aad) does not open.
 *   Callers pass an aad naming where the value lives, e.g. "users.email_otp:<user id>".
 * - The nonce is 12 random bytes per seal. NB: with random nonces one key must seal fewer than 2^32
 *   values (NIST SP 800-38D 8.3); rotate long before that.
 * Key rotation:
 *   1. create a new key file and give it a new id (e.g. "k2"); keep the old key ("k1") configured;
 *   2. load both into a pe_keyring_t with the new one marked current: new values are sealed with k2,
 *      values sealed with k1 still open (pe_keyring_open reports them as stale);
 *   3. re-seal stale values when they are read or written, or with a sweep over the table;
 *   4. once no value names k1 (count rows whose text starts with "v1.k1."), remove k1 from the config.
 *   A value whose key id is not in the ring fails with PE_CRYPTO_EKEYID, never with a wrong key.
 *
 * Passwords: Argon2id, version 19, 16-byte CSPRNG salt, 32-byte tag, PHC string
 * "$argon2id$v=19$m=<KiB>,t=<passes>,p=<lanes>$<salt b64>$<tag b64>" (standard base64, no padding),
 * so hashes made by other Argon2 implementations verify and parameters can be raised later
 * (pe_password_needs_rehash on each successful login).
 */
#ifndef PE_CRYPTO_H
#define PE_CRYPTO_H

#include <apr_errno.h>
#include <apr_pools.h>
#include <apr_tables.h>

/* Status codes of this concern (inside APR's user error space; the offset matches the log id range). */
#define PE_CRYPTO_ESTART (APR_OS_START_USERERR + 20000)
#define PE_CRYPTO_ERNG (PE_CRYPTO_ESTART + 1)      /* the CSPRNG failed */
#define PE_CRYPTO_EFORMAT (PE_CRYPTO_ESTART + 2)   /* malformed sealed value or password hash */
#define PE_CRYPTO_EKEYID (PE_CRYPTO_ESTART + 3)    /* sealed under a key id that is not available */
#define PE_CRYPTO_EAUTH (PE_CRYPTO_ESTART + 4)     /* authentication failed: tampered, wrong key or aad */
#define PE_CRYPTO_EMISMATCH (PE_CRYPTO_ESTART + 5) /* password does not match the hash */
#define PE_CRYPTO_EPARAM (PE_CRYPTO_ESTART + 6)    /* argument out of range (length, cost, key id) */
#define PE_CRYPTO_EFAIL (PE_CRYPTO_ESTART + 7)     /* OpenSSL or libargon2 failed (memory, internal) */

/** Length of server secrets (HMAC keys, AES-256 keys) in bytes. */
#define PE_SECRET_LEN 32
/** Length of a lookup digest in hex digits (HMAC-SHA-256). */
#define PE_DIGEST_HEX_LEN 64

/** API keys: "pe-" + 32 characters of [A-Za-z0-9] (about 190 bits). */
#define PE_APIKEY_PREFIX "pe-"
#define PE_APIKEY_BODY_LEN 32
#define PE_APIKEY_LEN (3 + PE_APIKEY_BODY_LEN)

/** Opaque session and refresh tokens: 64 random bytes as unpadded base64url. */
#define PE_TOKEN_BYTES 64
#define PE_TOKEN_LEN 86

/** Sealed values: longest key id and largest plaintext. */
#define PE_SEAL_KEY_ID_MAX 32
#define PE_SEAL_MAX_PLAINTEXT (16 * 1024 * 1024)

/** Argon2id defaults (DESIGN.md, SPEC 6.2) and the bounds accepted from callers and stored hashes. */
#define PE_ARGON2_T_DEFAULT 3
#define PE_ARGON2_M_DEFAULT 65536 /* KiB = 64 MiB */
#define PE_ARGON2_P_DEFAULT 1
#define PE_ARGON2_SALT_LEN 16
#define PE_ARGON2_HASH_LEN 32
#define PE_ARGON2_T_MAX 64
#define PE_ARGON2_M_MAX (1024 * 1024) /* KiB = 1 GiB: a corrupt stored hash cannot ask for more */
#define PE_ARGON2_P_MAX 64
/** Longest password handed to Argon2 (bytes); longer input is refused without hashing. */
#define PE_PASSWORD_MAX_BYTES 1024

/** A short English text for a PE_CRYPTO_* status (or apr_strerror text for others), in p. */
const char *pe_crypto_strerror(apr_pool_t *p, apr_status_t rv);

/**
 * Fill buf with n bytes from OpenSSL's CSPRNG.
 * @return APR_SUCCESS, or PE_CRYPTO_ERNG (logged; buf is then zeroed, never partly random)
 */
apr_status_t pe_random_bytes(void *buf, apr_size_t n);

/**
 * A string of n characters drawn uniformly from alphabet (rejection sampling: no modulo bias).
 * @param alphabet 2 to 256 distinct single-byte characters
 * @param out      NUL-terminated, in p; NULL on failure
 * @return APR_SUCCESS, PE_CRYPTO_ERNG, or PE_CRYPTO_EPARAM for a bad alphabet
 */
/**
 * Bytes for ids that must be unique and look random but are no secret (the request id): a
 * per-thread xoshiro256** generator seeded from pe_random_bytes() and seeded again in a child
 * after fork(). Predictable to whoever learns the state; never use it for keys or tokens.
 * @return APR_SUCCESS, or PE_CRYPTO_EFAIL when the seed could not be drawn
 */
apr_status_t pe_id_bytes(void *buf, apr_size_t n);

apr_status_t pe_random_string(apr_pool_t *p, const char *alphabet, apr_size_t n, const char **out);

/**
 * Compare two byte strings in time that depends only on the lengths (CRYPTO_memcmp).
 * @return 1 when alen == blen and the bytes are equal, else 0 (a length mismatch is never equal)
 */
int pe_ct_equal(const void *a, apr_size_t alen, const void *b, apr_size_t blen);

/** Overwrite n bytes at buf so the compiler cannot skip it (OPENSSL_cleanse). */
void pe_wipe(void *buf, apr_size_t n);

/**
 * Wipe buf[0..n) when p is cleared or destroyed (for secrets that live in pool memory).
 * NB: buf must be memory of p (or of a pool that outlives p).
 */
void pe_wipe_on_cleanup(apr_pool_t *p, void *buf, apr_size_t n);

/**
 * OpenSSL's SHA-256, fetched once per process (EVP_sha256() makes every EVP_DigestInit_ex look the
 * implementation up again, which cost more than hashing a request's few hundred bytes). Never
 * NULL: falls back to EVP_sha256() when the fetch fails.
 */
const struct evp_md_st *pe_sha256(void);

/**
 * HMAC-SHA-256 (RFC 2104 over pe_sha256()).
 * @param out 32 bytes
 * @return APR_SUCCESS or PE_CRYPTO_EFAIL
 */
apr_status_t pe_hmac_sha256(const void *key, apr_size_t keylen, const void *data, apr_size_t len,
                            unsigned char out[32]);

/**
 * The digest under which a key or token is stored and looked up: lower-case hex of
 * HMAC-SHA-256(secret, s[0..len)).
 * @param hex PE_DIGEST_HEX_LEN characters, in p
 * @return APR_SUCCESS or PE_CRYPTO_EFAIL
 */
apr_status_t pe_lookup_digest(apr_pool_t *p, const unsigned char secret[PE_SECRET_LEN], const char *s,
                              apr_size_t len, const char **hex);

/**
 * A new API key: "pe-" + 32 characters of [A-Za-z0-9] from the CSPRNG.
 * @param key NUL-terminated, PE_APIKEY_LEN characters, in p
 * @return APR_SUCCESS or PE_CRYPTO_ERNG
 */
apr_status_t pe_apikey_generate(apr_pool_t *p, const char **key);

/** 1 if s is exactly "pe-" followed by 32 characters of [A-Za-z0-9], else 0 (NULL allowed). */
int pe_apikey_format_ok(const char *s);

/**
 * A new opaque token (session or refresh): 64 CSPRNG bytes as unpadded base64url.
 * @param token NUL-terminated, PE_TOKEN_LEN characters, in p
 * @return APR_SUCCESS or PE_CRYPTO_ERNG
 */
apr_status_t pe_token_generate(apr_pool_t *p, const char **token);

/**
 * 1 if s has the exact shape of a token: 86 base64url characters in canonical form (the last
 * character carries no stray bits), else 0 (NULL allowed).
 */
int pe_token_format_ok(const char *s);

/**
 * Decode strict unpadded base64 (url = 1: base64url alphabet, 0: standard alphabet).
 * Rejects padding, white space, characters outside the alphabet, a length of 4k+1 and
 * non-canonical trailing bits.
 * @param out bytes in p (one spare NUL after them); *outlen their count
 * @return APR_SUCCESS or PE_CRYPTO_EFORMAT
 */
apr_status_t pe_b64_decode_strict(apr_pool_t *p, const char *s, apr_size_t len, int url, unsigned char **out,
                                  apr_size_t *outlen);

/** 1 if id is a usable key id: 1 to PE_SEAL_KEY_ID_MAX characters of [A-Za-z0-9_-]. */
int pe_seal_key_id_ok(const char *id);

/**
 * Encrypt and authenticate a field with AES-256-GCM under a fresh random nonce.
 * @param key    32-byte key; key_id its name (see pe_seal_key_id_ok)
 * @param pt     plaintext, len bytes (0 allowed; at most PE_SEAL_MAX_PLAINTEXT)
 * @param aad    context the value is bound to (NUL-terminated; NULL = empty)
 * @param sealed "v1.<key_id>.<base64url>", in p
 * @return APR_SUCCESS, PE_CRYPTO_EPARAM, PE_CRYPTO_ERNG or PE_CRYPTO_EFAIL
 */
apr_status_t pe_seal(apr_pool_t *p, const unsigned char key[PE_SECRET_LEN], const char *key_id, const void *pt,
                     apr_size_t len, const char *aad, const char **sealed);

/**
 * Check and decrypt a value made by pe_seal.
 * @param key, key_id the key the caller expects; a value naming another key id fails with PE_CRYPTO_EKEYID
 * @param aad         must equal the aad given to pe_seal (NULL = empty)
 * @param pt          plaintext in p with a NUL after it, wiped when p is cleaned up; NULL on failure
 * @param ptlen       its length (may be NULL)
 * @return APR_SUCCESS; PE_CRYPTO_EFORMAT (not a v1 sealed value); PE_CRYPTO_EKEYID; PE_CRYPTO_EAUTH
 *         (tampered, truncated, wrong key or wrong aad); PE_CRYPTO_EFAIL
 */
apr_status_t pe_open(apr_pool_t *p, const unsigned char key[PE_SECRET_LEN], const char *key_id, const char *sealed,
                     const char *aad, const unsigned char **pt, apr_size_t *ptlen);

/** The key id a sealed value names, in p, or NULL when the value is not a well-formed v1 value. */
const char *pe_sealed_key_id(apr_pool_t *p, const char *sealed);

/** A set of named AES-256 keys for rotation; one of them is current (used to seal). */
typedef struct pe_keyring_t pe_keyring_t;

/** A new empty key ring in p; key copies are wiped when p is cleaned up. */
pe_keyring_t *pe_keyring_create(apr_pool_t *p);

/**
 * Add a key (copied).
 * @param current non-zero: seal new values with this key (the last key added as current wins)
 * @return NULL, or a message (bad id, duplicate id)
 */
const char *pe_keyring_add(pe_keyring_t *kr, const char *key_id, const unsigned char key[PE_SECRET_LEN],
                           int current);

/** Seal with the current key; PE_CRYPTO_EKEYID when no key is current. Otherwise as pe_seal. */
apr_status_t pe_keyring_seal(apr_pool_t *p, const pe_keyring_t *kr, const void *pt, apr_size_t len, const char *aad,
                             const char **sealed);

/**
 * Open with whichever key the value names.
 * @param stale set to 1 when the value opened but was sealed with a key that is not current
 *              (re-seal it), else 0; may be NULL
 * @return as pe_open (PE_CRYPTO_EKEYID when the named key is not in the ring)
 */
apr_status_t pe_keyring_open(apr_pool_t *p, const pe_keyring_t *kr, const char *sealed, const char *aad,
                             const unsigned char **pt, apr_size_t *ptlen, int *stale);

/**
 * Hash a password with Argon2id and a fresh 16-byte salt.
 * NB: needs m_cost_kib KiB of heap for the time of the call; callers cap concurrent hashes (R4).
 * @param password  len bytes (at most PE_PASSWORD_MAX_BYTES)
 * @param t_cost    passes, 1..PE_ARGON2_T_MAX
 * @param m_cost_kib memory in KiB, 8*parallelism..PE_ARGON2_M_MAX
 * @param parallelism lanes, 1..PE_ARGON2_P_MAX
 * @param encoded   the PHC string, in p
 * @return APR_SUCCESS, PE_CRYPTO_EPARAM, PE_CRYPTO_ERNG or PE_CRYPTO_EFAIL (e.g. out of memory)
 */
apr_status_t pe_password_hash(apr_pool_t *p, const char *password, apr_size_t len, unsigned t_cost,
                              unsigned m_cost_kib, unsigned parallelism, const char **encoded);

/**
 * Check a password against a PHC string made by pe_password_hash (or any Argon2id v=19 encoder).
 * The tag is recomputed and compared with pe_ct_equal; parameters above the PE_ARGON2_*_MAX bounds
 * are refused as malformed so a corrupt record cannot exhaust memory.
 * @return APR_SUCCESS on a match; PE_CRYPTO_EMISMATCH (also for a password longer than
 *         PE_PASSWORD_MAX_BYTES); PE_CRYPTO_EFORMAT; PE_CRYPTO_EFAIL
 */
apr_status_t pe_password_verify(const char *encoded, const char *password, apr_size_t len);

/**
 * 1 when a stored hash should be replaced after a successful login: its t, m or p is below the
 * given policy, its salt or tag is shorter than 16/32 bytes, or it is not a parseable Argon2id v=19
 * string. 0 when it meets the policy.
 */
int pe_password_needs_rehash(const char *encoded, unsigned t_cost, unsigned m_cost_kib, unsigned parallelism);

#endif
