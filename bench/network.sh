#!/usr/bin/env bash
# Networking benchmarks, each side by side in one run:
#
# 1. `run --rm busybox true` on a bridge: berth's default bridge vs podman's
#    (netavark, --network bridge), interleaved round-robin so that drift
#    hits both alike; berth --network none shown as the floor. Goal: berth
#    >= 15x faster than podman with its bridge.
# 2. TCP throughput to a receiver on the host: from a berth container
#    through its bridge and veth, from a raw veth pair (a namespace of our
#    own, same MTU, no bridge, no NAT) and over the host's loopback. The
#    same sender and receiver (python, 1 MiB writes and reads) everywhere:
#    in the container's network namespace the sender is the host's python
#    entered there with nsenter (the image has none), so what differs is
#    the path, not the tool. Goal: the bridge >= 0.9x of the raw veth pair.
#
# Usage: bench/network.sh [--rounds N] [--megabytes M] [--berth PATH]
# Needs root, podman, netavark, python3, iproute2, busybox.
set -euo pipefail

rounds=30
megabytes=2000
# shellcheck source=lib.sh
source "$(dirname -- "$(readlink -f -- "${BASH_SOURCE[0]}")")/lib.sh"
while (($#)); do
    case $1 in
        --rounds) rounds=$2; shift 2 ;;
        --megabytes) megabytes=$2; shift 2 ;;
        --berth) berth=$(readlink -m -- "$2"); shift 2 ;;
        *) echo "usage: $0 [--rounds N] [--megabytes M] [--berth PATH]" >&2; exit 2 ;;
    esac
done
bench_positive --rounds "$rounds"
bench_positive --megabytes "$megabytes"
bench_need_berth
bench_need podman python3 ip nsenter unshare busybox

work=$(mktemp -d /var/tmp/berth-bench-net.XXXXXX)
holder=
veth=bnv$$
cleanup() {
    "$berth" --root "$work/berth" rm -f $("$berth" --root "$work/berth" ps -aq 2>/dev/null) >/dev/null 2>&1 || true
    (podman_env_cleanup >/dev/null 2>&1 || true)
    [[ -n $holder ]] && kill "$holder" 2>/dev/null || true
    ip link del "$veth" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

# shellcheck source=../tests/podman-env.sh
source "$repo/tests/podman-env.sh" "$work/podman" >/dev/null
podman_import_busybox bench-busybox
rootfs="$work/podman/rootfs-bench-busybox"
tar --numeric-owner -C "$rootfs" -cf "$work/bb.tar" .
"$berth" --root "$work/berth" import -c 'CMD ["sh"]' "$work/bb.tar" bench-busybox >/dev/null
# Both networks exist before timing starts (first use makes the bridge).
"$berth" --root "$work/berth" run --rm bench-busybox true
podman run --rm --network bridge localhost/bench-busybox true >/dev/null

python3 - "$rounds" "$berth" "$work" <<'PY'
import statistics, subprocess, sys, time
rounds, berth, work = int(sys.argv[1]), sys.argv[2], sys.argv[3]
cmds = {
    "berth": [berth, "--root", f"{work}/berth", "run", "--rm", "bench-busybox", "true"],
    "podman": ["podman", "run", "--rm", "--network", "bridge", "localhost/bench-busybox", "true"],
    "berth-none": [berth, "--root", f"{work}/berth", "run", "--rm", "--network", "none", "bench-busybox", "true"],
}
names = list(cmds)
times = {n: [] for n in names}
for r in range(rounds + 3):
    order = names[r % len(names):] + names[:r % len(names)]
    for n in order:
        t = time.perf_counter()
        p = subprocess.run(cmds[n], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        dt = time.perf_counter() - t
        if p.returncode != 0:
            sys.exit(f"network: {n} failed: {p.stderr.decode().strip()}")
        if r >= 3:
            times[n].append(dt * 1000)
med = {n: statistics.median(v) for n, v in times.items()}
print(f"run --rm busybox true on a bridge, {rounds} interleaved rounds (median ms):")
for n in names:
    print(f"  {n:11s} {med[n]:8.2f}")
print(f"berth/podman (both bridged) = {med['berth']/med['podman']:.3f} "
      f"({med['podman']/med['berth']:.1f}x faster; goal >= 15x)")
print(f"bridge cost in berth        = {med['berth']-med['berth-none']:.2f} ms")
PY

# --- throughput ---------------------------------------------------------
cat >"$work/recv.py" <<'PY'
import socket, sys, time
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], 0))
s.listen(1)
print(s.getsockname()[1], flush=True)
c, _ = s.accept()
buf = bytearray(1 << 20)
n, t0 = 0, time.perf_counter()
while True:
    k = c.recv_into(buf)
    if not k:
        break
    n += k
