"""The Debian package libapache2-mod-promptenchanter (issue 14): `make deb` builds it, its files
and control data are what the package promises, lintian finds no error, and it installs into
the machine's Apache: `apt-get install ./x.deb`, `a2enmod promptenchanter`, `apache2ctl
configtest`, and requests to the machine's Apache (its modules and mods-enabled files) started on
a free 127.0.0.1 port with a configuration of this test's own. Afterwards the module is disabled,
the package purged and /etc/apache2 and /var/lib/apache2 put back as they were, also when a test
fails. The installing class needs root and a machine on which the package is not installed yet."""
import fcntl
import http.client
import os
import re
import shutil
import signal
import subprocess
import time
import unittest

import fakes
from pe_harness import RUN_ROOT, TOP, free_port, http_request

PKG = "libapache2-mod-promptenchanter"
APACHE2 = "/usr/sbin/apache2"
APACHE_STATE = ["/etc/apache2", "/var/lib/apache2"]
KEY_DIR = "/etc/promptenchanter"
DATA_DIR = "/var/lib/promptenchanter"
UPSTREAM_CONF = KEY_DIR + "/upstream.conf"  # made by test_3, as an operator would
LOCK = "/tmp/%s-test.lock" % PKG
APT_ENV = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
APT_LOCK_WAIT = ["-o", "DPkg::Lock::Timeout=600"]


def run(*cmd, **kw):
    return subprocess.run(list(cmd), capture_output=True, text=True, **kw)


def pe_version():
    with open(os.path.join(TOP, "include", "pe_version.h")) as f:
        return re.search(r'#define PE_VERSION "([^"]+)"', f.read()).group(1)


def libexecdir():
    return run("apxs", "-q", "LIBEXECDIR").stdout.strip() or "/usr/lib/apache2/modules"


def builds_admin_tool():
    """pe-admin is in the package when the Makefile builds it (ADMIN_TOOL)."""
    with open(os.path.join(TOP, "Makefile")) as f:
        return re.search(r"^ADMIN_TOOL\s*:?=", f.read(), re.M) is not None


_built = {}


def built_deb():
    """`make deb` once per test run (without its lintian run: test_lintian runs lintian)."""
    if "result" not in _built:
        p = run("make", "--no-print-directory", "deb", "DEB_LINTIAN=no", cwd=TOP)
        arch = run("dpkg-architecture", "-qDEB_HOST_ARCH").stdout.strip()
        deb = os.path.join(TOP, ".libs", "deb", "%s_%s_%s.deb" % (PKG, pe_version(), arch))
        _built["result"] = (p, deb)
    return _built["result"]


def snapshot(roots):
    """Every directory, file (mode and content) and link under roots."""
    snap = {}
    for root in roots:
        for dirpath, dirnames, filenames in os.walk(root):
            snap[dirpath] = ("d", os.stat(dirpath).st_mode)
            for name in dirnames + filenames:
                path = os.path.join(dirpath, name)
                if os.path.islink(path):
                    snap[path] = ("l", os.readlink(path))
                elif not os.path.isdir(path):
                    with open(path, "rb") as f:
                        snap[path] = ("f", os.stat(path).st_mode, f.read())
    return snap


def restore(before, roots):
    """Puts roots back as `before` found them; returns the paths that had to be changed."""
    now = snapshot(roots)
    changed = sorted(p for p in set(now) | set(before) if now.get(p) != before.get(p))
    for path in sorted(set(now) - set(before), reverse=True):
        if now[path][0] == "d":
            shutil.rmtree(path, ignore_errors=True)
        elif os.path.lexists(path):
            os.unlink(path)
    for path in sorted(before):
        want = before[path]
        if now.get(path) == want:
            continue
        if want[0] == "d":
            os.makedirs(path, exist_ok=True)
            os.chmod(path, want[1])
            continue
        if os.path.lexists(path):
            os.unlink(path)
        if want[0] == "l":
            os.symlink(want[1], path)
        else:
            with open(path, "wb") as f:
                f.write(want[2])
            os.chmod(path, want[1])
    return changed


