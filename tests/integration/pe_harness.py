"""Integration-test harness for mod_promptenchanter.

Owns its servers: a private httpd per test class (build/instance.sh on a free loopback port,
own instance directory), plus whatever fakes a test starts; everything is stopped by pid in
tearDown/tearDownClass, also when a test fails. Python standard library only.
"""
import http.client
import json
import os
import re
import shutil
import sqlite3
import signal
import socket
import subprocess
import tempfile
import time
import unittest

TOP = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
INSTANCE_SH = os.path.join(TOP, "build", "instance.sh")


def _run_root():
    """Where test instances live: the checkout's .test-run, or, when httpd's children could not
    reach the checkout (root's home, a mktemp -d folder), the place build/instance.sh picks."""
    if os.environ.get("PE_TEST_RUN_DIR"):
        return os.environ["PE_TEST_RUN_DIR"]
    base = subprocess.run(["bash", INSTANCE_SH, "base"], capture_output=True, text=True, check=True).stdout.strip()
    return os.path.join(base, ".test-run")


RUN_ROOT = _run_root()

# Error-log lines that mean a test run is broken, whatever the test asserted.
CRASH_PATTERNS = [
    r"Segmentation fault", r"glibc detected", r"pool concurrency check:", r"Assertion .*failed",
    r"AddressSanitizer", r"runtime error:", r"AH00052",  # child pid exit signal
]


