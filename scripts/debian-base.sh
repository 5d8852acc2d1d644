#!/usr/bin/env bash
# A minimal Debian rootfs (debootstrap --variant=minbase, the host's suite,
# from the mirror apt uses) as a tarball with numeric owners, made once and
# cached: prints the tarball's path. Tests and clean-install-check.sh share
# it; parallel callers wait on a lock and build it once.
#
# Usage: scripts/debian-base.sh [CACHE_DIR]   (root; a few minutes the first time)
# CACHE_DIR defaults to $BERTH_TEST_CACHE, else target/debian-base.
set -euo pipefail
cd "$(dirname "$0")/.."
cache=${1:-${BERTH_TEST_CACHE:-$PWD/target/debian-base}}
mkdir -p "$cache"
suite=$(. /etc/os-release && echo "$VERSION_CODENAME")
tar=$cache/$suite-minbase.tar
exec 9>"$cache/.lock"
flock 9
if [[ ! -s $tar ]]; then
  command -v debootstrap >/dev/null || { echo "debian-base: debootstrap missing (apt-get install debootstrap)" >&2; exit 1; }
  mirror=$(sed -n 's/^URIs: //p' /etc/apt/sources.list.d/debian.sources 2>/dev/null | head -1)
  mirror=${mirror:-$(awk '/^deb / {print $2; exit}' /etc/apt/sources.list 2>/dev/null)}
  [[ -n $mirror ]] || { echo "debian-base: no Debian mirror in /etc/apt/sources.list{,.d}" >&2; exit 1; }
  rootfs=$cache/rootfs.tmp
  rm -rf "$rootfs"
  debootstrap --variant=minbase "$suite" "$rootfs" "$mirror" >"$cache/debootstrap.log" 2>&1 \
    || { tail -5 "$cache/debootstrap.log" >&2; echo "debian-base: debootstrap failed ($cache/debootstrap.log)" >&2; exit 1; }
  # apt's downloaded packages are not part of a base image.
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
  tar --numeric-owner --xattrs --xattrs-include='*' -C "$rootfs" -cf "$tar.tmp" .
  mv "$tar.tmp" "$tar"
  rm -rf "$rootfs"
fi
echo "$tar"
