#!/usr/bin/env bash
# Installs berth: the static release binaries (scripts/build-release.sh) in
# /usr/local/bin, the shell completions where Debian's bash, zsh and fish
# look for a command's own (the paths docker.io and podman use), and one man
# page per command in /usr/share/man/man1. Completions and pages are made by
# the berth just built, from its own command definitions, so they always
# match it.
#
#   scripts/install.sh [--from DIR] [--destdir DIR]
#
# --from DIR: take berth, berth-monitor and berth-runtime from DIR instead of
#   building the release (e.g. target/debug).
# --destdir DIR: install under DIR (a staging root for packaging or a test)
#   instead of /.
set -euo pipefail
cd "$(dirname "$0")/.."
from= destdir=
while (($#)); do
  case $1 in
    --from) from=${2:?--from needs a directory}; shift 2 ;;
    --destdir) destdir=${2:?--destdir needs a directory}; shift 2 ;;
    *) echo "install.sh: unknown argument $1 (use --from DIR, --destdir DIR)" >&2; exit 2 ;;
  esac
done
[[ -n $from ]] || from=$(scripts/build-release.sh)
for b in berth berth-monitor berth-runtime; do
  [[ -x $from/$b ]] || { echo "install.sh: no $from/$b: build it first" >&2; exit 1; }
done
bin=$destdir/usr/local/bin
install -d "$bin"
# berth runs berth-monitor from its own directory: the three stay together.
install -m 0755 "$from/berth" "$from/berth-monitor" "$from/berth-runtime" "$bin/"
berth=$from/berth
install -d "$destdir/usr/share/bash-completion/completions" \
  "$destdir/usr/share/zsh/vendor-completions" \
  "$destdir/usr/share/fish/vendor_completions.d" \
  "$destdir/usr/share/man/man1"
"$berth" completion bash >"$destdir/usr/share/bash-completion/completions/berth"
"$berth" completion zsh >"$destdir/usr/share/zsh/vendor-completions/_berth"
"$berth" completion fish >"$destdir/usr/share/fish/vendor_completions.d/berth.fish"
pages=$(mktemp -d)
trap 'rm -rf "$pages"' EXIT
"$berth" __man "$pages"
# man reads pages compressed or not; Debian's own are gzipped.
gzip -9n "$pages"/*.1
install -m 0644 "$pages"/*.1.gz "$destdir/usr/share/man/man1/"
echo "installed berth in $bin, its completions (bash, zsh, fish) and $(ls "$pages" | wc -l) man pages" >&2
