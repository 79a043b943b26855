/*
 * test_memcache.c: the memcached client against real memcached processes on loopback ports.
 * Each test starts its own memcached (in the forked test process; PR_SET_PDEATHSIG kills it if the
 * test dies) and the teardown stops it by pid. Time bounds are measured, not assumed.
 */
#include "pe_cachekey.h"
#include "pe_memcache.h"
#include "pe_test.h"

#include <apr_strings.h>
#include <apr_thread_proc.h>
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#define MCD_MAX 4
static pid_t mcd_pid[MCD_MAX];
static int mcd_port[MCD_MAX];

/* A port nobody listens on right now. */
static int free_port(void)
{
    struct sockaddr_in sa;
    socklen_t sl = sizeof(sa);
    int fd = socket(AF_INET, SOCK_STREAM, 0), port;

    ck_assert_int_ge(fd, 0);
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&sa, &sl), 0);
    port = ntohs(sa.sin_port);
    close(fd);
    return port;
}

/* Does something accept TCP on 127.0.0.1:port? */
static int port_open(int port)
{
    struct sockaddr_in sa;
    int fd = socket(AF_INET, SOCK_STREAM, 0), ok;

    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons((unsigned short)port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ok = connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
    close(fd);
    return ok;
}

/* Start memcached number i on port (0: a free port); waits until it accepts. */
static int mcd_start(int i, int port)
{
    char ports[16];
    pid_t pid;
    int tries;

    if (!port)
        port = free_port();
    snprintf(ports, sizeof(ports), "%d", port);
    pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        int null = open("/dev/null", O_RDWR);
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        dup2(null, 1);
        dup2(null, 2);
        if (geteuid() == 0)
            execlp("memcached", "memcached", "-l", "127.0.0.1", "-p", ports, "-U", "0", "-t", "1", "-u", "root",
                   (char *)NULL);
        else
            execlp("memcached", "memcached", "-l", "127.0.0.1", "-p", ports, "-U", "0", "-t", "1", (char *)NULL);
        _exit(127);
    }
    mcd_pid[i] = pid;
    mcd_port[i] = port;
    for (tries = 0; tries < 300 && !port_open(port); tries++)
        usleep(10000);
    ck_assert_msg(port_open(port), "memcached did not start on port %d", port);
    return port;
}

/* Stop memcached number i (continue it first in case it is stopped). */
static void mcd_kill(int i)
{
    if (mcd_pid[i] > 0) {
        kill(mcd_pid[i], SIGCONT);
        kill(mcd_pid[i], SIGKILL);
        waitpid(mcd_pid[i], NULL, 0);
        mcd_pid[i] = 0;
    }
}

/* SIGSTOP memcached number i and wait until it is really stopped. */
static void mcd_stop(int i)
{
    int status = 0;

    ck_assert_int_eq(kill(mcd_pid[i], SIGSTOP), 0);
    ck_assert_int_eq(waitpid(mcd_pid[i], &status, WUNTRACED), mcd_pid[i]);
    ck_assert(WIFSTOPPED(status));
}

static void mcd_setup(void)
{
    signal(SIGPIPE, SIG_IGN); /* as httpd does */
    memset(mcd_pid, 0, sizeof(mcd_pid));
}

static void mcd_teardown(void)
{
    int i;

    for (i = 0; i < MCD_MAX; i++)
        mcd_kill(i);
}

/* A client on p for servers, with times in ms. */
static pe_memcache_t *client(apr_pool_t *p, const char *servers, int timeout_ms, int retry_ms, int threads)
{
    pe_memcache_opts_t o = {apr_time_from_msec(timeout_ms), apr_time_from_msec(retry_ms), threads};
    pe_memcache_conf_t *conf = NULL;
    pe_memcache_t *mc = NULL;
    const char *err = pe_memcache_conf_make(p, servers, &o, &conf);

    ck_assert_msg(err == NULL, "conf: %s", err);
    ck_assert_int_eq(pe_memcache_child_init(p, conf, &mc), APR_SUCCESS);
    ck_assert_ptr_nonnull(mc);
    return mc;
}

static const char *srv(int port)
{
    return apr_psprintf(pe_tp, "127.0.0.1:%d", port);
}

static const char *key(const char *name)
{
    return pe_cachekey_make(pe_tp, "test", name, strlen(name));
}

/* Error text of conf_make for a server list (NULL when accepted). */
static const char *conf_err(const char *servers, int timeout_ms, int retry_ms, int threads)
{
    pe_memcache_opts_t o = {apr_time_from_msec(timeout_ms), apr_time_from_msec(retry_ms), threads};
    pe_memcache_conf_t *conf = (pe_memcache_conf_t *)1;
    const char *err = pe_memcache_conf_make(pe_tp, servers, &o, &conf);

    if (err)
        ck_assert_ptr_null(conf);
    else
        ck_assert_ptr_nonnull(conf);
    return err;
}

