"""Faults under load (issue 16): the store restarted while 24 keep-alive clients send completions.

No request may hang (each is answered within its client timeout), requests succeed again after
the restart, every answered 200 took exactly one credit and left exactly one log row, and a stop
afterwards neither needs SIGKILL nor loses queued log rows. Each case prints its figures."""
import http.client
import json
import signal
import threading
import time
import unittest

import fakes
import pe_pg
from pe_harness import Httpd
from pe_harness import HttpdTestCase
from test_completions import BASE_CONF, Memcached, UpstreamMixin, bearer, credit_day

CLIENTS = 24
CLIENT_TIMEOUT = 30


class Load:
    """CLIENTS keep-alive loops of chat completions, each prompt distinct (no cache hits)."""

    def __init__(self, port, key, suffix=""):
        self.port, self.key, self.suffix = port, key, suffix
        self.stop_at = None
        self.codes = {}
        self.hangs = 0
        self.resets = 0
        self.lock = threading.Lock()
        self.running = True
        self.threads = [threading.Thread(target=self.loop, args=(i,)) for i in range(CLIENTS)]

    def loop(self, i):
        conn = None
        n = 0
        while self.running:
            n += 1
            body = json.dumps({"model": "gpt-4o-mini",
                               "messages": [{"role": "user",
                                             "content": "fault %d-%d %f %s" % (i, n, time.time(), self.suffix)}]})
            try:
                if conn is None:
                    conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=CLIENT_TIMEOUT)
                conn.request("POST", "/v1/chat/completions", body,
                             dict(bearer(self.key), **{"Content-Type": "application/json"}))
                r = conn.getresponse()
                r.read()
                with self.lock:
                    self.codes[r.status] = self.codes.get(r.status, 0) + 1
                if r.getheader("Connection", "").lower() == "close":
                    conn.close()
                    conn = None
            except TimeoutError:
                with self.lock:
                    self.hangs += 1
                conn.close()
                conn = None
            except (ConnectionError, http.client.HTTPException, OSError):
                # a keep-alive connection closed by the server between requests
                with self.lock:
                    self.resets += 1
                if conn:
                    conn.close()
                conn = None
                time.sleep(0.05)
        if conn:
            conn.close()

    def start(self):
        for t in self.threads:
            t.start()

    def stop(self):
        self.running = False
        for t in self.threads:
            t.join(CLIENT_TIMEOUT + 10)
        return not any(t.is_alive() for t in self.threads)


class StoreRestartMixin(UpstreamMixin):
    """PostgreSQL restarted (fast: every connection cut) in the middle of the load."""

    MPM = "event"
    DOWN = 0.5  # seconds the store stays down

    @classmethod
    def setUpClass(cls):
        cls.pg = pe_pg.PgCluster("pg-fault").start()
        cls.ENV = dict(cls.pg.env())
        try:
            super().setUpClass()
        except Exception:
            cls.pg.stop()
            raise

    @classmethod
    def tearDownClass(cls):
        try:
            super().tearDownClass()
        finally:
            cls.pg.stop()

    def test_restart_under_load(self):
        h = Httpd("fault-pg-" + self.MPM, mpm=self.MPM,
                  extra_conf=BASE_CONF + "DBDMin 1\nDBDKeep 4\nDBDMax 10\nPECache Off\n",
                  env=dict(self.ENV, PE_PREFORK_SERVERS="8"))
        h.start()
        self.httpd = h
        stopped = False
        try:
            uid, key = self.new_user(h)
            self.pg.query("UPDATE pe_users SET conv_limit = 1000000, conv_reset = 1000000, reset_day = %d "
                          "WHERE id = '%s'" % (credit_day(), uid))
            before = int(self.pg.query("SELECT conv_limit FROM pe_users WHERE id = '%s'" % uid))
            load = Load(h.port, key)
            load.start()
            time.sleep(3)
            self.pg.restart(down=self.DOWN)
            time.sleep(4)
            self.assertTrue(load.stop(), "client threads still waiting for an answer")
            # after recovery: no failure at all
            after = [self.chat_once(key, i) for i in range(20)]
            self.assertEqual(after, [200] * 20)
            ok = load.codes.get(200, 0) + 20
            stop = h.run("stop", check=False)
            stopped = True
            self.assertNotIn("killing", stop.stderr)
            taken = before - int(self.pg.query("SELECT conv_limit FROM pe_users WHERE id = '%s'" % uid))
            rows = int(self.pg.query("SELECT COUNT(*) FROM pe_message_logs WHERE user_id = '%s' AND status = 200"
                                     % uid))
            figures = {"test": "T-FAULT-PG-RESTART", "mpm": self.MPM, "down_s": self.DOWN, "answered": dict(load.codes),
                       "hangs": load.hangs, "resets": load.resets, "ok": ok, "credits_taken": taken,
                       "log_rows": rows}
            print(json.dumps(figures))
            self.assertEqual(load.hangs, 0, figures)
            self.assertEqual(taken, ok, figures)
            self.assertEqual(rows, ok, figures)
            self.assertTrue(set(load.codes) <= {200, 503}, figures)
        finally:
            if not stopped:
                h.stop()
        self.assertNotIn("PE44003", h.error_log())

    def chat_once(self, key, i):
        r = self.httpd.post("/v1/chat/completions",
                            {"model": "gpt-4o-mini",
                             "messages": [{"role": "user", "content": "after the restart %d %f" % (i, time.time())}]},
                            headers=bearer(key), timeout=CLIENT_TIMEOUT)
        return r.status


