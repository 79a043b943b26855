"""The operators' console (issue 15) in a real browser: Debian's headless Chromium driven by
python3-selenium through chromedriver, against a private httpd that serves the console with the
shipped conf/console.conf (Alias, mod_headers) and the API at the root. An administrator made by
pe-admin logs in through the page, finds a user by e-mail and raises the user's limits and level
(the store changes, the user's next completion succeeds, the security events page lists the
change); a `new` support member sees no edit controls and a forged call with that session is
refused; a user's name holding markup shows as text and runs nothing; the CSP and framing
headers are on the console's files and a page that frames the console gets nothing; the charts
draw the statistics; the browser console shows no errors. Screenshots go to the test run's folder
(never to the repository)."""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import unittest

import fakes
from pe_harness import RUN_ROOT, TOP, HttpdTestCase

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
ADMIN_TOOL = os.path.join(TOP, ".libs", "pe-admin")
SHIPPED_DIR = "/usr/share/promptenchanter/console"
ROOT_PW = "Azure-Pass-4242"
STAFF_PW = "Staff-Pass-7373"
USER_PW = "Zebra-Lamp-42"
XSS_NAME = "<img src=x onerror=\"window.__pe_xss=1;document.title='pwned'\">"

try:
    from selenium import webdriver
except ImportError:  # Debian's python3-selenium, when python3 is not Debian's own interpreter
    sys.path.append("/usr/lib/python3/dist-packages")
    from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait


def bearer(tok):
    return {"Authorization": "Bearer " + tok}


def console_conf(console_dir, frame_dir):
    """The shipped snippet with the installed folder replaced by this run's copy, the modules it
    needs, and a same-origin page outside the console that tries to frame it."""
    with open(os.path.join(TOP, "conf", "console.conf")) as f:
        snippet = f.read()
    assert SHIPPED_DIR in snippet
    snippet = snippet.replace(SHIPPED_DIR, console_dir)
    mods = "".join("LoadModule %s_module /usr/lib/apache2/modules/mod_%s.so\n" % (m, m)
                   for m in ("alias", "headers", "mime", "dir"))
    return ("PEArgon2Cost 1 1M 1\nPEDefaultConversationLimit 0\nPEDefaultLevel low\n"
            "PEMessageLogInterval 100ms\n" + mods + "TypesConfig /dev/null\n" + snippet + """
Alias /framer/ "%s/"
<Directory "%s">
    Require ip 127.0.0.1
    AddType text/html .html
</Directory>
<Location "/framer/">
    SetHandler none
</Location>
""" % (frame_dir, frame_dir))


