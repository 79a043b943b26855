/*
 * pe_cachekey.h: cache keys for responses and research (httpd-free).
 *
 * Every key has the form "pe:v1:<section>:<64 lower-case hex of SHA-256>" (RELIABILITY R44): a fixed
 * alphabet, no spaces or control characters, at most 6 + PE_CACHEKEY_SECTION_MAX + 1 + 64 bytes,
 * well under memcached's 250. Nothing the client sent appears in a key in clear.
 *
 * Response keys hash the canonical JSON (keys sorted recursively, compact, integral reals written
 * as integers) of the fields of the upstream request that decide the answer, together with a scope
 * string: the caller passes the principal (or tenant) id, so one user's answer is never served to
 * another (SPEC 16.2 item 33).
 */
#ifndef PE_CACHEKEY_H
#define PE_CACHEKEY_H

#include "pe_enhance.h"

#include <apr_pools.h>
#include <jansson.h>

/** Longest section name; a section is 1..32 of [a-z0-9_-]. */
#define PE_CACHEKEY_SECTION_MAX 32
/** Longest key this module makes (memcached allows 250). */
#define PE_CACHEKEY_MAX (6 + PE_CACHEKEY_SECTION_MAX + 1 + 64)

/**
 * Key of arbitrary bytes (research query + depth, search topic...).
 * @param section e.g. "research", "search"
 * @param data    the bytes hashed (may contain anything, NUL included)
 * @return "pe:v1:<section>:<hex>" in p, or NULL when section is not a valid section name
 */
const char *pe_cachekey_make(apr_pool_t *p, const char *section, const void *data, apr_size_t len);

/**
 * The canonical text hashed for an upstream request: {"request":<body without stream, stream_options,
 * user, metadata, store, service_tier>,"scope":<scope or null>} with sorted keys, compact.
 * @param body  an upstream chat.completions body (pe_enhance_build()); not modified
 * @param scope who may see the cached answer (e.g. "user:<id>"); NULL means shared by everyone
 * @return the text in p, or NULL when body is not an object or scope is not valid UTF-8
 */
const char *pe_cachekey_canonical(apr_pool_t *p, const json_t *body, const char *scope);

/**
 * Key of an upstream request: pe_cachekey_make(section, pe_cachekey_canonical(body, scope)).
 * Field order, stream flags and the client's `user` do not change the key; any other field, the
 * model, any message or the scope does.
 * @param section e.g. "response"
 * @return the key in p, or NULL on a bad section or a body that is not an object
 */
const char *pe_cachekey_request(apr_pool_t *p, const char *section, const json_t *body, const char *scope);

/**
 * Key of a completion, hashed incrementally from the request's parts: no copy and no dump of the
 * upstream body (whose system prompt alone is ~2 KB). What is hashed, each part tagged and
 * length-prefixed so no two different inputs give the same byte stream: the scope, the upstream
 * model, the r_type, the SHA-256 of the system prompt in force (the built-in text, or the stored
 * one: a change of a stored prompt changes every key that used it), the client's messages and the
 * optional upstream fields (params) in a canonical walk (object keys sorted, integral reals as
 * integers, as pe_cachekey_canonical), without the fields that never change the answer (stream,
 * stream_options, user, metadata, store, service_tier), and the research results appended, if any.
 * The same request gives the same key on the completion routes and in a batch. Model rules
 * (reasoning models) derive from the model and the configuration, and are not hashed.
 * @param section e.g. "response"
 * @param scope   who may see the cached answer ("user:<id>"); NULL means shared
 * @param req     the validated request (pe_enhance_parse_*)
 * @param system  the system prompt text pe_enhance_build() uses (pe_enhance_system_prompt()), or NULL
 * @param res     research results given to pe_enhance_build(), or NULL
 * @param nres    their count
 * @return the key in p, or NULL on a bad section or a digest failure (logged)
 */
const char *pe_cachekey_completion(apr_pool_t *p, const char *section, const char *scope, const pe_enhance_req_t *req,
                                   const char *system, const pe_enhance_research_t *res, int nres);

/** Whether s is a well-formed key of this module (prefix, section alphabet, 64 hex, length). */
int pe_cachekey_valid(const char *s);

#endif
