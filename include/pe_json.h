/*
 * pe_json.h: jansson bound to APR pools.
 *
 * Every json_t made here is tied to a pool with a cleanup that decrefs it, so request code never
 * calls json_decref by hand (STYLE.md 3.6). Parsing is strict: duplicate keys, NUL in strings,
 * trailing data and deep nesting are rejected with a message that says where.
 */
#ifndef PE_JSON_H
#define PE_JSON_H

#include <apr_pools.h>
#include <jansson.h>

/** Deepest object/array nesting a request body may have (RELIABILITY R39). */
#define PE_JSON_MAX_DEPTH 32

/** Tie j to pool p (json_decref at cleanup); returns j. NULL is passed through. */
json_t *pe_json_bind(apr_pool_t *p, json_t *j);

/** A new empty object owned by p. */
json_t *pe_json_object(apr_pool_t *p);

/**
 * Parse buf[0..len) strictly.
 * @param out   the value, owned by p, on success
 * @param err   on failure a precise message in p ("malformed JSON at line 1, column 7: ...")
 * @return 0 on success, -1 on failure
 */
int pe_json_parse(apr_pool_t *p, const char *buf, size_t len, json_t **out, const char **err);

/** Compact serialisation copied into p; *len gets its length. Never NULL. */
char *pe_json_dump(apr_pool_t *p, const json_t *j, size_t *len);

/** Nesting depth of j (a scalar is 0). */
int pe_json_depth(const json_t *j);

/**
 * The one error envelope (DESIGN.md, SPEC 1.2/16.3):
 * {"success":false,"error":msg,"message":msg,"error_code":code,"details":{..extra..,"request_id":id}}
 * @param extra object merged into details (may be NULL; not modified)
 */
json_t *pe_json_error(apr_pool_t *p, const char *message, const char *error_code, const char *request_id,
                      const json_t *extra);

/**
 * The error in OpenAI's shape, for the OpenAI-compatible routes (the official SDKs read
 * error.message, .type, .code and .param):
 * {"error":{"message":msg,"type":type,"code":code,"param":param|null,..extra..,"request_id":id}}
 * @param param the request field at fault, or NULL (JSON null)
 * @param extra object whose members are kept inside "error" (may be NULL; not modified)
 */
json_t *pe_json_error_openai(apr_pool_t *p, const char *message, const char *type, const char *code,
                             const char *param, const char *request_id, const json_t *extra);

/** OpenAI's error "type" for a status and one of our codes ("invalid_request_error"...). */
const char *pe_json_error_openai_type(int status, const char *code);

/**
 * The request field a validation message starts with ("temperature must be ..." -> "temperature",
 * "messages[0].content must ..." -> "messages[0].content"), or NULL.
 */
const char *pe_json_error_param(apr_pool_t *p, const char *message);

/**
 * Whether a client should retry an error answer as it is, for the x-should-retry header:
 * 0 when retrying cannot help (a refusal that stays: 4xx but 408 and a RATE_LIMITED 429,
 * CREDITS_EXHAUSTED until the daily reset, UPSTREAM_INVALID, UPSTREAM_NOT_CONFIGURED), -1 when
 * the client's own policy applies (408,
 * RATE_LIMITED with its Retry-After, 5xx; the upstream handlers decide those themselves).
 */
int pe_json_error_retry(int status, const char *code);

/** String member or NULL when absent or not a string. */
const char *pe_json_str(const json_t *obj, const char *key);

#endif