#define ERR_HAS(s, what) ck_assert_msg((s) && strstr((s), (what)), "want '%s' in '%s'", (what), (s) ? (s) : "(null)")

START_TEST(conf_validation)
{
    pe_memcache_conf_t *conf;
    pe_memcache_t *mc = (pe_memcache_t *)1;
    const char *e;
    char *many;
    int i;

    ck_assert_ptr_null(conf_err("127.0.0.1:11211", 0, 0, 0));
    ck_assert_ptr_null(
        pe_memcache_conf_make(pe_tp, " cache-1.example.net:1\tcache2:65535  10.0.0.7:11211 ", NULL, &conf));
    ck_assert_int_eq(pe_memcache_conf_count(conf), 3);

    ERR_HAS(conf_err("", 0, 0, 0), "no server");
    ERR_HAS(conf_err("   ", 0, 0, 0), "no server");
    ERR_HAS(conf_err(NULL, 0, 0, 0), "no server");
    ERR_HAS(conf_err("localhost", 0, 0, 0), "'localhost' has no port");
    ERR_HAS(conf_err("localhost:", 0, 0, 0), "'localhost:' has no port");
    ERR_HAS(conf_err(":11211", 0, 0, 0), "has no host");
    ERR_HAS(conf_err("h:0", 0, 0, 0), "'h:0': the port must be a number from 1 to 65535");
    ERR_HAS(conf_err("h:65536", 0, 0, 0), "1 to 65535");
    ERR_HAS(conf_err("h:99999999999999999999", 0, 0, 0), "1 to 65535");
    ERR_HAS(conf_err("h:11a", 0, 0, 0), "1 to 65535");
    ERR_HAS(conf_err("h:-1", 0, 0, 0), "1 to 65535");
    ERR_HAS(conf_err("[::1]:11211", 0, 0, 0), "IPv6");
    ERR_HAS(conf_err("::1:11211", 0, 0, 0), "IPv6");
    ERR_HAS(conf_err("a_b:1", 0, 0, 0), "'a_b' is not a host name");
    ERR_HAS(conf_err("-a:1", 0, 0, 0), "is not a host name");
    ERR_HAS(conf_err("a..b:1", 0, 0, 0), "is not a host name");
    ERR_HAS(conf_err("a b:1", 0, 0, 0), "'a' has no port");
    ERR_HAS(conf_err("h:1 ok:2 H:1", 0, 0, 0), "'H:1' is listed twice");
    ck_assert_ptr_null(conf_err("h:1 h:2", 0, 0, 0));
    many = "";
    for (i = 0; i < PE_MEMCACHE_SERVERS_MAX; i++)
        many = apr_psprintf(pe_tp, "%s h%d:1", many, i);
    ck_assert_ptr_null(conf_err(many, 0, 0, 0));
    ERR_HAS(conf_err(apr_pstrcat(pe_tp, many, " x:1", NULL), 0, 0, 0), "more than 16 servers");

    e = conf_err("h:1", 20000, 0, 0);
    ERR_HAS(e, "the timeout must be between 1 ms and 10000 ms");
    ERR_HAS(conf_err("h:1", -5, 0, 0), "timeout");
    ERR_HAS(conf_err("h:1", 0, 5, 0), "the retry period must be between 10 ms");
    ERR_HAS(conf_err("h:1", 0, 0, 65), "threads per server must be between 1 and 64");
    ERR_HAS(conf_err("h:1", 0, 0, -1), "threads");
    ck_assert_int_eq(pe_memcache_conf_count(NULL), 0);
    ck_assert_int_eq(pe_memcache_child_init(pe_tp, NULL, &mc), APR_EINVAL);
    ck_assert_ptr_null(mc);
}
END_TEST

START_TEST(key_validation)
{
    char k[PE_MEMCACHE_KEY_MAX + 2];

    ck_assert(pe_memcache_key_valid(key("x")));
    ck_assert(pe_memcache_key_valid("a"));
    ck_assert(pe_memcache_key_valid("!~"));
    memset(k, 'k', sizeof(k));
    k[PE_MEMCACHE_KEY_MAX] = '\0';
    ck_assert(pe_memcache_key_valid(k));
    k[PE_MEMCACHE_KEY_MAX] = 'k';
    k[PE_MEMCACHE_KEY_MAX + 1] = '\0';
    ck_assert(!pe_memcache_key_valid(k));
    ck_assert(!pe_memcache_key_valid(""));
    ck_assert(!pe_memcache_key_valid(NULL));
    ck_assert(!pe_memcache_key_valid("a b"));
    ck_assert(!pe_memcache_key_valid("a\r\nset x 0 0 1"));
    ck_assert(!pe_memcache_key_valid("a\tb"));
    ck_assert(!pe_memcache_key_valid("a\x7f"));
    ck_assert(!pe_memcache_key_valid("caf\xc3\xa9"));
}
END_TEST

