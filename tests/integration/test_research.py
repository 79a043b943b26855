"""Research and batch (issue 6): directives, the shared research cache, research through both
completion routes against the loopback fakes (every depth, parallel pages, SSRF refusals with a
canary, the byte cap, cache hits, injection flags, a dead search provider), and POST
/v1/batch/process (parallel and sequential timing, exact refunds, all-or-nothing credits, limits)."""
import os
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fakes  # noqa: E402
from pe_harness import Httpd, HttpdTestCase  # noqa: E402
import pe_pg  # noqa: E402
import pe_mongo  # noqa: E402
from test_completions import BASE_CONF, UpstreamMixin, bearer, credit_day  # noqa: E402


class ResearchConfig(unittest.TestCase):
    """Every research directive checks its value; a bad one fails `apache2 -t` naming it."""

    def configtest(self, extra, env=None):
        return Httpd("rsconf", extra_conf=extra, env=env).configtest()

    def assertRejected(self, extra, *needles):
        p = self.configtest(extra)
        self.assertNotEqual(p.returncode, 0, p.stderr)
        for n in needles:
            self.assertIn(n, p.stderr)

    def test_good_config(self):
        p = self.configtest("PESearchURL http://127.0.0.1:8888/search\nPESearchProvider SearXNG\n"
                            "PESearchLanguage en-GB\nPEResearchAllowNetworks 127.0.0.2:8080, fd00::/8 "
                            "10.0.0.0/8:80,443 [::1]:8443 [fd00::/16]:8000-8099\n"
                            "PEResearchMaxParallel 8\nPEResearchPageSize 512K\nPEResearchPageTimeout 1500ms\n"
                            "PESearchTimeout 3s\nPEResearchTimeout 30s\nPEResearchCacheTTL 0\n"
                            "PEResearchPageCacheTTL 2h\nPEResearchCacheSize 64\n"
                            "PEResearchModels gpt-4o-mini gpt-4o\nPEBatchMaxParallel 4\nPEBatchMaxTasks 20\n"
                            "PESearchKey abc-123\n")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("Syntax OK", p.stderr)

    def test_allow_networks_from_the_environment(self):
        p = self.configtest("", env={"PE_RESEARCH_ALLOW_NETWORKS": "127.0.0.2:8080 [::1]:8443"})
        self.assertEqual(p.returncode, 0, p.stderr)
        p = self.configtest("", env={"PE_RESEARCH_ALLOW_NETWORKS": "127.0.0.1/8"})
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("PEResearchAllowNetworks", p.stderr)
        self.assertIn("127.0.0.0/8", p.stderr)

    def test_bad_values(self):
        self.assertRejected("PESearchURL ftp://x/search\n", "PESearchURL")
        self.assertRejected("PESearchProvider google\n", "PESearchProvider", "unknown provider 'google'",
                            "searxng, brave")
        self.assertRejected("PEResearchAllowNetworks 10.0.0.0/33\n", "PEResearchAllowNetworks", "out of range")
        self.assertRejected("PEResearchAllowNetworks\n", "PEResearchAllowNetworks")
        self.assertRejected("PEResearchAllowNetworks 127.0.0.2:0\n", "PEResearchAllowNetworks", "entry 1",
                            "is not a number 1-65535")
        self.assertRejected("PEResearchAllowNetworks 127.0.0.2:8080-80\n", "PEResearchAllowNetworks")
        self.assertRejected("PEResearchAllowNetworks 127.0.0.2 8080\n", "PEResearchAllowNetworks",
                            "follows no network with ports")
        self.assertRejected("PEResearchAllowNetworks ::1:8443:x\n", "PEResearchAllowNetworks")
        self.assertRejected("PEResearchMaxParallel 0\n", "PEResearchMaxParallel")
        self.assertRejected("PEResearchMaxParallel 65\n", "PEResearchMaxParallel")
        self.assertRejected("PEResearchPageSize 3M\n", "PEResearchPageSize")
        self.assertRejected("PEResearchPageSize 100\n", "PEResearchPageSize", "below the minimum")
        self.assertRejected("PEResearchPageTimeout 2m\n", "PEResearchPageTimeout")
        self.assertRejected("PEResearchTimeout 500ms\n", "PEResearchTimeout")
        self.assertRejected("PEResearchCacheTTL forever\n", "PEResearchCacheTTL")
        self.assertRejected("PEResearchCacheSize 100000\n", "PEResearchCacheSize")
        self.assertRejected("PEResearchModels gpt-4o\n", "PEResearchModels")
        self.assertRejected("PEBatchMaxParallel 51\n", "PEBatchMaxParallel")
        self.assertRejected("PEBatchMaxTasks 0\n", "PEBatchMaxTasks")
        self.assertRejected("PESearchLanguage e\n", "PESearchLanguage")
        self.assertRejected('PESearchKey "a b"\n', "PESearchKey")


