#!/usr/bin/env bash
# The embedded DNS of user networks, in one run:
#
# 1. What the resolver adds to the first member's start: `run -d` on a user
#    network when no resolver runs yet (it is started and answers before
#    the container does), interleaved with `run -d` of a second member
#    (the resolver running: only its lock is checked, which is what every
#    start cost before there was a resolver). Medians and the ratio.
# 2. Query latency: A queries for a member's name sent from inside a
#    member's network namespace (the host's python entered there with
#    nsenter: the image has none) to the network's resolver, one at a
#    time; median and 95th percentile.
#
# Usage: bench/dns.sh [--rounds N] [--queries N] [--berth PATH]
# Needs root, python3, nsenter, busybox.
set -euo pipefail

rounds=20
queries=2000
# shellcheck source=lib.sh
source "$(dirname -- "$(readlink -f -- "${BASH_SOURCE[0]}")")/lib.sh"
while (($#)); do
    case $1 in
        --rounds) rounds=$2; shift 2 ;;
        --queries) queries=$2; shift 2 ;;
        --berth) berth=$(readlink -m -- "$2"); shift 2 ;;
        *) echo "usage: $0 [--rounds N] [--queries N] [--berth PATH]" >&2; exit 2 ;;
    esac
done
bench_positive --rounds "$rounds"
bench_positive --queries "$queries"
bench_need_berth
bench_need python3 nsenter busybox

work=$(mktemp -d /var/tmp/berth-bench-dns.XXXXXX)
B=("$berth" --root "$work/berth")
net=bdns$$
cleanup() {
    "${B[@]}" rm -f $("${B[@]}" ps -aq 2>/dev/null) >/dev/null 2>&1 || true
    "${B[@]}" network rm "$net" >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT
# Forwarding (not measured) stays on this machine.
export BERTH_DNS_UPSTREAM=127.0.0.1:9

mkdir -p "$work/rootfs/bin"
cp "$(command -v busybox)" "$work/rootfs/bin/busybox"
for a in sh sleep true nslookup; do ln -s busybox "$work/rootfs/bin/$a"; done
tar --numeric-owner -C "$work/rootfs" -cf "$work/bb.tar" .
"${B[@]}" import -c 'CMD ["sh"]' "$work/bb.tar" bench-busybox >/dev/null
"${B[@]}" network create "$net" >/dev/null

resolver_pids() { pgrep -f -- "__dns $work/berth " || true; }

now_ns() { date +%s%N; }
first=()
next=()
for ((i = 0; i < rounds; i++)); do
    # No member, no resolver: this start is the first.
    for p in $(resolver_pids); do kill "$p"; done
    for _ in $(seq 100); do [[ -z $(resolver_pids) ]] && break; sleep 0.02; done
    t0=$(now_ns)
    "${B[@]}" run -d --network "$net" bench-busybox sleep 60 >/dev/null
    t1=$(now_ns)
    first+=($(((t1 - t0) / 1000)))
    [[ -n $(resolver_pids) ]] || { echo "dns: no resolver after the first start" >&2; exit 1; }
    # The resolver runs: this start only checks its lock (as every start
    # did before there was a resolver, give or take that check).
    t0=$(now_ns)
    "${B[@]}" run -d --network "$net" bench-busybox sleep 60 >/dev/null
    t1=$(now_ns)
    next+=($(((t1 - t0) / 1000)))
    "${B[@]}" rm -f $("${B[@]}" ps -aq) >/dev/null
done
m1=$(median "${first[@]}")
m0=$(median "${next[@]}")
echo "run -d on a user network, $rounds rounds interleaved (median):"
echo "  first member (starts the resolver): $((m1 / 1000)) ms"
echo "  next member (resolver running):     $((m0 / 1000)) ms"
python3 -c "print(f'  ratio: {$m1/$m0:.2f}x (+{($m1-$m0)/1000:.1f} ms)')"

"${B[@]}" run -d --name web --network "$net" bench-busybox sleep 300 >/dev/null
"${B[@]}" run -d --name cli --network "$net" bench-busybox sleep 300 >/dev/null
gw=$("${B[@]}" network inspect -f '{{(index .IPAM.Config 0).Gateway}}' "$net")
pid=$("${B[@]}" inspect -f '{{.State.Pid}}' cli)
nsenter -t "$pid" -n python3 - "$gw" "$queries" <<'EOF'
import socket, struct, sys, time
gw, n = sys.argv[1], int(sys.argv[2])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(2)
s.connect((gw, 53))
q = lambda i: struct.pack(">HHHHHH", i, 0x0100, 1, 0, 0, 0) + b"\x03web\x00" + struct.pack(">HH", 1, 1)
lat = []
for i in range(n):
    t = time.perf_counter_ns()
    s.send(q(i))
    r = s.recv(512)
    lat.append(time.perf_counter_ns() - t)
    if struct.unpack(">H", r[:2])[0] != i or struct.unpack(">H", r[6:8])[0] != 1:
        sys.exit(f"dns: bad answer to query {i}")
lat.sort()
print(f"A query for a member's name, {n} queries one at a time:")
print(f"  median {lat[n // 2] / 1000:.0f} us, p95 {lat[n * 95 // 100] / 1000:.0f} us")
EOF