START_TEST(basic_ops)
{
    int port = mcd_start(0, 0);
    pe_memcache_t *mc = client(pe_tp, srv(port), 500, 1000, 2);
    const char *k = key("basic"), *c = key("counter"), *n = key("nan");
    static const char bin[] = {'a', '\0', 'b', '\r', '\n', 'E', 'N', 'D', '\r', '\n'};
    pe_memcache_stats_t st;
    apr_uint32_t nv = 0;
    char *v;
    apr_size_t len;

    ck_assert(pe_memcache_is_up(mc));
    ck_assert_int_eq(pe_memcache_get(mc, pe_tp, k, &v, &len), APR_NOTFOUND);
    ck_assert_ptr_null(v);
    ck_assert_int_eq(pe_memcache_set(mc, k, bin, sizeof(bin), 60), APR_SUCCESS);
    ck_assert_int_eq(pe_memcache_get(mc, pe_tp, k, &v, &len), APR_SUCCESS);
    ck_assert_uint_eq(len, sizeof(bin));
    ck_assert_mem_eq(v, bin, sizeof(bin));
    ck_assert_int_eq(v[len], '\0');
    /* overwrite, then empty value */
    ck_assert_int_eq(pe_memcache_set(mc, k, "second", 6, 0), APR_SUCCESS);
    ck_assert_int_eq(pe_memcache_get(mc, pe_tp, k, &v, &len), APR_SUCCESS);
    ck_assert_str_eq(v, "second");
    ck_assert_int_eq(pe_memcache_set(mc, k, NULL, 0, 0), APR_SUCCESS);
    ck_assert_int_eq(pe_memcache_get(mc, pe_tp, k, &v, &len), APR_SUCCESS);
    ck_assert_uint_eq(len, 0);
    ck_assert_str_eq(v, "");

    /* add: only when absent */
    ck_assert_int_eq(pe_memcache_add(mc, k, "x", 1, 0), APR_EEXIST);
    ck_assert_int_eq(pe_memcache_add(mc, key("fresh"), "first", 5, 0), APR_SUCCESS);
    ck_assert_int_eq(pe_memcache_add(mc, key("fresh"), "again", 5, 0), APR_EEXIST);
    ck_assert_int_eq(pe_memcache_get(mc, pe_tp, key("fresh"), &v, &len), APR_SUCCESS);
    ck_assert_str_eq(v, "first");

    /* counters */
    ck_assert_int_eq(pe_memcache_incr(mc, c, 1, &nv), APR_NOTFOUND);
    ck_assert_int_eq(pe_memcache_incr_add(mc, c, 5, 60, &nv), APR_SUCCESS);
    ck_assert_uint_eq(nv, 5);
    ck_assert_int_eq(pe_memcache_incr_add(mc, c, 3, 60, &nv), APR_SUCCESS);
    ck_assert_uint_eq(nv, 8);
    ck_assert_int_eq(pe_memcache_incr(mc, c, 1, &nv), APR_SUCCESS);
    ck_assert_uint_eq(nv, 9);
    ck_assert_int_eq(pe_memcache_incr(mc, c, 1, NULL), APR_SUCCESS);
    ck_assert_int_eq(pe_memcache_get(mc, pe_tp, c, &v, &len), APR_SUCCESS);
    ck_assert_str_eq(v, "10");
    ck_assert_int_eq(pe_memcache_set(mc, n, "abc", 3, 0), APR_SUCCESS);
    ck_assert_int_eq(pe_memcache_incr(mc, n, 1, &nv), APR_EGENERAL);
    ck_assert_int_eq(pe_memcache_incr_add(mc, n, 1, 60, &nv), APR_EGENERAL);

    /* delete */
    ck_assert_int_eq(pe_memcache_delete(mc, k), APR_SUCCESS);
    ck_assert_int_eq(pe_memcache_delete(mc, k), APR_NOTFOUND);
    ck_assert_int_eq(pe_memcache_get(mc, pe_tp, k, &v, &len), APR_NOTFOUND);

    /* bad arguments never reach the server */
    ck_assert_int_eq(pe_memcache_set(mc, "bad key", "x", 1, 0), APR_EINVAL);
    ck_assert_int_eq(pe_memcache_get(mc, pe_tp, "a\r\nflush_all", &v, &len), APR_EINVAL);
    ck_assert_int_eq(pe_memcache_set(mc, k, "x", 1, PE_MEMCACHE_TTL_MAX + 1), APR_EINVAL);
    ck_assert_int_eq(pe_memcache_set(mc, k, NULL, 1, 0), APR_EINVAL);
    ck_assert_int_eq(pe_memcache_incr(mc, c, 0, &nv), APR_EINVAL);
    ck_assert_int_eq(pe_memcache_incr(mc, c, 0x80000000u, &nv), APR_EINVAL);
    ck_assert_int_eq(pe_memcache_incr_add(mc, c, 1, 0, &nv), APR_EINVAL);
    ck_assert_int_eq(pe_memcache_delete(NULL, k), APR_EINVAL);
    ck_assert_int_eq(pe_memcache_get(mc, pe_tp, c, &v, &len), APR_SUCCESS);
    ck_assert_str_eq(v, "10");

    /* a value over memcached's 1 MB item limit is refused by the server, which stays up */
    {
        apr_size_t big = 2 * 1024 * 1024;
        char *b = apr_pcalloc(pe_tp, big);
        ck_assert_int_eq(pe_memcache_set(mc, key("big"), b, big, 0), APR_EGENERAL);
        ck_assert(pe_memcache_is_up(mc));
        ck_assert_int_eq(pe_memcache_get(mc, pe_tp, c, &v, &len), APR_SUCCESS);
    }

    pe_memcache_stats(mc, &st);
    ck_assert_uint_eq(st.hits, 7);
    ck_assert_uint_eq(st.misses, 2);
    ck_assert_uint_eq(st.timeouts, 0);
    ck_assert_uint_eq(st.errors, 3);
    ck_assert_uint_eq(st.fast_fails, 0);
    ck_assert_int_eq(st.servers, 1);
    ck_assert_int_eq(st.servers_up, 1);
}
END_TEST

