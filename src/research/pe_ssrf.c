/* pe_ssrf.c: address table, URL vetting and libcurl socket callbacks of the research fetcher. */
#include "pe_ssrf.h"
#include "pe_logno.h"

#include <apr_lib.h>
#include <apr_strings.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

/* One row of the special-purpose table: the network, its text and its meaning. */
typedef struct ssrf_entry_t {
    pe_ipnet_t net;
    const char *range;
    const char *name;
} ssrf_entry_t;

#define V4(a, b, c, d, len, text, what) {{{AF_INET, {a, b, c, d}}, len}, text, what}
#define V6(len, text, what, ...) {{{AF_INET6, {__VA_ARGS__}}, len}, text, what}

/*
 * IANA IPv4 Special-Purpose Address Registry entries that are not globally reachable, plus
 * multicast (224.0.0.0/4). More specific rows give a better name; the longest match is reported.
 */
static const ssrf_entry_t ssrf_v4[] = {
    V4(0, 0, 0, 0, 8, "0.0.0.0/8", "\"this network\""),
    V4(0, 0, 0, 0, 32, "0.0.0.0/32", "unspecified"),
    V4(10, 0, 0, 0, 8, "10.0.0.0/8", "private-use"),
    V4(100, 64, 0, 0, 10, "100.64.0.0/10", "shared address space (CGNAT)"),
    V4(127, 0, 0, 0, 8, "127.0.0.0/8", "loopback"),
    V4(169, 254, 0, 0, 16, "169.254.0.0/16", "link-local"),
    V4(169, 254, 169, 254, 32, "169.254.169.254/32", "link-local (cloud metadata service)"),
    V4(172, 16, 0, 0, 12, "172.16.0.0/12", "private-use"),
    V4(192, 0, 0, 0, 24, "192.0.0.0/24", "IETF protocol assignments"),
    V4(192, 0, 2, 0, 24, "192.0.2.0/24", "documentation (TEST-NET-1)"),
    V4(192, 88, 99, 0, 24, "192.88.99.0/24", "6to4 relay anycast (deprecated)"),
    V4(192, 168, 0, 0, 16, "192.168.0.0/16", "private-use"),
    V4(198, 18, 0, 0, 15, "198.18.0.0/15", "benchmarking"),
    V4(198, 51, 100, 0, 24, "198.51.100.0/24", "documentation (TEST-NET-2)"),
    V4(203, 0, 113, 0, 24, "203.0.113.0/24", "documentation (TEST-NET-3)"),
    V4(224, 0, 0, 0, 4, "224.0.0.0/4", "multicast"),
    V4(240, 0, 0, 0, 4, "240.0.0.0/4", "reserved"),
    V4(255, 255, 255, 255, 32, "255.255.255.255/32", "limited broadcast"),
};

/*
 * IANA IPv6 Special-Purpose Address Registry entries that are not globally reachable, plus
 * multicast and deprecated site-local. Everything outside 2000::/3 is blocked as well (below).
 * The embeddings (::/96, ::ffff:0:0/96, 64:ff9b::/96, 2002::/16) are handled in code.
 */
static const ssrf_entry_t ssrf_v6[] = {
    V6(128, "::/128", "unspecified", 0),
    V6(128, "::1/128", "loopback", 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1),
    V6(48, "64:ff9b:1::/48", "local-use IPv4/IPv6 translation", 0x00, 0x64, 0xff, 0x9b, 0x00, 0x01),
    V6(64, "100::/64", "discard-only", 0x01, 0x00),
    V6(64, "100:0:0:1::/64", "dummy prefix", 0x01, 0x00, 0, 0, 0, 0, 0, 0x01),
    V6(23, "2001::/23", "IETF protocol assignments", 0x20, 0x01),
    V6(32, "2001::/32", "Teredo", 0x20, 0x01),
    V6(48, "2001:2::/48", "benchmarking", 0x20, 0x01, 0x00, 0x02),
    V6(28, "2001:10::/28", "ORCHID (deprecated)", 0x20, 0x01, 0x00, 0x10),
    V6(28, "2001:20::/28", "ORCHIDv2", 0x20, 0x01, 0x00, 0x20),
    V6(32, "2001:db8::/32", "documentation", 0x20, 0x01, 0x0d, 0xb8),
    V6(20, "3fff::/20", "documentation", 0x3f, 0xff),
    V6(16, "5f00::/16", "segment routing SIDs", 0x5f, 0x00),
    V6(7, "fc00::/7", "unique-local", 0xfc),
    V6(10, "fe80::/10", "link-local", 0xfe, 0x80),
    V6(10, "fec0::/10", "site-local (deprecated)", 0xfe, 0xc0),
    V6(8, "ff00::/8", "multicast", 0xff),
};

