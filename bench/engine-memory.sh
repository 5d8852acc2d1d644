#!/usr/bin/env bash
# Memory per idle detached container: berth vs podman (conmon) vs Docker
# (containerd-shim), N busybox `sleep` containers each (default: 50 and
# 100), --network none.
#
# Method, per container: its supervisor's PSS (the process whose child is
# the container's init: berth-monitor, conmon, containerd-shim-runc-v2;
# `Pss` of /proc/PID/smaps_rollup, which splits each shared page among the
# processes that map it, so N supervisors of one binary share its text)
# plus the container's memory cgroup usage (cgroup v1
# memory.usage_in_bytes, v2 memory.current). Caches are dropped and the
# containers left idle a few seconds before reading. Medians over the N
# containers, and the total of the two parts. MemAvailable deltas are not
# used: they swing by hundreds of KiB per container on a VM and can go
# negative.
#
# Each engine runs in a private store (a private podman env, a private
# dockerd with its own containerd); everything is removed at the end.
#
# --mappings adds, for berth, each mapping of its supervisors (Rss and
# Private_Dirty from /proc/PID/smaps, medians): the table of
# docs/monitor-memory.md.
#
# Usage: bench/engine-memory.sh [--counts "50 100"] [--berth PATH] [--no-peer] [--mappings]
set -euo pipefail

counts="50 100"
peer=1
mappings=0
# shellcheck source=lib.sh
source "$(dirname -- "$(readlink -f -- "${BASH_SOURCE[0]}")")/lib.sh"
while (($#)); do
    case $1 in
        --counts) counts=$2; shift 2 ;;
        --berth) berth=$(readlink -m -- "$2"); shift 2 ;;
        --no-peer) peer=0; shift ;;
        --mappings) mappings=1; shift ;;
        *) echo "usage: $0 [--counts \"50 100\"] [--berth PATH] [--no-peer] [--mappings]" >&2; exit 2 ;;
    esac
done
for n in $counts; do
    bench_positive --counts "$n"
done
bench_need_berth
((EUID == 0)) || { echo "engine-memory: needs root" >&2; exit 1; }
if ((peer)); then
    bench_need podman dockerd /usr/bin/docker
fi

