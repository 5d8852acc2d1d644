#!/usr/bin/env bash
# Benchmark `<runtime> run <id>` of /bin/true from one shared OCI bundle for
# berth-runtime, crun and runc (plus a bare `unshare` floor), interleaved
# round-robin so that drift (thermal, page cache, other load) hits all equally.
#
# Usage: bench/runtime-run.sh [--rounds N] [--berth PATH] [--limits]
#
#   --rounds N    measured rounds (default 200); 10 warm-up rounds are run first
#                 and discarded. One round = one run of every runtime, in an
#                 order rotated by one position each round.
#   --berth PATH  berth-runtime binary (default: <repo>/target/<host>/release/berth-runtime,
#                 as scripts/build-release.sh makes it: static, no loader work).
#                 If it is missing, crun, runc and the floor are still measured.
#   --limits      put a memory limit (256 MiB) and a pids limit (100) in the
#                 bundle, for every runtime alike.
#
# Needs root. Installs nothing; it names the missing Debian package instead.
set -euo pipefail

readonly WARMUP_ROUNDS=10
readonly GOAL_RATIO=0.70
# Guard for the self re-exec into a private mount namespace (see below).
readonly NS_GUARD=BERTH_BENCH_IN_MOUNT_NS

script_path=$(readlink -f -- "${BASH_SOURCE[0]}")
repo_root=$(cd -- "$(dirname -- "$script_path")/.." && pwd)

usage() { sed -n '2,13s/^# \{0,1\}//p' "$script_path"; }
die() { echo "runtime-run: $*" >&2; exit 1; }