static const pe_ipnet_t ssrf_global_unicast = {{AF_INET6, {0x20}}, 3};
static const pe_ipnet_t ssrf_v4compat = {{AF_INET6, {0}}, 96};
static const pe_ipnet_t ssrf_nat64 = {{AF_INET6, {0x00, 0x64, 0xff, 0x9b}}, 96};
static const pe_ipnet_t ssrf_6to4 = {{AF_INET6, {0x20, 0x02}}, 16};

/* The longest table row containing a, or NULL. */
static const ssrf_entry_t *ssrf_lookup(const ssrf_entry_t *tab, apr_size_t n, const pe_ipnet_addr_t *a)
{
    const ssrf_entry_t *best = NULL;
    apr_size_t i;

    for (i = 0; i < n; i++) {
        if (pe_ipnet_contains(&tab[i].net, a) && (!best || tab[i].net.prefix > best->net.prefix))
            best = &tab[i];
    }
    return best;
}

/* Fill c from a row (or as public when e is NULL); returns whether blocked. */
static int ssrf_set(pe_ssrf_class_t *c, const ssrf_entry_t *e, const char *via)
{
    c->blocked = e != NULL;
    c->range = e ? e->range : NULL;
    c->name = e ? e->name : NULL;
    c->via = e ? via : NULL;
    return c->blocked;
}

/* Classify the IPv4 address held in 4 bytes. */
static int ssrf_classify_v4(const unsigned char *b4, pe_ssrf_class_t *c, const char *via)
{
    pe_ipnet_addr_t v4;

    memset(&v4, 0, sizeof(v4));
    v4.family = AF_INET;
    memcpy(v4.b, b4, 4);
    return ssrf_set(c, ssrf_lookup(ssrf_v4, sizeof(ssrf_v4) / sizeof(ssrf_v4[0]), &v4), via);
}

/* Classify against the table; embeddings are judged by their IPv4 address. */
int pe_ssrf_addr_classify(const pe_ipnet_addr_t *a, pe_ssrf_class_t *c)
{
    static const ssrf_entry_t compat = {{{AF_INET6, {0}}, 96}, "::/96", "IPv4-compatible (deprecated)"};
    static const ssrf_entry_t reserved = {{{AF_INET6, {0}}, 0}, "outside 2000::/3", "reserved (not global unicast)"};
    static const ssrf_entry_t bad_family = {{{0, {0}}, 0}, "-", "not an IPv4/IPv6 address"};
    pe_ssrf_class_t tmp;
    const ssrf_entry_t *e;

    if (!c)
        c = &tmp;
    memset(c, 0, sizeof(*c));
    if (!a || (a->family != AF_INET && a->family != AF_INET6))
        return ssrf_set(c, &bad_family, NULL);
    if (a->family == AF_INET)
        return ssrf_classify_v4(a->b, c, NULL);

    e = ssrf_lookup(ssrf_v6, sizeof(ssrf_v6) / sizeof(ssrf_v6[0]), a);
    if (e && e->net.prefix == 128) /* :: and ::1 before the ::/96 embedding */
        return ssrf_set(c, e, NULL);
    if (pe_ipnet_contains(&ssrf_v4compat, a)) {
        /* deprecated and never routed: blocked whatever it embeds, named after the IPv4 rule if one hits */
        if (ssrf_classify_v4(a->b + 12, c, "IPv4-compatible ::/96"))
            return 1;
        return ssrf_set(c, &compat, NULL);
    }
    if (pe_ipnet_contains(&ssrf_nat64, a))
        return ssrf_classify_v4(a->b + 12, c, "NAT64 64:ff9b::/96");
    if (pe_ipnet_contains(&ssrf_6to4, a) && ssrf_classify_v4(a->b + 2, c, "6to4 2002::/16"))
        return 1;
    if (e)
        return ssrf_set(c, e, NULL);
    if (!pe_ipnet_contains(&ssrf_global_unicast, a))
        return ssrf_set(c, &reserved, NULL);
    return ssrf_set(c, NULL, NULL);
}

