/* test_ssrf.c: address table (every range's edges), embeddings, allow list, URL vetting, curl callbacks. */
#include "pe_ssrf.h"
#include "pe_test.h"

#include <apr_strings.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stddef.h>
#include <stdio.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/*
 * The IPv4 ranges the guard must block, written independently of the implementation
 * (IANA IPv4 special-purpose registry, not globally reachable, plus multicast).
 */
static const struct {
    const char *start;
    unsigned int prefix;
} v4_blocked[] = {
    {"0.0.0.0", 8},      {"10.0.0.0", 8},       {"100.64.0.0", 10},     {"127.0.0.0", 8},
    {"169.254.0.0", 16}, {"172.16.0.0", 12},    {"192.0.0.0", 24},      {"192.0.2.0", 24},
    {"192.88.99.0", 24}, {"192.168.0.0", 16},   {"198.18.0.0", 15},     {"198.51.100.0", 24},
    {"203.0.113.0", 24}, {"224.0.0.0", 4},      {"240.0.0.0", 4},       {"255.255.255.255", 32},
};
#define NV4 (sizeof(v4_blocked) / sizeof(v4_blocked[0]))

/* Host-order value of a dotted quad. */
static uint32_t v4_u32(const char *s)
{
    struct in_addr in;

    ck_assert_int_eq(inet_pton(AF_INET, s, &in), 1);
    return ntohl(in.s_addr);
}

/* Reference classifier: inside any listed range. */
static int v4_ref_blocked(uint32_t x)
{
    apr_size_t i;

    for (i = 0; i < NV4; i++) {
        uint32_t start = v4_u32(v4_blocked[i].start);
        uint32_t size = v4_blocked[i].prefix == 0 ? 0 : (uint32_t)1 << (32 - v4_blocked[i].prefix);

        if (v4_blocked[i].prefix == 32 ? x == start : (x >= start && x - start < size))
            return 1;
    }
    return 0;
}

/* The address a.b.c.d of a host-order value. */
static pe_ipnet_addr_t v4_addr(uint32_t x)
{
    pe_ipnet_addr_t a;

    memset(&a, 0, sizeof(a));
    a.family = AF_INET;
    a.b[0] = (unsigned char)(x >> 24);
    a.b[1] = (unsigned char)(x >> 16);
    a.b[2] = (unsigned char)(x >> 8);
    a.b[3] = (unsigned char)x;
    return a;
}

/* Parse or fail. */
static pe_ipnet_addr_t addr_of(const char *s)
{
    pe_ipnet_addr_t a;

    ck_assert_msg(pe_ipnet_addr_parse(s, &a) == 0, "%s should parse", s);
    return a;
}

/* Classify v4 x and its IPv6 forms (mapped is IPv4 itself; NAT64 and 6to4 embed it). */
static void check_v4_and_embeddings(uint32_t x, int want, int *misclassified)
{
    pe_ipnet_addr_t a = v4_addr(x), e;
    pe_ssrf_class_t c;
    char *txt = pe_ipnet_addr_str(pe_tp, &a);
    const char *forms[3];
    int i;

    if (pe_ssrf_addr_classify(&a, &c) != want) {
        (*misclassified)++;
        fprintf(stderr, "misclassified %s (want %s)\n", txt, want ? "blocked" : "public");
    }
    ck_assert_int_eq(c.blocked, want);
    ck_assert(want ? c.range != NULL && c.name != NULL : c.range == NULL);
    forms[0] = apr_psprintf(pe_tp, "::ffff:%s", txt);
    forms[1] = apr_psprintf(pe_tp, "64:ff9b::%s", txt);
    forms[2] = apr_psprintf(pe_tp, "2002:%02x%02x:%02x%02x::1", a.b[0], a.b[1], a.b[2], a.b[3]);
    for (i = 0; i < 3; i++) {
        e = addr_of(forms[i]);
        if (pe_ssrf_addr_classify(&e, &c) != want) {
            (*misclassified)++;
            fprintf(stderr, "misclassified %s (want %s)\n", forms[i], want ? "blocked" : "public");
        }
        if (want && i > 0)
            ck_assert_ptr_nonnull(c.via);
    }
    /* IPv4-compatible is deprecated: blocked whatever it embeds */
    e = addr_of(apr_psprintf(pe_tp, "::%s", txt));
    if (x > 1 && !pe_ssrf_addr_classify(&e, &c)) {
        (*misclassified)++;
        fprintf(stderr, "misclassified ::%s (want blocked)\n", txt);
    }
}

START_TEST(v4_every_range_edge_and_neighbour)
{
    int misclassified = 0;
    apr_size_t i;

    for (i = 0; i < NV4; i++) {
        uint32_t first = v4_u32(v4_blocked[i].start);
        uint32_t last = v4_blocked[i].prefix == 0 ? 0xffffffffu
                                                  : first + (((uint32_t)1 << (32 - v4_blocked[i].prefix)) - 1);

        if (v4_blocked[i].prefix == 32)
            last = first;
        check_v4_and_embeddings(first, 1, &misclassified);
        check_v4_and_embeddings(last, 1, &misclassified);
        if (first > 0)
            check_v4_and_embeddings(first - 1, v4_ref_blocked(first - 1), &misclassified);
        if (last < 0xffffffffu)
            check_v4_and_embeddings(last + 1, v4_ref_blocked(last + 1), &misclassified);
    }
    ck_assert_int_eq(misclassified, 0);
}
END_TEST

START_TEST(v4_public_and_names)
{
    static const char *pub[] = {"8.8.8.8", "1.1.1.1", "93.184.216.34", "11.0.0.0", "126.255.255.255", "128.0.0.0",
                                "172.15.255.255", "172.32.0.0", "192.31.196.1", "192.52.193.1", "192.175.48.1",
                                "223.255.255.255", "100.63.255.255", "100.128.0.0", "169.253.255.255", NULL};
    pe_ssrf_class_t c;
    pe_ipnet_addr_t a;
    int i;

    for (i = 0; pub[i]; i++) {
        a = addr_of(pub[i]);
        ck_assert_msg(pe_ssrf_addr_classify(&a, &c) == 0, "%s must be public", pub[i]);
        ck_assert_str_eq(pe_ssrf_class_str(pe_tp, &c), "public");
    }
    a = addr_of("169.254.169.254");
    ck_assert_int_eq(pe_ssrf_addr_classify(&a, &c), 1);
    ck_assert_str_eq(c.range, "169.254.169.254/32");
    ck_assert_str_eq(c.name, "link-local (cloud metadata service)");
    a = addr_of("169.254.1.1");
    pe_ssrf_addr_classify(&a, &c);
    ck_assert_str_eq(c.range, "169.254.0.0/16");
    a = addr_of("127.0.0.1");
    pe_ssrf_addr_classify(&a, &c);
    ck_assert_str_eq(pe_ssrf_class_str(pe_tp, &c), "loopback 127.0.0.0/8");
    a = addr_of("0.0.0.0");
    pe_ssrf_addr_classify(&a, &c);
    ck_assert_str_eq(c.name, "unspecified");
    a = addr_of("255.255.255.255");
    pe_ssrf_addr_classify(&a, &c);
    ck_assert_str_eq(c.name, "limited broadcast");
    a = addr_of("100.100.100.100");
    pe_ssrf_addr_classify(&a, &c);
    ck_assert_str_eq(c.range, "100.64.0.0/10");
    a = addr_of("239.255.255.250");
    pe_ssrf_addr_classify(&a, &c);
    ck_assert_str_eq(c.name, "multicast");
    /* an address of no family is never public */
    memset(&a, 0, sizeof(a));
    ck_assert_int_eq(pe_ssrf_addr_classify(&a, NULL), 1);
    ck_assert_int_eq(pe_ssrf_addr_classify(NULL, NULL), 1);
}
END_TEST

