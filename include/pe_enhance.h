/*
 * pe_enhance.h: prompt enhancement and upstream request building (httpd-free).
 *
 * Both completion routes share one pipeline:
 *
 *   body --pe_enhance_parse_prompt() / pe_enhance_parse_chat()--> pe_enhance_req_t (validated)
 *        --[glue: research on pe_enhance_research_query(), custom prompt from the store]-->
 *        --pe_enhance_build()--> upstream chat.completions JSON body
 *
 * Message assembly (SPEC 4.2, with the 16.1/16.2 fixes): the r_type system prompt comes first; client
 * system (and developer) messages are dropped when an r_type is used and kept otherwise; every other
 * message is copied unchanged (no "sanitising", 16.2 item 31: only a length limit, and NUL is refused);
 * research, when given, is appended to the LAST user message as fenced, untrusted reference material.
 *
 * Model rules (SPEC 4.4, 16.1 item 15): level -> model through a map the caller may override; for
 * "reasoning models" the sampling fields they reject are omitted and max_tokens is sent as
 * max_completion_tokens.
 *
 * NB: every json_t returned here is owned by the pool passed in (pe_json_bind); callers never decref.
 */
#ifndef PE_ENHANCE_H
#define PE_ENHANCE_H

#include <apr_pools.h>
#include <apr_tables.h>
#include <jansson.h>

/** Prompt-engineering style (r_type). PE_RTYPE_NONE: no system prompt is added. */
typedef enum pe_rtype_t {
    PE_RTYPE_NONE = 0,
    PE_RTYPE_BPE,
    PE_RTYPE_BCOT,
    PE_RTYPE_HCOT,
    PE_RTYPE_REACT,
    PE_RTYPE_TOT,
    PE_RTYPE_CUSTOM
} pe_rtype_t;

/** Service level; selects the upstream model. */
typedef enum pe_level_t { PE_LEVEL_LOW = 0, PE_LEVEL_MEDIUM, PE_LEVEL_HIGH, PE_LEVEL_ULTRA } pe_level_t;
#define PE_LEVEL_COUNT 4

/** Research depth (also in pe_topics.h: either header may come first). */
#ifndef PE_DEPTH_T_DEFINED
#define PE_DEPTH_T_DEFINED
typedef enum pe_depth_t { PE_DEPTH_BASIC = 0, PE_DEPTH_MEDIUM, PE_DEPTH_HIGH } pe_depth_t;
#endif

/** Default temperature of /v1/prompt/completions when the field is absent (SPEC 4.1). */
#define PE_ENHANCE_DEFAULT_TEMPERATURE 0.7
/** Default longest message content, in characters (code points), when the conf leaves it 0. */
#define PE_ENHANCE_MAX_MESSAGE_CHARS 50000
/** Default largest max_tokens / max_completion_tokens accepted, when the conf leaves it 0. */
#define PE_ENHANCE_MAX_TOKENS 128000
/** Default largest `n` accepted on the chat route, when the conf leaves it 0. */
#define PE_ENHANCE_MAX_N 1

/**
 * What the glue fills from directives. A NULL conf, a NULL model entry or a 0 limit means the default.
 */
typedef struct pe_enhance_conf_t {
    /** Upstream model per level; defaults gpt-4o-mini, gpt-4o, o3-mini, gpt-5. */
    const char *models[PE_LEVEL_COUNT];
    /**
     * Reasoning-model names (const char *). NULL: the defaults o1, o3-mini, o3, o4-mini, gpt-5;
     * an empty array: no model is treated as a reasoning model. A name matches a model equal to it or
     * starting with it followed by '-', '.' or ':' ("o3" matches "o3-mini-2025-01-31"), compared
     * case-insensitively after any "provider/" prefix of the model.
     */
    const apr_array_header_t *reasoning_models;
    /** Longest content of one message in characters (0: PE_ENHANCE_MAX_MESSAGE_CHARS). */
    apr_size_t max_message_chars;
    /** Largest max_tokens / max_completion_tokens (0: PE_ENHANCE_MAX_TOKENS). */
    long max_tokens;
    /** Largest `n` on the chat route (0: PE_ENHANCE_MAX_N). */
    long max_n;
} pe_enhance_conf_t;

