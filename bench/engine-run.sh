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
script_path=$(readlink -f -- "${BASH_SOURCE[0]}")
repo=$(cd -- "$(dirname -- "$script_path")/.." && pwd)
berth="$repo/target/$(rustc -vV | sed -n 's/^host: //p')/release/berth"
while (($#)); do
    case $1 in
        --rounds) rounds=$2; shift 2 ;;
        --berth) berth=$(readlink -m -- "$2"); shift 2 ;;
        *) echo "usage: $0 [--rounds N] [--berth PATH]" >&2; exit 2 ;;
    esac
done
[[ $rounds =~ ^[1-9][0-9]*$ ]] || { echo "engine-run: --rounds must be a positive integer" >&2; exit 2; }
[[ -x $berth ]] || { echo "engine-run: no berth binary at $berth (scripts/build-release.sh)" >&2; exit 1; }
for t in podman crun python3; do
    command -v "$t" >/dev/null || { echo "engine-run: $t missing (apt-get install $t)" >&2; exit 1; }
done

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

# shellcheck source=../tests/podman-env.sh
source "$repo/tests/podman-env.sh" "$work/podman" >/dev/null
podman_import_busybox bench-busybox
rootfs="$work/podman/rootfs-bench-busybox"

# berth: the same rootfs imported into a private store
tar --numeric-owner -C "$rootfs" -cf "$work/bb.tar" .
"$berth" --root "$work/berth" import -c 'CMD ["sh"]' "$work/bb.tar" bench-busybox >/dev/null

# crun: a prepared bundle with berth's own spec for this container (the
# config.json berth writes for people): the same namespaces, mounts, masked
# paths, capabilities, cgroup device rules and Docker's seccomp profile,
# over the same rootfs. What differs is only what berth's spec points into
# its container directory (hosts, hostname, resolv.conf: copied into the
# bundle) and the root, which is the image's rootfs directory here and
# berth's overlay there.
"$berth" --root "$work/berth" run --name bench-spec --network=none bench-busybox true >/dev/null
spec_id=$("$berth" --root "$work/berth" inspect -f '{{.Id}}' bench-spec)
mkdir -p "$work/bundle"
for f in config.json hosts hostname resolv.conf; do
    cp "$work/berth/containers/$spec_id/$f" "$work/bundle/"
done
"$berth" --root "$work/berth" rm bench-spec >/dev/null
ln -s "$rootfs" "$work/bundle/rootfs"
python3 - "$work/bundle" "$work/berth/containers/$spec_id" <<'PY'
import json, sys
bundle, berth_dir = sys.argv[1], sys.argv[2]
p = f"{bundle}/config.json"
c = json.load(open(p))
# This crun knows runtime-spec versions up to 1.0.x by name only.
c["ociVersion"] = "1.0.2"
c["root"] = {"path": "rootfs", "readonly": False}
c["process"]["args"] = ["true"]
for m in c["mounts"]:
    if m["source"].startswith(berth_dir + "/"):
        m["source"] = bundle + m["source"][len(berth_dir):]
    assert not m["source"].startswith(berth_dir), m
c["linux"]["cgroupsPath"] = "/bench-crun/bench"
assert c["linux"].get("seccomp"), "berth's spec has no seccomp profile"
json.dump(c, open(p, "w"))
PY

python3 - "$rounds" "$berth" "$work" <<'PY'
import statistics, subprocess, sys, time
rounds, berth, work = int(sys.argv[1]), sys.argv[2], sys.argv[3]
cmds = {
    "berth": [berth, "--root", f"{work}/berth", "run", "--rm", "--network=none", "bench-busybox", "true"],
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
print(f"run --rm busybox true, {rounds} interleaved rounds (median ms):")
for n in names:
    print(f"  {n:7s} {med[n]:8.2f}")
print(f"berth/podman = {med['berth']/med['podman']:.3f} ({med['podman']/med['berth']:.1f}x faster; goal >= 15x)")
print(f"berth/crun   = {med['berth']/med['crun']:.3f} (goal <= 0.7)")
PY
