"""Faults under load (issue 16): the store restarted while 24 keep-alive clients send completions.

No request may hang (each is answered within its client timeout), requests succeed again after
the restart, every answered 200 took exactly one credit and left exactly one log row, and a stop
afterwards neither needs SIGKILL nor loses queued log rows. Each case prints its figures."""
import http.client
import json
import threading
import time
import unittest

import fakes
import pe_pg
from pe_harness import Httpd
from test_completions import BASE_CONF, UpstreamMixin, bearer, credit_day

CLIENTS = 24
CLIENT_TIMEOUT = 30


class Load:
    """CLIENTS keep-alive loops of chat completions, each prompt distinct (no cache hits)."""

    def __init__(self, port, key):
        self.port, self.key = port, key
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
                               "messages": [{"role": "user", "content": "fault %d-%d %f" % (i, n, time.time())}]})
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


if __name__ == "__main__":
    unittest.main()
