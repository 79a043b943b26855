"""Completions (issue 4): both routes against the fake upstream (what reaches it, asserted from
its records), streaming, retries and timeouts, rights, credits (exact refund, daily reset, a
32-request race under prefork on SQLite and PostgreSQL), the per-user cache, and X-PE-Overhead-Ms."""
import concurrent.futures
import http.client
import json
import os
import socket
import time
import unittest

import fakes
import pe_pg
import pe_mongo
from pe_harness import Httpd, HttpdTestCase

PASSWORD = "Zebra-Lamp-42"
RTYPES = ("bpe", "bcot", "hcot", "react", "tot")
BASE_CONF = """PEArgon2Cost 1 1M 1
PEDefaultAccessRTypes bpe bcot hcot react tot custom
PEDefaultLevel ultra
PEDefaultConversationLimit 1000
PEUpstreamRetryBackoff 10ms
PEUpstreamRetryMaxWait 3s
PEUpstreamTimeout 1500ms
PEMessageLogInterval 100ms
PESystemPromptRefresh 0
"""


def bearer(key):
    return {"Authorization": "Bearer " + key}


def credit_day(hour=0):
    return int((time.time() - hour * 3600) // 86400)


class UpstreamMixin:
    """One fake upstream per class, its URL in the instance's environment."""

    @classmethod
    def setUpClass(cls):
        cls.up = fakes.start_upstream()
        cls.ENV = dict(cls.ENV, PE_UPSTREAM_URL=cls.up.chat_url)
        try:
            super().setUpClass()
        except Exception:
            cls.up.stop()
            raise

    @classmethod
    def tearDownClass(cls):
        try:
            super().tearDownClass()
        finally:
            cls.up.stop()

    n = 0

    def new_user(self, httpd=None):
        """Register a user through the API; returns (id, api key)."""
        h = httpd or self.httpd
        UpstreamMixin.n += 1
        name = "cpl%d_%d" % (os.getpid(), UpstreamMixin.n)
        r = h.post("/v1/users/register", {"username": name, "name": "Completion User", "email": name + "@example.com",
                                          "password": PASSWORD})
        self.assertEqual(r.status, 201, r)
        return r.json["user_id"], r.json["api_key"]

    def sqlite(self, q, args=(), httpd=None):
        return (httpd or self.httpd).sqlite(q, args)

    def prompt(self, key, body, headers=None, timeout=30):
        return self.httpd.post("/v1/prompt/completions", body, headers=dict(bearer(key), **(headers or {})),
                               timeout=timeout)

    def chat(self, key, body, headers=None, timeout=30):
        return self.httpd.post("/v1/chat/completions", body, headers=dict(bearer(key), **(headers or {})),
                               timeout=timeout)

    def assertOpenAIError(self, resp, status, code, etype=None):
        """OpenAI's error shape: {"error": {"message", "type", "code", "param", ...}} and nothing else."""
        self.assertEqual(resp.status, status, resp)
        self.assertTrue(resp.header("Content-Type").startswith("application/json"), resp.headers)
        j = resp.json
        self.assertEqual(list(j), ["error"], j)
        e = j["error"]
        for k in ("message", "type", "code", "param"):
            self.assertIn(k, e)
        self.assertIsInstance(e["message"], str)
        self.assertTrue(e["message"])
        self.assertEqual(e["code"], code, e)
        if etype:
            self.assertEqual(e["type"], etype, e)
        self.assertEqual(e["request_id"], resp.header("X-Request-ID"))
        return e

    def upstream_since(self, seq):
        return [r for r in self.up.requests(since=seq) if r["path"].endswith("/chat/completions")]

    def last_seq(self):
        return self.up.control("GET", "requests?limit=1")["last_seq"]


class Completions(UpstreamMixin, HttpdTestCase):
    EXTRA_CONF = BASE_CONF
    # upstream failures these tests provoke are logged as errors (PE41004)
    ALLOWED_LOG_IDS = ("PE41004", "PE41012")

    def conv_limit(self, uid):
        return self.sqlite("SELECT conv_limit FROM pe_users WHERE id = ?", (uid,))[0][0]

    def test_each_rtype_reaches_upstream(self):
        uid, key = self.new_user()
        prompts = {}
        for rt in RTYPES:
            seq = self.last_seq()
            msgs = [{"role": "system", "content": "client system text"},
                    {"role": "user", "content": "Explain tides %s  <script>keep</script>\n" % rt}]
            r = self.prompt(key, {"level": "low", "r_type": rt, "messages": msgs})
            self.assertEqual(r.status, 200, r)
            got = self.upstream_since(seq)
            self.assertEqual(len(got), 1)
            sent = got[0]["json"]
            self.assertEqual(sent["model"], "gpt-4o-mini")
            self.assertEqual(sent["temperature"], 0.7)
            roles = [m["role"] for m in sent["messages"]]
            self.assertEqual(roles, ["system", "user"], rt)  # the client's system message is dropped
            self.assertNotIn("client system text", sent["messages"][0]["content"])
            self.assertGreater(len(sent["messages"][0]["content"]), 200)
            # the user's text arrives unchanged (no "sanitising")
            self.assertEqual(sent["messages"][1]["content"], msgs[1]["content"])
            self.assertNotIn("stream", sent)
            prompts[rt] = sent["messages"][0]["content"]
        self.assertEqual(len(set(prompts.values())), len(RTYPES))  # each style has its own prompt
        self.assertIn("prompt", prompts["bpe"].lower())
        # without r_type the client's system message is kept and nothing is added
        seq = self.last_seq()
        r = self.prompt(key, {"level": "low", "messages": [{"role": "system", "content": "be brief"},
                                                             {"role": "user", "content": "hi"}]})
        self.assertEqual(r.status, 200, r)
        sent = self.upstream_since(seq)[0]["json"]
        self.assertEqual(sent["messages"], [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}])

    def test_stored_system_prompts(self):
        # custom is 422 until an administrator stores its text; a stored override of a built-in
        # replaces it; both are read again after PESystemPromptRefresh (0 here: every request).
        uid, key = self.new_user()
        self.assertEnvelope(self.prompt(key, {"level": "low", "r_type": "custom", "prompt": "x"}), 422)
        now = int(time.time() * 1e6)
        self.sqlite_write("INSERT INTO pe_system_prompts (r_type, prompt, updated_by, updated_at) VALUES (?, ?, ?, ?)",
                          ("custom", "You answer as a terse pirate.", "test", now))
        self.sqlite_write("INSERT INTO pe_system_prompts (r_type, prompt, updated_by, updated_at) VALUES (?, ?, ?, ?)",
                          ("tot", "Stored tree-of-thoughts override.", "test", now))
        for rt, want in (("custom", "You answer as a terse pirate."), ("tot", "Stored tree-of-thoughts override.")):
            seq = self.last_seq()
            r = self.prompt(key, {"level": "low", "r_type": rt, "prompt": "tides?"})
            self.assertEqual(r.status, 200, r)
            sent = self.upstream_since(seq)[0]["json"]
            self.assertEqual(sent["messages"][0], {"role": "system", "content": want})
            self.assertEqual(sent["messages"][1]["content"], "tides?")
        self.sqlite_write("DELETE FROM pe_system_prompts", ())
        seq = self.last_seq()
        self.assertEqual(self.prompt(key, {"level": "low", "r_type": "tot", "prompt": "tides?"}).status, 200)
        self.assertNotEqual(self.upstream_since(seq)[0]["json"]["messages"][0]["content"],
                            "Stored tree-of-thoughts override.")

    def sqlite_write(self, q, args):
        self.httpd.sqlite(q, args)

    def test_levels_and_reasoning_models(self):
        uid, key = self.new_user()
        expect = {"low": "gpt-4o-mini", "medium": "gpt-4o", "high": "o3-mini", "ultra": "gpt-5"}
        for level, model in expect.items():
            seq = self.last_seq()
            r = self.prompt(key, {"level": level, "prompt": "hello", "max_tokens": 50, "top_p": 0.5})
            self.assertEqual(r.status, 200, r)
            sent = self.upstream_since(seq)[0]["json"]
            self.assertEqual(sent["model"], model)
            if level in ("high", "ultra"):  # reasoning models: no sampling fields
                self.assertNotIn("temperature", sent)
                self.assertNotIn("top_p", sent)
                self.assertEqual(sent["max_completion_tokens"], 50)
                self.assertNotIn("max_tokens", sent)
            else:
                self.assertEqual(sent["temperature"], 0.7)
                self.assertEqual(sent["top_p"], 0.5)
                self.assertEqual(sent["max_tokens"], 50)

    def test_sdk_shaped_request(self):
        uid, key = self.new_user()
        seq = self.last_seq()
        body = {"model": "gpt-4o-mini", "messages": [{"role": "system", "content": "You are terse."},
                                                       {"role": "user", "content": "Say hi"}],
                "temperature": 0.2, "max_tokens": 20, "n": 1, "user": "end-user-7", "stream": False}
        r = self.chat(key, body, headers={"User-Agent": "OpenAI/Python 1.40.0", "OpenAI-Beta": "x"})
        self.assertEqual(r.status, 200, r)
        j = r.json
        self.assertEqual(j["object"], "chat.completion")
        self.assertTrue(j["id"].startswith("chatcmpl-"))
        self.assertEqual(j["choices"][0]["message"]["role"], "assistant")
        self.assertIn("usage", j)
        self.assertEqual(j["system_fingerprint"], "fp_fake")  # unknown fields pass through
        self.assertIn("logprobs", j["choices"][0])
        sent = self.upstream_since(seq)[0]
        self.assertEqual(sent["json"]["messages"], body["messages"])  # plain proxy: nothing added
        self.assertNotIn("user", sent["json"])
        self.assertEqual(sent["json"]["temperature"], 0.2)
        # our key is not forwarded; the upstream sees no client Authorization
        self.assertNotIn(key, json.dumps(sent["headers"]))
        # the enhancement through the pe object, and through X-PE-RType
        seq = self.last_seq()
        r = self.chat(key, dict(body, pe={"r_type": "tot"}))
        self.assertEqual(r.status, 200, r)
        tot = self.upstream_since(seq)[0]["json"]["messages"]
        self.assertEqual([m["role"] for m in tot], ["system", "user"])
        self.assertNotEqual(tot[0]["content"], "You are terse.")
        # the header makes the same upstream request: served from this user's cache entry
        r = self.chat(key, body, headers={"X-PE-RType": "tot"})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.header("X-PE-Cache"), "hit")
        seq = self.last_seq()
        r = self.chat(key, dict(body, max_tokens=21), headers={"X-PE-RType": "tot"})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(self.upstream_since(seq)[0]["json"]["messages"], tot)
        self.assertOpenAIError(self.chat(key, body, headers={"X-PE-RType": "nope"}), 422, "VALIDATION_ERROR")
        self.assertOpenAIError(self.chat(key, dict(body, model="gpt-3")), 422, "VALIDATION_ERROR")

    def test_models(self):
        uid, key = self.new_user()
        r = self.httpd.get("/v1/models", headers=bearer(key))
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json["object"], "list")
        self.assertEqual([m["id"] for m in r.json["data"]], ["gpt-4o-mini", "gpt-4o", "o3-mini", "gpt-5"])
        self.sqlite("UPDATE pe_users SET level = 'medium' WHERE id = ?", (uid,))
        r = self.httpd.get("/v1/models", headers=bearer(key))
        self.assertEqual([m["id"] for m in r.json["data"]], ["gpt-4o-mini", "gpt-4o"])

    def test_rights_and_validation(self):
        uid, key = self.new_user()
        self.sqlite("UPDATE pe_users SET level = 'low', access_rtype = 'bpe' WHERE id = ?", (uid,))
        before = self.conv_limit(uid)
        j = self.assertEnvelope(self.prompt(key, {"level": "high", "prompt": "x"}), 403, "LEVEL_NOT_ALLOWED")
        self.assertIn("high", j["message"])
        j = self.assertEnvelope(self.prompt(key, {"level": "low", "r_type": "hcot", "prompt": "x"}), 403,
                                "RTYPE_NOT_ALLOWED")
        self.assertIn("hcot", j["message"])
        self.assertOpenAIError(self.chat(key, {"model": "o3-mini", "messages": [{"role": "user", "content": "x"}]}),
                            403, "LEVEL_NOT_ALLOWED")
        self.assertEqual(self.prompt(key, {"level": "low", "r_type": "bpe", "prompt": "x"}).status, 200)
        self.assertEnvelope(self.prompt(key, {"prompt": "x"}), 422, "VALIDATION_ERROR")
        self.assertEnvelope(self.prompt(key, {"level": "low", "messages": []}), 400, "BAD_REQUEST")
        self.assertEnvelope(self.prompt(key, {"level": "low", "r_type": "custom2", "prompt": "x"}), 422)
        self.assertEnvelope(self.httpd.post("/v1/prompt/completions", {"level": "low", "prompt": "x"}), 401)
        self.assertEnvelope(self.prompt("pe-" + "x" * 32, {"level": "low", "prompt": "x"}), 401, "INVALID_API_KEY")
        # a session token is not an API key
        r = self.httpd.post("/v1/users/login", {"email": self.sqlite("SELECT email FROM pe_users WHERE id = ?",
                                                                     (uid,))[0][0], "password": PASSWORD})
        self.assertEqual(r.status, 200, r)
        self.assertEnvelope(self.prompt(r.json["session"]["session_token"], {"level": "low", "prompt": "x"}), 401,
                            "API_KEY_REQUIRED")
        # X-API-Key takes API keys only: a session token there is refused and counted
        tok = r.json["session"]["session_token"]
        j = self.assertEnvelope(self.httpd.post("/v1/prompt/completions", {"level": "low", "prompt": "x"},
                                                headers={"X-API-Key": tok}), 401, "INVALID_API_KEY")
        self.assertIn("X-API-Key takes an API key", j["message"])
        self.assertEnvelope(self.httpd.get("/v1/users/profile", headers={"X-API-Key": tok}), 401, "INVALID_API_KEY")
        self.assertEqual(self.httpd.get("/v1/users/profile", headers=bearer(tok)).status, 200)
        # the prompt route is strict about fields; the OpenAI-compatible route ignores new ones
        j = self.assertEnvelope(self.prompt(key, {"level": "low", "prompt": "x", "temprature": 0.1}), 422,
                                "VALIDATION_ERROR")
        self.assertIn("unknown field 'temprature'", j["message"])
        self.assertEnvelope(self.prompt(key, {"level": "low", "prompt": "x", "model": "gpt-4o"}), 422,
                            "VALIDATION_ERROR")
        # only the one successful completion cost a credit
        self.assertEqual(self.conv_limit(uid), before - 1)
        seq = self.last_seq()
        r = self.chat(key, {"model": "low", "messages": [{"role": "user", "content": "x"}],
                            "some_future_openai_field": {"a": 1}}, headers={"X-API-Key": key})
        self.assertEqual(r.status, 200, r)
        self.assertNotIn("some_future_openai_field", self.upstream_since(seq)[0]["json"])

    def test_stream_arrives_in_pieces(self):
        uid, key = self.new_user()
        body = {"model": "gpt-4o-mini", "stream": True,
                "messages": [{"role": "user", "content": "one two three four five [[fake:stream_delay_ms=250]]"}]}
        conn = http.client.HTTPConnection("127.0.0.1", self.httpd.port, timeout=30)
        t0 = time.monotonic()
        conn.request("POST", "/v1/chat/completions", json.dumps(body),
                     dict(bearer(key), **{"Content-Type": "application/json"}))
        resp = conn.getresponse()
        self.assertEqual(resp.status, 200)
        self.assertTrue(resp.getheader("Content-Type").startswith("text/event-stream"))
        self.assertEqual(resp.getheader("X-Accel-Buffering"), "no")
        self.assertIsNotNone(resp.getheader("X-PE-Overhead-Ms"))
        arrivals, events, buf = [], [], b""
        while True:
            chunk = resp.read1(65536)
            if not chunk:
                break
            buf += chunk
            while b"\n\n" in buf:
                ev, buf = buf.split(b"\n\n", 1)
                arrivals.append(time.monotonic() - t0)
                events.append(ev.decode())
        conn.close()
        self.assertGreaterEqual(len(events), 6, events)
        self.assertEqual(events[-1], "data: [DONE]")
        # the first event came long before the upstream finished
        self.assertGreater(arrivals[-1] - arrivals[0], 1.0, arrivals)
        chunks = [json.loads(e[6:]) for e in events[:-1]]
        text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
        self.assertIn("fake-upstream reply", text)
        # the client did not ask for usage: no usage-only chunk reaches it, but we asked upstream
        self.assertTrue(all(c["choices"] for c in chunks))
        sent = self.up.last_request()["json"]
        self.assertEqual(sent["stream_options"], {"include_usage": True})
        # the conversation log has the streamed text and the tokens from the usage chunk
        rows = self.wait_log_rows(uid, 1)
        self.assertGreater(rows[0][1], 0)
        self.assertEqual(rows[0][0], text)

    def wait_log_rows(self, uid, n, timeout=5):
        deadline = time.time() + timeout
        while True:
            rows = self.sqlite("SELECT response, tokens_used, status, model FROM pe_message_logs WHERE user_id = ?",
                               (uid,))
            if len(rows) >= n or time.time() > deadline:
                return rows
            time.sleep(0.1)

    def test_stream_with_usage_for_client(self):
        uid, key = self.new_user()
        r = self.chat(key, {"model": "gpt-4o-mini", "stream": True, "stream_options": {"include_usage": True},
                            "messages": [{"role": "user", "content": "count"}]})
        self.assertEqual(r.status, 200)
        events = [e for e in r.body.decode().split("\n\n") if e]
        usage = [json.loads(e[6:]) for e in events[:-1] if json.loads(e[6:]).get("usage")]
        self.assertEqual(len(usage), 1)
        self.assertEqual(usage[0]["choices"], [])

    def test_stream_client_gone_stops_upstream(self):
        uid, key = self.new_user()
        seq = self.last_seq()
        words = " ".join("w%d" % i for i in range(60))
        body = {"model": "gpt-4o-mini", "stream": True,
                "messages": [{"role": "user", "content": words + " [[fake:stream_delay_ms=100]]"}]}
        s = socket.create_connection(("127.0.0.1", self.httpd.port), timeout=10)
        data = json.dumps(body).encode()
        s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Authorization: Bearer " + key.encode() + b"\r\nContent-Length: " + str(len(data)).encode() +
                  b"\r\n\r\n" + data)
        got = b""
        while got.count(b"data: ") < 2:
            got += s.recv(65536)
        s.close()
        t_close = time.time()
        deadline = time.time() + 5
        rec = None
        while time.time() < deadline:
            rec = self.upstream_since(seq)[0]
            if rec["stream"] and rec["stream"]["client_gone_at"]:
                break
            time.sleep(0.1)
        self.assertFalse(rec["stream"]["completed"], rec["stream"])
        self.assertIsNotNone(rec["stream"]["client_gone_at"])
        self.assertLess(rec["stream"]["client_gone_at"] - t_close, 2.0)
        self.assertLess(rec["stream"]["events_sent"], 40)

    def test_retry_on_500_then_success(self):
        uid, key = self.new_user()
        seq = self.last_seq()
        self.up.fail(count=1, status=500)
        r = self.prompt(key, {"level": "low", "prompt": "retry me"})
        self.assertEqual(r.status, 200, r)
        got = self.upstream_since(seq)
        self.assertEqual([g["status"] for g in got], [500, 200])

    def test_retry_honours_retry_after(self):
        uid, key = self.new_user()
        self.up.fail(count=1, status=429, retry_after="1")
        t0 = time.monotonic()
        r = self.prompt(key, {"level": "low", "prompt": "wait for me"})
        self.assertEqual(r.status, 200, r)
        self.assertGreaterEqual(time.monotonic() - t0, 0.9)

    def test_502_refunds_exactly_once(self):
        uid, key = self.new_user()
        before = self.conv_limit(uid)
        seq = self.last_seq()
        self.up.fail(count=3, status=500)
        j = self.assertEnvelope(self.prompt(key, {"level": "low", "prompt": "fail me"}), 502, "UPSTREAM_ERROR")
        self.assertEqual(j["details"]["upstream_status"], 500)
        self.assertEqual(j["details"]["upstream_attempts"], 3)
        self.assertEqual(len(self.upstream_since(seq)), 3)
        self.assertEqual(self.conv_limit(uid), before)
        # a 400 from the upstream is not retried, and refunded too
        seq = self.last_seq()
        self.up.fail(count=1, status=400)
        self.assertEnvelope(self.prompt(key, {"level": "low", "prompt": "bad"}), 502, "UPSTREAM_ERROR")
        self.assertEqual(len(self.upstream_since(seq)), 1)
        self.assertEqual(self.conv_limit(uid), before)
        # network faults are retried; all failing: 502 and refunded
        # (curl itself may retry a reused connection that died, so queue more faults than attempts)
        self.up.fail(count=20, fault="reset")
        self.assertEnvelope(self.prompt(key, {"level": "low", "prompt": "reset"}), 502, "UPSTREAM_ERROR")
        self.up.clear_faults()
        self.assertEqual(self.conv_limit(uid), before)
        self.up.fail(count=1, fault="invalid_json")
        self.assertEnvelope(self.prompt(key, {"level": "low", "prompt": "garbage"}), 502, "UPSTREAM_INVALID")
        self.assertEqual(self.conv_limit(uid), before)
        self.assertEqual(self.prompt(key, {"level": "low", "prompt": "fine"}).status, 200)
        self.assertEqual(self.conv_limit(uid), before - 1)

    def test_504_on_timeout(self):
        uid, key = self.new_user()
        before = self.conv_limit(uid)
        t0 = time.monotonic()
        r = self.prompt(key, {"level": "low", "prompt": "slow [[fake:delay_ms=4000]]"})
        took = time.monotonic() - t0
        self.assertEnvelope(r, 504, "UPSTREAM_TIMEOUT")
        self.assertLess(took, 3.0)
        self.assertIsNotNone(r.header("X-PE-Overhead-Ms"))
        self.assertEqual(self.conv_limit(uid), before)

    def test_credits_exhausted_and_daily_reset_once(self):
        uid, key = self.new_user()
        today = credit_day()
        self.sqlite("UPDATE pe_users SET conv_limit = 0, conv_reset = 3, reset_day = ? WHERE id = ?", (today, uid))
        j = self.assertEnvelope(self.prompt(key, {"level": "low", "prompt": "x"}), 429, "CREDITS_EXHAUSTED")
        self.assertEqual(j["message"], "Insufficient conversation credits")
        self.assertEqual(j["details"]["limits"]["conversation_limit"], 0)
        self.assertEqual(j["details"]["limits"]["reset"], 3)
        self.assertTrue(j["details"]["limits"]["resets_at"].endswith("Z"))
        # yesterday's reset day: the first request of today resets to 3, once
        self.sqlite("UPDATE pe_users SET reset_day = ? WHERE id = ?", (today - 1, uid))
        codes = [self.prompt(key, {"level": "low", "prompt": "r%d" % i}).status for i in range(5)]
        self.assertEqual(codes, [200, 200, 200, 429, 429])
        self.assertEqual(self.sqlite("SELECT conv_limit, reset_day FROM pe_users WHERE id = ?", (uid,)),
                         [(0, today)])

    def test_cache_per_user(self):
        uid, key = self.new_user()
        uid2, key2 = self.new_user()
        seq = self.last_seq()
        body = {"level": "low", "r_type": "bcot", "prompt": "cache me %d" % time.time()}
        a = self.prompt(key, body)
        b = self.prompt(key, body)
        self.assertEqual((a.status, b.status), (200, 200))
        self.assertEqual(a.header("X-PE-Cache"), "miss")
        self.assertEqual(b.header("X-PE-Cache"), "hit")
        self.assertEqual(a.body, b.body)
        self.assertEqual(len(self.upstream_since(seq)), 1)
        # field order does not matter; another field does
        c = self.prompt(key, {"prompt": body["prompt"], "r_type": "bcot", "level": "low"})
        self.assertEqual(c.header("X-PE-Cache"), "hit")
        d = self.prompt(key, dict(body, temperature=0.1))
        self.assertEqual(d.header("X-PE-Cache"), "miss")
        # another user's identical request is not served from the first user's entry
        e = self.prompt(key2, body)
        self.assertEqual(e.header("X-PE-Cache"), "miss")
        self.assertNotEqual(e.json["id"], a.json["id"])
        # a hit still costs a credit and is logged, with the answer's text and tokens (kept with
        # the cached body, so a hit does not parse it): the two hits log what the miss logged
        self.assertEqual(self.conv_limit(uid), 1000 - 4)
        rows = self.wait_log_rows(uid, 4)
        self.assertEqual(len(rows), 4)
        for response, tokens, _, _ in rows:
            self.assertTrue(response, rows)
            self.assertGreater(tokens, 0, rows)
        answer = a.json["choices"][0]["message"]["content"]
        self.assertGreaterEqual(sum(1 for row in rows if row[0] == answer and row[1] == a.json["usage"]["total_tokens"]),
                                3, rows)

    def test_overhead_header_everywhere(self):
        uid, key = self.new_user()
        for r in (self.prompt(key, {"level": "low", "prompt": "o1"}),
                  self.prompt(key, {"level": "low"}),
                  self.chat(key, {"model": "low", "messages": [{"role": "user", "content": "o2"}]})):
            v = r.header("X-PE-Overhead-Ms")
            self.assertIsNotNone(v, r)
            self.assertGreaterEqual(float(v), 0.0)
            self.assertLess(float(v), 1000.0)



