#!/usr/bin/env bash
# Benchmark what a container's own user namespace costs a start:
# `run --rm --network none busybox true` with --userns=auto (a range from
# the pool, layers and binds idmapped) and with --userns=host, interleaved
# round-robin in one store so that drift hits both alike. Prints medians,
# the difference (goal: under 1 ms) and the ratio.
#
# Usage: bench/userns.sh [--rounds N] [--berth PATH]
# Needs root and a kernel that takes overlay layers as descriptors (6.13+).
set -euo pipefail

rounds=40
# shellcheck source=lib.sh
source "$(dirname -- "$(readlink -f -- "${BASH_SOURCE[0]}")")/lib.sh"
bench_args "$@"
bench_need python3

work=$(mktemp -d /var/tmp/berth-bench-userns.XXXXXX)
trap 'rm -rf "$work"' EXIT
fixture="$repo/target/berth-fixtures/busybox-rootfs"
[[ -d $fixture ]] || { echo "userns: no busybox rootfs at $fixture (run any berth test once)" >&2; exit 1; }
tar --numeric-owner -C "$fixture" -cf "$work/bb.tar" .
b=("$berth" --root "$work/store" --runroot "$work/run")
"${b[@]}" import -c 'CMD ["sh"]' "$work/bb.tar" bench-busybox >/dev/null
# One of each first: neither mode pays a first start's costs in the rounds.
for mode in host auto; do
    "${b[@]}" run --rm --network none --userns=$mode bench-busybox true
done

python3 - "$rounds" "${b[@]}" <<'PY'
import statistics, subprocess, sys, time
rounds, cmd = int(sys.argv[1]), sys.argv[2:]
times = {"host": [], "auto": []}
for i in range(rounds):
    order = ["host", "auto"] if i % 2 == 0 else ["auto", "host"]
    for mode in order:
        t = time.perf_counter()
        subprocess.run(cmd + ["run", "--rm", "--network", "none", f"--userns={mode}",
                              "bench-busybox", "true"], check=True)
        times[mode].append((time.perf_counter() - t) * 1000)
h, a = statistics.median(times["host"]), statistics.median(times["auto"])
print(f"run --rm --network none busybox true, {rounds} interleaved rounds, medians:")
print(f"  --userns=host  {h:7.2f} ms")
print(f"  --userns=auto  {a:7.2f} ms")
print(f"  cost of the user namespace: {a - h:+.2f} ms (goal < 1 ms), ratio {a / h:.3f}")
PY
