#!/usr/bin/env bash
# Detached containers, berth vs podman, side by side in one run:
#  - starting N detached `sleep` containers one after another (wall time);
#  - memory added per idle detached container: memory in use before and
#    after (kernel included, page cache not), divided by N; also the private
#    anonymous memory of
#    one berth monitor;
#  - removing all N at once (`rm -f` of every id in one command).
# Both stores are private; everything is removed at the end. --no-peer
# leaves podman out (1000 podman containers take minutes).
#
# Usage: bench/engine-detached.sh [--count N] [--no-peer] [--berth PATH]
set -euo pipefail

count=50
peer=1
script_path=$(readlink -f -- "${BASH_SOURCE[0]}")
repo=$(cd -- "$(dirname -- "$script_path")/.." && pwd)
berth="$repo/target/$(rustc -vV | sed -n 's/^host: //p')/release/berth"
while (($#)); do
    case $1 in
        --count) count=$2; shift 2 ;;
        --no-peer) peer=0; shift ;;
        --berth) berth=$(readlink -m -- "$2"); shift 2 ;;
        *) echo "usage: $0 [--count N] [--no-peer] [--berth PATH]" >&2; exit 2 ;;
    esac
done
[[ $count =~ ^[1-9][0-9]*$ ]] || { echo "engine-detached: --count must be a positive integer" >&2; exit 2; }
[[ -x $berth ]] || { echo "engine-detached: no berth binary at $berth (scripts/build-release.sh)" >&2; exit 1; }
command -v podman >/dev/null || { echo "engine-detached: podman missing (apt-get install podman)" >&2; exit 1; }

work=$(mktemp -d /var/tmp/berth-bench-detached.XXXXXX)
cleanup() {
    "$berth" --root "$work/berth" rm -f $("$berth" --root "$work/berth" ps -aq 2>/dev/null) >/dev/null 2>&1 || true
    (podman_env_cleanup >/dev/null 2>&1 || true)
    rm -rf "$work"
}
trap cleanup EXIT
# shellcheck source=../tests/podman-env.sh
source "$repo/tests/podman-env.sh" "$work/podman" >/dev/null
podman_import_busybox bench-busybox
tar --numeric-owner -C "$work/podman/rootfs-bench-busybox" -cf "$work/bb.tar" .
"$berth" --root "$work/berth" import -c 'CMD ["sh"]' "$work/bb.tar" bench-busybox >/dev/null

# Memory in use, kernel included, as free(1) counts it: total - free -
# buffers - page cache - reclaimable slab. (MemAvailable swings by tens of
# MiB as writeback and reclaim come and go; page cache is not what a
# container costs.)
used() { awk '/^MemTotal/ {t=$2} /^MemFree/ {f=$2} /^Buffers/ {b=$2} /^Cached/ {c=$2} /^SReclaimable/ {s=$2} END {print t-f-b-c-s}' /proc/meminfo; }
now() { date +%s.%N; }
# Before each measure: page cache dropped and a pause, so that the cgroups
# of removed containers (kept while pages are charged to them) are freed
# before, not during, the measure.
settle() { sync; echo 3 >/proc/sys/vm/drop_caches; sleep 5; }
measure() { # name, command...
    local name=$1; shift
    settle
    local m0 t0 t1 m1
    m0=$(used); t0=$(now)
    for ((i = 0; i < count; i++)); do "$@" >/dev/null; done
    t1=$(now); sleep 3; m1=$(used)
    printf '%-7s %4d detached: %6.2f s   memory per container: %6.0f KiB\n' \
        "$name" "$count" "$(echo "$t1 - $t0" | bc)" "$(echo "($m1 - $m0) / $count" | bc -l)"
}
remove() { # name, command...
    local name=$1; shift
    local t0 t1
    t0=$(now); "$@" >/dev/null; t1=$(now)
    printf '%-7s %4d removed at once: %6.2f s\n' "$name" "$count" "$(echo "$t1 - $t0" | bc)"
}
# Two rounds, alternating: the kernel's slab caches grow to fit N
# containers once and keep that memory; whichever engine came first would
# pay for both. The second round is the one to read.
for round in 1 2; do
    echo "round $round:"
    measure berth "$berth" --root "$work/berth" run -d --network=none bench-busybox sleep 100000
    # What stays with each container: berth-monitor (berth's own monitor
    # when a healthcheck or an attached client needs it).
    pid=$(pgrep -f "berth-monitor .*$work/berth" | head -1 || true)
    if [[ -n $pid ]]; then
        echo "        one monitor ($(basename "$(readlink "/proc/$pid/exe")")): $(awk '/RssAnon/ {print $2, $3}' "/proc/$pid/status") private anonymous, $(awk '/VmPTE/ {print $2, $3}' "/proc/$pid/status") page tables"
    fi
    # shellcheck disable=SC2046 # one word per id
    remove berth "$berth" --root "$work/berth" rm -f $("$berth" --root "$work/berth" ps -q)
    left=$("$berth" --root "$work/berth" ps -aq | wc -l)
    [[ $left == 0 ]] || echo "berth: $left containers left after rm -f" >&2
    if ((peer)); then
        measure podman podman run -d --network=none localhost/bench-busybox sleep 100000
        # shellcheck disable=SC2046
        remove podman podman rm -f -t 0 $(podman ps -q)
    fi
done