class ResearchCacheDisabled(HttpdTestCase):
    """With PEResearchCacheSize 0 the server runs without the shared research cache."""

    EXTRA_CONF = "PEResearchCacheSize 0\n"

    def test_serves(self):
        self.assertEqual(self.httpd.get("/health").status, 200)


class ResearchCachePrefork(HttpdTestCase):
    """The research cache's mutex and segment work under prefork (children re-open the mutex)."""

    MPM = "prefork"
    EXTRA_CONF = "PEResearchCacheSize 16\n"

    def test_serves(self):
        for _ in range(5):
            self.assertEqual(self.httpd.get("/health").status, 200)
        self.assertNotIn("PE61104", self.httpd.error_log())


if __name__ == "__main__":
    unittest.main()


# ---- research through the completion routes, and batch ----

SYNTH_RULE = {"match": {"system_contains": "research synthesiser"}, "echo": "last"}


def final_user_text(req):
    """The last user message of an upstream request record."""
    msgs = [m for m in req["json"]["messages"] if m["role"] == "user"]
    return msgs[-1]["content"]


class ResearchMixin(UpstreamMixin):
    """Canary on 127.0.0.1, fixture pages on 127.0.0.2 (only their port is allowed), a second canary
    on another port of 127.0.0.2, fake search; the synthesis call echoes its prompt so the pages'
    text reaches the final request."""

    SEARCH_URL = None  # None: the fake search

    @classmethod
    def setUpClass(cls):
        cls.canary = fakes.start_canary()
        cls.canary2 = fakes.start_canary(host="127.0.0.2")
        cls.web = fakes.start_web(host="127.0.0.2", canary_port=cls.canary.port)
        cls.search = fakes.start_search(web=cls.web)
        cls.ENV = dict(cls.ENV, PE_SEARCH_URL=cls.SEARCH_URL or cls.search.search_url,
                       PE_RESEARCH_ALLOW_NETWORKS="127.0.0.2:%d" % cls.web.port)
        try:
            super().setUpClass()
            cls.up.set_rules([SYNTH_RULE])
        except Exception:
            cls.stop_fakes()
            raise

    @classmethod
    def stop_fakes(cls):
        for f in (cls.search, cls.web, cls.canary, cls.canary2):
            f.stop()

    @classmethod
    def tearDownClass(cls):
        try:
            super().tearDownClass()
        finally:
            cls.stop_fakes()

    def research(self, key, text, depth="basic", route="prompt", **kw):
        """One completion with research; returns (response, upstream requests it caused)."""
        seq = self.last_seq()
        if route == "prompt":
            r = self.prompt(key, dict({"level": "low", "prompt": text, "ai_research": True, "research_depth": depth},
                                      **kw))
        else:
            r = self.chat(key, {"model": "low", "messages": [{"role": "user", "content": text}],
                                "pe": {"ai_research": True, "research_depth": depth}})
        return r, self.upstream_since(seq)

    def header_fields(self, r):
        h = r.header("X-PE-Research")
        self.assertIsNotNone(h, r.headers)
        return dict(kv.strip().split("=") for kv in h.split(";"))


