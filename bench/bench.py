"""make bench: one httpd serving plain mod_proxy (<Location /proxy/>) and PromptEnchanter
completions, the node fake upstream behind both, wrk on loopback against each target in turn.
Prints req/s, p50, p99 per target, the ratios to mod_proxy, and each child's RSS before and after.
BenchSetup is what bench/peers.py, bench/scaling.py and bench/rss.py start too."""
import http.client
import json
import os
import re
import subprocess
import sys
import time

TOP = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, os.path.join(TOP, "tests", "integration"))
sys.path.insert(0, os.path.join(TOP, "tests", "fakes"))
import fakes  # noqa: E402
import pe_mongo  # noqa: E402
import pe_pg  # noqa: E402
from pe_harness import Httpd  # noqa: E402

DURATION = os.environ.get("BENCH_DURATION", "10s")
CONNS = os.environ.get("BENCH_CONNECTIONS", "32")
THREADS = os.environ.get("BENCH_THREADS", "2")
# The store behind the completions: sqlite3 (default), pgsql or mongodb (each server started here).
STORE = os.environ.get("BENCH_STORE", "sqlite3")
# Requests sampled for the X-PE-Overhead-Ms percentiles of each PromptEnchanter target.
OVERHEAD_N = int(os.environ.get("BENCH_OVERHEAD_N", "400"))

CONF = """PEArgon2Cost 1 1M 1
PEDefaultAccessRTypes bpe bcot hcot react tot
PEDefaultLevel ultra
LoadModule proxy_module @MODDIR@/mod_proxy.so
LoadModule proxy_http_module @MODDIR@/mod_proxy_http.so
<IfModule mpm_event_module>
    ServerLimit @SERVERS@
    StartServers @SERVERS@
    MinSpareThreads 1
    MaxSpareThreads 1024
    ThreadsPerChild 64
    MaxRequestWorkers @WORKERS@
</IfModule>
<Location /proxy/>
    ProxyPass http://127.0.0.1:@UPPORT@/v1/ keepalive=On
</Location>
"""


def wrk(url, body, auth="", headers="", conns=None, duration=None):
    """One wrk run (wrk-post.lua); headers: extra request headers, one `Name: value` per line."""
    env = dict(os.environ, BENCH_BODY=body, BENCH_AUTH=auth, BENCH_HEADERS=headers)
    out = subprocess.run(["wrk", "-t" + THREADS, "-c" + (conns or CONNS), "-d" + (duration or DURATION), "--latency",
                          "-s", os.path.join(TOP, "bench", "wrk-post.lua"), url], env=env, capture_output=True,
                         text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))

    def lat(p):
        m = re.search(r"^\s+%s%%\s+([\d.]+)(us|ms|s)\s*$" % p, out, re.M)
        v, unit = float(m.group(1)), m.group(2)
        return v / 1000.0 if unit == "us" else v * 1000.0 if unit == "s" else v

    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors = re.search(r"Socket errors:.*", out)
    total = re.search(r"(\d+) requests in", out)
    return {"rps": rps, "p50": lat(50), "p99": lat(99), "non2xx": int(non2xx.group(1)) if non2xx else 0,
            "socket_errors": errors.group(0) if errors else "", "requests": int(total.group(1)) if total else 0,
            "raw": out}


def children_rss(h):
    pid = h.pid()
    out = subprocess.run(["ps", "-o", "pid=,ppid=,rss=", "--ppid", str(pid)], capture_output=True, text=True).stdout
    return {int(p): int(r) for p, _, r in (line.split() for line in out.splitlines() if line.strip())}


def loadavg():
    """The 1-minute load average (the machine is shared: it is printed with every figure)."""
    return os.getloadavg()[0]


def uptime():
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def child_pids():
    """{parent pid: [child pids]} of every process, from /proc."""
    children = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open("/proc/%s/stat" % d) as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(d))
    return children


