"""Monitoring (issue 12): Prometheus counters exact across prefork children after a known mix of
requests (misses, hits, upstream 500s, a stream, 429s), the exposition checked by promtool and
scraped by a real Prometheus server on loopback; the conversation-log queues of several children
seen and flushed through shared memory; usage figures; the API-usage records of a known mix of
requests across children (statuses, tokens, no key stored) and their retention; readiness naming
the store (PostgreSQL stopped, then back without a restart), memcached (killed) and the mail
server (stopped, then back)."""
import concurrent.futures
import json
import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
import unittest
import urllib.parse
import urllib.request

import fakes
import pe_pg
from pe_harness import HttpdTestCase, RUN_ROOT, free_port
from test_completions import BASE_CONF, Memcached, MemcachedMixin, UpstreamMixin, bearer
from test_email import SinkClass

MONITOR_CONF = """
<Location "/metrics">
    PEApi metrics
    Require ip 127.0.0.1
</Location>
<Location "/ready">
    PEApi ready
</Location>
<Location "/v1/monitoring">
    PEApi monitoring
    PEMonitorAccess location
    Require ip 127.0.0.1
</Location>
LogFormat "%P %>s %U" pids
CustomLog logs/pids.log pids
PEUpstreamRetries 0
"""

SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$')


def parse(text):
    """The samples of an exposition: {'name{labels}': value}."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = SAMPLE.match(line)
        assert m, "not a sample line: %r" % line
        out[m.group(1) + (m.group(2) or "")] = float(m.group(3))
    return out


def delta(after, before, key):
    return after.get(key, 0) - before.get(key, 0)


class MonitorBase(UpstreamMixin, HttpdTestCase):
    MPM = "prefork"
    ENV = {"PE_PREFORK_SERVERS": "4"}

    def scrape(self):
        r = self.httpd.get("/metrics")
        self.assertEqual(r.status, 200, r)
        self.assertTrue(r.header("Content-Type").startswith("text/plain; version=0.0.4"), r.headers)
        return r.body.decode()

    def pids(self):
        """The processes that answered, from the instance's %P access log."""
        with open(os.path.join(self.httpd.dir, "logs", "pids.log")) as f:
            return {line.split()[0] for line in f if line.strip()}

    def parallel(self, fn, items, workers=8):
        with concurrent.futures.ThreadPoolExecutor(workers) as ex:
            return list(ex.map(fn, items))

    def three_users(self):
        """(id, key) of a user with credits, of one without, and of one on plan gold (PEPrincipalRateLimit)."""
        uid, key = self.new_user()
        pid_, poor = self.new_user()
        self.sqlite("UPDATE pe_users SET conv_limit = 0, conv_reset = 0 WHERE id = ?", (pid_,))
        # NB: the plan is set before the key's first use, so no process has the principal cached
        gid, gold = self.new_user()
        self.sqlite("UPDATE pe_users SET subscription_plan = 'gold' WHERE id = ?", (gid,))
        return (uid, key), (pid_, poor), (gid, gold)