class Memcached:
    """A memcached on a free loopback port, run in the foreground and stopped by pid."""

    def __init__(self, port=None):
        from pe_harness import free_port
        self.port = port or free_port()
        self.proc = None

    def start(self):
        import subprocess
        args = ["memcached", "-l", "127.0.0.1", "-p", str(self.port), "-U", "0", "-m", "16"]
        if os.geteuid() == 0:
            args += ["-u", "root"]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 5
        while time.time() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("memcached did not start")

    def command(self, cmd):
        """Send one command on a new connection; its reply up to END."""
        s = socket.create_connection(("127.0.0.1", self.port), timeout=2)
        try:
            s.sendall(cmd)
            buf = b""
            while not buf.endswith(b"END\r\n"):
                buf += s.recv(65536)
        finally:
            s.close()
        return buf.decode()

    def stats(self):
        out = {}
        for line in self.command(b"stats\r\n").splitlines():
            parts = line.split()
            if len(parts) == 3 and parts[0] == "STAT":
                out[parts[1]] = parts[2]
        return out

    def keys(self):
        """The keys memcached holds (lru_crawler metadump)."""
        from urllib.parse import unquote
        lines = self.command(b"lru_crawler metadump all\r\n").splitlines()
        return {unquote(w[4:]) for line in lines for w in line.split()[:1] if w.startswith("key=")}

    def signal(self, sig):
        os.kill(self.proc.pid, sig)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            import signal as sg
            try:
                os.kill(self.proc.pid, sg.SIGCONT)
            except OSError:
                pass
            self.proc.kill()
            self.proc.wait(5)


