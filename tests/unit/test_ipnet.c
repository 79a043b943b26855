/* test_ipnet.c: address and CIDR parsing, matching, canonical text, lists. */
#include "pe_ipnet.h"
#include "pe_test.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/un.h>

/* Parse s into a network or fail the test with the message. */
static pe_ipnet_t net_of(const char *s)
{
    pe_ipnet_t n;
    const char *err = pe_ipnet_parse(pe_tp, s, &n);

    ck_assert_msg(err == NULL, "%s: %s", s, err);
    return n;
}

/* Parse s into an address or fail. */
static pe_ipnet_addr_t addr_of(const char *s)
{
    pe_ipnet_addr_t a;

    ck_assert_msg(pe_ipnet_addr_parse(s, &a) == 0, "%s should parse", s);
    return a;
}

START_TEST(addr_parse_strict)
{
    static const char *bad[] = {"",          "127.1",      "01.2.3.4",    "1.2.3.256",   "1.2.3.4 ", " 1.2.3.4",
                                "[::1]",     "fe80::1%lo", "::ffff:1.2.3", "1:2:3:4:5:6:7:8:9", "0x7f.0.0.1",
                                "2130706433", "localhost", "1.2.3.4/32",  ":::",         "1.2.3.4.5", NULL};
    pe_ipnet_addr_t a;
    int i;

    for (i = 0; bad[i]; i++)
        ck_assert_msg(pe_ipnet_addr_parse(bad[i], &a) == -1, "\"%s\" must not parse", bad[i]);
    ck_assert_int_eq(pe_ipnet_addr_parse(NULL, &a), -1);

    a = addr_of("192.168.1.20");
    ck_assert_int_eq(a.family, AF_INET);
    ck_assert_int_eq(a.b[0], 192);
    ck_assert_int_eq(a.b[3], 20);

    a = addr_of("2001:DB8::1");
    ck_assert_int_eq(a.family, AF_INET6);
    ck_assert_int_eq(a.b[0], 0x20);
    ck_assert_int_eq(a.b[3], 0xb8);
    ck_assert_int_eq(a.b[15], 1);

    /* IPv4-mapped IPv6 is IPv4, in both spellings */
    a = addr_of("::ffff:10.1.2.3");
    ck_assert_int_eq(a.family, AF_INET);
    ck_assert_str_eq(pe_ipnet_addr_str(pe_tp, &a), "10.1.2.3");
    a = addr_of("::FFFF:a01:203");
    ck_assert_int_eq(a.family, AF_INET);
    ck_assert_str_eq(pe_ipnet_addr_str(pe_tp, &a), "10.1.2.3");
    /* but IPv4-compatible (::a.b.c.d) and NAT64 stay IPv6 */
    ck_assert_int_eq(addr_of("::10.1.2.3").family, AF_INET6);
    ck_assert_int_eq(addr_of("64:ff9b::10.1.2.3").family, AF_INET6);
}
END_TEST

START_TEST(addr_canonical_text)
{
    static const char *cases[][2] = {
        {"2001:DB8:0:0:0:0:0:1", "2001:db8::1"},
        {"2001:db8:0:1:0:0:0:1", "2001:db8:0:1::1"},
        {"1:0:0:2:0:0:0:3", "1:0:0:2::3"},
        {"2001:db8:0:0:1:0:0:1", "2001:db8::1:0:0:1"}, /* RFC 5952: first of equal runs */
        {"2001:db8:0:1:1:1:1:1", "2001:db8:0:1:1:1:1:1"}, /* one zero field is not "::" */
        {"0:0:0:0:0:0:0:0", "::"},
        {"0:0:0:0:0:0:0:1", "::1"},
        {"FE80:0000::0001", "fe80::1"},
        {"::ffff:127.0.0.1", "127.0.0.1"},
        {"010.1.1.1", NULL},
        {"255.255.255.255", "255.255.255.255"},
    };
    apr_size_t i;

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        pe_ipnet_addr_t a;

        if (!cases[i][1]) {
            ck_assert_int_eq(pe_ipnet_addr_parse(cases[i][0], &a), -1);
            continue;
        }
        a = addr_of(cases[i][0]);
        ck_assert_str_eq(pe_ipnet_addr_str(pe_tp, &a), cases[i][1]);
        ck_assert_int_lt(strlen(pe_ipnet_addr_str(pe_tp, &a)), PE_IPNET_ADDR_STRLEN);
    }
    ck_assert(pe_ipnet_addr_eq(&(pe_ipnet_addr_t){0}, &(pe_ipnet_addr_t){0}) == 1);
    {
        pe_ipnet_addr_t x = addr_of("::ffff:1.2.3.4"), y = addr_of("1.2.3.4"), z = addr_of("1.2.3.5");

        ck_assert(pe_ipnet_addr_eq(&x, &y));
        ck_assert(!pe_ipnet_addr_eq(&x, &z));
    }
}
END_TEST