START_TEST(ttl_expiry)
{
    int port = mcd_start(0, 0);
    pe_memcache_t *mc = client(pe_tp, srv(port), 500, 1000, 2);
    const char *k = key("ttl"), *w = key("window"), *keep = key("keep");
    apr_uint32_t nv = 0;
    char *v;

    ck_assert_int_eq(pe_memcache_set(mc, k, "v", 1, 2), APR_SUCCESS);
    ck_assert_int_eq(pe_memcache_set(mc, keep, "v", 1, 60), APR_SUCCESS);
    ck_assert_int_eq(pe_memcache_incr_add(mc, w, 1, 2, &nv), APR_SUCCESS);
    ck_assert_int_eq(pe_memcache_incr_add(mc, w, 1, 2, &nv), APR_SUCCESS);
    ck_assert_uint_eq(nv, 2);
    ck_assert_int_eq(pe_memcache_add(mc, key("addttl"), "a", 1, 2), APR_SUCCESS);
    ck_assert_int_eq(pe_memcache_get(mc, pe_tp, k, &v, NULL), APR_SUCCESS);
    sleep(4);
    ck_assert_int_eq(pe_memcache_get(mc, pe_tp, k, &v, NULL), APR_NOTFOUND);
    ck_assert_int_eq(pe_memcache_get(mc, pe_tp, keep, &v, NULL), APR_SUCCESS);
    /* the window expired with its TTL: the next hit starts a new one */
    ck_assert_int_eq(pe_memcache_incr_add(mc, w, 1, 2, &nv), APR_SUCCESS);
    ck_assert_uint_eq(nv, 1);
    ck_assert_int_eq(pe_memcache_add(mc, key("addttl"), "b", 1, 2), APR_SUCCESS);
}
END_TEST

START_TEST(two_servers)
{
    int p0 = mcd_start(0, 0), p1 = mcd_start(1, 0), i, on0 = 0, on1 = 0;
    pe_memcache_t *mc = client(pe_tp, apr_pstrcat(pe_tp, srv(p0), " ", srv(p1), NULL), 300, 200, 2);
    pe_memcache_t *only0 = client(pe_tp, srv(p0), 300, 200, 1);
    pe_memcache_t *only1 = client(pe_tp, srv(p1), 300, 200, 1);
    pe_memcache_stats_t st;
    apr_status_t rv;
    char *v;
    apr_time_t t0;

    for (i = 0; i < 40; i++) {
        const char *k = key(apr_itoa(pe_tp, i));
        ck_assert_int_eq(pe_memcache_set(mc, k, apr_itoa(pe_tp, i), strlen(apr_itoa(pe_tp, i)), 0), APR_SUCCESS);
    }
    for (i = 0; i < 40; i++) {
        const char *k = key(apr_itoa(pe_tp, i));
        int a = pe_memcache_get(only0, pe_tp, k, &v, NULL) == APR_SUCCESS;
        int b = pe_memcache_get(only1, pe_tp, k, &v, NULL) == APR_SUCCESS;
        ck_assert_msg(a + b == 1, "key %d stored on %d servers", i, a + b);
        on0 += a;
        on1 += b;
        ck_assert_int_eq(pe_memcache_get(mc, pe_tp, k, &v, NULL), APR_SUCCESS);
        ck_assert_str_eq(v, apr_itoa(pe_tp, i));
    }
    ck_assert_int_gt(on0, 0);
    ck_assert_int_gt(on1, 0);

    /* one server dies: its keys fail fast once, then go to the other server */
    mcd_kill(1);
    t0 = apr_time_now();
    for (i = 0; i < 40; i++) {
        const char *k = key(apr_itoa(pe_tp, i));
        rv = pe_memcache_get(mc, pe_tp, k, &v, NULL);
        ck_assert_msg(rv != APR_TIMEUP && rv != APR_EAGAIN, "key %d: %d", i, rv);
    }
    ck_assert_int_lt(apr_time_now() - t0, apr_time_from_msec(500));
    ck_assert(pe_memcache_is_up(mc));
    pe_memcache_stats(mc, &st);
    ck_assert_int_eq(st.servers_up, 1);
    ck_assert_uint_ge(st.errors, 1);
    ck_assert_uint_le(st.errors, 2);
    for (i = 0; i < 40; i++) {
        const char *k = key(apr_itoa(pe_tp, i));
        ck_assert_int_eq(pe_memcache_set(mc, k, "moved", 5, 0), APR_SUCCESS);
        ck_assert_int_eq(pe_memcache_get(mc, pe_tp, k, &v, NULL), APR_SUCCESS);
        ck_assert_str_eq(v, "moved");
    }
    /* both dead: every call fails, and both end up marked down */
    mcd_kill(0);
    usleep(250000);
    for (i = 0; i < 40; i++)
        ck_assert_int_ne(pe_memcache_get(mc, pe_tp, key(apr_itoa(pe_tp, i)), &v, NULL), APR_SUCCESS);
    ck_assert(!pe_memcache_is_up(mc));
    pe_memcache_stats(mc, &st);
    ck_assert_int_eq(st.servers_up, 0);
}
END_TEST

