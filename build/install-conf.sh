#!/usr/bin/env bash
# Installs or removes one Apache configuration file (promptenchanter.load or .conf) without losing
# an operator's edits. The checksum of what was installed is kept in REGISTRY (one
# `sha256  name` line per file), so a later run can tell an edited file from our own.
#   install-conf.sh SRC DEST REGISTRY
#       DEST missing, equal to SRC or unchanged since the last install: SRC is installed (0644).
#       DEST edited: it is kept, and SRC is written beside it as DEST.dist (a message says so).
#   install-conf.sh --remove SRC DEST REGISTRY
#       DEST equal to SRC or unchanged since the install: removed, with the mods-enabled link to it
#       (a link to a missing file stops httpd). DEST edited: kept (a message says so).
set -euo pipefail

remove=0
if [ "${1:-}" = --remove ]; then remove=1; shift; fi
src=$1 dest=$2 registry=$3
name=$(basename "$dest")

sum() { sha256sum "$1" | cut -d' ' -f1; }
recorded() { [ -f "$registry" ] && awk -v n="$name" '$2 == n { print $1 }' "$registry" | tail -1; }
record() {
  local tmp
  mkdir -p "$(dirname "$registry")"
  tmp=$(mktemp "$registry.XXXXXX")
  { [ -f "$registry" ] && awk -v n="$name" '$2 != n' "$registry"; [ -n "$1" ] && echo "$1  $name"; } > "$tmp" || true
  chmod 644 "$tmp"
  if [ -s "$tmp" ]; then mv "$tmp" "$registry"; else rm -f "$tmp" "$registry"; fi
}
ours() { [ "$(sum "$dest")" = "$(sum "$src")" ] || [ "$(sum "$dest")" = "$(recorded)" ]; }

if [ "$remove" -eq 1 ]; then
  [ -e "$dest" ] || { record ""; exit 0; }
  if ours; then
    enabled=$(dirname "$(dirname "$dest")")/mods-enabled/$name
    if [ -L "$enabled" ]; then
      echo "install-conf: $enabled removed (the module is no longer enabled)"
      rm -f "$enabled"
    fi
    rm -f "$dest" "$dest.dist"
    record ""
  else
    echo "install-conf: $dest was edited: kept (remove it yourself when it is no longer needed)" >&2
  fi
  exit 0
fi

install -d "$(dirname "$dest")"
if [ ! -e "$dest" ] || ours; then
  install -m 644 "$src" "$dest"
  rm -f "$dest.dist"
else
  install -m 644 "$src" "$dest.dist"
  echo "install-conf: $dest was edited: kept; the new version is $dest.dist (merge it by hand)" >&2
fi
record "$(sum "$src")"