START_TEST(addr_from_sockaddr)
{
    struct sockaddr_in in4;
    struct sockaddr_in6 in6;
    struct sockaddr_un un;
    pe_ipnet_addr_t a;
    apr_sockaddr_t *sa;

    memset(&in4, 0, sizeof(in4));
    in4.sin_family = AF_INET;
    in4.sin_port = htons(8080);
    inet_pton(AF_INET, "172.16.5.4", &in4.sin_addr);
    ck_assert_int_eq(pe_ipnet_addr_from_sockaddr((struct sockaddr *)&in4, sizeof(in4), &a), 0);
    ck_assert_str_eq(pe_ipnet_addr_str(pe_tp, &a), "172.16.5.4");
    /* a length shorter than the family's struct is refused */
    ck_assert_int_eq(pe_ipnet_addr_from_sockaddr((struct sockaddr *)&in4, sizeof(in4) - 1, &a), -1);
    ck_assert_int_eq(pe_ipnet_addr_from_sockaddr(NULL, sizeof(in4), &a), -1);

    memset(&in6, 0, sizeof(in6));
    in6.sin6_family = AF_INET6;
    inet_pton(AF_INET6, "::ffff:192.0.2.7", &in6.sin6_addr);
    ck_assert_int_eq(pe_ipnet_addr_from_sockaddr((struct sockaddr *)&in6, sizeof(in6), &a), 0);
    ck_assert_int_eq(a.family, AF_INET);
    ck_assert_str_eq(pe_ipnet_addr_str(pe_tp, &a), "192.0.2.7");
    inet_pton(AF_INET6, "fe80::1", &in6.sin6_addr);
    in6.sin6_scope_id = 2;
    ck_assert_int_eq(pe_ipnet_addr_from_sockaddr((struct sockaddr *)&in6, sizeof(in6), &a), 0);
    ck_assert_int_eq(a.family, AF_INET6);
    ck_assert_str_eq(pe_ipnet_addr_str(pe_tp, &a), "fe80::1");
    ck_assert_int_eq(pe_ipnet_addr_from_sockaddr((struct sockaddr *)&in6, sizeof(struct sockaddr_in), &a), -1);

    memset(&un, 0, sizeof(un));
    un.sun_family = AF_UNIX;
    ck_assert_int_eq(pe_ipnet_addr_from_sockaddr((struct sockaddr *)&un, sizeof(un), &a), -1);

    ck_assert_int_eq(apr_sockaddr_info_get(&sa, "10.9.8.7", APR_INET, 80, 0, pe_tp), APR_SUCCESS);
    ck_assert_int_eq(pe_ipnet_addr_from_apr(sa, &a), 0);
    ck_assert_str_eq(pe_ipnet_addr_str(pe_tp, &a), "10.9.8.7");
    if (apr_sockaddr_info_get(&sa, "2001:db8::5", APR_INET6, 80, 0, pe_tp) == APR_SUCCESS) {
        ck_assert_int_eq(pe_ipnet_addr_from_apr(sa, &a), 0);
        ck_assert_str_eq(pe_ipnet_addr_str(pe_tp, &a), "2001:db8::5");
    }
    ck_assert_int_eq(pe_ipnet_addr_from_apr(NULL, &a), -1);
}
END_TEST