/* Multi-get: found and missing keys in one call, on one server and across two; a dead server's
 * keys get its error while the other server's keys are still answered. */
START_TEST(multi_get)
{
    int p0 = mcd_start(0, 0), p1 = mcd_start(1, 0), i;
    pe_memcache_t *one = client(pe_tp, srv(p0), 500, 1000, 2);
    pe_memcache_t *two = client(pe_tp, apr_pstrcat(pe_tp, srv(p0), " ", srv(p1), NULL), 500, 1000, 2);
    const char *keys[PE_MEMCACHE_MGET_MAX];
    char *vals[PE_MEMCACHE_MGET_MAX];
    apr_size_t lens[PE_MEMCACHE_MGET_MAX];
    apr_status_t rvs[PE_MEMCACHE_MGET_MAX];
    pe_memcache_stats_t st;
    int found = 0, failed = 0;

    keys[0] = key("mg-a");
    keys[1] = key("mg-missing");
    keys[2] = key("mg-b");
    ck_assert_int_eq(pe_memcache_set(one, keys[0], "alpha", 5, 0), APR_SUCCESS);
    ck_assert_int_eq(pe_memcache_set(one, keys[2], "be\r\nta", 6, 0), APR_SUCCESS);
    ck_assert_int_eq(pe_memcache_getm(one, pe_tp, 3, keys, vals, lens, rvs), APR_SUCCESS);
    ck_assert_int_eq(rvs[0], APR_SUCCESS);
    ck_assert_str_eq(vals[0], "alpha");
    ck_assert_uint_eq(lens[0], 5);
    ck_assert_int_eq(rvs[1], APR_NOTFOUND);
    ck_assert_ptr_null(vals[1]);
    ck_assert_int_eq(rvs[2], APR_SUCCESS);
    ck_assert_uint_eq(lens[2], 6);
    ck_assert_mem_eq(vals[2], "be\r\nta", 6);
    pe_memcache_stats(one, &st);
    ck_assert_uint_eq(st.hits, 2);
    ck_assert_uint_eq(st.misses, 1);
    /* bad arguments are refused before anything is sent */
    ck_assert_int_eq(pe_memcache_getm(one, pe_tp, 0, keys, vals, lens, rvs), APR_EINVAL);
    ck_assert_int_eq(pe_memcache_getm(one, pe_tp, PE_MEMCACHE_MGET_MAX + 1, keys, vals, lens, rvs), APR_EINVAL);
    keys[1] = "bad key";
    ck_assert_int_eq(pe_memcache_getm(one, pe_tp, 2, keys, vals, lens, rvs), APR_EINVAL);

    /* keys on two servers: each is found where pe_memcache_set put it */
    for (i = 0; i < PE_MEMCACHE_MGET_MAX; i++) {
        keys[i] = key(apr_psprintf(pe_tp, "mg2-%d", i));
        ck_assert_int_eq(pe_memcache_set(two, keys[i], apr_itoa(pe_tp, i), strlen(apr_itoa(pe_tp, i)), 0),
                         APR_SUCCESS);
    }
    ck_assert_int_eq(pe_memcache_getm(two, pe_tp, PE_MEMCACHE_MGET_MAX, keys, vals, lens, rvs), APR_SUCCESS);
    for (i = 0; i < PE_MEMCACHE_MGET_MAX; i++) {
        ck_assert_int_eq(rvs[i], APR_SUCCESS);
        ck_assert_str_eq(vals[i], apr_itoa(pe_tp, i));
    }
    /* one server dies: the call fails, its keys carry the error, the other server's are found */
    mcd_kill(1);
    ck_assert_int_ne(pe_memcache_getm(two, pe_tp, PE_MEMCACHE_MGET_MAX, keys, vals, lens, rvs), APR_SUCCESS);
    for (i = 0; i < PE_MEMCACHE_MGET_MAX; i++) {
        found += rvs[i] == APR_SUCCESS;
        failed += rvs[i] != APR_SUCCESS && rvs[i] != APR_NOTFOUND;
        if (rvs[i] == APR_SUCCESS)
            ck_assert_str_eq(vals[i], apr_itoa(pe_tp, i));
        else
            ck_assert_ptr_null(vals[i]);
    }
    ck_assert_int_gt(found, 0);
    ck_assert_int_gt(failed, 0);
    ck_assert_int_eq(found + failed, PE_MEMCACHE_MGET_MAX);
    /* now marked down: its keys go to the other server, whose one thread takes the two requests
     * one after the other (not a wait for itself until the deadline) */
    {
        pe_memcache_t *two1 = client(pe_tp, apr_pstrcat(pe_tp, srv(p0), " ", srv(p1), NULL), 500, 1000, 1);
        ck_assert_int_ne(pe_memcache_getm(two1, pe_tp, PE_MEMCACHE_MGET_MAX, keys, vals, lens, rvs), APR_SUCCESS);
        ck_assert_int_eq(pe_memcache_getm(two1, pe_tp, PE_MEMCACHE_MGET_MAX, keys, vals, lens, rvs), APR_SUCCESS);
        found = 0;
        for (i = 0; i < PE_MEMCACHE_MGET_MAX; i++) {
            ck_assert_msg(rvs[i] == APR_SUCCESS || rvs[i] == APR_NOTFOUND, "key %d: %d", i, rvs[i]);
            found += rvs[i] == APR_SUCCESS;
        }
        ck_assert_int_gt(found, 0);
        ck_assert_int_lt(found, PE_MEMCACHE_MGET_MAX);
    }
}
END_TEST