class PackageBuild(unittest.TestCase):
    """`make deb`, the files and control data of the .deb, lintian."""

    @classmethod
    def setUpClass(cls):
        cls.make, cls.deb = built_deb()

    def test_1_make_deb_builds(self):
        self.assertEqual(self.make.returncode, 0, self.make.stdout[-3000:] + self.make.stderr[-3000:])
        self.assertTrue(os.path.isfile(self.deb), self.deb)

    def test_2_files(self):
        p = run("dpkg-deb", "-c", self.deb)
        self.assertEqual(p.returncode, 0, p.stderr)
        files = {line.split()[-1].lstrip(".") for line in p.stdout.splitlines() if line.startswith("-")}
        doc = "/usr/share/doc/%s/" % PKG
        want = [libexecdir() + "/mod_promptenchanter.so",
                "/etc/apache2/mods-available/promptenchanter.load",
                "/etc/apache2/mods-available/promptenchanter.conf",
                "/usr/share/promptenchanter/schema/sqlite3.sql",
                "/usr/share/promptenchanter/schema/pgsql.sql",
                "/usr/share/promptenchanter/common-passwords.txt",
                doc + "copyright"]
        if builds_admin_tool():
            want.append(run("apxs", "-q", "SBINDIR").stdout.strip() + "/pe-admin")
        for path in want:
            self.assertIn(path, files)
        # every docs/*.md, README.md and the OpenAPI document (dh_compress gzips the larger ones)
        docs = [n for n in os.listdir(os.path.join(TOP, "docs")) if n.endswith(".md") or n == "openapi.json"]
        docs.append("README.md")
        for name in docs:
            self.assertTrue(doc + name in files or doc + name + ".gz" in files, name)

    def test_3_control(self):
        fields = {}
        for field in ("Package", "Version", "Depends", "Section"):
            fields[field] = run("dpkg-deb", "-f", self.deb, field).stdout.strip()
        self.assertEqual(fields["Package"], PKG)
        self.assertEqual(fields["Version"], pe_version())
        self.assertEqual(fields["Section"], "httpd")
        depends = [d.strip().split(" ")[0] for d in fields["Depends"].split(",")]
        # dh_apache2 (the httpd module ABI), the SQLite driver of the default configuration and
        # ${shlibs:Depends}: the libraries the module links
        for dep in ("apache2-api-20120211", "libaprutil1-dbd-sqlite3", "libcurl4", "libjansson4", "libargon2-1"):
            self.assertIn(dep, depends)
        # dpkg keeps an operator's edits of both across upgrades
        ctl = run("bash", "-c", "dpkg-deb --ctrl-tarfile '%s' | tar -xO ./conffiles" % self.deb)
        self.assertEqual(sorted(ctl.stdout.split()), ["/etc/apache2/mods-available/promptenchanter.conf",
                                                      "/etc/apache2/mods-available/promptenchanter.load"], ctl.stderr)

    def test_4_load_and_conf(self):
        def member(path):
            p = run("bash", "-c", "dpkg-deb --fsys-tarfile '%s' | tar -xO .%s" % (self.deb, path))
            self.assertEqual(p.returncode, 0, p.stderr)
            return p.stdout
        load = member("/etc/apache2/mods-available/promptenchanter.load")
        self.assertIn("LoadModule promptenchanter_module %s/mod_promptenchanter.so" % libexecdir(), load)
        self.assertRegex(load, r"(?m)^# Depends: .*\bdbd\b")  # a2enmod enables mod_dbd with it
        conf = member("/etc/apache2/mods-available/promptenchanter.conf")
        active = [l.strip() for l in conf.splitlines() if l.strip() and not l.strip().startswith("#")]
        # the safe default: configured, nothing mounted
        self.assertFalse([l for l in active if re.match(r"(SetHandler|PEApi|<Location|<Directory)", l)], active)
        for d in ("DBDriver sqlite3", "DBDParams %s/pe.db" % DATA_DIR, "PESecretKeyFile %s/server.key" % KEY_DIR,
                  "PEEncryptionKeyFile %s/encryption.key" % KEY_DIR):
            self.assertIn(d, active)

    def test_6_docs_examples(self):
        # docs/install.md shows the examples of promptenchanter.conf that PackageInstall runs
        def commented(after, n):
            with open(os.path.join(TOP, "conf", "mods-available", "promptenchanter.conf")) as f:
                block = re.search(re.escape(after) + r"\n((?:\s*#   .*\n){%d})" % n, f.read()).group(1)
            return "".join(re.sub(r"^\s*#   ", "", l) + "\n" for l in block.splitlines())
        with open(os.path.join(TOP, "docs", "install.md")) as f:
            doc = f.read()
        self.assertIn("promptenchanter-api.conf <<'EOF'\n" + commented("for example below /ai/:", 6) + "EOF\n", doc)
        self.assertIn("upstream.conf <<'EOF'\n" + commented("/etc/promptenchanter/upstream.conf:", 2) + "EOF\n", doc)

    def test_5_lintian_no_errors(self):
        p = run("lintian", "--fail-on", "error", self.deb)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertFalse([l for l in p.stdout.splitlines() if l.startswith("E:")], p.stdout)


