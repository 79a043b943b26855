/* pe_util.h: small httpd-free helpers (hex, base64url, key files). */
#ifndef PE_UTIL_H
#define PE_UTIL_H

#include <apr_pools.h>

/** Lower-case hex of n bytes, in p. */
char *pe_hex_encode(apr_pool_t *p, const unsigned char *d, apr_size_t n);

/** Decode exactly 2*n hex digits into out[n]; -1 on any other input. */
int pe_hex_decode(const char *hex, unsigned char *out, apr_size_t n);

/** Unpadded base64url of n bytes, in p. */
char *pe_base64url(apr_pool_t *p, const unsigned char *d, apr_size_t n);

/**
 * Load a 32-byte key written as 64 hex digits (white space around it allowed).
 * Refuses a file that group or others may read, so a copied key is noticed at start-up.
 * @return NULL, or a message naming the reason
 */
const char *pe_key_file_load(apr_pool_t *p, const char *path, unsigned char key[32]);

#endif
