#!/usr/bin/env bash
# Install the MongoDB stand-in the tests use: CongoDB, the wire-protocol server shipped in the
# npm package @push.rocks/smartmongo@2.2.0 (docs/development.md, "MongoDB in tests").
# A full `npm install` of that package fails (its test-helper dependencies are missing from the
# registry), so the package is unpacked and only the modules its server imports are installed.
# Idempotent and quiet when present. The install lives in .deps/congodb (git-ignored).
set -euo pipefail
cd "$(dirname "$0")/.."
dest=.deps/congodb
server="$dest/pack/package/dist_ts/congodb/index.js"
if [ -f "$dest/.installed" ] && [ -f "$server" ]; then
  exit 0
fi
if ! command -v npm >/dev/null 2>&1; then
  if [ "$(id -u)" -eq 0 ]; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
  else
    echo "install-mongo-standin: npm is missing (install nodejs and npm)" >&2
    exit 1
  fi
fi
echo "install-mongo-standin: installing @push.rocks/smartmongo@2.2.0 into $dest" >&2
rm -rf "$dest"
mkdir -p "$dest/pack"
(
  cd "$dest"
  npm pack --silent @push.rocks/smartmongo@2.2.0 >/dev/null
  tar xzf push.rocks-smartmongo-2.2.0.tgz -C pack
  rm -f push.rocks-smartmongo-2.2.0.tgz
  printf '{"name":"pe-congodb","private":true,"type":"module"}\n' > package.json
  npm install --silent --no-audit --no-fund --ignore-scripts @push.rocks/smartfs@^1.3.1 @push.rocks/smartpath@^5.0.11 \
      @push.rocks/smartpromise@^4.0.3 @push.rocks/smartrx@^3.0.0 bson@^6.10.0 mingo@^7.2.0 >/dev/null
)
# the unpacked package resolves its imports from $dest/node_modules
ln -sfn ../../node_modules "$dest/pack/package/node_modules"
touch "$dest/.installed"
