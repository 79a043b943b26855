"""Cache hits through memcached: X-PE-Overhead-Ms of BENCH_MC_N identical requests answered from
memcached (one httpd and one memcached per round, one request at a time). With
BENCH_MC_BEFORE=/path/to/an/older/mod_promptenchanter.so, rounds alternate between that module and
this build's, and the median of each one's per-round p50 is printed.

    python3 bench/memcached_hits.py
    BENCH_MC_BEFORE=/tmp/old/.libs/mod_promptenchanter.so BENCH_MC_ROUNDS=8 python3 bench/memcached_hits.py
"""
import os
import statistics
import sys
import time
import unittest

TOP = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, os.path.join(TOP, "tests", "integration"))
sys.path.insert(0, os.path.join(TOP, "tests", "fakes"))
from test_completions import BASE_CONF, HttpdTestCase, MemcachedMixin, UpstreamMixin  # noqa: E402

N = int(os.environ.get("BENCH_MC_N", "300"))
ROUNDS = int(os.environ.get("BENCH_MC_ROUNDS", "4"))
RESULTS = []


class MemcachedHits(MemcachedMixin, UpstreamMixin, HttpdTestCase):
    EXTRA_CONF = BASE_CONF

    def test_hits(self):
        uid, key = self.new_user()
        body = {"level": "low", "prompt": "bench %f" % time.time()}
        self.prompt(key, body)
        vals = []
        for _ in range(N):
            r = self.prompt(key, body)
            if r.header("X-PE-Cache") != "hit" and os.environ.get("BENCH_MC_VERBOSE"):
                print("\n".join(self.httpd.error_log().splitlines()[-8:]), file=sys.stderr)
            self.assertEqual(r.header("X-PE-Cache"), "hit")
            vals.append(float(r.header("X-PE-Overhead-Ms")))
        vals.sort()
        RESULTS.append((vals[len(vals) // 2], vals[int(len(vals) * 0.9)]))


def one_round(module):
    if module:
        os.environ["PE_MODULE"] = module
    else:
        os.environ.pop("PE_MODULE", None)
    suite = unittest.defaultTestLoader.loadTestsFromTestCase(MemcachedHits)
    if not unittest.TextTestRunner(stream=sys.stderr if os.environ.get("BENCH_MC_VERBOSE") else open(os.devnull, "w")).run(suite).wasSuccessful():
        sys.exit("round failed (module %s)" % (module or "this build"))
    return RESULTS[-1]


def main():
    before = os.environ.get("BENCH_MC_BEFORE")
    targets = [("before", before), ("this build", None)] if before else [("this build", None)]
    p50s = {name: [] for name, _ in targets}
    for i in range(ROUNDS):
        for name, module in targets:
            p50, p90 = one_round(module)
            p50s[name].append(p50)
            print("round %d %-10s p50 %.3f ms  p90 %.3f ms" % (i + 1, name, p50, p90))
    for name, _ in targets:
        print("%-10s median of %d per-round p50s: %.3f ms" % (name, ROUNDS, statistics.median(p50s[name])))


if __name__ == "__main__":
    main()
