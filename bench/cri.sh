#!/usr/bin/env bash
# Benchmark what the kubelet waits for when a pod starts: RunPodSandbox +
# CreateContainer + StartContainer through containerd's CRI plugin, with the
# RuntimeClass handler `berth` (berth-runtime as the runc v2 shim's binary)
# beside the default handler `runc`, on one private containerd. Rounds are
# interleaved and the order is swapped each round; one warm-up round is
# discarded. Prints both medians and the ratio berth/runc, for the three
# calls together and for each alone (containerd 1.6 runs the runtime in
# RunPodSandbox, for the pause container, and in StartContainer;
# CreateContainer only prepares the container, whatever the handler).
#
# The client is the CRI test's (crates/berth-runtime/tests/cri.rs,
# `cri_bench`, an ignored test): a pod with CNI bridge networking and the
# pause sandbox, one busybox container.
#
# Usage: bench/cri.sh [--rounds N] [--berth PATH]
#   --rounds N    measured rounds (default 10)
#   --berth PATH  berth-runtime (default: the static release build of
#                 scripts/build-release.sh, built if missing)
# Needs root, containerd, runc, containernetworking-plugins, protoc.
set -euo pipefail

rounds=10
# shellcheck source=lib.sh
source "$(dirname -- "$(readlink -f -- "${BASH_SOURCE[0]}")")/lib.sh"
berth="$repo/target/$(rustc -vV | sed -n 's/^host: //p')/release/berth-runtime"
while (($#)); do
    case $1 in
        --rounds) (($# >= 2)) || { echo "--rounds needs a value" >&2; exit 2; }; rounds=$2; shift 2 ;;
        --berth) (($# >= 2)) || { echo "--berth needs a value" >&2; exit 2; }; berth=$2; shift 2 ;;
        *) echo "usage: $0 [--rounds N] [--berth PATH]" >&2; exit 2 ;;
    esac
done
bench_positive --rounds "$rounds"
((EUID == 0)) || { echo "cri: must run as root" >&2; exit 1; }
if [[ ! -x $berth ]]; then
    "$repo/scripts/build-release.sh" >/dev/null
fi
berth=$(readlink -f -- "$berth")

cd "$repo"
out=$(mktemp)
trap 'rm -f "$out"' EXIT
if ! BERTH_CRI_ROUNDS=$rounds BERTH_CRI_RUNTIME=$berth \
    cargo test -q -p berth-runtime --test cri cri_bench -- --ignored --nocapture >"$out" 2>&1; then
    cat "$out" >&2
    echo "cri: the benchmark failed" >&2
    exit 1
fi
grep '^cri: ' "$out" || { cat "$out" >&2; echo "cri: the benchmark printed no result" >&2; exit 1; }
