/* pe_ipnet.c: IPv4/IPv6 addresses and CIDR networks (strict parsing, matching, canonical text). */
#include "pe_ipnet.h"

#include <apr_strings.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

/* Longest entry text quoted in an error message; longer entries are cut with "...". */
#define IPNET_QUOTE_MAX 64

static const unsigned char ipnet_mapped_prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

/* Store a 16-byte IPv6 address, turning ::ffff:a.b.c.d into the IPv4 address. */
static void ipnet_set_v6(pe_ipnet_addr_t *a, const unsigned char *b16)
{
    memset(a, 0, sizeof(*a));
    if (memcmp(b16, ipnet_mapped_prefix, sizeof(ipnet_mapped_prefix)) == 0) {
        a->family = AF_INET;
        memcpy(a->b, b16 + 12, 4);
    }
    else {
        a->family = AF_INET6;
        memcpy(a->b, b16, 16);
    }
}

/* Store a 4-byte IPv4 address. */
static void ipnet_set_v4(pe_ipnet_addr_t *a, const unsigned char *b4)
{
    memset(a, 0, sizeof(*a));
    a->family = AF_INET;
    memcpy(a->b, b4, 4);
}

/* Number of address bits of a family. */
static unsigned int ipnet_bits(int family)
{
    return family == AF_INET ? 32 : 128;
}

/* Parse an address with inet_pton (strict forms only). */
int pe_ipnet_addr_parse(const char *s, pe_ipnet_addr_t *a)
{
    unsigned char buf[16];

    if (!s || !*s)
        return -1;
    if (strchr(s, ':')) {
        if (inet_pton(AF_INET6, s, buf) != 1)
            return -1;
        ipnet_set_v6(a, buf);
        return 0;
    }
    if (inet_pton(AF_INET, s, buf) != 1)
        return -1;
    ipnet_set_v4(a, buf);
    return 0;
}

/* Copy the address out of a sockaddr_in / sockaddr_in6 after checking the length. */
int pe_ipnet_addr_from_sockaddr(const struct sockaddr *sa, apr_size_t len, pe_ipnet_addr_t *a)
{
    if (!sa || len < sizeof(sa_family_t))
        return -1;
    if (sa->sa_family == AF_INET && len >= sizeof(struct sockaddr_in)) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;

        ipnet_set_v4(a, (const unsigned char *)&in->sin_addr);
        return 0;
    }
    if (sa->sa_family == AF_INET6 && len >= sizeof(struct sockaddr_in6)) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;

        ipnet_set_v6(a, in6->sin6_addr.s6_addr);
        return 0;
    }
    return -1;
}

/* Copy the address out of an apr_sockaddr_t. */
int pe_ipnet_addr_from_apr(const apr_sockaddr_t *sa, pe_ipnet_addr_t *a)
{
    if (!sa)
        return -1;
    return pe_ipnet_addr_from_sockaddr((const struct sockaddr *)&sa->sa, (apr_size_t)sa->salen, a);
}

/* Canonical text of an address (inet_ntop prints RFC 5952 form on glibc). */
char *pe_ipnet_addr_str(apr_pool_t *p, const pe_ipnet_addr_t *a)
{
    char *buf = apr_palloc(p, PE_IPNET_ADDR_STRLEN);

    if (!inet_ntop(a->family == AF_INET ? AF_INET : AF_INET6, a->b, buf, PE_IPNET_ADDR_STRLEN))
        buf[0] = '\0';
    return buf;
}

/* Compare two addresses. */
int pe_ipnet_addr_eq(const pe_ipnet_addr_t *x, const pe_ipnet_addr_t *y)
{
    return x->family == y->family && memcmp(x->b, y->b, x->family == AF_INET ? 4 : 16) == 0;
}

/* Whether the first bits of x and y agree. */
static int ipnet_prefix_eq(const unsigned char *x, const unsigned char *y, unsigned int bits)
{
    unsigned int whole = bits / 8, rest = bits % 8;

    if (whole && memcmp(x, y, whole) != 0)
        return 0;
    if (rest) {
        unsigned char mask = (unsigned char)(0xff << (8 - rest));

        return (x[whole] & mask) == (y[whole] & mask);
    }
    return 1;
}

