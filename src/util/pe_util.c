/* pe_util.c: hex, base64url and key files. */
#include "pe_util.h"

#include <apr_file_io.h>
#include <apr_strings.h>
#include <ctype.h>
#include <string.h>

/* Bytes -> lower-case hex. */
char *pe_hex_encode(apr_pool_t *p, const unsigned char *d, apr_size_t n)
{
    static const char hx[] = "0123456789abcdef";
    char *s = apr_palloc(p, n * 2 + 1);
    apr_size_t i;

    for (i = 0; i < n; i++) {
        s[2 * i] = hx[d[i] >> 4];
        s[2 * i + 1] = hx[d[i] & 15];
    }
    s[n * 2] = '\0';
    return s;
}

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Exactly 2n hex digits -> n bytes. */
int pe_hex_decode(const char *hex, unsigned char *out, apr_size_t n)
{
    apr_size_t i;

    if (strlen(hex) != n * 2)
        return -1;
    for (i = 0; i < n; i++) {
        int hi = hexval((unsigned char)hex[2 * i]), lo = hexval((unsigned char)hex[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return -1;
        out[i] = (unsigned char)(hi << 4 | lo);
    }
    return 0;
}

/* Bytes -> unpadded base64url. */
char *pe_base64url(apr_pool_t *p, const unsigned char *d, apr_size_t n)
{
    static const char al[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    char *s = apr_palloc(p, (n + 2) / 3 * 4 + 1), *o = s;
    apr_size_t i;

    for (i = 0; i + 2 < n; i += 3) {
        *o++ = al[d[i] >> 2];
        *o++ = al[((d[i] & 3) << 4) | (d[i + 1] >> 4)];
        *o++ = al[((d[i + 1] & 15) << 2) | (d[i + 2] >> 6)];
        *o++ = al[d[i + 2] & 63];
    }
    if (n - i == 1) {
        *o++ = al[d[i] >> 2];
        *o++ = al[(d[i] & 3) << 4];
    }
    else if (n - i == 2) {
        *o++ = al[d[i] >> 2];
        *o++ = al[((d[i] & 3) << 4) | (d[i + 1] >> 4)];
        *o++ = al[(d[i + 1] & 15) << 2];
    }
    *o = '\0';
    return s;
}

/* Read and check a hex key file. */
const char *pe_key_file_load(apr_pool_t *p, const char *path, unsigned char key[32])
{
    apr_finfo_t fi;
    apr_file_t *f;
    char buf[200];
    apr_size_t n = sizeof(buf) - 1;
    char *s, *e;
    apr_status_t rv;

    if (apr_stat(&fi, path, APR_FINFO_PROT | APR_FINFO_TYPE, p) != APR_SUCCESS || fi.filetype != APR_REG)
        return apr_psprintf(p, "'%s' is not a readable file", path);
    if (fi.protection & (APR_GREAD | APR_GWRITE | APR_WREAD | APR_WWRITE))
        return apr_psprintf(p, "'%s' may be read by group or others; chmod 600 it", path);
    if (apr_file_open(&f, path, APR_FOPEN_READ, 0, p) != APR_SUCCESS)
        return apr_psprintf(p, "'%s' cannot be opened", path);
    rv = apr_file_read(f, buf, &n);
    apr_file_close(f);
    if (rv != APR_SUCCESS && rv != APR_EOF)
        return apr_psprintf(p, "'%s' cannot be read", path);
    buf[n] = '\0';
    for (s = buf; *s && isspace((unsigned char)*s); s++)
        ;
    for (e = s + strlen(s); e > s && isspace((unsigned char)e[-1]); e--)
        ;
    *e = '\0';
    if (pe_hex_decode(s, key, 32) != 0)
        return apr_psprintf(p, "'%s' must hold exactly 64 hex digits (32 random bytes)", path);
    return NULL;
}
