"""make bench-rss: child RSS over a long run. The bench's httpd (bench.BenchSetup; event MPM,
BENCH_SERVERS children, 2 unless set) takes BENCH_RSS_REQUESTS (200000) completions in wrk runs of
BENCH_RSS_CHUNK (5s), cache misses and cache hits taking turns (BENCH_RSS_KINDS=pe_hit: hits only);
the RSS of every child is read from /proc/<pid>/status after the warm-up (start), at the quarter
points (the half is the "middle") and at the end, with the resident memory by kind of mapping and
the child's SQLite connections. Prints the growth start -> end (target: within 5%) and q1 -> end
(after the first quarter, which is warm-up: docs/BENCHMARKS.md). BENCH_RSS_GDB=1 and
BENCH_RSS_TRIM=1 add gdb probes (below). BENCH_EXTRA_CONF adds configuration lines, as in bench.py."""
import json
import os
import re
import subprocess
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


def breakdown(pid):
    """A child's resident KiB by kind of mapping, from /proc/<pid>/smaps: "heap" (the brk heap: glibc's
    main malloc arena), "arena" (glibc's other malloc arenas: anonymous mappings on a 64 MiB boundary),
    "stack" (the threads' 8 MiB stacks), "anon" (other anonymous mappings: malloc's mmap()s of large
    blocks, the libraries' zeroed data), "file" (the binaries and libraries) and "shm" (shared memory:
    the cache, the metrics block)."""
    kinds = {"heap": 0, "arena": 0, "stack": 0, "anon": 0, "file": 0, "shm": 0}
    kind = None
    try:
        with open("/proc/%d/smaps" % pid) as f:
            for line in f:
                head = line.split()
                m = re.match(r"^([0-9a-f]+)-([0-9a-f]+) ", line)
                if m:
                    lo, hi = int(m.group(1), 16), int(m.group(2), 16)
                    name = head[5] if len(head) > 5 else ""
                    kind = "shm" if head[1][3] == "s" else "heap" if name == "[heap]" else \
                        "file" if name and not name.startswith("[") else \
                        "arena" if lo % (64 << 20) == 0 else "stack" if hi - lo == 8 << 20 else "anon"
                elif head[0] == "Rss:":
                    kinds[kind] += int(head[1])
    except OSError:
        return None
    return kinds


def probe(pid):
    """BENCH_RSS_GDB=1: SQLite's own count of the memory it holds in a child (sqlite3_memory_used: the
    page caches, schemas and statements of every connection of the child), read with gdb attached for a
    moment while no request runs. (Not malloc_stats(): it takes every arena's lock, and a thread
    stopped holding one hangs it.)"""
    try:
        out = subprocess.run(["gdb", "-p", str(pid), "-batch", "-nx", "-ex", "set unwindonsignal on",
                              "-ex", "call (long long)sqlite3_memory_used()"],
                             capture_output=True, text=True, timeout=60).stdout
    except subprocess.TimeoutExpired:
        return None
    m = re.search(r"^\$1 = (\d+)", out, re.M)
    return int(m.group(1)) if m else None


def trim(pid):
    """BENCH_RSS_TRIM=1, at the end: glibc's malloc_trim(0) in a child (gdb attached for a moment while no
    request runs), which gives the free pages of every malloc arena back to the system. What it takes away
    was free in malloc but still resident; what stays is memory the child's code still holds (APR's pools
    and free lists, SQLite, libraries) or free memory on pages shared with live blocks."""
    try:
        subprocess.run(["gdb", "-p", str(pid), "-batch", "-nx", "-ex", "set unwindonsignal on",
                        "-ex", "call (int)malloc_trim(0)"], capture_output=True, text=True, timeout=60)
    except subprocess.TimeoutExpired:
        pass


def store_files(pid):
    """How many descriptors a child holds on the SQLite store's file (one per open connection: mod_dbd's
    pool and the log writer's own)."""
    try:
        return sum(1 for fd in os.listdir("/proc/%d/fd" % pid)
                   if os.readlink("/proc/%d/fd/%s" % (pid, fd)).endswith(".db"))
    except OSError:
        return None


def sample(parent):
    """{pid: (VmRSS KiB, breakdown, SQLite connections)} of every child."""
    return {pid: (rss, breakdown(pid), store_files(pid)) for pid, rss in children(parent).items()}


