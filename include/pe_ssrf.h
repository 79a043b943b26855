/*
 * pe_ssrf.h: the research fetcher's guard against server-side request forgery (RELIABILITY 1.14).
 *
 * Three layers, all fail-closed:
 *   1. pe_ssrf_url_vet(): a URL from a search result is parsed once with libcurl's URL API
 *      (curl_url), and that parsed form is checked and handed to the fetch, so there is no parser
 *      differential: http/https only, no userinfo, a host, a port in range (80/443 for public
 *      destinations), numeric hosts (curl turns 2130706433, 0177.0.0.1 and 0x7f.1 into 127.0.0.1)
 *      classified at once.
 *   2. pe_ssrf_opensocket_cb(): libcurl asks it for every socket it connects, with the address it
 *      resolved; a blocked address gets CURL_SOCKET_BAD, so whatever the DNS answers (rebinding,
 *      a public name pointing at 127.0.0.1) only vetted addresses are ever connected: the pinning
 *      is automatic. pe_ssrf_prereq_cb() re-checks the peer before each request (reused
 *      connections too).
 *   3. pe_ssrf_curl_setopts(): the safe easy-handle options (protocols, no proxy from the
 *      environment, no netrc, timeouts, redirect cap, no connection reuse) plus both callbacks.
 *
 * The address table follows the IANA IPv4 and IPv6 Special-Purpose Address Registries: every
 * entry that is not globally reachable is blocked, plus multicast, the deprecated site-local and
 * 6to4-relay ranges, and every IPv6 address outside 2000::/3 (global unicast; the rest is
 * reserved by IANA). Two whole blocks are refused although the registry marks a few anycast
 * entries in them globally reachable: 192.0.0.0/24 and 2001::/23 (IETF protocol assignments:
 * PCP/TURN anycast, Teredo, ORCHID, AMT...), because an anycast service answers from the nearest,
 * often operator-internal, instance. The globally reachable AS112 and AMT unicast blocks outside
 * them (192.31.196.0/24, 192.52.193.0/24, 192.175.48.0/24, 2620:4f:8000::/48) are public.
 * IPv4 inside IPv6 is judged by its IPv4 address: IPv4-mapped ::ffff:0:0/96 (it is IPv4, see
 * pe_ipnet.h), NAT64 64:ff9b::/96, and 6to4 2002::/16 (blocked when the embedded IPv4 is).
 * IPv4-compatible ::a.b.c.d (deprecated, RFC 4291) is always blocked; Teredo lies in 2001::/23.
 *
 * The allow list (PEResearchAllowNetworks, off by default; test set-ups serve pages on loopback)
 * overrides the table only for what each entry names: its network on its ports (80 and 443 when
 * the entry names none). Every other address and port, and every host name, is judged as without it.
 */
#ifndef PE_SSRF_H
#define PE_SSRF_H

#include "pe_ipnet.h"

#include <apr_pools.h>
#include <curl/curl.h>

/** Longest URL accepted for fetching, in bytes. */
#define PE_SSRF_URL_MAX 8192

/** Defaults of pe_ssrf_limits_t (RELIABILITY R82). */
#define PE_SSRF_CONNECT_TIMEOUT_MS 3000L
#define PE_SSRF_TIMEOUT_MS 10000L
#define PE_SSRF_MAX_FILESIZE ((curl_off_t)2 * 1024 * 1024)

/** A range of ports, lo <= hi, both in 1..65535. */
typedef struct pe_ssrf_ports_t {
    int lo;
    int hi;
} pe_ssrf_ports_t;

/** One allow-list entry: a network and the ports it is allowed on. */
typedef struct pe_ssrf_allow_t {
    pe_ipnet_t net;
    apr_array_header_t *ports; /**< of pe_ssrf_ports_t, never empty (80 and 443 when none was written) */
} pe_ssrf_allow_t;

/** The allow list (an apr_array of pe_ssrf_allow_t, in the order written). */
typedef struct pe_ssrf_allow_list_t {
    apr_array_header_t *entries;
} pe_ssrf_allow_list_t;

/**
 * Parse an allow list: entries separated by white space or commas. An entry is a network as
 * pe_ipnet_parse() reads it, optionally followed by ':' and ports; an IPv6 network with ports is
 * written in brackets. A port is a number 1..65535 or a range "lo-hi"; further ports of the same
 * entry follow after commas. Without ports an entry means ports 80 and 443.
 *   "127.0.0.2:8080"  "10.0.0.0/8:80,443"  "[::1]:8443"  "[fd00::/8]:8000-8099"  "fd00::/8"
 * @param out receives the list in p (untouched on error); an empty string gives an empty list
 * @return NULL, or a message in p naming the entry by position and text and the reason
 */
