"""The MongoDB store as httpd runs it: the server down at start, and PEMongoURI's checks.

The suites that run on every backend (users, credits, access lists, batch) have their MongoDB
classes beside their SQLite and PostgreSQL ones; this file holds what only MongoDB has.
"""
import base64
import os
import time
import unittest

import pe_mongo
from pe_harness import Httpd, HttpdTestCase

PASSWORD = "Correct-Horse-7"
FAST_ARGON = "PEArgon2Cost 2 16M 1\n"


def bearer(tok):
    return {"Authorization": "Bearer " + tok}


@unittest.skipUnless(pe_mongo.available(), "no MongoDB server (node and the stand-in, or PE_TEST_MONGODB_URI)")
class MongoDownAtStart(pe_mongo.MongoClass, HttpdTestCase):
    """httpd starts while MongoDB is down, answers 503 STORE_UNAVAILABLE, and works once the
    server is up, with no restart."""

    EXTRA_CONF = FAST_ARGON
    MONGO_NAME = "mongo-down"
    MONGO_START = False
    # The store's failures while the server is down (PE30002), logged at error level.
    ALLOWED_LOG_IDS = ("PE30002",)

    def test_503_then_success_without_restart(self):
        h = self.httpd
        pid = h.pid()
        token = base64.urlsafe_b64encode(os.urandom(64)).rstrip(b"=").decode()
        self.assertEqual(h.get("/health").status, 200)
        r = h.get("/v1/users/profile", headers=bearer(token))
        self.assertEnvelope(r, 503, "STORE_UNAVAILABLE")
        body = {"username": "down_user", "name": "Down User", "email": "down@example.com", "password": PASSWORD}
        self.assertEnvelope(h.post("/v1/users/register", body), 503, "STORE_UNAVAILABLE")
        self.assertIn("PE00252", h.error_log())

        self.mongo.start()
        deadline = time.time() + 60
        while True:
            r = h.get("/v1/users/profile", headers=bearer(token))
            if r.status != 503 or time.time() > deadline:
                break
            time.sleep(0.5)
        self.assertEnvelope(r, 401, "INVALID_SESSION")
        r = h.post("/v1/users/register", body)
        self.assertEqual(r.status, 201, r)
        s = h.post("/v1/users/login", {"email": "down@example.com", "password": PASSWORD})
        self.assertEqual(s.status, 200, s)
        tok = s.json["session"]["session_token"]
        self.assertEqual(h.get("/v1/users/profile", headers=bearer(tok)).status, 200)
        self.assertEqual(h.pid(), pid)  # no restart
        # the collections were made once the server answered
        c = self.mongo.client()
        try:
            self.assertEqual(c.find("pe_schema_version")[0]["version"], 3)  # pe_store_mongo.c: pe_mg_versions
            self.assertEqual(c.count("pe_users", {"email": "down@example.com"}), 1)
        finally:
            c.close()


class MongoConfig(unittest.TestCase):
    """PEMongoURI: server config only, checked by `apache2 -t`; PEStore mongodb needs it."""

    def configtest(self, extra):
        h = Httpd("mongo-config", extra_conf=extra)
        try:
            return h.configtest()
        finally:
            h.stop()

    def test_refused_in_virtualhost(self):
        p = self.configtest("<VirtualHost 127.0.0.1:8>\n    PEMongoURI mongodb://127.0.0.1:27017/pe\n"
                            "</VirtualHost>\n")
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("PEMongoURI: the MongoDB connection is process-wide", p.stdout + p.stderr)

    def test_malformed_uri(self):
        for uri in ("http://127.0.0.1/", "mongodb://", "mongodb://127.0.0.1:99999/pe", "mongodb://h/?w=x&w=y&"
                    "serverSelectionTimeoutMS=abc"):
            p = self.configtest('PEMongoURI "%s"\n' % uri)
            self.assertNotEqual(p.returncode, 0, uri)
            self.assertIn("PEMongoURI: not a usable MongoDB URI", p.stdout + p.stderr, uri)

    def test_good_uri(self):
        p = self.configtest('PEStore mongodb\nPEMongoURI "mongodb://127.0.0.1:27017,127.0.0.2:27017/pe?'
                            'replicaSet=rs0&serverSelectionTimeoutMS=500"\n')
        self.assertEqual(p.returncode, 0, p.stderr)

    def test_mongodb_without_uri_refuses_to_start(self):
        h = Httpd("mongo-nouri", extra_conf="PEStore mongodb\n")
        try:
            with self.assertRaises(RuntimeError):
                h.start()
            self.assertIn("PE00250", h.error_log())
        finally:
            h.stop()


if __name__ == "__main__":
    unittest.main()
