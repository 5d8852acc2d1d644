#!/usr/bin/env bash
# Benchmark a pod's life: `pod create`, two containers run detached in it
# (`run -d --pod P busybox sleep 60`), `pod rm -f` (podman: `-f -t 0`:
# its default waits 10 s per container for `sleep`, which as pid 1 ignores
# SIGTERM; berth's -f kills at once, as -t 0 does) — berth vs podman (with
# its infra container: catatonit and conmon, runc), interleaved round-robin
# so that drift hits both alike. Both pods have a private network
# namespace: berth's on its default bridge, podman's per its
# containers.conf (tests/podman-env.sh: netns "none", loopback only), which
# spares podman the bridge berth pays for. Prints each tool's median of the
# whole cycle and of each step, and the ratio berth/podman.
#
# Usage: bench/pod.sh [--rounds N] [--berth PATH]
# Needs root, podman and catatonit (scripts/install-deps.sh).
set -euo pipefail

rounds=20
# shellcheck source=lib.sh
source "$(dirname -- "$(readlink -f -- "${BASH_SOURCE[0]}")")/lib.sh"
bench_args "$@"
bench_need podman catatonit python3

work=$(mktemp -d /var/tmp/berth-bench-pod.XXXXXX)
cleanup() {
    "$berth" --root "$work/berth" pod rm -f bench-pod >/dev/null 2>&1 || true
    (podman pod rm -f bench-pod >/dev/null 2>&1 || true)
    (podman_env_cleanup >/dev/null 2>&1 || true)
    rm -rf "$work"
}
trap cleanup EXIT

# shellcheck source=../tests/podman-env.sh
source "$repo/tests/podman-env.sh" "$work/podman" >/dev/null
podman_import_busybox bench-busybox
tar --numeric-owner -C "$work/podman/rootfs-bench-busybox" -cf "$work/bb.tar" .
"$berth" --root "$work/berth" import -c 'CMD ["sh"]' "$work/bb.tar" bench-busybox >/dev/null
# podman builds its pause image on the first pod: not part of the cycle.
podman pod create --name bench-warm >/dev/null && podman pod rm -f bench-warm >/dev/null

python3 - "$rounds" "$berth" "$work" <<'PY'
import statistics, subprocess, sys, time
rounds, berth, work = int(sys.argv[1]), sys.argv[2], sys.argv[3]
tools = {
    "berth": ([berth, "--root", f"{work}/berth"], "bench-busybox", []),
    "podman": (["podman"], "localhost/bench-busybox", ["-t", "0"]),
}
steps = ["pod create", "run -d x2", "pod rm -f"]
def cycle(base, image, rm_flags):
    cmds = [
        ("pod create", [base + ["pod", "create", "--name", "bench-pod"]]),
        ("run -d x2", [base + ["run", "-d", "--pod", "bench-pod", image, "sleep", "60"]] * 2),
        ("pod rm -f", [base + ["pod", "rm", "-f"] + rm_flags + ["bench-pod"]]),
    ]
    out = {}
    for step, runs in cmds:
        t = time.perf_counter()
        for c in runs:
            p = subprocess.run(c, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            if p.returncode != 0:
                sys.exit(f"pod: {' '.join(c)} failed: {p.stderr.decode().strip()}")
        out[step] = (time.perf_counter() - t) * 1000
    return out
names = list(tools)
times = {n: {s: [] for s in steps + ["total"]} for n in names}
for r in range(rounds + 2):
    order = names[r % 2:] + names[:r % 2]
    for n in order:
        got = cycle(*tools[n])
        if r >= 2:  # warm-up rounds discarded
            for s, v in got.items():
                times[n][s].append(v)
            times[n]["total"].append(sum(got.values()))
med = {n: {s: statistics.median(v) for s, v in d.items()} for n, d in times.items()}
print(f"pod create + 2 x run -d --pod + pod rm -f, {rounds} interleaved rounds (median ms):")
print(f"  {'':7s} " + " ".join(f"{s:>12s}" for s in steps + ["total"]))
for n in names:
    print(f"  {n:7s} " + " ".join(f"{med[n][s]:12.1f}" for s in steps + ["total"]))
b, p = med["berth"]["total"], med["podman"]["total"]
print(f"berth/podman = {b/p:.3f} ({p/b:.1f}x faster)")
PY