def free_port():
    """A TCP port that is free on 127.0.0.1 right now."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Response:
    """What an HTTP call returned."""

    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.body = body
        self._json = None

    def header(self, name):
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return None

    @property
    def json(self):
        if self._json is None:
            self._json = json.loads(self.body.decode("utf-8"))
        return self._json

    def __repr__(self):
        return "<Response %d %r>" % (self.status, self.body[:300])


# Checks every response the harness receives goes through (pe_openapi adds the OpenAPI one below).
RESPONSE_CHECKS = []


def http_request(port, method, path, body=None, headers=None, chunked=False, timeout=30):
    """One request on a fresh connection; body may be bytes, str or a JSON-able object."""
    hdrs = dict(headers or {})
    if body is not None and not isinstance(body, (bytes, str)) and not chunked:
        body = json.dumps(body)
        hdrs.setdefault("Content-Type", "application/json")
    if isinstance(body, str):
        body = body.encode("utf-8")
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        if chunked:
            conn.request(method, path, body=iter(body), headers=hdrs, encode_chunked=True)
        else:
            conn.request(method, path, body=body, headers=hdrs)
        r = conn.getresponse()
        data = r.read()
        resp = Response(r.status, r.getheaders(), data)
        for check in RESPONSE_CHECKS:
            check(method, path, resp)
        return resp
    finally:
        conn.close()


class Httpd:
    """A private httpd with the module, rendered and started by build/instance.sh."""

    def __init__(self, name, mpm="event", extra_conf="", env=None, port=None):
        self.name = name
        self.mpm = mpm
        self.port = port or free_port()
        self.dir = os.path.join(RUN_ROOT, "%s-%d" % (name, self.port))
        self.extra_conf = extra_conf
        self.env_extra = dict(env or {})
        self.started = False

    def env(self):
        e = dict(os.environ)
        e.update({"PE_INSTANCE_DIR": self.dir, "PE_PORT": str(self.port), "PE_MPM": self.mpm,
                  "PE_LOGLEVEL": "info promptenchanter:debug",
                  # The suites send many requests, and many bad credentials, from 127.0.0.1: the
                  # per-address limit and auto-block are off unless a test sets them (test_access).
                  "PE_IP_RATE_LIMIT": "Off", "PE_AUTO_BLOCK": "Off",
                  # Many suites change a user directly in the store (level, r_types, plan) and
                  # expect it on the next request: true on a node only with the principal cache
                  # off (a direct store change is seen within PEPrincipalCacheTTL, like another
                  # node's). test_principal turns it on (a test's conf comes after this one).
                  "PE_PRINCIPAL_CACHE_TTL": "0"})
        e.update(self.env_extra)
        if self.extra_conf:
            os.makedirs(self.dir, exist_ok=True)
            path = os.path.join(self.dir, "extra.conf.in")
            with open(path, "w") as f:
                f.write(self.extra_conf.replace("@INSTANCE@", self.dir))
            e["PE_EXTRA_CONF"] = path
        return e

    def run(self, *args, check=True):
        return subprocess.run(["bash", INSTANCE_SH] + list(args), env=self.env(), cwd=TOP,
                              capture_output=True, text=True, check=check)

    def start(self):
        if os.path.isdir(self.dir):
            shutil.rmtree(self.dir)
        p = self.run("start", check=False)
        if p.returncode != 0:
            raise RuntimeError("httpd did not start: %s %s" % (p.stdout, p.stderr))
        self.started = True
        return self

    def stop(self):
        if self.started:
            self.run("stop", check=False)
            self.started = False

    def graceful(self, wait=True):
        self.run("graceful")
        if wait:
            time.sleep(1.0)

    def configtest(self):
        return self.run("configtest", check=False)

    def pid(self):
        try:
            with open(os.path.join(self.dir, "run", "httpd.pid")) as f:
                return int(f.read().strip())
        except (OSError, ValueError):
            return None

    def start_node_of(self, first):
        """Start this httpd as another node of first's cluster: it shares first's keys
        (PESecretKeyFile, PEEncryptionKeyFile), as the nodes of a cluster must; its store and
        cache settings are its own (give it first's environment to share them)."""
        self.start()
        self.stop()
        for name in ("server.key", "encryption.key"):
            shutil.copyfile(os.path.join(first.dir, "secrets", name), os.path.join(self.dir, "secrets", name))
        self.run("start")
        self.started = True
        return self

    def request(self, method, path, body=None, headers=None, **kw):
        return http_request(self.port, method, path, body, headers, **kw)

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def post(self, path, body=None, **kw):
        return self.request("POST", path, body, **kw)

    def sqlite(self, q, args=()):
        """Run one statement on the instance's SQLite store (committed); its rows."""
        # mode=rw: never create the product's file (the children make it at start-up).
        con = sqlite3.connect("file:%s?mode=rw" % os.path.join(self.dir, "data", "pe.db"), uri=True, timeout=10)
        try:
            rows = [tuple(r) for r in con.execute(q, args).fetchall()]
            con.commit()
            return rows
        finally:
            con.close()

    def error_log(self):
        try:
            with open(os.path.join(self.dir, "logs", "error.log"), errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def log_problems(self, allow=()):
        """Error-log lines that fail a suite: crashes, and [error]/[crit]/[alert]/[emerg] lines
        that no entry of `allow` (a message id such as PE00002, or a text) is found in."""
        bad = []
        for line in self.error_log().splitlines():
            if any(re.search(p, line) for p in CRASH_PATTERNS):
                bad.append(line)
                continue
            m = re.search(r"\[[a-z_0-9]+:(error|crit|alert|emerg)\]", line)
            if m:
                if not any(a in line for a in allow):
                    bad.append(line)
        return bad


class HttpdTestCase(unittest.TestCase):
    """A test class with one httpd for all its tests; its error log is checked at the end."""

    MPM = "event"
    EXTRA_CONF = ""
    ENV = {}
    ALLOWED_LOG_IDS = ()

    @classmethod
    def setUpClass(cls):
        cls.httpd = Httpd(cls.__name__.lower(), mpm=cls.MPM, extra_conf=cls.EXTRA_CONF, env=cls.ENV)
        cls.httpd.start()

    @classmethod
    def tearDownClass(cls):
        h = cls.httpd
        h.stop()
        problems = h.log_problems(cls.ALLOWED_LOG_IDS)
        if problems:
            raise AssertionError("error log of %s has problems:\n%s" % (h.dir, "\n".join(problems[:20])))

    def assertEnvelope(self, resp, status, code=None):
        """The response is the JSON error envelope with this status (and error_code)."""
        self.assertEqual(resp.status, status, resp)
        self.assertTrue(resp.header("Content-Type").startswith("application/json"), resp.headers)
        j = resp.json
        self.assertIs(j["success"], False)
        self.assertIsInstance(j["message"], str)
        self.assertTrue(j["message"])
        self.assertEqual(j["error"], j["message"])
        rid = resp.header("X-Request-ID")
        self.assertTrue(rid)
        self.assertEqual(j["details"]["request_id"], rid)
        if code:
            self.assertEqual(j["error_code"], code, j)
        return j


import pe_openapi  # noqa: E402  (responses must match docs/openapi.json)

RESPONSE_CHECKS.append(pe_openapi.check_response)
