/*
 * pe_valid.h: field validation of JSON request bodies (httpd-free).
 * A validator collects every problem of a body, so one 422 names them all; fields not in the
 * route's allow-list are problems too (no mass assignment: RELIABILITY R33, R40).
 */
#ifndef PE_VALID_H
#define PE_VALID_H

#include <apr_pools.h>
#include <apr_tables.h>
#include <jansson.h>

typedef struct pe_valid_t {
    apr_pool_t *pool;
    const json_t *obj;
    apr_array_header_t *errors; /* const char * messages */
} pe_valid_t;

/** Start validating obj; names every member not in `allowed` (NULL-terminated). */
void pe_valid_init(pe_valid_t *v, apr_pool_t *p, const json_t *obj, const char *const *allowed);

/**
 * The first member of obj whose name is not in `allowed` (NULL-terminated), quoted for an error
 * message: "'name'", cut at 40 bytes ("'name...'"), every byte outside printable ASCII as '?'.
 * @return the quotation in p, or NULL when every member is allowed
 */
const char *pe_valid_unknown(apr_pool_t *p, const json_t *obj, const char *const *allowed);

/**
 * A string member of min..max Unicode characters (valid UTF-8, no NUL: jansson checks).
 * @return the string, or NULL when absent/null (an error if required) or invalid
 */
const char *pe_valid_str(pe_valid_t *v, const char *key, int required, long min_chars, long max_chars);

/** An integer member in [min, max]; *out untouched and 0 returned when absent (error if required). */
int pe_valid_int(pe_valid_t *v, const char *key, int required, long long min, long long max, long long *out);

/** A boolean member; returns dflt when absent. */
int pe_valid_bool(pe_valid_t *v, const char *key, int dflt);

/** A string member that must be one of `choices` (NULL-terminated); dflt when absent. */
const char *pe_valid_enum(pe_valid_t *v, const char *key, const char *const *choices, const char *dflt);

/** Add a message. */
void pe_valid_fail(pe_valid_t *v, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/** 1 when no problem was found. */
int pe_valid_ok(const pe_valid_t *v);

/** The problems as a new JSON array of strings (caller owns). */
json_t *pe_valid_errors_json(const pe_valid_t *v);

/** The first problem (for the message), or NULL. */
const char *pe_valid_first(const pe_valid_t *v);

/** Count the Unicode code points of valid UTF-8 (-1 when invalid). */
long pe_valid_utf8_chars(const char *s, size_t len);

#endif
