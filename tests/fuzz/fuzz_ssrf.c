/*
 * fuzz_ssrf.c: the research fetcher's SSRF guard: URL vetting (pe_ssrf_url_vet, curl's URL parser
 * underneath), the address table (pe_ssrf_addr_classify, pe_ssrf_dest_permitted) and the
 * pre-request peer check (pe_ssrf_prereq_cb). No socket is opened.
 *
 * Input: the URL, then optionally a NUL byte and a policy: "*" first for any port, then an allow
 * list as PEResearchAllowNetworks takes it (an invalid list is no list). The first 4 and 16 bytes
 * are also read as raw addresses for the table.
 *
 * Properties (pe_ssrf.h): an accepted URL is http or https with a lower-case host and a port in
 * range; the port is 80 or 443 unless any port is allowed or an allow entry names it; a name host
 * has a dot (the host-name checks apply whatever the allow list says);
 * an IP host is permitted by the policy; the normalised URL, vetted again, is accepted with the
 * same host, port and text (what is fetched is what was checked). IPv4 inside NAT64 and 6to4 is
 * judged as that IPv4 address and IPv4-compatible IPv6 is always blocked; a blocked address names
 * its range; a public address without an allow list is permitted on ports 80 and 443 only.
 */
#define PE_FUZZ_SETUP fuzz_ssrf_setup
#include "pe_fuzz.h"

#include "pe_ssrf.h"

#include <netinet/in.h>

static void fuzz_ssrf_setup(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
}

/* An accepted URL and its second vetting. */
static void fuzz_accepted(apr_pool_t *p, const pe_ssrf_policy_t *pol, int has_allow, const pe_ssrf_url_t *u)
{
    pe_ssrf_url_t again;
    const char *c;

    PE_FUZZ_CHECK(u->url && u->scheme && u->host && *u->host);
    PE_FUZZ_CHECK(strcmp(u->scheme, "http") == 0 || strcmp(u->scheme, "https") == 0);
    PE_FUZZ_CHECK(u->port >= 1 && u->port <= 65535);
    for (c = u->host; *c; c++)
        PE_FUZZ_CHECK(!(*c >= 'A' && *c <= 'Z'));
    /* a port other than the web ports only where the policy allows any, or an entry names it */
    if (!pol->any_port)
        PE_FUZZ_CHECK(u->port == 80 || u->port == 443 || (has_allow && pe_ssrf_allow_names_port(pol->allow, u->port)));
    if (u->host_is_ip)
        PE_FUZZ_CHECK(pe_ssrf_dest_permitted(pol, &u->addr, u->port, NULL));
    else /* the host-name checks apply whatever the allow list says */
        PE_FUZZ_CHECK(strchr(u->host, '.') != NULL);

    PE_FUZZ_CHECK(pe_ssrf_url_vet(p, u->url, pol, &again) == NULL);
    PE_FUZZ_CHECK(strcmp(again.host, u->host) == 0 && again.port == u->port);
    PE_FUZZ_CHECK(again.host_is_ip == u->host_is_ip && strcmp(again.url, u->url) == 0);
    if (u->host_is_ip)
        PE_FUZZ_CHECK(pe_ipnet_addr_eq(&again.addr, &u->addr));
}

/* The table on raw IPv4 bytes and on the IPv6 forms that embed them. */
static void fuzz_table(apr_pool_t *p, const uint8_t *b4)
{
    pe_ipnet_addr_t v4, v6;
    pe_ssrf_class_t c4, c6;
    int blocked;

    memset(&v4, 0, sizeof(v4));
    v4.family = AF_INET;
    memcpy(v4.b, b4, 4);
    blocked = pe_ssrf_addr_classify(&v4, &c4);
    PE_FUZZ_CHECK(blocked == c4.blocked && (!blocked || (c4.range && c4.name)));
    PE_FUZZ_CHECK(*pe_ssrf_class_str(p, &c4));
    PE_FUZZ_CHECK(pe_ssrf_dest_permitted(NULL, &v4, 443, NULL) == !blocked);
    PE_FUZZ_CHECK(pe_ssrf_dest_permitted(NULL, &v4, 80, NULL) == !blocked);
    PE_FUZZ_CHECK(!pe_ssrf_dest_permitted(NULL, &v4, 8080, NULL));

    memset(&v6, 0, sizeof(v6));
    v6.family = AF_INET6;
    v6.b[1] = 0x64, v6.b[2] = 0xff, v6.b[3] = 0x9b; /* NAT64 64:ff9b::/96 */
    memcpy(v6.b + 12, b4, 4);
    PE_FUZZ_CHECK(pe_ssrf_addr_classify(&v6, &c6) == blocked);
    memset(&v6, 0, sizeof(v6));
    v6.family = AF_INET6;
    v6.b[0] = 0x20, v6.b[1] = 0x02; /* 6to4 2002::/16 */
    memcpy(v6.b + 2, b4, 4);
    PE_FUZZ_CHECK(pe_ssrf_addr_classify(&v6, &c6) == blocked);
    memset(&v6, 0, sizeof(v6));
    v6.family = AF_INET6;
    memcpy(v6.b + 12, b4, 4); /* IPv4-compatible ::a.b.c.d (and :: and ::1) */
    PE_FUZZ_CHECK(pe_ssrf_addr_classify(&v6, &c6) == 1 && c6.range && c6.name);
}

