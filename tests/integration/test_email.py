"""E-mail verification (issue 11): codes sent over real SMTP to the sink of tests/fakes and read back
from the mail it received (never from the database), checked with a limit of attempts, the daily
send limit, the gate on API-key routes, a changed address, names that try to inject headers, a
mail server that is down or hangs, STARTTLS, and no code in clear in the store or the logs; on
SQLite, PostgreSQL and MongoDB."""
import concurrent.futures
import email
import email.policy
import os
import re
import tempfile
import time
import unittest

import fakes
import pe_mongo
import pe_pg
from pe_harness import Httpd, HttpdTestCase

PASSWORD = "Zebra-Lamp-42"
CONF = """PEArgon2Cost 1 1M 1
PEEmailVerification On
PESMTPStartTLS Optional
PESMTPTimeout 2s
PESMTPMaxConcurrent 3
PEMailFrom "PromptEnchanter Test <noreply@pe-test.example>"
PEDefaultConversationLimit 100
"""
# What the suite's main classes set through build/instance.sh (as `make run` does) instead.
ENV_CONF = """PEArgon2Cost 1 1M 1
PESMTPTimeout 2s
PESMTPMaxConcurrent 3
PEDefaultConversationLimit 100
"""


def bearer(tok):
    return {"Authorization": "Bearer " + tok}


def code_of(msg):
    m = re.search(r"^\s+(\d{6})\s*$", msg["text"], re.M)
    assert m, "no code in the text: %r" % msg["text"]
    return m.group(1)


class SinkClass:
    """Mixin: the fakes of a class (an SMTP sink, more from fakes()) started before its httpd,
    whose configuration mail_setup() makes from them, and stopped after it."""

    SINK = {}

    @classmethod
    def fakes(cls):
        return {}

    @classmethod
    def mail_setup(cls):
        raise NotImplementedError

    @classmethod
    def setUpClass(cls):
        cls.sink = fakes.start_smtp(**cls.SINK)
        cls.others = cls.fakes()
        cls.mail_setup()
        try:
            super().setUpClass()
        except Exception:
            cls.stop_fakes()
            raise

    @classmethod
    def stop_fakes(cls):
        for f in [cls.sink] + list(cls.others.values()):
            f.stop()

    @classmethod
    def tearDownClass(cls):
        try:
            super().tearDownClass()
        finally:
            cls.stop_fakes()