class MemcachedMixin:
    """A memcached per class (cls.mc), started before the httpd (PE_MEMCACHED) and stopped after
    it, also when the httpd does not start."""

    @classmethod
    def setUpClass(cls):
        cls.mc = Memcached().start()
        cls.ENV = dict(cls.ENV, PE_MEMCACHED="127.0.0.1:%d" % cls.mc.port)
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


class CacheMemcached(MemcachedMixin, UpstreamMixin, HttpdTestCase):
    """The cache through memcached: hit and miss, memcached killed mid-run (requests keep
    succeeding on the shared-memory tier), memcached hung by SIGSTOP (no request waits longer than
    PECacheTimeout for it)."""

    EXTRA_CONF = BASE_CONF + "PECacheTimeout 200ms\n"
    # memcache client notices (server down / up again) are expected here
    ALLOWED_LOG_IDS = ("PE43001", "PE43003")


    def test_a_hit_and_miss_in_memcached(self):
        uid, key = self.new_user()
        # the node's first lookup reads (and here, on a fresh memcached, writes) the cache generation
        self.prompt(key, {"level": "low", "prompt": "warm-up %f" % time.time()})
        keys0 = self.mc.keys()
        before = self.mc.stats()
        body = {"level": "low", "prompt": "memcached %f" % time.time()}
        a = self.prompt(key, body)
        stored = [k for k in self.mc.keys() - keys0 if k.startswith("pe:v1:response:")]
        mid = self.mc.stats()
        b = self.prompt(key, body)
        after = self.mc.stats()
        self.assertEqual((a.header("X-PE-Cache"), b.header("X-PE-Cache")), ("miss", "hit"))
        self.assertEqual(a.body, b.body)
        self.assertEqual(int(after["cmd_set"]) - int(before["cmd_set"]), 1)
        self.assertEqual(len(stored), 1)
        # every lookup reads the answer and the generation (another node's clear is seen at once):
        # the miss finds the generation only, the hit both
        self.assertEqual(int(after["get_hits"]) - int(before["get_hits"]), 3)
        self.assertEqual(int(after["get_misses"]) - int(before["get_misses"]), 1)
        self.assertEqual(int(after["cmd_get"]) - int(mid["cmd_get"]), 2)
        # memcached counts keys, not requests (cmd_get is 2 for one "get a b" as for "get a" and
        # "get b"), so the round trip is told by the bytes it read during the hit: exactly one
        # "get <answer> <generation>" line, besides the "stats" command that reads the counters
        line = "get %s pe:v1:cache-generation\r\n" % stored[0]
        self.assertEqual(int(after["bytes_read"]) - int(mid["bytes_read"]), len("stats\r\n") + len(line))

    def test_b_sigstop_is_bounded(self):
        import signal as sg
        uid, key = self.new_user()
        self.mc.signal(sg.SIGSTOP)
        try:
            times, codes = [], []
            for i in range(6):
                t0 = time.monotonic()
                r = self.prompt(key, {"level": "low", "prompt": "hung %d %f" % (i % 2, time.time() if i < 2 else 0)})
                times.append(time.monotonic() - t0)
                codes.append(r.status)
            self.assertEqual(codes, [200] * 6)
            # a get and a set may each wait for the timeout (200 ms); nothing waits longer
            self.assertLess(max(times), 1.0, times)
        finally:
            self.mc.signal(sg.SIGCONT)
        print(json.dumps({"test": "T-MC-02", "max_request_s": round(max(times), 3), "timeout_s": 0.2}))

    def test_c_killed_mid_run(self):
        uid, key = self.new_user()
        codes, states = [], []
        body = {"level": "low", "prompt": "killed %f" % time.time()}
        self.assertEqual(self.prompt(key, body).status, 200)
        self.mc.stop()
        for i in range(8):
            r = self.prompt(key, body if i % 2 else dict(body, prompt="killed other %d" % i))
            codes.append(r.status)
            states.append(r.header("X-PE-Cache"))
        self.assertEqual(codes, [200] * 8)
        # with memcached gone the shared-memory tier serves repeats
        r1 = self.prompt(key, {"level": "low", "prompt": "after kill"})
        r2 = self.prompt(key, {"level": "low", "prompt": "after kill"})
        self.assertEqual((r1.status, r2.status), (200, 200))
        self.assertEqual(r2.header("X-PE-Cache"), "hit")
        # and memcached coming back is used again after its retry period
        CacheMemcached.mc = Memcached(self.mc.port).start()
        deadline = time.time() + 15
        used = False
        while time.time() < deadline and not used:
            self.prompt(key, {"level": "low", "prompt": "back %f" % time.time()})
            used = int(self.mc.stats()["cmd_set"]) > 0
            time.sleep(0.5)
        self.assertTrue(used)