/* A server slower than apr_memcache's 50 ms multi-get poll but within the timeout: the keys are
 * asked again with get, found, and the server is not marked down. */
START_TEST(multi_get_slow_server)
{
    int port = mcd_start(0, 0);
    pe_memcache_t *mc = client(pe_tp, srv(port), 3000, 1000, 2);
    const char *keys[2] = {key("slow-a"), key("slow-b")};
    char *vals[2];
    apr_size_t lens[2];
    apr_status_t rvs[2];
    pe_memcache_stats_t st;
    pid_t waker;

    ck_assert_int_eq(pe_memcache_set(mc, keys[0], "one", 3, 0), APR_SUCCESS);
    kill(mcd_pid[0], SIGSTOP);
    waker = fork();
    if (waker == 0) {
        usleep(300000);
        kill(mcd_pid[0], SIGCONT);
        _exit(0);
    }
    ck_assert_int_eq(pe_memcache_getm(mc, pe_tp, 2, keys, vals, lens, rvs), APR_SUCCESS);
    waitpid(waker, NULL, 0);
    ck_assert_int_eq(rvs[0], APR_SUCCESS);
    ck_assert_str_eq(vals[0], "one");
    ck_assert_int_eq(rvs[1], APR_NOTFOUND);
    pe_memcache_stats(mc, &st);
    ck_assert_uint_eq(st.mget_retries, 2);
    ck_assert_uint_eq(st.timeouts, 0);
    ck_assert(pe_memcache_is_up(mc));
}
END_TEST

START_TEST(killed_server)
{
    int port = mcd_start(0, 0), i, eagain = 0;
    pe_memcache_t *mc = client(pe_tp, srv(port), 300, 400, 2);
    const char *k = key("killed");
    pe_memcache_stats_t st;
    apr_status_t rv;
    apr_time_t t0, dt;
    char *v;

    ck_assert_int_eq(pe_memcache_set(mc, k, "v", 1, 0), APR_SUCCESS);
    mcd_kill(0);
    for (i = 0; i < 20; i++) {
        t0 = apr_time_now();
        rv = pe_memcache_get(mc, pe_tp, k, &v, NULL);
        dt = apr_time_now() - t0;
        ck_assert_int_ne(rv, APR_SUCCESS);
        ck_assert_int_ne(rv, APR_NOTFOUND);
        ck_assert_int_ne(rv, APR_TIMEUP);
        ck_assert_msg(dt < apr_time_from_msec(50), "op %d took %" APR_TIME_T_FMT " us", i, dt);
        eagain += rv == APR_EAGAIN;
    }
    ck_assert_int_ge(eagain, 18); /* after the first failure the server is skipped without I/O */
    ck_assert(!pe_memcache_is_up(mc));
    pe_memcache_stats(mc, &st);
    ck_assert_uint_ge(st.fast_fails, 18);
    ck_assert_int_eq(st.servers_up, 0);

    /* after the retry period a probe meets a refused connection: still fast, still down */
    usleep(450000);
    t0 = apr_time_now();
    rv = pe_memcache_set(mc, k, "v", 1, 0);
    ck_assert_int_ne(rv, APR_SUCCESS);
    ck_assert_int_ne(rv, APR_EAGAIN);
    ck_assert_int_lt(apr_time_now() - t0, apr_time_from_msec(50));
    ck_assert(!pe_memcache_is_up(mc));

    /* memcached comes back on the same port: the next probe finds it */
    mcd_start(0, port);
    usleep(450000);
    ck_assert_int_eq(pe_memcache_set(mc, k, "back", 4, 0), APR_SUCCESS);
    ck_assert(pe_memcache_is_up(mc));
    ck_assert_int_eq(pe_memcache_get(mc, pe_tp, k, &v, NULL), APR_SUCCESS);
    ck_assert_str_eq(v, "back");
}
END_TEST

