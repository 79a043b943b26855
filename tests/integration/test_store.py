"""The store's httpd side: PEStore and the process-wide directives (refused in a <VirtualHost>), the
DBDMax warning, and a PostgreSQL outage under load with a connection pool smaller than the threads
of a child (issue 16 item 1: no thread may hold a connection while it waits for another)."""
import concurrent.futures
import threading
import time
import unittest

import pe_pg
from pe_harness import TOP, Httpd, HttpdTestCase

FAST = "PEArgon2Cost 1 1M 1\n"

# Directives made once per process from the main server's value (docs/configuration.md), with a
# valid value each.
PROCESS_WIDE = [
    "PEStore dbd", "PESecretKeyFile @INSTANCE@/secrets/server.key",
    "PEEncryptionKeyFile @INSTANCE@/secrets/encryption.key k1", "PEEncryptionKeyFileOld @INSTANCE@/secrets/encryption.key k0",
    "PECommonPasswordFile %s/conf/common-passwords.txt" % TOP,
    "PEPasswordHashMax 4", "PECacheServers 127.0.0.1:11211", "PECacheTimeout 250ms",
    "PECacheShmEntries 64", "PECacheShmEntrySize 4K", "PEMessageLog On", "PEMessageLogBatch 10",
    "PEMessageLogInterval 1s", "PEMessageLogQueue 100", "PEAccessRefresh 10s", "PEAccessServers none",
    "PEAccessTableSize 1024", "PEResearchCacheSize 16", "PEMongoURI mongodb://127.0.0.1:27017/pe",
]


class StoreConfig(unittest.TestCase):
    """`apache2 -t` refuses what cannot work, naming the directive."""

    def configtest(self, extra):
        h = Httpd("store-config", extra_conf=extra)
        try:
            return h.configtest()
        finally:
            h.stop()

    def test_backends(self):
        p = self.configtest("PEStore dbd\n")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("Syntax OK", p.stderr)
        p = self.configtest("PEStore mongodb\nPEMongoURI mongodb://127.0.0.1:27017/pe\n")
        self.assertEqual(p.returncode, 0, p.stderr)
        p = self.configtest("PEStore oracle\n")
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("PEStore: unknown store backend 'oracle' (dbd or mongodb)", p.stderr)

    def test_process_wide_in_main_server(self):
        p = self.configtest("\n".join(PROCESS_WIDE) + "\n")
        self.assertEqual(p.returncode, 0, p.stderr)

    def test_process_wide_refused_in_virtual_host(self):
        for line in PROCESS_WIDE:
            p = self.configtest("<VirtualHost 127.0.0.1:1>\n    ServerName vhost.test\n    %s\n</VirtualHost>\n" % line)
            self.assertNotEqual(p.returncode, 0, line)
            name = line.split()[0]
            self.assertIn("%s cannot occur within <VirtualHost> section" % name, p.stderr, line)
        # per-host directives stay allowed there
        p = self.configtest("<VirtualHost 127.0.0.1:1>\n    ServerName vhost.test\n    PECacheTTL 1h\n"
                            "    PEAccessExempt health\n</VirtualHost>\n")
        self.assertEqual(p.returncode, 0, p.stderr)


@unittest.skipUnless(pe_pg.available(), "PostgreSQL is not installed")
class PostgresOutageSmallPool(pe_pg.PostgresClass, HttpdTestCase):
    """24 clients loop on an account route with 2 connections per child (32 threads each), while
    PostgreSQL is stopped for 2 s and started again. Every request is answered (503 while the
    server is down), nothing hangs, and afterwards every request succeeds without a restart."""

    EXTRA_CONF = FAST + "DBDMin 1\nDBDKeep 2\nDBDMax 2\n"
    PG_NAME = "pg-outage"
    CLIENTS = 24
    # While the server is down: mod_dbd's failed connects and checks, our failed statements and
    # the 503s of requests that got no connection.
    # A child started during the outage cannot check the schema (PE00203, PE00204).
    ALLOWED_LOG_IDS = ("AH00629", "AH00633", "AH00636", "AH00639", "AH02655", "AH01631", "PE30002", "PE00202",
                       "PE00203", "PE00204")

    def test_outage_under_load(self):
        h = self.httpd
        self.assertIn("PE00206", h.error_log())  # DBDMax 2 is below ThreadsPerChild 32
        r = h.post("/v1/users/register", {"username": "outage_user", "name": "Outage", "email": "outage@example.com",
                                          "password": "Zebra-Lamp-42"})
        self.assertEqual(r.status, 201, r)
        tok = h.post("/v1/users/login", {"email": "outage@example.com", "password": "Zebra-Lamp-42"}).json[
            "session"]["session_token"]
        auth = {"Authorization": "Bearer " + tok}
        stop = threading.Event()
        results = []  # (client, status or exception text)
        lock = threading.Lock()

        def client(i):
            while not stop.is_set():
                try:
                    status = h.get("/v1/users/profile", headers=auth, timeout=20).status
                except Exception as e:  # a timeout is a hang
                    status = "%s: %s" % (type(e).__name__, e)
                with lock:
                    results.append((i, status))

        with concurrent.futures.ThreadPoolExecutor(self.CLIENTS) as ex:
            futs = [ex.submit(client, i) for i in range(self.CLIENTS)]
            time.sleep(1.5)
            self.pg.restart(down=2.0)
            time.sleep(3.0)
            stop.set()
            for f in futs:
                f.result(timeout=60)
        bad = [r for r in results if r[1] not in (200, 503)]
        self.assertEqual(bad, [], "requests not answered with 200 or 503 (a hang times out): %s" % bad[:5])
        self.assertIn(503, [r[1] for r in results])  # the outage was seen
        # recovered, with no restart: every request succeeds again
        with concurrent.futures.ThreadPoolExecutor(self.CLIENTS) as ex:
            codes = list(ex.map(lambda i: h.get("/v1/users/profile", headers=auth, timeout=20).status, range(96)))
        self.assertEqual(codes, [200] * 96, codes)


if __name__ == "__main__":
    unittest.main()
