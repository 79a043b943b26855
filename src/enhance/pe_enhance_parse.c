/*
 * pe_enhance_parse.c: validation of the two completion request shapes into a pe_enhance_req_t.
 *
 * Every failure names the field (messages[2].role, pe.level, top_p...) and the rule it broke, so
 * the 400/422 body tells the client exactly what to fix. Nothing in the client's body is changed:
 * the request keeps new arrays/objects that reference the client's (immutable) values.
 */
#include "pe_enhance.h"
#include "pe_valid.h"
#include "pe_json.h"

#include <apr_strings.h>
#include <string.h>

#define PE_STATUS_BAD_REQUEST 400
#define PE_STATUS_UNPROCESSABLE 422

/* How one optional upstream field is checked. */
typedef enum pe_fkind_t {
    PE_FK_NUMBER, /* number within [min, max] */
    PE_FK_INT,    /* integer within [min, max]; max replaced by a conf cap when `cap` is set */
    PE_FK_ANYINT, /* any integer */
    PE_FK_BOOL,
    PE_FK_OBJECT,
    PE_FK_ARRAY,  /* array of objects */
    PE_FK_STOP,   /* string or array of at most 4 strings */
    PE_FK_STROBJ, /* string or object */
    PE_FK_ENUM,   /* one of enums[] */
    PE_FK_BIAS    /* object of numbers within [min, max] */
} pe_fkind_t;

#define PE_CAP_NONE 0
#define PE_CAP_TOKENS 1
#define PE_CAP_N 2

typedef struct pe_field_t {
    const char *name;
    pe_fkind_t kind;
    double min, max;
    int cap;
    const char *const *enums;
} pe_field_t;

static const char *const pe_effort_values[] = {"minimal", "low", "medium", "high", NULL};
static const char *const pe_verbosity_values[] = {"low", "medium", "high", NULL};

/* Fields of /v1/prompt/completions besides the PE ones (SPEC 4.1). */
static const pe_field_t pe_prompt_fields[] = {
    {"temperature", PE_FK_NUMBER, 0, 2, PE_CAP_NONE, NULL},
    {"max_tokens", PE_FK_INT, 1, 0, PE_CAP_TOKENS, NULL},
    {"top_p", PE_FK_NUMBER, 0, 1, PE_CAP_NONE, NULL},
    {"frequency_penalty", PE_FK_NUMBER, -2, 2, PE_CAP_NONE, NULL},
    {"presence_penalty", PE_FK_NUMBER, -2, 2, PE_CAP_NONE, NULL},
    {"stop", PE_FK_STOP, 0, 0, PE_CAP_NONE, NULL},
};

/* Standard OpenAI chat.completions fields passed through on /v1/chat/completions. */
static const pe_field_t pe_chat_fields[] = {
    {"temperature", PE_FK_NUMBER, 0, 2, PE_CAP_NONE, NULL},
    {"max_tokens", PE_FK_INT, 1, 0, PE_CAP_TOKENS, NULL},
    {"max_completion_tokens", PE_FK_INT, 1, 0, PE_CAP_TOKENS, NULL},
    {"top_p", PE_FK_NUMBER, 0, 1, PE_CAP_NONE, NULL},
    {"frequency_penalty", PE_FK_NUMBER, -2, 2, PE_CAP_NONE, NULL},
    {"presence_penalty", PE_FK_NUMBER, -2, 2, PE_CAP_NONE, NULL},
    {"stop", PE_FK_STOP, 0, 0, PE_CAP_NONE, NULL},
    {"n", PE_FK_INT, 1, 0, PE_CAP_N, NULL},
    {"seed", PE_FK_ANYINT, 0, 0, PE_CAP_NONE, NULL},
    {"logit_bias", PE_FK_BIAS, -100, 100, PE_CAP_NONE, NULL},
    {"logprobs", PE_FK_BOOL, 0, 0, PE_CAP_NONE, NULL},
    {"top_logprobs", PE_FK_INT, 0, 20, PE_CAP_NONE, NULL},
    {"response_format", PE_FK_OBJECT, 0, 0, PE_CAP_NONE, NULL},
    {"tools", PE_FK_ARRAY, 0, 0, PE_CAP_NONE, NULL},
    {"tool_choice", PE_FK_STROBJ, 0, 0, PE_CAP_NONE, NULL},
    {"parallel_tool_calls", PE_FK_BOOL, 0, 0, PE_CAP_NONE, NULL},
    {"functions", PE_FK_ARRAY, 0, 0, PE_CAP_NONE, NULL},
    {"function_call", PE_FK_STROBJ, 0, 0, PE_CAP_NONE, NULL},
    {"reasoning_effort", PE_FK_ENUM, 0, 0, PE_CAP_NONE, pe_effort_values},
    {"verbosity", PE_FK_ENUM, 0, 0, PE_CAP_NONE, pe_verbosity_values},
};

