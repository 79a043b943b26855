#!/usr/bin/env python3
"""Research benchmark: depth=high against fixture pages with a fixed delay, parallel vs sequential.

Starts the fake search (fixed delay per search) and the fake web server (pages that answer after a
fixed delay) on loopback, then runs bench/research_bench (the real pipeline: parallel searches,
guarded parallel page fetches, extraction) three ways, REPEAT times each, and reports medians:
  chain       one query, one page: the slowest single fetch chain (search + page)
  parallel    depth=high: 6 queries x 4 distinct pages, PEResearchMaxParallel 24 (the default)
  sequential  the same pipeline with max parallel 1 (every search and page one after another)
Target (issue 6): parallel <= 1.5 x chain. Exit status 1 when the target is missed.
"""
import json
import os
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(TOP, "tests", "fakes"))
import fakes  # noqa: E402

PAGE_MS = int(os.environ.get("PE_BENCH_PAGE_MS", "500"))
SEARCH_MS = int(os.environ.get("PE_BENCH_SEARCH_MS", "100"))
REPEAT = int(os.environ.get("PE_BENCH_REPEAT", "3"))
DRIVER = os.path.join(TOP, ".libs", "research_bench")


def topics(nq, npages, run):
    out = []
    for q in range(nq):
        pages = "|".join("/slow/r%dq%dp%d?ms=%d" % (run, q, i, PAGE_MS) for i in range(npages))
        out.append({"topic": "topic %d [[fake:delay_ms=%d;results=%s]]" % (q, SEARCH_MS, pages), "importance": 0.8})
    return json.dumps({"needs_research": True, "topics": out})


def run(search_url, allow, parallel, depth, nq, npages, i):
    res = subprocess.run([DRIVER, search_url, allow, str(parallel), depth, topics(nq, npages, i)],
                         capture_output=True, text=True, timeout=300)
    if res.returncode != 0:
        sys.exit("research_bench failed: %s" % res.stderr)
    f = dict(kv.split("=") for kv in res.stdout.split())
    if int(f["pages_ok"]) != nq * npages or f["degraded"] != "0":
        sys.exit("unexpected run: %s (stderr: %s)" % (res.stdout.strip(), res.stderr.strip()))
    return int(f["elapsed_ms"])


def main():
    web = fakes.start_web(host="127.0.0.2")
    search = fakes.start_search(web=web)
    try:
        n = 0
        res = {}
        for name, parallel, depth, nq, npages in (("chain", 24, "basic", 1, 1), ("parallel", 24, "high", 6, 4),
                                                  ("sequential", 1, "high", 6, 4)):
            times = []
            for _ in range(REPEAT):
                n += 1
                times.append(run(search.search_url, "127.0.0.2/32:%d" % web.port, parallel, depth, nq, npages, n))
            res[name] = statistics.median(times)
            print("research %-10s %3d pages  median %6d ms  (runs: %s)" % (name, nq * npages, res[name],
                                                                         " ".join(map(str, times))))
    finally:
        search.stop()
        web.stop()
    ratio_chain = res["parallel"] / res["chain"]
    speedup = res["sequential"] / res["parallel"]
    print("research depth=high, pages %d ms, searches %d ms: parallel %d ms = %.2f x the slowest chain "
          "(%d ms; target <= 1.5), sequential %d ms = %.1f x parallel"
          % (PAGE_MS, SEARCH_MS, res["parallel"], ratio_chain, res["chain"], res["sequential"], speedup))
    return 0 if ratio_chain <= 1.5 else 1


if __name__ == "__main__":
    sys.exit(main())
