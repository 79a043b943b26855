#!/usr/bin/env bash
# make test-memcheck: the unit tests under valgrind, then the whole integration suite against an
# ASan+UBSan build of the module. Passes only with 0 valgrind errors and 0 sanitizer reports.
set -u
cd "$(dirname "$0")/.."
asan_dir=.libs/asan
fail=0

echo "== unit tests under valgrind"
make -s .libs/pe_unit_tests || exit 1
CK_FORK=no valgrind -q --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite \
  .libs/pe_unit_tests > .libs/valgrind-unit.log 2>&1
rc=$?
tail -n 3 .libs/valgrind-unit.log
if [ $rc -ne 0 ]; then echo "valgrind: errors (exit $rc), see .libs/valgrind-unit.log"; fail=1; else echo "valgrind: 0 errors"; fi

echo "== integration tests against an ASan/UBSan build"
make -s OBJDIR=$asan_dir/obj MODULE=$asan_dir/mod_promptenchanter.so OPT="-O1 -g" \
  SANITIZE="-fsanitize=address,undefined -fno-omit-frame-pointer" $asan_dir/mod_promptenchanter.so || exit 1
# httpd dlcloses modules at exit, which hides leak stacks; a no-op dlclose keeps them readable.
printf 'int dlclose(void *h) { (void)h; return 0; }\n' > $asan_dir/nodlclose.c
cc -shared -fPIC -o $asan_dir/nodlclose.so $asan_dir/nodlclose.c
reports=$(pwd)/$asan_dir/reports
rm -rf "$reports"; mkdir -p "$reports"; chmod 1777 "$reports"
export PE_MODULE=$(pwd)/$asan_dir/mod_promptenchanter.so
export PE_HTTPD_PRELOAD="$(gcc -print-file-name=libasan.so) $(pwd)/$asan_dir/nodlclose.so"
export ASAN_OPTIONS="detect_leaks=1:fast_unwind_on_malloc=0:log_path=$reports/asan:abort_on_error=0"
export UBSAN_OPTIONS="print_stacktrace=1:log_path=$reports/ubsan"
export LSAN_OPTIONS="suppressions=$(pwd)/build/lsan.supp:print_suppressions=0"
python3 tests/integration/run.py || fail=1
if ls "$reports"/* >/dev/null 2>&1; then
  echo "sanitizer reports:"; head -n 40 "$reports"/*; fail=1
else
  echo "sanitizers: 0 reports"
fi
exit $fail