#define PE_NFIELDS(a) ((int)(sizeof(a) / sizeof((a)[0])))

static const char pe_rtype_list[] = "bpe, bcot, hcot, react, tot, custom";
static const char pe_level_list[] = "low, medium, high, ultra";
static const char pe_depth_list[] = "basic, medium, high";

/* Message keys kept per route (anything else a client puts in a message is not forwarded). */
static const char *const pe_prompt_msg_keys[] = {"role", "content", NULL};
static const char *const pe_chat_msg_keys[] = {"role", "content", "name", "tool_calls", "tool_call_id",
                                               "function_call", NULL};

/* A short, safe quotation of a client string for an error message, or NULL when unsuitable. */
static const char *pe_quote(apr_pool_t *p, const json_t *v)
{
    const char *s;
    size_t i, n;

    if (!json_is_string(v))
        return NULL;
    s = json_string_value(v);
    n = json_string_length(v);
    if (n == 0 || n > 40)
        return NULL;
    for (i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] > 0x7e || s[i] == '"' || s[i] == '\\')
            return NULL;
    return apr_psprintf(p, " \"%s\"", s);
}

/* Number of UTF-8 code points in s[0..n) (jansson strings are valid UTF-8). */
static apr_size_t pe_utf8_chars(const char *s, size_t n)
{
    apr_size_t c = 0;
    size_t i;

    for (i = 0; i < n; i++)
        if (((unsigned char)s[i] & 0xc0) != 0x80)
            c++;
    return c;
}

/* Longest message content in characters. */
static apr_size_t pe_max_chars(const pe_enhance_conf_t *conf)
{
    return conf && conf->max_message_chars ? conf->max_message_chars : PE_ENHANCE_MAX_MESSAGE_CHARS;
}

/* Largest max_tokens / max_completion_tokens. */
static long pe_max_tokens(const pe_enhance_conf_t *conf)
{
    return conf && conf->max_tokens > 0 ? conf->max_tokens : PE_ENHANCE_MAX_TOKENS;
}

/* Largest n on the chat route. */
static long pe_max_n(const pe_enhance_conf_t *conf)
{
    return conf && conf->max_n > 0 ? conf->max_n : PE_ENHANCE_MAX_N;
}

/*
 * Check a text value: no NUL, at most the configured number of characters. The field is named
 * "prompt" (msg < 0), "messages[msg].content" (part < 0) or "messages[msg].content[part].text".
 */
static int pe_check_text(apr_pool_t *p, const pe_enhance_conf_t *conf, const json_t *v, long msg, long part,
                         const char **err)
{
    const char *s = json_string_value(v);
    size_t n = json_string_length(v);
    apr_size_t max = pe_max_chars(conf);
    const char *what, *why;

    if (memchr(s, '\0', n))
        why = "must not contain NUL characters";
    else if (n > max && pe_utf8_chars(s, n) > max)
        why = apr_psprintf(p, "is longer than %" APR_SIZE_T_FMT " characters", max);
    else
        return 0;
    if (msg < 0)
        what = "prompt";
    else if (part < 0)
        what = apr_psprintf(p, "messages[%ld].content", msg);
    else
        what = apr_psprintf(p, "messages[%ld].content[%ld].text", msg, part);
    *err = apr_pstrcat(p, what, " ", why, NULL);
    return -1;
}

