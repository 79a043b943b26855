/*
 * pe_ipnet.h: IPv4/IPv6 addresses and CIDR networks: parsing, matching, canonical printing.
 *
 * Used by the research SSRF guard (pe_ssrf.h) and by the access layer's IP whitelist. Parsing is
 * strict (inet_pton forms only: no "127.1", no octal, no zone ids) because these strings come
 * from configuration and the store, where an ambiguous entry should be an error, not a guess.
 *
 * IPv4-mapped IPv6 (::ffff:a.b.c.d) is normalised to IPv4 everywhere: an address parsed from a
 * string or taken from a sockaddr, and a network written as ::ffff:a.b.c.d/n with n >= 96
 * (which becomes a.b.c.d/(n-96)). So "10.0.0.0/8" matches a dual-stack socket's ::ffff:10.1.2.3.
 * Other IPv6 networks never match IPv4 addresses ("::/0" does not contain 1.2.3.4; write
 * "0.0.0.0/0 ::/0" for everything).
 */
#ifndef PE_IPNET_H
#define PE_IPNET_H

#include <apr_network_io.h>
#include <apr_pools.h>
#include <apr_tables.h>

#include <sys/socket.h>

/** An address: family AF_INET (b[0..3] used) or AF_INET6 (b[0..15]), network byte order. */
typedef struct pe_ipnet_addr_t {
    int family;
    unsigned char b[16];
} pe_ipnet_addr_t;

/** A network: the address with every host bit cleared, and the prefix length (0..32 or 0..128). */
typedef struct pe_ipnet_t {
    pe_ipnet_addr_t addr;
    unsigned int prefix;
} pe_ipnet_t;

/** A list of networks (apr_array of pe_ipnet_t, in the order written). */
typedef struct pe_ipnet_list_t {
    apr_array_header_t *nets;
} pe_ipnet_list_t;

/** Longest text pe_ipnet_addr_str can produce, NUL included. */
#define PE_IPNET_ADDR_STRLEN 46

/**
 * Parse one address written as inet_pton accepts it (dotted quad, or IPv6 incl. "::ffff:1.2.3.4").
 * @param s the text (no brackets, no "%zone", no surrounding white space)
 * @param a receives the address; an IPv4-mapped IPv6 address is stored as AF_INET
 * @return 0, or -1 when s is not an address
 */
int pe_ipnet_addr_parse(const char *s, pe_ipnet_addr_t *a);

/**
 * Take the address from a socket address (port and scope id are ignored).
 * @param sa  struct sockaddr_in or sockaddr_in6
 * @param len the size of *sa as the caller knows it (checked against the family's struct)
 * @return 0, or -1 for another family or a short length
 */
int pe_ipnet_addr_from_sockaddr(const struct sockaddr *sa, apr_size_t len, pe_ipnet_addr_t *a);

/** Same, from an APR socket address (e.g. a connection's client_addr); 0 or -1. */
int pe_ipnet_addr_from_apr(const apr_sockaddr_t *sa, pe_ipnet_addr_t *a);

/**
 * Canonical text of an address: dotted quad, or RFC 5952 IPv6 (lower case, longest zero run as "::").
 * @return a string in p (at most PE_IPNET_ADDR_STRLEN - 1 characters)
 */
char *pe_ipnet_addr_str(apr_pool_t *p, const pe_ipnet_addr_t *a);

/** Whether two addresses are equal (same family and bytes). */
int pe_ipnet_addr_eq(const pe_ipnet_addr_t *x, const pe_ipnet_addr_t *y);

/**
 * Parse "address" (a host network, /32 or /128) or "address/prefix".
 * The prefix is 0..32 (IPv4) or 0..128 (IPv6) in plain decimal; host bits must be zero
 * ("10.0.0.1/8" is refused with a message naming 10.0.0.0/8), so a typo cannot widen a network silently.
 * @param n receives the network
 * @return NULL, or a message in p saying what is wrong (it quotes s)
 */
const char *pe_ipnet_parse(apr_pool_t *p, const char *s, pe_ipnet_t *n);

/** Whether network n contains address a (families must agree; see the mapped-address rule above). */
int pe_ipnet_contains(const pe_ipnet_t *n, const pe_ipnet_addr_t *a);

/** Canonical text of a network: "10.0.0.0/8", "2001:db8::/32"; a host network prints as the bare address. */
char *pe_ipnet_str(apr_pool_t *p, const pe_ipnet_t *n);

/** An empty list in p. */
pe_ipnet_list_t *pe_ipnet_list_make(apr_pool_t *p);

/** Append a network (copied) to l. */
void pe_ipnet_list_add(pe_ipnet_list_t *l, const pe_ipnet_t *n);

/**
 * Parse a list of networks separated by spaces, tabs, newlines and/or commas (empty entries
 * between separators are skipped; an empty string gives an empty list).
 * @param out receives the list in p (untouched on error)
 * @return NULL, or a message in p naming the entry by position and text and the reason, e.g.
 *         "entry 2 \"10.0.0.0/33\": prefix length 33 is out of range for IPv4 (0..32)"
 */
const char *pe_ipnet_list_parse(apr_pool_t *p, const char *s, pe_ipnet_list_t **out);

/** Number of networks in l (0 for NULL). */
int pe_ipnet_list_count(const pe_ipnet_list_t *l);

/**
 * The first network of l containing a, or NULL (also for l == NULL).
 * NB: the pointer is into l's array and lives as long as l.
 */
const pe_ipnet_t *pe_ipnet_list_find(const pe_ipnet_list_t *l, const pe_ipnet_addr_t *a);

/** Whether some network of l contains a. */
int pe_ipnet_list_match(const pe_ipnet_list_t *l, const pe_ipnet_addr_t *a);

/** Whether some network of l contains the address written in ip; 0 when ip is not an address. */
int pe_ipnet_list_match_str(const pe_ipnet_list_t *l, const char *ip);

/** Whether some network of l contains the address of sa; 0 for a non-IP socket address. */
int pe_ipnet_list_match_sockaddr(const pe_ipnet_list_t *l, const struct sockaddr *sa, apr_size_t len);

/** Canonical text of the whole list, networks separated by one space ("" when empty). */
char *pe_ipnet_list_str(apr_pool_t *p, const pe_ipnet_list_t *l);

#endif
