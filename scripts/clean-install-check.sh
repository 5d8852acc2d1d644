#!/usr/bin/env bash
# Proves scripts/install-deps.sh on a fresh machine: a minimal Debian rootfs
# (debootstrap minbase, from the mirror apt uses) run as a berth container
# with the host's network and Rust toolchain, where install-deps.sh must
# install everything the tests need, and berth's static binaries must run.
# (A green CI on a developer's machine can hide a missing package.)
#
# Usage: scripts/clean-install-check.sh [WORKDIR]   (root; takes a few minutes)
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
work=${1:-$(mktemp -d /tmp/berth-clean.XXXXXX)}
mkdir -p "$work"
release=$(./scripts/build-release.sh)
# The cached minbase tarball the tests use too (made on first use).
base=$(scripts/debian-base.sh)
export BERTH_ROOT=$work/store BERTH_RUNROOT=$work/run
berth=$release/berth
"$berth" import "$base" clean-debian:1 >/dev/null
cat >"$work/smoke.sh" <<'SMOKE'
#!/bin/bash
set -euo pipefail
/src/scripts/install-deps.sh
missing=0
for c in iptables debootstrap buildah podman conmon dockerd containerd containerd-shim-runc-v2 ctr runc crun \
         skopeo docker-registry nft busybox gcc pkg-config hyperfine script unshare htpasswd openssl \
         ip python3 bc pgrep protoc zsh fish man jq curl docker-compose podman-compose catatonit pasta newuidmap newgidmap slirp4netns useradd runuser; do
  command -v "$c" >/dev/null || { echo "MISSING $c"; missing=1; }
done
[[ -x /usr/bin/docker ]] || { echo "MISSING /usr/bin/docker (docker.io)"; missing=1; }
python3 -c 'import yaml' 2>/dev/null || { echo "MISSING python3-yaml"; missing=1; }
[[ -f /usr/lib/x86_64-linux-gnu/libseccomp.a ]] || { echo "MISSING libseccomp.a"; missing=1; }
for p in bridge host-local loopback; do
  [[ -x /usr/lib/cni/$p ]] || { echo "MISSING /usr/lib/cni/$p (containernetworking-plugins)"; missing=1; }
done
# runtime-tools' suite builds offline from what install-deps.sh installed.
RUNTIME_TOOLS_DIR=/tmp/runtime-tools /src/scripts/runtime-tools.sh build || missing=1
/berth/berth-runtime --version >/dev/null
/berth/berth --version
exit $missing
SMOKE
chmod +x "$work/smoke.sh"
"$berth" run --rm --network host \
  -e PATH=/root/.cargo/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
  -v "$repo/scripts:/src/scripts:ro" -v "$repo/tests/runtime-tools:/src/tests/runtime-tools:ro" -v "$HOME/.cargo:/root/.cargo:ro" -v "$HOME/.rustup:/root/.rustup:ro" \
  -v "$work/smoke.sh:/smoke.sh:ro" -v "$release:/berth:ro" \
  clean-debian:1 /smoke.sh >"$work/smoke.log" 2>&1 || { tail -20 "$work/smoke.log"; echo "clean install: FAILED ($work)"; exit 1; }
grep -v "^debconf" "$work/smoke.log" | tail -3
"$berth" rmi clean-debian:1 >/dev/null
echo "clean install: every tool the tests need is there ($work)"