class BenchSetup:
    """The node fake upstream, the store's server (BENCH_STORE), one httpd (BENCH_MPM, BENCH_SERVERS)
    serving plain mod_proxy and PromptEnchanter, and a registered user with a practically unlimited
    daily credit. The targets every bench script measures come from here."""

    def __init__(self, name="bench", store=None, mpm=None, servers=None):
        self.name = name
        self.store = store or STORE
        self.mpm = mpm or os.environ.get("BENCH_MPM", "event")
        self.servers = int(servers or os.environ.get("BENCH_SERVERS", "1"))
        self.up = self.db = self.h = None
        chat = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Benchmark question %d"}]}
        self.proxy_body = json.dumps(chat)
        self.miss_body = json.dumps({"level": "low", "r_type": "bpe",
                                     "messages": [{"role": "user", "content": "Benchmark question %d"}]})
        self.hit_body = self.miss_body.replace("%d", "fixed")

    def start(self):
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self):
        self.up = fakes.start_bench_upstream()
        moddir = subprocess.run(["apxs", "-q", "LIBEXECDIR"], capture_output=True, text=True).stdout.strip() or \
            "/usr/lib/apache2/modules"
        conf = CONF.replace("@MODDIR@", moddir).replace("@UPPORT@", str(self.up.port)).replace(
            "@SERVERS@", str(self.servers)).replace("@WORKERS@", str(64 * self.servers)) + \
            os.environ.get("BENCH_EXTRA_CONF", "")
        # the product's default PEPrincipalCacheTTL (the test harness turns the cache off)
        env = {"PE_UPSTREAM_URL": self.up.chat_url, "PE_LOGLEVEL": "warn", "PE_PRINCIPAL_CACHE_TTL": ""}
        if self.store == "pgsql":
            self.db = pe_pg.PgCluster(self.name + "-pg").start()
            env.update(self.db.env())
        elif self.store == "mongodb":
            self.db = pe_mongo.MongoServer(self.name + "-mongo").start()
            env.update(self.db.env())
        if self.mpm == "prefork":
            env["PE_PREFORK_SERVERS"] = os.environ.get("BENCH_PREFORK_SERVERS", "8")
        h = Httpd(self.name, mpm=self.mpm, extra_conf=conf, env=env)
        db = self.db
        if self.store == "pgsql":
            h.sqlite = lambda q, args=(): db.query(q.replace("?", "%s") % tuple(repr(a) for a in args))
        elif self.store == "mongodb":
            h.sqlite = db.sql
        self.h = h
        h.start()
        r = h.post("/v1/users/register", {"username": "bench_user", "name": "Bench User",
                                          "email": "bench@example.com", "password": "Zebra-Lamp-42"})
        assert r.status == 201, r
        self.key, uid = r.json["api_key"], r.json["user_id"]
        h.sqlite("UPDATE pe_users SET conv_limit = 1000000000, conv_reset = 1000000000, reset_day = ? WHERE id = ?",
                 (int(time.time() // 86400), uid))
        self.base = "http://127.0.0.1:%d" % h.port

    def targets(self):
        """(name, url, body, api key) of mod_proxy, a cache miss and a cache hit."""
        return [("mod_proxy", self.base + "/proxy/chat/completions", self.proxy_body, ""),
                ("pe_miss", self.base + "/v1/prompt/completions", self.miss_body, self.key),
                ("pe_hit", self.base + "/v1/prompt/completions", self.hit_body, self.key)]

    def warm_up(self, targets=None, seconds=3):
        """Connections, handles, the cache entry of the hit."""
        for _, url, body, auth, *hdrs in targets or self.targets():
            subprocess.run(["wrk", "-t" + THREADS, "-c" + CONNS, "-d%ds" % seconds, "-s",
                            os.path.join(TOP, "bench", "wrk-post.lua"), url],
                           env=dict(os.environ, BENCH_BODY=body, BENCH_AUTH=auth,
                                    BENCH_HEADERS=hdrs[0] if hdrs else ""), capture_output=True, check=True)

    def check_hit(self):
        check = self.h.post("/v1/prompt/completions", json.loads(self.hit_body),
                            headers={"Authorization": "Bearer " + self.key})
        assert check.status == 200 and check.header("X-PE-Cache") == "hit", check

    def overhead(self, n):
        """X-PE-Overhead-Ms percentiles of a miss and a hit, n requests one at a time on one connection."""
        overhead = {}
        for name, body in (("pe_miss", self.miss_body), ("pe_hit", self.hit_body)):
            conn = http.client.HTTPConnection("127.0.0.1", self.h.port, timeout=60)
            vals = []
            for i in range(n):
                conn.request("POST", "/v1/prompt/completions", body.replace("%d", "ov%d" % i),
                             {"Authorization": "Bearer " + self.key, "Content-Type": "application/json"})
                resp = conn.getresponse()
                resp.read()
                vals.append(float(resp.getheader("X-PE-Overhead-Ms")))
            conn.close()
            vals.sort()
            overhead[name] = {"p50": vals[len(vals) // 2], "p99": vals[min(len(vals) - 1, int(len(vals) * 0.99))],
                              "max": vals[-1]}
        return overhead

    def stop(self):
        for part in (self.h, self.up, self.db):
            if part:
                try:
                    part.stop()
                except Exception as e:  # stop the others all the same
                    print("bench: stopping %r: %s" % (part, e), file=sys.stderr)
        self.h = self.up = self.db = None


def print_results(results, base="mod_proxy"):
    print("%-10s %10s %9s %9s %8s %8s" % ("target", "req/s", "p50 ms", "p99 ms", "non-2xx", "ratio"))
    base_rps = results[base]["rps"]
    for name, r in results.items():
        print("%-10s %10.0f %9.2f %9.2f %8d %8.2f" % (name, r["rps"], r["p50"], r["p99"], r["non2xx"],
                                                     r["rps"] / base_rps))
    for n, r in results.items():
        if r["non2xx"] or r["socket_errors"]:
            print("note: %s had non-2xx responses or socket errors: %s" % (n, r["socket_errors"]))


def main():
    s = BenchSetup()
    load = [loadavg()]
    try:
        s.start()
        s.warm_up()
        rss_before = children_rss(s.h)
        results = {}
        for name, url, body, auth in s.targets():
            results[name] = wrk(url, body, auth)
        time.sleep(2)
        rss_after = children_rss(s.h)
        s.check_hit()
        # The gateway's own time (X-PE-Overhead-Ms), one request at a time on one connection.
        overhead = s.overhead(OVERHEAD_N) if OVERHEAD_N > 0 else {}
        load.append(loadavg())
    finally:
        s.stop()

    print("MPM %s, %d %s" % (s.mpm, s.servers if s.mpm == "event" else
                             int(os.environ.get("BENCH_PREFORK_SERVERS", "8")),
                             "children x 64 threads" if s.mpm == "event" else "processes"))
    print("store %s; wrk -t%s -c%s -d%s --latency (loopback, 2 cores shared by wrk, httpd and the node upstream)"
          % (s.store, THREADS, CONNS, DURATION))
    print("load average (1 min) at start %.2f, at end %.2f" % (load[0], load[-1]))
    print_results(results)
    base_rps = results["mod_proxy"]["rps"]
    print("ratio miss/mod_proxy = %.2f (target >= 0.85)" % (results["pe_miss"]["rps"] / base_rps))
    print("ratio hit/mod_proxy  = %.2f (target >= 1.00)" % (results["pe_hit"]["rps"] / base_rps))
    for name, o in overhead.items():
        print("X-PE-Overhead-Ms %-8s p50 %.2f  p99 %.2f  max %.2f  (%d sequential requests)"
              % (name, o["p50"], o["p99"], o["max"], OVERHEAD_N))
    print("child RSS (KiB) before -> after:")
    worst = 0.0
    for pid, before in sorted(rss_before.items()):
        after = rss_after.get(pid)
        if after is None:
            print("  %d: %d -> (exited)" % (pid, before))
            continue
        growth = (after - before) * 100.0 / before
        worst = max(worst, growth)
        print("  %d: %d -> %d (%+.1f%%)" % (pid, before, after, growth))
    print("largest RSS growth: %+.1f%% (short run; bench/rss.py is the 200k-request check)" % worst)
    print(json.dumps({"bench": "completions", "store": s.store, "results": {n: {k: v for k, v in r.items() if k != "raw"}
                                                            for n, r in results.items()}, "rss_growth_max_pct": worst,
                      "mpm": s.mpm, "servers": s.servers, "connections": int(CONNS), "duration": DURATION,
                      "loadavg": load, "overhead_ms": overhead}))


if __name__ == "__main__":
    main()
