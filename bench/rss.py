"""make bench-rss: child RSS over a long run. The bench's httpd (bench.BenchSetup; event MPM,
BENCH_SERVERS children, 2 unless set) takes BENCH_RSS_REQUESTS (200000) completions in wrk runs of
BENCH_RSS_CHUNK (5s), cache misses and cache hits taking turns; the RSS of every child is read
from /proc/<pid>/status after the warm-up (start), once half the requests are done (middle) and
at the end (and at the quarter points). Prints the samples per child and the growth start -> end
(target: within 5%). BENCH_EXTRA_CONF adds configuration lines, as in bench.py."""
import json
import os
import re
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from bench import CONNS, THREADS, BenchSetup, child_pids, loadavg, uptime, wrk  # noqa: E402

TOTAL = int(os.environ.get("BENCH_RSS_REQUESTS", "200000"))
CHUNK = os.environ.get("BENCH_RSS_CHUNK", "5s")


def children(parent):
    """{pid: VmRSS KiB} of the direct children of parent (from /proc)."""
    out = {}
    for pid in child_pids().get(parent, []):
        try:
            with open("/proc/%d/status" % pid) as f:
                out[pid] = int(re.search(r"VmRSS:\s+(\d+)", f.read()).group(1))
        except (OSError, AttributeError):
            continue
    return out


def main():
    before = uptime()
    load = [loadavg()]
    s = BenchSetup(name="bench_rss", mpm="event", servers=os.environ.get("BENCH_SERVERS", "2"))
    samples, done, per_kind, bad, t0 = {}, 0, {"pe_miss": 0, "pe_hit": 0}, 0, time.time()
    try:
        s.start()
        targets = [t for t in s.targets() if t[0] != "mod_proxy"]
        s.warm_up(targets)
        time.sleep(1)
        parent = s.h.pid()
        samples["start"] = children(parent)
        i = 0
        while done < TOTAL:
            name, url, body, auth = targets[i % 2]
            r = wrk(url, body, auth, duration=CHUNK)
            done += r["requests"]
            per_kind[name] += r["requests"]
            bad += r["non2xx"]
            i += 1
            for q in (1, 2, 3):  # the quarter points; the half is the "middle" sample
                if "q%d" % q not in samples and done >= TOTAL * q // 4:
                    samples["q%d" % q] = children(parent)
            if "middle" not in samples and "q2" in samples:
                samples["middle"] = samples["q2"]
                load.append(loadavg())
        time.sleep(1)
        samples["end"] = children(parent)
        # the misses may have pushed the hit's entry out of the cache: one request stores it again
        s.h.post("/v1/prompt/completions", json.loads(s.hit_body), headers={"Authorization": "Bearer " + s.key})
        s.check_hit()
        load.append(loadavg())
    finally:
        s.stop()
    after = uptime()
    print("child RSS over %d completions (%d misses, %d hits; wrk -t%s -c%s in %s runs; %d non-2xx; %.0f s)"
          % (done, per_kind["pe_miss"], per_kind["pe_hit"], THREADS, CONNS, CHUNK, bad, time.time() - t0))
    print("store %s, MPM event, %d children x 64 threads" % (s.store, s.servers))
    print("uptime before: %s\nuptime after:  %s" % (before, after))
    print("%8s %10s %10s %10s %9s %9s" % ("child", "start KiB", "middle KiB", "end KiB", "start>end", "mid>end"))
    worst = 0.0
    rows = []
    for pid, start in sorted(samples["start"].items()):
        mid, end = samples.get("middle", {}).get(pid), samples["end"].get(pid)
        if mid is None or end is None:
            print("%8d %10d %10s %10s  (the child exited during the run)" % (pid, start, mid or "-", end or "-"))
            worst = float("inf")
            continue
        g, gm = (end - start) * 100.0 / start, (end - mid) * 100.0 / mid
        worst = max(worst, abs(g))
        rows.append({"pid": pid, "start": start, "middle": mid, "end": end, "growth_pct": g})
        print("%8d %10d %10d %10d %+8.1f%% %+8.1f%%" % (pid, start, mid, end, g, gm))
    print("every child at 0, 25, 50, 75 and 100% of the requests (KiB):")
    for pid in sorted(samples["start"]):
        print("  %d: %s" % (pid, " ".join(str(samples[k].get(pid, "-")) for k in ("start", "q1", "q2", "q3", "end"))))
    print("largest change start -> end: %.1f%% (target within 5%%: %s)" % (worst, "met" if worst <= 5 else "NOT met"))
    print(json.dumps({"bench": "rss", "requests": done, "per_kind": per_kind, "non2xx": bad, "children": rows,
                      "worst_pct": worst, "loadavg": load, "uptime": [before, after], "connections": int(CONNS)}))


if __name__ == "__main__":
    main()
