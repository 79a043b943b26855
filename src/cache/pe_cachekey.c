/* pe_cachekey.c: "pe:v1:<section>:<sha256 hex>" keys and the canonical form of upstream requests. */
#include "pe_cachekey.h"
#include "pe_json.h"
#include "pe_logno.h"
#include "pe_util.h"

#include <apr_strings.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>

/* Top-level request fields that never change the answer (transport, accounting, client labels). */
static const char *const pe_cachekey_noise[] = {"stream", "stream_options", "user", "metadata", "store",
                                                "service_tier", NULL};

/* Is s a section name: 1..PE_CACHEKEY_SECTION_MAX of [a-z0-9_-]? */
static int pe_section_ok(const char *s)
{
    size_t i;

    if (!s || !*s)
        return 0;
    for (i = 0; s[i]; i++) {
        if (i >= PE_CACHEKEY_SECTION_MAX)
            return 0;
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '_' || s[i] == '-'))
            return 0;
    }
    return 1;
}

/* Section check that logs the caller's mistake. */
static int pe_section_check(const char *s)
{
    if (pe_section_ok(s))
        return 1;
    pe_clog(PE_LOG_ERR, 0, PE_LOGNO(40001) "cache key: invalid section name (want 1-%d of [a-z0-9_-])",
            PE_CACHEKEY_SECTION_MAX);
    return 0;
}

/* Key of bytes. */
const char *pe_cachekey_make(apr_pool_t *p, const char *section, const void *data, apr_size_t len)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;

    if (!pe_section_check(section))
        return NULL;
    if (!EVP_Digest(len ? data : "", len, md, &mdlen, EVP_sha256(), NULL) || mdlen != 32) {
        pe_clog(PE_LOG_ERR, 0, PE_LOGNO(40002) "cache key: SHA-256 failed");
        return NULL;
    }
    return apr_pstrcat(p, "pe:v1:", section, ":", pe_hex_encode(p, md, mdlen), NULL);
}

/* Is d an integral value that a double and a json_int_t both hold exactly? */
static int pe_integral(double d)
{
    return d > -9007199254740992.0 && d < 9007199254740992.0 && (double)(json_int_t)d == d;
}

/*
 * Normalise numbers in place: a real with an integral value (|v| < 2^53) becomes an integer, so
 * 1 and 1.0 hash alike. Recurses into objects and arrays (depth is bounded by the parser).
 */
static void pe_cachekey_normalise(json_t *j)
{
    const char *k;
    json_t *v;
    size_t i;

    if (json_is_object(j)) {
        json_object_foreach(j, k, v) {
            if (json_is_real(v)) {
                if (pe_integral(json_real_value(v)))
                    json_object_set_new(j, k, json_integer((json_int_t)json_real_value(v)));
            }
            else
                pe_cachekey_normalise(v);
        }
    }
    else if (json_is_array(j)) {
        json_array_foreach(j, i, v) {
            if (json_is_real(v)) {
                if (pe_integral(json_real_value(v)))
                    json_array_set_new(j, i, json_integer((json_int_t)json_real_value(v)));
            }
            else
                pe_cachekey_normalise(v);
        }
    }
}

/* Canonical text of (body minus noise, scope); NULL also when scope is not valid UTF-8. */
const char *pe_cachekey_canonical(apr_pool_t *p, const json_t *body, const char *scope)
{
    json_t *req, *wrap, *sc;
    const char *out = NULL;
    char *s;
    int i;

    if (!json_is_object(body))
        return NULL;
    sc = scope ? json_string(scope) : json_null();
    if (!sc)
        return NULL;
    /* NB: a deep copy, so normalising never touches the caller's body; freed on the one exit below. */
    req = json_deep_copy(body);
    wrap = json_object();
    if (!req || !wrap) {
        json_decref(req);
        json_decref(sc);
        goto end;
    }
    for (i = 0; pe_cachekey_noise[i]; i++)
        json_object_del(req, pe_cachekey_noise[i]);
    pe_cachekey_normalise(req);
    json_object_set_new(wrap, "request", req);
    json_object_set_new(wrap, "scope", sc);
    s = json_dumps(wrap, JSON_COMPACT | JSON_SORT_KEYS);
    if (s) {
        out = apr_pstrdup(p, s);
        free(s);
    }
    else
        pe_clog(PE_LOG_ERR, 0, PE_LOGNO(40003) "cache key: request could not be serialised");
end:
    json_decref(wrap);
    return out;
}

/* Key of an upstream request. */
const char *pe_cachekey_request(apr_pool_t *p, const char *section, const json_t *body, const char *scope)
{
    const char *c;

    if (!pe_section_check(section))
        return NULL;
    c = pe_cachekey_canonical(p, body, scope);
    return c ? pe_cachekey_make(p, section, c, strlen(c)) : NULL;
}

/* Shape check of a key. */
int pe_cachekey_valid(const char *s)
{
    const char *colon;
    char section[PE_CACHEKEY_SECTION_MAX + 1];
    size_t n, i;

    if (!s || strncmp(s, "pe:v1:", 6) != 0)
        return 0;
    s += 6;
    colon = strchr(s, ':');
    if (!colon || (n = (size_t)(colon - s)) == 0 || n > PE_CACHEKEY_SECTION_MAX)
        return 0;
    memcpy(section, s, n);
    section[n] = '\0';
    if (!pe_section_ok(section))
        return 0;
    for (i = 0, s = colon + 1; s[i]; i++)
        if (i >= 64 || !((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return 0;
    return i == 64;
}
