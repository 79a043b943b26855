"""Access layer: per-address limits exact across processes (prefork and event) and across nodes
(memcached), automatic blocks after failed logins, stored blocks and whitelist (SQLite and
PostgreSQL), X-Forwarded-For only through mod_remoteip, counters kept across graceful restarts,
configuration checks.

Each test uses its own loopback source address (127.0.0.x; Linux routes all of 127/8 to lo), so
its counters start from zero whatever ran before in the same httpd.
"""
import concurrent.futures
import http.client
import json
import os
import re
import subprocess
import time
import unittest

import pe_mongo
import pe_pg
from pe_harness import TOP, Httpd, HttpdTestCase
from test_completions import Memcached

MODDIR = subprocess.run(["apxs", "-q", "LIBEXECDIR"], capture_output=True, text=True).stdout.strip() or \
    "/usr/lib/apache2/modules"
LIMIT_HEADERS = ("X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset")

# Exactly 60 per address per window; failed logins block after 10 for 3 s; lists read every 200 ms.
BASE_CONF = """PEArgon2Cost 1 1M 1
KeepAlive Off
PEIPRateLimit 60/min algorithm=fixed-window
PEAutoBlock 10 15m 3s
PEAccessRefresh 200ms
<Location /wl/>
    PEIPWhitelist On
    PEBaseURI /wl
</Location>
<Location /plain/>
    SetHandler none
</Location>
"""
PREFORK_CONF = """<IfModule mpm_prefork_module>
    StartServers 4
    MinSpareServers 4
    MaxSpareServers 4
    ServerLimit 4
    MaxRequestWorkers 4
</IfModule>
"""


class Resp:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = {k.lower(): v for k, v in headers}
        self.body = body

    def header(self, name):
        return self.headers.get(name.lower())

    @property
    def json(self):
        return json.loads(self.body.decode("utf-8"))


def call(port, path, src="127.0.0.1", method="GET", body=None, headers=None):
    """One request on a fresh connection from source address src."""
    hdrs = dict(headers or {})
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        hdrs["Content-Type"] = "application/json"
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30, source_address=(src, 0))
    try:
        conn.request(method, path, body=data, headers=hdrs)
        r = conn.getresponse()
        return Resp(r.status, r.getheaders(), r.read())
    finally:
        conn.close()


def many(ports, n, src, concurrency=1, path="/health"):
    """n GET requests spread round-robin over ports; concurrency > 1 sends them in parallel."""
    jobs = [ports[i % len(ports)] for i in range(n)]
    if concurrency == 1:
        return [call(p, path, src) for p in jobs]
    with concurrent.futures.ThreadPoolExecutor(concurrency) as ex:
        return list(ex.map(lambda p: call(p, path, src), jobs))


class AccessChecks:
    """Assertions shared by the suites."""

    def assertLimited(self, resps, allowed, limit=60, exact_remaining=True):
        ok = [r for r in resps if r.status == 200]
        refused = [r for r in resps if r.status == 429]
        self.assertEqual(len(ok) + len(refused), len(resps), [r.status for r in resps if r.status not in (200, 429)])
        self.assertEqual(len(ok), allowed)
        now = time.time()
        for r in resps:
            for h in LIMIT_HEADERS:
                self.assertIsNotNone(r.header(h), (r.status, h))
            self.assertEqual(int(r.header("X-RateLimit-Limit")), limit)
            self.assertGreater(int(r.header("X-RateLimit-Reset")), now - 1)
        for r in refused:
            self.assertGreaterEqual(int(r.header("Retry-After")), 1)
            self.assertEqual(r.header("X-RateLimit-Remaining"), "0")
            j = r.json
            self.assertEqual(j["error_code"], "RATE_LIMITED")
            self.assertEqual(j["details"]["scope"], "ip")
        for r in ok:
            self.assertIsNone(r.header("Retry-After"))
        remaining = sorted(int(r.header("X-RateLimit-Remaining")) for r in ok)
        if exact_remaining:
            # one fresh counter: each admitted request saw one less left, down to limit - allowed
            self.assertEqual(remaining, list(range(limit - allowed, limit)))
        else:
            # two counters (the node's and the cluster's): the header shows the smaller of the two
            self.assertTrue(all(0 <= x < limit for x in remaining), remaining)

    def assertRefused(self, r, status, code):
        self.assertEqual(r.status, status, r.body)
        self.assertTrue(r.header("Content-Type").startswith("application/json"))
        j = r.json
        self.assertIs(j["success"], False)
        self.assertEqual(j["error_code"], code, j)
        self.assertEqual(j["details"]["request_id"], r.header("X-Request-ID"))
        return j