class ConsoleBase(HttpdTestCase):
    """A private httpd with the console, a fake upstream, the first super-administrator and a
    browser per test; API_BASE is the path the console's index.html is set to call the API at."""
    ALLOWED_LOG_IDS = ("AH01630", "AH01631")
    API_BASE = ""
    MORE_CONF = ""
    n = 0

    @classmethod
    def setUpClass(cls):
        # the console's files as `make install` puts them, and a framing page, where httpd reads them
        os.makedirs(RUN_ROOT, exist_ok=True)
        cls.files = tempfile.mkdtemp(prefix="console-", dir=RUN_ROOT)
        os.chmod(cls.files, 0o755)
        cls.console_dir = os.path.join(cls.files, "console")
        shutil.copytree(os.path.join(TOP, "conf", "console"), cls.console_dir)
        if cls.API_BASE:  # as docs/console.md tells an operator to do
            index = os.path.join(cls.console_dir, "index.html")
            with open(index) as f:
                html = f.read()
            meta = '<meta name="pe-api-base" content="">'
            assert meta in html
            with open(index, "w") as f:
                f.write(html.replace(meta, '<meta name="pe-api-base" content="%s">' % cls.API_BASE))
        cls.frame_dir = os.path.join(cls.files, "framer")
        os.makedirs(cls.frame_dir)
        with open(os.path.join(cls.frame_dir, "index.html"), "w") as f:
            f.write('<!DOCTYPE html><title>framer</title><iframe id="f" src="/pe-admin/"></iframe>\n')
        for d, _, fs in os.walk(cls.files):
            os.chmod(d, 0o755)
            for x in fs:
                os.chmod(os.path.join(d, x), 0o644)
        cls.EXTRA_CONF = console_conf(cls.console_dir, cls.frame_dir) + cls.MORE_CONF
        cls.up = fakes.start_upstream()
        cls.ENV = dict(cls.ENV, PE_UPSTREAM_URL=cls.up.chat_url)
        try:
            super().setUpClass()
            p = subprocess.run([ADMIN_TOOL, "-f", os.path.join(cls.httpd.dir, "conf", "httpd.conf"), "-i",
                                "create-super", "root", "root@example.com", "Site Root"],
                               input=ROOT_PW + "\n", capture_output=True, text=True, timeout=60)
            if p.returncode != 0:
                raise AssertionError("pe-admin create-super: %s %s" % (p.stdout, p.stderr))
            r = cls.httpd.post(cls.API_BASE + "/v1/admin-panel/login", {"username": "root", "password": ROOT_PW})
            assert r.status == 200, r
            cls.root = r.json["session"]["session_token"]
            cls.shots = os.path.join(cls.files, "screenshots")
            os.makedirs(cls.shots)
        except Exception:
            cls.up.stop()
            super().tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        try:
            super().tearDownClass()
        finally:
            cls.up.stop()
            if not os.environ.get("PE_KEEP_CONSOLE_RUN"):
                shutil.rmtree(cls.files, ignore_errors=True)

    def setUp(self):
        self.profile = tempfile.mkdtemp(prefix="chromium-", dir=self.files)
        o = webdriver.ChromeOptions()
        o.binary_location = CHROMIUM
        for a in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-dev-shm-usage", "--window-size=1280,900", "--user-data-dir=" + self.profile):
            o.add_argument(a)
        o.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        self.b = webdriver.Chrome(service=Service(CHROMEDRIVER), options=o)
        self.b.set_page_load_timeout(60)
        self.b.set_script_timeout(60)
        self.url = "http://127.0.0.1:%d" % self.httpd.port

    def tearDown(self):
        try:
            self.b.quit()
        finally:
            shutil.rmtree(self.profile, ignore_errors=True)

    # -- helpers ---------------------------------------------------------------------------
    def uniq(self, prefix):
        ConsoleBase.n += 1
        return "%s%d%d" % (prefix, os.getpid() % 1000, ConsoleBase.n)

    def new_user(self, name="A User"):
        u = self.uniq("usr")
        r = self.httpd.post("/v1/users/register", {"username": u, "name": name, "email": u + "@example.com",
                                                   "password": USER_PW})
        self.assertEqual(r.status, 201, r)
        return r.json["user_id"], u, r.json["api_key"]

    def new_staff(self, level):
        u = self.uniq("st")
        r = self.httpd.post("/v1/support/create", {"username": u, "name": "Help Desk", "email": u + "@example.com",
                                                   "password": STAFF_PW, "staff_level": level},
                            headers=bearer(self.root))
        self.assertEqual(r.status, 200, r)
        return u

    def wait(self, cond, timeout=30):
        return WebDriverWait(self.b, timeout, ignored_exceptions=(StaleElementReferenceException,)).until(
            lambda d: cond())

    def find(self, css):
        return self.b.find_element(By.CSS_SELECTOR, css)

    def finds(self, css):
        return self.b.find_elements(By.CSS_SELECTOR, css)

    def visible(self, css):
        return [e for e in self.finds(css) if e.is_displayed()]

    def login(self, kind, username, password):
        self.b.get(self.url + "/pe-admin/")
        Select(self.find("#login-kind")).select_by_value(kind)
        self.find("#login-username").send_keys(username)
        self.find("#login-password").send_keys(password)
        self.find("#login-submit").click()

    def logged_in(self):
        self.wait(lambda: self.find("#app").is_displayed())

    def search_users(self, text):
        self.b.execute_script("document.getElementById('users-table').setAttribute('aria-busy', 'true')")
        box = self.find("#users-search")
        box.clear()
        box.send_keys(text)
        self.find("#users-go").click()

    def listed(self, username):
        """The list once it shows this user only (an earlier list may still be on the page)."""
        self.wait(lambda: self.find("#users-table").get_attribute("aria-busy") == "false")
        links = self.finds("#users-table a.user-link")
        self.assertEqual([a.text for a in links], [username])
        return links

    def open_user(self, username):
        self.search_users(username)
        link = self.listed(username)[0]
        link.click()
        self.wait(lambda: self.find("#user-title").text == "User " + username)

    def nav(self, page):
        self.find('#nav button[data-page="%s"]' % page).click()

    def bars(self, chart):
        return dict((b.get_attribute("data-label"), int(b.get_attribute("data-value")))
                    for b in self.wait(lambda: self.finds("#%s rect.bar" % chart)))

    def shot(self, name):
        """A screenshot into the test's run folder, and into $PE_CONSOLE_SCREENSHOTS when set (the
        pictures of docs/console.md are made so: docs/console.md, "Screenshots")."""
        path = os.path.join(self.shots, name)
        # the whole page: the window as tall as the page, for the picture only
        height = self.b.execute_script("return document.documentElement.scrollHeight")
        self.b.set_window_size(1280, max(900, min(int(height) + 140, 3000)))
        try:
            self.b.save_screenshot(path)
        finally:
            self.b.set_window_size(1280, 900)
        dest = os.environ.get("PE_CONSOLE_SCREENSHOTS")
        if dest:
            os.makedirs(dest, exist_ok=True)
            shutil.copyfile(path, os.path.join(dest, name))

    def console_errors(self):
        """SEVERE browser-console entries, less the 404s of monitoring routes this location lacks
        (the console shows a note instead)."""
        out = []
        for e in self.b.get_log("browser"):
            if e["level"] != "SEVERE":
                continue
            if ("/v1/monitoring/" in e["message"] or "/metrics" in e["message"]) and "404" in e["message"]:
                continue
            if "favicon.ico" in e["message"]:
                continue
            out.append(e["message"])
        return out