/* Whether a public destination may use this port. */
static int ssrf_port_ok(const pe_ssrf_policy_t *pol, int port)
{
    if (port == 0)
        return 1;
    if (port < 0 || port > 65535)
        return 0;
    return (pol && pol->any_port) || port == 80 || port == 443;
}

/* Whether the entry names port (0: any of its ports). */
static int ssrf_entry_has_port(const pe_ssrf_allow_t *e, int port)
{
    const pe_ssrf_ports_t *r = (const pe_ssrf_ports_t *)e->ports->elts;
    int i;

    if (port == 0)
        return 1;
    for (i = 0; i < e->ports->nelts; i++)
        if (port >= r[i].lo && port <= r[i].hi)
            return 1;
    return 0;
}

/* Number of entries. */
int pe_ssrf_allow_count(const pe_ssrf_allow_list_t *l)
{
    return l && l->entries ? l->entries->nelts : 0;
}

/* Whether some entry names port. */
int pe_ssrf_allow_names_port(const pe_ssrf_allow_list_t *l, int port)
{
    int i;

    if (port < 1 || port > 65535)
        return 0;
    for (i = 0; i < pe_ssrf_allow_count(l); i++)
        if (ssrf_entry_has_port(&APR_ARRAY_IDX(l->entries, i, pe_ssrf_allow_t), port))
            return 1;
    return 0;
}

/* Apply the allow list and the port rule on top of the table. */
int pe_ssrf_dest_permitted(const pe_ssrf_policy_t *pol, const pe_ipnet_addr_t *a, int port, pe_ssrf_class_t *c)
{
    pe_ssrf_class_t tmp;
    int blocked, i;

    if (!c)
        c = &tmp;
    blocked = pe_ssrf_addr_classify(a, c);
    if (port < 0 || port > 65535)
        return 0;
    for (i = 0; a && pol && i < pe_ssrf_allow_count(pol->allow); i++) {
        const pe_ssrf_allow_t *e = &APR_ARRAY_IDX(pol->allow->entries, i, pe_ssrf_allow_t);

        if (!pe_ipnet_contains(&e->net, a))
            continue;
        if (ssrf_entry_has_port(e, port)) {
            c->allowed = 1;
            c->other_ports = 0;
            return 1;
        }
        c->other_ports = 1;
    }
    if (blocked)
        return 0;
    return ssrf_port_ok(pol, port);
}

/* Parse "n" or "lo-hi" (decimal, 1..65535, no leading zero) into r; 0 or -1. */
static int ssrf_ports_parse(const char *s, apr_size_t n, pe_ssrf_ports_t *r)
{
    int v[2] = {0, 0}, k = 0;
    apr_size_t i, digits = 0;

    for (i = 0; i <= n; i++) {
        if (i < n && apr_isdigit(s[i])) {
            if (digits == 0 && s[i] == '0')
                return -1;
            if (++digits > 5)
                return -1;
            v[k] = v[k] * 10 + (s[i] - '0');
            continue;
        }
        if (digits == 0 || v[k] > 65535)
            return -1;
        if (i == n)
            break;
        if (s[i] != '-' || k == 1)
            return -1;
        k = 1;
        digits = 0;
    }
    r->lo = v[0];
    r->hi = k ? v[1] : v[0];
    return r->lo <= r->hi ? 0 : -1;
}

/* Whether the item (length n) is a port or a port range: digits and at most one '-'. */
static int ssrf_is_port_item(const char *s, apr_size_t n)
{
    return n > 0 && strspn(s, "0123456789-") >= n && apr_isdigit(s[0]);
}

/*
 * Parse one entry "net", "a.b.c.d[/n]:port" or "[v6[/n]][/n]:port" (the first port item; the
 * caller adds the ports after commas). *had_ports tells whether a port was written.
 */
