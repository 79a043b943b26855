#!/usr/bin/env bash
# Build the libFuzzer targets and run each over its seed corpus (tests/fuzz/corpus/<name>) for
# FUZZ_SECONDS (default 10). A crash, leak, timeout or failed property fails the target: the input
# is minimised into .libs/fuzz/crashes/<name>/ and, with FUZZ_KEEP=1 (make fuzz), copied into the
# corpus as crash-<sha1>, so it is replayed by every later run. Prints one line per target and
# `fuzz: N passed, N failed`; exits non-zero on any failure.
#
#   tests/fuzz/run.sh [--quick] [name...]    --quick: FUZZ_SECONDS defaults to 3, fresh work corpus
#
# Environment: FUZZ_SECONDS, FUZZ_TIMEOUT (one input, default 25 s), FUZZ_KEEP, FUZZ_JOBS (targets
# run at once, default 2), FUZZ_ARGS (extra libFuzzer flags, e.g. "-only_ascii=1").
set -u
cd "$(dirname "$0")/../.."

quick=0
if [ "${1:-}" = "--quick" ]; then quick=1; shift; fi
secs=${FUZZ_SECONDS:-$([ $quick = 1 ] && echo 3 || echo 10)}
timeout=${FUZZ_TIMEOUT:-25}
keep=${FUZZ_KEEP:-0}
dir=.libs/fuzz
names=("$@")
if [ ${#names[@]} -eq 0 ]; then
  for f in tests/fuzz/fuzz_*.c; do n=${f#tests/fuzz/fuzz_}; names+=("${n%.c}"); done
fi

pass=0; fail=0
if ! make -s --no-print-directory -j2 $(printf "$dir/fuzz_%s " "${names[@]}") >"$dir.build.log" 2>&1; then
  cat "$dir.build.log"
  for n in "${names[@]}"; do echo "fuzz FAIL: $n (build failed)"; done
  echo "fuzz: 0 passed, ${#names[@]} failed"
  exit 1
fi

export ASAN_OPTIONS="${ASAN_OPTIONS:-abort_on_error=1:detect_leaks=1:symbolize=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
# One target: prints "fuzz ok:" or "fuzz FAIL:" and, on failure, where the minimised input is.
fuzz_one() {
  local n=$1 bin=$dir/fuzz_$1 seeds=tests/fuzz/corpus/$1 work=$dir/work/$1 crashes=$dir/crashes/$1
  local log=$dir/fuzz_$1.log t0=$SECONDS rc runs cov art min kept dict=()
  [ $quick = 1 ] && rm -rf "$work"
  rm -rf "$crashes"
  mkdir -p "$work" "$crashes" "$seeds"
  [ -f tests/fuzz/$n.dict ] && dict=(-dict=tests/fuzz/$n.dict)
  # NB: new inputs go to the work corpus (the first directory), never into the seeds
  "$bin" -max_total_time="$secs" -timeout="$timeout" -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="$crashes/" "${dict[@]}" ${FUZZ_ARGS:-} "$work" "$seeds" >"$log" 2>&1
  rc=$?
  runs=$(sed -nE 's/^stat::number_of_executed_units: *([0-9]+)/\1/p' "$log" | tail -1)
  cov=$(grep -oE 'cov: [0-9]+' "$log" | tail -1)
  if [ $rc -eq 0 ]; then
    echo "fuzz ok:   $n (${runs:-0} inputs in $((SECONDS - t0)) s, ${cov:-cov: ?})"
    return 0
  fi
  echo "fuzz FAIL: $n (exit $rc), log $log:"
  grep -E 'ERROR: |SUMMARY: |property failed|runtime error' "$log" | head -n 5 | sed 's/^/    /'
  art=$(ls -t "$crashes"/crash-* "$crashes"/leak-* "$crashes"/timeout-* "$crashes"/oom-* 2>/dev/null | head -1)
  [ -n "$art" ] || return 1
  min=$crashes/min-$(basename "$art")
  "$bin" -minimize_crash=1 -max_total_time=30 -timeout="$timeout" -exact_artifact_path="$min" "$art" \
    >"$log.min" 2>&1
  [ -s "$min" ] || min=$art
  echo "    input: $min ($(stat -c %s "$min") bytes); reproduce: $bin $min"
  if [ "$keep" = 1 ]; then
    kept=$seeds/crash-$(sha1sum "$min" | cut -c1-40)
    cp "$min" "$kept"
    echo "    kept as $kept: fix the bug, then commit this file with the fix"
  fi
  return 1
}

# FUZZ_JOBS targets at a time (default 2), results printed in order.
results=$dir/results
rm -rf "$results"; mkdir -p "$results"
running=0
for n in "${names[@]}"; do
  fuzz_one "$n" >"$results/$n" &
  running=$((running + 1))
  if [ $running -ge "${FUZZ_JOBS:-2}" ]; then wait -n; running=$((running - 1)); fi
done
wait
for n in "${names[@]}"; do
  cat "$results/$n"
  if grep -q '^fuzz ok:' "$results/$n"; then pass=$((pass + 1)); else fail=$((fail + 1)); fi
done
echo "fuzz: $pass passed, $fail failed"
[ $fail -eq 0 ]
