"""docs/configuration.md's minimal setup, taken from the document as written (issue 14): it passes
`apache2 -t` inside the machine's stock Debian configuration (/etc/apache2, read only) and inside a
private configuration that loads nothing else but an MPM; that private httpd then serves a
registration and a completion. Only the machine-specific paths of the block (the module, the key
files, the SQLite file) and the upstream URL are replaced by this test's own."""
import os
import re
import shutil
import subprocess
import time
import unittest

import fakes
from pe_harness import RUN_ROOT, TOP, free_port, http_request

DOC = os.path.join(TOP, "docs", "configuration.md")
MODULE = os.path.join(TOP, ".libs", "mod_promptenchanter.so")
APACHE2 = "/usr/sbin/apache2"


def minimal_block():
    """The first ```apache block after "A minimal setup" in docs/configuration.md."""
    with open(DOC) as f:
        text = f.read()
    start = text.index("A minimal setup")
    m = re.search(r"```apache\n(.*?)```", text[start:], re.S)
    return m.group(1)


def apache_modules_dir():
    p = subprocess.run(["apxs", "-q", "LIBEXECDIR"], capture_output=True, text=True)
    return p.stdout.strip() or "/usr/lib/apache2/modules"


class MinimalSetup(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.port = free_port()
        cls.dir = os.path.join(RUN_ROOT, "minimal-%d" % cls.port)
        if os.path.isdir(cls.dir):
            shutil.rmtree(cls.dir)
        for d in ("etc", "data", "logs", "run"):
            os.makedirs(os.path.join(cls.dir, d))
        for k in ("server", "encryption"):
            path = os.path.join(cls.dir, "etc", k + ".key")
            with open(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600), "w") as f:
                f.write(os.urandom(32).hex() + "\n")
        if os.geteuid() == 0:
            shutil.chown(os.path.join(cls.dir, "data"), "www-data", "www-data")
            os.chmod(os.path.join(cls.dir, "run"), 0o1777)
        cls.up = fakes.start_upstream()
        cls.block = minimal_block()
        cls.snippet = os.path.join(cls.dir, "promptenchanter.conf")
        with open(cls.snippet, "w") as f:
            f.write(cls.render(cls.block))
        cls.pidfile = os.path.join(cls.dir, "run", "httpd.pid")
        cls.conf = os.path.join(cls.dir, "httpd.conf")
        user = "User www-data\nGroup www-data\n" if os.geteuid() == 0 else ""
        with open(cls.conf, "w") as f:
            f.write("ServerRoot \"%s\"\nListen 127.0.0.1:%d\nServerName 127.0.0.1\nPidFile run/httpd.pid\n"
                    "DefaultRuntimeDir run\nErrorLog logs/error.log\nLogLevel info\n"
                    "LoadModule mpm_event_module %s/mod_mpm_event.so\n%s"
                    "Include \"%s\"\n" % (cls.dir, cls.port, apache_modules_dir(), user, cls.snippet))
        cls.started = False

    @classmethod
    def render(cls, block):
        out = block.replace("/usr/lib/apache2/modules/mod_promptenchanter.so", MODULE)
        out = out.replace("/etc/promptenchanter/", os.path.join(cls.dir, "etc") + "/")
        out = out.replace("/var/lib/promptenchanter/", os.path.join(cls.dir, "data") + "/")
        out = out.replace("https://api.openai.com/v1/chat/completions", cls.up.chat_url)
        return out

    @classmethod
    def tearDownClass(cls):
        try:
            if cls.started:
                subprocess.run([APACHE2, "-f", cls.conf, "-k", "stop"], capture_output=True)
                deadline = time.monotonic() + 10
                while os.path.exists(cls.pidfile) and time.monotonic() < deadline:
                    time.sleep(0.1)
        finally:
            cls.up.stop()

    def test_1_block_as_written(self):
        # only the paths above differ from the document; no end-of-line comments (httpd refuses them)
        for line in self.block.splitlines():
            self.assertNotRegex(line, r"^\s*[A-Za-z<].*\s#", line)
        for needed in ("DBDriver", "DBDParams", "authz_core_module", "authn_core_module", "SetHandler promptenchanter"):
            self.assertIn(needed, self.block)
        self.assertEqual(self.render(self.block).count("\n"), self.block.count("\n"))

    @unittest.skipUnless(os.path.exists("/etc/apache2/apache2.conf") and os.path.exists("/etc/apache2/envvars"),
                         "no stock Debian Apache configuration on this machine")
    def test_2_configtest_in_stock_debian(self):
        # the stock configuration, read only, with the block added the way a2enconf includes it; the
        # run, lock and log folders that envvars names (made by apache2ctl at its first start) are
        # this test's own, so nothing outside the test's folder is created
        rt = os.path.join(self.dir, "run")
        p = subprocess.run(["bash", "-c", ". /etc/apache2/envvars && export APACHE_RUN_DIR=%s APACHE_LOCK_DIR=%s "
                            "APACHE_LOG_DIR=%s APACHE_PID_FILE=%s/stock.pid && exec %s -d /etc/apache2 "
                            "-f apache2.conf -t -c 'Include %s'"
                            % (rt, rt, os.path.join(self.dir, "logs"), rt, APACHE2, self.snippet)],
                           capture_output=True, text=True)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertIn("Syntax OK", p.stdout + p.stderr)

    def test_3_configtest_private(self):
        p = subprocess.run([APACHE2, "-f", self.conf, "-t"], capture_output=True, text=True)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertIn("Syntax OK", p.stdout + p.stderr)

    def test_4_register_and_complete(self):
        p = subprocess.run([APACHE2, "-f", self.conf, "-k", "start"], capture_output=True, text=True)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        MinimalSetup.started = True
        deadline = time.monotonic() + 30
        while True:
            try:
                if http_request(self.port, "GET", "/health", timeout=5).status == 200:
                    break
            except OSError:
                pass
            self.assertLess(time.monotonic(), deadline, "httpd did not answer")
            time.sleep(0.2)
        r = http_request(self.port, "POST", "/v1/users/register",
                         {"username": "minimal_user", "name": "Minimal User", "email": "minimal@example.com",
                          "password": "Zebra-Lamp-42"})
        self.assertEqual(r.status, 201, r)
        key = r.json["api_key"]
        r = http_request(self.port, "POST", "/v1/chat/completions",
                         {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hello"}]},
                         headers={"Authorization": "Bearer " + key})
        self.assertEqual(r.status, 200, r)
        self.assertIn("fake-upstream reply", r.json["choices"][0]["message"]["content"])
        with open(os.path.join(self.dir, "logs", "error.log"), errors="replace") as f:
            log = f.read()
        self.assertNotIn("AH02654", log)  # mod_dbd "not configured"
        self.assertIsNone(re.search(r"\[[a-z_0-9]+:(error|crit|alert|emerg)\]", log), log)
