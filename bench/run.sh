#!/usr/bin/env bash
# make bench: plain mod_proxy vs PromptEnchanter completions (cache miss, cache hit) in one httpd,
# on each store (SQLite, PostgreSQL, MongoDB) and each MPM (event, prefork),
# the access layer on vs off,
# all against the node fake upstream, measured with wrk on loopback; then the research pipeline
# (bench/research.sh). See docs/BENCHMARKS.md.
#   BENCH_DURATION (10s)  BENCH_CONNECTIONS (32)  BENCH_THREADS (2)
#   BENCH_STORES ("sqlite3 pgsql mongodb")  BENCH_MPMS ("event prefork")
# The optional benches are other targets: make bench-peers (Portkey), bench-scaling, bench-rss.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v wrk >/dev/null || { echo "bench: wrk is missing (make deps)" >&2; exit 1; }
command -v node >/dev/null || { echo "bench: node is missing" >&2; exit 1; }
# Completions on every store and MPM, each store's server started by the bench (BENCH_STORE).
for store in ${BENCH_STORES:-sqlite3 pgsql mongodb}; do
  for mpm in ${BENCH_MPMS:-event prefork}; do
    echo "== completions: store $store, MPM $mpm; $(uptime)"
    BENCH_STORE=$store BENCH_MPM=$mpm python3 bench/bench.py "$@"
  done
done
# Metrics: completions with PEMetrics On vs Off (bench/metrics.py).
python3 bench/metrics.py
# Access layer: GET /health with the access layer on vs off, event and prefork (bench/access.py).
python3 bench/access.py
# Research: depth=high against delayed fixture pages, parallel vs sequential (bench/research.sh).
bash bench/research.sh