const char *pe_ssrf_allow_parse(apr_pool_t *p, const char *s, pe_ssrf_allow_list_t **out);

/** Number of entries of l (0 for NULL). */
int pe_ssrf_allow_count(const pe_ssrf_allow_list_t *l);

/** Whether some entry of l names port (1..65535), whatever its network. */
int pe_ssrf_allow_names_port(const pe_ssrf_allow_list_t *l, int port);

/** Canonical text: "127.0.0.2:80,443 [::1]:8443 10.0.0.0/8:8000-8099" ("" when empty). */
char *pe_ssrf_allow_str(apr_pool_t *p, const pe_ssrf_allow_list_t *l);

/** What the guard permits. */
typedef struct pe_ssrf_policy_t {
    /** network:port pairs fetched although the table (or the port rule) would refuse them
        (NULL or empty: none) */
    const pe_ssrf_allow_list_t *allow;
    /** 0: public destinations only on ports 80 and 443 (R78); 1: any port 1..65535 */
    int any_port;
} pe_ssrf_policy_t;

/** How the table sees one address. All strings are static. */
typedef struct pe_ssrf_class_t {
    int blocked;       /**< 1 when the table blocks the address (ignoring the allow list) */
    int allowed;       /**< 1 when an allow-list entry names the address and the port (set by
                            pe_ssrf_dest_permitted) */
    int other_ports;   /**< 1 when an allow-list entry names the address but not the port */
    const char *range; /**< the table entry that matched, e.g. "127.0.0.0/8"; NULL when public */
    const char *name;  /**< its meaning, e.g. "loopback"; NULL when public */
    const char *via;   /**< NULL, or the IPv6 embedding the IPv4 rule was reached through:
                            "NAT64 64:ff9b::/96", "6to4 2002::/16", "IPv4-compatible ::/96" */
} pe_ssrf_class_t;

/**
 * Classify an address against the special-purpose table only.
 * @param c receives the details (may be NULL)
 * @return 1 when blocked, 0 when public
 */
int pe_ssrf_addr_classify(const pe_ipnet_addr_t *a, pe_ssrf_class_t *c);

/**
 * Whether a connection to a:port is permitted by pol: a public address on ports 80/443 (any port
 * with pol->any_port), or an address and port that one entry of pol->allow names together.
 * @param pol  may be NULL (no allow list, ports 80/443)
 * @param port the destination port; pass 0 to check the address alone (on some port)
 * @param c    receives the classification (may be NULL)
 * @return 1 permitted, 0 refused
 */
int pe_ssrf_dest_permitted(const pe_ssrf_policy_t *pol, const pe_ipnet_addr_t *a, int port, pe_ssrf_class_t *c);

/** Text for logs: "loopback 127.0.0.0/8", "loopback 127.0.0.0/8 via NAT64 64:ff9b::/96", or "public". */
const char *pe_ssrf_class_str(apr_pool_t *p, const pe_ssrf_class_t *c);

/** A URL that passed pe_ssrf_url_vet(); every string lives in the pool given to it. */
typedef struct pe_ssrf_url_t {
    const char *url;      /**< curl's normalised form without the fragment: what to give CURLOPT_URL */
    const char *scheme;   /**< "http" or "https" */
    const char *host;     /**< lower case, as curl normalised it; an IPv6 literal without brackets */
    int port;             /**< the explicit port, else the scheme's default */
    int host_is_ip;       /**< 1 when host is an IP literal; addr holds it */
    pe_ipnet_addr_t addr; /**< valid when host_is_ip */
} pe_ssrf_url_t;

/**
 * Parse and vet a URL to fetch (also each redirect target when the caller follows redirects).
 * Refused: longer than PE_SSRF_URL_MAX, unparsable, a scheme other than http/https, any userinfo
 * (even empty: "http://@host/"), no host, a control character in the host
 * (curl decodes "%7f"), an IPv6 zone id, port 0, a numeric-looking host curl did
 * not accept as an address ("256.1.1.1", "1.2.3.4.5"), an IP literal that the policy refuses
 * (address and port), single-label host names ("intranet") and reserved names (localhost,
 * *.localhost, *.local, *.internal, *.home.arpa, *.onion, *.test, *.invalid, *.example, *.lan),
 * and for a host name a port other than 80/443 (any port with any_port) that no allow-list entry
 * names. The allow list names networks, so it never exempts a name; the address a name resolves to
 * is checked with its port when the socket is opened.
 * @param pol may be NULL
 * @param out receives the parsed URL (may be NULL)
 * @return NULL when acceptable, else a reason (static or in p) that does not quote the URL
 */