class ResearchCompletions(ResearchMixin, HttpdTestCase):
    EXTRA_CONF = BASE_CONF + "PEResearchPageSize 256K\n"

    def test_each_depth_reaches_the_upstream_with_fixture_text(self):
        _, key = self.new_user()
        for depth, asked, searched in (("basic", 3, 2), ("medium", 5, 4), ("high", 8, 6)):
            q0 = len(self.search.queries())
            r, ups = self.research(key, "honeybee waggle dance %s [[fake:research_topics=%d]]" % (depth, asked), depth)
            self.assertEqual(r.status, 200, r)
            # topic analysis, synthesis, the completion
            self.assertEqual(len(ups), 3, [u["json"]["messages"][0]["content"][:60] for u in ups])
            self.assertIn("needs_research", ups[0]["json"]["messages"][0]["content"])
            self.assertEqual(ups[0]["json"]["model"], "gpt-4o-mini")
            self.assertEqual(ups[1]["json"]["model"], "gpt-4o")
            # the depth caps the queries (the analyst offered more)
            self.assertEqual(len(self.search.queries()) - q0, searched, depth)
            text = final_user_text(ups[2])
            self.assertTrue(text.startswith("honeybee waggle dance %s" % depth), text[:80])
            self.assertIn("untrusted", text)
            self.assertIn("ARTICLE-MAIN-MARKER", text)
            self.assertIn(self.web.url_for("/article.html"), text)
            self.assertIn(self.web.url_for("/article3.html"), text)
            self.assertNotIn("NOISE-MARKER", text)
            f = self.header_fields(r)
            self.assertEqual(f["sources"], "5")
            self.assertEqual(f["cached"], "0")
            self.assertEqual(f["degraded"], "0")
            self.assertEqual(r.header("X-PE-Cache"), "miss")

    def test_pages_are_fetched_in_parallel(self):
        _, key = self.new_user()
        pages = "|".join("/slow/par%d?ms=1000" % i for i in range(5))
        t0 = time.time()
        r, ups = self.research(key, "parallel pages [[fake:research_topics=2;results=%s]]" % pages, "high")
        wall = time.time() - t0
        self.assertEqual(r.status, 200, r)
        text = final_user_text(ups[-1])
        for i in range(5):
            self.assertIn("SLOW-PAGE-MARKER par%d" % i, text)
        self.assertLess(wall, 2.5, "5 pages of 1 s took %.2f s" % wall)
        self.assertEqual(self.header_fields(r)["pages"], "5/5")

    def test_redirects_to_internal_addresses_never_connect(self):
        _, key = self.new_user()
        before = self.canary.count()
        hops = self.web.count("/redirect/canary")
        r, ups = self.research(key, "guard check [[fake:results=/redirect/canary|/redirect/metadata|/article2.html]]")
        self.assertEqual(r.status, 200, r)
        text = final_user_text(ups[-1])
        self.assertIn("ARTICLE2-MAIN-MARKER", text)
        self.assertNotIn("pe-canary", text)
        f = self.header_fields(r)
        self.assertEqual(f["refused"], "2")
        self.assertEqual(f["sources"], "1")
        self.assertIn("2 refused by the address guard", r.header("X-PE-Research-Notes"))
        time.sleep(0.3)
        self.assertEqual(self.canary.count(), before)
        self.assertEqual(before, 0)
        self.assertEqual(self.web.count("/redirect/canary"), hops + 1)

    def test_other_ports_of_an_allowed_address_never_connect(self):
        """The allow list names 127.0.0.2 on the fixture server's port only: a service on another
        port of that address is refused, as a search result and as a redirect target."""
        _, key = self.new_user()
        before = self.canary2.count()
        port = self.canary2.port
        r, ups = self.research(key, "guard check [[fake:results=http://127.0.0.2:%d/|"
                                    "/redirect/canary?host=127.0.0.2&port=%d|/article2.html]]" % (port, port))
        self.assertEqual(r.status, 200, r)
        text = final_user_text(ups[-1])
        self.assertIn("ARTICLE2-MAIN-MARKER", text)
        self.assertNotIn("pe-canary", text)
        f = self.header_fields(r)
        self.assertEqual(f["refused"], "2")
        self.assertEqual(f["sources"], "1")
        time.sleep(0.3)
        self.assertEqual(self.canary2.count(), before)
        self.assertEqual(before, 0)

    def test_huge_page_is_cut_at_the_cap(self):
        _, key = self.new_user()
        r, ups = self.research(key, "huge page [[fake:results=/huge?mb=20]]")
        self.assertEqual(r.status, 200, r)
        self.assertIn("Huge page filler paragraph", final_user_text(ups[-1]))
        recs = [x for x in self.web.requests() if x["route"] == "/huge"]
        self.assertEqual(len(recs), 1)
        deadline = time.time() + 5
        while not recs[0]["finished"] and time.time() < deadline:
            time.sleep(0.1)
            recs = [x for x in self.web.requests() if x["route"] == "/huge"]
        self.assertLess(recs[0]["bytes_sent"], 8 * 1024 * 1024, recs[0])

    def test_research_cache_hit_on_the_second_request(self):
        _, key = self.new_user()
        text = "tide tables near the harbour"
        r1, ups1 = self.research(key, text)
        self.assertEqual(r1.status, 200, r1)
        self.assertEqual(self.header_fields(r1)["cached"], "0")
        q0 = len(self.search.queries())
        r2, ups2 = self.research(key, text)
        self.assertEqual(r2.status, 200, r2)
        self.assertEqual(self.header_fields(r2)["cached"], "1")
        self.assertEqual(len(self.search.queries()), q0)
        # no topic analysis or synthesis call; the completion itself comes from the response cache
        self.assertEqual([u for u in ups2 if "needs_research" in u["json"]["messages"][0]["content"]], [])
        self.assertEqual(r2.header("X-PE-Cache"), "hit")

    def test_injection_page_is_flagged_and_fenced(self):
        _, key = self.new_user()
        r, ups = self.research(key, "gardening [[fake:results=/injection.html]]")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(self.header_fields(r)["flagged"], "1")
        text = final_user_text(ups[-1])
        label = text.index("untrusted")
        self.assertGreater(text.index("ignore previous instructions"), label)
        self.assertIn("looks like instructions", r.header("X-PE-Research-Notes"))

    def test_chat_route_with_the_pe_object(self):
        _, key = self.new_user()
        r, ups = self.research(key, "printing press history", route="chat")
        self.assertEqual(r.status, 200, r)
        self.assertIn("ARTICLE-MAIN-MARKER", final_user_text(ups[-1]))

    def test_no_credit_no_research(self):
        uid, key = self.new_user()
        self.sqlite("UPDATE pe_users SET conv_limit = 0, conv_reset = 0 WHERE id = ?", (uid,))
        q0 = len(self.search.queries())
        r, ups = self.research(key, "anything at all")
        self.assertEqual(r.status, 429, r)
        self.assertEqual(ups, [])
        self.assertEqual(len(self.search.queries()), q0)

    def test_batch_with_research(self):
        _, key = self.new_user()
        r = self.httpd.post("/v1/batch/process", {"level": "low", "enable_research": True, "research_depth": "basic",
                                                  "batch": [{"prompt": "bees one"}, {"prompt": "bees two"}]},
                            headers=bearer(key))
        self.assertEqual(r.status, 200, r)
        for res in r.json["results"]:
            self.assertTrue(res["success"], res)
            self.assertGreaterEqual(res["research"]["total_sources"], 1)
            self.assertTrue(res["research"]["used"])


