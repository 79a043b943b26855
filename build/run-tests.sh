#!/usr/bin/env bash
# Runs every test: unit (check), guards, a short fuzz run (tests/fuzz), integration (real httpd on loopback).
# Ends with the check summary and one line `N passed, N failed`; non-zero exit on any failure.
set -u
cd "$(dirname "$0")/.."
start=$(date +%s)
log=$(mktemp -d)
trap 'rm -rf "$log"' EXIT

echo "== unit tests (check)"
# NB: with a private PostgreSQL cluster and the MongoDB stand-in, so the store's conformance suite
# runs on them too.
CK_DEFAULT_TIMEOUT=60 python3 tests/unit/with-stores.py .libs/pe_unit_tests 2>&1 \
  | tee "$log/unit"
unit_rc=${PIPESTATUS[0]}
read -r u_checks u_fail u_err < <(sed -nE 's/^[0-9]+%: Checks: ([0-9]+), Failures: ([0-9]+), Errors: ([0-9]+).*/\1 \2 \3/p' "$log/unit" | tail -1)
u_checks=${u_checks:-0}; u_fail=${u_fail:-0}; u_err=${u_err:-0}
[ "$unit_rc" -eq 0 ] || [ $((u_fail + u_err)) -gt 0 ] || u_err=1

echo "== guards"
bash tests/guards/run.sh 2>&1 | tee "$log/guards"
read -r g_pass g_fail < <(sed -nE 's/^guards: ([0-9]+) passed, ([0-9]+) failed/\1 \2/p' "$log/guards")

echo "== fuzzing (libFuzzer over tests/fuzz/corpus, ${FUZZ_SECONDS:-3} s per target)"
FUZZ_SECONDS=${FUZZ_SECONDS:-3} bash tests/fuzz/run.sh --quick 2>&1 | tee "$log/fuzz"
read -r f_pass f_fail < <(sed -nE 's/^fuzz: ([0-9]+) passed, ([0-9]+) failed/\1 \2/p' "$log/fuzz")

echo "== integration tests (httpd on 127.0.0.1)"
python3 tests/integration/run.py 2>&1 | tee "$log/integ"
integ_rc=${PIPESTATUS[0]}
read -r i_pass i_fail < <(sed -nE 's/^([0-9]+) passed, ([0-9]+) failed.*/\1 \2/p' "$log/integ" | tail -1)
i_pass=${i_pass:-0}; i_fail=${i_fail:-0}
[ "$integ_rc" -eq 0 ] || [ "$i_fail" -gt 0 ] || i_fail=1

passed=$(( u_checks - u_fail - u_err + ${g_pass:-0} + ${f_pass:-0} + i_pass ))
failed=$(( u_fail + u_err + ${g_fail:-1} + ${f_fail:-1} + i_fail ))
echo
echo "== summary ($(( $(date +%s) - start )) s)"
grep -E '^[0-9]+%: Checks:' "$log/unit" | tail -1
echo "unit: $((u_checks - u_fail - u_err)) passed, $((u_fail + u_err)) failed"
echo "guards: ${g_pass:-0} passed, ${g_fail:-1} failed"
echo "fuzz: ${f_pass:-0} passed, ${f_fail:-1} failed"
echo "integration: $i_pass passed, $i_fail failed"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
