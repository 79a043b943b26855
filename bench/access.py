"""make bench, access layer: GET /health through the access layer (firewall lookups and a
per-address token bucket that never runs dry) against the same route with `PEAccess Off`, in one
httpd per MPM (event, prefork), wrk on loopback. Rounds alternate on/off; the medians and their
ratio are printed, then one JSON line of the figures (target: on / off >= 0.95)."""
import json
import os
import re
import statistics
import subprocess
import sys

TOP = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, os.path.join(TOP, "tests", "integration"))
from pe_harness import Httpd  # noqa: E402

DURATION = os.environ.get("BENCH_ACCESS_DURATION", "5s")
CONNS = os.environ.get("BENCH_ACCESS_CONNECTIONS", "16")
THREADS = os.environ.get("BENCH_THREADS", "2")
ROUNDS = int(os.environ.get("BENCH_ACCESS_ROUNDS", "3"))

# The limit is the largest accepted and the bucket starts full, so no request of the run is
# refused: what is measured is the cost of the checks, not of 429s.
CONF = """PEIPRateLimit 1000000/min burst=1000000
PEAutoBlock 10 15m 15m
PEAccessRefresh 10s
<Location /on/>
    PEBaseURI /on
</Location>
<Location /off/>
    PEBaseURI /off
    PEAccess Off
</Location>
"""


def wrk(url):
    out = subprocess.run(["wrk", "-t" + THREADS, "-c" + CONNS, "-d" + DURATION, url], capture_output=True, text=True,
                         check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    return rps, int(non2xx.group(1)) if non2xx else 0


def run(mpm):
    h = Httpd("bench-access-" + mpm, mpm=mpm, extra_conf=CONF + os.environ.get("BENCH_ACCESS_EXTRA_CONF", ""))
    h.start()
    try:
        base = "http://127.0.0.1:%d" % h.port
        for path in ("/on/health", "/off/health"):
            r = h.get(path)
            if r.status != 200:
                raise RuntimeError("%s answered %d" % (path, r.status))
        if h.get("/on/health").header("X-RateLimit-Limit") is None or h.get("/off/health").header("X-RateLimit-Limit"):
            raise RuntimeError("the access layer is not on where it should be (and only there)")
        subprocess.run(["wrk", "-t" + THREADS, "-c" + CONNS, "-d2s", base + "/on/health"], capture_output=True)
        on, off, bad = [], [], 0
        for _ in range(ROUNDS):
            for path, acc in (("/on/health", on), ("/off/health", off)):
                rps, non2xx = wrk(base + path)
                acc.append(rps)
                bad += non2xx
        res = {"mpm": mpm, "on_rps": round(statistics.median(on)), "off_rps": round(statistics.median(off)),
               "on_runs": [round(x) for x in on], "off_runs": [round(x) for x in off], "non2xx": bad}
        res["ratio"] = round(res["on_rps"] / res["off_rps"], 3)
        return res
    finally:
        h.stop()


def main():
    results = [run(mpm) for mpm in ("event", "prefork")]
    print("access layer, GET /health, wrk -t%s -c%s -d%s, median of %d rounds each" % (THREADS, CONNS, DURATION, ROUNDS))
    print("%-8s %10s %10s %7s %s" % ("mpm", "on req/s", "off req/s", "ratio", "non-2xx"))
    for r in results:
        print("%-8s %10d %10d %7.3f %d" % (r["mpm"], r["on_rps"], r["off_rps"], r["ratio"], r["non2xx"]))
    print(json.dumps({"access": results}))
    return 0 if all(r["non2xx"] == 0 for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
