"""The OpenAI-compatible routes as the OpenAI SDKs see them (issue 14): errors in OpenAI's shape with
our codes, x-should-retry and Retry-After, retries decided as a whole (one client call, one round of
gateway attempts), GET /v1/models/{id}, and a stream the upstream cuts off (close-framed or chunked,
between events or inside one) ending in an error event with the credit given back."""
import time

from pe_harness import HttpdTestCase
from test_completions import BASE_CONF, UpstreamMixin, bearer, credit_day

CHAT = "/v1/chat/completions"


class OpenAIShape(UpstreamMixin, HttpdTestCase):
    EXTRA_CONF = BASE_CONF + "PEPrincipalRateLimit tiny 2/min burst=2\n"
    # upstream failures these tests provoke are logged as errors/warnings (PE41004, PE41008)
    ALLOWED_LOG_IDS = ("PE41004", "PE41012")

    def conv_limit(self, uid):
        return self.sqlite("SELECT conv_limit FROM pe_users WHERE id = ?", (uid,))[0][0]

    def test_auth_errors(self):
        e = self.assertOpenAIError(self.httpd.post(CHAT, {"model": "low", "messages": []}), 401, "AUTH_REQUIRED",
                                   "authentication_error")
        self.assertIsNone(e["param"])
        r = self.httpd.post(CHAT, {"model": "low", "messages": [{"role": "user", "content": "x"}]},
                            headers=bearer("pe-" + "x" * 32))
        self.assertOpenAIError(r, 401, "INVALID_API_KEY", "authentication_error")
        self.assertEqual(r.header("x-should-retry"), "false")
        self.assertOpenAIError(self.httpd.get("/v1/models"), 401, "AUTH_REQUIRED")

    def test_validation_and_rights(self):
        uid, key = self.new_user()
        r = self.chat(key, {"model": "low", "temperature": 7, "messages": [{"role": "user", "content": "x"}]})
        e = self.assertOpenAIError(r, 422, "VALIDATION_ERROR", "invalid_request_error")
        self.assertEqual(e["param"], "temperature")
        self.assertEqual(r.header("x-should-retry"), "false")
        r = self.chat(key, {"model": "low", "messages": []})
        self.assertOpenAIError(r, 400, "BAD_REQUEST", "invalid_request_error")
        self.sqlite("UPDATE pe_users SET access_rtype = 'bpe' WHERE id = ?", (uid,))
        uid2, key2 = self.new_user()
        self.sqlite("UPDATE pe_users SET access_rtype = 'bpe' WHERE id = ?", (uid2,))
        r = self.chat(key2, {"model": "low", "pe": {"r_type": "tot"}, "messages": [{"role": "user", "content": "x"}]})
        self.assertOpenAIError(r, 403, "RTYPE_NOT_ALLOWED", "permission_error")
        r = self.httpd.request("DELETE", CHAT, headers=bearer(key))
        self.assertOpenAIError(r, 405, "METHOD_NOT_ALLOWED")
        r = self.httpd.post(CHAT, "{not json", headers=dict(bearer(key), **{"Content-Type": "application/json"}))
        self.assertOpenAIError(r, 400, "INVALID_JSON")

    def test_other_routes_keep_the_envelope(self):
        uid, key = self.new_user()
        r = self.prompt(key, {"level": "low", "prompt": ""})
        self.assertEqual(r.status, 400, r)
        self.assertIs(r.json["success"], False)
        self.assertEqual(r.header("x-should-retry"), "false")
        self.assertEnvelope(self.httpd.get("/v1/users/profile"), 401)
        self.assertEnvelope(self.httpd.get("/v1/nothing-here"), 404, "NOT_FOUND")

    def test_models_retrieve(self):
        uid, key = self.new_user()
        lst = self.httpd.get("/v1/models", headers=bearer(key))
        self.assertEqual(lst.status, 200, lst)
        ids = [m["id"] for m in lst.json["data"]]
        self.assertIn("gpt-4o-mini", ids)
        for mid in ids:
            r = self.httpd.get("/v1/models/" + mid, headers=bearer(key))
            self.assertEqual(r.status, 200, r)
            self.assertEqual(r.json["id"], mid)
            self.assertEqual(r.json["object"], "model")
        self.assertOpenAIError(self.httpd.get("/v1/models/no-such-model", headers=bearer(key)), 404,
                               "MODEL_NOT_FOUND", "not_found_error")
        # a model above the account's level is not this account's to retrieve
        self.sqlite("UPDATE pe_users SET level = 'low' WHERE id = ?", (uid,))
        uid2, key2 = self.new_user()
        self.sqlite("UPDATE pe_users SET level = 'low' WHERE id = ?", (uid2,))
        ids2 = [m["id"] for m in self.httpd.get("/v1/models", headers=bearer(key2)).json["data"]]
        above = [m for m in ids if m not in ids2]
        self.assertTrue(above)
        self.assertOpenAIError(self.httpd.get("/v1/models/" + above[0], headers=bearer(key2)), 404, "MODEL_NOT_FOUND")

    def test_credits_exhausted_says_do_not_retry(self):
        uid, key = self.new_user()
        self.sqlite("UPDATE pe_users SET conv_limit = 0, conv_reset = 3, reset_day = ? WHERE id = ?",
                    (credit_day(), uid))
        r = self.chat(key, {"model": "low", "messages": [{"role": "user", "content": "x"}]})
        e = self.assertOpenAIError(r, 429, "CREDITS_EXHAUSTED", "insufficient_quota")
        self.assertEqual(r.header("x-should-retry"), "false")
        ra = int(r.header("Retry-After"))
        self.assertTrue(0 < ra <= 86401, ra)  # truthful: the seconds to the daily reset
        self.assertTrue(e["limits"]["resets_at"].endswith("Z"))
        self.assertEqual(e["limits"]["reset"], 3)

    def test_rate_limited_may_be_retried(self):
        uid, key = self.new_user()
        self.sqlite("UPDATE pe_users SET subscription_plan = 'tiny' WHERE id = ?", (uid,))
        codes = []
        for _ in range(4):
            r = self.httpd.get("/v1/models", headers=bearer(key))
            codes.append(r.status)
            if r.status == 429:
                break
        self.assertEqual(codes[-1], 429, codes)
        e = self.assertOpenAIError(r, 429, "RATE_LIMITED", "rate_limit_error")
        self.assertEqual(e["scope"], "principal")
        self.assertIsNone(r.header("x-should-retry"))  # retrying after Retry-After helps
        self.assertGreaterEqual(int(r.header("Retry-After")), 1)

    def test_upstream_failure_one_round_of_attempts(self):
        uid, key = self.new_user()
        before = self.conv_limit(uid)
        seq = self.last_seq()
        self.up.fail(count=3, status=502)
        r = self.chat(key, {"model": "low", "messages": [{"role": "user", "content": "x"}]})
        e = self.assertOpenAIError(r, 502, "UPSTREAM_ERROR", "upstream_error")
        self.assertEqual(e["upstream_attempts"], 3)
        # the gateway retried (PEUpstreamRetries 2): a client retry would multiply the calls
        self.assertEqual(r.header("x-should-retry"), "false")
        self.assertEqual(len(self.upstream_since(seq)), 3)
        self.assertEqual(self.conv_limit(uid), before)
        # a refusal that stays (upstream 400) is not retried by anyone
        self.up.fail(count=1, status=400)
        r = self.chat(key, {"model": "low", "messages": [{"role": "user", "content": "x"}]})
        self.assertOpenAIError(r, 502, "UPSTREAM_ERROR")
        self.assertEqual(r.header("x-should-retry"), "false")
        # an answer that is not a completion: one attempt, and no client retry either
        self.up.fail(count=1, fault="invalid_json")
        r = self.chat(key, {"model": "low", "messages": [{"role": "user", "content": "x"}]})
        self.assertOpenAIError(r, 502, "UPSTREAM_INVALID", "upstream_error")
        self.assertEqual(r.header("x-should-retry"), "false")
        # one attempt that may pass on a second (PEUpstreamRetries would retry it; a timeout is
        # not retried by the gateway): the client's own policy decides
        r = self.chat(key, {"model": "low", "messages": [{"role": "user", "content": "slow [[fake:delay_ms=4000]]"}]})
        self.assertOpenAIError(r, 504, "UPSTREAM_TIMEOUT", "upstream_error")
        self.assertIsNone(r.header("x-should-retry"))
        self.assertEqual(self.conv_limit(uid), before)
        self.up.clear_faults()

    def stream_cut(self, **steer):
        uid, key = self.new_user()
        before = self.conv_limit(uid)
        self.up.fail(count=1, fault="truncate", truncate_after=3, **steer)
        r = self.chat(key, {"model": "low", "stream": True, "messages": [{"role": "user", "content": "one two three"}]})
        self.up.clear_faults()
        self.assertEqual(r.status, 200, r)
        body = r.body.decode()
        events = [b for b in body.split("\n\n") if b.strip()]
        self.assertNotIn("[DONE]", body)
        self.assertTrue(events[-1].startswith('data: {"error":'), body)
        self.assertIn('"code":"UPSTREAM_ERROR"', events[-1])
        self.assertGreaterEqual(len(events), 3, body)  # what arrived before the cut was passed on
        deadline = time.monotonic() + 5
        while self.conv_limit(uid) != before and time.monotonic() < deadline:
            time.sleep(0.05)
        self.assertEqual(self.conv_limit(uid), before)

    def test_stream_cut_close_framed_inside_an_event(self):
        self.stream_cut(stream_framing="close", cut_mid_event=1)

    def test_stream_cut_close_framed_between_events(self):
        self.stream_cut(stream_framing="close")

    def test_stream_cut_chunked(self):
        self.stream_cut()

    def test_stream_close_framed_whole(self):
        uid, key = self.new_user()
        before = self.conv_limit(uid)
        self.up.config(stream_framing="close")
        try:
            r = self.chat(key, {"model": "low", "stream": True, "messages": [{"role": "user", "content": "a b"}]})
        finally:
            self.up.config(stream_framing=None)
        self.assertEqual(r.status, 200, r)
        self.assertTrue(r.body.decode().endswith("data: [DONE]\n\n"), r.body)
        self.assertNotIn(b'"error"', r.body)
        self.assertEqual(self.conv_limit(uid), before - 1)
