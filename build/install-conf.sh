#!/usr/bin/env bash
# Installs or removes one Apache configuration file (promptenchanter.load or .conf) without losing
# an operator's edits. The checksum of what was installed is kept in REGISTRY (one
# `sha256  name` line per file), so a later run can tell an edited file from our own.
#   install-conf.sh SRC DEST REGISTRY
#       DEST missing, equal to SRC or unchanged since the last install: SRC is installed (0644).
#       DEST edited: it is kept, and SRC is written beside it as DEST.dist (a message says so).
#   install-conf.sh --remove SRC DEST REGISTRY
#       DEST equal to SRC or unchanged since the install: removed; edited: kept (a message says so).
#       Removing the .load disables the module: its mods-enabled links go (a link to a missing
#       file stops httpd).
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
  if [ -e "$dest" ] && ! ours; then
    echo "install-conf: $dest was edited: kept (remove it yourself when it is no longer needed)" >&2
  else
    rm -f "$dest"
  fi
  # Without its .load the module is disabled: the links of both files go.
  if [ "${name##*.}" = load ]; then
    for link in "$(dirname "$(dirname "$dest")")/mods-enabled/${name%.load}".{load,conf}; do
      if [ -L "$link" ]; then
        echo "install-conf: $link removed (the module is no longer enabled)"
        rm -f "$link"
      fi
    done
  fi
  rm -f "$dest.dist"
  record ""
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
