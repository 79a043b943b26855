"""make bench-scaling: the completions bench (bench/bench.py) with 1, 2 and 4 event children
(64 threads each) and with 64 and 256 wrk connections, every combination, one httpd per run.
Prints one line per run: req/s of mod_proxy, cache miss and cache hit, the ratios, the load
average before and after. Knobs: BENCH_SCALING_SERVERS ("1 2 4"), BENCH_SCALING_CONNECTIONS
("64 256"), BENCH_STORE (sqlite3), BENCH_DURATION (10s); the X-PE-Overhead-Ms sampling of
bench.py is off here (BENCH_OVERHEAD_N=0) unless set."""
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


sys.path.insert(0, HERE)
from bench import uptime  # noqa: E402


def main():
    servers = os.environ.get("BENCH_SCALING_SERVERS", "1 2 4").split()
    conns = os.environ.get("BENCH_SCALING_CONNECTIONS", "64 256").split()
    rows = []
    for n in servers:
        for c in conns:
            env = dict(os.environ, BENCH_MPM="event", BENCH_SERVERS=n, BENCH_CONNECTIONS=c)
            env.setdefault("BENCH_OVERHEAD_N", "0")
            before = uptime()
            p = subprocess.run([sys.executable, os.path.join(HERE, "bench.py")], env=env, capture_output=True,
                               text=True)
            after = uptime()
            sys.stdout.write(p.stdout)
            if p.returncode != 0:
                sys.stderr.write(p.stderr)
                raise SystemExit("bench-scaling: bench.py failed with %d children, %s connections" % (int(n), c))
            res = json.loads(p.stdout.strip().splitlines()[-1])
            rows.append((int(n), int(c), res, before, after))
            print("uptime before: %s\nuptime after:  %s\n" % (before, after))
    print("scaling (event MPM, 64 threads a child, store %s, wrk -t%s -d%s)" %
          (rows[0][2]["store"], os.environ.get("BENCH_THREADS", "2"), rows[0][2]["duration"]))
    print("%8s %6s %10s %10s %10s %6s %6s %7s %14s" % ("children", "conns", "mod_proxy", "pe_miss", "pe_hit",
                                                       "miss", "hit", "RSS", "load avg"))
    summary = []
    for n, c, res, before, after in rows:
        r = res["results"]
        base = r["mod_proxy"]["rps"]
        print("%8d %6d %10.0f %10.0f %10.0f %6.2f %6.2f %+6.1f%% %6.2f->%5.2f" % (
            n, c, base, r["pe_miss"]["rps"], r["pe_hit"]["rps"], r["pe_miss"]["rps"] / base,
            r["pe_hit"]["rps"] / base, res["rss_growth_max_pct"], res["loadavg"][0], res["loadavg"][-1]))
        summary.append({"children": n, "connections": c, "rps": {k: v["rps"] for k, v in r.items()},
                        "p99": {k: v["p99"] for k, v in r.items()}, "non2xx": {k: v["non2xx"] for k, v in r.items()},
                        "loadavg": res["loadavg"], "uptime": [before, after]})
    print(json.dumps({"bench": "scaling", "runs": summary}))


if __name__ == "__main__":
    main()