work=$(mktemp -d /var/tmp/berth-bench-memory.XXXXXX)
dockerd_pid=
B() { "$berth" --root "$work/berth" --runroot "$work/berth-run" "$@"; }
D() { /usr/bin/docker -H "unix://$work/docker/d.sock" "$@"; }
cleanup() {
    # shellcheck disable=SC2046 # one word per id
    B rm -f $(B ps -aq 2>/dev/null) >/dev/null 2>&1 || true
    if ((peer)); then
        (podman_env_cleanup >/dev/null 2>&1 || true)
        if [[ -n $dockerd_pid ]]; then
            # shellcheck disable=SC2046
            D rm -f $(D ps -aq 2>/dev/null) >/dev/null 2>&1 || true
            kill "$dockerd_pid" 2>/dev/null || true
            for _ in $(seq 100); do kill -0 "$dockerd_pid" 2>/dev/null || break; sleep 0.1; done
        fi
        grep -o " $work[^ ]*" /proc/self/mounts | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

# The busybox rootfs: podman's env has one; without peers, the host's
# static busybox.
if ((peer)); then
    # shellcheck source=../tests/podman-env.sh
    source "$repo/tests/podman-env.sh" "$work/podman" >/dev/null
    podman_import_busybox bench-busybox
    tar --numeric-owner -C "$work/podman/rootfs-bench-busybox" -cf "$work/bb.tar" .
else
    mkdir -p "$work/rootfs/bin"
    cp /bin/busybox "$work/rootfs/bin/"
    ln -s busybox "$work/rootfs/bin/sh"
    ln -s busybox "$work/rootfs/bin/sleep"
    tar --numeric-owner -C "$work/rootfs" -cf "$work/bb.tar" .
fi
B import -c 'CMD ["sh"]' "$work/bb.tar" bench-busybox >/dev/null

if ((peer)); then
    mkdir -p "$work/docker"
    dockerd --data-root "$work/docker/data" --exec-root "$work/docker/exec" \
        --pidfile "$work/docker/d.pid" -H "unix://$work/docker/d.sock" \
        --iptables=false --ip6tables=false --bridge=none >"$work/docker/log" 2>&1 &
    dockerd_pid=$!
    for _ in $(seq 300); do D version >/dev/null 2>&1 && break; sleep 0.1; done
    D version >/dev/null 2>&1 || { echo "engine-memory: the private dockerd did not come up (see $work/docker/log)" >&2; exit 1; }
    D import -c 'CMD ["sh"]' "$work/bb.tar" bench-busybox >/dev/null
fi

# KiB of a memory cgroup's usage, for process PID's cgroup.
cgroup_kib() {
    local pid=$1 path
    path=$(awk -F: '$2 == "memory" {print $3}' "/proc/$pid/cgroup")
    if [[ -n $path && -r /sys/fs/cgroup/memory$path/memory.usage_in_bytes ]]; then
        echo $(($(cat "/sys/fs/cgroup/memory$path/memory.usage_in_bytes") / 1024))
        return
    fi
    path=$(awk -F: '$1 == "0" {print $3}' "/proc/$pid/cgroup")
    if [[ -n $path && -r /sys/fs/cgroup$path/memory.current ]]; then
        echo $(($(cat "/sys/fs/cgroup$path/memory.current") / 1024))
        return
    fi
    echo "engine-memory: no memory cgroup for pid $pid" >&2
    echo 0
}
ppid_of() { awk '{print $4}' "/proc/$1/stat"; }
pss_kib() { awk '/^Pss:/ {print $2}' "/proc/$1/smaps_rollup"; }

# name, count, inspect command (prints one init pid per line)
measure() {
    local name=$1 n=$2 pids
    shift 2
    sync
    echo 3 >/proc/sys/vm/drop_caches
    sleep 5
    pids=$("$@")
    local sup=() cg=() tot=() sup_name=
    local pid ppid s c
    for pid in $pids; do
        ppid=$(ppid_of "$pid")
        s=$(pss_kib "$ppid")
        c=$(cgroup_kib "$pid")
        sup+=("$s")
        cg+=("$c")
        tot+=($((s + c)))
        sup_name=$(cat "/proc/$ppid/comm")
    done
    local got=${#sup[@]}
    ((got == n)) || echo "engine-memory: $name: $got of $n containers running" >&2
    printf '%-7s %4d idle: supervisor (%s) PSS %6s KiB + cgroup %6s KiB = %6s KiB per container (medians)\n' \
        "$name" "$n" "$sup_name" \
        "$(printf '%s\n' "${sup[@]}" | median)" \
        "$(printf '%s\n' "${cg[@]}" | median)" \
        "$(printf '%s\n' "${tot[@]}" | median)"
}

# Each mapping of the supervisors PIDS (their own binary's segments by
# permission, the anonymous .bss after them, heap, stack): medians of Rss
# and Private_Dirty, KiB.
mappings_table() {
    python3 - "$@" <<'PY'
import os, re, statistics, sys
rows = {}
for pid in sys.argv[1:]:
    exe = os.readlink(f"/proc/{pid}/exe")
    sums, kind, prev = {}, None, None
    for line in open(f"/proc/{pid}/smaps"):
        if re.match(r"[0-9a-f]+-[0-9a-f]+ ", line):
            f = line.split()
            path = f[5] if len(f) > 5 else ""
            if path == exe:
                kind = {"r-xp": "code", "rw-p": ".data"}.get(
                    f[1], "read-only data" if int(f[2], 16) == 0 else "RELRO")
            elif path == "" and prev == ".data":
                kind = ".bss"
            elif path in ("[heap]", "[stack]"):
                kind = path
            else:
                kind = "other"
            prev = kind
            sums.setdefault(kind, [0, 0])
        elif line.startswith(("Rss:", "Private_Dirty:")):
            sums[kind][line.startswith("Private_Dirty:")] += int(line.split()[1])
    for k, v in sums.items():
        rows.setdefault(k, []).append(v)
for k in ["read-only data", "code", "RELRO", ".data", ".bss", "[heap]", "[stack]", "other"]:
    if k in rows:
        rss = statistics.median(r for r, _ in rows[k])
        dirty = statistics.median(d for _, d in rows[k])
        print(f"    {k:15} Rss {rss:6g} KiB  Private_Dirty {dirty:4g} KiB")
PY
}

start_n() { # n, command...
    local n=$1 i
    shift
    for ((i = 0; i < n; i++)); do "$@" >/dev/null; done
}
berth_pids() { B ps -q | while read -r id; do B inspect -f '{{.State.Pid}}' "$id"; done; }
podman_pids() { podman ps -q | while read -r id; do podman inspect -f '{{.State.Pid}}' "$id"; done; }
docker_pids() { D ps -q | while read -r id; do D inspect -f '{{.State.Pid}}' "$id"; done; }

for n in $counts; do
    start_n "$n" B run -d --network=none bench-busybox sleep 100000
    measure berth "$n" berth_pids
    if ((mappings)); then
        # shellcheck disable=SC2046 # one word per pid
        mappings_table $(berth_pids | while read -r pid; do ppid_of "$pid"; done)
    fi
    # shellcheck disable=SC2046
    B rm -f $(B ps -aq) >/dev/null
    if ((peer)); then
        start_n "$n" podman run -d --network=none localhost/bench-busybox sleep 100000
        measure podman "$n" podman_pids
        # shellcheck disable=SC2046
        podman rm -f -t 0 $(podman ps -aq) >/dev/null
        start_n "$n" D run -d --network=none bench-busybox sleep 100000
        measure docker "$n" docker_pids
        # shellcheck disable=SC2046
        D rm -f $(D ps -aq) >/dev/null
    fi
done
