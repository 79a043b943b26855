"""Foundation: health and root, the error envelope, body handling, routing groups, config
errors, prefork, graceful restart, and make run / make stop."""
import os
import re
import shutil
import subprocess
import tempfile
import time
import unittest

from pe_harness import RUN_ROOT, TOP, Httpd, HttpdTestCase, free_port, http_request

DIAG_CONF = """
<Location /v1/diag>
    PEApi diag
    PEMaxBodySize 1K
</Location>
<Location /mnt>
    PEBaseURI /mnt/
    PEApi core
</Location>
<Location /mnt-users>
    PEBaseURI /mnt-users
    PEApi users
</Location>
<Directory @INSTANCE@/htdocs/ht>
    AllowOverride FileInfo
    Require all granted
</Directory>
"""


class CoreRoutes(HttpdTestCase):
    EXTRA_CONF = DIAG_CONF

    def test_health(self):
        r = self.httpd.get("/health")
        self.assertEqual(r.status, 200)
        self.assertEqual(r.json["status"], "healthy")
        self.assertEqual(r.json["service"], "PromptEnchanter")
        self.assertTrue(r.header("Content-Type").startswith("application/json"))
        self.assertEqual(r.header("X-Content-Type-Options"), "nosniff")
        self.assertRegex(r.header("X-Request-ID"), r"^[A-Za-z0-9_-]{22}$")

    def test_head_health(self):
        r = self.httpd.request("HEAD", "/health")
        self.assertEqual(r.status, 200)
        self.assertEqual(r.body, b"")

    def test_root(self):
        r = self.httpd.get("/")
        self.assertEqual(r.status, 200)
        self.assertEqual(r.json["service"], "PromptEnchanter")
        self.assertEqual(r.json["status"], "running")
        self.assertIn("version", r.json)
        self.assertIn("docs", r.json)

    def test_request_ids_differ(self):
        ids = {self.httpd.get("/health").header("X-Request-ID") for _ in range(20)}
        self.assertEqual(len(ids), 20)

    def test_request_id_in_access_log(self):
        rid = self.httpd.get("/health?probe=access-log").header("X-Request-ID")
        time.sleep(0.2)
        with open(os.path.join(self.httpd.dir, "logs", "access.log")) as f:
            self.assertIn("rid=" + rid, f.read())

    def test_unknown_route_404(self):
        self.assertEnvelope(self.httpd.get("/v1/nope"), 404, "NOT_FOUND")
        self.assertEnvelope(self.httpd.get("/health/"), 404, "NOT_FOUND")

    def test_wrong_method_405(self):
        r = self.httpd.request("DELETE", "/health")
        self.assertEnvelope(r, 405, "METHOD_NOT_ALLOWED")
        self.assertEqual(r.header("Allow"), "GET, HEAD")
        r = self.httpd.request("PATCH", "/")
        self.assertEnvelope(r, 405, "METHOD_NOT_ALLOWED")

    def test_diag_not_in_all(self):
        # Location / serves "PEApi all", which never includes the diagnostics group.
        self.assertEnvelope(self.httpd.post("/v1/diagx/echo", {"a": 1}), 404, "NOT_FOUND")

    def test_echo(self):
        r = self.httpd.post("/v1/diag/echo", {"a": [1, 2, {"b": "é"}]})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json["body"], {"a": [1, 2, {"b": "é"}]})

    def test_chunked_body(self):
        parts = [b'{"msg":', b'"hello', b' chunked"', b"}"]
        r = self.httpd.post("/v1/diag/echo", parts, headers={"Content-Type": "application/json"}, chunked=True)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json["body"], {"msg": "hello chunked"})

    def test_chunked_body_over_limit_413(self):
        parts = [b'{"x":"' + b"a" * 300] * 5 + [b'"}']
        r = self.httpd.post("/v1/diag/echo", parts, headers={"Content-Type": "application/json"}, chunked=True)
        self.assertEnvelope(r, 413, "BODY_TOO_LARGE")

    def test_content_length_over_limit_413(self):
        r = self.httpd.post("/v1/diag/echo", '{"x":"%s"}' % ("a" * 2000),
                            headers={"Content-Type": "application/json"})
        j = self.assertEnvelope(r, 413, "BODY_TOO_LARGE")
        self.assertIn("1024", j["message"])

    def test_limit_boundary(self):
        body = '{"x":"%s"}' % ("a" * (1024 - 8))
        self.assertEqual(len(body), 1024)
        r = self.httpd.post("/v1/diag/echo", body, headers={"Content-Type": "application/json"})
        self.assertEqual(r.status, 200, r)

    def test_wrong_content_type_415(self):
        r = self.httpd.post("/v1/diag/echo", '{"a":1}', headers={"Content-Type": "text/plain"})
        self.assertEnvelope(r, 415, "UNSUPPORTED_MEDIA_TYPE")
        r = self.httpd.post("/v1/diag/echo", '{"a":1}')
        self.assertEnvelope(r, 415, "UNSUPPORTED_MEDIA_TYPE")
        r = self.httpd.post("/v1/diag/echo", '{"a":1}', headers={"Content-Type": "application/json; charset=utf-8"})
        self.assertEqual(r.status, 200)

    def test_malformed_json_400(self):
        h = {"Content-Type": "application/json"}
        j = self.assertEnvelope(self.httpd.post("/v1/diag/echo", '{"a":', headers=h), 400, "INVALID_JSON")
        self.assertRegex(j["message"], r"line 1, column \d+")
        j = self.assertEnvelope(self.httpd.post("/v1/diag/echo", '{"a":1,"a":2}', headers=h), 400, "INVALID_JSON")
        self.assertIn("duplicate", j["message"])
        self.assertEnvelope(self.httpd.post("/v1/diag/echo", "[1,2]", headers=h), 400, "INVALID_JSON")
        self.assertEnvelope(self.httpd.post("/v1/diag/echo", "", headers=h), 400, "INVALID_JSON")
        self.assertEnvelope(self.httpd.post("/v1/diag/echo", "[" * 40 + "]" * 40, headers=h), 400, "INVALID_JSON")
        self.assertEnvelope(self.httpd.post("/v1/diag/echo", b'{"a":"\xff"}', headers=h), 400, "INVALID_JSON")

    def test_base_uri_and_groups(self):
        self.assertEqual(self.httpd.get("/mnt/health").status, 200)
        self.assertEqual(self.httpd.get("/mnt").status, 200)  # "/" of the mount
        self.assertEnvelope(self.httpd.get("/mnt-users/health"), 404, "NOT_FOUND")

    def test_htaccess(self):
        d = os.path.join(self.httpd.dir, "htdocs", "ht")
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, ".htaccess"), "w") as f:
            f.write("SetHandler promptenchanter\nPEBaseURI /ht\nPEApi core\n")
        self.assertEqual(self.httpd.get("/ht/health").status, 200)
        with open(os.path.join(d, ".htaccess"), "w") as f:
            f.write("SetHandler promptenchanter\nPEBaseURI /ht\nPEApi users\n")
        self.assertEnvelope(self.httpd.get("/ht/health"), 404, "NOT_FOUND")
        with open(os.path.join(d, ".htaccess"), "w") as f:
            f.write("SetHandler promptenchanter\nPEApi nonsense\n")
        r = self.httpd.get("/ht/health")
        self.assertEqual(r.status, 500)  # httpd's answer to a broken .htaccess
        self.assertIn("unknown route group 'nonsense'", self.httpd.error_log())
    ALLOWED_LOG_IDS = ("unknown route group 'nonsense'",)  # the broken .htaccess above


