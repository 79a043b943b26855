/*
 * fuzz_ipnet.c: address and network parsing (pe_ipnet_*), as used for PEResearchAllowNetworks, the
 * access layer's IP lists and the SSRF guard. The first line is a network list; every further
 * line is tried as an address and as a network; the input's last bytes are also read as raw IPv4
 * and IPv6 socket addresses.
 *
 * Properties (pe_ipnet.h): a refused entry gets a message; the canonical text of a list, a network
 * or an address parses back to the same thing (and is its own canonical text); a network contains
 * its own address; matching an address, its text and its socket address agree with
 * pe_ipnet_list_find; IPv4-mapped IPv6 is IPv4.
 */
#include "pe_fuzz.h"

#include "pe_ipnet.h"

#include <netinet/in.h>

/* An address survives printing and parsing, and the list agrees with itself on it. */
static void fuzz_addr(apr_pool_t *p, const pe_ipnet_list_t *l, const pe_ipnet_addr_t *a)
{
    char *s = pe_ipnet_addr_str(p, a);
    pe_ipnet_addr_t back;

    PE_FUZZ_CHECK(a->family == AF_INET || a->family == AF_INET6);
    PE_FUZZ_CHECK(*s && strlen(s) < PE_IPNET_ADDR_STRLEN);
    PE_FUZZ_CHECK(pe_ipnet_addr_parse(s, &back) == 0 && pe_ipnet_addr_eq(a, &back));
    PE_FUZZ_CHECK(pe_ipnet_list_match(l, a) == (pe_ipnet_list_find(l, a) != NULL));
    PE_FUZZ_CHECK(pe_ipnet_list_match_str(l, s) == pe_ipnet_list_match(l, a));
    if (a->family == AF_INET6)
        PE_FUZZ_CHECK(strncmp(s, "::ffff:", 7) != 0 || strchr(s, '.') == NULL);
}

/* A network survives printing and parsing and contains its own address. */
static void fuzz_net(apr_pool_t *p, const pe_ipnet_t *n)
{
    char *s = pe_ipnet_str(p, n);
    pe_ipnet_t back;

    PE_FUZZ_CHECK(n->prefix <= (n->addr.family == AF_INET ? 32u : 128u));
    PE_FUZZ_CHECK(pe_ipnet_contains(n, &n->addr));
    PE_FUZZ_CHECK(pe_ipnet_parse(p, s, &back) == NULL);
    PE_FUZZ_CHECK(back.prefix == n->prefix && pe_ipnet_addr_eq(&back.addr, &n->addr));
    PE_FUZZ_CHECK(strcmp(pe_ipnet_str(p, &back), s) == 0);
}

/* The raw bytes at the end of the input as socket addresses. */
static void fuzz_sockaddr(apr_pool_t *p, const pe_ipnet_list_t *l, const uint8_t *data, size_t size)
{
    struct sockaddr_in in4;
    struct sockaddr_in6 in6;
    pe_ipnet_addr_t a;

    memset(&in4, 0, sizeof(in4));
    memset(&in6, 0, sizeof(in6));
    in4.sin_family = AF_INET;
    in6.sin6_family = AF_INET6;
    memcpy(&in4.sin_addr, data + size - 4, 4);
    PE_FUZZ_CHECK(pe_ipnet_addr_from_sockaddr((struct sockaddr *)&in4, sizeof(in4), &a) == 0);
    PE_FUZZ_CHECK(a.family == AF_INET && memcmp(a.b, data + size - 4, 4) == 0);
    PE_FUZZ_CHECK(pe_ipnet_list_match_sockaddr(l, (struct sockaddr *)&in4, sizeof(in4)) == pe_ipnet_list_match(l, &a));
    fuzz_addr(p, l, &a);
    /* a short length is refused */
    PE_FUZZ_CHECK(pe_ipnet_addr_from_sockaddr((struct sockaddr *)&in4, sizeof(in4) - 1, &a) == -1);
    if (size < 16)
        return;
    memcpy(&in6.sin6_addr, data + size - 16, 16);
    PE_FUZZ_CHECK(pe_ipnet_addr_from_sockaddr((struct sockaddr *)&in6, sizeof(in6), &a) == 0);
    PE_FUZZ_CHECK(pe_ipnet_list_match_sockaddr(l, (struct sockaddr *)&in6, sizeof(in6)) == pe_ipnet_list_match(l, &a));
    fuzz_addr(p, l, &a);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    apr_pool_t *p = pe_fuzz_pool();
    pe_ipnet_list_t *l = NULL, *again = NULL;
    const char *err, *rest;
    char *first, *canon;
    size_t rest_len;
    int i;

    rest = pe_fuzz_split(p, data, size, '\n', &first, &rest_len);
    err = pe_ipnet_list_parse(p, first, &l);
    if (err) {
        PE_FUZZ_CHECK(*err && l == NULL);
        l = pe_ipnet_list_make(p);
    }
    else {
        canon = pe_ipnet_list_str(p, l);
        PE_FUZZ_CHECK(pe_ipnet_list_parse(p, canon, &again) == NULL);
        PE_FUZZ_CHECK(pe_ipnet_list_count(again) == pe_ipnet_list_count(l));
        PE_FUZZ_CHECK(strcmp(pe_ipnet_list_str(p, again), canon) == 0);
        for (i = 0; i < pe_ipnet_list_count(l); i++)
            fuzz_net(p, &APR_ARRAY_IDX(l->nets, i, pe_ipnet_t));
    }

    while (rest) {
        char *line;
        pe_ipnet_addr_t a;
        pe_ipnet_t n;

        rest = pe_fuzz_split(p, (const uint8_t *)rest, rest_len, '\n', &line, &rest_len);
        if (pe_ipnet_addr_parse(line, &a) == 0)
            fuzz_addr(p, l, &a);
        else
            PE_FUZZ_CHECK(pe_ipnet_list_match_str(l, line) == 0);
        err = pe_ipnet_parse(p, line, &n);
        if (err)
            PE_FUZZ_CHECK(*err);
        else
            fuzz_net(p, &n);
    }

    if (size >= 4)
        fuzz_sockaddr(p, l, data, size);
    pe_fuzz_done(p);
    return 0;
}