static const char *ssrf_allow_entry(apr_pool_t *p, const char *item, pe_ssrf_allow_t *e, int *had_ports)
{
    const char *net = item, *ports = NULL, *colon, *err;
    pe_ssrf_ports_t r;

    if (item[0] == '[') {
        const char *close = strchr(item, ']');
        const char *after;

        if (!close)
            return "a '[' without ']'";
        after = close + 1;
        if (*after == '/') {
            apr_size_t nd = strcspn(after, ":");

            net = apr_pstrcat(p, apr_pstrmemdup(p, item + 1, (apr_size_t)(close - item - 1)),
                              apr_pstrmemdup(p, after, nd), NULL);
            after += nd;
        }
        else {
            net = apr_pstrmemdup(p, item + 1, (apr_size_t)(close - item - 1));
        }
        if (*after == ':')
            ports = after + 1;
        else if (*after)
            return "unexpected text after ']' (ports follow a ':')";
        if (!strchr(net, ':'))
            return "brackets are for IPv6 networks";
    }
    else if ((colon = strchr(item, ':')) != NULL && !strchr(colon + 1, ':')) {
        /* one colon: an IPv4 network and its ports (an IPv6 address has at least two colons) */
        net = apr_pstrmemdup(p, item, (apr_size_t)(colon - item));
        ports = colon + 1;
    }
    if ((err = pe_ipnet_parse(p, net, &e->net)) != NULL)
        return err;
    e->ports = apr_array_make(p, 2, sizeof(pe_ssrf_ports_t));
    *had_ports = ports != NULL;
    if (!ports) {
        r.lo = r.hi = 80;
        APR_ARRAY_PUSH(e->ports, pe_ssrf_ports_t) = r;
        r.lo = r.hi = 443;
        APR_ARRAY_PUSH(e->ports, pe_ssrf_ports_t) = r;
        return NULL;
    }
    if (ssrf_ports_parse(ports, strlen(ports), &r) != 0)
        return apr_psprintf(p, "port \"%s\" is not a number 1-65535 or a range lo-hi", ports);
    APR_ARRAY_PUSH(e->ports, pe_ssrf_ports_t) = r;
    return NULL;
}

/* Parse the allow list. */
const char *pe_ssrf_allow_parse(apr_pool_t *p, const char *s, pe_ssrf_allow_list_t **out)
{
    static const char seps[] = " \t\r\n,";
    pe_ssrf_allow_list_t *l = apr_pcalloc(p, sizeof(*l));
    pe_ssrf_allow_t *last = NULL;
    int idx = 0, last_has_ports = 0;

    l->entries = apr_array_make(p, 4, sizeof(pe_ssrf_allow_t));
    while (s && *s) {
        apr_size_t len;
        const char *err;
        char *item;
        pe_ssrf_allow_t e;

        s += strspn(s, seps);
        len = strcspn(s, seps);
        if (len == 0)
            break;
        item = apr_pstrmemdup(p, s, len);
        s += len;
        if (ssrf_is_port_item(item, len)) {
            /* a further port of the entry before it: "10.0.0.0/8:80,443" */
            pe_ssrf_ports_t r;

            if (!last || !last_has_ports)
                return apr_psprintf(p, "entry %d: port \"%s\" follows no network with ports (write net:port)",
                                    idx + 1, item);
            if (ssrf_ports_parse(item, len, &r) != 0)
                return apr_psprintf(p, "entry %d: port \"%s\" is not a number 1-65535 or a range lo-hi", idx, item);
            APR_ARRAY_PUSH(last->ports, pe_ssrf_ports_t) = r;
            continue;
        }
        idx++;
        memset(&e, 0, sizeof(e));
        if ((err = ssrf_allow_entry(p, item, &e, &last_has_ports)) != NULL) {
            if (err[0] == '"') /* pe_ipnet_parse quotes the network itself */
                return apr_psprintf(p, "entry %d %s", idx, err);
            return apr_psprintf(p, "entry %d \"%s\": %s", idx, item, err);
        }
        APR_ARRAY_PUSH(l->entries, pe_ssrf_allow_t) = e;
        last = &APR_ARRAY_IDX(l->entries, l->entries->nelts - 1, pe_ssrf_allow_t);
    }
    *out = l;
    return NULL;
}