/* Check one optional field; on success a non-null value is added to params. */
static int pe_check_field(apr_pool_t *p, const pe_enhance_conf_t *conf, const pe_field_t *f, const json_t *v,
                          json_t *params, const char **err)
{
    double max = f->max;
    size_t i;
    json_t *e;

    if (!v || json_is_null(v))
        return 0;
    if (f->cap == PE_CAP_TOKENS)
        max = (double)pe_max_tokens(conf);
    else if (f->cap == PE_CAP_N)
        max = (double)pe_max_n(conf);

    switch (f->kind) {
    case PE_FK_NUMBER:
        if (!json_is_number(v) || json_number_value(v) < f->min || json_number_value(v) > max)
            goto range;
        break;
    case PE_FK_INT:
        if (!json_is_integer(v) || (double)json_integer_value(v) < f->min || (double)json_integer_value(v) > max)
            goto range;
        break;
    case PE_FK_ANYINT:
        if (!json_is_integer(v)) {
            *err = apr_psprintf(p, "%s must be an integer", f->name);
            return -1;
        }
        break;
    case PE_FK_BOOL:
        if (!json_is_boolean(v)) {
            *err = apr_psprintf(p, "%s must be true or false", f->name);
            return -1;
        }
        break;
    case PE_FK_OBJECT:
        if (!json_is_object(v)) {
            *err = apr_psprintf(p, "%s must be an object", f->name);
            return -1;
        }
        break;
    case PE_FK_ARRAY:
        if (!json_is_array(v))
            goto array;
        json_array_foreach(v, i, e) {
            if (!json_is_object(e))
                goto array;
        }
        break;
    case PE_FK_STOP:
        if (json_is_string(v))
            break;
        if (!json_is_array(v) || json_array_size(v) > 4)
            goto stop;
        json_array_foreach(v, i, e) {
            if (!json_is_string(e))
                goto stop;
        }
        break;
    case PE_FK_STROBJ:
        if (!json_is_string(v) && !json_is_object(v)) {
            *err = apr_psprintf(p, "%s must be a string or an object", f->name);
            return -1;
        }
        break;
    case PE_FK_ENUM:
        for (i = 0; json_is_string(v) && f->enums[i]; i++)
            if (strcmp(json_string_value(v), f->enums[i]) == 0)
                break;
        if (!json_is_string(v) || !f->enums[i]) {
            const char *list = f->enums[0];

            for (i = 1; f->enums[i]; i++)
                list = apr_pstrcat(p, list, ", ", f->enums[i], NULL);
            *err = apr_psprintf(p, "%s must be one of %s", f->name, list);
            return -1;
        }
        break;
    case PE_FK_BIAS: {
        const char *k;
        json_t *bv;

        if (!json_is_object(v))
            goto bias;
        json_object_foreach((json_t *)v, k, bv) {
            if (!json_is_number(bv) || json_number_value(bv) < f->min || json_number_value(bv) > f->max)
                goto bias;
        }
        break;
    }
    }
    json_object_set(params, f->name, (json_t *)v);
    return 0;

range:
    *err = apr_psprintf(p, "%s must be %s between %.15g and %.15g", f->name,
                        f->kind == PE_FK_INT ? "an integer" : "a number", f->min, max);
    return -1;
array:
    *err = apr_psprintf(p, "%s must be an array of objects", f->name);
    return -1;
stop:
    *err = apr_psprintf(p, "%s must be a string or an array of at most 4 strings", f->name);
    return -1;
bias:
    *err = apr_psprintf(p, "%s must map token ids to numbers between %.15g and %.15g", f->name, f->min, f->max);
    return -1;
}

/* Check the optional fields of a table. */
static int pe_check_fields(apr_pool_t *p, const pe_enhance_conf_t *conf, const pe_field_t *fields, int n,
                           const json_t *body, json_t *params, const char **err)
{
    int i;

    for (i = 0; i < n; i++)
        if (pe_check_field(p, conf, &fields[i], json_object_get(body, fields[i].name), params, err) < 0)
            return -1;
    return 0;
}