/* Clear every bit after the first bits; report whether any was set. */
static int ipnet_clear_host_bits(unsigned char *b, unsigned int nbytes, unsigned int bits)
{
    int had = 0;
    unsigned int i;

    for (i = 0; i < nbytes; i++) {
        unsigned char keep;

        if (i * 8 + 8 <= bits)
            keep = 0xff;
        else if (i * 8 >= bits)
            keep = 0;
        else
            keep = (unsigned char)(0xff << (8 - (bits - i * 8)));
        if (b[i] & (unsigned char)~keep)
            had = 1;
        b[i] &= keep;
    }
    return had;
}

/* The entry text as quoted in messages (cut when long). */
static const char *ipnet_quote(apr_pool_t *p, const char *s)
{
    if (strlen(s) > IPNET_QUOTE_MAX)
        return apr_psprintf(p, "\"%.*s...\"", IPNET_QUOTE_MAX, s);
    return apr_psprintf(p, "\"%s\"", s);
}

/* Parse "addr" or "addr/prefix" strictly. */
const char *pe_ipnet_parse(apr_pool_t *p, const char *s, pe_ipnet_t *n)
{
    const char *slash, *q;
    char *host;
    unsigned int prefix, max;
    unsigned char raw[16];
    int is_v6;
    pe_ipnet_t net;

    if (!s || !*s)
        return "empty network";
    q = ipnet_quote(p, s);
    slash = strchr(s, '/');
    host = slash ? apr_pstrmemdup(p, s, (apr_size_t)(slash - s)) : apr_pstrdup(p, s);
    if (strchr(host, '%'))
        return apr_psprintf(p, "%s: IPv6 zone ids are not allowed", q);
    is_v6 = strchr(host, ':') != NULL;
    if (inet_pton(is_v6 ? AF_INET6 : AF_INET, host, raw) != 1) {
        if (slash)
            return apr_psprintf(p, "%s: \"%s\" before '/' is not an IPv4 or IPv6 address", q, host);
        return apr_psprintf(p, "%s: not an IPv4 or IPv6 address", q);
    }
    max = is_v6 ? 128 : 32;
    prefix = max;
    if (slash) {
        const char *d = slash + 1;
        apr_size_t nd = strspn(d, "0123456789");

        if (nd == 0 || d[nd] != '\0')
            return apr_psprintf(p, "%s: the prefix length after '/' must be a decimal number", q);
        if (nd > 1 && d[0] == '0')
            return apr_psprintf(p, "%s: the prefix length has a leading zero", q);
        if (nd > 3)
            return apr_psprintf(p, "%s: prefix length %s is out of range for %s (0..%u)", q, d,
                                is_v6 ? "IPv6" : "IPv4", max);
        prefix = (unsigned int)strtoul(d, NULL, 10);
        if (prefix > max)
            return apr_psprintf(p, "%s: prefix length %u is out of range for %s (0..%u)", q, prefix,
                                is_v6 ? "IPv6" : "IPv4", max);
    }
    memset(&net, 0, sizeof(net));
    if (is_v6 && memcmp(raw, ipnet_mapped_prefix, sizeof(ipnet_mapped_prefix)) == 0 && prefix >= 96) {
        /* ::ffff:a.b.c.d/n is the IPv4 network a.b.c.d/(n-96): mapped addresses match as IPv4 */
        ipnet_set_v4(&net.addr, raw + 12);
        prefix -= 96;
    }
    else if (is_v6) {
        net.addr.family = AF_INET6;
        memcpy(net.addr.b, raw, 16);
    }
    else {
        ipnet_set_v4(&net.addr, raw);
    }
    net.prefix = prefix;
    if (ipnet_clear_host_bits(net.addr.b, net.addr.family == AF_INET ? 4 : 16, prefix))
        return apr_psprintf(p, "%s: host bits are set after the /%s prefix (the network is %s)", q, slash + 1,
                            pe_ipnet_str(p, &net));
    *n = net;
    return NULL;
}

/* Whether n contains a. */
int pe_ipnet_contains(const pe_ipnet_t *n, const pe_ipnet_addr_t *a)
{
    if (!n || !a || n->addr.family != a->family || n->prefix > ipnet_bits(a->family))
        return 0;
    return ipnet_prefix_eq(n->addr.b, a->b, n->prefix);
}