class Prefork(HttpdTestCase):
    MPM = "prefork"
    EXTRA_CONF = DIAG_CONF

    def test_health_and_errors(self):
        for _ in range(20):
            self.assertEqual(self.httpd.get("/health").status, 200)
        self.assertEnvelope(self.httpd.get("/nope"), 404, "NOT_FOUND")
        r = self.httpd.post("/v1/diag/echo", [b'{"a":', b"1}"], headers={"Content-Type": "application/json"},
                            chunked=True)
        self.assertEqual(r.json["body"], {"a": 1})

    def test_graceful_restart(self):
        pid = self.httpd.pid()
        self.httpd.graceful()
        self.assertEqual(self.httpd.pid(), pid)
        for _ in range(10):
            self.assertEqual(self.httpd.get("/health").status, 200)
        self.assertIn("AH00171", self.httpd.error_log())  # graceful restart requested


class ConfigErrors(unittest.TestCase):
    """A bad value makes `apache2 -t` fail with a message naming the directive."""

    def configtest(self, extra):
        h = Httpd("configtest", extra_conf=extra)
        return h.configtest()

    def assertRejected(self, extra, *needles):
        p = self.configtest(extra)
        self.assertNotEqual(p.returncode, 0, p.stderr)
        for n in needles:
            self.assertIn(n, p.stderr)

    def test_good_config(self):
        p = self.configtest("<Location /x>\n PEApi users admin-panel\n PEMaxBodySize 64K\n</Location>\n")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("Syntax OK", p.stderr)

    def test_bad_size(self):
        self.assertRejected("PEMaxBodySize 10Q\n", "PEMaxBodySize", "unknown unit")
        self.assertRejected("PEMaxBodySize 1G\n", "PEMaxBodySize", "larger than the maximum")

    def test_bad_group(self):
        self.assertRejected("<Location /x>\nPEApi users bogus\n</Location>\n", "PEApi", "unknown route group 'bogus'")

    def test_bad_base_uri(self):
        self.assertRejected("PEBaseURI relative\n", "PEBaseURI", "must be a path")

    def test_missing_key_file(self):
        self.assertRejected("PESecretKeyFile /nonexistent/key\n", "PESecretKeyFile", "not a readable file")

    def test_world_readable_key(self):
        h = Httpd("keyperm")
        h.run("render")
        key = os.path.join(h.dir, "secrets", "server.key")
        os.chmod(key, 0o644)
        p = h.configtest()
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("PE00002", p.stderr)
        self.assertIn("chmod 600", p.stderr)

    def test_bad_key_content(self):
        h = Httpd("keybad")
        h.run("render")
        key = os.path.join(h.dir, "secrets", "server.key")
        with open(key, "w") as f:
            f.write("not-hex\n")
        p = h.configtest()
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("64 hex digits", p.stderr)


