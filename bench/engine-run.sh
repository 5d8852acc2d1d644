#!/usr/bin/env bash
# Benchmark `run --rm <busybox> true`: berth vs podman (both --network=none,
# podman with runc; bench/network.sh compares them bridged) vs raw `crun run`
# of a prepared bundle holding berth's own spec for the same container
# (Docker's seccomp profile included), interleaved round-robin so
# that drift hits all alike. Prints medians and the ratios berth/podman
# (goal <= 1/15) and berth/crun (goal <= 0.7).
#
# Usage: bench/engine-run.sh [--rounds N] [--berth PATH]
# Needs root, podman, crun (tests/podman-env.sh sets up a private podman).
set -euo pipefail

rounds=30
# shellcheck source=lib.sh
source "$(dirname -- "$(readlink -f -- "${BASH_SOURCE[0]}")")/lib.sh"
bench_args "$@"
bench_need podman crun python3

# crun refuses this host's hybrid cgroup layout unless the empty cgroup2 at
# /sys/fs/cgroup/unified is out of sight: run everything in a private mount
# namespace without it (berth and podman do not mind).
if [[ -z ${BERTH_BENCH_IN_NS:-} ]]; then
    exec env BERTH_BENCH_IN_NS=1 unshare -m --propagation private "$script_path" --rounds "$rounds" --berth "$berth"
fi
umount /sys/fs/cgroup/unified 2>/dev/null || true

work=$(mktemp -d /var/tmp/berth-bench-run.XXXXXX)
cleanup() {
    (podman_env_cleanup >/dev/null 2>&1 || true)
    rm -rf "$work"
    # crun removes the container's cgroups, not the parent it was put under.
    rmdir /sys/fs/cgroup/*/bench-crun /sys/fs/cgroup/bench-crun 2>/dev/null || true
}
trap cleanup EXIT
# berth as installed: a copy of the build. The file as the linker leaves it
# costs about 60 more page faults and 1 to 2 ms more CPU per start here
# (perf stat), which no installed berth pays.
install -D -m 0755 "$berth" "$work/bin/berth"
berth=$work/bin/berth

# shellcheck source=../tests/podman-env.sh
source "$repo/tests/podman-env.sh" "$work/podman" >/dev/null
podman_import_busybox bench-busybox
rootfs="$work/podman/rootfs-bench-busybox"

# berth: the same rootfs imported into a private store
tar --numeric-owner -C "$rootfs" -cf "$work/bb.tar" .
"$berth" --root "$work/berth" import -c 'CMD ["sh"]' "$work/bb.tar" bench-busybox >/dev/null

# crun: a prepared bundle with berth's own spec for this container (see
# bench/same-spec-bundle.sh for what is the same and what differs).
# shellcheck source=same-spec-bundle.sh
source "$repo/bench/same-spec-bundle.sh"
same_spec_bundle "$berth" "$work/berth" bench-busybox "$rootfs" "$work/bundle" /bench-crun/bench '["true"]'

python3 - "$rounds" "$berth" "$work" <<'PY'
import statistics, subprocess, sys, time
rounds, berth, work = int(sys.argv[1]), sys.argv[2], sys.argv[3]
cmds = {
    "berth": [berth, "--root", f"{work}/berth", "run", "--rm", "--network=none", "--userns=host", "bench-busybox", "true"],
    # berth's default: a user namespace of the container's own.
    "berth-ns": [berth, "--root", f"{work}/berth", "run", "--rm", "--network=none", "bench-busybox", "true"],
    "podman": ["podman", "run", "--rm", "--network=none", "localhost/bench-busybox", "true"],
    "crun": ["crun", "--root", f"{work}/crun-state", "run", "--bundle", f"{work}/bundle", "bench"],
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
            sys.exit(f"engine-run: {n} failed: {p.stderr.decode().strip()}")
        if r >= 3:  # warm-up rounds discarded
            times[n].append(dt * 1000)
med = {n: statistics.median(v) for n, v in times.items()}
print("what each side runs (each to its end, output to /dev/null):")
for n in names:
    print(f"  {n:8s} {' '.join(cmds[n])}")
print("  (crun's bundle: berth's own config.json for the same container, seccomp included,")
print("   over the image's rootfs directory, both in the host's user namespace;")
print("   berth-ns: berth's default, a user namespace of the container's own; podman: runc)")
print(f"run --rm busybox true, {rounds} interleaved rounds (median ms):")
for n in names:
    print(f"  {n:8s} {med[n]:8.2f}")
print(f"berth/podman = {med['berth']/med['podman']:.3f} ({med['podman']/med['berth']:.1f}x faster; goal >= 15x)")
print(f"berth-ns/podman = {med['berth-ns']/med['podman']:.3f} ({med['podman']/med['berth-ns']:.1f}x faster)")
print(f"berth/crun   = {med['berth']/med['crun']:.3f} (goal <= 0.7)")
PY
