#!/usr/bin/env bash
# `make deb`: builds the Debian package libapache2-mod-promptenchanter.
# The packaging files live in build/debian/; a copy of the sources with them as debian/ is put
# together in .libs/deb/ (git-ignored), dpkg-buildpackage -us -uc -b builds there, and the .deb
# is left in .libs/deb/. Then lintian checks it and fails on an error (DEB_LINTIAN=no skips it).
set -euo pipefail
cd "$(dirname "$0")/.."

pkg=libapache2-mod-promptenchanter
version=$(sed -nE 's/^#define PE_VERSION "([^"]+)".*/\1/p' include/pe_version.h)
deb_version=$(dpkg-parsechangelog -l build/debian/changelog -S Version)
if [ "$deb_version" != "$version" ]; then
  echo "deb: build/debian/changelog is at $deb_version but include/pe_version.h says $version:" \
       "add a changelog entry (dch -c build/debian/changelog -v $version)" >&2
  exit 1
fi

out=.libs/deb
tree=$out/$pkg-$version
rm -rf "$out"
mkdir -p "$tree"
# The product's sources as they are in the work tree (committed or not; nothing git ignores), the
# tests included (the Makefile includes tests/fuzz/fuzz.mk), not the benchmarks or CI files;
# outside a git checkout, the product's folders.
if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  git ls-files -z -co --exclude-standard --deduplicate -- . ':!bench' ':!.ci' ':!build/debian' |
    while IFS= read -r -d '' f; do [ -e "$f" ] && printf '%s\0' "$f"; done > "$out/files"
else
  find mod_promptenchanter.c Makefile apxs.mk README.md src include conf build docs tests \
       -path build/debian -prune -o -name node_modules -prune -o -type f -print0 > "$out/files"
fi
tar -c --null -T "$out/files" | tar -x -C "$tree"
cp -r build/debian "$tree/debian"

echo "deb: building $pkg $version in $tree" >&2
(cd "$tree" && dpkg-buildpackage -us -uc -b -j"$(nproc)") > "$out/build.log" 2>&1 || {
  tail -40 "$out/build.log" >&2
  echo "deb: dpkg-buildpackage failed; the whole log is $out/build.log" >&2
  exit 1
}
arch=$(dpkg-architecture -qDEB_HOST_ARCH)
deb=$out/${pkg}_${version}_${arch}.deb
[ -f "$deb" ] || { echo "deb: $deb was not made (see $out/build.log)" >&2; exit 1; }

if [ "${DEB_LINTIAN:-yes}" != no ]; then
  if command -v lintian >/dev/null; then
    lintian --fail-on error "$deb"
  else
    echo "deb: lintian is not installed (make deps installs it): not checked" >&2
  fi
fi
echo "deb: $deb"
