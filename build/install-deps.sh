#!/usr/bin/env bash
# Install the Debian packages mod_promptenchanter needs to build, run and test.
# Idempotent: when every package is present it does nothing and touches no network.
set -euo pipefail

PKGS=(
  apache2 apache2-dev libapr1-dev libaprutil1-dev
  libaprutil1-dbd-sqlite3 libaprutil1-dbd-pgsql
  libmongoc-dev libbson-dev libcurl4-openssl-dev libjansson-dev libargon2-dev libssl-dev
  libxml2-dev check pkg-config memcached postgresql sqlite3 wrk apache2-utils
  python3 curl valgrind procps prometheus
  clang-14 libclang-rt-14-dev   # the fuzz targets: clang with the ASan, UBSan and libFuzzer runtimes
  debhelper dpkg-dev fakeroot lintian  # make deb and its test (dh_apache2 is in apache2-dev)
  chromium chromium-driver python3-selenium   # the console's browser tests
)

missing=()
for p in "${PKGS[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  exec bash "$(dirname "$0")/install-mongo-standin.sh"  # the MongoDB stand-in of the tests
fi

if [ "$(id -u)" -ne 0 ]; then
  echo "install-deps: missing packages: ${missing[*]} (run as root or install them)" >&2
  exit 1
fi

echo "install-deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
# Keep package scripts from starting system services (apache2, memcached, postgresql):
# every server the project needs is started by its own scripts on loopback.
if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
  chmod 755 /usr/sbin/policy-rc.d
  trap 'rm -f /usr/sbin/policy-rc.d' EXIT
fi
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
bash "$(dirname "$0")/install-mongo-standin.sh"
