/* pe_route.c: route table matching, method masks and PEApi group names. */
#include "pe_route.h"

#include <apr_strings.h>
#include <string.h>

static const struct {
    const char *name;
    unsigned bit;
} pe_groups[] = {
    {"core", PE_G_CORE},   {"users", PE_G_USERS},     {"email", PE_G_EMAIL},
    {"prompt", PE_G_PROMPT}, {"openai", PE_G_OPENAI}, {"batch", PE_G_BATCH},
    {"admin-panel", PE_G_ADMIN}, {"support", PE_G_SUPPORT}, {"monitoring", PE_G_MONITORING},
    {"diag", PE_G_DIAG},   {"openapi", PE_G_OPENAPI}, {"admin", PE_G_SYSADMIN}, {"metrics", PE_G_METRICS},
    {"ready", PE_G_READY}, {"all", PE_G_ALL},
};

static const struct {
    const char *name;
    unsigned bit;
} pe_methods[] = {
    {"GET", PE_M_GET},   {"HEAD", PE_M_HEAD},     {"POST", PE_M_POST},
    {"PUT", PE_M_PUT},   {"DELETE", PE_M_DELETE}, {"PATCH", PE_M_PATCH},
};

/* Method name -> bit. */
unsigned pe_route_method_bit(const char *method)
{
    size_t i;

    for (i = 0; i < sizeof(pe_methods) / sizeof(pe_methods[0]); i++)
        if (strcmp(method, pe_methods[i].name) == 0)
            return pe_methods[i].bit;
    return 0;
}

/* PEApi word -> bits. */
unsigned pe_route_group_bit(const char *name)
{
    size_t i;

    for (i = 0; i < sizeof(pe_groups) / sizeof(pe_groups[0]); i++)
        if (strcmp(name, pe_groups[i].name) == 0)
            return pe_groups[i].bit;
    return 0;
}

/* The PEApi words, space separated. */
const char *pe_route_group_names(void)
{
    return "core users email prompt openai batch admin-panel support monitoring admin diag openapi metrics ready all";
}

/*
 * Match one pattern against path, segment by segment. Placeholders take one non-empty
 * segment; a trailing slash on the path is not ignored (routes are exact).
 */
static int route_match_pattern(apr_pool_t *p, const char *pat, const char *path, pe_route_match_t *m)
{
    int np = 0;

    while (*pat && *path) {
        if (*pat == '{') {
            const char *pe = strchr(pat, '}');
            const char *se = path;

            if (!pe || np >= PE_ROUTE_MAX_PARAMS)
                return 0;
            while (*se && *se != '/')
                se++;
            if (se == path)
                return 0;
            if (m) {
                m->names[np] = apr_pstrmemdup(p, pat + 1, (apr_size_t)(pe - pat - 1));
                m->values[np] = apr_pstrmemdup(p, path, (apr_size_t)(se - path));
            }
            np++;
            pat = pe + 1;
            path = se;
            continue;
        }
        if (*pat != *path)
            return 0;
        pat++;
        path++;
    }
    if (*pat || *path)
        return 0;
    if (m)
        m->nparams = np;
    return 1;
}

/*
 * The last answer of this thread for a path that took no placeholder: the answer depends on the
 * table, the groups, the method and the path only, and the same few paths (the completion routes)
 * come again and again, where a walk of the table costs about 6,000 instructions.
 */
#define MEMO_PATH 128
static __thread struct {
    const pe_route_t *table;
    int n;
    unsigned groups, method, allowed;
    const pe_route_t *route;
    char path[MEMO_PATH];
} memo;

/* Walk the table in order; see the header for the rules. */
pe_route_result_e pe_route_match(apr_pool_t *p, const pe_route_t *table, int n, unsigned groups,
                                 unsigned method, const char *path, pe_route_match_t *m)
{
    int i;
    unsigned want = (method == PE_M_HEAD) ? PE_M_GET : method;
    apr_size_t plen;

    memset(m, 0, sizeof(*m));
    if (memo.table == table && memo.n == n && memo.groups == groups && memo.method == method &&
        !strcmp(memo.path, path)) {
        m->route = memo.route;
        m->allowed = memo.allowed;
        return m->route ? PE_ROUTE_OK : m->allowed ? PE_ROUTE_BAD_METHOD : PE_ROUTE_NOT_FOUND;
    }
    for (i = 0; i < n; i++) {
        const pe_route_t *rt = &table[i];

        if (!(rt->group & groups))
            continue;
        if (!route_match_pattern(p, rt->pattern, path, NULL))
            continue;
        m->allowed |= rt->methods;
        if (want && (rt->methods & want) && !m->route) {
            route_match_pattern(p, rt->pattern, path, m);
            m->route = rt;
        }
    }
    if (m->allowed & PE_M_GET)
        m->allowed |= PE_M_HEAD;
    if (!m->nparams && (plen = strlen(path)) < MEMO_PATH) {
        memcpy(memo.path, path, plen + 1);
        memo.n = n;
        memo.groups = groups;
        memo.method = method;
        memo.allowed = m->allowed;
        memo.route = m->route;
        memo.table = table;
    }
    if (m->route)
        return PE_ROUTE_OK;
    return m->allowed ? PE_ROUTE_BAD_METHOD : PE_ROUTE_NOT_FOUND;
}

/* "GET, HEAD, POST". */
const char *pe_route_allow_header(apr_pool_t *p, unsigned allowed)
{
    const char *s = NULL;
    size_t i;

    for (i = 0; i < sizeof(pe_methods) / sizeof(pe_methods[0]); i++)
        if (allowed & pe_methods[i].bit)
            s = s ? apr_pstrcat(p, s, ", ", pe_methods[i].name, NULL) : pe_methods[i].name;
    return s ? s : "";
}

/* Placeholder value by name. */
const char *pe_route_param(const pe_route_match_t *m, const char *name)
{
    int i;

    for (i = 0; i < m->nparams; i++)
        if (strcmp(m->names[i], name) == 0)
            return m->values[i];
    return NULL;
}