/* Canonical text of the list. */
char *pe_ssrf_allow_str(apr_pool_t *p, const pe_ssrf_allow_list_t *l)
{
    char *out = "";
    int i, j;

    for (i = 0; i < pe_ssrf_allow_count(l); i++) {
        const pe_ssrf_allow_t *e = &APR_ARRAY_IDX(l->entries, i, pe_ssrf_allow_t);
        const char *net = pe_ipnet_str(p, &e->net);
        char *ports = "";

        for (j = 0; j < e->ports->nelts; j++) {
            const pe_ssrf_ports_t *r = &APR_ARRAY_IDX(e->ports, j, pe_ssrf_ports_t);

            ports = r->lo == r->hi ? apr_psprintf(p, "%s%s%d", ports, j ? "," : "", r->lo)
                                   : apr_psprintf(p, "%s%s%d-%d", ports, j ? "," : "", r->lo, r->hi);
        }
        out = apr_psprintf(p, "%s%s%s%s%s:%s", out, i ? " " : "", e->net.addr.family == AF_INET6 ? "[" : "", net,
                           e->net.addr.family == AF_INET6 ? "]" : "", ports);
    }
    return out;
}

/* Format a classification into buf (bounded); shared by the pool and the callback versions. */
static void ssrf_class_fmt(char *buf, apr_size_t n, const pe_ssrf_class_t *c)
{
    if (!c->blocked)
        snprintf(buf, n, "public%s", c->allowed ? ", allow-listed" : "");
    else
        snprintf(buf, n, "%s %s%s%s%s", c->name, c->range, c->via ? " via " : "", c->via ? c->via : "",
                 c->allowed ? ", allow-listed" : c->other_ports ? ", allow-listed on other ports only" : "");
}

/* Text of a classification in p. */
const char *pe_ssrf_class_str(apr_pool_t *p, const pe_ssrf_class_t *c)
{
    char buf[256]; /* NB: only static table strings go in; snprintf truncates anyway */

    ssrf_class_fmt(buf, sizeof(buf), c);
    return apr_pstrdup(p, buf);
}

/* Whether a label (not empty) is all decimal digits, or 0x followed by hex digits. */
static int ssrf_numeric_label(const char *s, apr_size_t n)
{
    apr_size_t i = 0;

    if (n == 0)
        return 0;
    if (n >= 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
        for (i = 2; i < n; i++)
            if (!apr_isxdigit(s[i]))
                return 0;
        return 1;
    }
    for (i = 0; i < n; i++)
        if (!apr_isdigit(s[i]))
            return 0;
    return 1;
}

/* Whether name (lower case, no trailing dot) is or ends in the reserved suffix sfx ("local"). */
static int ssrf_name_under(const char *name, const char *sfx)
{
    apr_size_t nl = strlen(name), sl = strlen(sfx);

    if (nl == sl)
        return strcmp(name, sfx) == 0;
    return nl > sl && name[nl - sl - 1] == '.' && strcmp(name + nl - sl, sfx) == 0;
}

/* Judge a host name (not an IP literal); the allow list names addresses, never names. */
static const char *ssrf_name_check(const char *name)
{
    static const char *const reserved[] = {"localhost", "local", "internal", "home.arpa", "onion", "test",
                                           "invalid",   "example", "lan", "localdomain", NULL};
    int i;

    if (!strchr(name, '.'))
        return "single-label host name";
    for (i = 0; reserved[i]; i++)
        if (ssrf_name_under(name, reserved[i]))
            return "reserved host name";
    return NULL;
}