class SqliteLists:
    """Write the stored lists straight into the instance's SQLite file."""

    def sql(self, q, *args):
        self.httpd.sqlite(q, args)

    def add_block(self, network, reason, expires=0):
        self.sql("INSERT INTO pe_blocked_ips (network, reason, created_at, expires_at) VALUES (?, ?, 0, ?)",
                 network, reason, expires)

    def add_white(self, network, expires=0):
        self.sql("INSERT INTO pe_ip_whitelist (network, description, created_at, expires_at) VALUES (?, 'test', 0, ?)",
                 network, expires)


def usec(seconds_from_now):
    return int((time.time() + seconds_from_now) * 1e6)


class LimitsMixin(AccessChecks, SqliteLists):
    """The same tests under each MPM."""

    def test_sequential_exactly_60(self):
        self.assertLimited(many([self.httpd.port], 200, "127.0.0.11"), 60)

    def test_concurrent_exactly_60(self):
        self.assertLimited(many([self.httpd.port], 200, "127.0.0.12", concurrency=32), 60)

    def test_graceful_keeps_counters(self):
        self.assertLimited(many([self.httpd.port], 30, "127.0.0.13"), 30)
        before = self.httpd.error_log().count("AH00094")  # "Command line" is logged per generation
        self.httpd.graceful()
        self.assertGreater(self.httpd.error_log().count("AH00094"), before)
        later = many([self.httpd.port], 100, "127.0.0.13")
        self.assertEqual(len([r for r in later if r.status == 200]), 30)

    def test_auto_block_after_failed_logins(self):
        port, bad = self.httpd.port, {"email": "nobody@example.com", "password": "Wrong-password-1"}
        for i in range(10):
            r = call(port, "/v1/users/login", "127.0.0.14", "POST", bad)
            self.assertRefused(r, 401, "INVALID_CREDENTIALS")
        r = call(port, "/", "127.0.0.14")
        j = self.assertRefused(r, 403, "IP_BLOCKED")
        self.assertIn("failed authentications", j["message"])
        self.assertGreaterEqual(int(r.header("Retry-After")), 1)
        # liveness stays visible to a load balancer behind the same address
        self.assertEqual(call(port, "/health", "127.0.0.14").status, 200)
        # other addresses are not affected
        self.assertEqual(call(port, "/", "127.0.0.15").status, 200)
        self.assertRefused(call(port, "/v1/users/login", "127.0.0.14", "POST", bad), 403, "IP_BLOCKED")
        time.sleep(3.3)
        self.assertEqual(call(port, "/", "127.0.0.14").status, 200)
        self.assertIn("PE45030", self.httpd.error_log())

    def test_stored_block_with_reason_and_expiry(self):
        port = self.httpd.port
        self.add_block("127.0.0.16", "abuse reported by ops")
        self.add_block("127.0.0.17", "long over", expires=usec(-60))
        self.add_block("127.0.2.0/24", "for two seconds", expires=usec(2))
        time.sleep(0.5)
        j = self.assertRefused(call(port, "/health", "127.0.0.16"), 403, "IP_BLOCKED")
        self.assertEqual(j["message"], "Access denied: abuse reported by ops")
        self.assertEqual(j["details"]["reason"], "abuse reported by ops")
        self.assertEqual(call(port, "/health", "127.0.0.17").status, 200)
        self.assertRefused(call(port, "/health", "127.0.2.9"), 403, "IP_BLOCKED")
        time.sleep(2.2)
        self.assertEqual(call(port, "/health", "127.0.2.9").status, 200)

    def test_whitelist(self):
        port = self.httpd.port
        self.add_white("127.0.0.20")
        self.add_white("127.0.1.0/24")
        self.add_white("127.0.0.21", expires=usec(1.5))
        time.sleep(0.5)
        self.assertEqual(call(port, "/wl/health", "127.0.0.20").status, 200)
        self.assertEqual(call(port, "/wl/health", "127.0.1.77").status, 200)
        self.assertEqual(call(port, "/wl/health", "127.0.0.21").status, 200)
        self.assertRefused(call(port, "/wl/health", "127.0.0.22"), 403, "IP_NOT_WHITELISTED")
        # X-Forwarded-For from a client, without mod_remoteip, changes nothing
        self.assertRefused(call(port, "/wl/health", "127.0.0.22", headers={"X-Forwarded-For": "127.0.0.20"}), 403,
                           "IP_NOT_WHITELISTED")
        # outside whitelist mode everyone passes
        self.assertEqual(call(port, "/health", "127.0.0.22").status, 200)
        time.sleep(1.2)
        self.assertRefused(call(port, "/wl/health", "127.0.0.21"), 403, "IP_NOT_WHITELISTED")

    def test_other_handlers_untouched(self):
        for _ in range(3):
            r = call(self.httpd.port, "/plain/x", "127.0.0.23")
            self.assertEqual(r.status, 404)
            self.assertIsNone(r.header("X-RateLimit-Limit"))
        self.assertIsNotNone(call(self.httpd.port, "/health", "127.0.0.23").header("X-RateLimit-Limit"))