START_TEST(v6_ranges_edges_and_embeddings)
{
    static const struct {
        const char *addr;
        int blocked;
    } cases[] = {
        {"::", 1},
        {"::1", 1},
        {"::2", 1},                  /* IPv4-compatible ::0.0.0.2 */
        {"::127.0.0.1", 1},          /* IPv4-compatible loopback */
        {"::8.8.8.8", 1},            /* IPv4-compatible, deprecated: blocked anyway */
        {"::ffff:127.0.0.1", 1},     /* mapped */
        {"::ffff:7f00:1", 1},
        {"::ffff:8.8.8.8", 0},
        {"::ffff:0:0", 1},           /* mapped 0.0.0.0 */
        {"::fffe:ffff:ffff", 1},     /* just below the mapped block: reserved, outside 2000::/3 */
        {"::1:0:0:0", 1},
        {"64:ff9b::7f00:1", 1},      /* NAT64 of 127.0.0.1 */
        {"64:ff9b::a9fe:a9fe", 1},   /* NAT64 of 169.254.169.254 */
        {"64:ff9b::808:808", 0},     /* NAT64 of 8.8.8.8 */
        {"64:ff9b::ffff:ffff", 1},   /* NAT64 of 255.255.255.255 */
        {"64:ff9b::", 1},            /* NAT64 of 0.0.0.0 */
        {"64:ff9b::1:0:0", 1},       /* just past 64:ff9b::/96 */
        {"64:ff9a:ffff:ffff:ffff:ffff:ffff:ffff", 1},
        {"64:ff9b:1::", 1},          /* local-use translation 64:ff9b:1::/48 */
        {"64:ff9b:1:ffff:ffff:ffff:ffff:ffff", 1},
        {"100::", 1},                /* discard-only */
        {"100::ffff:ffff:ffff:ffff", 1},
        {"100:0:0:1::", 1},          /* dummy prefix */
        {"1fff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 1}, /* below 2000::/3 */
        {"2000::", 0},
        {"2000:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 0},
        {"2001::", 1},               /* 2001::/23 IETF protocol assignments, Teredo */
        {"2001:0:4136:e378:8000:63bf:3fff:fdd2", 1},
        {"2001:2::1", 1},            /* benchmarking */
        {"2001:1ff:ffff:ffff:ffff:ffff:ffff:ffff", 1},
        {"2001:200::", 0},
        {"2001:4860:4860::8888", 0},
        {"2001:db7:ffff:ffff:ffff:ffff:ffff:ffff", 0},
        {"2001:db8::", 1},           /* documentation */
        {"2001:db8:ffff:ffff:ffff:ffff:ffff:ffff", 1},
        {"2001:db9::", 0},
        {"2001:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 0},
        {"2002::", 1},               /* 6to4 of 0.0.0.0 */
        {"2002:7f00:1::", 1},        /* 6to4 of 127.0.0.1 */
        {"2002:a00:1::1", 1},        /* 6to4 of 10.0.0.1 */
        {"2002:c0a8:101:1::1", 1},   /* 6to4 of 192.168.1.1 */
        {"2002:808:808::1", 0},      /* 6to4 of 8.8.8.8 */
        {"2002:ffff:ffff::", 1},     /* 6to4 of 255.255.255.255 */
        {"2003::", 0},
        {"2606:4700:4700::1111", 0},
        {"2620:4f:8000::1", 0},      /* AS112, globally reachable */
        {"3ffe:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 0},
        {"3fff::", 1},               /* documentation 3fff::/20 */
        {"3fff:fff:ffff:ffff:ffff:ffff:ffff:ffff", 1},
        {"3fff:1000::", 0},          /* just past 3fff::/20, still global unicast */
        {"3fff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 0}, /* last of 2000::/3 */
        {"4000::", 1},
        {"5f00::", 1},
        {"fbff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 1},
        {"fc00::", 1},               /* unique-local */
        {"fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 1},
        {"fe80::", 1},               /* link-local */
        {"febf:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 1},
        {"fec0::", 1},               /* site-local */
        {"ff00::", 1},               /* multicast */
        {"ff02::1", 1},
        {"ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 1},
    };
    apr_size_t i;
    int misclassified = 0;
    pe_ssrf_class_t c;
    pe_ipnet_addr_t a;

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        a = addr_of(cases[i].addr);
        if (pe_ssrf_addr_classify(&a, &c) != cases[i].blocked) {
            misclassified++;
            fprintf(stderr, "misclassified %s (want %s)\n", cases[i].addr, cases[i].blocked ? "blocked" : "public");
        }
    }
    ck_assert_int_eq(misclassified, 0);

    a = addr_of("64:ff9b::a9fe:a9fe");
    pe_ssrf_addr_classify(&a, &c);
    ck_assert_str_eq(pe_ssrf_class_str(pe_tp, &c),
                     "link-local (cloud metadata service) 169.254.169.254/32 via NAT64 64:ff9b::/96");
    a = addr_of("2002:a00:1::1");
    pe_ssrf_addr_classify(&a, &c);
    ck_assert_str_eq(c.range, "10.0.0.0/8");
    ck_assert_str_eq(c.via, "6to4 2002::/16");
    a = addr_of("::8.8.8.8");
    pe_ssrf_addr_classify(&a, &c);
    ck_assert_str_eq(c.range, "::/96");
    a = addr_of("::127.0.0.1");
    pe_ssrf_addr_classify(&a, &c);
    ck_assert_str_eq(c.name, "loopback");
    ck_assert_str_eq(c.via, "IPv4-compatible ::/96");
    a = addr_of("::1");
    pe_ssrf_addr_classify(&a, &c);
    ck_assert_str_eq(pe_ssrf_class_str(pe_tp, &c), "loopback ::1/128");
    a = addr_of("2001:0:4136:e378:8000:63bf:3fff:fdd2");
    pe_ssrf_addr_classify(&a, &c);
    ck_assert_str_eq(c.name, "Teredo");
    a = addr_of("fd12:3456::1");
    pe_ssrf_addr_classify(&a, &c);
    ck_assert_str_eq(c.range, "fc00::/7");
    a = addr_of("4000::1");
    pe_ssrf_addr_classify(&a, &c);
    ck_assert_str_eq(c.range, "outside 2000::/3");
}
END_TEST

START_TEST(allow_list_parse)
{
    pe_ssrf_allow_list_t *l;
    const char *err;

    ck_assert_ptr_null(pe_ssrf_allow_parse(pe_tp, "", &l));
    ck_assert_int_eq(pe_ssrf_allow_count(l), 0);
    ck_assert_str_eq(pe_ssrf_allow_str(pe_tp, l), "");
    /* no ports: the web ports */
    ck_assert_ptr_null(pe_ssrf_allow_parse(pe_tp, "127.0.0.2", &l));
    ck_assert_str_eq(pe_ssrf_allow_str(pe_tp, l), "127.0.0.2:80,443");
    ck_assert_ptr_null(pe_ssrf_allow_parse(pe_tp, "127.0.0.2:8080 10.0.0.0/8:80,443 [::1]:8443", &l));
    ck_assert_int_eq(pe_ssrf_allow_count(l), 3);
    ck_assert_str_eq(pe_ssrf_allow_str(pe_tp, l), "127.0.0.2:8080 10.0.0.0/8:80,443 [::1]:8443");
    /* commas between entries, spaces between ports, ranges, bracketed prefixes both ways, bare IPv6 */
    ck_assert_ptr_null(pe_ssrf_allow_parse(pe_tp, "127.0.0.2/32, fd00::/8,10.1.0.0/16:8000-8099, 81 "
                                                  "[fd00::/16]:9000 [fe80::]/10:1-65535 [::ffff:127.0.0.3]:443",
                                           &l));
    ck_assert_str_eq(pe_ssrf_allow_str(pe_tp, l), "127.0.0.2:80,443 [fd00::/8]:80,443 10.1.0.0/16:8000-8099,81 "
                                                  "[fd00::/16]:9000 [fe80::/10]:1-65535 127.0.0.3:443");
    ck_assert_int_eq(pe_ssrf_allow_names_port(l, 8050), 1);
    ck_assert_int_eq(pe_ssrf_allow_names_port(l, 8100), 1); /* fe80::/10 names every port */
    ck_assert_ptr_null(pe_ssrf_allow_parse(pe_tp, "127.0.0.2:8080", &l));
    ck_assert_int_eq(pe_ssrf_allow_names_port(l, 8080), 1);
    ck_assert_int_eq(pe_ssrf_allow_names_port(l, 8081), 0);
    ck_assert_int_eq(pe_ssrf_allow_names_port(l, 80), 0);
    ck_assert_int_eq(pe_ssrf_allow_names_port(NULL, 80), 0);

    /* errors name the entry */
    err = pe_ssrf_allow_parse(pe_tp, "127.0.0.2:0", &l);
    ck_assert_ptr_nonnull(err);
    ck_assert_ptr_nonnull(strstr(err, "entry 1 \"127.0.0.2:0\""));
    ck_assert_ptr_nonnull(strstr(err, "is not a number 1-65535"));
    ck_assert_ptr_nonnull(pe_ssrf_allow_parse(pe_tp, "127.0.0.2:65536", &l));
    ck_assert_ptr_nonnull(pe_ssrf_allow_parse(pe_tp, "127.0.0.2:080", &l));
    ck_assert_ptr_nonnull(pe_ssrf_allow_parse(pe_tp, "127.0.0.2:", &l));
    ck_assert_ptr_nonnull(pe_ssrf_allow_parse(pe_tp, "127.0.0.2:90-80", &l));
    ck_assert_ptr_nonnull(pe_ssrf_allow_parse(pe_tp, "127.0.0.2:80-", &l));
    ck_assert_ptr_nonnull(pe_ssrf_allow_parse(pe_tp, "127.0.0.2:1-2-3", &l));
    ck_assert_ptr_nonnull(pe_ssrf_allow_parse(pe_tp, "127.0.0.2:http", &l));
    ck_assert_ptr_nonnull(pe_ssrf_allow_parse(pe_tp, "127.0.0.2:*", &l));
    ck_assert_ptr_nonnull(pe_ssrf_allow_parse(pe_tp, "[127.0.0.2]:80", &l));
    ck_assert_ptr_nonnull(pe_ssrf_allow_parse(pe_tp, "[::1:80", &l));
    ck_assert_ptr_nonnull(pe_ssrf_allow_parse(pe_tp, "[::1]80", &l));
    ck_assert_ptr_nonnull(pe_ssrf_allow_parse(pe_tp, "::ffff:127.0.0.3:443", &l));
    ck_assert_ptr_nonnull(pe_ssrf_allow_parse(pe_tp, "localhost:80", &l));
    err = pe_ssrf_allow_parse(pe_tp, "127.0.0.2 8080", &l);
    ck_assert_ptr_nonnull(err);
    ck_assert_ptr_nonnull(strstr(err, "follows no network with ports"));
    err = pe_ssrf_allow_parse(pe_tp, "8080", &l);
    ck_assert_ptr_nonnull(err);
    err = pe_ssrf_allow_parse(pe_tp, "127.0.0.2:80 127.0.0.1/8:80", &l);
    ck_assert_ptr_nonnull(err);
    ck_assert_ptr_nonnull(strstr(err, "entry 2"));
    ck_assert_ptr_nonnull(strstr(err, "127.0.0.0/8"));
}
END_TEST

START_TEST(allow_list_and_ports)
{
    pe_ssrf_allow_list_t *allow;
    pe_ssrf_policy_t pol = {0};
    pe_ssrf_class_t c;
    pe_ipnet_addr_t a;

    ck_assert_ptr_null(pe_ssrf_allow_parse(pe_tp, "127.0.0.0/8:8123 [::1]:80 10.1.0.0/16", &allow));
    /* without a policy: loopback refused, public only on 80/443 */
    a = addr_of("127.0.0.1");
    ck_assert_int_eq(pe_ssrf_dest_permitted(NULL, &a, 80, &c), 0);
    ck_assert_int_eq(c.blocked, 1);
    ck_assert_int_eq(c.allowed, 0);
    a = addr_of("93.184.216.34");
    ck_assert_int_eq(pe_ssrf_dest_permitted(NULL, &a, 80, NULL), 1);
    ck_assert_int_eq(pe_ssrf_dest_permitted(NULL, &a, 443, NULL), 1);
    ck_assert_int_eq(pe_ssrf_dest_permitted(NULL, &a, 0, NULL), 1);
    ck_assert_int_eq(pe_ssrf_dest_permitted(NULL, &a, 22, &c), 0);
    ck_assert_int_eq(c.blocked, 0);
    ck_assert_int_eq(pe_ssrf_dest_permitted(NULL, &a, 6379, NULL), 0);
    ck_assert_int_eq(pe_ssrf_dest_permitted(NULL, &a, 11211, NULL), 0);
    ck_assert_int_eq(pe_ssrf_dest_permitted(NULL, &a, -1, NULL), 0);
    ck_assert_int_eq(pe_ssrf_dest_permitted(NULL, &a, 65536, NULL), 0);
    pol.any_port = 1;
    ck_assert_int_eq(pe_ssrf_dest_permitted(&pol, &a, 8080, NULL), 1);
    ck_assert_int_eq(pe_ssrf_dest_permitted(&pol, &a, 65536, NULL), 0);
    pol.any_port = 0;

    /* the allow list overrides the table for the network and ports it names */
    pol.allow = allow;
    a = addr_of("127.0.0.1");
    ck_assert_int_eq(pe_ssrf_dest_permitted(&pol, &a, 8123, &c), 1);
    ck_assert_int_eq(c.blocked, 1);
    ck_assert_int_eq(c.allowed, 1);
    ck_assert_str_eq(pe_ssrf_class_str(pe_tp, &c), "loopback 127.0.0.0/8, allow-listed");
    a = addr_of("::ffff:127.0.0.2");
    ck_assert_int_eq(pe_ssrf_dest_permitted(&pol, &a, 8123, NULL), 1);
    /* but on no other port of those addresses: not the web ports, not a service's port */
    ck_assert_int_eq(pe_ssrf_dest_permitted(&pol, &a, 80, &c), 0);
    ck_assert_int_eq(c.allowed, 0);
    ck_assert_int_eq(c.other_ports, 1);
    ck_assert_str_eq(pe_ssrf_class_str(pe_tp, &c), "loopback 127.0.0.0/8, allow-listed on other ports only");
    ck_assert_int_eq(pe_ssrf_dest_permitted(&pol, &a, 8279, NULL), 0);
    ck_assert_int_eq(pe_ssrf_dest_permitted(&pol, &a, 6379, NULL), 0);
    ck_assert_int_eq(pe_ssrf_dest_permitted(&pol, &a, -1, NULL), 0);
    ck_assert_int_eq(pe_ssrf_dest_permitted(&pol, &a, 0, NULL), 1); /* address only: on some port */
    a = addr_of("::1");
    ck_assert_int_eq(pe_ssrf_dest_permitted(&pol, &a, 80, NULL), 1);
    ck_assert_int_eq(pe_ssrf_dest_permitted(&pol, &a, 443, NULL), 0);
    ck_assert_int_eq(pe_ssrf_dest_permitted(&pol, &a, 8123, NULL), 0);
    /* an entry without ports means 80 and 443 */
    a = addr_of("10.1.255.255");
    ck_assert_int_eq(pe_ssrf_dest_permitted(&pol, &a, 80, NULL), 1);
    ck_assert_int_eq(pe_ssrf_dest_permitted(&pol, &a, 443, NULL), 1);
    ck_assert_int_eq(pe_ssrf_dest_permitted(&pol, &a, 8080, NULL), 0);
    ck_assert_int_eq(pe_ssrf_dest_permitted(&pol, &a, 22, NULL), 0);
    /* and only the networks it names */
    a = addr_of("10.2.0.0");
    ck_assert_int_eq(pe_ssrf_dest_permitted(&pol, &a, 80, &c), 0);
    ck_assert_int_eq(c.other_ports, 0);
    a = addr_of("169.254.169.254");
    ck_assert_int_eq(pe_ssrf_dest_permitted(&pol, &a, 80, NULL), 0);
    a = addr_of("64:ff9b::7f00:1"); /* an embedding is not the allowed address */
    ck_assert_int_eq(pe_ssrf_dest_permitted(&pol, &a, 8123, NULL), 0);
    a = addr_of("::2");
    ck_assert_int_eq(pe_ssrf_dest_permitted(&pol, &a, 80, NULL), 0);
    /* public addresses keep the port rule */
    a = addr_of("93.184.216.34");
    ck_assert_int_eq(pe_ssrf_dest_permitted(&pol, &a, 22, NULL), 0);
    ck_assert_int_eq(pe_ssrf_dest_permitted(&pol, &a, 8123, NULL), 0);
    ck_assert_int_eq(pe_ssrf_dest_permitted(&pol, &a, 443, NULL), 1);
    /* a public network may be given more ports */
    ck_assert_ptr_null(pe_ssrf_allow_parse(pe_tp, "93.184.216.0/24:8443", &allow));
    pol.allow = allow;
    ck_assert_int_eq(pe_ssrf_dest_permitted(&pol, &a, 8443, NULL), 1);
    ck_assert_int_eq(pe_ssrf_dest_permitted(&pol, &a, 443, NULL), 1);
    ck_assert_int_eq(pe_ssrf_dest_permitted(&pol, &a, 8444, NULL), 0);
}
END_TEST

/* Vet url with pol; assert refusal whose reason contains want (or acceptance when want is NULL). */
static pe_ssrf_url_t vet(const char *url, const pe_ssrf_policy_t *pol, const char *want)
{
    pe_ssrf_url_t u;
    const char *err;

    memset(&u, 0, sizeof(u));
    err = pe_ssrf_url_vet(pe_tp, url, pol, &u);
    if (want) {
        ck_assert_msg(err != NULL, "%s must be refused", url);
        ck_assert_msg(strstr(err, want) != NULL, "%s: reason \"%s\" lacks \"%s\"", url, err, want);
    }
    else {
        ck_assert_msg(err == NULL, "%s must pass: %s", url, err);
    }
    return u;
}

START_TEST(url_numeric_forms_normalised_then_blocked)
{
    static const char *loop[] = {"http://2130706433/",     "http://0177.0.0.1/",   "http://0x7f.1/",
                                 "http://017700000001/",   "http://127.1/",        "http://0x7f000001/",
                                 "http://127.0.0.1/",      "http://127.0.0.1./",   "http://%31%32%37.0.0.1/",
                                 "HTTP://127.0.0.1:80/x",  "https://127.0.0.1:443/", "http://[::ffff:127.0.0.1]/",
                                 "http://[::ffff:7f00:1]/", "http://[::1]/",        "http://[0:0::1]/",
                                 "http://[::127.0.0.1]/",  "http://[64:ff9b::7f00:1]/", "http://[2002:7f00:1::]/",
                                 NULL};
    pe_ssrf_url_t u;
    int i;

    for (i = 0; loop[i]; i++)
        vet(loop[i], NULL, "blocked address");
    vet("http://0x7f.1/", NULL, "loopback 127.0.0.0/8");
    vet("http://0.0.0.0/", NULL, "unspecified");
    vet("http://[::]/", NULL, "unspecified");
    vet("http://169.254.169.254/latest/meta-data/", NULL, "cloud metadata");
    vet("http://2852039166/", NULL, "cloud metadata"); /* 169.254.169.254 as one number */
    vet("http://10.0.0.1/", NULL, "private-use");
    vet("http://172.16.0.1/", NULL, "private-use");
    vet("http://192.168.0.1/", NULL, "private-use");
    vet("http://100.64.0.1/", NULL, "CGNAT");
    vet("http://[fc00::1]/", NULL, "unique-local");
    vet("http://[fe80::1]/", NULL, "link-local");
    vet("http://[fe80::1%25lo]/", NULL, "zone id");
    vet("http://256.1.1.1/", NULL, "numeric host");
    vet("http://1.2.3.4.5/", NULL, "numeric host");
    vet("http://0x100000000/", NULL, "numeric host");
    vet("http://example.123/", NULL, "numeric host");

    u = vet("http://[::ffff:127.0.0.1]/", NULL, "loopback");
    u = vet("http://93.184.216.34/a", NULL, NULL);
    ck_assert_int_eq(u.host_is_ip, 1);
    ck_assert_str_eq(pe_ipnet_addr_str(pe_tp, &u.addr), "93.184.216.34");
    ck_assert_int_eq(u.port, 80);
    u = vet("http://1572395042/", NULL, NULL); /* 93.184.216.34 as one number: public */
    ck_assert_str_eq(u.host, "93.184.216.34");
    ck_assert_str_eq(u.url, "http://93.184.216.34/");
    u = vet("https://[2606:4700:4700::1111]/dns", NULL, NULL);
    ck_assert_str_eq(u.host, "2606:4700:4700::1111");
    ck_assert_int_eq(u.port, 443);
    ck_assert_int_eq(u.addr.family, AF_INET6);
}
END_TEST

START_TEST(url_schemes_userinfo_ports_names)
{
    static const char *schemes[] = {"file:///etc/passwd", "gopher://example.com/", "dict://example.com:11211/stat",
                                    "ftp://example.com/", "ldap://example.com/",  "ftps://example.com/",
                                    "smtp://example.com/", "telnet://example.com/", "tftp://example.com/x",
                                    "ws://example.com/", NULL};
    static const char *userinfo[] = {"http://user:pass@example.com/", "http://user@example.com/",
                                     "http://@example.com/",          "http://:@example.com/",
                                     "http://public@127.0.0.1/",      "http://127.0.0.1:80@example.com/",
                                     "http://1.1.1.1\\@127.0.0.1/",   "http://;@example.com/", NULL};
    pe_ssrf_policy_t pol = {0};
    pe_ssrf_allow_list_t *allow;
    pe_ssrf_url_t u;
    char *longurl;
    int i;

    for (i = 0; schemes[i]; i++) {
        const char *err = pe_ssrf_url_vet(pe_tp, schemes[i], NULL, NULL);

        ck_assert_msg(err != NULL, "%s must be refused", schemes[i]);
    }
    vet("gopher://example.com/", NULL, "scheme");
    vet("javascript:alert(1)", NULL, "malformed URL");
    vet("example.com/page", NULL, "malformed URL");
    vet("//example.com/page", NULL, "malformed URL");
    for (i = 0; userinfo[i]; i++)
        vet(userinfo[i], NULL, "userinfo");
    vet("http:///path", NULL, "");
    vet("", NULL, "empty URL");
    ck_assert_ptr_nonnull(pe_ssrf_url_vet(pe_tp, NULL, NULL, NULL));
    vet("http://a b.com/", NULL, "malformed URL");
    vet("http://ex\\ample.com/", NULL, "malformed URL");
    vet("http://example.com/\r\nX: y", NULL, "malformed URL");
    vet("http://a%7f.com/", NULL, "control character in host name"); /* found by tests/fuzz/fuzz_ssrf */
    vet("http:/.%7f", NULL, "control character in host name");

    /* ports */
    vet("http://example.com:0/", NULL, "port out of range");
    vet("http://example.com:65536/", NULL, "malformed URL");
    vet("http://example.com:22/", NULL, "port 22 is not allowed");
    vet("http://93.184.216.34:6379/", NULL, "port 6379 is not allowed");
    vet("http://example.com:8080/", NULL, "port 8080");
    pol.any_port = 1;
    vet("http://example.com:8080/", &pol, NULL);
    pol.any_port = 0;

    /* names that always mean something internal */
    vet("http://localhost/", NULL, "single-label");
    vet("http://intranet/", NULL, "single-label");
    vet("http://localhost./", NULL, "single-label");
    vet("http://foo.localhost/", NULL, "reserved host name");
    vet("http://metadata.google.internal/computeMetadata/v1/", NULL, "reserved host name");
    vet("http://printer.local/", NULL, "reserved host name");
    vet("http://router.home.arpa/", NULL, "reserved host name");
    vet("http://x.onion/", NULL, "reserved host name");
    vet("http://LOCALHOST.localdomain/", NULL, "reserved host name");
    vet("http://notlocal.com/", NULL, NULL); /* suffix match is by label */

    /* accepted URLs come back normalised, fragment removed */
    u = vet("HTTPS://Example.COM/a b?q=1#frag", NULL, NULL);
    ck_assert_str_eq(u.scheme, "https");
    ck_assert_str_eq(u.host, "example.com");
    ck_assert_int_eq(u.port, 443);
    ck_assert_int_eq(u.host_is_ip, 0);
    ck_assert_str_eq(u.url, "https://Example.COM/a%20b?q=1");
    u = vet("http://example.com:080/", NULL, NULL);
    ck_assert_int_eq(u.port, 80);

    /* too long */
    longurl = apr_palloc(pe_tp, PE_SSRF_URL_MAX + 2);
    memcpy(longurl, "http://example.com/", 19);
    memset(longurl + 19, 'a', PE_SSRF_URL_MAX + 1 - 19);
    longurl[PE_SSRF_URL_MAX + 1] = '\0';
    vet(longurl, NULL, "too long");
    longurl[PE_SSRF_URL_MAX] = '\0';
    vet(longurl, NULL, NULL);

    /* with an allow list: its addresses pass on the ports it names, and every other check stays on */
    ck_assert_ptr_null(pe_ssrf_allow_parse(pe_tp, "127.0.0.0/8:8123", &allow));
    pol.allow = allow;
    u = vet("http://127.0.0.1:8123/page", &pol, NULL);
    ck_assert_int_eq(u.host_is_ip, 1);
    ck_assert_int_eq(u.port, 8123);
    vet("http://127.0.0.2:8279/", &pol, "allow-listed on other ports only");
    vet("http://127.0.0.2/", &pol, "loopback");
    vet("http://localhost:8123/", &pol, "single-label host name");
    vet("http://db.localhost:8123/", &pol, "reserved host name");
    vet("http://intranet:8123/", &pol, "single-label host name");
    vet("http://pages.example:8123/", &pol, "reserved host name");
    vet("http://10.0.0.1/", &pol, "private-use");
    vet("http://[::1]:8123/", &pol, "loopback");
    vet("http://user@127.0.0.1:8123/", &pol, "userinfo");
    vet("http://93.184.216.34:22/", &pol, "port 22");
    /* a name may resolve into the list, so its port may be one the list names; the socket check decides */
    vet("http://pages.example.com:8123/", &pol, NULL);
    vet("http://pages.example.com:22/", &pol, "port 22 is not allowed");
    vet("http://pages.example.com/", &pol, NULL);
}
END_TEST

/* A curl_sockaddr with room for an IPv6 socket address, as libcurl allocates it. */
typedef union test_csa_t {
    struct curl_sockaddr cs;
    unsigned char room[sizeof(struct curl_sockaddr) + sizeof(struct sockaddr_in6)];
} test_csa_t;

/* Fill csa with ip:port. */
static void csa_set(test_csa_t *csa, const char *ip, int port)
{
    memset(csa, 0, sizeof(*csa));
    csa->cs.socktype = SOCK_STREAM;
    csa->cs.protocol = IPPROTO_TCP;
    if (strchr(ip, ':')) {
        struct sockaddr_in6 in6;

        memset(&in6, 0, sizeof(in6));
        in6.sin6_family = AF_INET6;
        in6.sin6_port = htons((unsigned short)port);
        ck_assert_int_eq(inet_pton(AF_INET6, ip, &in6.sin6_addr), 1);
        csa->cs.family = AF_INET6;
        csa->cs.addrlen = sizeof(in6);
        memcpy((unsigned char *)csa + offsetof(struct curl_sockaddr, addr), &in6, sizeof(in6));
    }
    else {
        struct sockaddr_in in4;

        memset(&in4, 0, sizeof(in4));
        in4.sin_family = AF_INET;
        in4.sin_port = htons((unsigned short)port);
        ck_assert_int_eq(inet_pton(AF_INET, ip, &in4.sin_addr), 1);
        csa->cs.family = AF_INET;
        csa->cs.addrlen = sizeof(in4);
        memcpy((unsigned char *)csa + offsetof(struct curl_sockaddr, addr), &in4, sizeof(in4));
    }
}

START_TEST(opensocket_and_prereq_callbacks)
{
    pe_ssrf_guard_t g;
    test_csa_t csa;
    curl_socket_t s;
    pe_ssrf_allow_list_t *allow;
    pe_ssrf_policy_t pol = {0};

    pe_ssrf_guard_init(&g, NULL);
    csa_set(&csa, "127.0.0.1", 80);
    ck_assert_int_eq(pe_ssrf_opensocket_cb(&g, CURLSOCKTYPE_IPCXN, &csa.cs), CURL_SOCKET_BAD);
    ck_assert_uint_eq(g.refused, 1);
    ck_assert_uint_eq(g.permitted, 0);
    ck_assert_str_eq(g.last_addr, "127.0.0.1");
    ck_assert_int_eq(g.last_port, 80);
    ck_assert_str_eq(g.last.name, "loopback");

    csa_set(&csa, "::ffff:169.254.169.254", 80);
    ck_assert_int_eq(pe_ssrf_opensocket_cb(&g, CURLSOCKTYPE_IPCXN, &csa.cs), CURL_SOCKET_BAD);
    ck_assert_uint_eq(g.refused, 2);
    ck_assert_str_eq(g.last_addr, "169.254.169.254");

    csa_set(&csa, "fd00::5", 443);
    ck_assert_int_eq(pe_ssrf_opensocket_cb(&g, CURLSOCKTYPE_IPCXN, &csa.cs), CURL_SOCKET_BAD);
    ck_assert_str_eq(g.last_addr, "fd00::5");
    ck_assert_int_eq(g.last_port, 443);

    /* a public address on a wrong port is refused too; on 443 a socket is made (no traffic) */
    csa_set(&csa, "93.184.216.34", 25);
    ck_assert_int_eq(pe_ssrf_opensocket_cb(&g, CURLSOCKTYPE_IPCXN, &csa.cs), CURL_SOCKET_BAD);
    ck_assert_uint_eq(g.refused, 4);
    ck_assert_int_eq(g.last.blocked, 0);
    csa_set(&csa, "93.184.216.34", 443);
    s = pe_ssrf_opensocket_cb(&g, CURLSOCKTYPE_IPCXN, &csa.cs);
    ck_assert_int_ne(s, CURL_SOCKET_BAD);
    ck_assert_uint_eq(g.permitted, 1);
    close(s);

    /* a connection without a port is not "address only" */
    csa_set(&csa, "93.184.216.34", 0);
    ck_assert_int_eq(pe_ssrf_opensocket_cb(&g, CURLSOCKTYPE_IPCXN, &csa.cs), CURL_SOCKET_BAD);
    ck_assert_uint_eq(g.refused, 5);
    csa_set(&csa, "93.184.216.34", 443);

    /* only outgoing IP connections */
    ck_assert_int_eq(pe_ssrf_opensocket_cb(&g, CURLSOCKTYPE_ACCEPT, &csa.cs), CURL_SOCKET_BAD);
    ck_assert_uint_eq(g.refused, 6);
    csa.cs.family = AF_UNIX;
    ((struct sockaddr *)((unsigned char *)&csa + offsetof(struct curl_sockaddr, addr)))->sa_family = AF_UNIX;
    ck_assert_int_eq(pe_ssrf_opensocket_cb(&g, CURLSOCKTYPE_IPCXN, &csa.cs), CURL_SOCKET_BAD);
    ck_assert_uint_eq(g.refused, 7);
    ck_assert_int_eq(pe_ssrf_opensocket_cb(NULL, CURLSOCKTYPE_IPCXN, &csa.cs), CURL_SOCKET_BAD);

    /* allow list: its network on its ports only */
    ck_assert_ptr_null(pe_ssrf_allow_parse(pe_tp, "127.0.0.0/8:8123", &allow));
    pol.allow = allow;
    pe_ssrf_guard_init(&g, &pol);
    csa_set(&csa, "127.0.0.1", 8123);
    s = pe_ssrf_opensocket_cb(&g, CURLSOCKTYPE_IPCXN, &csa.cs);
    ck_assert_int_ne(s, CURL_SOCKET_BAD);
    ck_assert_uint_eq(g.permitted, 1);
    ck_assert_uint_eq(g.refused, 0);
    close(s);
    csa_set(&csa, "127.0.0.2", 8279);
    ck_assert_int_eq(pe_ssrf_opensocket_cb(&g, CURLSOCKTYPE_IPCXN, &csa.cs), CURL_SOCKET_BAD);
    ck_assert_uint_eq(g.refused, 1);
    ck_assert_int_eq(g.last.other_ports, 1);
    csa_set(&csa, "127.0.0.2", 80);
    ck_assert_int_eq(pe_ssrf_opensocket_cb(&g, CURLSOCKTYPE_IPCXN, &csa.cs), CURL_SOCKET_BAD);
    ck_assert_uint_eq(g.refused, 2);

    /* prereq: the peer of a (possibly reused) connection */
    pe_ssrf_guard_init(&g, NULL);
    ck_assert_int_eq(pe_ssrf_prereq_cb(&g, "127.0.0.1", "127.0.0.1", 80, 5555), CURL_PREREQFUNC_ABORT);
    ck_assert_uint_eq(g.refused, 1);
    ck_assert_int_eq(pe_ssrf_prereq_cb(&g, "93.184.216.34", "10.0.0.2", 443, 5555), CURL_PREREQFUNC_OK);
    ck_assert_int_eq(pe_ssrf_prereq_cb(&g, "93.184.216.34", "10.0.0.2", 8443, 5555), CURL_PREREQFUNC_ABORT);
    ck_assert_int_eq(pe_ssrf_prereq_cb(&g, "93.184.216.34", "10.0.0.2", 0, 5555), CURL_PREREQFUNC_ABORT);
    ck_assert_int_eq(pe_ssrf_prereq_cb(&g, "fe80::1%eth0", "", 80, 5555), CURL_PREREQFUNC_ABORT);
    ck_assert_int_eq(pe_ssrf_prereq_cb(&g, "garbage", "", 80, 5555), CURL_PREREQFUNC_ABORT);
    ck_assert_int_eq(pe_ssrf_prereq_cb(&g, NULL, "", 80, 5555), CURL_PREREQFUNC_ABORT);
    ck_assert_uint_eq(g.refused, 6);
    ck_assert_int_eq(pe_ssrf_prereq_cb(NULL, "93.184.216.34", "", 443, 1), CURL_PREREQFUNC_ABORT);
    pe_ssrf_guard_init(&g, &pol);
    ck_assert_int_eq(pe_ssrf_prereq_cb(&g, "127.0.0.1", "127.0.0.1", 8123, 5555), CURL_PREREQFUNC_OK);
    ck_assert_int_eq(pe_ssrf_prereq_cb(&g, "127.0.0.1", "127.0.0.1", 8124, 5555), CURL_PREREQFUNC_ABORT);
}
END_TEST

/* ---- real transfers on loopback: a tiny HTTP responder and a canary listener ---- */

typedef struct test_srv_t {
    int fd;
    int port;
    int conns;             /* connections answered */
    const char *response;  /* sent to every connection */
    pthread_t th;
} test_srv_t;

/* Listen on ip:0 and report the port; -1 if the address cannot be bound. */
static int srv_listen(test_srv_t *s, const char *ip)
{
    struct sockaddr_in in4;
    socklen_t len = sizeof(in4);

    memset(s, 0, sizeof(*s));
    s->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ck_assert_int_ge(s->fd, 0);
    memset(&in4, 0, sizeof(in4));
    in4.sin_family = AF_INET;
    inet_pton(AF_INET, ip, &in4.sin_addr);
    if (bind(s->fd, (struct sockaddr *)&in4, sizeof(in4)) != 0 || listen(s->fd, 8) != 0) {
        close(s->fd);
        return -1;
    }
    getsockname(s->fd, (struct sockaddr *)&in4, &len);
    s->port = ntohs(in4.sin_port);
    return 0;
}

/* Answer one connection (waiting at most 5 s for it). */
static void *srv_run(void *arg)
{
    test_srv_t *s = arg;

    {
        struct pollfd pfd = {s->fd, POLLIN, 0};
        char buf[4096];
        int c;
        ssize_t got, total = 0;

        if (poll(&pfd, 1, 5000) != 1)
            return NULL;
        c = accept(s->fd, NULL, NULL);
        if (c < 0)
            return NULL;
        /* read the request head */
        while (total < (ssize_t)sizeof(buf) - 1 && (got = recv(c, buf + total, sizeof(buf) - 1 - total, 0)) > 0) {
            total += got;
            buf[total] = '\0';
            if (strstr(buf, "\r\n\r\n"))
                break;
        }
        if (send(c, s->response, strlen(s->response), MSG_NOSIGNAL) < 0)
            fprintf(stderr, "send: %s\n", strerror(errno));
        s->conns++;
        close(c);
    }
    return NULL;
}

/* Whether a canary listener has a connection waiting (it never accepts). */
static int canary_hit(int fd)
{
    struct pollfd pfd = {fd, POLLIN, 0};

    return poll(&pfd, 1, 0) == 1;
}

/* Discard the body. */
static size_t sink_cb(char *d, size_t sz, size_t n, void *u)
{
    (void)d;
    (void)u;
    return sz * n;
}

/* An easy handle with the guard, short timeouts, the given redirect cap. */
static CURL *guarded_handle(pe_ssrf_guard_t *g, const char *url, long redirs)
{
    pe_ssrf_limits_t lim = {1000, 3000, redirs, 0};
    CURL *h = curl_easy_init();

    ck_assert_ptr_nonnull(h);
    ck_assert_int_eq(pe_ssrf_curl_setopts(h, g, &lim), CURLE_OK);
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, sink_cb);
    return h;
}

START_TEST(curl_refuses_blocked_before_connect)
{
    test_srv_t canary;
    pe_ssrf_guard_t g;
    CURL *h;
    CURLcode rc;

    ck_assert_int_eq(srv_listen(&canary, "127.0.0.1"), 0);
    pe_ssrf_guard_init(&g, NULL);
    h = guarded_handle(&g, apr_psprintf(pe_tp, "http://127.0.0.1:%d/", canary.port), 0);
    rc = curl_easy_perform(h);
    ck_assert_int_eq(rc, CURLE_COULDNT_CONNECT);
    ck_assert_uint_ge(g.refused, 1);
    ck_assert_uint_eq(g.permitted, 0);
    ck_assert_str_eq(g.last_addr, "127.0.0.1");
    ck_assert_int_eq(g.last_port, canary.port);
    ck_assert_int_eq(canary_hit(canary.fd), 0);

    /* the name "localhost" resolves to loopback: refused at connect time the same way */
    g.refused = 0;
    curl_easy_setopt(h, CURLOPT_URL, apr_psprintf(pe_tp, "http://localhost:%d/", canary.port));
    rc = curl_easy_perform(h);
    ck_assert_int_eq(rc, CURLE_COULDNT_CONNECT);
    ck_assert_uint_ge(g.refused, 1);
    ck_assert_int_eq(canary_hit(canary.fd), 0);

    /* other protocols are not even attempted */
    curl_easy_setopt(h, CURLOPT_URL, "file:///etc/passwd");
    ck_assert_int_eq(curl_easy_perform(h), CURLE_UNSUPPORTED_PROTOCOL);
    curl_easy_setopt(h, CURLOPT_URL, apr_psprintf(pe_tp, "dict://127.0.0.1:%d/stat", canary.port));
    ck_assert_int_eq(curl_easy_perform(h), CURLE_UNSUPPORTED_PROTOCOL);
    ck_assert_int_eq(canary_hit(canary.fd), 0);
    curl_easy_cleanup(h);
    close(canary.fd);
}
END_TEST

START_TEST(curl_allowed_ignores_proxy_env_and_guards_redirects)
{
    test_srv_t srv, canary, proxy;
    pe_ssrf_guard_t g;
    pe_ssrf_policy_t pol = {0};
    pe_ssrf_allow_list_t *allow;
    CURL *h;
    long code = 0;
    int have_second_loopback;

    ck_assert_int_eq(srv_listen(&srv, "127.0.0.1"), 0);
    ck_assert_int_eq(srv_listen(&proxy, "127.0.0.1"), 0);
    have_second_loopback = srv_listen(&canary, "127.0.0.2") == 0;
    if (!have_second_loopback)
        ck_assert_int_eq(srv_listen(&canary, "127.0.0.1"), 0);

    /* a proxy in the environment must be ignored (CURLOPT_PROXY "") */
    setenv("http_proxy", apr_psprintf(pe_tp, "http://127.0.0.1:%d", proxy.port), 1);
    setenv("HTTP_PROXY", apr_psprintf(pe_tp, "http://127.0.0.1:%d", proxy.port), 1);
    setenv("all_proxy", apr_psprintf(pe_tp, "http://127.0.0.1:%d", proxy.port), 1);

    ck_assert_ptr_null(pe_ssrf_allow_parse(pe_tp, apr_psprintf(pe_tp, "127.0.0.1:%d", srv.port), &allow));
    pol.allow = allow;
    pe_ssrf_guard_init(&g, &pol);

    /* 1st answer: a page; 2nd: a redirect to the canary (not allow-listed); 3rd: to file:// */
    srv.response = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok";
    ck_assert_int_eq(pthread_create(&srv.th, NULL, srv_run, &srv), 0);
    h = guarded_handle(&g, apr_psprintf(pe_tp, "http://127.0.0.1:%d/page", srv.port), 3);
    ck_assert_int_eq(curl_easy_perform(h), CURLE_OK);
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
    ck_assert_int_eq(code, 200);
    ck_assert_uint_eq(g.permitted, 1);
    ck_assert_uint_eq(g.refused, 0);
    ck_assert_int_eq(canary_hit(proxy.fd), 0);
    pthread_join(srv.th, NULL);
    ck_assert_int_eq(srv.conns, 1);

    if (have_second_loopback) {
        srv.response = apr_psprintf(pe_tp,
                                    "HTTP/1.1 302 Found\r\nLocation: http://127.0.0.2:%d/\r\nContent-Length: 0\r\n"
                                    "Connection: close\r\n\r\n",
                                    canary.port);
        ck_assert_int_eq(pthread_create(&srv.th, NULL, srv_run, &srv), 0);
        ck_assert_int_eq(curl_easy_perform(h), CURLE_COULDNT_CONNECT);
        ck_assert_uint_eq(g.refused, 1);
        ck_assert_str_eq(g.last_addr, "127.0.0.2");
        ck_assert_int_eq(canary_hit(canary.fd), 0);
        pthread_join(srv.th, NULL);
    }

    srv.response = "HTTP/1.1 302 Found\r\nLocation: file:///etc/passwd\r\nContent-Length: 0\r\n"
                   "Connection: close\r\n\r\n";
    ck_assert_int_eq(pthread_create(&srv.th, NULL, srv_run, &srv), 0);
    ck_assert_int_eq(curl_easy_perform(h), CURLE_UNSUPPORTED_PROTOCOL);
    pthread_join(srv.th, NULL);

    /* with redirects off (the default) the 302 is returned to the caller to vet */
    srv.response = apr_psprintf(pe_tp,
                                "HTTP/1.1 302 Found\r\nLocation: http://127.0.0.2:%d/\r\nContent-Length: 0\r\n"
                                "Connection: close\r\n\r\n",
                                canary.port);
    ck_assert_int_eq(pe_ssrf_curl_setopts(h, &g, NULL), CURLE_OK);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 3000L);
    ck_assert_int_eq(pthread_create(&srv.th, NULL, srv_run, &srv), 0);
    ck_assert_int_eq(curl_easy_perform(h), CURLE_OK);
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
    ck_assert_int_eq(code, 302);
    {
        char *loc = NULL;

        curl_easy_getinfo(h, CURLINFO_REDIRECT_URL, &loc);
        ck_assert_ptr_nonnull(loc);
        ck_assert_ptr_nonnull(pe_ssrf_url_vet(pe_tp, loc, &pol, NULL));
    }
    pthread_join(srv.th, NULL);
    ck_assert_int_eq(canary_hit(canary.fd), 0);
    ck_assert_int_eq(canary_hit(proxy.fd), 0);

    curl_easy_cleanup(h);
    close(srv.fd);
    close(canary.fd);
    close(proxy.fd);
}
END_TEST

START_TEST(setopts_arguments)
{
    pe_ssrf_guard_t g;
    CURL *h = curl_easy_init();

    ck_assert_int_eq(pe_ssrf_curl_setopts(NULL, &g, NULL), CURLE_BAD_FUNCTION_ARGUMENT);
    ck_assert_int_eq(pe_ssrf_curl_setopts(h, NULL, NULL), CURLE_BAD_FUNCTION_ARGUMENT);
    pe_ssrf_guard_init(&g, NULL);
    ck_assert_int_eq(pe_ssrf_curl_setopts(h, &g, NULL), CURLE_OK);
    curl_easy_cleanup(h);
}
END_TEST

Suite *pe_suite_ssrf(void)
{
    Suite *s = suite_create("ssrf");
    TCase *tc = pe_tcase("ssrf");

    tcase_add_test(tc, v4_every_range_edge_and_neighbour);
    tcase_add_test(tc, v4_public_and_names);
    tcase_add_test(tc, v6_ranges_edges_and_embeddings);
    tcase_add_test(tc, allow_list_parse);
    tcase_add_test(tc, allow_list_and_ports);
    tcase_add_test(tc, url_numeric_forms_normalised_then_blocked);
    tcase_add_test(tc, url_schemes_userinfo_ports_names);
    tcase_add_test(tc, opensocket_and_prereq_callbacks);
    tcase_add_test(tc, curl_refuses_blocked_before_connect);
    tcase_add_test(tc, curl_allowed_ignores_proxy_env_and_guards_redirects);
    tcase_add_test(tc, setopts_arguments);
    suite_add_tcase(s, tc);
    return s;
}