@unittest.skipUnless(os.geteuid() == 0, "installing a package into the machine's Apache needs root")
class PackageInstall(unittest.TestCase):
    """apt-get install, a2enmod, apache2ctl configtest, requests, purge; the machine as before."""

    @classmethod
    def setUpClass(cls):
        make, cls.deb = built_deb()
        if make.returncode != 0:
            raise unittest.SkipTest("make deb failed (PackageBuild reports it)")
        # one installing test at a time on this machine (other checkouts run make test too)
        cls.lock = open(LOCK, "w")
        fcntl.flock(cls.lock, fcntl.LOCK_EX)
        cls.addClassCleanup(cls.lock.close)
        status = run("dpkg-query", "-W", "-f=${Status}", PKG).stdout
        if "not-installed" not in status and status.strip():
            raise unittest.SkipTest("%s is on this machine (%s) and this test did not install it: it does not "
                                    "touch it (purge it to run this test)" % (PKG, status.strip()))
        for d in (KEY_DIR, DATA_DIR):
            if os.path.lexists(d):
                raise unittest.SkipTest("%s exists on this machine and the package's purge would remove it: "
                                        "move it away to run this test" % d)
        cls.before = snapshot(APACHE_STATE)
        cls.port = free_port()
        cls.dir = os.path.join(RUN_ROOT, "package-%d" % cls.port)
        shutil.rmtree(cls.dir, ignore_errors=True)
        for d in ("run", "lock", "logs"):
            os.makedirs(os.path.join(cls.dir, d))
        os.chmod(os.path.join(cls.dir, "run"), 0o1777)
        # envvars of the machine, with run, lock and log folders of this test's own (apache2ctl
        # makes them when they are missing)
        cls.envvars = os.path.join(cls.dir, "envvars")
        with open(cls.envvars, "w") as f:
            f.write(". /etc/apache2/envvars\nexport APACHE_RUN_DIR=%s/run APACHE_LOCK_DIR=%s/lock "
                    "APACHE_LOG_DIR=%s/logs APACHE_PID_FILE=%s/run/apache2.pid\n" % ((cls.dir,) * 4))
        cls.pidfile = os.path.join(cls.dir, "run", "apache2.pid")
        cls.addClassCleanup(cls.put_back)
        cls.installed = True
        p = run("apt-get", "install", "-y", "-q", *APT_LOCK_WAIT, cls.deb, env=APT_ENV)
        cls.install_output = p.stdout + p.stderr
        cls.install_rc = p.returncode

    @classmethod
    def stop_apache(cls):
        try:
            with open(cls.pidfile) as f:
                pid = int(f.read().strip())
        except (OSError, ValueError):
            return
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.2)
        os.kill(pid, signal.SIGKILL)

    @classmethod
    def disable_and_purge(cls):
        """a2dismod first: the package's prerm would otherwise restart the machine's Apache."""
        if run("a2query", "-m", "promptenchanter").returncode == 0:
            run("a2dismod", "-q", "-f", "promptenchanter")
        return run("apt-get", "purge", "-y", "-q", *APT_LOCK_WAIT, PKG, env=APT_ENV)

    @classmethod
    def put_back(cls):
        """After the tests, also failed ones: the machine's Apache stopped, the package purged,
        /etc/apache2 and /var/lib/apache2 as they were (what a2enmod added for mod_dbd too)."""
        cls.stop_apache()
        if cls.installed:
            p = cls.disable_and_purge()
            if p.returncode != 0:
                raise AssertionError("purge failed: " + p.stdout + p.stderr)
        changed = restore(cls.before, APACHE_STATE)
        for d in (KEY_DIR, DATA_DIR):
            shutil.rmtree(d, ignore_errors=True)
        left = [p for p in changed if "promptenchanter" in p]
        if left:
            raise AssertionError("the package's purge left these behind: %s" % left)

    def test_1_installed(self):
        self.assertEqual(self.install_rc, 0, self.install_output)
        self.assertTrue(os.path.isfile(libexecdir() + "/mod_promptenchanter.so"))
        # not enabled by the installation: a2enmod is the operator's step
        self.assertNotEqual(run("a2query", "-m", "promptenchanter").returncode, 0)
        # postinst: the two keys (64 hex digits, 0600, root's) and the SQLite folder (www-data's)
        for key in ("server", "encryption"):
            path = os.path.join(KEY_DIR, key + ".key")
            st = os.stat(path)
            self.assertEqual((st.st_mode & 0o777, st.st_uid, st.st_gid), (0o600, 0, 0), path)
            with open(path) as f:
                self.assertRegex(f.read(), r"^[0-9a-f]{64}\n$")
        with open(os.path.join(KEY_DIR, "server.key")) as a, open(os.path.join(KEY_DIR, "encryption.key")) as b:
            self.assertNotEqual(a.read(), b.read())
        st = os.stat(DATA_DIR)
        self.assertEqual(run("stat", "-c", "%U %a", DATA_DIR).stdout.split(), ["www-data", "750"], st)

    def test_2_a2enmod_configtest(self):
        p = run("a2enmod", "promptenchanter")
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        for name in ("promptenchanter.load", "promptenchanter.conf", "dbd.load"):
            self.assertTrue(os.path.exists(os.path.join("/etc/apache2/mods-enabled", name)), name)
        p = run("apache2ctl", "configtest", env=dict(os.environ, APACHE_ENVVARS=self.envvars))
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertIn("Syntax OK", p.stdout + p.stderr)

    def test_3_requests(self):
        # the machine's modules as a2enmod left them, one Listen on 127.0.0.1 and a virtual host
        # with the location of the example in promptenchanter.conf, uncommented as written
        with open("/etc/apache2/mods-available/promptenchanter.conf") as f:
            conf = f.read()
        up = fakes.start_upstream()
        self.addCleanup(up.stop)
        example = re.search(r"/etc/promptenchanter/upstream.conf:\n((?:\s*#   .*\n){2})", conf).group(1)
        upstream = "".join(re.sub(r"^\s*#   ", "", l) + "\n" for l in example.splitlines())
        self.assertIn("PEUpstreamURL https://api.openai.com/v1/chat/completions", upstream)
        with open(os.open(UPSTREAM_CONF, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
            f.write(upstream.replace("https://api.openai.com/v1/chat/completions", up.chat_url))
        example = re.search(r"for example below /ai/:\n((?:\s*#   .*\n)+)", conf).group(1)
        location = "".join(re.sub(r"^\s*#   ", "", l) + "\n" for l in example.splitlines())
        self.assertIn("SetHandler promptenchanter", location)
        httpd_conf = os.path.join(self.dir, "httpd.conf")
        with open(httpd_conf, "w") as f:
            f.write("ServerRoot /etc/apache2\nDefaultRuntimeDir %(d)s/run\nPidFile %(d)s/run/apache2.pid\n"
                    "User www-data\nGroup www-data\nErrorLog %(d)s/logs/error.log\nLogLevel info\n"
                    "IncludeOptional mods-enabled/*.load\nIncludeOptional mods-enabled/*.conf\n"
                    "Listen 127.0.0.1:%(port)d\nServerName 127.0.0.1\n"
                    "<VirtualHost 127.0.0.1:%(port)d>\n%(loc)s</VirtualHost>\n"
                    % {"d": self.dir, "port": self.port, "loc": location})
        p = run("bash", "-c", '. "%s" && exec %s -d /etc/apache2 -f "%s" -k start' % (self.envvars, APACHE2, httpd_conf))
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        deadline = time.monotonic() + 60
        while True:
            try:
                r = http_request(self.port, "GET", "/ai/health", timeout=5)
                if r.status == 200:
                    break
            except OSError:
                pass
            self.assertLess(time.monotonic(), deadline, "the machine's Apache did not answer on 127.0.0.1")
            time.sleep(0.3)
        self.assertIn("status", r.json)
        r = http_request(self.port, "POST", "/ai/v1/users/register",
                         {"username": "package_user", "name": "Package User", "email": "package@example.com",
                          "password": "Zebra-Lamp-42"})
        self.assertEqual(r.status, 201, r.body)
        self.assertTrue(r.json["api_key"])
        self.assertTrue(os.path.isfile(os.path.join(DATA_DIR, "pe.db")))  # DBDParams of the package
        # the upstream, from the host's own file in /etc/promptenchanter (the example of the .conf)
        r = http_request(self.port, "POST", "/ai/v1/chat/completions",
                         {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hello"}]},
                         headers={"Authorization": "Bearer " + r.json["api_key"]})
        self.assertEqual(r.status, 200, r.body)
        self.assertIn("fake-upstream reply", r.json["choices"][0]["message"]["content"])
        # only /ai/ is mounted (a plain request: Apache's own 404 is not the document's)
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            conn.request("GET", "/health")
            self.assertEqual(conn.getresponse().status, 404)
        finally:
            conn.close()
        with open(os.path.join(self.dir, "logs", "error.log"), errors="replace") as f:
            log = f.read()
        self.assertIn("PE00001", log)  # initialised
        self.assertNotIn("AH02654", log)  # mod_dbd "not configured"
        self.assertIsNone(re.search(r"\[[a-z_0-9]+:(error|crit|alert|emerg)\]", log), log)
        self.stop_apache()

    def test_4_purge(self):
        self.stop_apache()
        p = self.disable_and_purge()
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        PackageInstall.installed = False
        self.assertNotEqual(run("dpkg-query", "-W", PKG).returncode, 0, "still known to dpkg")
        for path in (libexecdir() + "/mod_promptenchanter.so", "/etc/apache2/mods-available/promptenchanter.conf",
                     "/etc/apache2/mods-available/promptenchanter.load", "/etc/apache2/mods-enabled/promptenchanter.load",
                     "/usr/share/promptenchanter", "/usr/share/doc/" + PKG, DATA_DIR):
            self.assertFalse(os.path.lexists(path), path)
        # the keys the package made are gone; the operator's own file is not
        self.assertEqual(os.listdir(KEY_DIR) if os.path.isdir(KEY_DIR) else [],
                         ["upstream.conf"] if os.path.exists(UPSTREAM_CONF) else [])


class MakeInstall(unittest.TestCase):
    """`make install` / `make uninstall` into a DESTDIR: the apxs layout, an operator's edited
    .conf kept across install and uninstall, an unedited older one replaced."""

    @classmethod
    def setUpClass(cls):
        cls.dest = os.path.join(RUN_ROOT, "make-install-%d" % os.getpid())
        shutil.rmtree(cls.dest, ignore_errors=True)
        os.makedirs(cls.dest)
        cls.addClassCleanup(shutil.rmtree, cls.dest, True)
        cls.mods = cls.dest + "/etc/apache2/mods-available"
        cls.conf = cls.mods + "/promptenchanter.conf"

    def make(self, target):
        p = run("make", "--no-print-directory", target, "DESTDIR=" + self.dest, cwd=TOP)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        return p.stdout + p.stderr

    def files(self):
        return sorted(os.path.join(d, n)[len(self.dest):] for d, _, names in os.walk(self.dest) for n in names)

    def source_conf(self):
        with open(os.path.join(TOP, "conf", "mods-available", "promptenchanter.conf")) as f:
            return f.read()

    def test_1_install(self):
        self.make("install")
        files = self.files()
        for path in (libexecdir() + "/mod_promptenchanter.so", "/etc/apache2/mods-available/promptenchanter.load",
                     "/etc/apache2/mods-available/promptenchanter.conf", "/usr/share/promptenchanter/schema/sqlite3.sql",
                     "/usr/share/promptenchanter/schema/pgsql.sql", "/usr/share/promptenchanter/common-passwords.txt",
                     "/usr/share/doc/%s/configuration.md" % PKG, "/usr/share/doc/%s/README.md" % PKG):
            self.assertIn(path, files)
        if builds_admin_tool():
            self.assertIn(run("apxs", "-q", "SBINDIR").stdout.strip() + "/pe-admin", files)
        with open(self.mods + "/promptenchanter.load") as f:
            self.assertIn("LoadModule promptenchanter_module %s/mod_promptenchanter.so\n" % libexecdir(), f.read())

    def test_2_unedited_older_conf_replaced(self):
        # what an older install left, unedited (its checksum is the recorded one)
        old = "# an older promptenchanter.conf\n"
        with open(self.conf, "w") as f:
            f.write(old)
        registry = self.dest + "/usr/share/promptenchanter/installed-conf.sha256"
        with open(registry) as f:
            lines = [l for l in f if not l.endswith(" promptenchanter.conf\n")]
        digest = run("sha256sum", self.conf).stdout.split()[0]
        with open(registry, "w") as f:
            f.writelines(lines + ["%s  promptenchanter.conf\n" % digest])
        self.make("install")
        with open(self.conf) as f:
            self.assertEqual(f.read(), self.source_conf())
        self.assertFalse(os.path.exists(self.conf + ".dist"))

    def test_3_edited_conf_kept(self):
        with open(self.conf, "a") as f:
            f.write("PEUpstreamURL http://127.0.0.1:1/v1/chat/completions\n")
        with open(self.conf) as f:
            edited = f.read()
        out = self.make("install")
        self.assertIn("was edited: kept", out)
        with open(self.conf) as f:
            self.assertEqual(f.read(), edited)
        with open(self.conf + ".dist") as f:
            self.assertEqual(f.read(), self.source_conf())

    def test_4_uninstall(self):
        enabled = self.dest + "/etc/apache2/mods-enabled"
        os.makedirs(enabled)
        for name in ("promptenchanter.load", "promptenchanter.conf"):
            os.symlink("../mods-available/" + name, os.path.join(enabled, name))
        out = self.make("uninstall")
        self.assertIn("was edited: kept", out)
        # the edited .conf stays; nothing else, and the module is no longer enabled
        self.assertEqual(self.files(), ["/etc/apache2/mods-available/promptenchanter.conf"])
        self.assertEqual(os.listdir(enabled), [])
