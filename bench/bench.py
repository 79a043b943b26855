"""make bench: one httpd serving plain mod_proxy (<Location /proxy/>) and PromptEnchanter
completions, the node fake upstream behind both, wrk on loopback against each target in turn.
Prints req/s, p50, p99 per target, the ratios to mod_proxy, and each child's RSS before and after."""
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


def wrk(url, body, auth=""):
    env = dict(os.environ, BENCH_BODY=body, BENCH_AUTH=auth)
    out = subprocess.run(["wrk", "-t" + THREADS, "-c" + CONNS, "-d" + DURATION, "--latency", "-s",
                          os.path.join(TOP, "bench", "wrk-post.lua"), url], env=env, capture_output=True, text=True,
                         check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))

    def lat(p):
        m = re.search(r"^\s+%s%%\s+([\d.]+)(us|ms|s)\s*$" % p, out, re.M)
        v, unit = float(m.group(1)), m.group(2)
        return v / 1000.0 if unit == "us" else v * 1000.0 if unit == "s" else v

    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors = re.search(r"Socket errors:.*", out)
    return {"rps": rps, "p50": lat(50), "p99": lat(99), "non2xx": int(non2xx.group(1)) if non2xx else 0,
            "socket_errors": errors.group(0) if errors else "", "raw": out}


def children_rss(h):
    pid = h.pid()
    out = subprocess.run(["ps", "-o", "pid=,ppid=,rss=", "--ppid", str(pid)], capture_output=True, text=True).stdout
    return {int(p): int(r) for p, _, r in (line.split() for line in out.splitlines() if line.strip())}


def main():
    up = fakes.start_bench_upstream()
    moddir = subprocess.run(["apxs", "-q", "LIBEXECDIR"], capture_output=True, text=True).stdout.strip() or \
        "/usr/lib/apache2/modules"
    servers = int(os.environ.get("BENCH_SERVERS", "1"))
    conf = CONF.replace("@MODDIR@", moddir).replace("@UPPORT@", str(up.port)).replace(
        "@SERVERS@", str(servers)).replace("@WORKERS@", str(64 * servers)) + os.environ.get("BENCH_EXTRA_CONF", "")
    # the product's default PEPrincipalCacheTTL (the test harness turns the cache off)
    env = {"PE_UPSTREAM_URL": up.chat_url, "PE_LOGLEVEL": "warn", "PE_PRINCIPAL_CACHE_TTL": ""}
    db = None
    if STORE == "pgsql":
        db = pe_pg.PgCluster("bench-pg").start()
        env.update(db.env())
    elif STORE == "mongodb":
        db = pe_mongo.MongoServer("bench-mongo").start()
        env.update(db.env())
    mpm = os.environ.get("BENCH_MPM", "event")
    if mpm == "prefork":
        env["PE_PREFORK_SERVERS"] = os.environ.get("BENCH_PREFORK_SERVERS", "8")
    h = Httpd("bench", mpm=mpm, extra_conf=conf, env=env)
    if STORE == "pgsql":
        h.sqlite = lambda q, args=(): db.query(q.replace("?", "%s") % tuple(repr(a) for a in args))
    elif STORE == "mongodb":
        h.sqlite = db.sql
    try:
        h.start()
        r = h.post("/v1/users/register", {"username": "bench_user", "name": "Bench User",
                                          "email": "bench@example.com", "password": "Zebra-Lamp-42"})
        assert r.status == 201, r
        key, uid = r.json["api_key"], r.json["user_id"]
        h.sqlite("UPDATE pe_users SET conv_limit = 1000000000, conv_reset = 1000000000, reset_day = ? WHERE id = ?",
                 (int(time.time() // 86400), uid))
        base = "http://127.0.0.1:%d" % h.port
        chat = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Benchmark question %d"}]}
        proxy_body = json.dumps(chat)
        miss_body = json.dumps({"level": "low", "r_type": "bpe",
                                "messages": [{"role": "user", "content": "Benchmark question %d"}]})
        hit_body = miss_body.replace("%d", "fixed")
        # warm-up: connections, handles, cache entry
        for url, body, auth in ((base + "/proxy/chat/completions", proxy_body, ""),
                                (base + "/v1/prompt/completions", miss_body, key),
                                (base + "/v1/prompt/completions", hit_body, key)):
            subprocess.run(["wrk", "-t" + THREADS, "-c" + CONNS, "-d3s", "-s", os.path.join(TOP, "bench", "wrk-post.lua"), url],
                           env=dict(os.environ, BENCH_BODY=body, BENCH_AUTH=auth), capture_output=True, check=True)
        rss_before = children_rss(h)
        results = {}
        results["mod_proxy"] = wrk(base + "/proxy/chat/completions", proxy_body)
        results["pe_miss"] = wrk(base + "/v1/prompt/completions", miss_body, key)
        results["pe_hit"] = wrk(base + "/v1/prompt/completions", hit_body, key)
        time.sleep(2)
        rss_after = children_rss(h)
        check = h.post("/v1/prompt/completions", json.loads(hit_body), headers={"Authorization": "Bearer " + key})
        assert check.status == 200 and check.header("X-PE-Cache") == "hit", check
        # The gateway's own time (X-PE-Overhead-Ms), one request at a time on one connection.
        overhead = {}
        for name, body in (("pe_miss", miss_body), ("pe_hit", hit_body)):
            conn = http.client.HTTPConnection("127.0.0.1", h.port, timeout=60)
            vals = []
            for i in range(OVERHEAD_N):
                conn.request("POST", "/v1/prompt/completions", body.replace("%d", "ov%d" % i),
                             {"Authorization": "Bearer " + key, "Content-Type": "application/json"})
                resp = conn.getresponse()
                resp.read()
                vals.append(float(resp.getheader("X-PE-Overhead-Ms")))
            conn.close()
            vals.sort()
            overhead[name] = {"p50": vals[len(vals) // 2], "p99": vals[min(len(vals) - 1, int(len(vals) * 0.99))],
                              "max": vals[-1]}
    finally:
        h.stop()
        up.stop()
        if db:
            db.stop()

    print("MPM %s" % mpm)
    print("store %s; wrk -t%s -c%s -d%s --latency (loopback, 2 cores shared by wrk, httpd and the node upstream)"
          % (STORE, THREADS, CONNS, DURATION))
    print("%-10s %10s %9s %9s %8s" % ("target", "req/s", "p50 ms", "p99 ms", "non-2xx"))
    for name, r in results.items():
        print("%-10s %10.0f %9.2f %9.2f %8d" % (name, r["rps"], r["p50"], r["p99"], r["non2xx"]))
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
    print("largest RSS growth: %+.1f%% (target within 5%%)" % worst)
    bad = [n for n, r in results.items() if r["non2xx"] or r["socket_errors"]]
    for n in bad:
        print("note: %s had non-2xx responses or socket errors: %s" % (n, results[n]["socket_errors"]))
    print(json.dumps({"bench": "completions", "store": STORE, "results": {n: {k: v for k, v in r.items() if k != "raw"}
                                                          for n, r in results.items()}, "rss_growth_max_pct": worst,
                      "mpm": mpm, "overhead_ms": overhead}))


if __name__ == "__main__":
    main()