/* Parse the URL with curl_url() and vet what curl understood. */
const char *pe_ssrf_url_vet(apr_pool_t *p, const char *url, const pe_ssrf_policy_t *pol, pe_ssrf_url_t *out)
{
    CURLU *u = NULL;
    CURLUcode rc;
    char *scheme = NULL, *host = NULL, *port = NULL, *zone = NULL, *full = NULL, *part = NULL;
    const char *err = NULL;
    char *h, *name;
    apr_size_t hl;
    pe_ssrf_url_t r;

    memset(&r, 0, sizeof(r));
    if (!url || !*url)
        return "empty URL";
    if (strnlen(url, PE_SSRF_URL_MAX + 1) > PE_SSRF_URL_MAX)
        return "URL too long";
    u = curl_url();
    if (!u)
        return "out of memory";
    /* NB: CURLU_URLENCODE percent-encodes spaces and non-ASCII bytes in path and query (as
     * browsers do); without CURLU_NON_SUPPORT_SCHEME an unknown scheme is already refused. */
    rc = curl_url_set(u, CURLUPART_URL, url, CURLU_URLENCODE);
    if (rc != CURLUE_OK) {
        err = apr_psprintf(p, "malformed URL (%s)", curl_url_strerror(rc));
        goto end;
    }
    if (curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK || !scheme
        || (strcmp(scheme, "http") != 0 && strcmp(scheme, "https") != 0)) {
        err = "scheme is not http or https";
        goto end;
    }
    if (curl_url_get(u, CURLUPART_USER, &part, 0) == CURLUE_OK
        || curl_url_get(u, CURLUPART_PASSWORD, &part, 0) == CURLUE_OK
        || curl_url_get(u, CURLUPART_OPTIONS, &part, 0) == CURLUE_OK) {
        err = "credentials (userinfo) in URL";
        goto end;
    }
    if (curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK || !host || !*host) {
        err = "no host";
        goto end;
    }
    if (curl_url_get(u, CURLUPART_ZONEID, &zone, 0) == CURLUE_OK) {
        err = "IPv6 zone id in host";
        goto end;
    }
    if (curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) != CURLUE_OK || !port) {
        err = "no port";
        goto end;
    }
    r.port = atoi(port); /* curl accepted it: 0..65535 in decimal */
    if (r.port < 1 || r.port > 65535) {
        err = "port out of range";
        goto end;
    }
    if (curl_url_set(u, CURLUPART_FRAGMENT, NULL, 0) != CURLUE_OK
        || curl_url_get(u, CURLUPART_URL, &full, 0) != CURLUE_OK || !full) {
        err = "malformed URL";
        goto end;
    }

    /* host: lower case (ASCII only), brackets off an IPv6 literal */
    h = apr_pstrdup(p, host);
    for (name = h; *name; name++) {
        /* NB: curl decodes %7f in a host name and hands back a URL its own parser then refuses */
        if (apr_iscntrl((unsigned char)*name)) {
            err = "control character in host name";
            goto end;
        }
        *name = (char)apr_tolower((unsigned char)*name);
    }
    hl = strlen(h);
    if (h[0] == '[') {
        if (hl < 3 || h[hl - 1] != ']') {
            err = "malformed IPv6 host";
            goto end;
        }
        h[hl - 1] = '\0';
        h++;
        if (pe_ipnet_addr_parse(h, &r.addr) != 0) {
            err = "malformed IPv6 host";
            goto end;
        }
        r.host_is_ip = 1;
    }
    else {
        /* a trailing dot does not change which address a numeric host means */
        name = apr_pstrmemdup(p, h, hl && h[hl - 1] == '.' ? hl - 1 : hl);
        if (pe_ipnet_addr_parse(name, &r.addr) == 0 && r.addr.family == AF_INET) {
            r.host_is_ip = 1;
        }
        else {
            const char *last = strrchr(name, '.');

            last = last ? last + 1 : name;
            if (ssrf_numeric_label(last, strlen(last))) {
                err = "numeric host name that is not an IPv4 address";
                goto end;
            }
            if ((err = ssrf_name_check(name)) != NULL)
                goto end;
        }
    }

    if (r.host_is_ip) {
        pe_ssrf_class_t c;

        if (!pe_ssrf_dest_permitted(pol, &r.addr, r.port, &c)) {
            err = c.blocked ? apr_psprintf(p, "blocked address (%s)", pe_ssrf_class_str(p, &c))
                            : apr_psprintf(p, "port %d is not allowed", r.port);
            goto end;
        }
    }
    else if (!ssrf_port_ok(pol, r.port) && !pe_ssrf_allow_names_port(pol ? pol->allow : NULL, r.port)) {
        err = apr_psprintf(p, "port %d is not allowed", r.port);
        goto end;
    }

    r.url = apr_pstrdup(p, full);
    r.scheme = apr_pstrdup(p, scheme);
    r.host = h;
    if (out)
        *out = r;