class ResearchDeadSearch(ResearchMixin, HttpdTestCase):
    """A dead search provider: the completion is answered without research, with a note."""

    EXTRA_CONF = BASE_CONF
    SEARCH_URL = "http://127.0.0.1:9/search"

    def test_degrades_to_a_completion_without_research(self):
        _, key = self.new_user()
        r, ups = self.research(key, "anything to search")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(len(ups), 2)  # topic analysis and the completion; no synthesis
        self.assertEqual(final_user_text(ups[-1]), "anything to search")
        f = self.header_fields(r)
        self.assertEqual(f["degraded"], "1")
        self.assertEqual(f["sources"], "0")
        self.assertIn("search provider is unavailable", r.header("X-PE-Research-Notes"))


class ResearchNotConfigured(UpstreamMixin, HttpdTestCase):
    """Without PESearchURL, ai_research is answered without research and says so."""

    EXTRA_CONF = BASE_CONF

    def test_off(self):
        _, key = self.new_user()
        seq = self.last_seq()
        r = self.prompt(key, {"level": "low", "prompt": "hello", "ai_research": True})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.header("X-PE-Research"), "off")
        self.assertIn("not configured", r.header("X-PE-Research-Notes"))
        self.assertEqual(len(self.upstream_since(seq)), 1)


