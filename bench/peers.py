"""make bench-peers: PromptEnchanter next to a peer gateway, in one run. The bench's httpd
(bench.BenchSetup: plain mod_proxy, a cache miss, a cache hit) and the Portkey gateway
(@portkey-ai/gateway 1.15.2 from bench/package.json, installed by build/bench-peers-deps.sh) in
front of the same node fake upstream, each measured with wrk in turn. Portkey binds to every
interface, so it runs with bench/loopback-only.mjs preloaded, and this script refuses to measure
unless `ss -ltnp` shows its every listening socket on 127.0.0.1. Prints req/s, p50, p99 and the
ratios (target: cache miss >= 10x Portkey). Knobs: those of bench.py (BENCH_DURATION,
BENCH_CONNECTIONS, BENCH_STORE, BENCH_MPM, BENCH_SERVERS)."""
import json
import os
import pathlib
import re
import socket
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from bench import CONNS, DURATION, THREADS, BenchSetup, child_pids, loadavg, print_results, uptime, wrk  # noqa: E402
from pe_harness import free_port  # noqa: E402

GATEWAY = os.path.join(HERE, "node_modules", "@portkey-ai", "gateway", "build", "start-server.js")
SHIM = pathlib.Path(HERE, "loopback-only.mjs").as_uri()


def descendants(pid):
    """pid and every process below it (from /proc)."""
    children = child_pids()
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def listening(pids):
    """Local addresses of every TCP and UDP socket the processes listen on (ss -ltnup)."""
    out = subprocess.run(["ss", "-H", "-ltunp"], capture_output=True, text=True, check=True).stdout
    addrs = []
    for line in out.splitlines():
        owners = {int(p) for p in re.findall(r"pid=(\d+)", line)}
        if owners & set(pids):
            addrs.append(line.split()[4])
    return addrs


class Portkey:
    """The Portkey gateway on a free loopback port, stopped by pid."""

    def __init__(self, log_dir):
        self.port = free_port()
        self.log_path = os.path.join(log_dir, "portkey.log")
        self.proc = None

    def start(self):
        if not os.path.exists(GATEWAY):
            raise SystemExit("bench-peers: %s is missing (bash build/bench-peers-deps.sh)" % GATEWAY)
        log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(["node", "--import", SHIM, GATEWAY, "--port=%d" % self.port, "--headless"],
                                     cwd=HERE, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        log.close()
        deadline = time.time() + 30
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("portkey exited with %s; see %s" % (self.proc.returncode, self.log_path))
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                break
            except OSError:
                time.sleep(0.2)
        else:
            raise RuntimeError("portkey did not listen on 127.0.0.1:%d; see %s" % (self.port, self.log_path))
        addrs = listening(descendants(self.proc.pid))
        print("portkey (pid %d) listens on: %s" % (self.proc.pid, " ".join(addrs)))
        off = [a for a in addrs if not a.startswith("127.0.0.1:")]
        if not addrs or off:
            raise RuntimeError("refusing to run: portkey listens on %s (only 127.0.0.1 is allowed)"
                               % (" ".join(off) or "nothing ss can see"))
        return self

    def rss_kib(self):
        with open("/proc/%d/status" % self.proc.pid) as f:
            return int(re.search(r"VmRSS:\s+(\d+)", f.read()).group(1))

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.proc = None


def main():
    before = uptime()
    load = [loadavg()]
    s = BenchSetup(name="bench_peers")
    pk = None
    try:
        s.start()
        pk = Portkey(s.h.dir).start()
        headers = "x-portkey-provider: openai\nx-portkey-custom-host: http://127.0.0.1:%d/v1\n" % s.up.port
        targets = s.targets() + [("portkey", "http://127.0.0.1:%d/v1/chat/completions" % pk.port, s.proxy_body,
                                  "sk-fake", headers)]
        # one request through Portkey: it reaches the fake upstream and relays its reply
        probe = subprocess.run(["curl", "-s", "--noproxy", "*", "-o", "-", "-w", "\n%{http_code}",
                                targets[-1][1], "-H", "Content-Type: application/json",
                                "-H", "Authorization: Bearer sk-fake"] +
                               sum((["-H", line] for line in headers.splitlines()), []) +
                               ["--data", s.proxy_body.replace("%d", "probe")],
                               capture_output=True, text=True, timeout=30)
        body, status = probe.stdout.rsplit("\n", 1)
        assert status == "200" and json.loads(body)["object"] == "chat.completion", probe.stdout
        s.warm_up(targets)
        results = {}
        for name, url, body, auth, *hdrs in targets:
            results[name] = wrk(url, body, auth, hdrs[0] if hdrs else "")
        s.check_hit()
        pk_rss = pk.rss_kib()
        load.append(loadavg())
    finally:
        if pk:
            pk.stop()
        s.stop()
    after = uptime()
    print("peers: PromptEnchanter (store %s, MPM %s, %d child(ren)) and Portkey 1.15.2 (one node process), "
          "same node fake upstream" % (s.store, s.mpm, s.servers))
    print("wrk -t%s -c%s -d%s --latency; uptime before: %s" % (THREADS, CONNS, DURATION, before))
    print("uptime after: %s" % after)
    print_results(results)
    pk_rps = results["portkey"]["rps"]
    print("ratio pe_miss/portkey = %.1f (target >= 10)" % (results["pe_miss"]["rps"] / pk_rps))
    print("ratio pe_hit/portkey  = %.1f" % (results["pe_hit"]["rps"] / pk_rps))
    print("ratio mod_proxy/portkey = %.1f" % (results["mod_proxy"]["rps"] / pk_rps))
    print("portkey RSS after the runs: %d KiB" % pk_rss)
    print(json.dumps({"bench": "peers", "store": s.store, "mpm": s.mpm, "servers": s.servers,
                      "connections": int(CONNS), "duration": DURATION, "loadavg": load,
                      "uptime": [before, after], "portkey_rss_kib": pk_rss,
                      "results": {n: {k: v for k, v in r.items() if k != "raw"} for n, r in results.items()}}))


if __name__ == "__main__":
    main()
