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

/* The error in OpenAI's shape. */
json_t *pe_json_error_openai(apr_pool_t *p, const char *message, const char *type, const char *code,
                             const char *param, const char *request_id, const json_t *extra)
{
    json_t *o = pe_json_object(p);
    json_t *e = json_object();

    if (extra && json_is_object(extra))
        json_object_update(e, (json_t *)extra);
    json_object_set_new(e, "message", pe_json_text(message));
    json_object_set_new(e, "type", pe_json_text(type));
    json_object_set_new(e, "code", pe_json_text(code));
    json_object_set_new(e, "param", param ? pe_json_text(param) : json_null());
    json_object_set_new(e, "request_id", pe_json_text(request_id));
    json_object_set_new(o, "error", e);
    return o;
}

/* OpenAI's error types, by our code first, then by status. */
const char *pe_json_error_openai_type(int status, const char *code)
{
    if (code && !strcmp(code, "CREDITS_EXHAUSTED"))
        return "insufficient_quota";
    if (code && !strncmp(code, "UPSTREAM_", 9))
        return "upstream_error";
    switch (status) {
    case 401: return "authentication_error";
    case 403: return "permission_error";
    case 404: return "not_found_error";
    case 429: return "rate_limit_error";
    default:
        return status >= 500 ? "server_error" : "invalid_request_error";
    }
}

/* The field name a validation message starts with. */
const char *pe_json_error_param(apr_pool_t *p, const char *message)
{
    const char *s = message;

    if (!s)
        return NULL;
    while ((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') || *s == '_' ||
           *s == '.' || *s == '[' || *s == ']')
        s++;
    if (s == message || strncmp(s, " must ", 6) != 0 || (*message >= '0' && *message <= '9'))
        return NULL;
    return apr_pstrmemdup(p, message, (apr_size_t)(s - message));
}

/* Retry advice for x-should-retry. */
int pe_json_error_retry(int status, const char *code)
{
    /* the upstream answered 200 with something that is not a completion; no AI service configured */
    if (code && (!strcmp(code, "UPSTREAM_INVALID") || !strcmp(code, "UPSTREAM_NOT_CONFIGURED")))
        return 0;
    if (status < 400 || status >= 500 || status == 408)
        return -1;
    if (status == 429 && !(code && !strcmp(code, "CREDITS_EXHAUSTED")))
        return -1;
    return 0;
}

/* String member or NULL. */
const char *pe_json_str(const json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);
    return json_is_string(v) ? json_string_value(v) : NULL;
}