/* The PE options (r_type, ai_research, research_depth, level) from obj; *have_level says if level was given. */
static int pe_check_options(apr_pool_t *p, const json_t *obj, const char *prefix, pe_enhance_req_t *req,
                            int *have_level, const char **err)
{
    json_t *v;

    req->rtype = PE_RTYPE_NONE;
    v = json_object_get(obj, "r_type");
    if (v && !json_is_null(v)) {
        const char *q = pe_quote(p, v);

        if (!json_is_string(v)) {
            *err = apr_psprintf(p, "%sr_type must be a string (one of %s) or null", prefix, pe_rtype_list);
            return -1;
        }
        if (pe_enhance_rtype_parse(json_string_value(v), &req->rtype) < 0) {
            *err = apr_psprintf(p, "unknown %sr_type%s: expected one of %s", prefix, q ? q : "", pe_rtype_list);
            return -1;
        }
    }

    req->ai_research = 0;
    v = json_object_get(obj, "ai_research");
    if (v) {
        if (!json_is_boolean(v)) {
            *err = apr_psprintf(p, "%sai_research must be true or false", prefix);
            return -1;
        }
        req->ai_research = json_is_true(v);
    }

    req->depth = PE_DEPTH_BASIC;
    v = json_object_get(obj, "research_depth");
    if (v && (!json_is_string(v) || pe_enhance_depth_parse(json_string_value(v), &req->depth) < 0)) {
        *err = apr_psprintf(p, "%sresearch_depth must be one of %s", prefix, pe_depth_list);
        return -1;
    }

    *have_level = 0;
    v = json_object_get(obj, "level");
    if (v) {
        if (!json_is_string(v) || pe_enhance_level_parse(json_string_value(v), &req->level) < 0) {
            *err = apr_psprintf(p, "%slevel must be one of %s", prefix, pe_level_list);
            return -1;
        }
        *have_level = 1;
    }
    return 0;
}

/* Check `stream` (bool or null). */
static int pe_check_stream(apr_pool_t *p, const json_t *body, pe_enhance_req_t *req, const char **err)
{
    json_t *v = json_object_get(body, "stream");

    req->stream = 0;
    if (v && !json_is_null(v)) {
        if (!json_is_boolean(v)) {
            *err = "stream must be true or false";
            return -1;
        }
        req->stream = json_is_true(v);
    }
    return 0;
}

/* Is role one of the names in list (NULL-terminated)? */
static int pe_role_in(const char *role, const char *const *list)
{
    int i;

    for (i = 0; list[i]; i++)
        if (strcmp(role, list[i]) == 0)
            return 1;
    return 0;
}

/* Check an array content (chat route): objects with a string `type`; text parts need string `text`. */
static int pe_check_parts(apr_pool_t *p, const pe_enhance_conf_t *conf, const json_t *c, size_t idx,
                          const char **err)
{
    size_t j;
    json_t *part;

    json_array_foreach(c, j, part) {
        const char *type = pe_json_str(part, "type");

        if (!json_is_object(part) || !type) {
            *err = apr_psprintf(p, "messages[%" APR_SIZE_T_FMT "].content[%" APR_SIZE_T_FMT
                                "] must be an object with a string type", idx, j);
            return -1;
        }
        if (strcmp(type, "text") == 0) {
            json_t *t = json_object_get(part, "text");

            if (!json_is_string(t)) {
                *err = apr_psprintf(p, "messages[%" APR_SIZE_T_FMT "].content[%" APR_SIZE_T_FMT
                                    "].text must be a string", idx, j);
                return -1;
            }
            if (pe_check_text(p, conf, t, (long)idx, (long)j, err) < 0)
                return -1;
        }
    }
    return 0;
}

/*
 * Validate messages into a new array of new message objects holding only the route's keys.
 * chat: the OpenAI roles and content shapes; else the SPEC 4.1 subset.
 */