class AccessPrefork(LimitsMixin, HttpdTestCase):
    MPM = "prefork"
    EXTRA_CONF = BASE_CONF + PREFORK_CONF
    # 32 parallel clients for 4 processes: httpd says it is at MaxRequestWorkers, as it should.
    ALLOWED_LOG_IDS = ("AH00161",)

    def test_four_children(self):
        out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(self.httpd.pid())], capture_output=True,
                             text=True).stdout.split()
        self.assertEqual(len(out), 4)


class AccessEvent(LimitsMixin, HttpdTestCase):
    MPM = "event"
    EXTRA_CONF = BASE_CONF


# Bursts against PEAutoBlock 10: the block outlasts the test, and no rate limit interferes.
BURST_CONF = """PEArgon2Cost 1 1M 1
KeepAlive Off
PEIPRateLimit Off
PEAutoBlock 10 15m 1h
"""


class AutoBlockBurstMixin(AccessChecks):
    """Count first, then check: a burst of 29 concurrent failures from one address lets exactly 10
    through to be verified (401) and finds the block for the rest (403), whichever credential
    fails; concurrent good credentials from one address are neither refused nor counted."""

    BURST = 29

    def burst(self, src, fn):
        with concurrent.futures.ThreadPoolExecutor(self.BURST) as ex:
            return list(ex.map(lambda i: fn(src, i), range(self.BURST)))

    @staticmethod
    def code_of(r):
        """The error code in either shape: the envelope's, or OpenAI's on /v1/models."""
        j = r.json
        return j["error"]["code"] if isinstance(j.get("error"), dict) else j["error_code"]

    def assertExactlyTen(self, rs, code):
        codes = sorted((r.status, self.code_of(r)) for r in rs)
        self.assertEqual(codes, [(401, code)] * 10 + [(403, "IP_BLOCKED")] * (self.BURST - 10), codes)

    def test_bad_keys(self):
        port = self.httpd.port
        rs = self.burst("127.0.3.1", lambda src, i: call(port, "/v1/models", src, headers={
            "Authorization": "Bearer pe-%032d" % i}))
        self.assertExactlyTen(rs, "INVALID_API_KEY")
        self.assertRefused(call(port, "/v1/users/profile", "127.0.3.1"), 403, "IP_BLOCKED")
        blocks = [l for l in self.httpd.error_log().splitlines() if "PE45030" in l and "127.0.3.1 " in l]
        self.assertEqual(len(blocks), 1, blocks)

    def test_failed_logins(self):
        port = self.httpd.port
        rs = self.burst("127.0.3.2", lambda src, i: call(port, "/v1/users/login", src, "POST", {
            "email": "nobody%d@example.com" % i, "password": "Wrong-password-%d" % i}))
        self.assertExactlyTen(rs, "INVALID_CREDENTIALS")
        self.assertRefused(call(port, "/v1/users/profile", "127.0.3.2"), 403, "IP_BLOCKED")

    def test_good_keys_at_once_are_not_counted(self):
        port = self.httpd.port
        reg = call(port, "/v1/users/register", "127.0.3.3", "POST", {
            "username": "burst_%s" % self.MPM, "name": "Burst", "email": "burst_%s@example.com" % self.MPM,
            "password": "Zebra-Lamp-42"})
        self.assertEqual(reg.status, 201, reg.body)
        key = reg.json["api_key"]
        for _ in range(2):
            rs = self.burst("127.0.3.4", lambda src, i: call(port, "/v1/models", src, headers={
                "Authorization": "Bearer " + key}))
            self.assertEqual([r.status for r in rs], [200] * self.BURST)
        # nine failures still leave room for one more; the tenth blocks
        for i in range(9):
            r = call(port, "/v1/models", "127.0.3.4", headers={"Authorization": "Bearer pe-%032d" % i})
            self.assertEqual((r.status, self.code_of(r)), (401, "INVALID_API_KEY"))
        self.assertEqual(call(port, "/v1/models", "127.0.3.4", headers={"Authorization": "Bearer " + key}).status,
                         200)
        r = call(port, "/v1/models", "127.0.3.4", headers={"Authorization": "Bearer pe-%032d" % 9})
        self.assertEqual((r.status, self.code_of(r)), (401, "INVALID_API_KEY"))
        self.assertRefused(call(port, "/v1/users/profile", "127.0.3.4"), 403, "IP_BLOCKED")


