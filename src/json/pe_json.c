/* pe_json.c: jansson on APR pools, strict parsing and the error envelope. */
#include "pe_json.h"

#include <apr_strings.h>
#include <string.h>

/* Pool cleanup: drop the reference the pool owns. */
static apr_status_t pe_json_cleanup(void *data)
{
    json_decref((json_t *)data);
    return APR_SUCCESS;
}

/* Tie j to p. */
json_t *pe_json_bind(apr_pool_t *p, json_t *j)
{
    if (j)
        apr_pool_cleanup_register(p, j, pe_json_cleanup, apr_pool_cleanup_null);
    return j;
}

/* A new object owned by p. */
json_t *pe_json_object(apr_pool_t *p)
{
    return pe_json_bind(p, json_object());
}

/* Depth of nesting: iterative over objects and arrays. */
int pe_json_depth(const json_t *j)
{
    int best = 0;

    if (json_is_object(j)) {
        const char *k;
        json_t *v;

        json_object_foreach((json_t *)j, k, v) {
            int d = pe_json_depth(v);
            if (d > best)
                best = d;
        }
        return best + 1;
    }
    if (json_is_array(j)) {
        size_t i;
        json_t *v;

        json_array_foreach(j, i, v) {
            int d = pe_json_depth(v);
            if (d > best)
                best = d;
        }
        return best + 1;
    }
    return 0;
}

/* Strict parse; on error a message naming line, column and reason. */
int pe_json_parse(apr_pool_t *p, const char *buf, size_t len, json_t **out, const char **err)
{
    json_error_t je;
    json_t *j;

    *out = NULL;
    if (len == 0) {
        *err = "empty body: a JSON value is required";
        return -1;
    }
    /* JSON_DECODE_ANY is not set: the top level must be an object or an array. */
    j = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &je);
    if (!j) {
        /* NB: jansson's own text names its decoder flag ("... without JSON_ALLOW_NUL") */
        if (json_error_code(&je) == json_error_null_character)
            *err = apr_psprintf(p, "malformed JSON at line %d, column %d: a string contains \\u0000 (NUL), which "
                                "is not accepted", je.line, je.column);
        else
            *err = apr_psprintf(p, "malformed JSON at line %d, column %d: %s", je.line, je.column, je.text);
        return -1;
    }
    pe_json_bind(p, j);
    if (pe_json_depth(j) > PE_JSON_MAX_DEPTH) {
        *err = apr_psprintf(p, "JSON nested deeper than %d levels", PE_JSON_MAX_DEPTH);
        return -1;
    }
    *out = j;
    return 0;
}

/* Compact dump copied into p (jansson allocates with malloc). */
char *pe_json_dump(apr_pool_t *p, const json_t *j, size_t *len)
{
    char *s = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY);
    char *r;
    size_t n;

    if (!s) {
        if (len)
            *len = 4;
        return apr_pstrdup(p, "null");
    }
    n = strlen(s);
    r = apr_pstrmemdup(p, s, n);
    free(s);
    if (len)
        *len = n;
    return r;
}

/* A JSON string for s; text that is not valid UTF-8 is replaced, never dropped. */
static json_t *pe_json_text(const char *s)
{
    json_t *v = json_string(s ? s : "");
    return v ? v : json_string("(message not valid UTF-8)");
}

/* The error envelope. */
json_t *pe_json_error(apr_pool_t *p, const char *message, const char *error_code, const char *request_id,
                      const json_t *extra)
{
    json_t *o = pe_json_object(p);
    json_t *details = json_object();

    if (extra && json_is_object(extra))
        json_object_update(details, (json_t *)extra);
    json_object_set_new(details, "request_id", pe_json_text(request_id));
    json_object_set_new(o, "success", json_false());
    json_object_set_new(o, "error", pe_json_text(message));
    json_object_set_new(o, "message", pe_json_text(message));
    json_object_set_new(o, "error_code", pe_json_text(error_code));
    json_object_set_new(o, "details", details);
    return o;
}

/* String member or NULL. */
const char *pe_json_str(const json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);
    return json_is_string(v) ? json_string_value(v) : NULL;
}
