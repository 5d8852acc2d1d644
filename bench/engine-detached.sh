#!/usr/bin/env bash
# Detached containers, side by side, interleaved round-robin (so that drift
# on this shared machine hits all alike): each round, each side starts one
# detached `sleep` container (timed until the command returns with the
# container running) and then removes it with a forced remove (timed
# apart). Prints the medians of both and the ratios berth/peer.
#
# The sides, all --network=none over the same busybox rootfs:
#   berth   berth run -d --network=none bench-busybox sleep 1000
#           berth rm -f ID
#   podman  podman run -d --network=none localhost/bench-busybox sleep 1000
#           podman rm -f -t 0 ID          (podman's default runtime: runc)
#   crun    crun run --detach --bundle B NAME   (B: berth's own spec for the
#           same container, seccomp included: bench/same-spec-bundle.sh)
#           crun delete -f NAME
# crun has no monitor: what it starts has no supervisor, no log and no
# store, so it is the floor, not a peer. Memory per idle container is
# bench/engine-memory.sh's (the supervisor's PSS plus the memory cgroup;
# MemAvailable deltas swing by hundreds of KiB here and are not used).
#
# Usage: bench/engine-detached.sh [--rounds N] [--no-peer] [--berth PATH]
# Needs root, podman, crun (tests/podman-env.sh sets up a private podman).
set -euo pipefail

rounds=20
peer=1
# shellcheck source=lib.sh
source "$(dirname -- "$(readlink -f -- "${BASH_SOURCE[0]}")")/lib.sh"
while (($#)); do
    case $1 in
        --rounds) rounds=$2; shift 2 ;;
        --no-peer) peer=0; shift ;;
        --berth) berth=$(readlink -m -- "$2"); shift 2 ;;
        *) echo "usage: $0 [--rounds N] [--no-peer] [--berth PATH]" >&2; exit 2 ;;
    esac
done
bench_positive --rounds "$rounds"
bench_need_berth
bench_need podman crun python3

# crun refuses this host's hybrid cgroup layout unless the empty cgroup2 at
# /sys/fs/cgroup/unified is out of sight (see bench/engine-run.sh).
if [[ -z ${BERTH_BENCH_IN_NS:-} ]]; then
    args=(--rounds "$rounds" --berth "$berth")
    ((peer)) || args+=(--no-peer)
    exec env BERTH_BENCH_IN_NS=1 unshare -m --propagation private "$script_path" "${args[@]}"
fi
umount /sys/fs/cgroup/unified 2>/dev/null || true

work=$(mktemp -d /var/tmp/berth-bench-detached.XXXXXX)
cleanup() {
    # shellcheck disable=SC2046 # one word per id
    "$berth" --root "$work/berth" rm -f $("$berth" --root "$work/berth" ps -aq 2>/dev/null) >/dev/null 2>&1 || true
    crun --root "$work/crun-state" delete -f bench >/dev/null 2>&1 || true
    (podman_env_cleanup >/dev/null 2>&1 || true)
    rm -rf "$work"
    rmdir /sys/fs/cgroup/*/bench-crun-detached /sys/fs/cgroup/bench-crun-detached 2>/dev/null || true
}
trap cleanup EXIT
# shellcheck source=../tests/podman-env.sh
source "$repo/tests/podman-env.sh" "$work/podman" >/dev/null
podman_import_busybox bench-busybox
rootfs="$work/podman/rootfs-bench-busybox"
tar --numeric-owner -C "$rootfs" -cf "$work/bb.tar" .
"$berth" --root "$work/berth" import -c 'CMD ["sh"]' "$work/bb.tar" bench-busybox >/dev/null
# shellcheck source=same-spec-bundle.sh
source "$repo/bench/same-spec-bundle.sh"
same_spec_bundle "$berth" "$work/berth" bench-busybox "$rootfs" "$work/bundle" \
    /bench-crun-detached/bench '["sleep", "1000"]'

python3 - "$rounds" "$peer" "$berth" "$work" <<'PY'
import statistics, subprocess, sys, tempfile, time
rounds, peer, berth, work = int(sys.argv[1]), sys.argv[2] == "1", sys.argv[3], sys.argv[4]
b = [berth, "--root", f"{work}/berth"]
c = ["crun", "--root", f"{work}/crun-state"]
sides = {
    # start: the command line; its output's first line is the id to remove
    "berth": (b + ["run", "-d", "--network=none", "--userns=host", "bench-busybox", "sleep", "1000"],
              lambda out: b + ["rm", "-f", out]),
    "crun": (c + ["run", "--detach", "--bundle", f"{work}/bundle", "bench"],
             lambda out: c + ["delete", "-f", "bench"]),
}
if peer:
    sides["podman"] = (["podman", "run", "-d", "--network=none", "localhost/bench-busybox", "sleep", "1000"],
                       lambda out: ["podman", "rm", "-f", "-t", "0", out])
names = list(sides)
start = {n: [] for n in names}
remove = {n: [] for n in names}
def timed(cmd, what):
    # Output to files, not pipes: a detached container (crun's) keeps the
    # descriptors it was given, and a pipe would not end while it runs.
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t = time.perf_counter()
        p = subprocess.run(cmd, stdout=out, stderr=err, stdin=subprocess.DEVNULL)
        dt = (time.perf_counter() - t) * 1000
        out.seek(0)
        err.seek(0)
        if p.returncode != 0:
            sys.exit(f"engine-detached: {what} failed: {err.read().decode().strip()}")
        return dt, out.read().decode().strip()
for r in range(rounds + 2):
    order = names[r % len(names):] + names[:r % len(names)]
    for n in order:
        run, rm = sides[n]
        dt_start, out = timed(run, f"{n} run -d")
        dt_rm, _ = timed(rm(out), f"{n} rm -f")
        if r >= 2:  # warm-up rounds discarded
            start[n].append(dt_start)
            remove[n].append(dt_rm)
print("what each side runs:")
for n in names:
    print(f"  {n:7s} {' '.join(sides[n][0])}")
    print(f"  {'':7s} {' '.join(sides[n][1]('ID'))}")
for title, data in (("run -d (until it returns, the container running)", start),
                    ("forced remove of the running container", remove)):
    med = {n: statistics.median(v) for n, v in data.items()}
    print(f"{title}, {rounds} interleaved rounds (median ms):")
    for n in names:
        print(f"  {n:7s} {med[n]:8.2f}")
    for n in names[1:]:
        print(f"  berth/{n:7s} = {med['berth'] / med[n]:.3f}")
PY