class AutoBlockBurstEvent(AutoBlockBurstMixin, HttpdTestCase):
    MPM = "event"
    EXTRA_CONF = BURST_CONF


class AutoBlockBurstPrefork(AutoBlockBurstMixin, HttpdTestCase):
    MPM = "prefork"
    EXTRA_CONF = BURST_CONF + """<IfModule mpm_prefork_module>
    StartServers 12
    MinSpareServers 12
    MaxSpareServers 12
    ServerLimit 12
    MaxRequestWorkers 12
</IfModule>
"""
    ALLOWED_LOG_IDS = ("AH00161",)


class AccessRemoteIP(AccessChecks, SqliteLists, HttpdTestCase):
    """With mod_remoteip and a trusted proxy, X-Forwarded-For is the client address."""
    EXTRA_CONF = BASE_CONF + """LoadModule remoteip_module %s/mod_remoteip.so
RemoteIPHeader X-Forwarded-For
RemoteIPTrustedProxy 127.0.0.1
""" % MODDIR

    def test_trusted_proxy_sets_identity(self):
        port = self.httpd.port
        self.add_white("192.0.2.44")
        time.sleep(0.5)
        xff = {"X-Forwarded-For": "192.0.2.44"}
        self.assertEqual(call(port, "/wl/health", "127.0.0.1", headers=xff).status, 200)
        self.assertRefused(call(port, "/wl/health", "127.0.0.1"), 403, "IP_NOT_WHITELISTED")
        # not from the trusted proxy: the header is ignored
        self.assertRefused(call(port, "/wl/health", "127.0.0.40", headers=xff), 403, "IP_NOT_WHITELISTED")
        # limits follow the forwarded address, not the proxy's
        self.assertLimited([call(port, "/health", "127.0.0.1", headers={"X-Forwarded-For": "198.51.100.9"})
                            for _ in range(70)], 60)
        self.assertEqual(call(port, "/health", "127.0.0.1", headers={"X-Forwarded-For": "198.51.100.10"}).status,
                         200)


