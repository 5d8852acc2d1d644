#!/usr/bin/env bash
# Benchmark `run --rm busybox true` rootless: berth vs podman as the same
# ordinary user, same busybox rootfs, both --network=none (berth's pasta
# and podman's slirp4netns would add their own start to each), interleaved
# round-robin so that drift hits both alike. Prints medians and the ratio
# berth/podman (goal <= 1/10).
#
# Usage: bench/rootless.sh [--rounds N] [--berth PATH]
# Run as root: it makes (once) the user berth-rootless-test with
# subordinate ids, as crates/berth/tests/rootless.rs does, and runs both
# engines as that user with stores in a temp dir (podman with runc: Debian's crun refuses this host's hybrid cgroups). Needs podman, runc,
# uidmap, runuser, python3.
set -euo pipefail

rounds=30
# shellcheck source=lib.sh
source "$(dirname -- "$(readlink -f -- "${BASH_SOURCE[0]}")")/lib.sh"
user=berth-rootless-test
bench_args "$@"
[[ $(id -u) == 0 ]] || { echo "rootless: run as root (it makes the test user)" >&2; exit 1; }
bench_need podman runc newuidmap runuser python3

id "$user" >/dev/null 2>&1 || useradd --create-home --shell /bin/sh "$user"
grep -q "^$user:" /etc/subuid || usermod --add-subuids 3000000-3065535 --add-subgids 3000000-3065535 "$user"

# A short path: conmon's sockets under podman's run root must fit in a unix
# socket's 108 bytes; under a longer one podman waited out its 20 s conmon
# timeout on every run (its debug log: "Exceeded conmon timeout waiting for
# container"), which earlier figures of this bench measured.
work=$(mktemp -d /var/tmp/brl.XXXXXX)
chown "$user:" "$work"
chmod 0755 "$work"
# The release binary may sit where the user cannot reach it.
install -m 0755 "$berth" "$work/berth"
tar --numeric-owner -C "$repo/target/berth-fixtures/busybox-rootfs" -cf "$work/bb.tar" . 2>/dev/null || {
    echo "rootless: no busybox fixture under target/berth-fixtures (run a test that makes it, e.g. cargo test -p berth --test rootless)" >&2
    exit 1
}
chmod 0644 "$work/bb.tar"
as_user() {
    runuser -u "$user" -- env -i PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin \
        HOME="$work/home" XDG_DATA_HOME="$work/data" XDG_RUNTIME_DIR="$work/run" \
        XDG_CONFIG_HOME="$work/config" "$@"
}
cleanup() {
    # Both engines keep a pause process per user namespace: ended by pid.
    local f
    for f in "$work/run/berth/pause.pid" "$work/run/libpod/tmp/pause.pid"; do
        [[ -f $f ]] && kill "$(cat "$f")" 2>/dev/null || true
    done
    rm -rf "$work"
}
trap cleanup EXIT

as_user mkdir -p "$work/home" "$work/config/containers" "$work/run"
as_user chmod 0700 "$work/run"
hn=$(as_user bash -c 'ulimit -Hn'); hu=$(as_user bash -c 'ulimit -Hu')
[[ $hn == unlimited ]] && hn=1048576
[[ $hu == unlimited ]] && hu=32768
((hu > 32768)) && hu=32768
# podman's built-in default ulimits exceed this host's hard limits, which an
# ordinary user cannot raise. runc (rootless) goes without cgroups when it
# can make none and no limit is asked for, as berth does.
as_user tee "$work/config/containers/containers.conf" >/dev/null <<EOF
[containers]
default_ulimits = ["nofile=$hn:$hn", "nproc=$hu:$hu"]
cgroups = "enabled"
log_driver = "k8s-file"
[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
runtime = "runc"
EOF
as_user tee "$work/config/containers/storage.conf" >/dev/null <<EOF
[storage]
driver = "overlay"
graphroot = "$work/data/containers/storage"
runroot = "$work/run/containers"
EOF

as_user podman import "$work/bb.tar" localhost/bench-busybox >/dev/null
as_user "$work/berth" import "$work/bb.tar" bench-busybox >/dev/null

as_user tee "$work/bench.py" >/dev/null <<'PY'
import statistics, subprocess, sys, tempfile, time
rounds, berth = int(sys.argv[1]), sys.argv[2]
# stderr to a file, not a pipe: podman's exit command (`podman container
# cleanup`, started by conmon) inherits it and outlives podman by seconds;
# a pipe would time that too, not the command.
cmds = {
    "berth": [berth, "run", "--rm", "--network=none", "bench-busybox", "true"],
    "podman": ["podman", "run", "--rm", "--network=none", "localhost/bench-busybox", "true"],
}
names = list(cmds)
times = {n: [] for n in names}
for r in range(rounds + 3):
    order = names[r % len(names):] + names[:r % len(names)]
    for n in order:
        with tempfile.TemporaryFile() as err:
            t = time.perf_counter()
            p = subprocess.run(cmds[n], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err)
            dt = time.perf_counter() - t
            if p.returncode != 0:
                err.seek(0)
                sys.exit(f"rootless: {n} failed: {err.read().decode().strip()}")
        if r >= 3:  # warm-up rounds discarded
            times[n].append(dt * 1000)
med = {n: statistics.median(v) for n, v in times.items()}
print(f"run --rm busybox true, rootless, {rounds} interleaved rounds (median ms)")
for n in names:
    print(f"  {n:7s} {med[n]:8.2f}")
print(f"  berth/podman = {med['berth'] / med['podman']:.3f} (goal <= 0.1)")
PY
# The script from a file and stdin from /dev/null: nothing the engines
# start can hold the bench's own stdin.
as_user python3 "$work/bench.py" "$rounds" "$work/berth" </dev/null