/* Every operation on a SIGSTOP'd server returns within timeout + margin; SIGCONT recovers. */
START_TEST(stopped_server_bounded)
{
    const int timeout_ms = 200, margin_ms = 150, threads = 2;
    int port = mcd_start(0, 0), i, timeups = 0, eagains = 0;
    pe_memcache_t *mc = client(pe_tp, srv(port), timeout_ms, 300, threads);
    const char *k = key("stopped");
    pe_memcache_stats_t st;
    apr_interval_time_t worst = 0;
    apr_uint32_t nv;
    apr_status_t rv;
    char *v;

    ck_assert_int_eq(pe_memcache_set(mc, k, "before", 6, 0), APR_SUCCESS);
    mcd_stop(0);
    /* ~2.5 s of traffic: several retry periods, so probes happen and pile up to the cap */
    for (i = 0; i < 100; i++) {
        apr_time_t t0 = apr_time_now();
        apr_interval_time_t dt;
        switch (i % 4) {
        case 0:
            rv = pe_memcache_get(mc, pe_tp, k, &v, NULL);
            break;
        case 1:
            rv = pe_memcache_set(mc, k, "during", 6, 0);
            break;
        case 2:
            rv = pe_memcache_incr_add(mc, key("ctr"), 1, 60, &nv);
            break;
        default:
            rv = pe_memcache_delete(mc, key("other"));
            break;
        }
        dt = apr_time_now() - t0;
        if (dt > worst)
            worst = dt;
        ck_assert_msg(dt < apr_time_from_msec(timeout_ms + margin_ms), "op %d took %" APR_TIME_T_FMT " ms", i,
                      apr_time_as_msec(dt));
        ck_assert_msg(rv == APR_TIMEUP || rv == APR_EAGAIN, "op %d: rv %d", i, rv);
        timeups += rv == APR_TIMEUP;
        eagains += rv == APR_EAGAIN;
        usleep(20000);
    }
    ck_assert(!pe_memcache_is_up(mc));
    pe_memcache_stats(mc, &st);
    /* the first call and one probe per thread timed out; then every thread is held by an abandoned
     * call (the cap) and later probes are refused at once instead of waiting */
    ck_assert_int_eq(timeups, threads);
    ck_assert_int_gt(eagains, 80);
    ck_assert_uint_eq(st.abandoned, (apr_uint32_t)threads);
    ck_assert_uint_eq(st.timeouts, (apr_uint32_t)timeups);
    ck_assert_uint_eq(st.fast_fails, (apr_uint32_t)eagains);
    ck_assert_int_ge(worst, apr_time_from_msec(timeout_ms - 5)); /* the timeout was really waited for */

    /* SIGCONT: the blocked threads return, the next probe succeeds */
    ck_assert_int_eq(kill(mcd_pid[0], SIGCONT), 0);
    for (i = 0; i < 200; i++) {
        rv = pe_memcache_get(mc, pe_tp, k, &v, NULL);
        if (rv == APR_SUCCESS)
            break;
        usleep(10000);
    }
    ck_assert_int_eq(rv, APR_SUCCESS);
    ck_assert(pe_memcache_is_up(mc));
    ck_assert(!strcmp(v, "before") || !strcmp(v, "during")); /* an abandoned set may land late */
    /* the abandoned calls complete too (the server answers them late) and free their threads */
    for (i = 0; i < 200; i++) {
        pe_memcache_stats(mc, &st);
        if (st.abandoned == 0)
            break;
        usleep(10000);
    }
    ck_assert_uint_eq(st.abandoned, 0);
    ck_assert_int_eq(pe_memcache_set(mc, k, "after", 5, 0), APR_SUCCESS);
    ck_assert_int_eq(pe_memcache_get(mc, pe_tp, k, &v, NULL), APR_SUCCESS);
    ck_assert_str_eq(v, "after");
}
END_TEST

