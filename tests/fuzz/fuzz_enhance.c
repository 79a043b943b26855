/*
 * fuzz_enhance.c: the completion request parsers (pe_enhance_parse_prompt for /v1/prompt/completions,
 * pe_enhance_parse_chat for /v1/chat/completions) and what the pipeline does with an accepted
 * request: the research query, research appended from a SPEC 5.1 `results` array, and the upstream
 * body (pe_enhance_build). The input is a request body; a `results` member, which both routes
 * ignore, doubles as the research answer. The raw bytes are also used as untrusted research text.
 *
 * Properties: each parser answers 0, 400 or 422, with a message when it refuses; an accepted
 * request has a model and a non-empty messages array; the upstream body is valid JSON carrying
 * that model; the research block is valid UTF-8 and no text inside it can close its fence.
 */
#include "pe_fuzz.h"

#include "pe_enhance.h"
#include "pe_json.h"

/* The research block after the user's text: its fence is longer than any backtick run inside. */
static void fuzz_check_fence(const char *all, const char *text)
{
    size_t tl = strlen(text), f, run;
    const char *o, *s;

    PE_FUZZ_CHECK(strncmp(all, text, tl) == 0);
    PE_FUZZ_CHECK(pe_fuzz_utf8_ok((const unsigned char *)all + tl, strlen(all + tl)));
    o = strstr(all + tl, "\n\n`"); /* the label holds no backtick: this is the opening fence */
    PE_FUZZ_CHECK(o != NULL);
    o += 2;
    f = strspn(o, "`");
    PE_FUZZ_CHECK(f >= 3 && strncmp(o + f, "text\n", 5) == 0);
    /* the first run of f or more backticks after the opening one is the closing fence */
    for (s = o + f + 5; *s; s += run ? run : 1) {
        run = strspn(s, "`");
        if (run >= f)
            break;
    }
    PE_FUZZ_CHECK(run == f && s[-1] == '\n' && strncmp(s + f, "\n\n", 2) == 0);
    PE_FUZZ_CHECK(strchr(s + f, '`') == NULL);
}

/* Raw bytes as research text, topic and source: the block must still be clean. */
static void fuzz_raw_research(apr_pool_t *p, const uint8_t *data, size_t size)
{
    const char *raw = pe_fuzz_cstr(p, data, size);
    const char *sources[] = {raw, "https://example.org/a", raw, raw};
    pe_enhance_research_t res[2] = {{raw, raw, sources, 4}, {NULL, "second result", NULL, 0}};
    const char *all = pe_enhance_research_append(p, "What changed?", res, 2);

    fuzz_check_fence(all, "What changed?");
}

/* An accepted request through the rest of the pipeline. */
static void fuzz_accepted(apr_pool_t *p, const pe_enhance_conf_t *conf, const json_t *body,
                          const pe_enhance_req_t *req)
{
    pe_enhance_research_t *res = NULL;
    const char *query, *err = NULL, *text;
    json_t *out, *back;
    int nres = 0, rc;
    size_t n;

    PE_FUZZ_CHECK(req->model && *req->model);
    PE_FUZZ_CHECK(json_is_array(req->messages) && json_array_size(req->messages) > 0);
    PE_FUZZ_CHECK(json_is_object(req->params));
    query = pe_enhance_research_query(p, req);
    if (query)
        PE_FUZZ_CHECK(pe_fuzz_utf8_ok((const unsigned char *)query, strlen(query)));

    if (pe_enhance_research_from_json(p, body, &res, &nres) == 0 && nres > 0 && query) {
        const char *all = pe_enhance_research_append(p, query, res, nres);

        if (all != query)
            fuzz_check_fence(all, query);
    }

    rc = pe_enhance_build(p, conf, req, req->rtype == PE_RTYPE_CUSTOM ? "Answer as a custom assistant." : NULL, res,
                          nres, &out, &err);
    PE_FUZZ_CHECK(rc == 0);
    PE_FUZZ_CHECK(json_is_object(out) && json_is_array(json_object_get(out, "messages")));
    PE_FUZZ_CHECK(pe_json_str(out, "model") && strcmp(pe_json_str(out, "model"), req->model) == 0);
    text = pe_json_dump(p, out, &n);
    PE_FUZZ_CHECK(pe_json_parse(p, text, n, &back, &err) == 0 && json_equal(out, back));
    /* no custom prompt: the request is refused, not sent without one */
    if (req->rtype == PE_RTYPE_CUSTOM)
        PE_FUZZ_CHECK(pe_enhance_build(p, conf, req, NULL, NULL, 0, &out, &err) == 422 && err);
}

/* One route with one configuration. */
static void fuzz_route(apr_pool_t *p, const pe_enhance_conf_t *conf, const json_t *body, int chat)
{
    pe_enhance_req_t req;
    const char *err = NULL;
    int rc = chat ? pe_enhance_parse_chat(p, conf, body, &req, &err)
                  : pe_enhance_parse_prompt(p, conf, body, &req, &err);

    PE_FUZZ_CHECK(rc == 0 || rc == 400 || rc == 422);
    if (rc != 0) {
        PE_FUZZ_CHECK(err && *err);
        return;
    }
    fuzz_accepted(p, conf, body, &req);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const reasoning[] = {"gpt-4o"};
    apr_pool_t *p = pe_fuzz_pool();
    apr_array_header_t *names = apr_array_make(p, 1, sizeof(const char *));
    pe_enhance_conf_t small;
    const char *err;
    json_t *body;

    /* defaults, and a configuration with tight limits where gpt-4o counts as a reasoning model */
    memset(&small, 0, sizeof(small));
    small.models[PE_LEVEL_LOW] = "small-model";
    APR_ARRAY_PUSH(names, const char *) = reasoning[0];
    small.reasoning_models = names;
    small.max_message_chars = 24;
    small.max_tokens = 64;
    small.max_n = 3;

    fuzz_raw_research(p, data, size);
    if (pe_json_parse(p, (const char *)data, size, &body, &err) == 0) {
        fuzz_route(p, NULL, body, 0);
        fuzz_route(p, NULL, body, 1);
        fuzz_route(p, &small, body, 0);
        fuzz_route(p, &small, body, 1);
    }
    pe_fuzz_done(p);
    return 0;
}