class MetricsPrefork(MonitorBase):
    maxDiff = None
    """Counters in shared memory: what four prefork children did, seen from any child's scrape."""

    EXTRA_CONF = BASE_CONF + MONITOR_CONF + """PEPrincipalRateLimit gold 2/min algorithm=fixed-window
<IfModule !status_module>
    LoadModule status_module /usr/lib/apache2/modules/mod_status.so
</IfModule>
<Location "/server-status">
    SetHandler server-status
    Require ip 127.0.0.1
</Location>
"""
    # the upstream 500s this test provokes are logged as errors (PE41004)
    ALLOWED_LOG_IDS = ("PE41004",)

    def stream_tokens(self, key, content):
        """A streamed chat completion; returns its usage from the last chunk."""
        r = self.chat(key, {"model": "gpt-4o-mini", "stream": True, "stream_options": {"include_usage": True},
                            "messages": [{"role": "user", "content": content}]})
        self.assertEqual(r.status, 200, r)
        usage = None
        for line in r.body.decode().splitlines():
            if line.startswith("data: {"):
                j = json.loads(line[6:])
                if j.get("usage"):
                    usage = j["usage"]
        self.assertIsNotNone(usage)
        return usage

    def test_a_counters_exact_across_children(self):
        before = parse(self.scrape())
        (uid, key), (pid_, poor), (gid, gold) = self.three_users()
        tag = "%d-%f" % (os.getpid(), time.time())

        def prompt(i):
            return self.prompt(key, {"level": "low", "r_type": "bpe", "prompt": "metrics %s %d" % (tag, i)})

        misses = self.parallel(prompt, range(8))
        self.assertEqual([r.status for r in misses], [200] * 8)
        self.assertEqual({r.header("X-PE-Cache") for r in misses}, {"miss"})
        hits = self.parallel(prompt, range(4))
        self.assertEqual({r.header("X-PE-Cache") for r in hits}, {"hit"})
        self.up.control("POST", "fail", {"count": 2, "status": 500})
        failed = [self.prompt(key, {"level": "low", "prompt": "metrics fail %s %d" % (tag, i)}) for i in range(2)]
        self.assertEqual([r.status for r in failed], [502, 502])
        su = self.stream_tokens(key, "metrics stream %s" % tag)
        refused = self.prompt(poor, {"level": "low", "prompt": "no credits %s" % tag})
        self.assertEqual(refused.status, 429, refused)
        models = [self.httpd.get("/v1/models", headers=bearer(gold)).status for _ in range(3)]
        self.assertEqual(models, [200, 200, 429])
        self.assertGreaterEqual(len(self.pids()), 2, "the requests were served by one child only")

        prompt_tokens = sum(r.json["usage"]["prompt_tokens"] for r in misses) + su["prompt_tokens"]
        completion_tokens = sum(r.json["usage"]["completion_tokens"] for r in misses) + su["completion_tokens"]
        total_tokens = sum(r.json["usage"]["total_tokens"] for r in misses) + su["total_tokens"]
        want = {
            'promptenchanter_requests_total{group="users",code="2xx"}': 3,
            'promptenchanter_requests_total{group="prompt",code="2xx"}': 12,
            'promptenchanter_requests_total{group="prompt",code="5xx"}': 2,
            'promptenchanter_requests_total{group="prompt",code="4xx"}': 1,
            'promptenchanter_requests_total{group="openai",code="2xx"}': 3,
            'promptenchanter_requests_total{group="openai",code="4xx"}': 1,
            'promptenchanter_upstream_requests_total{outcome="ok"}': 9,
            'promptenchanter_upstream_requests_total{outcome="http_5xx"}': 2,
            'promptenchanter_upstream_request_duration_seconds_count': 11,
            'promptenchanter_upstream_time_to_first_token_seconds_count': 1,
            'promptenchanter_cache_requests_total{cache="response",result="miss"}': 8,
            'promptenchanter_cache_requests_total{cache="response",result="hit"}': 4,
            'promptenchanter_completions_total{model="gpt-4o-mini",r_type="bpe"}': 8,
            'promptenchanter_tokens_total{model="gpt-4o-mini",token_type="prompt"}': prompt_tokens,
            'promptenchanter_tokens_total{model="gpt-4o-mini",token_type="completion"}': completion_tokens,
            'promptenchanter_tokens_total{model="gpt-4o-mini",token_type="total"}': total_tokens,
            'promptenchanter_credits_taken_total': 15,
            'promptenchanter_credits_refunded_total': 2,
            'promptenchanter_access_refusals_total{scope="key_rate_limit"}': 1,
            'promptenchanter_store_errors_total': 0,
        }
        # NB: a request is counted in log_transaction, just after its answer went out: wait for the last
        deadline = time.time() + 10
        while time.time() < deadline:
            after = parse(self.scrape())
            if all(delta(after, before, k) == v for k, v in want.items()):
                break
            time.sleep(0.05)
        # then every scrape, whichever child answers it, shows the same figures
        for _ in range(6):
            after = parse(self.scrape())
            got = {k: delta(after, before, k) for k in want}
            self.assertEqual({k: v for k, v in got.items() if v != want[k]}, {}, want)
        print(json.dumps({"test": "metrics-exact", "children": len(self.pids()), "tokens": total_tokens}))

    def test_b_exposition_is_valid_and_bounded(self):
        promtool = shutil.which("promtool")
        self.assertIsNotNone(promtool, "promtool (Debian package prometheus) is missing: run build/install-deps.sh")
        text = self.scrape()
        p = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        samples = parse(text)
        # histograms: cumulative buckets, +Inf == _count
        for h in ("promptenchanter_upstream_request_duration_seconds", "promptenchanter_gateway_overhead_seconds",
                  "promptenchanter_upstream_time_to_first_token_seconds"):
            buckets = [(float(re.search(r'le="([^"]+)"', k).group(1)), v) for k, v in samples.items()
                       if k.startswith(h + "_bucket")]
            buckets.sort()
            values = [v for _, v in buckets]
            self.assertEqual(values, sorted(values), h)
            self.assertEqual(buckets[-1][0], float("inf"))
            self.assertEqual(buckets[-1][1], samples[h + "_count"])
        # labels: bounded sets, never an id, a key or an address
        for k in samples:
            for name, value in re.findall(r'(\w+)="([^"]*)"', k):
                self.assertIn(name, {"group", "code", "outcome", "model", "token_type", "r_type", "cache", "result",
                                     "scope", "le"}, k)
                self.assertNotRegex(value, r"^(pe-|[0-9a-f]{24}$|127\.)", k)
        self.assertLess(len(samples), 600)

    def test_e_in_flight(self):
        """Requests in flight, summed over the children (the scrape counts itself)."""
        _, key = self.new_user()
        self.up.control("POST", "config", {"delay_ms": 800})
        try:
            with concurrent.futures.ThreadPoolExecutor(3) as ex:
                futs = [ex.submit(self.prompt, key, {"level": "low", "prompt": "slow %d %f" % (i, time.time())})
                        for i in range(3)]
                seen, deadline = 0, time.time() + 10
                while time.time() < deadline and seen < 4:
                    seen = max(seen, parse(self.scrape())["promptenchanter_requests_in_flight"])
                    time.sleep(0.05)
                self.assertEqual(seen, 4)
                self.assertEqual([f.result().status for f in futs], [200] * 3)
        finally:
            self.up.control("POST", "config", {"delay_ms": None})
        deadline, now = time.time() + 10, None
        while time.time() < deadline:
            now = parse(self.scrape())["promptenchanter_requests_in_flight"]
            if now == 1:
                break
            time.sleep(0.05)
        self.assertEqual(now, 1)

    def test_d_server_status_section(self):
        text = self.httpd.get("/server-status?auto").body.decode()
        m = parse(self.scrape())
        requests = int(re.search(r"^PromptEnchanterRequests: (\d+)$", text, re.M).group(1))
        self.assertGreater(requests, 0)
        self.assertLessEqual(requests, sum(v for k, v in m.items() if k.startswith("promptenchanter_requests_total")))
        self.assertRegex(text, r"(?m)^PromptEnchanterTokens: \d+$")
        html = self.httpd.get("/server-status").body.decode()
        self.assertIn("<h2>PromptEnchanter</h2>", html)

    def test_c_prometheus_server_scrapes(self):
        """A real Prometheus server on loopback scrapes /metrics and answers a query for the tokens."""
        binary = shutil.which("prometheus")
        self.assertIsNotNone(binary, "prometheus (Debian package prometheus) is missing")
        _, key = self.new_user()
        self.assertEqual(self.prompt(key, {"level": "low", "prompt": "for prometheus %f" % time.time()}).status, 200)
        want = parse(self.scrape())['promptenchanter_tokens_total{model="gpt-4o-mini",token_type="total"}']
        port = free_port()
        work = tempfile.mkdtemp(prefix="prom-", dir=RUN_ROOT)
        scrape, rules = doc_yaml_blocks()
        self.assertIn('"127.0.0.1:8080"', scrape)
        with open(os.path.join(work, "rules.yml"), "w") as f:
            f.write(rules)
        # the documentation's configuration, pointed at this instance, scraping every second, with its rules
        with open(os.path.join(work, "prometheus.yml"), "w") as f:
            f.write(scrape.replace("127.0.0.1:8080", "127.0.0.1:%d" % self.httpd.port)
                    .replace("scrape_interval: 15s", "scrape_interval: 1s") + "rule_files:\n  - rules.yml\n")
        p = subprocess.run([shutil.which("promtool"), "check", "config", os.path.join(work, "prometheus.yml")],
                           capture_output=True, text=True)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        with open(os.path.join(work, "prometheus.log"), "w") as log:
            proc = subprocess.Popen([binary, "--config.file=" + os.path.join(work, "prometheus.yml"),
                                     "--storage.tsdb.path=" + os.path.join(work, "data"),
                                     "--web.listen-address=127.0.0.1:%d" % port], stdout=subprocess.DEVNULL,
                                    stderr=log)
        try:
            q = urllib.parse.quote('promptenchanter_tokens_total{model="gpt-4o-mini",token_type="total"}')
            got, deadline = None, time.time() + 60
            while time.time() < deadline:
                try:
                    with urllib.request.urlopen("http://127.0.0.1:%d/api/v1/query?query=%s" % (port, q),
                                                timeout=5) as resp:
                        res = json.load(resp)["data"]["result"]
                    if res:
                        got = float(res[0]["value"][1])
                        break
                except (OSError, ValueError, KeyError):
                    pass
                time.sleep(0.5)
            self.assertEqual(got, want)
            with urllib.request.urlopen("http://127.0.0.1:%d/api/v1/targets" % port, timeout=5) as resp:
                targets = json.load(resp)["data"]["activeTargets"]
            self.assertEqual([t["health"] for t in targets], ["up"])
            with urllib.request.urlopen("http://127.0.0.1:%d/api/v1/rules" % port, timeout=5) as resp:
                groups = json.load(resp)["data"]["groups"]
            self.assertEqual([g["name"] for g in groups], ["promptenchanter"])
            self.assertEqual(len(groups[0]["rules"]), 7)
            self.assertLessEqual({r["health"] for r in groups[0]["rules"]}, {"ok", "unknown"})
        finally:
            proc.terminate()
            proc.wait(20)
            shutil.rmtree(work, ignore_errors=True)


