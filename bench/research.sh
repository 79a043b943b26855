#!/usr/bin/env bash
# Research benchmark (issue 6): depth=high against fixture pages with a fixed delay, parallel vs
# sequential, ratio to the slowest single fetch chain. Builds the driver from the core objects.
# Env: PE_BENCH_PAGE_MS (500) PE_BENCH_SEARCH_MS (100) PE_BENCH_REPEAT (3).
set -euo pipefail
cd "$(dirname "$0")/.."
make -s all >/dev/null
pkgs="apr-1 apr-util-1 jansson libcurl openssl libargon2 libxml-2.0 libmongoc-1.0 libbson-1.0"
objs=$(find .libs/obj/src -name '*.o' ! -path '*/src/apache/*' | sort)
cc -O2 -Wall -Werror -Iinclude -I.libs -D_GNU_SOURCE $(pkg-config --cflags $pkgs) -o .libs/research_bench bench/research_bench.c \
   $objs $(pkg-config --libs $pkgs)
python3 bench/research_bench.py