/** A validated completion request, ready for pe_enhance_build(). */
typedef struct pe_enhance_req_t {
    pe_level_t level;   /**< resolved level */
    const char *model;  /**< upstream model for that level (or as the chat route named it) */
    pe_rtype_t rtype;   /**< PE_RTYPE_NONE when absent or null */
    int ai_research;    /**< run research before building (the glue does it) */
    pe_depth_t depth;   /**< research depth */
    int stream;         /**< client asked for a streamed (SSE) answer */
    json_t *messages;   /**< the client's messages (array), validated, never modified; owned by the pool */
    json_t *params;     /**< validated optional upstream fields, nulls dropped (object); owned by the pool */
} pe_enhance_req_t;

/**
 * The system prompt pe_enhance_build() puts first: stored (when not empty), else the built-in text
 * of the r_type; NULL for no r_type, and for custom without a stored prompt (build answers 422).
 */
const char *pe_enhance_system_prompt(pe_rtype_t t, const char *stored);

/** The 422 message when r_type custom has no stored prompt. */
#define PE_ENHANCE_NO_CUSTOM_PROMPT "r_type custom needs a custom system prompt, and none is configured"

/** One research result to append (SPEC 4.3): all of it is untrusted text. */
typedef struct pe_enhance_research_t {
    const char *topic;          /**< may be NULL */
    const char *content;        /**< the research text */
    const char *const *sources; /**< source URLs; at most 3 are shown */
    int nsources;
} pe_enhance_research_t;

/** Name of an r_type ("bpe"...; "" for none). */
const char *pe_enhance_rtype_name(pe_rtype_t t);

/**
 * Parse an r_type name (exact, lower case).
 * @return 0 and *out set, or -1 for an unknown name
 */
int pe_enhance_rtype_parse(const char *s, pe_rtype_t *out);

/** Name of a level ("low"...), or "" when out of range. */
const char *pe_enhance_level_name(pe_level_t l);

/** Parse a level name; 0 or -1. */
int pe_enhance_level_parse(const char *s, pe_level_t *out);

/** Name of a depth ("basic"...), or "" when out of range. */
const char *pe_enhance_depth_name(pe_depth_t d);

/** Parse a depth name; 0 or -1. */
int pe_enhance_depth_parse(const char *s, pe_depth_t *out);

/**
 * The built-in system prompt of an r_type (static text).
 * @return NULL for PE_RTYPE_NONE and PE_RTYPE_CUSTOM
 */
const char *pe_enhance_builtin_prompt(pe_rtype_t t);

/**
 * Upstream model of a level: the conf's entry when set, else the default.
 * @param conf may be NULL
 */
const char *pe_enhance_level_model(const pe_enhance_conf_t *conf, pe_level_t level);

/**
 * Whether a model is a reasoning model (see pe_enhance_conf_t.reasoning_models).
 * @param conf may be NULL (default list)
 */
int pe_enhance_is_reasoning_model(const pe_enhance_conf_t *conf, const char *model);

/**
 * Validate a /v1/prompt/completions body (SPEC 4.1): level (required), either messages (roles
 * system/user/assistant, string content) or prompt (one user message), r_type, ai_research,
 * research_depth, temperature (default 0.7), max_tokens, top_p, frequency_penalty,
 * presence_penalty, stop, stream. Other fields are ignored.
 * @param conf may be NULL
 * @param body the parsed request; only read (references are taken, nothing is changed)
 * @param req  filled on success; its json members are owned by p
 * @param err  on failure a precise message in p, naming the field
 * @return 0, 400 (empty messages/prompt) or 422 (any other invalid field)
 */
int pe_enhance_parse_prompt(apr_pool_t *p, const pe_enhance_conf_t *conf, const json_t *body,
                            pe_enhance_req_t *req, const char **err);

/**
 * Validate a standard OpenAI chat.completions body (/v1/chat/completions) plus an optional
 * `pe` object {r_type, ai_research, research_depth, level}. The model is pe.level's model, or
 * `model` when that is a level name or one of the configured level models (anything else: 422).
 * Standard fields are checked (types, OpenAI ranges) and passed through; `user`, `store`,
 * `metadata` and `service_tier` are dropped; unknown fields are ignored; no temperature default.
 * Message roles: system, developer, user, assistant, tool, function; content a string, an array of
 * parts, or null where OpenAI allows it.
 * @return 0, 400 (empty messages) or 422, as pe_enhance_parse_prompt()
 */