START_TEST(net_parse_and_print)
{
    static const char *good[][2] = {
        {"10.0.0.0/8", "10.0.0.0/8"},
        {"0.0.0.0/0", "0.0.0.0/0"},
        {"192.168.1.7", "192.168.1.7"},
        {"192.168.1.7/32", "192.168.1.7"},
        {"100.64.0.0/10", "100.64.0.0/10"},
        {"2001:DB8::/32", "2001:db8::/32"},
        {"::/0", "::/0"},
        {"::1/128", "::1"},
        {"fe80::/10", "fe80::/10"},
        {"::ffff:10.0.0.0/104", "10.0.0.0/8"},     /* mapped network = IPv4 network */
        {"::ffff:0:0/96", "0.0.0.0/0"},
        {"::ffff:1.2.3.4", "1.2.3.4"},
        {"::fffe:0:0/95", "::fffe:0:0/95"}, /* covers the mapped block, stays IPv6 */
        {"64:ff9b::/96", "64:ff9b::/96"},
    };
    apr_size_t i;

    for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        pe_ipnet_t n = net_of(good[i][0]);

        ck_assert_str_eq(pe_ipnet_str(pe_tp, &n), good[i][1]);
        /* the canonical text parses back to the same network */
        {
            pe_ipnet_t m = net_of(pe_ipnet_str(pe_tp, &n));

            ck_assert(pe_ipnet_addr_eq(&m.addr, &n.addr));
            ck_assert_uint_eq(m.prefix, n.prefix);
        }
    }
    ck_assert_uint_eq(net_of("::ffff:10.0.0.0/104").prefix, 8);
    ck_assert_int_eq(net_of("::ffff:10.0.0.0/104").addr.family, AF_INET);
}
END_TEST

START_TEST(net_parse_errors)
{
    static const char *bad[][2] = {
        {"10.0.0.1/8", "host bits are set after the /8 prefix (the network is 10.0.0.0/8)"},
        {"2001:db8::1/32", "(the network is 2001:db8::/32)"},
        {"10.0.0.0/33", "prefix length 33 is out of range for IPv4 (0..32)"},
        {"::/129", "prefix length 129 is out of range for IPv6 (0..128)"},
        {"10.0.0.0/1234", "out of range for IPv4"},
        {"10.0.0.0/", "must be a decimal number"},
        {"10.0.0.0/-1", "must be a decimal number"},
        {"10.0.0.0/+8", "must be a decimal number"},
        {"10.0.0.0/8/8", "must be a decimal number"},
        {"10.0.0.0/ 8", "must be a decimal number"},
        {"10.0.0.0/08", "leading zero"},
        {"10.0.0/8", "\"10.0.0\" before '/' is not an IPv4 or IPv6 address"},
        {"bogus", "\"bogus\": not an IPv4 or IPv6 address"},
        {"fe80::1%eth0", "zone ids are not allowed"},
        {"fe80::%eth0/64", "zone ids are not allowed"},
        {"[::1]", "not an IPv4 or IPv6 address"},
        {"", "empty network"},
    };
    apr_size_t i;
    pe_ipnet_t n;
    char longer[200];

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        const char *err = pe_ipnet_parse(pe_tp, bad[i][0], &n);

        ck_assert_msg(err != NULL, "\"%s\" must be refused", bad[i][0]);
        ck_assert_msg(strstr(err, bad[i][1]) != NULL, "\"%s\": message \"%s\" lacks \"%s\"", bad[i][0], err,
                      bad[i][1]);
    }
    /* a long entry is quoted cut, not whole */
    memset(longer, 'x', sizeof(longer) - 1);
    longer[sizeof(longer) - 1] = '\0';
    ck_assert_int_lt(strlen(pe_ipnet_parse(pe_tp, longer, &n)), 120);
}
END_TEST