end:
    curl_free(scheme);
    curl_free(host);
    curl_free(port);
    curl_free(zone);
    curl_free(full);
    curl_free(part);
    curl_url_cleanup(u);
    return err;
}

/* Port of an IPv4/IPv6 socket address (host order), or -1. */
static int ssrf_sockaddr_port(const struct sockaddr *sa, apr_size_t len)
{
    if (sa->sa_family == AF_INET && len >= sizeof(struct sockaddr_in))
        return ntohs(((const struct sockaddr_in *)sa)->sin_port);
    if (sa->sa_family == AF_INET6 && len >= sizeof(struct sockaddr_in6))
        return ntohs(((const struct sockaddr_in6 *)sa)->sin6_port);
    return -1;
}

/* Record a refusal in the guard (the address text is bounded by PE_IPNET_ADDR_STRLEN). */
static void ssrf_guard_refuse(pe_ssrf_guard_t *g, const pe_ipnet_addr_t *a, int port, const pe_ssrf_class_t *c)
{
    g->refused++;
    g->last = *c;
    g->last_port = port;
    g->last_addr[0] = '\0';
    if (a && !inet_ntop(a->family, a->b, g->last_addr, sizeof(g->last_addr)))
        g->last_addr[0] = '\0';
}

/* Zero a guard and copy the policy. */
void pe_ssrf_guard_init(pe_ssrf_guard_t *g, const pe_ssrf_policy_t *pol)
{
    memset(g, 0, sizeof(*g));
    if (pol)
        g->policy = *pol;
}

/* libcurl asks for a socket: open it only towards a permitted address. */
curl_socket_t pe_ssrf_opensocket_cb(void *clientp, curlsocktype purpose, struct curl_sockaddr *address)
{
    pe_ssrf_guard_t *g = clientp;
    pe_ipnet_addr_t a;
    pe_ssrf_class_t c;
    char why[256];
    int port;
    curl_socket_t s;

    memset(&c, 0, sizeof(c));
    if (!g || !address || purpose != CURLSOCKTYPE_IPCXN
        || pe_ipnet_addr_from_sockaddr(&address->addr, address->addrlen, &a) != 0) {
        if (g) {
            c.blocked = 1;
            c.range = "-";
            c.name = "not an IPv4/IPv6 connection";
            ssrf_guard_refuse(g, NULL, -1, &c);
        }
        pe_clog(PE_LOG_NOTICE, 0, PE_LOGNO(60003) "research fetch: refused a socket that is not an IPv4/IPv6 "
                "connection (family %d, purpose %d)", address ? address->family : -1, (int)purpose);
        return CURL_SOCKET_BAD;
    }
    port = ssrf_sockaddr_port(&address->addr, address->addrlen);
    if (port <= 0)
        port = -1; /* NB: 0 means "address only" to pe_ssrf_dest_permitted; a real connection has a port */
    if (!pe_ssrf_dest_permitted(&g->policy, &a, port, &c)) {
        ssrf_guard_refuse(g, &a, port, &c);
        ssrf_class_fmt(why, sizeof(why), &c);
        pe_clog(PE_LOG_NOTICE, 0, PE_LOGNO(60001) "research fetch: connection to %s port %d refused (%s)",
                g->last_addr, port, c.blocked ? why : "port not allowed");
        return CURL_SOCKET_BAD;
    }
    /* NB: close-on-exec, so a CGI or piped logger forked by httpd never inherits the socket */
    s = socket(address->family, address->socktype | SOCK_CLOEXEC, address->protocol);
    if (s == -1)
        return CURL_SOCKET_BAD;
    g->permitted++;
    return s;
}