class EmailMixin(SinkClass):
    """A sink and a fake upstream per class; helpers; the tests every backend runs."""

    n = 0

    @classmethod
    def fakes(cls):
        cls.up = fakes.start_upstream()
        return {"upstream": cls.up}

    @classmethod
    def mail_setup(cls):
        # NB: the mail settings through the environment, as `make run` takes them
        cls.EXTRA_CONF = ENV_CONF
        cls.ENV = dict(cls.ENV, PE_UPSTREAM_URL=cls.up.chat_url, PE_SMTP_URL="smtp://127.0.0.1:%d" % cls.sink.port,
                       PE_SMTP_STARTTLS="Optional", PE_MAIL_FROM="PromptEnchanter Test <noreply@pe-test.example>")

    def setUp(self):
        self.sink.clear_fails()
        self.sink.config(greeting_delay_ms=0, reply_delay_ms=0)

    # -- helpers ----------------------------------------------------------------------------
    def register(self, name="Test User"):
        EmailMixin.n += 1
        user = "mail%d_%d" % (os.getpid(), EmailMixin.n)
        r = self.httpd.post("/v1/users/register", {"username": user, "name": name, "email": user + "@example.com",
                                                   "password": PASSWORD})
        self.assertEqual(r.status, 201, r)
        s = self.httpd.post("/v1/users/login", {"email": r.json["email"], "password": PASSWORD})
        self.assertEqual(s.status, 200, s)
        return r.json, s.json["session"]["session_token"]

    def mails_to(self, addr):
        return [m for m in self.sink.messages() if addr in m["rcpt_to"]]

    def send(self, tok, route="send-verification"):
        return self.httpd.post("/v1/email/" + route, {}, headers=bearer(tok))

    def send_and_read(self, tok, addr):
        before = len(self.mails_to(addr))
        r = self.send(tok)
        self.assertEqual(r.status, 200, r)
        mails = self.mails_to(addr)
        self.assertEqual(len(mails), before + 1)
        return code_of(mails[-1]), mails[-1], r.json

    def verify(self, tok, code):
        return self.httpd.post("/v1/email/verify", {"otp_code": code}, headers=bearer(tok))

    def wrong(self, code):
        return "%06d" % ((int(code) + 1) % 1000000)

    def events(self, uid):
        return [e for (e,) in self.httpd.sqlite("SELECT event_type FROM pe_security_events WHERE principal_id = '%s'"
                                                % uid)]

    def complete(self, key):
        return self.httpd.post("/v1/prompt/completions", {"level": "low", "prompt": "hello"}, headers=bearer(key))

    # -- the flow -----------------------------------------------------------------------------
    def test_register_send_verify(self):
        h = self.httpd
        reg, tok = self.register()
        self.assertIs(reg["verification_required"], True)
        key, addr = reg["api_key"], reg["email"]
        st = h.get("/v1/email/status", headers=bearer(tok))
        self.assertEqual(st.status, 200, st)
        self.assertEqual((st.json["is_verified"], st.json["verification_enabled"],
                          st.json["verification_required_for_api"], st.json["email"]), (False, True, True, addr))
        self.assertEnvelope(self.complete(key), 403, "EMAIL_NOT_VERIFIED")
        self.assertEnvelope(h.get("/v1/users/api-key", headers=bearer(tok)), 403, "EMAIL_NOT_VERIFIED")
        code, mail, sent = self.send_and_read(tok, addr)
        self.assertIs(sent["success"], True)
        self.assertTrue(sent["expires_at"].endswith("Z"))
        self.assertEqual((sent["sends_today"], sent["sends_left"]), (1, 2))
        # a well-formed message to the user's address only
        self.assertEqual(mail["rcpt_to"], [addr])
        self.assertEqual(mail["mail_from"], "noreply@pe-test.example")
        msg = email.message_from_string(mail["data"], policy=email.policy.strict)
        for name in ("Date", "Message-ID", "From", "To", "Subject", "MIME-Version"):
            self.assertEqual(len(msg.get_all(name) or []), 1, name)
        self.assertEqual(msg["To"].addresses[0].addr_spec, addr)
        self.assertRegex(msg["Message-ID"], r"^<[^@<>\s]+@pe-test\.example>$")
        self.assertEqual(msg.get_content_type(), "multipart/mixed")
        self.assertIsNotNone(msg.get_body(("plain",)))
        self.assertIn("24 hours", mail["text"])
        self.assertIn(time.strftime("%Y-%m-%d", time.gmtime(time.time() + 86400)), mail["text"])
        self.assertIn(code, mail["html"])
        # a wrong code, then the right one
        j = self.assertEnvelope(self.verify(tok, self.wrong(code)), 400, "OTP_INVALID")
        self.assertEqual(j["details"]["attempts_left"], 4)
        r = self.verify(tok, code)
        self.assertEqual(r.status, 200, r)
        self.assertEqual((r.json["success"], r.json["message"]), (True, "Email verified successfully"))
        self.assertIs(h.get("/v1/email/status", headers=bearer(tok)).json["is_verified"], True)
        self.assertEqual(h.get("/v1/users/api-key", headers=bearer(tok)).json["api_key"], key)
        self.assertEqual(self.complete(key).status, 200)
        # used once; verified: the routes say so
        self.assertEqual(self.verify(tok, code).json, {"success": False, "message": "Email is already verified",
                                                       "expires_at": None})
        self.assertEqual(self.send(tok).json["message"], "Email is already verified")
        ev = self.events(reg["user_id"])
        for e in ("verification_email_sent", "email_verification_failed", "email_verified"):
            self.assertIn(e, ev)

    def test_wrong_code_five_times_kills_it(self):
        reg, tok = self.register()
        code, _, _ = self.send_and_read(tok, reg["email"])
        for left in (4, 3, 2, 1, 0):
            j = self.assertEnvelope(self.verify(tok, self.wrong(code)), 400, "OTP_INVALID")
            self.assertEqual(j["details"]["attempts_left"], left)
        self.assertEnvelope(self.verify(tok, code), 400, "OTP_ATTEMPTS_EXCEEDED")
        # a new code works again
        code2, _, _ = self.send_and_read(tok, reg["email"])
        self.assertEqual(self.verify(tok, code2).status, 200)

    def test_parallel_wrong_attempts_counted_exactly(self):
        reg, tok = self.register()
        code, _, _ = self.send_and_read(tok, reg["email"])
        with concurrent.futures.ThreadPoolExecutor(12) as ex:
            res = list(ex.map(lambda i: self.verify(tok, self.wrong(code)), range(12)))
        codes = sorted(r.json["error_code"] for r in res)
        self.assertEqual(codes.count("OTP_INVALID"), 5, codes)
        self.assertEqual(codes.count("OTP_ATTEMPTS_EXCEEDED"), 7, codes)
        self.assertEnvelope(self.verify(tok, code), 400, "OTP_ATTEMPTS_EXCEEDED")

    def test_parallel_right_code_used_once(self):
        reg, tok = self.register()
        code, _, _ = self.send_and_read(tok, reg["email"])
        with concurrent.futures.ThreadPoolExecutor(10) as ex:
            res = list(ex.map(lambda i: self.verify(tok, code), range(10)))
        ok = [r for r in res if r.status == 200 and r.json["success"] is True]
        self.assertEqual(len(ok), 1, [r.json for r in res])
        self.assertIs(self.httpd.get("/v1/email/status", headers=bearer(tok)).json["is_verified"], True)
        self.assertEqual(self.events(reg["user_id"]).count("email_verified"), 1)

    def test_new_code_replaces_the_old(self):
        reg, tok = self.register()
        old, _, _ = self.send_and_read(tok, reg["email"])
        new, _, _ = self.send_and_read(tok, reg["email"])
        if new == old:  # one chance in a million: a third code
            new, _, _ = self.send_and_read(tok, reg["email"])
        self.assertEnvelope(self.verify(tok, old), 400, "OTP_INVALID")
        self.assertEqual(self.verify(tok, new).status, 200)

    def test_daily_send_limit(self):
        reg, tok = self.register()
        for i in range(3):
            self.assertEqual(self.send(tok, "resend" if i else "send-verification").status, 200)
        r = self.send(tok)
        j = self.assertEnvelope(r, 429, "EMAIL_SEND_LIMIT")
        self.assertEqual(j["details"]["limit"], 3)
        midnight = (int(time.time()) // 86400 + 1) * 86400
        self.assertEqual(j["details"]["reset_at"][:19], time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(midnight)))
        self.assertGreater(int(r.header("Retry-After")), 0)
        self.assertEnvelope(self.send(tok, "resend"), 429, "EMAIL_SEND_LIMIT")
        self.assertEqual(len(self.mails_to(reg["email"])), 3)
        self.assertIn("verification_email_limited", self.events(reg["user_id"]))

    def test_parallel_sends_stop_at_the_limit(self):
        reg, tok = self.register()
        with concurrent.futures.ThreadPoolExecutor(8) as ex:
            res = list(ex.map(lambda i: self.send(tok), range(8)))
        codes = sorted(r.status for r in res)
        self.assertEqual(codes, [200] * 3 + [429] * 5, codes)
        self.assertEqual(len(self.mails_to(reg["email"])), 3)

    def test_gate_on_every_api_route(self):
        h = self.httpd
        reg, tok = self.register()
        key = reg["api_key"]
        for method, path, body in (("POST", "/v1/prompt/completions", {"level": "low", "prompt": "hi"}),
                                   ("POST", "/v1/prompt/completions", {"level": "low", "prompt": "hi",
                                                                       "enable_research": True}),
                                   ("POST", "/v1/chat/completions", {"model": "gpt-4o-mini",
                                                                     "messages": [{"role": "user", "content": "hi"}]}),
                                   ("POST", "/v1/batch/process", {"level": "low", "batch": [{"prompt": "a"}]}),
                                   ("GET", "/v1/models", None)):
            r = h.request(method, path, body, headers=bearer(key))
            if path in ("/v1/chat/completions", "/v1/models"):  # the OpenAI routes answer in OpenAI's shape
                self.assertEqual(r.status, 403, r)
                err = r.json["error"]
                self.assertEqual((err["code"], err["type"]), ("EMAIL_NOT_VERIFIED", "permission_error"))
                msg = err["message"]
            else:
                msg = self.assertEnvelope(r, 403, "EMAIL_NOT_VERIFIED")["message"]
            self.assertIn("/v1/email/send-verification", msg)
        self.assertEnvelope(h.get("/v1/users/api-key", headers=bearer(tok)), 403, "EMAIL_NOT_VERIFIED")
        self.assertEnvelope(h.post("/v1/users/api-key/regenerate", {}, headers=bearer(tok)), 403,
                            "EMAIL_NOT_VERIFIED")
        # the account itself stays open
        self.assertEqual(h.get("/v1/users/profile", headers=bearer(tok)).status, 200)
        self.assertEqual(h.request("PUT", "/v1/users/profile", {"about_me": "x"}, headers=bearer(tok)).status, 200)
        self.assertEqual(h.get("/v1/email/status", headers=bearer(tok)).status, 200)

    def test_changed_address_is_verified_again(self):
        h = self.httpd
        reg, tok = self.register()
        code, _, _ = self.send_and_read(tok, reg["email"])
        self.assertEqual(self.verify(tok, code).status, 200)
        self.assertEqual(self.complete(reg["api_key"]).status, 200)
        # a code sent to the old address does not verify the new one
        new = "new_" + reg["email"]
        r = h.request("PUT", "/v1/users/email", {"new_email": new, "current_password": PASSWORD}, headers=bearer(tok))
        self.assertEqual(r.status, 200, r)
        self.assertIn("Please verify your new email address", r.json["message"])
        self.assertIs(h.get("/v1/email/status", headers=bearer(tok)).json["is_verified"], False)
        self.assertEnvelope(self.complete(reg["api_key"]), 403, "EMAIL_NOT_VERIFIED")
        self.assertEnvelope(self.verify(tok, code), 400, "OTP_EXPIRED")
        code2, mail, _ = self.send_and_read(tok, new)
        self.assertEqual(mail["rcpt_to"], [new])
        self.assertEqual(self.verify(tok, code2).status, 200)
        self.assertEqual(self.complete(reg["api_key"]).status, 200)

    def test_names_cannot_inject_headers(self):
        for name, shown in (("Eve\r\nBcc: intruder@example.com", "Eve  Bcc: intruder@example.com"),
                            ("Mallory\nSubject: pwned\n\nbody", "Mallory Subject: pwned  body"),
                            ("Zoë Ångström-Łukasz", "Zoë Ångström-Łukasz")):
            reg, tok = self.register(name=name)
            _, mail, _ = self.send_and_read(tok, reg["email"])
            self.assertEqual(mail["rcpt_to"], [reg["email"]])
            msg = email.message_from_string(mail["data"], policy=email.policy.strict)
            self.assertIsNone(msg["Bcc"])
            self.assertEqual(len(msg.get_all("Subject")), 1)
            self.assertEqual(str(msg["Subject"]), "Verify your email - PromptEnchanter")
            to = msg["To"].addresses
            self.assertEqual(len(to), 1)
            self.assertEqual(to[0].addr_spec, reg["email"])
            self.assertEqual(to[0].display_name, re.sub(" +", " ", shown))
            self.assertIn("Hello %s," % shown, mail["text"])
            # header lines: none but those the module writes
            head = mail["data"].split("\r\n\r\n", 1)[0]
            self.assertNotRegex(head, r"(?mi)^(bcc|cc):")

    def test_mail_server_down_or_hung(self):
        reg, tok = self.register()
        # the server drops the connection at once
        self.sink.fail("connect", 0, count=1)
        r = self.send(tok)
        self.assertEnvelope(r, 503, "MAIL_UNAVAILABLE")
        self.assertEqual(r.header("Retry-After"), "60")
        # the server accepts and never answers: the request ends with PESMTPTimeout (2 s), not with
        # the server's 60 s (the client's own limit here is 30 s)
        self.sink.config(greeting_delay_ms=60000)
        r = self.send(tok)
        self.assertEnvelope(r, 503, "MAIL_UNAVAILABLE")
        # six at once while it hangs: PESMTPMaxConcurrent (3) hold a worker each, the others are
        # turned away at once; none is counted
        users = [self.register()[1] for _ in range(6)]
        with concurrent.futures.ThreadPoolExecutor(6) as ex:
            res = list(ex.map(self.send, users))
        codes = [x.json["error_code"] for x in res]
        self.assertEqual([x.status for x in res], [503] * 6, codes)
        self.assertLessEqual(set(codes), {"MAIL_UNAVAILABLE", "MAIL_BUSY"})
        self.assertGreaterEqual(codes.count("MAIL_BUSY"), 1, codes)
        self.sink.config(greeting_delay_ms=0)
        self.assertEqual(self.send(users[0]).status, 200)
        # neither was counted: three sends still go
        for _ in range(3):
            self.assertEqual(self.send(tok).status, 200)
        self.assertEnvelope(self.send(tok), 429, "EMAIL_SEND_LIMIT")
        self.assertIn("verification_email_failed", self.events(reg["user_id"]))
        self.assertIn("PE11002", self.httpd.error_log())

    def test_code_not_in_clear(self):
        reg, tok = self.register()
        code, _, _ = self.send_and_read(tok, reg["email"])
        self.assertEnvelope(self.verify(tok, self.wrong(code)), 400, "OTP_INVALID")
        ((digest,),) = self.httpd.sqlite("SELECT email_code_digest FROM pe_users WHERE id = '%s'" % reg["user_id"])
        self.assertRegex(digest, r"^[0-9a-f]{64}$")
        rows = self.httpd.sqlite("SELECT event_type, details FROM pe_security_events WHERE principal_id = '%s'"
                                 % reg["user_id"])
        self.assertTrue(rows)
        for row in rows:
            self.assertNotIn(code, str(row))
        time.sleep(0.2)
        logs = os.path.join(self.httpd.dir, "logs")
        for name in os.listdir(logs):
            with open(os.path.join(logs, name), errors="replace") as f:
                self.assertNotIn(code, f.read(), name)