class Console(ConsoleBase):
    def test_headers_on_console_files(self):
        for path, ctype in (("/pe-admin/", "text/html"), ("/pe-admin/index.html", "text/html"),
                            ("/pe-admin/console.js", "text/javascript"), ("/pe-admin/console.css", "text/css"),
                            ("/pe-admin/missing.js", None)):
            r = self.httpd.get(path)
            self.assertEqual(r.status, 404 if ctype is None else 200, (path, r))
            csp = r.header("Content-Security-Policy") or ""
            directives = dict((d.strip().split(" ", 1) + [""])[:2] for d in csp.split(";") if d.strip())
            self.assertEqual(directives.get("frame-ancestors"), "'none'", (path, csp))
            self.assertEqual(directives.get("script-src"), "'self'", (path, csp))
            self.assertIn(directives.get("default-src"), ("'self'", "'none'"), (path, csp))
            self.assertNotIn("unsafe-inline", csp)
            self.assertNotIn("unsafe-eval", csp)
            self.assertEqual(r.header("X-Content-Type-Options"), "nosniff", path)
            self.assertEqual(r.header("X-Frame-Options"), "DENY", path)
            if ctype:
                self.assertTrue(r.header("Content-Type").startswith(ctype), (path, r.headers))
        # no inline script or style in the page, no file from elsewhere
        html = self.httpd.get("/pe-admin/").body.decode()
        self.assertNotIn("<script>", html)
        self.assertNotIn("style=", html)
        self.assertNotIn("http", html.replace("http-equiv", ""))

    def test_wrong_password_shows_error(self):
        self.login("admin", "root", "Wrong-Pass-0000")
        self.wait(lambda: self.find("#login-error").text != "")
        self.assertEqual(self.find("#login-error").text, "Invalid credentials")
        self.assertFalse(self.find("#app").is_displayed())
        self.assertEqual(self.console_errors_but_login(), [])

    def console_errors_but_login(self):
        return [m for m in self.console_errors() if "/login" not in m]

    def test_admin_raises_limits_and_level(self):
        uid, uname, key = self.new_user()
        # the default limit is 0: the user's completion is refused before the change
        body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hello"}]}
        r = self.httpd.post("/v1/chat/completions", body, headers=bearer(key))
        self.assertEqual(r.status, 429, r)

        self.login("admin", "root", ROOT_PW)
        self.logged_in()
        self.assertEqual(self.find("#who").text, "root (super-admin)")
        self.assertEqual(self.b.get_cookies(), [])  # the session is a Bearer token, never a cookie
        self.search_users(uname + "@example.com")  # find by e-mail
        self.listed(uname)
        self.assertEqual(len(self.finds("#users-table tbody tr")), 1)
        self.open_user(uname)
        lim = self.find("#f-limits-conversation_limit")
        lim.clear()
        lim.send_keys("7")
        Select(self.find("#f-level")).select_by_value("high")
        self.find("#user-save").click()
        self.wait(lambda: self.find("#status").text.startswith("Saved"))
        self.assertEqual(self.find("#status").text, "Saved: limits, level")
        # the store changed
        self.assertEqual(self.httpd.sqlite("SELECT conv_limit, level FROM pe_users WHERE id = ?", (uid,)),
                         [(7, "high")])
        # the user's next completion succeeds, at the new level's model choice
        r = self.httpd.post("/v1/chat/completions", body, headers=bearer(key))
        self.assertEqual(r.status, 200, r)
        self.assertEqual(self.httpd.sqlite("SELECT conv_limit FROM pe_users WHERE id = ?", (uid,)), [(6,)])

        # the security events page lists the change
        self.nav("events")
        self.find("#events-type").send_keys("user_updated")
        self.find("#events-go").click()
        row = self.wait(lambda: [tr for tr in self.finds("#events-table tbody tr") if uname in tr.text])[0]
        cells = row.find_elements(By.TAG_NAME, "td")
        self.assertEqual(cells[1].text, "user_updated")
        self.assertEqual(cells[3].text, "root (admin)")
        details = json.loads(cells[5].text)
        self.assertEqual(details["target_user_id"], uid)
        self.assertEqual(sorted(details["fields_changed"]), ["level", "limits"])
        self.shot("events.png")

        # the user's message log and its chart (written by the log writer within its interval)
        self.nav("users")
        self.open_user(uname)
        ok = False
        for _ in range(20):
            if self.finds("#logs-table tbody tr"):
                ok = True
                break
            time.sleep(0.5)
            self.open_user(uname)
        self.assertTrue(ok, "no message log row")
        bars = self.finds("#chart-user-tokens rect.bar")
        self.assertEqual(len(bars), 1)
        self.assertGreater(int(bars[0].get_attribute("data-value")), 0)
        self.shot("user.png")
        self.assertEqual(self.console_errors(), [])

    def test_new_staff_sees_no_edit_controls(self):
        uid, uname, _ = self.new_user()
        staff = self.new_staff("new")
        self.login("support", staff, STAFF_PW)
        self.logged_in()
        self.assertEqual(self.find("#who").text, staff + " (new)")
        # only the pages the level may open
        shown = [b.get_attribute("data-page") for b in self.visible("#nav button")]
        self.assertEqual(shown, ["users", "health"])
        self.open_user(uname)
        self.assertEqual(self.find("#f-username").text, uname)
        self.assertEqual(self.finds("#user-form input, #user-form select, #user-form textarea"
                                    ":not([disabled])"), [])
        self.assertEqual(self.finds("#user-save"), [])
        self.assertEqual(self.finds("#user-rekey"), [])
        self.assertTrue(self.find("#user-readonly").is_displayed())
        # a forged call with the page's own session is refused, and nothing changed
        status = self.b.execute_async_script("""
            var done = arguments[arguments.length - 1];
            var s = JSON.parse(sessionStorage.getItem('pe-console-session'));
            fetch('/v1/support/users/' + arguments[0], {method: 'PUT',
                  headers: {'Authorization': 'Bearer ' + s.token, 'Content-Type': 'application/json'},
                  body: JSON.stringify({subscription_plan: 'forged'})}).then(function (r) { done(r.status); });
        """, uid)
        self.assertEqual(status, 403)
        self.assertNotEqual(self.httpd.sqlite("SELECT subscription_plan FROM pe_users WHERE id = ?", (uid,))[0][0], "forged")

    def test_support_level_edits_its_fields_only(self):
        uid, uname, _ = self.new_user()
        staff = self.new_staff("support")
        self.login("support", staff, STAFF_PW)
        self.logged_in()
        self.open_user(uname)
        self.assertTrue(self.find("#f-subscription_plan").is_enabled())
        self.assertNotIn("cache", [b.get_attribute("data-page") for b in self.visible("#nav button")])
        self.assertEqual(self.find("#f-level").tag_name, "span")  # level: read only at this level
        self.assertEqual(self.finds("#user-rekey"), [])
        plan = self.find("#f-subscription_plan")
        plan.clear()
        plan.send_keys("team")
        self.find("#user-save").click()
        self.wait(lambda: self.find("#status").text.startswith("Saved"))
        self.assertEqual(self.httpd.sqlite("SELECT subscription_plan FROM pe_users WHERE id = ?", (uid,)), [("team",)])

    def test_markup_in_a_name_is_text(self):
        uid, uname, _ = self.new_user(name=XSS_NAME)
        self.login("admin", "root", ROOT_PW)
        self.logged_in()
        self.search_users(uname)
        self.listed(uname)
        row = self.find('#users-table tr[data-user-id="%s"]' % uid)
        self.assertEqual(row.find_elements(By.TAG_NAME, "td")[1].text, XSS_NAME)
        self.assertEqual(self.finds("#users-table img"), [])
        self.open_user(uname)
        self.assertEqual(self.find("#f-name").get_attribute("value"), XSS_NAME)
        time.sleep(0.5)  # an image error handler would have fired by now
        self.assertIsNone(self.b.execute_script("return window.__pe_xss"))
        self.assertEqual(self.b.title, "PromptEnchanter console")
        self.assertEqual(self.finds("img"), [])

    def test_cache_clear_from_the_browser(self):
        uid, uname, key = self.new_user()
        r = self.httpd.request("PUT", "/v1/admin-panel/users/" + uid, {"limits": {"conversation_limit": 10, "reset": 10}},
                               headers=bearer(self.root))
        self.assertEqual(r.status, 200, r)
        body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "clear me %f" % time.time()}]}

        def cache_state():
            r = self.httpd.post("/v1/chat/completions", body, headers=bearer(key))
            self.assertEqual(r.status, 200, r)
            return r.header("X-PE-Cache")

        self.assertEqual([cache_state(), cache_state()], ["miss", "hit"])
        self.login("admin", "root", ROOT_PW)
        self.logged_in()
        self.nav("cache")
        self.wait(lambda: self.find("#page-cache").is_displayed())
        # a first click only asks; cancel leaves the cache as it is
        self.find("#cache-clear").click()
        self.assertTrue(self.find("#cache-confirm").is_displayed())
        self.find("#cache-confirm-no").click()
        self.assertFalse(self.find("#cache-confirm").is_displayed())
        self.assertEqual(cache_state(), "hit")
        self.find("#cache-clear").click()
        self.find("#cache-confirm-yes").click()
        self.wait(lambda: self.find("#cache-result").text.startswith("Cache cleared successfully"))
        self.assertEqual(self.find("#cache-result").text,
                         "Cache cleared successfully (response cache, research cache; this node only: clear each node)")
        self.shot("cache.png")
        # the next identical completion is a miss
        self.assertEqual(cache_state(), "miss")
        ev = self.httpd.sqlite("SELECT username FROM pe_security_events WHERE event_type = 'cache_cleared'")
        self.assertIn(("root",), ev)
        self.assertEqual(self.console_errors(), [])

    def test_console_cannot_be_framed(self):
        self.b.get(self.url + "/framer/")
        self.assertEqual(self.b.title, "framer")
        # the browser reports the refusal (the log is read in pieces: each read drains it)
        msgs = []
        self.wait(lambda: msgs.extend(e["message"] for e in self.b.get_log("browser"))
                  or any("frame-ancestors" in m for m in msgs))
        # a framed console would be same-origin and readable; refused, the frame holds an error page
        framed = self.b.execute_script("""
            var f = document.getElementById('f');
            try { return f.contentDocument ? f.contentDocument.title : null; } catch (e) { return 'blocked'; }
        """)
        self.assertNotEqual(framed, "PromptEnchanter console")
        self.assertEqual(self.finds("#login-form"), [])

    def test_pages_and_charts(self):
        # a known mix: one user makes 3 completions (another test's user may have made some too)
        uid, uname, key = self.new_user()
        r = self.httpd.request("PUT", "/v1/admin-panel/users/" + uid, {"limits": {"conversation_limit": 10, "reset": 10}},
                               headers=bearer(self.root))
        self.assertEqual(r.status, 200, r)
        body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "chart data " * 20}]}
        for _ in range(3):
            r = self.httpd.post("/v1/chat/completions", body, headers=bearer(key))
            self.assertEqual(r.status, 200, r)
        for _ in range(100):  # the log writer stores them within its interval
            stats = self.httpd.get("/v1/admin-panel/statistics", headers=bearer(self.root)).json
            mine = [t for t in stats["api_statistics"]["top_users_30d"] if t["user_id"] == uid]
            if mine and mine[0]["requests"] == 3:
                break
            time.sleep(0.1)
        self.assertEqual(mine[0]["requests"], 3, stats)
        api = stats["api_statistics"]
        self.login("admin", "root", ROOT_PW)
        self.logged_in()
        self.nav("usage")
        self.assertEqual(self.bars("chart-requests"),
                         {"today": api["requests_today"], "7 days": api["requests_7d"], "30 days": api["requests_30d"]})
        self.assertGreaterEqual(api["requests_today"], 3)
        self.assertEqual(self.bars("chart-tokens"),
                         {"today": api["tokens_today"], "7 days": api["tokens_7d"], "30 days": api["tokens_30d"]})
        self.assertGreaterEqual(api["tokens_today"], mine[0]["tokens"])
        got = self.bars("chart-users")
        us = stats["user_statistics"]
        self.assertEqual(got["total_users"], us["total_users"])
        self.assertGreaterEqual(got["total_users"], 1)
        self.assertEqual(got["active_users"], us["active_users"])
        # heights follow the values: the total's bar is the tallest
        h = dict((b.get_attribute("data-label"), float(b.get_attribute("height")))
                 for b in self.finds("#chart-users rect.bar"))
        self.assertEqual(max(h, key=h.get), "total_users")
        row = self.find('#top-users tr[data-user-id="%s"]' % uid)
        self.assertEqual([td.text for td in row.find_elements(By.TAG_NAME, "td")],
                         [uname, "3", str(mine[0]["tokens"])])
        self.wait(lambda: self.finds("#usage-daily-missing") or self.finds("#chart-daily-requests"))
        self.wait(lambda: self.find("#usage-cache").text != "")
        self.shot("usage.png")

        self.nav("health")
        live = self.wait(lambda: self.finds("#health-live"))[0]
        self.assertTrue(live.text.startswith("Liveness (/health): healthy"), live.text)

        self.nav("prompts")
        ta = self.wait(lambda: self.finds("#prompt-custom"))[0]
        ta.clear()
        ta.send_keys("Console prompt text")
        ta.find_element(By.XPATH, "following-sibling::p/button[text()='Save']").click()
        self.wait(lambda: self.find("#status").text == "Saved the prompt of custom")
        prompts = self.httpd.get("/v1/admin/system-prompts", headers=bearer(self.root)).json["data"]
        self.assertEqual(prompts["prompts"]["custom"], "Console prompt text")
        self.wait(lambda: "(overridden)" in self.find("#prompts-list").text)
        reset = [b for b in self.finds("#prompts-list button") if b.text == "Reset to built-in" and b.is_enabled()]
        self.assertEqual(len(reset), 1)
        reset[0].click()
        self.wait(lambda: self.find("#status").text == "Reset custom")
        prompts = self.httpd.get("/v1/admin/system-prompts", headers=bearer(self.root)).json["data"]
        self.assertEqual(prompts["overridden"], [])

        self.nav("access")
        form = self.wait(lambda: self.finds("#access-ip-blocks form"))[0]
        form.find_element(By.CSS_SELECTOR, ".net").send_keys("192.0.2.0/24")
        form.find_element(By.CSS_SELECTOR, ".note-in").send_keys("console test")
        Select(form.find_element(By.CSS_SELECTOR, ".expiry")).select_by_value("86400")
        form.find_element(By.CSS_SELECTOR, "button").click()
        row = self.wait(lambda: [tr for tr in self.finds("#access-ip-blocks tbody tr") if "192.0.2.0/24" in tr.text])[0]
        self.assertIn("console test", row.text)
        entries = self.httpd.get("/v1/admin-panel/ip-blocks", headers=bearer(self.root)).json["entries"]
        e = [x for x in entries if x["network"] == "192.0.2.0/24"][0]
        self.assertEqual(e["reason"], "console test")
        self.assertTrue(e["expires_at"])
        row.find_element(By.TAG_NAME, "button").click()
        self.wait(lambda: self.find("#status").text == "Removed 192.0.2.0/24")
        entries = self.httpd.get("/v1/admin-panel/ip-blocks", headers=bearer(self.root)).json["entries"]
        self.assertEqual([x for x in entries if x["network"] == "192.0.2.0/24"], [])
        self.assertEqual(self.console_errors(), [])