class CreditsRaceMixin(UpstreamMixin):
    """32 parallel requests, one connection each, several prefork children (or event threads, or
    two httpds on one store); 31 credits: exactly 31 succeed."""

    MPM = "prefork"
    NODES = 1  # 2: a second httpd on the same store takes every other request

    def set_credits(self, uid, n):
        raise NotImplementedError

    def get_credits(self, uid):
        raise NotImplementedError

    def test_32_parallel_31_credits(self):
        ports = [self.httpd.port]
        other = None
        if self.NODES == 2:
            other = Httpd(self.__class__.__name__.lower() + "-node2", mpm=self.MPM, extra_conf=self.EXTRA_CONF,
                          env=self.ENV).start_node_of(self.httpd)
            ports.append(other.port)
        try:
            self.race(ports)
        finally:
            if other:
                other.stop()
        if other:
            self.assertEqual(other.log_problems(), [])

    def race(self, ports):
        uid, key = self.new_user()
        self.set_credits(uid, 31)
        body = json.dumps({"level": "low", "prompt": "race [[fake:delay_ms=50]]"})

        def one(i):
            conn = http.client.HTTPConnection("127.0.0.1", ports[i % len(ports)], timeout=60)
            try:
                conn.request("POST", "/v1/prompt/completions", body,
                             dict(bearer(key), **{"Content-Type": "application/json", "Connection": "close"}))
                r = conn.getresponse()
                r.read()
                return r.status
            finally:
                conn.close()

        with concurrent.futures.ThreadPoolExecutor(32) as ex:
            codes = list(ex.map(one, range(32)))
        self.assertEqual(codes.count(200), 31, codes)
        self.assertEqual(codes.count(429), 1, codes)
        self.assertEqual(self.get_credits(uid), 0)
        print(json.dumps({"test": "T-CR-01", "driver": self.DRIVER, "mpm": self.MPM, "nodes": len(ports),
                          "successes": codes.count(200),
                          "rejections": codes.count(429), "credits_oversold": max(0, codes.count(200) - 31)}))