/* Raw IPv6 bytes through the table and the socket-address path. */
static void fuzz_table6(apr_pool_t *p, const uint8_t *b16)
{
    struct sockaddr_in6 in6;
    pe_ipnet_addr_t a;
    pe_ssrf_class_t c;
    int blocked;

    memset(&in6, 0, sizeof(in6));
    in6.sin6_family = AF_INET6;
    memcpy(&in6.sin6_addr, b16, 16);
    PE_FUZZ_CHECK(pe_ipnet_addr_from_sockaddr((struct sockaddr *)&in6, sizeof(in6), &a) == 0);
    blocked = pe_ssrf_addr_classify(&a, &c);
    PE_FUZZ_CHECK(!blocked || (c.range && c.name));
    PE_FUZZ_CHECK(*pe_ssrf_class_str(p, &c));
    /* outside 2000::/3 nothing is public but NAT64 64:ff9b::/96, judged by its IPv4 address */
    if (a.family == AF_INET6 && (a.b[0] & 0xe0) != 0x20 && memcmp(a.b, "\0\x64\xff\x9b\0\0\0\0\0\0\0\0", 12) != 0)
        PE_FUZZ_CHECK(blocked);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    apr_pool_t *p = pe_fuzz_pool();
    pe_ssrf_policy_t pol;
    pe_ssrf_guard_t g;
    pe_ssrf_url_t u;
    pe_ssrf_allow_list_t *allow = NULL;
    const char *rest, *err;
    char *url;
    size_t rest_len;
    int has_allow;

    memset(&pol, 0, sizeof(pol));
    rest = pe_fuzz_split(p, data, size, '\0', &url, &rest_len);
    if (rest) {
        char *spec = pe_fuzz_cstr(p, (const uint8_t *)rest, rest_len);

        pol.any_port = *spec == '*';
        if (pe_ssrf_allow_parse(p, spec + pol.any_port, &allow) == NULL)
            pol.allow = allow;
    }
    has_allow = pe_ssrf_allow_count(pol.allow) > 0;

    err = pe_ssrf_url_vet(p, url, &pol, &u);
    if (err)
        PE_FUZZ_CHECK(*err);
    else
        fuzz_accepted(p, &pol, has_allow, &u);
    /* with no policy at all: the strictest answer */
    if (pe_ssrf_url_vet(p, url, NULL, &u) == NULL) {
        pe_ssrf_policy_t none;

        memset(&none, 0, sizeof(none));
        fuzz_accepted(p, &none, 0, &u);
    }

    /* the URL text as the peer address libcurl reports before a request */
    pe_ssrf_guard_init(&g, &pol);
    if (pe_ssrf_prereq_cb(&g, url, NULL, 443, 40000) == CURL_PREREQFUNC_OK) {
        pe_ipnet_addr_t a;

        PE_FUZZ_CHECK(pe_ipnet_addr_parse(url, &a) == 0 && pe_ssrf_dest_permitted(&pol, &a, 443, NULL));
        PE_FUZZ_CHECK(g.refused == 0);
    }
    else {
        /* port 443 is always allowed: a refusal means a blocked or unparsable address */
        PE_FUZZ_CHECK(g.refused == 1 && g.last.blocked == 1 && g.last.range);
    }

    if (size >= 4)
        fuzz_table(p, data);
    if (size >= 16)
        fuzz_table6(p, data);
    pe_fuzz_done(p);
    return 0;
}