/* libcurl is about to send a request on a connection: re-check its peer. */
int pe_ssrf_prereq_cb(void *clientp, char *conn_primary_ip, char *conn_local_ip, int conn_primary_port,
                      int conn_local_port)
{
    pe_ssrf_guard_t *g = clientp;
    pe_ipnet_addr_t a;
    pe_ssrf_class_t c;
    char why[256];

    memset(&c, 0, sizeof(c));
    if (!g)
        return CURL_PREREQFUNC_ABORT;
    if (!conn_primary_ip || pe_ipnet_addr_parse(conn_primary_ip, &a) != 0) {
        c.blocked = 1;
        c.range = "-";
        c.name = "unparsable peer address";
        ssrf_guard_refuse(g, NULL, conn_primary_port, &c);
        pe_clog(PE_LOG_NOTICE, 0, PE_LOGNO(60004) "research fetch: request refused, peer address unparsable");
        return CURL_PREREQFUNC_ABORT;
    }
    if (!pe_ssrf_dest_permitted(&g->policy, &a, conn_primary_port > 0 ? conn_primary_port : -1, &c)) {
        ssrf_guard_refuse(g, &a, conn_primary_port, &c);
        ssrf_class_fmt(why, sizeof(why), &c);
        pe_clog(PE_LOG_NOTICE, 0, PE_LOGNO(60002) "research fetch: request to %s port %d refused (%s)", g->last_addr,
                conn_primary_port, c.blocked ? why : "port not allowed");
        return CURL_PREREQFUNC_ABORT;
    }
    return CURL_PREREQFUNC_OK;
}

#define SSRF_SETOPT(h, opt, val)                                                                                     \
    do {                                                                                                             \
        CURLcode rc_ = curl_easy_setopt(h, opt, val);                                                                \
        if (rc_ != CURLE_OK)                                                                                         \
            return rc_;                                                                                              \
    } while (0)

/* Put the guard and the safe options on an easy handle. */
CURLcode pe_ssrf_curl_setopts(CURL *h, pe_ssrf_guard_t *g, const pe_ssrf_limits_t *lim)
{
    long connect_ms = lim && lim->connect_timeout_ms > 0 ? lim->connect_timeout_ms : PE_SSRF_CONNECT_TIMEOUT_MS;
    long total_ms = lim && lim->timeout_ms > 0 ? lim->timeout_ms : PE_SSRF_TIMEOUT_MS;
    long redirs = lim && lim->max_redirs > 0 ? lim->max_redirs : 0;
    curl_off_t maxsize = lim && lim->max_filesize > 0 ? lim->max_filesize : PE_SSRF_MAX_FILESIZE;

    if (!h || !g)
        return CURLE_BAD_FUNCTION_ARGUMENT;
#if LIBCURL_VERSION_NUM >= 0x075500
    SSRF_SETOPT(h, CURLOPT_PROTOCOLS_STR, "http,https");
    SSRF_SETOPT(h, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
#else
    SSRF_SETOPT(h, CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
    SSRF_SETOPT(h, CURLOPT_REDIR_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
    SSRF_SETOPT(h, CURLOPT_FOLLOWLOCATION, redirs > 0 ? 1L : 0L);
    SSRF_SETOPT(h, CURLOPT_MAXREDIRS, redirs);
    SSRF_SETOPT(h, CURLOPT_UNRESTRICTED_AUTH, 0L);
    /* NB: "" disables proxies including http_proxy/https_proxy/all_proxy from the environment */
    SSRF_SETOPT(h, CURLOPT_PROXY, "");
    SSRF_SETOPT(h, CURLOPT_NETRC, (long)CURL_NETRC_IGNORED);
    SSRF_SETOPT(h, CURLOPT_NOSIGNAL, 1L);
    SSRF_SETOPT(h, CURLOPT_CONNECTTIMEOUT_MS, connect_ms);
    SSRF_SETOPT(h, CURLOPT_TIMEOUT_MS, total_ms);
    SSRF_SETOPT(h, CURLOPT_MAXFILESIZE_LARGE, maxsize);
    SSRF_SETOPT(h, CURLOPT_FORBID_REUSE, 1L);
    SSRF_SETOPT(h, CURLOPT_OPENSOCKETFUNCTION, pe_ssrf_opensocket_cb);
    SSRF_SETOPT(h, CURLOPT_OPENSOCKETDATA, g);
#if LIBCURL_VERSION_NUM >= 0x075000
    SSRF_SETOPT(h, CURLOPT_PREREQFUNCTION, pe_ssrf_prereq_cb);
    SSRF_SETOPT(h, CURLOPT_PREREQDATA, g);
#endif
    return CURLE_OK;
}