DOC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "docs", "monitoring.md")


def doc_yaml_blocks():
    """The yaml examples of docs/monitoring.md: (scrape configuration, alert rules)."""
    with open(DOC) as f:
        blocks = re.findall(r"```yaml\n(.*?)```", f.read(), re.S)
    scrape = [b for b in blocks if "scrape_configs" in b]
    rules = [b for b in blocks if "groups:" in b]
    assert len(scrape) == 1 and len(rules) == 1, "docs/monitoring.md: one scrape configuration, one rule file"
    return scrape[0], rules[0]


class QueueAcrossChildren(MonitorBase):
    """The conversation-log queues of several children: counted together, flushed together; the
    usage figures of the logs."""

    EXTRA_CONF = BASE_CONF.replace("PEMessageLogInterval 100ms", "PEMessageLogInterval 60s") + MONITOR_CONF + \
        "PEMessageLogBatch 1000\n"

    def test_queue_status_flush_and_usage(self):
        uid, key = self.new_user()
        tag = "%d-%f" % (os.getpid(), time.time())

        def prompt(i):
            return self.prompt(key, {"level": "low", "r_type": "tot" if i % 2 else "bpe",
                                     "prompt": "queued %s %d" % (tag, i)})

        answers = self.parallel(prompt, range(12))
        self.assertEqual([r.status for r in answers], [200] * 12)
        self.assertGreaterEqual(len(self.pids()), 2, "the requests were served by one child only")
        # log_transaction runs after the answer: wait until every record is queued
        deadline, qs = time.time() + 10, None
        while time.time() < deadline:
            qs = self.httpd.get("/v1/monitoring/queue-status").json["queue_status"]
            if qs["queue_size"] >= 12:
                break
            time.sleep(0.1)
        self.assertEqual(qs["queue_size"], 12)
        self.assertGreaterEqual(qs["processes"], 4)
        self.assertTrue(qs["is_running"])
        self.assertEqual(self.sqlite("SELECT COUNT(*) FROM pe_message_logs WHERE user_id = ?", (uid,))[0][0], 0)
        r = self.httpd.post("/v1/monitoring/flush-logs", {})
        self.assertEqual(r.status, 200, r)
        self.assertIs(r.json["success"], True)
        deadline, rows = time.time() + 10, 0
        while time.time() < deadline:
            rows = self.sqlite("SELECT COUNT(*) FROM pe_message_logs WHERE user_id = ?", (uid,))[0][0]
            if rows == 12:
                break
            time.sleep(0.05)
        self.assertEqual(rows, 12)
        # a writer lowers its queue gauge once its batch has committed, just after the rows show
        while time.time() < deadline:
            if self.httpd.get("/v1/monitoring/queue-status").json["queue_status"]["queue_size"] == 0:
                break
            time.sleep(0.05)
        self.assertEqual(self.httpd.get("/v1/monitoring/queue-status").json["queue_status"]["queue_size"], 0)
        m = parse(self.scrape())
        self.assertEqual(m["promptenchanter_message_log_queue_records"], 0)
        self.assertGreaterEqual(m['promptenchanter_message_log_records_total{result="written"}'], 12)
        # usage: the user's own (API key) and an administrator's view of that user
        tokens = sum(r.json["usage"]["total_tokens"] for r in answers)
        own = self.httpd.get("/v1/monitoring/usage?days=7", headers=bearer(key))
        self.assertEqual(own.status, 200, own)
        other = self.httpd.get("/v1/monitoring/usage?days=7&user_id=" + uid)
        for u in (own.json, other.json):
            self.assertEqual(u["user_id"], uid)
            self.assertEqual(u["summary"]["total_messages"], 12)
            self.assertEqual(u["summary"]["total_tokens"], tokens)
            self.assertEqual(u["usage_by_type"], {"bpe": 6, "tot": 6})
            self.assertEqual(len(u["daily_usage"]), 7)
            self.assertEqual(u["daily_usage"][-1], {"date": time.strftime("%Y-%m-%d", time.gmtime()),
                                                    "messages": 12, "tokens": tokens})
        glob = self.httpd.get("/v1/monitoring/usage").json
        self.assertGreaterEqual(glob["summary"]["total_messages"], 12)


