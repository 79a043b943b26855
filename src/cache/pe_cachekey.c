/* pe_cachekey.c: "pe:v1:<section>:<sha256 hex>" keys and the canonical form of upstream requests. */
#include "pe_cachekey.h"
#include "pe_json.h"
#include "pe_crypto.h"
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
    if (!EVP_Digest(len ? data : "", len, md, &mdlen, pe_sha256(), NULL) || mdlen != 32) {
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

/* ---- incremental completion keys ---- */

/* A SHA-256 fed through a small buffer (one EVP update per ~1 KB, not per token). */
typedef struct pe_kh_t {
    EVP_MD_CTX *md;
    int ok;
    apr_size_t n;
    unsigned char buf[1024];
} pe_kh_t;

static void pe_kh_flush(pe_kh_t *h)
{
    if (h->n && h->ok && !EVP_DigestUpdate(h->md, h->buf, h->n))
        h->ok = 0;
    h->n = 0;
}

static void pe_kh_put(pe_kh_t *h, const void *d, apr_size_t n)
{
    if (h->n + n > sizeof(h->buf)) {
        pe_kh_flush(h);
        if (n > sizeof(h->buf)) {
            if (h->ok && !EVP_DigestUpdate(h->md, d, n))
                h->ok = 0;
            return;
        }
    }
    memcpy(h->buf + h->n, d, n);
    h->n += n;
}

/* A tag byte and a 64-bit little-endian number. */
static void pe_kh_num(pe_kh_t *h, char tag, apr_uint64_t v)
{
    unsigned char b[9];
    int i;

    b[0] = (unsigned char)tag;
    for (i = 0; i < 8; i++)
        b[1 + i] = (unsigned char)(v >> (8 * i));
    pe_kh_put(h, b, sizeof(b));
}

/* Tagged, length-prefixed bytes. */
static void pe_kh_bytes(pe_kh_t *h, char tag, const void *d, apr_size_t n)
{
    pe_kh_num(h, tag, (apr_uint64_t)n);
    pe_kh_put(h, d, n);
}

static int pe_kh_strcmp(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Is k one of the top-level fields that never change the answer? */
static int pe_kh_noise(const char *k)
{
    int i;

    for (i = 0; pe_cachekey_noise[i]; i++)
        if (!strcmp(k, pe_cachekey_noise[i]))
            return 1;
    return 0;
}

/*
 * Canonical walk of a JSON value: objects with their keys sorted (top: the noise fields skipped),
 * integral reals hashed as integers (1 and 1.0 alike), every value tagged and length-prefixed.
 * Depth is bounded by the parser that made the value.
 */
static void pe_kh_json(pe_kh_t *h, const json_t *j, int top)
{
    const char *k, *stack_keys[32], **keys;
    json_t *v;
    size_t i, n;
    double d;

    switch (json_typeof(j)) {
    case JSON_OBJECT:
        n = json_object_size(j);
        keys = n <= 32 ? stack_keys : malloc(n * sizeof(*keys));
        if (!keys) {
            h->ok = 0;
            return;
        }
        i = 0;
        json_object_foreach((json_t *)j, k, v) {
            if (!(top && pe_kh_noise(k)) && i < n)
                keys[i++] = k;
        }
        n = i;
        qsort(keys, n, sizeof(*keys), pe_kh_strcmp);
        pe_kh_num(h, 'o', n);
        for (i = 0; i < n; i++) {
            pe_kh_bytes(h, 'k', keys[i], strlen(keys[i]));
            pe_kh_json(h, json_object_get(j, keys[i]), 0);
        }
        if (keys != stack_keys)
            free(keys);
        break;
    case JSON_ARRAY:
        n = json_array_size(j);
        pe_kh_num(h, 'a', n);
        for (i = 0; i < n; i++)
            pe_kh_json(h, json_array_get(j, i), 0);
        break;
    case JSON_STRING:
        pe_kh_bytes(h, 's', json_string_value(j), json_string_length(j));
        break;
    case JSON_INTEGER:
        pe_kh_num(h, 'i', (apr_uint64_t)json_integer_value(j));
        break;
    case JSON_REAL:
        d = json_real_value(j);
        if (pe_integral(d))
            pe_kh_num(h, 'i', (apr_uint64_t)(json_int_t)d);
        else {
            apr_uint64_t bits;

            memcpy(&bits, &d, sizeof(bits));
            pe_kh_num(h, 'r', bits);
        }
        break;
    case JSON_TRUE:
        pe_kh_num(h, 'b', 1);
        break;
    case JSON_FALSE:
        pe_kh_num(h, 'b', 0);
        break;
    default:
        pe_kh_num(h, 'n', 0);
        break;
    }
}

/* A tagged string part; NULL is hashed apart from "". */
static void pe_kh_str(pe_kh_t *h, char tag, const char *s)
{
    if (s)
        pe_kh_bytes(h, tag, s, strlen(s));
    else
        pe_kh_num(h, 'N', (apr_uint64_t)(unsigned char)tag);
}

/* Digests of the built-in prompts, by r_type, made once per process (ready: 1 once written). */
#define PE_KH_BUILTINS 8
static unsigned char pe_kh_builtin_md[PE_KH_BUILTINS][32];
static int pe_kh_builtin_ready[PE_KH_BUILTINS];

/* SHA-256 of the system prompt into md; 0 on failure. */
static int pe_prompt_digest(pe_rtype_t t, const char *system, unsigned char md[32])
{
    unsigned int mdlen = 0;
    int builtin = (unsigned)t < PE_KH_BUILTINS && system == pe_enhance_builtin_prompt(t);

    if (builtin && __atomic_load_n(&pe_kh_builtin_ready[t], __ATOMIC_ACQUIRE)) {
        memcpy(md, pe_kh_builtin_md[t], 32);
        return 1;
    }
    if (!EVP_Digest(system, strlen(system), md, &mdlen, pe_sha256(), NULL) || mdlen != 32)
        return 0;
    if (builtin) {
        /* NB: two threads may both get here; they write the same bytes before the flag. */
        memcpy(pe_kh_builtin_md[t], md, 32);
        __atomic_store_n(&pe_kh_builtin_ready[t], 1, __ATOMIC_RELEASE);
    }
    return 1;
}

const char *pe_cachekey_completion(apr_pool_t *p, const char *section, const char *scope, const pe_enhance_req_t *req,
                                   const char *system, const pe_enhance_research_t *res, int nres)
{
    unsigned char md[EVP_MAX_MD_SIZE], sysmd[32];
    unsigned int mdlen;
    pe_kh_t *h;
    int i, j;

    if (!pe_section_check(section) || !req)
        return NULL;
    h = apr_palloc(p, sizeof(*h));
    h->n = 0;
    h->md = EVP_MD_CTX_new();
    h->ok = h->md && EVP_DigestInit_ex(h->md, pe_sha256(), NULL);
    pe_kh_str(h, 'V', "completion:1"); /* the layout of what follows */
    pe_kh_str(h, 'S', scope);
    pe_kh_str(h, 'M', req->model);
    pe_kh_str(h, 'R', pe_enhance_rtype_name(req->rtype));
    /* NB: the prompt's digest, not its text (the prompt's version): a built-in prompt's digest is
     * computed once per process, a stored one (an administrator's) per request. */
    if (system) {
        if (!pe_prompt_digest(req->rtype, system, sysmd))
            h->ok = 0;
        pe_kh_bytes(h, 'P', sysmd, sizeof(sysmd));
    }
    else
        pe_kh_str(h, 'P', NULL);
    pe_kh_num(h, 'm', 0);
    pe_kh_json(h, req->messages, 0);
    pe_kh_num(h, 'p', 0);
    if (req->params)
        pe_kh_json(h, req->params, 1);
    else
        pe_kh_num(h, 'n', 0);
    pe_kh_num(h, 'r', (apr_uint64_t)(nres > 0 && res ? nres : 0));
    for (i = 0; res && i < nres; i++) {
        pe_kh_str(h, 't', res[i].topic);
        pe_kh_str(h, 'c', res[i].content);
        pe_kh_num(h, 'u', (apr_uint64_t)(res[i].nsources > 0 ? res[i].nsources : 0));
        for (j = 0; j < res[i].nsources; j++)
            pe_kh_str(h, 'u', res[i].sources[j]);
    }
    pe_kh_flush(h);
    mdlen = 0;
    if (!h->ok || !EVP_DigestFinal_ex(h->md, md, &mdlen) || mdlen != 32) {
        EVP_MD_CTX_free(h->md);
        pe_clog(PE_LOG_ERR, 0, PE_LOGNO(40004) "cache key: SHA-256 of a completion failed");
        return NULL;
    }
    EVP_MD_CTX_free(h->md);
    return apr_pstrcat(p, "pe:v1:", section, ":", pe_hex_encode(p, md, mdlen), NULL);
}