int pe_enhance_parse_chat(apr_pool_t *p, const pe_enhance_conf_t *conf, const json_t *body,
                          pe_enhance_req_t *req, const char **err);

/**
 * The text research should be run on: the content of the last user message (text parts joined
 * with "\n" for array content).
 * @return a string owned by req's pool or p, or NULL when there is no user message with text
 */
const char *pe_enhance_research_query(apr_pool_t *p, const pe_enhance_req_t *req);

/**
 * Convert a research response of the SPEC 5.1 shape {results:[{topic, content, sources[]}]} into
 * results for pe_enhance_build(). Results without non-empty string content are skipped, as are
 * sources that are not strings.
 * @param out array in p (NULL when *n is 0)
 * @return 0, or -1 when resp has no `results` array
 */
int pe_enhance_research_from_json(apr_pool_t *p, const json_t *resp, pe_enhance_research_t **out, int *n);

/**
 * Append research to a user's text: the text unchanged, then a labelled block that fences the
 * research (topics, content, at most 3 sources each) so that nothing inside can close the fence,
 * and marks it as untrusted reference material, not instructions.
 * @return text itself when n is 0 or no result has content, else a new string in p
 */
const char *pe_enhance_research_append(apr_pool_t *p, const char *text, const pe_enhance_research_t *res,
                                       int n);

/**
 * Build the upstream chat.completions body: {model, messages, ...params} with the r_type prompt
 * first, research appended to the last user message, null fields omitted, the reasoning-model rules
 * applied (pe_enhance_apply_model_rules()), and stream:true + stream_options.include_usage:true
 * when req->stream.
 * @param system_prompt the store's prompt for req->rtype: required for PE_RTYPE_CUSTOM, an override
 *                      of the built-in text for the others when non-NULL and non-empty; ignored for
 *                      PE_RTYPE_NONE
 * @param res,nres      research results (may be NULL/0)
 * @param out           the body, owned by p
 * @param err           on failure a precise message in p
 * @return 0, or 422 when r_type is custom and no custom prompt is available
 */
int pe_enhance_build(apr_pool_t *p, const pe_enhance_conf_t *conf, const pe_enhance_req_t *req,
                     const char *system_prompt, const pe_enhance_research_t *res, int nres, json_t **out,
                     const char **err);

/**
 * The upstream body as compact JSON text, the same value pe_enhance_build() gives, made without
 * encoding the system prompt each time: a built-in prompt is encoded once per process and put in
 * place in the dump of the rest of the body.
 * @param text out: the body in p (NUL-terminated), *len bytes
 * @return as pe_enhance_build()
 */
int pe_enhance_build_text(apr_pool_t *p, const pe_enhance_conf_t *conf, const pe_enhance_req_t *req,
                          const char *system_prompt, const pe_enhance_research_t *res, int nres, const char **text,
                          apr_size_t *len, const char **err);

/**
 * Apply the reasoning-model rules to an upstream body in place: when body.model is a reasoning
 * model, drop temperature, top_p, presence_penalty, frequency_penalty, logprobs, top_logprobs and
 * logit_bias, and send max_tokens as max_completion_tokens (an explicit max_completion_tokens
 * wins). Other models are left unchanged. Also used for research sub-calls.
 * @param body an object the caller owns
 */
void pe_enhance_apply_model_rules(const pe_enhance_conf_t *conf, json_t *body);

/**
 * A minimal upstream body for internal calls (research, health probes): one optional system
 * message, one user message, temperature (< 0: omitted) and max_tokens (<= 0: omitted), with the
 * model rules applied.
 * @return an object owned by p, or NULL when a string is not valid UTF-8
 */
json_t *pe_enhance_simple_body(apr_pool_t *p, const pe_enhance_conf_t *conf, const char *model,
                               const char *system_text, const char *user_text, double temperature,
                               long max_tokens);

#endif