const char *pe_ssrf_url_vet(apr_pool_t *p, const char *url, const pe_ssrf_policy_t *pol, pe_ssrf_url_t *out);

/**
 * State of the socket callbacks for one easy handle (or one multi batch), owned by the caller.
 * NB: libcurl calls the callbacks from the thread running the transfer; one guard must not be
 * shared by transfers running in different threads at once (the counters are plain ints).
 */
typedef struct pe_ssrf_guard_t {
    pe_ssrf_policy_t policy;     /**< set by the caller */
    unsigned int permitted;      /**< sockets opened */
    unsigned int refused;        /**< connections refused (opensocket and prereq) */
    pe_ssrf_class_t last;        /**< classification of the last refused address */
    char last_addr[PE_IPNET_ADDR_STRLEN]; /**< text of the last refused address ("" for none/non-IP) */
    int last_port;               /**< its port */
} pe_ssrf_guard_t;

/** Zero the counters and set the policy (pol may be NULL). */
void pe_ssrf_guard_init(pe_ssrf_guard_t *g, const pe_ssrf_policy_t *pol);

/**
 * CURLOPT_OPENSOCKETFUNCTION callback; CURLOPT_OPENSOCKETDATA must be a pe_ssrf_guard_t *.
 * Opens the socket (close-on-exec) only for a CURLSOCKTYPE_IPCXN IPv4/IPv6 address that
 * pe_ssrf_dest_permitted() accepts; otherwise counts the refusal, records it in the guard, logs
 * PE60001 and returns CURL_SOCKET_BAD (libcurl then tries the next resolved address, or fails
 * with CURLE_COULDNT_CONNECT).
 */
curl_socket_t pe_ssrf_opensocket_cb(void *clientp, curlsocktype purpose, struct curl_sockaddr *address);

/**
 * CURLOPT_PREREQFUNCTION callback (data: the guard): re-checks the connected peer before every
 * request, including on a reused connection. Logs PE60002 on refusal.
 * @return CURL_PREREQFUNC_OK or CURL_PREREQFUNC_ABORT
 */
int pe_ssrf_prereq_cb(void *clientp, char *conn_primary_ip, char *conn_local_ip, int conn_primary_port,
                      int conn_local_port);

/** Limits for pe_ssrf_curl_setopts(); a field <= 0 takes the default named below. */
typedef struct pe_ssrf_limits_t {
    long connect_timeout_ms;   /**< PE_SSRF_CONNECT_TIMEOUT_MS */
    long timeout_ms;           /**< whole transfer, PE_SSRF_TIMEOUT_MS */
    long max_redirs;           /**< 0 (also the default): libcurl does not follow redirects, the caller
                                    vets each Location with pe_ssrf_url_vet (R81); > 0: libcurl follows
                                    at most this many (still http/https only and still address-checked) */
    curl_off_t max_filesize;   /**< PE_SSRF_MAX_FILESIZE; only refuses a declared Content-Length, so the
                                    write callback must count bytes too */
} pe_ssrf_limits_t;

/**
 * Set the safe options on an easy handle: CURLOPT_PROTOCOLS_STR and CURLOPT_REDIR_PROTOCOLS_STR
 * "http,https", FOLLOWLOCATION/MAXREDIRS from lim, CURLOPT_PROXY "" (proxy environment variables
 * ignored), NOSIGNAL, CONNECTTIMEOUT_MS/TIMEOUT_MS, MAXFILESIZE_LARGE, netrc ignored, no
 * credentials forwarded on redirects, FORBID_REUSE, and the opensocket and prereq callbacks with g.
 * NB: g must outlive every transfer of h; the handle keeps pointing at it.
 * @param lim may be NULL for the defaults
 * @return CURLE_OK or the first failing option's code
 */
CURLcode pe_ssrf_curl_setopts(CURL *h, pe_ssrf_guard_t *g, const pe_ssrf_limits_t *lim);

#endif