class UsageRecords(MonitorBase):
    """API-usage records: one per request made with a user's API key, whatever its answer, queued in
    the writers of several children next to the conversation logs, seen in queue-status, written by
    flush-logs; each row is what the test sent and got (route, method, status, tokens), and no row
    holds a key."""

    EXTRA_CONF = BASE_CONF.replace("PEMessageLogInterval 100ms", "PEMessageLogInterval 60s") + MONITOR_CONF + \
        "PEMessageLogBatch 1000\nPEPrincipalRateLimit gold 2/min algorithm=fixed-window\n"

    def rows(self, ids):
        q = ("SELECT request_id, user_id, key_prefix, endpoint, method, status_code, tokens_used, user_agent, date, "
             "response_time_ms FROM pe_api_usage WHERE request_id IN (%s)" % ",".join("?" * len(ids)))
        return {r[0]: r for r in self.sqlite(q, tuple(ids))}

    def test_records_equal_what_was_sent(self):
        (uid, key), (pid_, poor), (gid, gold) = self.three_users()
        tag = "%d-%f" % (os.getpid(), time.time())
        ua = {"User-Agent": "usage-test/1.0"}
        sent = []  # (response, user id, key, endpoint, method, tokens)

        def prompt(i):
            return self.prompt(key, {"level": "low", "prompt": "usage %s %d" % (tag, i)}, headers=ua)

        for r in self.parallel(prompt, range(6)):
            self.assertEqual(r.status, 200, r)
            sent.append((r, uid, key, "/v1/prompt/completions", "POST", r.json["usage"]["total_tokens"]))
        r = self.chat(key, {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "chat " + tag}]},
                      headers=ua)
        self.assertEqual(r.status, 200, r)
        sent.append((r, uid, key, "/v1/chat/completions", "POST", r.json["usage"]["total_tokens"]))
        r = self.httpd.post("/v1/batch/process", {"level": "low", "batch": [{"prompt": "b1 " + tag},
                                                                          {"prompt": "b2 " + tag}]},
                            headers=dict(bearer(key), **ua))
        self.assertEqual(r.status, 200, r)
        self.assertGreater(r.json["total_tokens_used"], 0)
        sent.append((r, uid, key, "/v1/batch/process", "POST", r.json["total_tokens_used"]))
        r = self.prompt(key, {"level": "low"}, headers=ua)  # no prompt: a 4xx
        self.assertIn(r.status, (400, 422), r)
        sent.append((r, uid, key, "/v1/prompt/completions", "POST", 0))
        r = self.prompt(poor, {"level": "low", "prompt": "no credits " + tag}, headers=ua)
        self.assertEqual(r.status, 429, r)
        sent.append((r, pid_, poor, "/v1/prompt/completions", "POST", 0))
        for want in (200, 200, 429):  # the per-key rate limit refuses the third
            r = self.httpd.get("/v1/models", headers=dict(bearer(gold), **ua))
            self.assertEqual(r.status, want, r)
            sent.append((r, gid, gold, "/v1/models", "GET", 0))
        # not recorded: no key, a wrong key
        self.assertEqual(self.httpd.get("/v1/models").status, 401)
        self.assertEqual(self.httpd.get("/v1/models", headers=bearer("pe-" + "x" * 43)).status, 401)
        self.assertGreaterEqual(len(self.pids()), 2, "the requests were served by one child only")
        ids = [r.header("X-Request-ID") for r, *_ in sent]
        self.assertEqual(len(set(ids)), len(sent))

        # queued in the children, not written yet (interval 60 s, batch 1000)
        deadline, qs = time.time() + 10, None
        while time.time() < deadline:
            qs = self.httpd.get("/v1/monitoring/queue-status").json["queue_status"]["api_usage"]
            if qs["queue_size"] >= len(sent):
                break
            time.sleep(0.1)
        self.assertEqual(qs["queue_size"], len(sent))
        self.assertIs(qs["enabled"], True)
        self.assertEqual(self.rows(ids), {})
        self.assertEqual(parse(self.scrape())["promptenchanter_usage_log_queue_records"], len(sent))
        self.assertEqual(self.httpd.post("/v1/monitoring/flush-logs", {}).status, 200)
        deadline, got = time.time() + 10, {}
        while time.time() < deadline:
            got = self.rows(ids)
            if len(got) == len(sent):
                break
            time.sleep(0.05)
        self.assertEqual(len(got), len(sent))
        today = time.strftime("%Y-%m-%d", time.gmtime())
        for (r, user, k, endpoint, method, tokens), rid in zip(sent, ids):
            row = got[rid]
            self.assertEqual(row[1:8], (user, k[:len(row[2])], endpoint, method, r.status, tokens, "usage-test/1.0"),
                             rid)
            self.assertTrue(row[2].startswith("pe-") and len(row[2]) < 16, row)
            self.assertEqual(row[8], today)
            self.assertGreaterEqual(row[9], 0)
        # no key anywhere in the table
        keys = (key, poor, gold)
        for row in self.sqlite("SELECT * FROM pe_api_usage"):
            for v in row:
                self.assertFalse(any(isinstance(v, str) and kk in v for kk in keys), row)
        self.assertEqual(self.httpd.get("/v1/monitoring/queue-status").json["queue_status"]["api_usage"]["queue_size"],
                         0)
        m = parse(self.scrape())
        self.assertEqual(m["promptenchanter_usage_log_queue_records"], 0)
        self.assertGreaterEqual(m['promptenchanter_usage_log_records_total{result="written"}'], len(sent))
        self.assertEqual(m['promptenchanter_usage_log_records_total{result="dropped"}'], 0)
        # /usage: the API calls of the user from the records, the messages from the conversation logs
        u = self.httpd.get("/v1/monitoring/usage?days=1", headers=bearer(key))
        self.assertEqual(u.status, 200, u)
        mine = [x for x in sent if x[1] == uid]
        # (this request's own record is queued after its answer: not counted here)
        self.assertEqual(u.json["summary"]["total_api_calls"], len(mine))
        self.assertEqual(u.json["summary"]["total_messages"], 7)
        print(json.dumps({"test": "api-usage-records", "records": len(sent), "children": len(self.pids())}))


