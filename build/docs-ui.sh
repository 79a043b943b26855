#!/usr/bin/env bash
# Assemble the API reference page (Swagger UI on /openapi.json) into DEST, for Apache to serve as
# static files: docs/ui/index.html and pe-init.js, and the pinned swagger-ui-dist
# (build/docs-ui/package.json and its lock file, installed into the git-ignored
# build/docs-ui/node_modules; nothing is fetched when it is already there).
#   build/docs-ui.sh DEST
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
dest=${1:?usage: build/docs-ui.sh DEST}
dir=$top/build/docs-ui
stamp=$dir/node_modules/.pe-lock
if ! [ -f "$stamp" ] || ! cmp -s "$stamp" "$dir/package-lock.json"; then
  command -v npm >/dev/null 2>&1 || { echo "docs-ui: npm is missing (Debian package npm)" >&2; exit 1; }
  (cd "$dir" && npm ci --no-audit --no-fund --ignore-scripts --loglevel=error >&2)
  cp "$dir/package-lock.json" "$stamp"
fi
dist=$dir/node_modules/swagger-ui-dist
mkdir -p "$dest"
cp "$top/docs/ui/index.html" "$top/docs/ui/pe-init.js" "$dest/"
for f in swagger-ui.css swagger-ui-bundle.js swagger-ui-standalone-preset.js favicon-32x32.png LICENSE NOTICE; do
  cp "$dist/$f" "$dest/"
done
chmod -R a+rX "$dest"