dt = time.perf_counter() - t0
print(f"{n * 8 / dt / 1e9:.2f}", flush=True)
PY

# Runs the sender command ($2..) against a fresh receiver bound to $1;
# prints Gbit/s.
measure() {
    local bind=$1; shift
    local fifo="$work/recv.out"
    rm -f "$fifo"
    python3 "$work/recv.py" "$bind" >"$fifo" &
    local rpid=$!
    local port=
    for _ in $(seq 100); do port=$(head -1 "$fifo" 2>/dev/null || true); [[ -n $port ]] && break; sleep 0.05; done
    "$@" "$port" >/dev/null 2>&1 || true
    wait "$rpid"
    sed -n 2p "$fifo"
}
cat >"$work/send.py" <<'PY'
import socket, sys
s = socket.create_connection((sys.argv[1], int(sys.argv[3])))
buf = b"\0" * (1 << 20)
for _ in range(int(sys.argv[2])):
    s.sendall(buf)
s.close()
PY
send="python3 $work/send.py"

# Through berth's bridge: the receiver on the bridge's gateway address.
gw=$("$berth" --root "$work/berth" network inspect bridge | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["IPAM"]["Config"][0]["Gateway"])')
mtu=$(cat "/sys/class/net/$("$berth" --root "$work/berth" network inspect bridge | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["Options"]["com.docker.network.bridge.name"])')/mtu")
sender=$("$berth" --root "$work/berth" run -d bench-busybox sleep 600)
spid=$("$berth" --root "$work/berth" inspect -f '{{.State.Pid}}' "$sender")
bridge_run() { nsenter -t "$spid" -n $send "$gw" "$megabytes" "$1"; }

# A raw veth pair into a namespace of our own.
unshare -n sleep 600 &
holder=$!
sleep 0.2
ip link add "$veth" mtu "$mtu" type veth peer name eth0 mtu "$mtu" netns "$holder"
ip addr add 198.18.77.1/30 dev "$veth"
ip link set "$veth" up
nsenter -t "$holder" -n sh -c 'ip addr add 198.18.77.2/30 dev eth0 && ip link set eth0 up && ip link set lo up'
veth_run() { nsenter -t "$holder" -n $send 198.18.77.1 "$megabytes" "$1"; }
loop_run() { $send 127.0.0.1 "$megabytes" "$1"; }

declare -A best=([bridge]=0 [veth]=0 [loopback]=0)
for _ in 1 2 3; do
    for kind in bridge veth loopback; do
        case $kind in
            bridge) g=$(measure "$gw" bridge_run) ;;
            veth) g=$(measure 198.18.77.1 veth_run) ;;
            loopback) g=$(measure 127.0.0.1 loop_run) ;;
        esac
        best[$kind]=$(python3 -c "print(max(float('${best[$kind]}'), float('${g:-0}')))")
    done
done
echo "TCP throughput to the host, ${megabytes} MiB, best of 3 (Gbit/s; MTU $mtu):"
for kind in bridge veth loopback; do
    printf '  %-9s %8.2f\n' "$kind" "${best[$kind]}"
done
python3 -c "b, v = float('${best[bridge]}'), float('${best[veth]}'); print(f'bridge/raw veth = {b/v:.2f} (goal >= 0.9)')"