class MakeRunStop(unittest.TestCase):
    """`make run` starts a private httpd in the background; `make stop` leaves no process."""

    def live_httpd(self, conf):
        out = subprocess.run(["ps", "-eo", "pid=,stat=,args="], capture_output=True, text=True).stdout
        return [l for l in out.splitlines() if conf in l and not l.split()[1].startswith("Z")]

    def test_run_then_stop(self):
        port = free_port()
        inst = os.path.join(RUN_ROOT, "makerun-%d" % port)
        env = dict(os.environ, PE_PORT=str(port), PE_INSTANCE_DIR=inst)
        p = subprocess.run(["make", "-s", "run"], cwd=TOP, env=env, capture_output=True, text=True, timeout=300)
        try:
            self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
            self.assertIn("http://127.0.0.1:%d/" % port, p.stdout)
            r = http_request(port, "GET", "/health")
            self.assertEqual(r.status, 200)
            self.assertTrue(self.live_httpd(inst))
            key = os.path.join(inst, "secrets", "server.key")
            self.assertEqual(os.stat(key).st_mode & 0o777, 0o600)
        finally:
            s = subprocess.run(["make", "-s", "stop"], cwd=TOP, env=env, capture_output=True, text=True, timeout=60)
        self.assertEqual(s.returncode, 0, s.stderr)
        self.assertEqual(self.live_httpd(inst), [])
        with self.assertRaises(OSError):
            http_request(port, "GET", "/health", timeout=2)


@unittest.skipUnless(os.geteuid() == 0, "only root runs httpd's children as another user")
class CheckoutLocation(unittest.TestCase):
    """A checkout the server user cannot reach (root's home is 0700, so is mktemp -d): the
    instance lives where the children can reach it, never a silent 403 (issue 16 item 6)."""

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="pe-checkout-")  # mode 0700
        self.top = os.path.join(self.tmp, "checkout")
        os.makedirs(self.top)
        for d in ("build", "conf"):
            shutil.copytree(os.path.join(TOP, d), os.path.join(self.top, d))
        self.port = free_port()
        self.env = dict(os.environ, PE_PORT=str(self.port), PE_IP_RATE_LIMIT="Off", PE_AUTO_BLOCK="Off",
                        PE_MODULE=os.path.join(TOP, ".libs", "mod_promptenchanter.so"))
        self.env.pop("PE_INSTANCE_DIR", None)
        self.sh = os.path.join(self.top, "build", "instance.sh")

    def tearDown(self):
        subprocess.run(["bash", self.sh, "stop"], env=self.env, capture_output=True, timeout=60)
        base = subprocess.run(["bash", self.sh, "base"], env=self.env, capture_output=True, text=True).stdout.strip()
        if base.startswith("/var/lib/mod_promptenchanter/"):
            shutil.rmtree(base, ignore_errors=True)
        shutil.rmtree(self.tmp, ignore_errors=True)

    def test_unreachable_checkout_still_serves(self):
        p = subprocess.run(["bash", self.sh, "start"], env=self.env, capture_output=True, text=True, timeout=120)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        link = os.path.join(self.top, "instance")
        self.assertTrue(os.path.islink(link))
        self.assertTrue(os.readlink(link).startswith("/var/lib/mod_promptenchanter/"))
        r = http_request(self.port, "GET", "/health")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json["status"], "healthy")
        r = http_request(self.port, "POST", "/v1/users/register",
                         {"username": "where1", "name": "Where", "email": "where1@example.com",
                          "password": "Zebra-Lamp-42"})
        self.assertEqual(r.status, 201, r)
        data = os.path.join(os.readlink(link), "data")
        self.assertEqual(os.stat(data).st_mode & 0o777, 0o700)

    def test_unreachable_instance_dir_refused(self):
        env = dict(self.env, PE_INSTANCE_DIR=os.path.join(self.top, "inst"))
        p = subprocess.run(["bash", self.sh, "start"], env=env, capture_output=True, text=True, timeout=120)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("cannot reach", p.stderr)
        self.assertIn(self.tmp, p.stderr)
        self.assertNotIn("is running", p.stdout)


if __name__ == "__main__":
    unittest.main()