def main():
    before = uptime()
    load = [loadavg()]
    s = BenchSetup(name="bench_rss", mpm="event", servers=os.environ.get("BENCH_SERVERS", "2"))
    samples, done, per_kind, bad, t0 = {}, 0, {"pe_miss": 0, "pe_hit": 0}, 0, time.time()
    try:
        s.start()
        kinds = os.environ.get("BENCH_RSS_KINDS", "pe_miss pe_hit").split()
        targets = [t for t in s.targets() if t[0] in kinds]
        s.warm_up(targets)
        time.sleep(1)
        parent = s.h.pid()
        samples["start"] = sample(parent)
        gdb = os.environ.get("BENCH_RSS_GDB") == "1"
        probes = {"start": {pid: probe(pid) for pid in samples["start"]}} if gdb else {}
        i = 0
        while done < TOTAL:
            name, url, body, auth = targets[i % len(targets)]
            r = wrk(url, body, auth, duration=CHUNK)
            done += r["requests"]
            per_kind[name] += r["requests"]
            bad += r["non2xx"]
            i += 1
            for q in (1, 2, 3):  # the quarter points; the half is the "middle" sample
                if "q%d" % q not in samples and done >= TOTAL * q // 4:
                    samples["q%d" % q] = sample(parent)
                    if q == 2:
                        load.append(loadavg())
        time.sleep(1)
        samples["end"] = sample(parent)
        if gdb:
            probes["end"] = {pid: probe(pid) for pid in samples["end"]}
        if os.environ.get("BENCH_RSS_TRIM") == "1":
            for pid in samples["end"]:
                trim(pid)
            samples["trimmed"] = sample(parent)
        if "pe_hit" in kinds:
            # the misses may have pushed the hit's entry out of the cache: one request stores it again
            s.h.post("/v1/prompt/completions", json.loads(s.hit_body),
                     headers={"Authorization": "Bearer " + s.key})
            s.check_hit()
        load.append(loadavg())
    finally:
        s.stop()
    after = uptime()
    print("child RSS over %d completions (%d misses, %d hits; wrk -t%s -c%s in %s runs; %d non-2xx; %.0f s)"
          % (done, per_kind["pe_miss"], per_kind["pe_hit"], THREADS, CONNS, CHUNK, bad, time.time() - t0))
    print("store %s, MPM event, %d children x 64 threads%s" % (
        s.store, s.servers, "; " + " ".join(l.strip() for l in os.environ.get("BENCH_EXTRA_CONF", "").splitlines()
                                            if l.strip()) if os.environ.get("BENCH_EXTRA_CONF") else ""))
    if os.environ.get("MALLOC_ARENA_MAX"):
        print("MALLOC_ARENA_MAX=%s" % os.environ["MALLOC_ARENA_MAX"])
    print("uptime before: %s\nuptime after:  %s" % (before, after))
    # Two measures: start -> end (the target, from right after the 3 s warm-up), and
    # q1 -> end, after a first quarter of the run taken as a longer warm-up (the threads' pools,
    # malloc's arenas and SQLite's page caches filling up): what is left there grows with the requests.
    print("%8s %10s %10s %10s %10s %9s %9s" % ("child", "start KiB", "q1 KiB", "middle KiB", "end KiB",
                                              "start>end", "q1>end"))
    worst = worst_q1 = 0.0
    rows = []
    for pid, (start, _, _) in sorted(samples["start"].items()):
        q1, end = samples.get("q1", {}).get(pid), samples["end"].get(pid)
        mid = samples.get("q2", {}).get(pid)
        if q1 is None or mid is None or end is None:
            print("%8d %10d  (the child exited during the run)" % (pid, start))
            worst = worst_q1 = float("inf")
            continue
        g, gq = (end[0] - start) * 100.0 / start, (end[0] - q1[0]) * 100.0 / q1[0]
        worst, worst_q1 = max(worst, abs(g)), max(worst_q1, abs(gq))
        rows.append({"pid": pid, "start": start, "q1": q1[0], "middle": mid[0], "end": end[0], "growth_pct": g,
                     "after_warmup_pct": gq,
                     "kinds": [samples[p][pid][1] for p in ("start", "q1", "q2", "q3", "end")],
                     "sqlite_connections": [samples[p][pid][2] for p in ("start", "q1", "q2", "q3", "end")]})
        print("%8d %10d %10d %10d %10d %+8.1f%% %+8.1f%%" % (pid, start, q1[0], mid[0], end[0], g, gq))
    print("every child at 0, 25, 50, 75 and 100% of the requests (KiB, and by kind of mapping):")
    for pid in sorted(samples["start"]):
        print("  %d: %s" % (pid, " ".join(str(samples[k][pid][0]) if pid in samples.get(k, {}) else "-"
                                           for k in ("start", "q1", "q2", "q3", "end"))))
        for kind in ("heap", "arena", "stack", "anon", "file", "shm"):
            print("    %-5s %s" % (kind, " ".join(
                str(samples[k][pid][1][kind]) if pid in samples.get(k, {}) and samples[k][pid][1] else "-"
                for k in ("start", "q1", "q2", "q3", "end"))))
        print("    SQLite connections %s" % " ".join(
            str(samples[k][pid][2]) if pid in samples.get(k, {}) else "-" for k in ("start", "q1", "q2", "q3", "end")))
    for pid in sorted(probes.get("start", {})):
        print("  %d: SQLite's memory (sqlite3_memory_used) %s -> %s bytes"
              % (pid, probes["start"][pid], probes["end"].get(pid)))
    for pid in sorted(samples.get("trimmed", {})):
        t = samples["trimmed"][pid]
        print("  %d after malloc_trim(0): %d KiB (%s)" % (pid, t[0], " ".join("%s %d" % kv for kv in t[1].items())))
    print("largest change start -> end: %.1f%% (target within 5%%: %s)" % (worst, "met" if worst <= 5 else "NOT met"))
    print("largest change after the first quarter (q1 -> end): %.1f%%" % worst_q1)
    print(json.dumps({"bench": "rss", "requests": done, "per_kind": per_kind, "non2xx": bad, "children": rows,
                      "worst_pct": worst, "worst_after_warmup_pct": worst_q1, "loadavg": load, "gdb": probes,
                      "trimmed": {pid: t[0] for pid, t in samples.get("trimmed", {}).items()},
                      "uptime": [before, after], "connections": int(CONNS),
                      "extra_conf": os.environ.get("BENCH_EXTRA_CONF", ""),
                      "malloc_arena_max": os.environ.get("MALLOC_ARENA_MAX", "")}))


if __name__ == "__main__":
    main()