/* Tearing down a client whose threads are blocked on a stopped server is bounded too. */
START_TEST(teardown_while_stopped)
{
    int port = mcd_start(0, 0);
    apr_pool_t *sub;
    pe_memcache_t *mc;
    apr_time_t t0;

    apr_pool_create(&sub, pe_tp);
    mc = client(sub, srv(port), 100, 1000, 1);
    ck_assert_int_eq(pe_memcache_set(mc, key("t"), "v", 1, 0), APR_SUCCESS);
    mcd_stop(0);
    ck_assert_int_eq(pe_memcache_set(mc, key("t"), "w", 1, 0), APR_TIMEUP);
    t0 = apr_time_now();
    apr_pool_destroy(sub);
    ck_assert_int_lt(apr_time_now() - t0, apr_time_from_msec(100 + 150));
    kill(mcd_pid[0], SIGCONT);
    usleep(100000); /* the blocked thread wakes up, finds the client stopped and exits */

    /* a healthy client is torn down at once */
    apr_pool_create(&sub, pe_tp);
    mc = client(sub, srv(port), 1000, 1000, 4);
    ck_assert_int_eq(pe_memcache_set(mc, key("t"), "v", 1, 0), APR_SUCCESS);
    t0 = apr_time_now();
    apr_pool_destroy(sub);
    ck_assert_int_lt(apr_time_now() - t0, apr_time_from_msec(100));
}
END_TEST

typedef struct {
    pe_memcache_t *mc;
    const char *counter;
    int id, bad;
} worker_t;

#define WORKERS 8
#define ROUNDS 200

/* One concurrent user: counts and round-trips its own values. */
static void *APR_THREAD_FUNC worker(apr_thread_t *t, void *data)
{
    worker_t *w = data;
    apr_pool_t *p;
    int i;

    apr_pool_create(&p, NULL);
    for (i = 0; i < ROUNDS; i++) {
        const char *val = apr_psprintf(p, "w%d-%d", w->id, i);
        const char *name = apr_psprintf(p, "w%d-%d", w->id, i % 7);
        const char *k = pe_cachekey_make(p, "test", name, strlen(name));
        char *v = NULL;
        if (pe_memcache_incr_add(w->mc, w->counter, 1, 60, NULL) != APR_SUCCESS)
            w->bad++;
        if (pe_memcache_set(w->mc, k, val, strlen(val), 60) != APR_SUCCESS)
            w->bad++;
        else if (pe_memcache_get(w->mc, p, k, &v, NULL) != APR_SUCCESS || strcmp(v, val))
            w->bad++;
        apr_pool_clear(p);
    }
    apr_pool_destroy(p);
    apr_thread_exit(t, APR_SUCCESS);
    return NULL;
}

START_TEST(concurrent_threads)
{
    int p0 = mcd_start(0, 0), p1 = mcd_start(1, 0), i;
    pe_memcache_t *mc = client(pe_tp, apr_pstrcat(pe_tp, srv(p0), " ", srv(p1), NULL), 5000, 1000, 3);
    worker_t w[WORKERS];
    apr_thread_t *t[WORKERS];
    apr_status_t st;
    apr_uint32_t nv = 0;
    pe_memcache_stats_t s;

    for (i = 0; i < WORKERS; i++) {
        w[i].mc = mc;
        w[i].counter = key("shared-counter");
        w[i].id = i;
        w[i].bad = 0;
        ck_assert_int_eq(apr_thread_create(&t[i], NULL, worker, &w[i], pe_tp), APR_SUCCESS);
    }
    for (i = 0; i < WORKERS; i++) {
        apr_thread_join(&st, t[i]);
        ck_assert_int_eq(w[i].bad, 0);
    }
    ck_assert_int_eq(pe_memcache_incr(mc, key("shared-counter"), 1, &nv), APR_SUCCESS);
    ck_assert_uint_eq(nv, WORKERS * ROUNDS + 1);
    pe_memcache_stats(mc, &s);
    ck_assert_uint_eq(s.ops, WORKERS * ROUNDS * 3 + 1);
    ck_assert_uint_eq(s.errors + s.timeouts + s.fast_fails, 0);
    ck_assert_uint_eq(s.hits, WORKERS * ROUNDS);
}
END_TEST

/* A test case with the pool fixture and the memcached teardown. */
static TCase *mc_tcase(const char *name)
{
    TCase *tc = pe_tcase(name);
    tcase_add_checked_fixture(tc, mcd_setup, mcd_teardown);
    return tc;
}

Suite *pe_suite_memcache(void)
{
    Suite *s = suite_create("memcache");
    TCase *tc = pe_tcase("memcache_conf");

    tcase_add_test(tc, conf_validation);
    tcase_add_test(tc, key_validation);
    suite_add_tcase(s, tc);
    tc = mc_tcase("memcache_live");
    tcase_add_test(tc, basic_ops);
    tcase_add_test(tc, ttl_expiry);
    tcase_add_test(tc, two_servers);
    tcase_add_test(tc, multi_get);
    tcase_add_test(tc, multi_get_slow_server);
    tcase_add_test(tc, killed_server);
    tcase_add_test(tc, stopped_server_bounded);
    tcase_add_test(tc, teardown_while_stopped);
    tcase_add_test(tc, concurrent_threads);
    suite_add_tcase(s, tc);
    return s;
}