class UsageRetention(MonitorBase):
    """PEUsageLogRetention: the writer removes records older than the retention, without traffic."""

    MPM = "event"
    ENV = {}
    EXTRA_CONF = BASE_CONF + MONITOR_CONF + "PEUsageLogRetention 2s\n"

    def test_old_records_removed(self):
        uid, key = self.new_user()
        r = self.httpd.get("/v1/models", headers=bearer(key))
        self.assertEqual(r.status, 200, r)
        rid = r.header("X-Request-ID")
        q = "SELECT COUNT(*) FROM pe_api_usage WHERE request_id = ?"
        deadline, n = time.time() + 10, 0
        while time.time() < deadline and n == 0:
            n = self.sqlite(q, (rid,))[0][0]
            time.sleep(0.05)
        self.assertEqual(n, 1)
        # older than the retention: the writer's next purge removes it (no request needed)
        deadline = time.time() + 30
        while time.time() < deadline and n == 1:
            time.sleep(0.2)
            n = self.sqlite(q, (rid,))[0][0]
        self.assertEqual(n, 0)
        self.assertEqual(self.httpd.get("/v1/monitoring/queue-status").json["queue_status"]["api_usage"]
                         ["retention_seconds"], 2)


class ReadinessSmtp(SinkClass, MonitorBase):
    """PESMTPURL set: the mail server is a component; stopped: degraded (200) naming smtp within the
    bound; started again on its port: healthy without a restart. No mail is ever sent."""

    MPM = "event"
    ENV = {}

    @classmethod
    def mail_setup(cls):
        cls.EXTRA_CONF = BASE_CONF + MONITOR_CONF + ("PEHealthCacheTime 0\nPEHealthTimeout 1s\n"
                                                     "PESMTPURL smtp://127.0.0.1:%d\nPESMTPStartTLS Optional\n"
                                                     % cls.sink.port)

    def test_smtp_down_is_degraded_and_comes_back(self):
        port = self.sink.port
        h = self.httpd.get("/v1/monitoring/health")
        self.assertEqual((h.status, h.json["status"]), (200, "healthy"), h)
        self.assertEqual(h.json["components"]["smtp"]["status"], "up")
        self.assertIs(h.json["components"]["smtp"]["critical"], False)
        self.sink.stop()
        t0 = time.monotonic()
        r = self.httpd.get("/v1/monitoring/health")
        took = time.monotonic() - t0
        self.assertEqual((r.status, r.json["status"]), (200, "degraded"), r)
        self.assertEqual(r.json["down"], ["smtp"])
        self.assertTrue(r.json["components"]["smtp"]["error"])
        self.assertEqual(self.httpd.get("/ready").json, {"status": "ready", "down": ["smtp"]})
        print(json.dumps({"test": "readiness-smtp-down", "seconds": round(took, 3)}))
        ReadinessSmtp.sink = fakes.start_smtp(port=port)
        r = self.httpd.get("/v1/monitoring/health")
        self.assertEqual((r.status, r.json["status"], r.json["down"]), (200, "healthy", []), r)
        self.assertEqual(self.sink.messages(), [])