class Batch(UpstreamMixin, HttpdTestCase):
    EXTRA_CONF = BASE_CONF + "PECache Off\n"
    ALLOWED_LOG_IDS = ()

    def setUp(self):
        self.up.set_rules([{"match": {"contains": "BATCH"}, "echo": "last"}])

    def tearDown(self):
        self.up.set_rules([])
        self.up.config(delay_ms=None)

    def batch(self, key, tasks, **kw):
        return self.httpd.post("/v1/batch/process", dict({"level": "low", "batch": tasks}, **kw), headers=bearer(key),
                               timeout=60)

    def conv_limit(self, uid):
        return self.sqlite("SELECT conv_limit FROM pe_users WHERE id = ?", (uid,))[0][0]

    def test_parallel_ten_tasks(self):
        uid, key = self.new_user()
        self.up.config(delay_ms=500)
        prompts = ["BATCH parallel task %d" % i for i in range(10)]
        before = self.conv_limit(uid)
        t0 = time.time()
        r = self.batch(key, [{"prompt": p} for p in prompts])
        wall = time.time() - t0
        self.assertEqual(r.status, 200, r)
        self.assertLess(wall, 1.5, "10 tasks of 500 ms in parallel took %.2f s" % wall)
        j = r.json
        self.assertTrue(j["batch_id"].startswith("batch_"))
        self.assertEqual((j["total_tasks"], j["successful_tasks"], j["failed_tasks"]), (10, 10, 0))
        self.assertEqual(j["credits"], {"charged": 10, "refunded": 0})
        for i, res in enumerate(j["results"]):
            self.assertEqual(res["task_index"], i)
            self.assertIsNone(res["error"])
            content = res["response"]["choices"][0]["message"]["content"]
            self.assertTrue(content.startswith(prompts[i] + "\n\n"), content)
            self.assertGreater(res["tokens_used"], 0)
        self.assertEqual(j["total_tokens_used"], sum(x["tokens_used"] for x in j["results"]))
        self.assertEqual(before - self.conv_limit(uid), 10)
        # every task got the bpe system prompt (SPEC 8: r_type defaults to bpe)
        sent = [x for x in self.up.requests(limit=10)]
        self.assertTrue(all(x["json"]["messages"][0]["role"] == "system" for x in sent))

    def test_sequential_takes_the_sum(self):
        _, key = self.new_user()
        self.up.config(delay_ms=500)
        t0 = time.time()
        r = self.batch(key, [{"prompt": "BATCH sequential %d" % i} for i in range(10)], parallel=False)
        wall = time.time() - t0
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json["successful_tasks"], 10)
        self.assertGreaterEqual(wall, 4.9)
        self.assertLess(wall, 7.0)
        self.assertIs(r.json["parallel"], False)

    def test_failed_task_is_refunded_and_the_others_succeed(self):
        uid, key = self.new_user()
        before = self.conv_limit(uid)
        r = self.batch(key, [{"prompt": "BATCH ok 1"}, {"prompt": "BATCH broken [[fake:status=400]]"},
                             {"prompt": "BATCH ok 2"}])
        self.assertEqual(r.status, 200, r)
        j = r.json
        self.assertEqual((j["successful_tasks"], j["failed_tasks"]), (2, 1))
        bad = j["results"][1]
        self.assertIs(bad["success"], False)
        self.assertEqual(bad["error_code"], "UPSTREAM_ERROR")
        self.assertEqual(bad["error"], "the AI service answered with status 400")
        self.assertIsNone(bad["response"])
        self.assertEqual(bad["tokens_used"], 0)
        self.assertEqual(j["credits"], {"charged": 3, "refunded": 1})
        self.assertEqual(before - self.conv_limit(uid), 2)
        self.assertTrue(j["results"][0]["success"] and j["results"][2]["success"])

    def test_not_enough_credits_takes_nothing(self):
        uid, key = self.new_user()
        self.sqlite("UPDATE pe_users SET conv_limit = 3, reset_day = ? WHERE id = ?", (credit_day(), uid))
        seq = self.last_seq()
        r = self.batch(key, [{"prompt": "BATCH x %d" % i} for i in range(5)])
        self.assertEnvelope(r, 429, "CREDITS_EXHAUSTED")
        self.assertEqual(r.json["message"], "Insufficient conversation credits. Need 5, have 3")
        self.assertEqual(r.json["details"]["required_credits"], 5)
        self.assertEqual(r.json["details"]["available_credits"], 3)
        self.assertIsNotNone(r.header("Retry-After"))
        self.assertEqual(self.conv_limit(uid), 3)
        self.assertEqual(self.upstream_since(seq), [])
        # exactly enough is fine
        r = self.batch(key, [{"prompt": "BATCH y %d" % i} for i in range(3)])
        self.assertEqual(r.status, 200, r)
        self.assertEqual(self.conv_limit(uid), 0)

    def test_validation(self):
        _, key = self.new_user()
        r = self.batch(key, [])
        self.assertEnvelope(r, 400, "BAD_REQUEST")
        self.assertEqual(r.json["message"], "Batch cannot be empty")
        r = self.batch(key, [{"prompt": "p"}] * 51)
        self.assertEnvelope(r, 400, "BAD_REQUEST")
        self.assertEqual(r.json["message"], "Batch size cannot exceed 50 tasks")
        r = self.httpd.post("/v1/batch/process", {"batch": [{"prompt": "p"}]}, headers=bearer(key))
        self.assertEnvelope(r, 422, "VALIDATION_ERROR")
        r = self.batch(key, [{"prompt": "p"}, {"prompt": "q", "temperature": 9}])
        self.assertEnvelope(r, 422, "VALIDATION_ERROR")
        self.assertIn("batch[1]", r.json["message"])
        r = self.httpd.post("/v1/batch/process", {"level": "low", "batch": [{"prompt": "p"}]})
        self.assertEqual(r.status, 401, r)
        # unknown fields, in a task or in the request, are named; nothing runs, no credit is taken
        uid, key = self.new_user()
        before = self.conv_limit(uid)
        r = self.batch(key, [{"prompt": "p"}, {"prompt": "q", "temprature": 0.1}])
        self.assertEnvelope(r, 422, "VALIDATION_ERROR")
        self.assertIn("batch[1]: unknown field 'temprature'", r.json["message"])
        r = self.batch(key, [{"prompt": "p"}], paralel=False)
        self.assertEnvelope(r, 422, "VALIDATION_ERROR")
        self.assertIn("unknown field 'paralel'", r.json["message"])
        self.assertEqual(self.conv_limit(uid), before)