START_TEST(net_contains_boundaries)
{
    pe_ipnet_t n10 = net_of("10.0.0.0/8"), n15 = net_of("198.18.0.0/15"), n10b = net_of("100.64.0.0/10");
    pe_ipnet_t all4 = net_of("0.0.0.0/0"), all6 = net_of("::/0"), doc = net_of("2001:db8::/32");
    pe_ipnet_t ula = net_of("fc00::/7"), host = net_of("192.0.2.1"), h6 = net_of("::1");
    pe_ipnet_addr_t a;

    ck_assert(pe_ipnet_contains(&n10, (a = addr_of("10.0.0.0"), &a)));
    ck_assert(pe_ipnet_contains(&n10, (a = addr_of("10.255.255.255"), &a)));
    ck_assert(!pe_ipnet_contains(&n10, (a = addr_of("9.255.255.255"), &a)));
    ck_assert(!pe_ipnet_contains(&n10, (a = addr_of("11.0.0.0"), &a)));
    ck_assert(pe_ipnet_contains(&n10, (a = addr_of("::ffff:10.20.30.40"), &a)));
    /* prefixes that do not end on a byte */
    ck_assert(pe_ipnet_contains(&n15, (a = addr_of("198.19.255.255"), &a)));
    ck_assert(!pe_ipnet_contains(&n15, (a = addr_of("198.20.0.0"), &a)));
    ck_assert(!pe_ipnet_contains(&n15, (a = addr_of("198.17.255.255"), &a)));
    ck_assert(pe_ipnet_contains(&n10b, (a = addr_of("100.127.255.255"), &a)));
    ck_assert(!pe_ipnet_contains(&n10b, (a = addr_of("100.128.0.0"), &a)));
    ck_assert(!pe_ipnet_contains(&n10b, (a = addr_of("100.63.255.255"), &a)));
    ck_assert(pe_ipnet_contains(&ula, (a = addr_of("fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"), &a)));
    ck_assert(!pe_ipnet_contains(&ula, (a = addr_of("fe00::"), &a)));
    ck_assert(!pe_ipnet_contains(&ula, (a = addr_of("fbff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"), &a)));
    /* families never mix; ::/0 does not hold IPv4 (nor mapped) addresses */
    ck_assert(pe_ipnet_contains(&all4, (a = addr_of("203.0.113.9"), &a)));
    ck_assert(!pe_ipnet_contains(&all4, (a = addr_of("::1"), &a)));
    ck_assert(pe_ipnet_contains(&all6, (a = addr_of("::1"), &a)));
    ck_assert(!pe_ipnet_contains(&all6, (a = addr_of("::ffff:1.2.3.4"), &a)));
    ck_assert(pe_ipnet_contains(&doc, (a = addr_of("2001:db8:ffff:ffff:ffff:ffff:ffff:ffff"), &a)));
    ck_assert(!pe_ipnet_contains(&doc, (a = addr_of("2001:db9::"), &a)));
    ck_assert(!pe_ipnet_contains(&doc, (a = addr_of("2001:db7:ffff:ffff:ffff:ffff:ffff:ffff"), &a)));
    ck_assert(pe_ipnet_contains(&host, (a = addr_of("192.0.2.1"), &a)));
    ck_assert(!pe_ipnet_contains(&host, (a = addr_of("192.0.2.0"), &a)));
    ck_assert(!pe_ipnet_contains(&host, (a = addr_of("192.0.2.2"), &a)));
    ck_assert(pe_ipnet_contains(&h6, (a = addr_of("0::0:1"), &a)));
    ck_assert(!pe_ipnet_contains(&h6, (a = addr_of("::2"), &a)));
    ck_assert(!pe_ipnet_contains(NULL, &a));
}
END_TEST