class ConsoleMonitoring(ConsoleBase):
    """The monitoring routes served where the console calls the API (the root, PEMonitorAccess
    admin: the administrator's session) and /metrics for the loopback: after a known mix of
    requests (3 misses and 2 hits of one user, the only completions of this httpd), the usage
    page draws the requests and tokens per day of /v1/monitoring/usage and the cache hit rate of
    /metrics, and the health page lists the components of /v1/monitoring/health; every page
    opens with no error in the browser console."""
    MORE_CONF = """
<Location "/metrics">
    PEApi metrics
    Require ip 127.0.0.1
</Location>
"""

    def test_health_and_usage_pages(self):
        uid, uname, key = self.new_user()
        r = self.httpd.request("PUT", "/v1/admin-panel/users/" + uid, {"limits": {"conversation_limit": 10, "reset": 10}},
                               headers=bearer(self.root))
        self.assertEqual(r.status, 200, r)
        tag = "%d %f" % (os.getpid(), time.time())
        states, tokens = [], 0
        for i in (0, 1, 2, 0, 1):
            r = self.httpd.post("/v1/chat/completions", {"model": "gpt-4o-mini", "messages": [
                {"role": "user", "content": "usage mix %s %d" % (tag, i)}]}, headers=bearer(key))
            self.assertEqual(r.status, 200, r)
            states.append(r.header("X-PE-Cache"))
            tokens += r.json["usage"]["total_tokens"]
        self.assertEqual(states, ["miss", "miss", "miss", "hit", "hit"])
        today = time.strftime("%Y-%m-%d", time.gmtime())
        for _ in range(100):  # the log writer stores them within its interval
            usage = self.httpd.get("/v1/monitoring/usage?days=30", headers=bearer(self.root))
            self.assertEqual(usage.status, 200, usage)
            day = [d for d in usage.json["daily_usage"] if d["date"] == today]
            if day and day[0]["messages"] == 5:
                break
            time.sleep(0.1)
        self.assertEqual(day, [{"date": today, "messages": 5, "tokens": tokens}])
        health = self.httpd.get("/v1/monitoring/health", headers=bearer(self.root))
        self.assertEqual(health.status, 200, health)

        self.login("admin", "root", ROOT_PW)
        self.logged_in()
        self.nav("usage")
        bars = self.bars("chart-daily-requests")
        self.assertEqual(bars[today], 5)
        self.assertEqual(sum(bars.values()), 5)
        self.assertEqual(bars, dict((d["date"], d["messages"]) for d in usage.json["daily_usage"]))
        self.assertEqual(self.bars("chart-daily-tokens")[today], tokens)
        self.assertEqual(self.finds("#usage-daily-missing"), [])
        self.wait(lambda: self.find("#usage-cache").text != "")
        self.assertEqual(self.find("#usage-cache").text, "Response cache hit rate: 40.0 % of 5 look-ups")
        self.assertEqual(self.bars("chart-requests")["today"], 5)
        self.shot("usage.png")

        self.nav("health")
        self.wait(lambda: self.finds("#health-components tbody tr"))
        rows = [[td.text for td in tr.find_elements(By.TAG_NAME, "td")]
                for tr in self.finds("#health-components tbody tr")]
        self.assertEqual(rows, [[k, v["status"]] for k, v in health.json["components"].items()])
        self.assertIn(["store", "up"], rows)
        self.assertTrue(self.find("#health-live").text.startswith("Liveness (/health): healthy"))
        self.shot("health.png")

        # every page opens with no error in the browser console (nothing is excused here: every
        # route the console calls is served)
        for page in ("users", "events", "access", "prompts", "cache", "usage", "health"):
            self.nav(page)
            self.wait(lambda: self.find("#page-" + page).is_displayed())
            time.sleep(0.3)  # the page's calls complete
            self.assertEqual(self.find("#status").get_attribute("class"), "", (page, self.find("#status").text))
            if page in ("users", "events", "access", "prompts"):
                self.shot(page + ".png")
        severe = [e["message"] for e in self.b.get_log("browser")
                  if e["level"] == "SEVERE" and "favicon.ico" not in e["message"]]
        self.assertEqual(severe, [])


