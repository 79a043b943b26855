#!/usr/bin/env bash
# make bench: plain mod_proxy vs PromptEnchanter completions (cache miss, cache hit) in one httpd,
# on each store (SQLite, PostgreSQL, MongoDB),
# the access layer on vs off,
# all against the node fake upstream, measured with wrk on loopback; then the research pipeline
# (bench/research.sh). See docs/BENCHMARKS.md.
#   BENCH_DURATION (10s)  BENCH_CONNECTIONS (32)  BENCH_THREADS (2)
set -euo pipefail
cd "$(dirname "$0")/.."
command -v wrk >/dev/null || { echo "bench: wrk is missing (make deps)" >&2; exit 1; }
command -v node >/dev/null || { echo "bench: node is missing" >&2; exit 1; }
python3 bench/bench.py "$@"
# The same completions run on the other stores, each server started by the bench (BENCH_STORE).
for store in pgsql mongodb; do BENCH_STORE=$store python3 bench/bench.py "$@"; done
# Access layer: GET /health with the access layer on vs off, event and prefork (bench/access.py).
python3 bench/access.py
# Research: depth=high against delayed fixture pages, parallel vs sequential (bench/research.sh).
bash bench/research.sh
