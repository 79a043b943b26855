/*
 * pe_errloc.c: which requests that httpd's core refused before mapping them to a location still
 * belong to a PromptEnchanter section, so their error gets the JSON envelope (pe_http.c).
 *
 * httpd answers a malformed request (a header line without a colon, a bad Content-Length or
 * Transfer-Encoding, a bad %-escape or "/../" above the root, an encoded NUL or slash, TRACE, a
 * missing or bad Host...) before its <Directory> and <Location> sections are merged, so the
 * request still has the server's default configuration and no handler. When its URI path was
 * read, this file looks the path up in the sections itself, as the core's walks would: the last
 * matching <Directory> (against DocumentRoot + path), overridden by the last matching <Location>,
 * decides whether SetHandler promptenchanter covers it. A request whose request line could not be
 * read (no path: "GARBAGE", a request line longer than LimitRequestLine) cannot be placed and
 * keeps httpd's own page (docs/api.md).
 */
#include "pe_http.h"

#include "http_core.h"
#include "http_request.h"
#include <apr_fnmatch.h>
#include <apr_strings.h>

/* Does a section's path (cd->d, its regex or wildcard) cover s? (As the core's walks compare.) */
static int errloc_covers(const core_dir_config *cd, const char *s)
{
    apr_size_t n;

    if (!cd->d)
        return 0;
    if (cd->r)
        return ap_regexec(cd->r, s, 0, NULL, 0) == 0;
    if (cd->d_is_fnmatch)
        return apr_fnmatch(cd->d, s, APR_FNM_PATHNAME) == APR_SUCCESS;
    n = strlen(cd->d);
    return n > 0 && strncmp(cd->d, s, n) == 0 && (cd->d[n - 1] == '/' || s[n] == '/' || s[n] == '\0');
}

/* The handler a section sets: 1 promptenchanter, 0 another (or "none"), -1 it sets none. */
static int errloc_handler(request_rec *r, const core_dir_config *cd)
{
    const char *h = NULL;

    if (cd->expr_handler) {
        const char *err = NULL;

        h = ap_expr_str_exec(r, cd->expr_handler, &err);
        if (err)
            return -1;
    }
    else if (cd->handler) {
        h = cd->handler;
    }
    if (!h)
        return -1;
    return strcmp(h, "promptenchanter") == 0;
}

/* The last section of secs covering s that sets a handler: 1 ours, 0 not, -1 none. */
static int errloc_walk(request_rec *r, const apr_array_header_t *secs, const char *s)
{
    int i, v, found = -1;

    for (i = 0; secs && s && i < secs->nelts; i++) {
        const core_dir_config *cd = ap_get_core_module_config(((ap_conf_vector_t **)secs->elts)[i]);

        if (cd && errloc_covers(cd, s) && (v = errloc_handler(r, cd)) >= 0)
            found = v;
    }
    return found;
}

int pe_errloc_is_ours(request_rec *r)
{
    core_server_config *sc;
    const char *path, *root;
    int loc, dir;

    /* only a request refused before the walks: it still has the server's configuration */
    if (r->per_dir_config != r->server->lookup_defaults)
        return 0;
    path = r->parsed_uri.path ? r->parsed_uri.path : r->uri;
    if (!path || path[0] != '/')
        return 0;
    sc = ap_get_core_module_config(r->server->module_config);
    if (!sc)
        return 0;
    if ((loc = errloc_walk(r, sc->sec_url, path)) >= 0)
        return loc;
    root = ap_document_root(r);
    dir = errloc_walk(r, sc->sec_dir, root ? apr_pstrcat(r->pool, root, path, NULL) : NULL);
    return dir > 0;
}