START_TEST(list_parse_match_print)
{
    pe_ipnet_list_t *l = NULL;
    const char *err;
    const pe_ipnet_t *hit;
    pe_ipnet_addr_t a;
    struct sockaddr_in6 in6;
    struct sockaddr_in in4;

    err = pe_ipnet_list_parse(pe_tp, "10.0.0.0/8, 192.168.1.1 ,2001:DB8::/32\t::1\n,, 127.0.0.0/8", &l);
    ck_assert_msg(err == NULL, "%s", err);
    ck_assert_int_eq(pe_ipnet_list_count(l), 5);
    ck_assert_str_eq(pe_ipnet_list_str(pe_tp, l), "10.0.0.0/8 192.168.1.1 2001:db8::/32 ::1 127.0.0.0/8");

    ck_assert(pe_ipnet_list_match_str(l, "10.1.2.3"));
    ck_assert(pe_ipnet_list_match_str(l, "192.168.1.1"));
    ck_assert(!pe_ipnet_list_match_str(l, "192.168.1.2"));
    ck_assert(pe_ipnet_list_match_str(l, "2001:db8::42"));
    ck_assert(pe_ipnet_list_match_str(l, "::ffff:127.0.0.1"));
    ck_assert(!pe_ipnet_list_match_str(l, "::2"));
    ck_assert(!pe_ipnet_list_match_str(l, "not-an-ip"));
    ck_assert(!pe_ipnet_list_match_str(l, "10.1.2.3 "));
    ck_assert(!pe_ipnet_list_match_str(l, NULL));

    hit = pe_ipnet_list_find(l, (a = addr_of("127.0.0.9"), &a));
    ck_assert_ptr_nonnull(hit);
    ck_assert_str_eq(pe_ipnet_str(pe_tp, hit), "127.0.0.0/8");
    ck_assert_ptr_null(pe_ipnet_list_find(l, (a = addr_of("8.8.8.8"), &a)));

    memset(&in6, 0, sizeof(in6));
    in6.sin6_family = AF_INET6;
    inet_pton(AF_INET6, "::ffff:10.200.0.1", &in6.sin6_addr);
    ck_assert(pe_ipnet_list_match_sockaddr(l, (struct sockaddr *)&in6, sizeof(in6)));
    inet_pton(AF_INET6, "2001:db9::1", &in6.sin6_addr);
    ck_assert(!pe_ipnet_list_match_sockaddr(l, (struct sockaddr *)&in6, sizeof(in6)));
    memset(&in4, 0, sizeof(in4));
    in4.sin_family = AF_INET;
    inet_pton(AF_INET, "192.168.1.1", &in4.sin_addr);
    ck_assert(pe_ipnet_list_match_sockaddr(l, (struct sockaddr *)&in4, sizeof(in4)));
    ck_assert(!pe_ipnet_list_match_sockaddr(l, (struct sockaddr *)&in4, 4));

    /* NULL and empty lists match nothing */
    ck_assert(!pe_ipnet_list_match(NULL, &a));
    ck_assert_int_eq(pe_ipnet_list_count(NULL), 0);
    ck_assert_ptr_null(pe_ipnet_list_parse(pe_tp, "", &l));
    ck_assert_int_eq(pe_ipnet_list_count(l), 0);
    ck_assert_str_eq(pe_ipnet_list_str(pe_tp, l), "");
    ck_assert_ptr_null(pe_ipnet_list_parse(pe_tp, " , \t,", &l));
    ck_assert_int_eq(pe_ipnet_list_count(l), 0);
    ck_assert(!pe_ipnet_list_match_str(l, "1.2.3.4"));

    /* built by hand */
    l = pe_ipnet_list_make(pe_tp);
    {
        pe_ipnet_t n = net_of("0.0.0.0/0");

        pe_ipnet_list_add(l, &n);
    }
    ck_assert(pe_ipnet_list_match_str(l, "203.0.113.1"));
    ck_assert(!pe_ipnet_list_match_str(l, "2001:db8::1"));
}
END_TEST

START_TEST(list_errors_name_the_entry)
{
    pe_ipnet_list_t *l = (pe_ipnet_list_t *)&l; /* must stay untouched on error */
    pe_ipnet_list_t *before = l;
    const char *err;

    err = pe_ipnet_list_parse(pe_tp, "10.0.0.0/8, bogus 1.2.3.4", &l);
    ck_assert_ptr_nonnull(err);
    ck_assert_str_eq(err, "entry 2 \"bogus\": not an IPv4 or IPv6 address");
    ck_assert_ptr_eq(l, before);

    err = pe_ipnet_list_parse(pe_tp, "1.2.3.4 10.0.0.1/8", &l);
    ck_assert_str_eq(err, "entry 2 \"10.0.0.1/8\": host bits are set after the /8 prefix (the network is 10.0.0.0/8)");

    err = pe_ipnet_list_parse(pe_tp, "::1,,fe80::/10,10.0.0.0/33", &l);
    ck_assert_str_eq(err, "entry 3 \"10.0.0.0/33\": prefix length 33 is out of range for IPv4 (0..32)");

    err = pe_ipnet_list_parse(pe_tp, "fe80::1%lo", &l);
    ck_assert_str_eq(err, "entry 1 \"fe80::1%lo\": IPv6 zone ids are not allowed");
}
END_TEST

Suite *pe_suite_ipnet(void)
{
    Suite *s = suite_create("ipnet");
    TCase *tc = pe_tcase("ipnet");

    tcase_add_test(tc, addr_parse_strict);
    tcase_add_test(tc, addr_canonical_text);
    tcase_add_test(tc, addr_from_sockaddr);
    tcase_add_test(tc, net_parse_and_print);
    tcase_add_test(tc, net_parse_errors);
    tcase_add_test(tc, net_contains_boundaries);
    tcase_add_test(tc, list_parse_match_print);
    tcase_add_test(tc, list_errors_name_the_entry);
    suite_add_tcase(s, tc);
    return s;
}