class EmailSqlite(EmailMixin, HttpdTestCase):
    pass


@unittest.skipUnless(pe_pg.available(), "PostgreSQL is not installed")
class EmailPostgres(pe_pg.PostgresClass, EmailMixin, HttpdTestCase):
    PG_NAME = "pg-email"

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.httpd.sqlite = cls.sql

    @classmethod
    def sql(cls, q, args=()):
        return [tuple(line.split("|")) for line in cls.pg.query(q).splitlines()]


@unittest.skipUnless(pe_mongo.available(), "no MongoDB server (node and the stand-in, or PE_TEST_MONGODB_URI)")
class EmailMongo(pe_mongo.MongoClass, EmailSqlite):
    MONGO_NAME = "mongo-email"


# The certificate of the STARTTLS sink, in a folder the children (the server user) can read.
TLS_DIR = tempfile.mkdtemp(prefix="pe-email-tls-")
os.chmod(TLS_DIR, 0o755)


class EmailStartTLS(SinkClass, HttpdTestCase):
    """smtp:// with STARTTLS required, the server's certificate checked against PESMTPCAFile,
    AUTH with the password from PESMTPPasswordFile."""

    CERT, KEY = fakes.make_self_signed_cert(TLS_DIR)
    SINK = {"tls_cert": CERT, "tls_key": KEY, "require_auth": True}

    @classmethod
    def mail_setup(cls):
        os.chmod(cls.CERT, 0o644)
        pw = os.path.join(TLS_DIR, "smtp.pw")
        with open(os.open(pw, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
            f.write("mail-s3cret\n")
        cls.EXTRA_CONF = (CONF.replace("PESMTPStartTLS Optional", "PESMTPStartTLS Required") +
                          "PESMTPURL smtp://127.0.0.1:%d\nPESMTPCAFile %s\nPESMTPUser mailer\nPESMTPPasswordFile %s\n"
                          % (cls.sink.port, cls.CERT, pw))

    def test_starttls_and_auth(self):
        h = self.httpd
        r = h.post("/v1/users/register", {"username": "tls_user", "name": "TLS", "email": "tls@example.com",
                                          "password": PASSWORD})
        self.assertEqual(r.status, 201, r)
        tok = h.post("/v1/users/login", {"email": "tls@example.com", "password": PASSWORD}).json["session"]["session_token"]
        s = h.post("/v1/email/send-verification", {}, headers=bearer(tok))
        self.assertEqual(s.status, 200, s)
        (mail,) = self.sink.messages()
        self.assertIs(mail["tls"], True)
        self.assertEqual((mail["auth"]["username"], mail["auth"]["password"]), ("mailer", "mail-s3cret"))
        self.assertEqual(h.post("/v1/email/verify", {"otp_code": code_of(mail)}, headers=bearer(tok)).status, 200)
        self.assertNotIn("mail-s3cret", h.error_log())


class EmailExpiry(SinkClass, HttpdTestCase):
    """A code past PEEmailCodeLifetime is refused (1 s here; the test waits 2.5 s)."""

    @classmethod
    def mail_setup(cls):
        cls.EXTRA_CONF = CONF + "PEEmailCodeLifetime 1s\nPESMTPURL smtp://127.0.0.1:%d\n" % cls.sink.port

    def test_expired_code_refused(self):
        h = self.httpd
        h.post("/v1/users/register", {"username": "exp_user", "name": "Exp", "email": "exp@example.com",
                                      "password": PASSWORD})
        tok = h.post("/v1/users/login", {"email": "exp@example.com", "password": PASSWORD}).json["session"]["session_token"]
        s = h.post("/v1/email/send-verification", {}, headers=bearer(tok))
        self.assertEqual(s.status, 200, s)
        (mail,) = self.sink.messages()
        self.assertIn("valid for 1 second ", mail["text"])
        time.sleep(2.5)
        self.assertEnvelope(h.post("/v1/email/verify", {"otp_code": code_of(mail)}, headers=bearer(tok)), 400,
                            "OTP_EXPIRED")
        self.assertIs(h.get("/v1/email/status", headers=bearer(tok)).json["is_verified"], False)


class EmailOff(HttpdTestCase):
    """PEEmailVerification Off (the default): accounts are verified at registration, the routes say so."""

    EXTRA_CONF = "PEArgon2Cost 1 1M 1\n"

    def test_off(self):
        h = self.httpd
        r = h.post("/v1/users/register", {"username": "off_user", "name": "Off", "email": "off@example.com",
                                          "password": PASSWORD})
        self.assertIs(r.json["verification_required"], False)
        tok = h.post("/v1/users/login", {"email": "off@example.com", "password": PASSWORD}).json["session"]["session_token"]
        self.assertEnvelope(h.post("/v1/email/send-verification", {}, headers=bearer(tok)), 400,
                            "EMAIL_VERIFICATION_DISABLED")
        st = h.get("/v1/email/status", headers=bearer(tok)).json
        self.assertEqual((st["is_verified"], st["verification_enabled"]), (True, False))
        self.assertEqual(h.get("/v1/users/api-key", headers=bearer(tok)).status, 200)


class EmailConfigChecks(unittest.TestCase):
    """Settings httpd refuses to start with (apache2 -t)."""

    def configtest(self, extra):
        h = Httpd("email-conf", extra_conf=extra)
        h.run("render")
        return h.configtest()

    def test_refused(self):
        tmp = tempfile.mkdtemp(prefix="pe-email-conf-")
        pw = os.path.join(tmp, "open.pw")
        with open(pw, "w") as f:
            f.write("x\n")
        os.chmod(pw, 0o644)
        for extra, words in (("PEEmailVerification On\n", "PE11001"),
                             ("PESMTPURL http://127.0.0.1:25\n", "smtp://"),
                             ("PESMTPPasswordFile %s\n" % pw, "chmod 600"),
                             ("PEMailFrom \"not an address\"\n", "PEMailFrom"),
                             ("PESMTPStartTLS Sometimes\n", "Required"),
                             ("PESMTPTimeout 5m\n", "PESMTPTimeout")):
            p = self.configtest(extra)
            self.assertNotEqual(p.returncode, 0, extra)
            self.assertIn(words, p.stdout + p.stderr, extra)
        p = self.configtest("PEEmailVerification On\nPESMTPURL smtps://127.0.0.1:465\n")
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)


if __name__ == "__main__":
    unittest.main()
