"""The gateway driven by the official OpenAI Node SDK (npm `openai`, pinned in tests/node/package.json,
installed by build/node-deps.sh): create, stream with usage, models.list/retrieve, the error classes
and `code` for 401/403/422/429, the default client on exhausted credits (one HTTP request, no sleep
until the daily reset), one SDK call against a failing upstream (one round of gateway attempts), and
a stream the upstream cuts off raising in the client with the credit given back.

Each case runs tests/node/sdk_call.mjs in a node process (JSON in, JSON out)."""
import json
import os
import subprocess
import time

import pe_openapi

from pe_harness import TOP
from test_completions import BASE_CONF, UpstreamMixin, credit_day
from pe_harness import HttpdTestCase

NODE_DIR = os.path.join(TOP, "tests", "node")
# A hang detector, not a timing assertion: the exhausted-credits call must come back at all (before
# the fix the default client slept for the hours until the daily reset).
HANG_LIMIT = 20


def node_deps():
    subprocess.run(["bash", os.path.join(TOP, "build", "node-deps.sh")], check=True, cwd=TOP)


class SdkNode(UpstreamMixin, HttpdTestCase):
    EXTRA_CONF = BASE_CONF + "PEPrincipalRateLimit tiny 1/min\n"
    ALLOWED_LOG_IDS = ("PE41004",)

    @classmethod
    def setUpClass(cls):
        node_deps()
        super().setUpClass()

    def sdk(self, key, op, args=None, client=None, timeout=60):
        spec = {"base": "http://127.0.0.1:%d/v1" % self.httpd.port, "key": key, "op": op, "args": args or {},
                "client": client or {}}
        p = subprocess.run(["node", os.path.join(NODE_DIR, "sdk_call.mjs"), json.dumps(spec)], cwd=NODE_DIR,
                           capture_output=True, text=True, timeout=timeout)
        self.assertEqual(p.returncode, 0, p.stderr)
        out = json.loads(p.stdout.strip().splitlines()[-1])
        # what the SDK received matches docs/openapi.json, as the harness checks its own responses
        self.assertTrue(out["responses"])
        for r in out["responses"]:
            problems = pe_openapi.problems_of(r["method"], r["path"], r["status"], r["ctype"], r["body"].encode())
            self.assertEqual(problems, [], r)
        return out

    def conv_limit(self, uid):
        return self.sqlite("SELECT conv_limit FROM pe_users WHERE id = ?", (uid,))[0][0]

    def assertSdkError(self, out, cls, status, code):
        self.assertFalse(out["ok"], out)
        e = out["error"]
        self.assertEqual(e["class"], cls, e)
        self.assertTrue(e["instance_of_api_error"], e)
        self.assertEqual(e["status"], status, e)
        self.assertEqual(e["code"], code, e)
        self.assertIsInstance(e["type"], str)
        return e

    MSG = [{"role": "user", "content": "Count the three little words"}]

    def test_create(self):
        uid, key = self.new_user()
        out = self.sdk(key, "create", {"model": "gpt-4o-mini", "messages": self.MSG})
        self.assertTrue(out["ok"], out)
        c = out["result"]
        self.assertEqual(c["object"], "chat.completion")
        self.assertIn("fake-upstream reply", c["choices"][0]["message"]["content"])
        self.assertGreater(c["usage"]["total_tokens"], 0)
        self.assertEqual(out["http"], [200])

    def test_stream_with_usage(self):
        uid, key = self.new_user()
        out = self.sdk(key, "stream", {"model": "gpt-4o-mini", "messages": self.MSG,
                                       "stream_options": {"include_usage": True}})
        self.assertTrue(out["ok"], out)
        chunks = out["result"]["chunks"]
        text = "".join((c["choices"][0]["delta"].get("content") or "") for c in chunks if c["choices"])
        self.assertIn("fake-upstream reply", text)
        self.assertEqual(chunks[-1]["choices"], [])
        self.assertGreater(chunks[-1]["usage"]["total_tokens"], 0)
        self.assertTrue(any(c["choices"] and c["choices"][0].get("finish_reason") == "stop" for c in chunks))

    def test_models_list_and_retrieve(self):
        uid, key = self.new_user()
        out = self.sdk(key, "models.list")
        self.assertTrue(out["ok"], out)
        ids = out["result"]["ids"]
        self.assertIn("gpt-4o-mini", ids)
        out = self.sdk(key, "models.retrieve", {"id": ids[0]})
        self.assertTrue(out["ok"], out)
        self.assertEqual(out["result"]["id"], ids[0])
        out = self.sdk(key, "models.retrieve", {"id": "no-such-model"})
        self.assertSdkError(out, "NotFoundError", 404, "MODEL_NOT_FOUND")
        self.assertEqual(out["http"], [404])

    def test_401_403_422(self):
        uid, key = self.new_user()
        out = self.sdk("pe-" + "n" * 32, "create", {"model": "low", "messages": self.MSG})
        self.assertSdkError(out, "AuthenticationError", 401, "INVALID_API_KEY")
        self.assertEqual(out["http"], [401])
        self.sqlite("UPDATE pe_users SET access_rtype = 'bpe' WHERE id = ?", (uid,))
        uid2, key2 = self.new_user()
        self.sqlite("UPDATE pe_users SET access_rtype = 'bpe' WHERE id = ?", (uid2,))
        out = self.sdk(key2, "create", {"model": "low", "messages": self.MSG, "pe": {"r_type": "tot"}})
        self.assertSdkError(out, "PermissionDeniedError", 403, "RTYPE_NOT_ALLOWED")
        out = self.sdk(key, "create", {"model": "low", "messages": self.MSG, "temperature": 7})
        e = self.assertSdkError(out, "UnprocessableEntityError", 422, "VALIDATION_ERROR")
        self.assertEqual(e["param"], "temperature")
        self.assertEqual(out["http"], [422])

    def test_429_credits_exhausted_default_client_returns(self):
        uid, key = self.new_user()
        self.sqlite("UPDATE pe_users SET conv_limit = 0, conv_reset = 3, reset_day = ? WHERE id = ?",
                    (credit_day(), uid))
        # the default client: maxRetries 2, and Retry-After says hours
        out = self.sdk(key, "create", {"model": "low", "messages": self.MSG}, timeout=HANG_LIMIT)
        e = self.assertSdkError(out, "RateLimitError", 429, "CREDITS_EXHAUSTED")
        self.assertEqual(out["http"], [429])  # no retry at all
        self.assertTrue(e["body"]["limits"]["resets_at"].endswith("Z"))
        self.assertGreater(int(e["retry_after"]), 0)

    def test_429_rate_limited(self):
        uid, key = self.new_user()
        self.sqlite("UPDATE pe_users SET subscription_plan = 'tiny' WHERE id = ?", (uid,))
        out = self.sdk(key, "models.list")
        self.assertTrue(out["ok"], out)
        # the SDK would honour Retry-After (up to a minute here): ask for no retries to see the error
        out = self.sdk(key, "models.list", client={"maxRetries": 0})
        e = self.assertSdkError(out, "RateLimitError", 429, "RATE_LIMITED")
        self.assertEqual(e["body"]["scope"], "principal")
        self.assertGreaterEqual(int(e["retry_after"]), 1)

    def test_failing_upstream_one_round_of_attempts(self):
        uid, key = self.new_user()
        before = self.conv_limit(uid)
        seq = self.last_seq()
        self.up.fail(count=9, status=502)
        try:
            out = self.sdk(key, "create", {"model": "low", "messages": self.MSG}, timeout=HANG_LIMIT)
        finally:
            self.up.clear_faults()
        e = self.assertSdkError(out, "InternalServerError", 502, "UPSTREAM_ERROR")
        self.assertEqual(e["body"]["upstream_attempts"], 3)
        self.assertEqual(out["http"], [502])  # the SDK did not multiply the gateway's retries
        self.assertEqual(len(self.upstream_since(seq)), 3)
        self.assertEqual(self.conv_limit(uid), before)

    def test_truncated_stream_raises_and_refunds(self):
        uid, key = self.new_user()
        before = self.conv_limit(uid)
        self.up.fail(count=1, fault="truncate", truncate_after=3, stream_framing="close", cut_mid_event=1)
        try:
            out = self.sdk(key, "stream", {"model": "low", "messages": self.MSG}, timeout=HANG_LIMIT)
        finally:
            self.up.clear_faults()
        self.assertFalse(out["ok"], out)
        self.assertEqual(out["error"]["class"], "APIError", out)
        self.assertEqual(out["error"]["code"], "UPSTREAM_ERROR")
        self.assertGreaterEqual(len(out["partial"]), 1)  # what came before the cut was delivered
        deadline = time.monotonic() + 5
        while self.conv_limit(uid) != before and time.monotonic() < deadline:
            time.sleep(0.05)
        self.assertEqual(self.conv_limit(uid), before)