class AccessPrincipal(AccessChecks, HttpdTestCase):
    """Per-principal limits by plan, after authentication; health exempt from the address limit."""
    EXTRA_CONF = """PEArgon2Cost 1 1M 1
PEIPRateLimit 20/min algorithm=fixed-window
PEPrincipalRateLimit free 5/min algorithm=fixed-window
PEPrincipalRateLimit * Off
PEAccessExempt health
"""

    def user(self, name, plan=None):
        body = {"username": name, "name": "Test User", "email": name + "@example.com", "password": "Str0ng-pass-ok"}
        r = call(self.httpd.port, "/v1/users/register", "127.0.0.60", "POST", body)
        self.assertEqual(r.status, 201, r.body)
        if plan:
            self.httpd.sqlite("UPDATE pe_users SET subscription_plan = ? WHERE username = ?", (plan, name))
        return {"Authorization": "Bearer " + r.json["api_key"]}

    def test_plan_limit_per_user(self):
        port = self.httpd.port
        alice, bob, carol = self.user("alice_acc"), self.user("bob_acc"), self.user("carol_acc", "pro")
        rs = [call(port, "/v1/models", "127.0.0.%d" % (61 + i % 3), headers=alice) for i in range(8)]
        self.assertEqual([r.status for r in rs], [200] * 5 + [429] * 3)
        # /v1/models is an OpenAI route: the error comes in OpenAI's shape
        self.assertEqual(rs[-1].json["error"]["code"], "RATE_LIMITED")
        self.assertEqual(rs[-1].json["error"]["scope"], "principal")
        self.assertEqual(rs[-1].header("X-RateLimit-Limit"), "5")
        self.assertGreaterEqual(int(rs[-1].header("Retry-After")), 1)
        self.assertEqual(rs[4].header("X-RateLimit-Remaining"), "0")
        # another user of the plan has an allowance of their own; a plan without a line: no limit
        self.assertEqual(call(port, "/v1/models", "127.0.0.61", headers=bob).status, 200)
        self.assertEqual([call(port, "/v1/models", "127.0.0.64", headers=carol).status for _ in range(8)], [200] * 8)

    def test_health_exempt(self):
        rs = [call(self.httpd.port, "/health", "127.0.0.65") for _ in range(30)]
        self.assertEqual([r.status for r in rs], [200] * 30)
        rs = [call(self.httpd.port, "/", "127.0.0.65") for _ in range(25)]
        self.assertEqual(len([r for r in rs if r.status == 200]), 20)


class AccessCluster(AccessChecks, unittest.TestCase):
    """Two httpd nodes sharing one memcached: one limit for both; per node when memcached dies."""

    @classmethod
    def setUpClass(cls):
        cls.mc = Memcached().start()
        conf = BASE_CONF + "PEAccessServers 127.0.0.1:%d\n" % cls.mc.port
        env = {"PE_IP_RATE_LIMIT": "", "PE_AUTO_BLOCK": ""}
        cls.nodes = []
        try:
            for name in ("node-a", "node-b"):
                cls.nodes.append(Httpd("access-" + name, mpm="event", extra_conf=conf, env=env).start())
        except Exception:
            cls.tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        for n in cls.nodes:
            n.stop()
        cls.mc.stop()
        for n in cls.nodes:
            problems = n.log_problems()
            if problems:
                raise AssertionError("error log of %s:\n%s" % (n.dir, "\n".join(problems[:20])))

    @staticmethod
    def wait_for_window(margin=20):
        """Cluster counters live in windows aligned on the minute: do not straddle one."""
        s = time.time() % 60
        if s > 60 - margin:
            time.sleep(60 - s + 0.5)

    def test_1_one_limit_for_both_nodes(self):
        self.wait_for_window()
        ports = [n.port for n in self.nodes]
        resps = many(ports, 200, "127.0.0.31", concurrency=16)
        self.assertLimited(resps, 60, exact_remaining=False)
        for n in self.nodes:
            self.assertNotIn("PE45010", n.error_log())

    def test_2_memcached_killed(self):
        self.wait_for_window()
        a, b = self.nodes
        first = many([a.port, b.port], 30, "127.0.0.32")
        self.assertEqual(len([r for r in first if r.status == 200]), 30)
        self.mc.stop()
        # every request is still answered, and each node still limits (its own shared memory)
        for node in (a, b):
            later = many([node.port], 100, "127.0.0.32", concurrency=8)
            self.assertEqual(sorted(set(r.status for r in later)), [200, 429])
            self.assertEqual(len([r for r in later if r.status == 200]), 45)
        for node in (a, b):
            self.assertEqual(node.error_log().count("PE45010"), 1, node.dir)
        # memcached back: said once per node, and the counters are shared again
        self.mc.start()
        time.sleep(5.5)  # the client's retry period for a failed server
        for node in (a, b):
            many([node.port], 10, "127.0.0.33", concurrency=2)
            self.assertEqual(node.error_log().count("PE45011"), 1, node.dir)


