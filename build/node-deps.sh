#!/usr/bin/env bash
# Install the pinned Node packages the tests use (tests/node/package.json and its lock file: the
# official OpenAI SDK and the OpenAPI linter) into tests/node/node_modules (git-ignored).
# Idempotent: when the installed tree matches the lock file it does nothing and touches no network.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
dir=$top/tests/node
stamp=$dir/node_modules/.pe-lock

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "node-deps: node and npm are missing (install the Debian packages nodejs and npm)" >&2
    exit 1
  fi
  echo "node-deps: installing nodejs npm" >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
fi
if [ -f "$stamp" ] && cmp -s "$stamp" "$dir/package-lock.json"; then
  exit 0
fi
echo "node-deps: npm ci in tests/node" >&2
(cd "$dir" && npm ci --no-audit --no-fund --ignore-scripts --loglevel=error >&2)
cp "$dir/package-lock.json" "$stamp"
