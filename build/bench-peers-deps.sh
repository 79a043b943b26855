#!/usr/bin/env bash
# Install the peer gateway `make bench-peers` compares with (bench/package.json and its lock file:
# @portkey-ai/gateway 1.15.2) into bench/node_modules (git-ignored), from the npm registry.
# Idempotent: when the installed tree matches the lock file it does nothing and touches no network.
# Its install script (patch-package) is skipped: the package ships no patches.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
dir=$top/bench
stamp=$dir/node_modules/.pe-lock
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  echo "bench-peers-deps: node and npm are missing (install the Debian packages nodejs and npm)" >&2
  exit 1
fi
if [ -f "$stamp" ] && cmp -s "$stamp" "$dir/package-lock.json"; then
  exit 0
fi
echo "bench-peers-deps: npm ci in bench (@portkey-ai/gateway)" >&2
(cd "$dir" && npm ci --no-audit --no-fund --ignore-scripts --loglevel=error >&2)
cp "$dir/package-lock.json" "$stamp"