/* Canonical text of a network. */
char *pe_ipnet_str(apr_pool_t *p, const pe_ipnet_t *n)
{
    char *addr = pe_ipnet_addr_str(p, &n->addr);

    if (n->prefix == ipnet_bits(n->addr.family))
        return addr;
    return apr_psprintf(p, "%s/%u", addr, n->prefix);
}

/* Make an empty list. */
pe_ipnet_list_t *pe_ipnet_list_make(apr_pool_t *p)
{
    pe_ipnet_list_t *l = apr_palloc(p, sizeof(*l));

    l->nets = apr_array_make(p, 4, sizeof(pe_ipnet_t));
    return l;
}

/* Append a copy of n. */
void pe_ipnet_list_add(pe_ipnet_list_t *l, const pe_ipnet_t *n)
{
    *(pe_ipnet_t *)apr_array_push(l->nets) = *n;
}

/* Parse a separated list, naming the first bad entry. */
const char *pe_ipnet_list_parse(apr_pool_t *p, const char *s, pe_ipnet_list_t **out)
{
    static const char seps[] = " \t\r\n,";
    pe_ipnet_list_t *l = pe_ipnet_list_make(p);
    int idx = 0;

    while (s && *s) {
        apr_size_t len;
        const char *err;
        char *entry;
        pe_ipnet_t n;

        s += strspn(s, seps);
        len = strcspn(s, seps);
        if (len == 0)
            break;
        idx++;
        entry = apr_pstrmemdup(p, s, len);
        s += len;
        err = pe_ipnet_parse(p, entry, &n);
        if (err) {
            /* pe_ipnet_parse starts its message with the quoted entry; put the position first */
            return apr_psprintf(p, "entry %d %s", idx, err);
        }
        pe_ipnet_list_add(l, &n);
    }
    *out = l;
    return NULL;
}

/* Count the networks. */
int pe_ipnet_list_count(const pe_ipnet_list_t *l)
{
    return l && l->nets ? l->nets->nelts : 0;
}

/* Find the first containing network. */
const pe_ipnet_t *pe_ipnet_list_find(const pe_ipnet_list_t *l, const pe_ipnet_addr_t *a)
{
    int i;

    if (!l || !l->nets || !a)
        return NULL;
    for (i = 0; i < l->nets->nelts; i++) {
        const pe_ipnet_t *n = &APR_ARRAY_IDX(l->nets, i, pe_ipnet_t);

        if (pe_ipnet_contains(n, a))
            return n;
    }
    return NULL;
}

/* Match an address. */
int pe_ipnet_list_match(const pe_ipnet_list_t *l, const pe_ipnet_addr_t *a)
{
    return pe_ipnet_list_find(l, a) != NULL;
}

/* Match an address written as text. */
int pe_ipnet_list_match_str(const pe_ipnet_list_t *l, const char *ip)
{
    pe_ipnet_addr_t a;

    if (pe_ipnet_addr_parse(ip, &a) != 0)
        return 0;
    return pe_ipnet_list_match(l, &a);
}

/* Match the address of a socket address. */
int pe_ipnet_list_match_sockaddr(const pe_ipnet_list_t *l, const struct sockaddr *sa, apr_size_t len)
{
    pe_ipnet_addr_t a;

    if (pe_ipnet_addr_from_sockaddr(sa, len, &a) != 0)
        return 0;
    return pe_ipnet_list_match(l, &a);
}

/* Canonical text of the list. */
char *pe_ipnet_list_str(apr_pool_t *p, const pe_ipnet_list_t *l)
{
    int i, n = pe_ipnet_list_count(l);
    apr_array_header_t *parts;

    if (n == 0)
        return apr_pstrdup(p, "");
    parts = apr_array_make(p, n, sizeof(char *));
    for (i = 0; i < n; i++)
        APR_ARRAY_PUSH(parts, char *) = pe_ipnet_str(p, &APR_ARRAY_IDX(l->nets, i, pe_ipnet_t));
    return apr_array_pstrcat(p, parts, ' ');
}