@unittest.skipUnless(pe_mongo.available(), "no MongoDB server (node and the stand-in, or PE_TEST_MONGODB_URI)")
class BatchMongo(pe_mongo.MongoClass, Batch):
    MONGO_NAME = "mongo-batch"


class BatchLimits(UpstreamMixin, HttpdTestCase):
    """PEBatchMaxTasks and PEBatchMaxParallel."""

    EXTRA_CONF = BASE_CONF + "PECache Off\nPEBatchMaxTasks 4\nPEBatchMaxParallel 2\n"

    def test_limits(self):
        _, key = self.new_user()
        r = self.httpd.post("/v1/batch/process", {"level": "low", "batch": [{"prompt": "p"}] * 5}, headers=bearer(key))
        self.assertEqual(r.status, 400, r)
        self.assertEqual(r.json["message"], "Batch size cannot exceed 4 tasks")
        self.up.config(delay_ms=400)
        try:
            t0 = time.time()
            r = self.httpd.post("/v1/batch/process", {"level": "low", "batch": [{"prompt": "w%d" % i} for i in range(4)]},
                                headers=bearer(key), timeout=30)
            wall = time.time() - t0
        finally:
            self.up.config(delay_ms=None)
        self.assertEqual(r.status, 200, r)
        self.assertGreaterEqual(wall, 0.79)  # two at a time: two waves of 400 ms
        self.assertLess(wall, 1.6)


@unittest.skipUnless(pe_pg.available(), "PostgreSQL is not installed")
class BatchPostgres(pe_pg.PostgresClass, UpstreamMixin, HttpdTestCase):
    """The batch credit statements on PostgreSQL: all or nothing, exact refund."""

    EXTRA_CONF = BASE_CONF + "PECache Off\n"

    PG_NAME = "pg-batch"

    def credits(self, uid):
        return int(self.pg.query("SELECT conv_limit FROM pe_users WHERE id = '%s'" % uid))

    def test_all_or_nothing_and_exact_refund(self):
        uid, key = self.new_user()
        self.pg.query("UPDATE pe_users SET conv_limit = 3, conv_reset = 3, reset_day = %d WHERE id = '%s'"
                      % (credit_day(), uid))
        r = self.httpd.post("/v1/batch/process", {"level": "low", "batch": [{"prompt": "pg %d" % i} for i in range(4)]},
                            headers=bearer(key))
        self.assertEqual(r.status, 429, r)
        self.assertEqual(self.credits(uid), 3)
        r = self.httpd.post("/v1/batch/process",
                            {"level": "low", "batch": [{"prompt": "pg a"}, {"prompt": "pg b [[fake:status=400]]"},
                                                       {"prompt": "pg c"}]}, headers=bearer(key))
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json["credits"], {"charged": 3, "refunded": 1})
        self.assertEqual(self.credits(uid), 1)