class AdminOnly(MonitorBase):
    """Without PEMonitorAccess location the admin parts need an administrator's session: a user's
    key is refused, readiness names components without details."""

    EXTRA_CONF = BASE_CONF + MONITOR_CONF.replace("PEMonitorAccess location", "")

    def test_admin_parts_refused(self):
        _, key = self.new_user()
        self.assertEnvelope(self.httpd.get("/v1/monitoring/queue-status"), 401)
        self.assertEnvelope(self.httpd.get("/v1/monitoring/queue-status", headers=bearer(key)), 403)
        self.assertEnvelope(self.httpd.post("/v1/monitoring/flush-logs", {}, headers=bearer(key)), 403)
        self.assertEnvelope(self.httpd.get("/v1/monitoring/usage"), 401)
        self.assertEqual(self.httpd.get("/v1/monitoring/usage", headers=bearer(key)).status, 200)
        h = self.httpd.get("/v1/monitoring/health")
        self.assertEqual(h.status, 200, h)
        self.assertEqual(h.json["status"], "healthy")
        self.assertEqual(h.json["components"]["store"], {"status": "up"})
        self.assertEqual(self.httpd.get("/ready").json, {"status": "ready", "down": []})


@unittest.skipUnless(pe_pg.available(), "PostgreSQL is not installed here")
class ReadinessPostgres(pe_pg.PostgresClass, MonitorBase):
    """PostgreSQL stopped: readiness 503 naming the store, liveness 200; started again: ready
    again without a restart of httpd."""

    MPM = "event"
    ENV = {}
    EXTRA_CONF = BASE_CONF + MONITOR_CONF
    # mod_dbd's and the store's errors while the database is down
    ALLOWED_LOG_IDS = ("AH00629", "AH00633", "AH00636", "AH00639", "AH02655", "PE00202", "PE00203", "PE30002")

    def test_store_down_and_back(self):
        h = self.httpd.get("/v1/monitoring/health")
        self.assertEqual((h.status, h.json["status"]), (200, "healthy"), h)
        self.assertEqual(h.json["components"]["store"]["backend"], "pgsql")
        self.pg._as_pg(os.path.join(self.pg.bin, "pg_ctl"), "-D", self.pg.data, "-m", "fast", "-w", "stop")
        try:
            for path in ("/v1/monitoring/health", "/ready"):
                t0 = time.monotonic()
                r = self.httpd.get(path)
                took = time.monotonic() - t0
                self.assertEqual(r.status, 503, r)
                self.assertEqual(r.json["down"], ["store"])
                print(json.dumps({"test": "readiness-store-down", "path": path, "seconds": round(took, 3)}))
            d = self.httpd.get("/v1/monitoring/health").json
            self.assertEqual(d["status"], "unhealthy")
            self.assertEqual(d["components"]["store"]["status"], "down")
            self.assertTrue(d["components"]["store"]["error"])
            self.assertEqual(self.httpd.get("/health").status, 200)
        finally:
            self.pg._start()
        deadline, r = time.time() + 30, None
        while time.time() < deadline:
            r = self.httpd.get("/v1/monitoring/health")
            if r.status == 200:
                break
            time.sleep(0.2)
        self.assertEqual((r.status, r.json["status"]), (200, "healthy"), r)
        self.assertGreater(parse(self.scrape())["promptenchanter_store_errors_total"], 0)