class CreditsRaceSqlite(CreditsRaceMixin, HttpdTestCase):
    DRIVER = "sqlite3"
    EXTRA_CONF = BASE_CONF + "KeepAlive Off\n"
    ENV = {"PE_PREFORK_SERVERS": "6"}

    def set_credits(self, uid, n):
        self.sqlite("UPDATE pe_users SET conv_limit = ?, conv_reset = ?, reset_day = ? WHERE id = ?",
                    (n, n, credit_day(), uid))

    def get_credits(self, uid):
        return self.sqlite("SELECT conv_limit FROM pe_users WHERE id = ?", (uid,))[0][0]


@unittest.skipUnless(pe_pg.available(), "PostgreSQL is not installed")
class CreditsRacePostgres(pe_pg.PostgresClass, CreditsRaceMixin, HttpdTestCase):
    DRIVER = "pgsql"
    EXTRA_CONF = BASE_CONF + "KeepAlive Off\nDBDMin 1\nDBDKeep 2\nDBDMax 4\n"
    ENV = {"PE_PREFORK_SERVERS": "6"}

    PG_NAME = "pg-credits"

    def set_credits(self, uid, n):
        self.pg.query("UPDATE pe_users SET conv_limit = %d, conv_reset = %d, reset_day = %d WHERE id = '%s'"
                      % (n, n, credit_day(), uid))

    def get_credits(self, uid):
        return int(self.pg.query("SELECT conv_limit FROM pe_users WHERE id = '%s'" % uid))


