/* pe_valid.c: field validation of JSON request bodies. */
#include "pe_valid.h"

#include <apr_strings.h>
#include <stdarg.h>
#include <string.h>

void pe_valid_fail(pe_valid_t *v, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    APR_ARRAY_PUSH(v->errors, const char *) = apr_pvsprintf(v->pool, fmt, ap);
    va_end(ap);
}

void pe_valid_init(pe_valid_t *v, apr_pool_t *p, const json_t *obj, const char *const *allowed)
{
    const char *k;
    json_t *val;

    v->pool = p;
    v->obj = obj;
    v->errors = apr_array_make(p, 4, sizeof(const char *));
    json_object_foreach((json_t *)obj, k, val) {
        const char *const *a;
        int known = 0;

        for (a = allowed; a && *a; a++)
            if (!strcmp(*a, k)) {
                known = 1;
                break;
            }
        if (!known)
            pe_valid_fail(v, "unknown field '%s'", k);
    }
}

/* The first member not allowed, quoted for a message: printable ASCII, at most 40 bytes. */
const char *pe_valid_unknown(apr_pool_t *p, const json_t *obj, const char *const *allowed)
{
    const char *k;
    json_t *val;

    json_object_foreach((json_t *)obj, k, val) {
        const char *const *a;
        char buf[48];
        size_t i, n = 0;

        for (a = allowed; a && *a; a++)
            if (!strcmp(*a, k))
                break;
        if (a && *a)
            continue;
        for (i = 0; k[i] && n < 40; i++)
            buf[n++] = ((unsigned char)k[i] < 0x20 || (unsigned char)k[i] > 0x7e || k[i] == '\'' ) ? '?' : k[i];
        buf[n] = '\0';
        return apr_psprintf(p, "'%s%s'", buf, k[i] ? "..." : "");
    }
    return NULL;
}

/* Code points of valid UTF-8; -1 when invalid (jansson already rejects invalid input). */
long pe_valid_utf8_chars(const char *s, size_t len)
{
    long n = 0;
    size_t i = 0;

    while (i < len) {
        unsigned char c = (unsigned char)s[i];
        size_t k = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
        size_t j;

        if (!k || i + k > len)
            return -1;
        for (j = 1; j < k; j++)
            if (((unsigned char)s[i + j] >> 6) != 2)
                return -1;
        i += k;
        n++;
    }
    return n;
}

const char *pe_valid_str(pe_valid_t *v, const char *key, int required, long min_chars, long max_chars)
{
    json_t *j = json_object_get(v->obj, key);
    const char *s;
    long n;

    if (!j || json_is_null(j)) {
        if (required)
            pe_valid_fail(v, "field '%s' is required", key);
        return NULL;
    }
    if (!json_is_string(j)) {
        pe_valid_fail(v, "field '%s' must be a string", key);
        return NULL;
    }
    s = json_string_value(j);
    n = pe_valid_utf8_chars(s, json_string_length(j));
    if (n < 0 || strlen(s) != json_string_length(j)) {
        pe_valid_fail(v, "field '%s' must be valid UTF-8 text without NUL", key);
        return NULL;
    }
    if (n < min_chars) {
        pe_valid_fail(v, "field '%s' must be at least %ld characters long", key, min_chars);
        return NULL;
    }
    if (max_chars >= 0 && n > max_chars) {
        pe_valid_fail(v, "field '%s' must be at most %ld characters long", key, max_chars);
        return NULL;
    }
    return s;
}

int pe_valid_int(pe_valid_t *v, const char *key, int required, long long min, long long max, long long *out)
{
    json_t *j = json_object_get(v->obj, key);
    long long x;

    if (!j || json_is_null(j)) {
        if (required)
            pe_valid_fail(v, "field '%s' is required", key);
        return 0;
    }
    if (!json_is_integer(j)) {
        pe_valid_fail(v, "field '%s' must be an integer", key);
        return 0;
    }
    x = json_integer_value(j);
    if (x < min || x > max) {
        pe_valid_fail(v, "field '%s' must be between %" APR_INT64_T_FMT " and %" APR_INT64_T_FMT, key,
                      (apr_int64_t)min, (apr_int64_t)max);
        return 0;
    }
    *out = x;
    return 1;
}

int pe_valid_bool(pe_valid_t *v, const char *key, int dflt)
{
    json_t *j = json_object_get(v->obj, key);

    if (!j || json_is_null(j))
        return dflt;
    if (!json_is_boolean(j)) {
        pe_valid_fail(v, "field '%s' must be true or false", key);
        return dflt;
    }
    return json_is_true(j);
}

const char *pe_valid_enum(pe_valid_t *v, const char *key, const char *const *choices, const char *dflt)
{
    json_t *j = json_object_get(v->obj, key);
    const char *const *c;
    const char *list = NULL;

    if (!j || json_is_null(j))
        return dflt;
    if (json_is_string(j))
        for (c = choices; *c; c++)
            if (!strcmp(*c, json_string_value(j)))
                return *c;
    for (c = choices; *c; c++)
        list = list ? apr_pstrcat(v->pool, list, ", ", *c, NULL) : *c;
    pe_valid_fail(v, "field '%s' must be one of: %s", key, list ? list : "");
    return NULL;
}

int pe_valid_ok(const pe_valid_t *v)
{
    return v->errors->nelts == 0;
}

json_t *pe_valid_errors_json(const pe_valid_t *v)
{
    json_t *a = json_array();
    int i;

    for (i = 0; i < v->errors->nelts; i++)
        json_array_append_new(a, json_string(APR_ARRAY_IDX(v->errors, i, const char *)));
    return a;
}

const char *pe_valid_first(const pe_valid_t *v)
{
    return v->errors->nelts ? APR_ARRAY_IDX(v->errors, 0, const char *) : NULL;
}