class ConsoleAutoBlocks(ConsoleBase):
    """The operators' API under /ops outside the access layer (operators.md), the console set to
    call it there: an administrator whose own address was blocked automatically (PEAutoBlock)
    still opens the console and lifts the block from the IP access page."""
    MPM = "prefork"
    ENV = {"PE_AUTO_BLOCK": "3 1m 10m"}
    API_BASE = "/ops"
    MORE_CONF = """
<Location /ops>
    SetHandler promptenchanter
    PEBaseURI /ops
    PEApi core admin-panel support admin
    PEAccess Off
    Require ip 127.0.0.1
</Location>
"""

    def test_lift_own_block(self):
        h = self.httpd
        for i in range(3):
            self.assertEqual(h.post("/v1/users/login", {"email": "x%d@example.com" % i,
                                                        "password": "Wrong-Pass-1"}).status, 401)
        # blocked (GET /health is never refused by an automatic block; any other route is)
        self.assertEqual([h.get("/v1/users/profile").status for _ in range(4)], [403] * 4)
        self.login("admin", "root", ROOT_PW)
        self.logged_in()
        self.nav("access")
        row = self.wait(lambda: [tr for tr in self.finds("#autoblocks-table tbody tr") if "127.0.0.1" in tr.text])[0]
        row.find_element(By.TAG_NAME, "button").click()
        self.wait(lambda: self.find("#status").text == "Lifted 127.0.0.1")
        self.assertEqual([h.get("/v1/users/profile").status for _ in range(8)], [401] * 8)  # lifted
        self.wait(lambda: self.find("#autoblocks-table tbody").text == "none")
        ev = h.sqlite("SELECT username FROM pe_security_events WHERE event_type = 'ip_block_lifted'")
        self.assertEqual(ev, [("root",)])
        self.nav("health")
        live = self.wait(lambda: self.finds("#health-live"))[0]
        self.assertTrue(live.text.startswith("Liveness (/health): healthy"), live.text)
        self.assertEqual(self.console_errors(), [])


if __name__ == "__main__":
    unittest.main()