@unittest.skipUnless(pe_pg.available(), "PostgreSQL is not installed")
class StoreRestartEvent(StoreRestartMixin, unittest.TestCase):
    MPM = "event"


@unittest.skipUnless(pe_pg.available(), "PostgreSQL is not installed")
class StoreRestartPrefork(StoreRestartMixin, unittest.TestCase):
    MPM = "prefork"


@unittest.skipUnless(pe_pg.available(), "PostgreSQL is not installed")
class StoreStoppedEvent(StoreRestartMixin, unittest.TestCase):
    MPM = "event"
    DOWN = 5


@unittest.skipUnless(pe_pg.available(), "PostgreSQL is not installed")
class StoreStoppedPrefork(StoreRestartMixin, unittest.TestCase):
    MPM = "prefork"
    DOWN = 5


class SqliteFaultsMixin(UpstreamMixin):
    """Faults on the embedded store: graceful restarts, memcached killed or hung, the upstream
    failing or hanging, each under CLIENTS keep-alive clients; SQLite is the ledger."""

    EXTRA_CONF = BASE_CONF + "PECacheTimeout 200ms\n"
    # AH00161: 24 clients against prefork's 16 workers; AH03490: event's scoreboard during graceful
    ALLOWED_LOG_IDS = ("PE41004", "PE41012", "AH03490", "AH00161")

    @classmethod
    def setUpClass(cls):
        cls.mc = Memcached().start()
        cls.ENV = dict(cls.ENV, PE_MEMCACHED="127.0.0.1:%d" % cls.mc.port, PE_PREFORK_SERVERS="8")
        try:
            super().setUpClass()
        except Exception:
            cls.mc.stop()
            raise

    @classmethod
    def tearDownClass(cls):
        try:
            super().tearDownClass()
        finally:
            cls.mc.stop()

    def funded_user(self):
        uid, key = self.new_user()
        self.sqlite("UPDATE pe_users SET conv_limit = 1000000, conv_reset = 1000000, reset_day = ? WHERE id = ?",
                    (credit_day(), uid))
        return uid, key

    def credits(self, uid):
        return self.sqlite("SELECT conv_limit FROM pe_users WHERE id = ?", (uid,))[0][0]

    def log_rows(self, uid):
        deadline = time.time() + 10
        while True:
            n = self.sqlite("SELECT COUNT(*) FROM pe_message_logs WHERE user_id = ? AND status = 200", (uid,))[0][0]
            if time.time() > deadline:
                return n
            time.sleep(0.5)
            if n == self.sqlite("SELECT COUNT(*) FROM pe_message_logs WHERE user_id = ? AND status = 200",
                                (uid,))[0][0]:
                return n

    def run_load(self, name, during, suffix="", seconds=4, codes=(200,)):
        uid, key = self.funded_user()
        before = self.credits(uid)
        load = Load(self.httpd.port, key, suffix)
        load.start()
        time.sleep(1)
        during()
        time.sleep(seconds - 1)
        self.assertTrue(load.stop(), "client threads still waiting for an answer")
        ok = load.codes.get(200, 0)
        taken = before - self.credits(uid)
        rows = self.log_rows(uid)
        figures = {"test": name, "mpm": self.MPM, "answered": dict(load.codes), "hangs": load.hangs,
                   "resets": load.resets, "credits_taken": taken, "log_rows": rows}
        print(json.dumps(figures))
        self.assertEqual(load.hangs, 0, figures)
        self.assertTrue(set(load.codes) <= set(codes), figures)
        self.assertEqual(taken, ok, figures)
        self.assertEqual(rows, ok, figures)
        return load

    def test_graceful_restarts(self):
        def twice():
            self.httpd.graceful(wait=False)
            time.sleep(1)
            self.httpd.graceful(wait=False)
        self.run_load("T-FAULT-GRACEFUL", twice, seconds=5)

    def test_memcached_killed_and_hung(self):
        def kill():
            self.mc.signal(signal.SIGSTOP)
            time.sleep(1)
            self.mc.stop()
        self.run_load("T-FAULT-MEMCACHED", kill)
        self.mc.start()

    def test_upstream_failing(self):
        load = self.run_load("T-FAULT-UPSTREAM-500", lambda: None, suffix="[[fake:status=500]]", seconds=3,
                             codes=(502,))
        self.assertGreater(load.codes.get(502, 0), 0)

    def test_upstream_hanging(self):
        load = self.run_load("T-FAULT-UPSTREAM-HANG", lambda: None, suffix="[[fake:fault=hang;hang_ms=20000]]",
                             seconds=3, codes=(504,))
        self.assertGreater(load.codes.get(504, 0), 0)


class SqliteFaultsEvent(SqliteFaultsMixin, HttpdTestCase):
    MPM = "event"


class SqliteFaultsPrefork(SqliteFaultsMixin, HttpdTestCase):
    MPM = "prefork"


if __name__ == "__main__":
    unittest.main()
