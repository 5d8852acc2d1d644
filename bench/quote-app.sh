#!/usr/bin/env bash
# Benchmark the builds of the quote-app's two images (examples/postgres and
# examples/quote-app, FROM the Debian minbase, apt-get install from the
# mirror apt uses) with berth and `podman build --layers`, interleaved
# round-robin so that drift (the mirror, the other load) hits both alike:
#   cold:   every step runs (--no-cache); the base image stays in each store
#   cached: a rebuild of unchanged contexts, every step from the cache
# RUN steps use --network=host in both (they download packages; the
# network setup of a RUN is not what is measured here). Prints medians and
# the ratio berth/podman.
#
# Usage: bench/quote-app.sh [--rounds N] [--berth PATH]
# Needs root, podman (tests/podman-env.sh: a private store), the Debian
# base (scripts/debian-base.sh, cached) and the Debian mirror.
set -euo pipefail

rounds=3
# shellcheck source=lib.sh
source "$(dirname -- "$(readlink -f -- "${BASH_SOURCE[0]}")")/lib.sh"
bench_args "$@"
bench_need podman python3
base=$("$repo/scripts/debian-base.sh")

work=$(mktemp -d /var/tmp/berth-bench-quote.XXXXXX)
cleanup() {
    (podman_env_cleanup >/dev/null 2>&1 || true)
    rm -rf "$work"
}
trap cleanup EXIT

# shellcheck source=../tests/podman-env.sh
source "$repo/tests/podman-env.sh" "$work/podman" >/dev/null
changes=(--change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' --change 'CMD ["bash"]')
podman import -q "${changes[@]}" "$base" localhost/debian-base:bookworm >/dev/null
"$berth" --root "$work/berth" --runroot "$work/berth-run" import "${changes[@]}" "$base" debian-base:bookworm >/dev/null

python3 - "$rounds" "$berth" "$work" "$repo/examples" <<'PY'
import statistics, subprocess, sys, time
rounds, berth, work, examples = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
tools = {
    "berth": [berth, "--root", f"{work}/berth", "--runroot", f"{work}/berth-run", "build", "-q", "--network=host"],
    "podman": ["podman", "build", "-q", "--layers", "--network=host"],
}
images = [("postgres-debian:bookworm", f"{examples}/postgres"), ("quote-app:1", f"{examples}/quote-app")]
forms = {"cold": ["--no-cache"], "cached": []}
names = list(tools)
times = {(f, n): [] for f in forms for n in names}

def build(name, extra):
    """Both images, one after the other: ms."""
    t = time.perf_counter()
    for tag, ctx in images:
        p = subprocess.run(tools[name] + extra + ["-t", tag, ctx], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        if p.returncode != 0:
            sys.exit(f"quote-app bench: {name} build of {tag} failed: {p.stderr.decode().strip()[-2000:]}")
    return (time.perf_counter() - t) * 1000

# One build each first, so that the cached form has something to hit.
for n in names:
    build(n, [])
for r in range(rounds):
    order = names[r % len(names):] + names[:r % len(names)]
    for f, extra in forms.items():
        for n in order:
            times[(f, n)].append(build(n, extra))
    print(f"  round {r + 1} done", file=sys.stderr)

print(f"builds of the quote-app's two images, {rounds} interleaved rounds (median ms):")
print(f"  {'form':7s} {'berth':>9s} {'podman':>9s} {'berth/podman':>13s}")
for f in forms:
    med = {n: statistics.median(times[(f, n)]) for n in names}
    print(f"  {f:7s} {med['berth']:9.1f} {med['podman']:9.1f} {med['berth']/med['podman']:13.3f}")
PY
