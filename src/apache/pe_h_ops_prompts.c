/*
 * pe_h_ops_prompts.c: the system prompts (group `admin`, SPEC 10.4 with 16.1 item 18): the text
 * of every r_type (stored override or built-in; `custom` has no built-in), setting one, and
 * resetting one to its built-in. The completion routes read stored prompts through a
 * per-process cache (PESystemPromptRefresh): a change reaches every process within that time.
 */
#include "pe_account_ap.h"
#include "pe_auth.h"
#include "pe_enhance.h"
#include "pe_handlers.h"
#include "pe_http.h"

#include "http_protocol.h"
#include <apr_strings.h>

static const pe_rtype_t all_rtypes[] = {PE_RTYPE_BPE, PE_RTYPE_BCOT, PE_RTYPE_HCOT, PE_RTYPE_REACT, PE_RTYPE_TOT,
                                        PE_RTYPE_CUSTOM};
#define PE_NRTYPES ((int)(sizeof(all_rtypes) / sizeof(all_rtypes[0])))

/* GET /v1/admin/system-prompts */
int pe_h_ops_prompts_get(pe_ctx_t *cx)
{
    request_rec *r = cx->r;
    pe_store_t *st = pe_auth_store(r);
    json_t *prompts = json_object(), *names = json_array(), *over = json_array();
    int i;

    for (i = 0; i < PE_NRTYPES; i++) {
        const char *name = pe_enhance_rtype_name(all_rtypes[i]), *text = NULL;
        pe_store_status_e rs = pe_store_system_prompt_get(st, name, &text);

        if (rs == PE_STORE_EIO) {
            json_decref(prompts);
            json_decref(names);
            json_decref(over);
            return pe_account_store_down(r);
        }
        if (rs == PE_STORE_OK)
            json_array_append_new(over, json_string(name));
        else
            text = pe_enhance_builtin_prompt(all_rtypes[i]);
        json_object_set_new(prompts, name, text ? json_string(text) : json_null());
        json_array_append_new(names, json_string(name));
    }
    return pe_account_ok(r, "System prompts retrieved successfully",
                         json_pack("{s:o,s:o,s:o}", "prompts", prompts, "r_types", names, "overridden", over));
}

/* PUT /v1/admin/system-prompts {"r_type", "prompt"} */
int pe_h_ops_prompts_put(pe_ctx_t *cx)
{
    static const char *const fields[] = {"r_type", "prompt", NULL};
    static const char *const names[] = {"bpe", "bcot", "hcot", "react", "tot", "custom", NULL};
    request_rec *r = cx->r;
    pe_principal_t *p = cx->rq->principal;
    const char *rtype, *prompt;
    pe_valid_t v;
    int rc;

    if ((rc = pe_account_body(r, fields, &v)) != OK)
        return rc;
    rtype = pe_valid_enum(&v, "r_type", names, NULL);
    prompt = pe_valid_str(&v, "prompt", 1, 1, 20000);
    if (!rtype && pe_valid_ok(&v))
        pe_valid_fail(&v, "r_type is required");
    if (!pe_valid_ok(&v))
        return pe_account_invalid(r, &v);
    if (pe_store_system_prompt_set(pe_auth_store(r), rtype, prompt, p->username, apr_time_now()) != PE_STORE_OK)
        return pe_account_store_down(r);
    pe_account_event(r, pe_auth_store(r), "system_prompt_updated", p->kind, p->id, p->username,
                     json_pack("{s:s,s:I}", "r_type", rtype, "length", (json_int_t)strlen(prompt)), "info");
    return pe_account_ok(r, apr_psprintf(r->pool, "System prompt for '%s' updated successfully", rtype),
                         json_pack("{s:s}", "r_type", rtype));
}

/* DELETE /v1/admin/system-prompts/{r_type}: back to the built-in (custom: none). */
int pe_h_ops_prompts_reset(pe_ctx_t *cx)
{
    request_rec *r = cx->r;
    pe_principal_t *p = cx->rq->principal;
    const char *rtype = pe_route_param(cx->match, "r_type");
    pe_rtype_t t;
    pe_store_status_e rs;

    if (!rtype || pe_enhance_rtype_parse(rtype, &t) != 0 || t == PE_RTYPE_NONE)
        return pe_http_error(r, HTTP_NOT_FOUND, PE_E_NOT_FOUND, "No such r_type");
    rs = pe_store_system_prompt_reset(pe_auth_store(r), rtype);
    if (rs == PE_STORE_NOTFOUND)
        return pe_http_error(r, HTTP_NOT_FOUND, PE_E_NOT_FOUND, "No stored prompt for '%s'", rtype);
    if (rs != PE_STORE_OK)
        return pe_account_store_down(r);
    pe_account_event(r, pe_auth_store(r), "system_prompt_reset", p->kind, p->id, p->username,
                     json_pack("{s:s}", "r_type", rtype), "info");
    return pe_account_ok(r, apr_psprintf(r->pool, "System prompt for '%s' reset to the built-in", rtype),
                         json_pack("{s:s}", "r_type", rtype));
}