class ReadinessMemcached(MemcachedMixin, MonitorBase):
    """memcached killed: degraded (200), memcached named; the upstream unreachable: 503 naming it."""

    MPM = "event"
    EXTRA_CONF = BASE_CONF + MONITOR_CONF + "PECacheTimeout 200ms\nPEHealthCacheTime 0\n"
    ALLOWED_LOG_IDS = ("PE43001", "PE43003")


    def test_a_memcached_killed_is_degraded(self):
        h = self.httpd.get("/v1/monitoring/health")
        self.assertEqual((h.status, h.json["status"]), (200, "healthy"), h)
        self.assertEqual(h.json["components"]["memcached"]["status"], "up")
        self.mc.stop()
        r = self.httpd.get("/v1/monitoring/health")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json["status"], "degraded")
        self.assertEqual(r.json["down"], ["memcached"])
        self.assertEqual(r.json["components"]["memcached"]["critical"], False)
        self.assertEqual(self.httpd.get("/ready").json, {"status": "ready", "down": ["memcached"]})

    def test_b_upstream_unreachable(self):
        self.up.stop()
        r = self.httpd.get("/v1/monitoring/health")
        self.assertEqual(r.status, 503, r)
        self.assertIn("upstream", r.json["down"])
        self.assertIn("connect", r.json["components"]["upstream"]["error"])


if __name__ == "__main__":
    unittest.main()
