#!/usr/bin/env bash
# Benchmark `build` of one Dockerfile (FROM busybox, 8 steps: ENV, WORKDIR,
# COPY of 1000 small files, two RUNs, LABEL, CMD) with berth, `buildah bud
# --layers` and `podman build --layers`, interleaved round-robin so that
# drift hits all alike, in two forms:
#   cold:   every step runs (berth --no-cache, buildah/podman --no-cache
#           --layers); the base image stays in each store.
#   cached: a rebuild of an unchanged context, every step from the cache.
# All three run RUN steps with --network=none (nothing needs the network,
# and it keeps network setup out of the figures). Prints medians and the
# ratios berth/buildah and berth/podman (goals: cold <= 0.5, cached <= 0.2
# of buildah).
#
# Usage: bench/build.sh [--rounds N] [--berth PATH] [--files N]
# Needs root, buildah, podman (tests/podman-env.sh sets up a private store
# both use).
set -euo pipefail

rounds=5
files=1000
# shellcheck source=lib.sh
source "$(dirname -- "$(readlink -f -- "${BASH_SOURCE[0]}")")/lib.sh"
while (($#)); do
    case $1 in
        --rounds) rounds=$2; shift 2 ;;
        --berth) berth=$(readlink -m -- "$2"); shift 2 ;;
        --files) files=$2; shift 2 ;;
        *) echo "usage: $0 [--rounds N] [--berth PATH] [--files N]" >&2; exit 2 ;;
    esac
done
bench_positive --rounds "$rounds"
bench_positive --files "$files"
bench_need_berth
bench_need buildah podman python3

work=$(mktemp -d /var/tmp/berth-bench-build.XXXXXX)
cleanup() {
    (podman_env_cleanup >/dev/null 2>&1 || true)
    rm -rf "$work"
}
trap cleanup EXIT

# shellcheck source=../tests/podman-env.sh
source "$repo/tests/podman-env.sh" "$work/podman" >/dev/null
podman_import_busybox bench-busybox
rootfs="$work/podman/rootfs-bench-busybox"

# berth: the same rootfs, the same name, a private store
tar --numeric-owner -C "$rootfs" -cf "$work/bb.tar" .
"$berth" --root "$work/berth" import -c 'CMD ["/bin/sh"]' \
    -c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    "$work/bb.tar" localhost/bench-busybox:latest >/dev/null

# The context: the Dockerfile and $files small files.
ctx="$work/context"
mkdir -p "$ctx/files"
for ((i = 0; i < files; i++)); do printf 'file %d\n' "$i" >"$ctx/files/f$(printf %04d "$i")"; done
cat >"$ctx/Dockerfile" <<'EOF'
FROM localhost/bench-busybox:latest
ENV APP=/app
WORKDIR /app
COPY files/ /app/files/
RUN find /app/files -type f | wc -l > /app/count
RUN cat /app/files/f0001 /app/count > /app/summary && mkdir -p /app/bin && cp /bin/busybox /app/bin/
LABEL bench=build
CMD ["cat", "/app/summary"]
EOF

python3 - "$rounds" "$berth" "$work" "$ctx" <<'PY'
import statistics, subprocess, sys, time
rounds, berth, work, ctx = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
tools = {
    "berth": [berth, "--root", f"{work}/berth", "build", "-q", "--network=none", "-t", "bench-built"],
    "buildah": ["buildah", "bud", "-q", "--layers", "--network=none", "-t", "bench-built"],
    "podman": ["podman", "build", "-q", "--layers", "--network=none", "-t", "bench-built"],
}
forms = {"cold": ["--no-cache"], "cached": []}
names = list(tools)
times = {(f, n): [] for f in forms for n in names}

def build(name, extra):
    t = time.perf_counter()
    p = subprocess.run(tools[name] + extra + [ctx], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    dt = time.perf_counter() - t
    if p.returncode != 0:
        sys.exit(f"build bench: {name} failed: {p.stderr.decode().strip()}")
    return dt * 1000

# One build each first, so that the cached form has something to hit
# (and the first-use costs of each tool are out of the figures).
for n in names:
    build(n, [])
for r in range(rounds):
    order = names[r % len(names):] + names[:r % len(names)]
    for f, extra in forms.items():
        for n in order:
            times[(f, n)].append(build(n, extra))
    print(f"  round {r + 1} done", file=sys.stderr)

goals = {"cold": 0.5, "cached": 0.2}
print(f"build of a {open(ctx + '/Dockerfile').read().count(chr(10))}-line Dockerfile, {rounds} interleaved rounds (median ms):")
print(f"  {'form':7s} {'berth':>9s} {'buildah':>9s} {'podman':>9s} {'b/buildah':>10s} {'b/podman':>9s}  goal")
for f in forms:
    med = {n: statistics.median(times[(f, n)]) for n in names}
    print(f"  {f:7s} {med['berth']:9.1f} {med['buildah']:9.1f} {med['podman']:9.1f}"
          f" {med['berth']/med['buildah']:10.3f} {med['berth']/med['podman']:9.3f}  <= {goals[f]} of buildah")
PY