rounds=200
limits=0
berth="$repo_root/target/$(rustc -vV | sed -n "s/^host: //p")/release/berth-runtime"
while (($#)); do
    case $1 in
        --rounds) (($# >= 2)) || die "--rounds needs a value"; rounds=$2; shift 2 ;;
        --rounds=*) rounds=${1#*=}; shift ;;
        --berth) (($# >= 2)) || die "--berth needs a value"; berth=$2; shift 2 ;;
        --berth=*) berth=${1#*=}; shift ;;
        --limits) limits=1; shift ;;
        -h|--help) usage; exit 0 ;;
        *) usage >&2; die "unknown argument: $1" ;;
    esac
done
[[ $rounds =~ ^[1-9][0-9]*$ ]] || die "--rounds must be a positive integer, got '$rounds'"
# Absolute, so it survives the re-exec and any cwd change.
berth=$(readlink -m -- "$berth")

# ---------------------------------------------------------------------------
# Stage 1 (host mount namespace): preflight, then re-exec in a private one.
# ---------------------------------------------------------------------------
if [[ -z ${!NS_GUARD:-} ]]; then
    ((EUID == 0)) || die "must run as root (runtimes need to create namespaces and cgroups)"

    missing=()
    need() { command -v "$1" >/dev/null 2>&1 || missing+=("$1 (apt package: $2)"); }
    need crun crun
    need runc runc
    need unshare util-linux
    need python3 python3
    need mountpoint util-linux
    # The rootfs gets nothing but this one binary, so it must be static:
    # Debian's "busybox" package is dynamic, "busybox-static" is not.
    if [[ ! -x /bin/busybox ]]; then
        missing+=("/bin/busybox (apt package: busybox-static)")
    elif ldd /bin/busybox >/dev/null 2>&1; then
        missing+=("static /bin/busybox; the installed one is dynamic (apt package: busybox-static)")
    fi
    if ((${#missing[@]})); then
        printf 'runtime-run: missing: %s\n' "${missing[@]}" >&2
        die "install the packages above (apt-get install ...) and retry"
    fi

    # Everything from here on, for ALL runtimes, runs inside one private mount
    # namespace, so the cgroup tweak below never touches the host's mounts.
    # `unshare` without --fork execs the script in place: same PID, signals
    # and the EXIT trap behave as if it were never re-executed.
    export "$NS_GUARD=1"
    # Every option again (a lost --limits once made CI measure no limits).
    reexec_args=(--rounds "$rounds" --berth "$berth")
    ((limits)) && reexec_args+=(--limits)
    exec unshare --mount --propagation private -- \
        "$BASH" "$script_path" "${reexec_args[@]}"
fi

# ---------------------------------------------------------------------------
# Stage 2 (private mount namespace): cgroup setup, bundle, measurement.
# ---------------------------------------------------------------------------

# Hybrid cgroup hosts mount a cgroup2 at /sys/fs/cgroup/unified next to the v1
# controllers. Debian's crun 1.8.x refuses that as soon as cgroup2 lists any
# controller ("cgroups in hybrid mode not supported, drop all controllers from
# cgroupv2"; e.g. hugetlb, which is not mounted on v1), so drop it.
# Plain `umount` is not enough: crun then still treats the bare directory as
# the unified hierarchy and creates <id>/cgroup.procs in it, i.e. in the
# host's /sys/fs/cgroup tmpfs, where it would pile up hidden under the host's
# cgroup2 mount. A throwaway tmpfs on top keeps that litter in this namespace;
# runc only checks the fs type there, and tmpfs is "not cgroup2" to both.
# No size= limit: every crun run leaves a dir plus a one-page file there
# (~4 KiB/run), which a small fixed size would eventually run out of.
unified=/sys/fs/cgroup/unified
if mountpoint -q "$unified" && [[ $(stat -f -c %T "$unified") == cgroup2fs ]]; then
    umount "$unified"
    mount -t tmpfs -o mode=0755 berth-bench-unified "$unified"
    cgroup_note="hybrid v1/v2: $unified unmounted (tmpfs placeholder) in a private mount ns"
else
    cgroup_note="$(stat -f -c %T /sys/fs/cgroup) at /sys/fs/cgroup, left as is"
fi

work=$(mktemp -d /tmp/berth-bench.XXXXXX)
# Container ids: <id_prefix><round>-<runtime index>. The random part keeps
# concurrent benchmarks apart and lets cleanup find this run's cgroups.
id_prefix="bench-${work##*.}-"
driver_pid=
bundle="$work/bundle"

runtimes=(crun runc)
declare -A runtime_bin=([crun]=$(command -v crun) [runc]=$(command -v runc))
if [[ -x $berth ]]; then
    runtimes=(berth-runtime "${runtimes[@]}")
    runtime_bin[berth-runtime]=$berth
    berth_note=""
else
    berth_note="berth-runtime not found at $berth (cargo build --release -p berth-runtime); measuring crun and runc only"
fi

cleanup() {
    local rc=$? rt state id
    trap - EXIT INT TERM
    # Interrupted: stop the driver first (on SIGTERM it lets the current run
    # finish, then exits) so nothing creates state while we sweep it.
    if [[ -n ${driver_pid:-} ]]; then
        kill -TERM "$driver_pid" 2>/dev/null || true
        wait "$driver_pid" 2>/dev/null || true
    fi
    # Force-delete anything a runtime left behind (normally nothing: `run`
    # deletes its container on exit, and the driver `delete -f`s on failure).
    # crun, runc and berth-runtime all keep one directory per id under --root.
    for rt in "${runtimes[@]}"; do
        state="$work/state-$rt"
        [[ -d $state ]] || continue
        for id in "$state"/*/; do
            [[ -d $id ]] || continue
            id=$(basename -- "$id")
            "${runtime_bin[$rt]}" --root "$state" delete -f "$id" >/dev/null 2>&1 ||
                echo "runtime-run: warning: $rt delete -f $id failed" >&2
        done
    done
    # Safety net for cgroups left by a runtime that died mid-run. crun puts
    # them at /sys/fs/cgroup/<ctrl>/<id>, runc under its own cgroup, so search
    # a few levels; rmdir only ever removes empty (task-less) cgroups.
    find /sys/fs/cgroup -mindepth 2 -maxdepth 6 -depth -type d \
        -name "${id_prefix}*" -exec rmdir {} + 2>/dev/null || true
    rm -rf -- "$work"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- bundle: static busybox rootfs + unmodified `runc spec` -----------------
mkdir -p "$bundle"/rootfs/{bin,etc,tmp,proc,sys,dev}
cp /bin/busybox "$bundle/rootfs/bin/busybox"
ln -s busybox "$bundle/rootfs/bin/true"
echo 'root:x:0:0:root:/root:/bin/sh' >"$bundle/rootfs/etc/passwd"
echo 'root:x:0:' >"$bundle/rootfs/etc/group"
chmod 1777 "$bundle/rootfs/tmp"
# runc's default spec: pid, network, ipc, uts, mount, cgroup namespaces, its
# default mounts, maskedPaths, readonlyPaths, and root.readonly=true (kept:
# the same bundle is used for every runtime). Only args and terminal change.
# No linux.cgroupsPath, so each runtime picks its default cgroup, and that
# differs: crun (cgroupfs manager, its default) uses /<id> at the root of every
# v1 hierarchy; runc uses <its own cgroup>/<id> per hierarchy. Both create and
# remove one cgroup per hierarchy per run, which is part of what is measured.
(cd "$bundle" && runc spec)
python3 - "$bundle/config.json" "$limits" <<'PY'
import json, sys
path = sys.argv[1]
with open(path) as f:
    cfg = json.load(f)
cfg["process"]["args"] = ["/bin/true"]
cfg["process"]["terminal"] = False
if sys.argv[2] == "1":
    res = cfg["linux"].setdefault("resources", {})
    res["memory"] = {"limit": 256 * 1024 * 1024}
    res["pids"] = {"limit": 100}
with open(path, "w") as f:
    json.dump(cfg, f, indent="\t")
PY

# --- driver ----------------------------------------------------------------
# A small python3 driver rather than bash+EPOCHREALTIME: fork/exec/wait cost
# is the same code path for every runtime, perf_counter_ns is monotonic, and
# stderr goes to a file (not a pipe) so nothing is read while the clock runs.
cat >"$work/driver.py" <<'PY'
import gc, signal, statistics, subprocess, sys, time

# SIGTERM (from the script's trap) or SIGINT (Ctrl-C): let the current run
# finish, then stop. Killing a runtime mid-`run` can leave cgroups it has not
# recorded in its state dir yet, which `delete -f` then cannot find. A handler
# (unlike SIG_IGN, which bash gives background jobs) is reset on exec, so the
# runtimes start with default signal dispositions.
stop = 0
def on_signal(signum, _frame):
    global stop
    stop = 128 + signum
signal.signal(signal.SIGTERM, on_signal)
signal.signal(signal.SIGINT, on_signal)

rounds, warmup, bundle, work, goal, id_prefix = (
    int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4],
    float(sys.argv[5]), sys.argv[6])
specs = [a.split("=", 1) for a in sys.argv[7:]]    # name=binary, in order

FLOOR = "unshare (floor)"
# Same namespaces as runc's default spec, nothing else: the unavoidable cost.
floor_cmd = ["unshare", "--pid", "--fork", "--net", "--ipc", "--uts",
             "--mount", "--cgroup", "/bin/true"]

def run_cmd(name, binary, cid):
    if name == FLOOR:
        return floor_cmd
    return [binary, "--root", f"{work}/state-{name}", "run", "--bundle", bundle, cid]

errf = open(f"{work}/stderr", "w+b")

def one(name, binary, cid):
    errf.seek(0)
    errf.truncate()
    cmd = run_cmd(name, binary, cid)
    t0 = time.perf_counter_ns()
    rc = subprocess.call(cmd, stdin=subprocess.DEVNULL,
                         stdout=subprocess.DEVNULL, stderr=errf)
    dt = time.perf_counter_ns() - t0
    if rc != 0:
        errf.seek(0)
        err = errf.read().decode(errors="replace").strip()
        if name != FLOOR:
            subprocess.call([binary, "--root", f"{work}/state-{name}",
                             "delete", "-f", cid],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if stop:                 # Ctrl-C reached the runtime too: not its fault
            sys.exit(stop)
        sys.exit(f"runtime-run: {name} failed (exit {rc}): {' '.join(cmd)}\n"
                 f"--- {name} stderr ---\n{err or '(empty)'}")
    return dt

entries = [(n, b) for n, b in specs] + [(FLOOR, None)]
samples = {n: [] for n, _ in entries}
order = list(enumerate(entries))
gc.disable()   # no collector pauses inside a timed region
total = warmup + rounds
for r in range(total):
    k = r % len(entries)
    for i, (name, binary) in (order[k:] + order[:k]):   # rotate each round
        # Unique per run (round, runtime) and the same length for everyone.
        if stop:
            sys.exit(stop)
        dt = one(name, binary, f"{id_prefix}{r:06d}-{i}")
        if r >= warmup:
            samples[name].append(dt)
    if (r + 1) % 50 == 0 or r + 1 == total:
        print(f"  round {r + 1}/{total}", file=sys.stderr)

def p90(xs):   # linear interpolation between closest ranks (numpy default)
    xs = sorted(xs)
    pos = 0.9 * (len(xs) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)

ms = lambda ns: ns / 1e6
stats = {n: (statistics.median(v), p90(v), min(v)) for n, v in samples.items()}
base = stats["crun"][0]
rows = [("runtime", "median ms", "p90 ms", "min ms", "median/crun")]
for n, _ in entries:
    med, p, mn = stats[n]
    rows.append((n, f"{ms(med):.3f}", f"{ms(p):.3f}", f"{ms(mn):.3f}", f"{med / base:.2f}"))
w = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
print(f"\n{rounds} rounds (+{warmup} warm-up), order rotated each round")
for i, r in enumerate(rows):
    print("  ".join([r[0].ljust(w[0])] + [c.rjust(w[j + 1]) for j, c in enumerate(r[1:])]))
    if i == 0:
        print("  ".join("-" * x for x in w))
if "berth-runtime" in stats:
    ratio = stats["berth-runtime"][0] / base
    print(f"\nberth-runtime/crun median ratio: {ratio:.2f} (goal <= {goal:.2f})")
PY

echo "runtime-run: $rounds rounds + $WARMUP_ROUNDS warm-up; kernel $(uname -r); $(nproc) CPUs"
echo "runtime-run: cgroups: $cgroup_note"
for rt in "${runtimes[@]}"; do
    printf 'runtime-run: %-13s %s (%s)\n' "$rt" "${runtime_bin[$rt]}" \
        "$("${runtime_bin[$rt]}" --version 2>/dev/null | head -n1)"
done
[[ -z $berth_note ]] || echo "runtime-run: $berth_note"

specs=()
for rt in "${runtimes[@]}"; do specs+=("$rt=${runtime_bin[$rt]}"); done
# Background + wait: a foreground child would delay the INT/TERM traps until
# the whole benchmark finished.
python3 "$work/driver.py" "$rounds" "$WARMUP_ROUNDS" "$bundle" "$work" "$GOAL_RATIO" "$id_prefix" "${specs[@]}" &
driver_pid=$!
wait "$driver_pid"
driver_pid=

[[ -z $berth_note ]] || echo "$berth_note"