class CreditsRaceSqliteEvent(CreditsRaceSqlite):
    MPM = "event"


@unittest.skipUnless(pe_pg.available(), "PostgreSQL is not installed")
class CreditsRacePostgresEvent(CreditsRacePostgres):
    MPM = "event"
    PG_NAME = "pg-credits-event"


@unittest.skipUnless(pe_pg.available(), "PostgreSQL is not installed")
class CreditsRacePostgresTwoNodes(CreditsRacePostgres):
    """Two prefork httpds on one PostgreSQL, the requests alternating between them."""
    NODES = 2
    PG_NAME = "pg-credits-nodes"


@unittest.skipUnless(pe_mongo.available(), "no MongoDB server (node and the stand-in, or PE_TEST_MONGODB_URI)")
class CompletionsMongo(pe_mongo.MongoClass, Completions):
    MONGO_NAME = "mongo-completions"


@unittest.skipUnless(pe_mongo.available(), "no MongoDB server (node and the stand-in, or PE_TEST_MONGODB_URI)")
class CreditsRaceMongo(pe_mongo.MongoClass, CreditsRaceSqlite):
    DRIVER = "mongodb"
    MONGO_NAME = "mongo-credits"


@unittest.skipUnless(pe_mongo.available(), "no MongoDB server (node and the stand-in, or PE_TEST_MONGODB_URI)")
class CreditsRaceMongoTwoNodes(CreditsRaceMongo):
    """Two event httpds on one MongoDB, the requests alternating between them."""
    MPM = "event"
    NODES = 2
    MONGO_NAME = "mongo-credits-nodes"