static int pe_check_messages(apr_pool_t *p, const pe_enhance_conf_t *conf, const json_t *msgs, int chat,
                             pe_enhance_req_t *req, const char **err)
{
    static const char *const prompt_roles[] = {"system", "user", "assistant", NULL};
    static const char *const chat_roles[] = {"system", "developer", "user", "assistant", "tool", "function", NULL};
    const char *const *keys = chat ? pe_chat_msg_keys : pe_prompt_msg_keys;
    size_t i;
    json_t *m;

    if (!json_is_array(msgs)) {
        *err = "messages must be an array of {role, content} objects";
        return PE_STATUS_UNPROCESSABLE;
    }
    if (json_array_size(msgs) == 0) {
        *err = "Messages cannot be empty";
        return PE_STATUS_BAD_REQUEST;
    }
    req->messages = pe_json_bind(p, json_array());
    json_array_foreach(msgs, i, m) {
        const char *role = pe_json_str(m, "role");
        json_t *c = json_object_get(m, "content");
        json_t *copy;
        int k;

        if (!json_is_object(m)) {
            *err = apr_psprintf(p, "messages[%" APR_SIZE_T_FMT "] must be an object", i);
            return PE_STATUS_UNPROCESSABLE;
        }
        if (!role || !pe_role_in(role, chat ? chat_roles : prompt_roles)) {
            *err = apr_psprintf(p, "messages[%" APR_SIZE_T_FMT "].role must be one of %s", i,
                                chat ? "system, developer, user, assistant, tool, function"
                                     : "system, user, assistant");
            return PE_STATUS_UNPROCESSABLE;
        }
        if (json_is_string(c)) {
            if (pe_check_text(p, conf, c, (long)i, -1, err) < 0)
                return PE_STATUS_UNPROCESSABLE;
        }
        else if (!chat) {
            *err = apr_psprintf(p, "messages[%" APR_SIZE_T_FMT "].content must be a string", i);
            return PE_STATUS_UNPROCESSABLE;
        }
        else if (json_is_array(c)) {
            if (strcmp(role, "function") == 0) {
                *err = apr_psprintf(p, "messages[%" APR_SIZE_T_FMT "].content must be a string", i);
                return PE_STATUS_UNPROCESSABLE;
            }
            if (pe_check_parts(p, conf, c, i, err) < 0)
                return PE_STATUS_UNPROCESSABLE;
        }
        else if ((c && !json_is_null(c)) || (strcmp(role, "assistant") != 0 && strcmp(role, "function") != 0)) {
            *err = apr_psprintf(p, "messages[%" APR_SIZE_T_FMT "].content must be a string%s", i,
                                strcmp(role, "assistant") == 0 ? ", an array of parts or null"
                                                               : " or an array of parts");
            return PE_STATUS_UNPROCESSABLE;
        }
        if (chat) {
            json_t *v = json_object_get(m, "name");

            if (v && !json_is_string(v)) {
                *err = apr_psprintf(p, "messages[%" APR_SIZE_T_FMT "].name must be a string", i);
                return PE_STATUS_UNPROCESSABLE;
            }
            v = json_object_get(m, "tool_calls");
            if (v && !json_is_null(v) && (!json_is_array(v) || strcmp(role, "assistant") != 0)) {
                *err = apr_psprintf(p, "messages[%" APR_SIZE_T_FMT "].tool_calls must be an array on an "
                                    "assistant message", i);
                return PE_STATUS_UNPROCESSABLE;
            }
            if (strcmp(role, "tool") == 0 && !pe_json_str(m, "tool_call_id")) {
                *err = apr_psprintf(p, "messages[%" APR_SIZE_T_FMT "].tool_call_id must be a string", i);
                return PE_STATUS_UNPROCESSABLE;
            }
            if (strcmp(role, "function") == 0 && !pe_json_str(m, "name")) {
                *err = apr_psprintf(p, "messages[%" APR_SIZE_T_FMT "].name must be a string", i);
                return PE_STATUS_UNPROCESSABLE;
            }
        }
        copy = json_object();
        for (k = 0; keys[k]; k++) {
            json_t *v = json_object_get(m, keys[k]);
            if (v && !json_is_null(v))
                json_object_set(copy, keys[k], v);
        }
        json_array_append_new(req->messages, copy);
    }
    return 0;
}

