"""make bench: completions with PEMetrics On vs Off, in one run. Two httpd instances (the switch is
process-wide) take turns against the node fake upstream: on, off, on, off, each measured with wrk
for BENCH_METRICS_DURATION (5s) on cache misses (the full path: credits, upstream, log) and cache
hits (the shortest path, where a counter weighs most), BENCH_METRICS_ROUNDS (3) times. Prints req/s per round and the ratio of the
medians (target: within 2%)."""
import json
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.abspath(os.path.join(HERE, ".."))
sys.path.insert(0, os.path.join(TOP, "tests", "integration"))
sys.path.insert(0, os.path.join(TOP, "tests", "fakes"))
sys.path.insert(0, HERE)
import fakes  # noqa: E402
import bench  # noqa: E402
from bench import CONNS, THREADS, wrk  # noqa: E402
from pe_harness import Httpd  # noqa: E402

DURATION = os.environ.get("BENCH_METRICS_DURATION", "5s")
CONF = """PEArgon2Cost 1 1M 1
PEDefaultAccessRTypes bpe bcot hcot react tot
PEDefaultLevel ultra
PEMetrics %s
<Location "/metrics">
    PEApi metrics
</Location>
"""


def start(name, on, up):
    h = Httpd(name, extra_conf=CONF % ("On" if on else "Off"), env={"PE_UPSTREAM_URL": up.chat_url,
                                                                   "PE_LOGLEVEL": "warn"})
    h.start()
    r = h.post("/v1/users/register", {"username": name, "name": "Bench User", "email": name + "@example.com",
                                      "password": "Zebra-Lamp-42"})
    assert r.status == 201, r
    h.sqlite("UPDATE pe_users SET conv_limit = 1000000000, conv_reset = 1000000000, reset_day = ? WHERE id = ?",
             (int(time.time() // 86400), r.json["user_id"]))
    return h, r.json["api_key"]


def main():
    bench.DURATION = DURATION
    up = fakes.start_bench_upstream()
    miss = json.dumps({"level": "low", "r_type": "bpe", "messages": [{"role": "user", "content": "Metrics %d"}]})
    hit = miss.replace("%d", "fixed")
    inst = {}
    rounds = {(on, kind): [] for on in (True, False) for kind in ("miss", "hit")}
    try:
        for on in (True, False):
            inst[on] = start("bench_metrics_%s" % ("on" if on else "off"), on, up)
        for on, (h, key) in inst.items():
            url = "http://127.0.0.1:%d/v1/prompt/completions" % h.port
            for body in (miss, hit):  # warm-up: connections, handles, the cache entry
                subprocess.run(["wrk", "-t" + THREADS, "-c" + CONNS, "-d2s", "-s", os.path.join(HERE, "wrk-post.lua"),
                                url], env=dict(os.environ, BENCH_BODY=body, BENCH_AUTH=key), capture_output=True,
                               check=True)
        for _ in range(int(os.environ.get("BENCH_METRICS_ROUNDS", "3"))):
            for on in (True, False):
                h, key = inst[on]
                url = "http://127.0.0.1:%d/v1/prompt/completions" % h.port
                for kind, body in (("miss", miss), ("hit", hit)):
                    r = wrk(url, body, key)
                    rounds[(on, kind)].append(r["rps"])
        counted = inst[True][0].get("/metrics").body.decode()
        assert 'promptenchanter_cache_requests_total{cache="response",result="hit"} 0' not in counted
    finally:
        for h, _ in inst.values():
            h.stop()
        up.stop()
    print("completions, PEMetrics On vs Off (wrk -t%s -c%s, %s per round, rounds alternate)" % (THREADS, CONNS,
                                                                                               DURATION))
    out = {}
    for kind in ("miss", "hit"):
        on, off = statistics.median(rounds[(True, kind)]), statistics.median(rounds[(False, kind)])
        out[kind] = {"on_rps": rounds[(True, kind)], "off_rps": rounds[(False, kind)], "ratio": on / off}
        print("%-4s on %s off %s  ratio on/off %.3f (target >= 0.98)" % (
            kind, " ".join("%.0f" % v for v in rounds[(True, kind)]),
            " ".join("%.0f" % v for v in rounds[(False, kind)]), on / off))
    print(json.dumps({"bench": "metrics", "results": out}))


if __name__ == "__main__":
    main()