class MessageLogDurability(UpstreamMixin, unittest.TestCase):
    """N completions, `-k graceful`, M more, `-k stop`: exactly N + M rows, none lost or doubled.
    The interval and batch are large so only the flushes at child exit can write them."""

    ENV = {}

    def run_case(self, mpm):
        h = Httpd("msglog-" + mpm, mpm=mpm, extra_conf=BASE_CONF + "PEMessageLogInterval 60s\nPEMessageLogBatch 1000\n",
                  env=dict(self.ENV, PE_PREFORK_SERVERS="3"))
        h.start()
        try:
            uid, key = self.new_user(h)
            self.httpd = h
            n, m = 24, 9
            for i in range(n):
                self.assertEqual(self.prompt(key, {"level": "low", "prompt": "log %d" % i}).status, 200)
            self.assertEqual(self.sqlite("SELECT COUNT(*) FROM pe_message_logs", httpd=h)[0][0], 0)
            h.graceful(wait=False)
            deadline = time.time() + 10
            while time.time() < deadline:
                if self.sqlite("SELECT COUNT(*) FROM pe_message_logs", httpd=h)[0][0] >= n:
                    break
                time.sleep(0.2)
            self.assertEqual(self.sqlite("SELECT COUNT(*) FROM pe_message_logs", httpd=h)[0][0], n)
            for i in range(m):
                r = self.prompt(key, {"level": "low", "prompt": "after %d" % i})
                self.assertEqual(r.status, 200, r)
        finally:
            h.stop()
        rows = self.sqlite("SELECT COUNT(*), COUNT(DISTINCT request_id), SUM(status = 200) FROM pe_message_logs",
                           httpd=h)[0]
        self.assertEqual(rows, (n + m, n + m, n + m))
        # AH03490: the event MPM's scoreboard is briefly full while old children finish (slow builds)
        problems = h.log_problems(allow=("AH03490",))
        self.assertEqual(problems, [])
        print(json.dumps({"test": "T-LOG-01", "mpm": mpm, "requests": n + m, "rows": rows[0], "lost": n + m - rows[0]}))

    def test_event(self):
        self.run_case("event")

    def test_prefork(self):
        self.run_case("prefork")