/* Common start: the body must be an object; req reset. */
static int pe_parse_begin(apr_pool_t *p, const json_t *body, pe_enhance_req_t *req, const char **err)
{
    memset(req, 0, sizeof(*req));
    *err = NULL;
    if (!json_is_object(body)) {
        *err = "request body must be a JSON object";
        return -1;
    }
    req->params = pe_json_object(p);
    return 0;
}

/* Every member /v1/prompt/completions accepts; another one is a 422 (docs/api.md). */
static const char *const pe_prompt_keys[] = {"level",       "messages",    "prompt", "r_type",
                                             "ai_research", "research_depth", "stream", "temperature",
                                             "max_tokens",  "top_p",       "frequency_penalty", "presence_penalty",
                                             "stop",        NULL};

/* /v1/prompt/completions. */
int pe_enhance_parse_prompt(apr_pool_t *p, const pe_enhance_conf_t *conf, const json_t *body,
                            pe_enhance_req_t *req, const char **err)
{
    json_t *msgs, *prompt, *t;
    const char *unknown;
    int have_level, rc;

    if (pe_parse_begin(p, body, req, err) < 0)
        return PE_STATUS_UNPROCESSABLE;
    if ((unknown = pe_valid_unknown(p, body, pe_prompt_keys)) != NULL) {
        *err = apr_psprintf(p, "unknown field %s: expected level, messages or prompt, r_type, ai_research, "
                            "research_depth, stream, temperature, max_tokens, top_p, frequency_penalty, "
                            "presence_penalty, stop", unknown);
        return PE_STATUS_UNPROCESSABLE;
    }
    if (!json_object_get(body, "level")) {
        *err = apr_psprintf(p, "level is required: one of %s", pe_level_list);
        return PE_STATUS_UNPROCESSABLE;
    }
    if (pe_check_options(p, body, "", req, &have_level, err) < 0)
        return PE_STATUS_UNPROCESSABLE;
    req->model = pe_enhance_level_model(conf, req->level);

    msgs = json_object_get(body, "messages");
    prompt = json_object_get(body, "prompt");
    if (msgs && prompt) {
        *err = "give either prompt or messages, not both";
        return PE_STATUS_UNPROCESSABLE;
    }
    if (prompt) {
        json_t *m;

        if (!json_is_string(prompt)) {
            *err = "prompt must be a string";
            return PE_STATUS_UNPROCESSABLE;
        }
        if (json_string_length(prompt) == 0) {
            *err = "Prompt cannot be empty";
            return PE_STATUS_BAD_REQUEST;
        }
        if (pe_check_text(p, conf, prompt, -1, -1, err) < 0)
            return PE_STATUS_UNPROCESSABLE;
        m = json_pack("{s:s,s:O}", "role", "user", "content", prompt);
        req->messages = pe_json_bind(p, json_array());
        json_array_append_new(req->messages, m);
    }
    else if (!msgs) {
        *err = "messages is required (or give prompt)";
        return PE_STATUS_UNPROCESSABLE;
    }
    else if ((rc = pe_check_messages(p, conf, msgs, 0, req, err)) != 0) {
        return rc;
    }

    if (pe_check_stream(p, body, req, err) < 0)
        return PE_STATUS_UNPROCESSABLE;
    if (pe_check_fields(p, conf, pe_prompt_fields, PE_NFIELDS(pe_prompt_fields), body, req->params, err) < 0)
        return PE_STATUS_UNPROCESSABLE;
    /* SPEC 4.1: temperature defaults to 0.7 when absent; an explicit null omits it. */
    t = json_object_get(body, "temperature");
    if (!t)
        json_object_set_new(req->params, "temperature", json_real(PE_ENHANCE_DEFAULT_TEMPERATURE));
    return 0;
}