class StoredListsMixin(AccessChecks):
    """The stored lists as written by another tool into the store: db(q) runs q there."""

    def db(self, q):
        raise NotImplementedError

    def test_lists(self):
        port = self.httpd.port
        self.db("INSERT INTO pe_blocked_ips (network, reason, created_at, expires_at) VALUES "
                "('127.0.0.50', 'blocked in the store', 0, 0), ('127.0.0.51', 'old', 0, %d), "
                "('127.0.0.52', 'switched off', 0, 0)" % usec(-10))
        self.db("UPDATE pe_blocked_ips SET is_active = 0 WHERE network = '127.0.0.52'")
        self.db("INSERT INTO pe_ip_whitelist (network, description, created_at, expires_at) VALUES "
                "('127.0.3.0/24', 'lab', 0, 0), ('127.0.0.53', 'gone', 0, %d)" % usec(-10))
        time.sleep(0.5)
        j = self.assertRefused(call(port, "/health", "127.0.0.50"), 403, "IP_BLOCKED")
        self.assertEqual(j["details"]["reason"], "blocked in the store")
        self.assertEqual(call(port, "/health", "127.0.0.51").status, 200)
        self.assertEqual(call(port, "/health", "127.0.0.52").status, 200)
        self.assertEqual(call(port, "/wl/health", "127.0.3.3").status, 200)
        self.assertRefused(call(port, "/wl/health", "127.0.0.53"), 403, "IP_NOT_WHITELISTED")


@unittest.skipUnless(pe_pg.available(), "PostgreSQL is not installed")
class AccessPostgres(pe_pg.PostgresClass, StoredListsMixin, HttpdTestCase):
    """The stored lists through PostgreSQL."""
    EXTRA_CONF = BASE_CONF
    PG_NAME = "pg-access"

    def db(self, q):
        return self.pg.query(q)

    def test_schema_version(self):
        # every version of the schema file applied (the access lists came with version 3)
        with open(os.path.join(TOP, "conf", "schema", "pgsql.sql")) as f:
            last = max(int(v) for v in re.findall(r"^-- @version (\d+)$", f.read(), re.M))
        self.assertGreaterEqual(last, 3)
        self.assertEqual(self.pg.query("SELECT MAX(version) FROM pe_schema_version"), str(last))


@unittest.skipUnless(pe_mongo.available(), "no MongoDB server (node and the stand-in, or PE_TEST_MONGODB_URI)")
class AccessMongo(pe_mongo.MongoClass, StoredListsMixin, HttpdTestCase):
    """The stored lists through MongoDB."""
    EXTRA_CONF = BASE_CONF
    MONGO_NAME = "mongo-access"

    def db(self, q):
        return self.mongo.sql(q)


class AccessConfig(unittest.TestCase):
    """Bad values make `apache2 -t` fail, naming the directive."""

    def test_bad_values_refused(self):
        cases = [
            "PEIPRateLimit 100/week", "PEIPRateLimit 0/min", "PEIPRateLimit 60/min burst=5 algorithm=fixed-window",
            "PEPrincipalRateLimit free", "PEPrincipalRateLimit * 10/min algorithm=leaky",
            "PEAutoBlock 10 15m", "PEAutoBlock 0 1m 1m", "PEAccessRefresh soon", "PEAccessServers nohost",
            "PEAccessTableSize 10", "PEAccessExempt health bogus", "PEIPWhitelist maybe", "PEAccess 2",
        ]
        for line in cases:
            h = Httpd("access-config", extra_conf=line + "\n")
            try:
                p = h.configtest()
                self.assertNotEqual(p.returncode, 0, line)
                self.assertIn(line.split()[0], p.stdout + p.stderr, line)
            finally:
                h.stop()
        h = Httpd("access-config", extra_conf="PEIPRateLimit 100/min burst=20\nPEPrincipalRateLimit free 10/min\n"
                  "PEPrincipalRateLimit * Off\nPEAutoBlock Off\nPEAccessExempt health admin\nPEAccessServers none\n")
        p = h.configtest()
        self.assertEqual(p.returncode, 0, p.stderr)


if __name__ == "__main__":
    unittest.main()