@unittest.skipUnless(pe_mongo.available(), "no MongoDB server (node and the stand-in, or PE_TEST_MONGODB_URI)")
class MessageLogDurabilityMongo(pe_mongo.MongoClass, MessageLogDurability):
    """The same on MongoDB (the writer's own client, flushed at child exit), a database per case."""
    MONGO_NAME = "mongo-msglog"

    def setUp(self):
        self.ENV = dict(self.ENV, **self.mongo.new_database())

    def sqlite(self, q, args=(), httpd=None):
        if q.startswith("SELECT COUNT(*), COUNT(DISTINCT request_id)"):
            c = self.mongo.client()
            try:
                docs = c.find("pe_message_logs")
            finally:
                c.close()
            return [(len(docs), len({d["request_id"] for d in docs}), sum(1 for d in docs if d["status"] == 200))]
        return self.mongo.sql(q, args)


class CacheAcrossGraceful(UpstreamMixin, unittest.TestCase):
    """The shared-memory cache and its mutex are made once per httpd parent: a request that an old
    generation's child finishes after `-k graceful` stores its answer without a lock error, and the
    new generation serves both that answer and the ones cached before the restart."""

    ENV = {}

    def test_event(self):
        h = Httpd("cache-graceful", extra_conf=BASE_CONF + "PEUpstreamTimeout 10s\n", env=self.ENV)
        h.start()
        try:
            self.httpd = h
            uid, key = self.new_user(h)
            before = {"level": "low", "prompt": "cached before the restart %d" % time.time()}
            slow = {"level": "low", "prompt": "in flight over the restart %d [[fake:delay_ms=2500]]" % time.time()}
            first = self.prompt(key, before)
            self.assertEqual((first.status, first.header("X-PE-Cache")), (200, "miss"), first)
            self.assertEqual(self.prompt(key, before).header("X-PE-Cache"), "hit")
            with concurrent.futures.ThreadPoolExecutor(1) as ex:
                inflight = ex.submit(self.prompt, key, slow)
                time.sleep(0.7)
                h.graceful(wait=False)
                r = inflight.result()
            self.assertEqual((r.status, r.header("X-PE-Cache")), (200, "miss"), r)
            time.sleep(1.0)
            self.assertEqual(self.prompt(key, before).header("X-PE-Cache"), "hit")
            again = self.prompt(key, slow)
            self.assertEqual((again.status, again.header("X-PE-Cache")), (200, "hit"), again)
        finally:
            h.stop()
        self.assertEqual(h.log_problems(allow=("AH03490",)), [])


if __name__ == "__main__":
    unittest.main()