/* Is model one of the level models? Sets *level to the first level using it. */
static int pe_model_allowed(const pe_enhance_conf_t *conf, const char *model, pe_level_t *level)
{
    int i;

    for (i = 0; i < PE_LEVEL_COUNT; i++)
        if (strcmp(model, pe_enhance_level_model(conf, (pe_level_t)i)) == 0) {
            *level = (pe_level_t)i;
            return 1;
        }
    return 0;
}

/* /v1/chat/completions (standard OpenAI body plus optional `pe`). */
int pe_enhance_parse_chat(apr_pool_t *p, const pe_enhance_conf_t *conf, const json_t *body,
                          pe_enhance_req_t *req, const char **err)
{
    static const char *const pe_keys[] = {"r_type", "ai_research", "research_depth", "level", NULL};
    json_t *pe, *model, *so;
    int have_level = 0, rc;

    if (pe_parse_begin(p, body, req, err) < 0)
        return PE_STATUS_UNPROCESSABLE;

    pe = json_object_get(body, "pe");
    if (pe && !json_is_null(pe)) {
        const char *k;
        json_t *v;

        if (!json_is_object(pe)) {
            *err = "pe must be an object {r_type, ai_research, research_depth, level} or null";
            return PE_STATUS_UNPROCESSABLE;
        }
        json_object_foreach(pe, k, v) {
            if (!pe_role_in(k, pe_keys)) {
                json_t *ks = json_string(k);
                const char *q = ks ? pe_quote(p, ks) : NULL;

                json_decref(ks);
                *err = apr_psprintf(p, "pe has an unknown field%s: expected r_type, ai_research, research_depth, "
                                    "level", q ? q : "");
                return PE_STATUS_UNPROCESSABLE;
            }
        }
        if (pe_check_options(p, pe, "pe.", req, &have_level, err) < 0)
            return PE_STATUS_UNPROCESSABLE;
    }

    /* pe.level decides the model; otherwise `model` must be a level or one of the level models. */
    model = json_object_get(body, "model");
    if (have_level) {
        req->model = pe_enhance_level_model(conf, req->level);
    }
    else if (!json_is_string(model)) {
        *err = "model is required (a level low, medium, high, ultra or one of the level models), or give pe.level";
        return PE_STATUS_UNPROCESSABLE;
    }
    else if (pe_enhance_level_parse(json_string_value(model), &req->level) == 0) {
        req->model = pe_enhance_level_model(conf, req->level);
    }
    else if (pe_model_allowed(conf, json_string_value(model), &req->level)) {
        req->model = pe_enhance_level_model(conf, req->level);
    }
    else {
        const char *q = pe_quote(p, model);

        *err = apr_psprintf(p, "model%s is not available: use one of %s, %s, %s, %s or a level (%s)", q ? q : "",
                            pe_enhance_level_model(conf, PE_LEVEL_LOW), pe_enhance_level_model(conf, PE_LEVEL_MEDIUM),
                            pe_enhance_level_model(conf, PE_LEVEL_HIGH), pe_enhance_level_model(conf, PE_LEVEL_ULTRA),
                            pe_level_list);
        return PE_STATUS_UNPROCESSABLE;
    }

    if (!json_object_get(body, "messages")) {
        *err = "messages is required";
        return PE_STATUS_UNPROCESSABLE;
    }
    if ((rc = pe_check_messages(p, conf, json_object_get(body, "messages"), 1, req, err)) != 0)
        return rc;
    if (pe_check_stream(p, body, req, err) < 0)
        return PE_STATUS_UNPROCESSABLE;
    so = json_object_get(body, "stream_options");
    if (so && !json_is_null(so) && !json_is_object(so)) {
        *err = "stream_options must be an object or null";
        return PE_STATUS_UNPROCESSABLE;
    }
    if (pe_check_fields(p, conf, pe_chat_fields, PE_NFIELDS(pe_chat_fields), body, req->params, err) < 0)
        return PE_STATUS_UNPROCESSABLE;
    return 0;
}
