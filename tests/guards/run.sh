#!/usr/bin/env bash
# Project guards: stable log ids, documented directives. Prints one line per guard and
# `N passed, N failed`; exits non-zero on any failure.
set -u
cd "$(dirname "$0")/../.."
pass=0; fail=0
ok() { echo "guard ok:   $1"; pass=$((pass+1)); }
ko() { echo "guard FAIL: $1"; fail=$((fail+1)); }

srcs=$(git ls-files -co --exclude-standard -- '*.c' '*.h' 2>/dev/null | grep -v '^tests/' || find src include -name '*.[ch]')
ids=$(grep -ohE 'PE_LOGNO\(\s*[0-9]{5}\s*\)' $srcs mod_promptenchanter.c 2>/dev/null | grep -oE '[0-9]{5}')
dups=$(printf '%s\n' $ids | sort | uniq -d | tr '\n' ' ')
[ -z "$dups" ] && ok "log ids used once" || ko "log ids used more than once: $dups"
undocumented=""
for id in $(printf '%s\n' $ids | sort -u); do
  grep -q "PE$id" docs/log-messages.md || undocumented="$undocumented PE$id"
done
[ -z "$undocumented" ] && ok "log ids listed in docs/log-messages.md" || ko "log ids missing from docs/log-messages.md:$undocumented"
stale=""
for id in $(grep -oE '^\| *PE[0-9]{5}' docs/log-messages.md | grep -oE '[0-9]{5}'); do
  printf '%s\n' $ids | grep -qx "$id" || stale="$stale PE$id"
done
[ -z "$stale" ] && ok "docs/log-messages.md lists no unused id" || ko "documented ids no code uses:$stale"
bad=$(grep -nE '"PE[0-9]{4,6}:' $srcs 2>/dev/null | grep -v PE_LOGNO | head -3)
[ -z "$bad" ] && ok "log ids written through PE_LOGNO" || ko "log ids written by hand: $bad"

dirs=$(grep -ohE 'AP_INIT_[A-Z0-9_]+\(\s*"PE[A-Za-z0-9]+' $srcs | grep -oE 'PE[A-Za-z0-9]+' | sort -u)
missing=""
for d in $dirs; do grep -q "^### $d\b" docs/configuration.md || missing="$missing $d"; done
[ -z "$missing" ] && ok "directives documented in docs/configuration.md" || ko "directives not documented:$missing"
extra=""
for d in $(grep -oE '^### PE[A-Za-z0-9]+' docs/configuration.md | cut -c5-); do
  printf '%s\n' $dirs | grep -qx "$d" || extra="$extra $d"
done
[ -z "$extra" ] && ok "docs/configuration.md documents no missing directive" || ko "documented directives the code lacks:$extra"

# Core code must not include httpd headers (it is compiled without them; this names the file).
leak=$(grep -lE '#include +"(httpd|http_[a-z_]+|ap_[a-z_]+|mod_[a-z_]+|util_[a-z_]+)\.h"' $(ls src/*/*.c src/*/*/*.c 2>/dev/null | grep -v '^src/apache/') 2>/dev/null | tr '\n' ' ')
[ -z "$leak" ] && ok "core sources free of httpd headers" || ko "core sources include httpd headers: $leak"

# Every START_TEST is registered with tcase_add_test (mod_auth_openidc's check_registration).
unreg=""
for f in tests/unit/test_*.c; do
  for t in $(grep -oE 'START_TEST\(\s*[a-z0-9_]+' "$f" | sed 's/START_TEST(\s*//'); do
    grep -qE "tcase_add_(loop_)?test\([^,]+,\s*$t\b" "$f" || unreg="$unreg $f:$t"
  done
done
[ -z "$unreg" ] && ok "every unit test registered" || ko "unit tests never registered:$unreg"

echo "guards: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
