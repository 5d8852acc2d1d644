#!/usr/bin/env bash
# Benchmark the build-then-push cycle on a real Debian image, berth beside
# a real Docker (Debian's docker.io, a private dockerd, its classic
# builder), interleaved rounds, order swapped each round; medians and the
# ratio berth/docker:
#   build: the Dockerfile of crates/berth/tests/roundtrip.rs (FROM the
#          debootstrap minbase of scripts/debian-base.sh: COPY of three
#          .debs, one RUN that installs them and makes every kind of layer
#          entry), --no-cache, RUN without network on both.
#   push:  the built image (base and two layers, ~130 MB) to a loopback
#          docker-registry started empty for each push. Docker gzips the
#          layers; berth pushes them as stored (plain tars) by default,
#          and a second row gzips them as Docker does (the like-for-like).
#   pull:  the image Docker pushed (gzipped layers), berth into an empty
#          store, docker into a daemon emptied of images; both download,
#          verify, decompress and unpack.
#
# Usage: bench/roundtrip.sh [--rounds N] [--berth PATH]
# Needs root, docker.io, docker-registry, debootstrap, python3.
set -euo pipefail

rounds=5
# shellcheck source=lib.sh
source "$(dirname -- "$(readlink -f -- "${BASH_SOURCE[0]}")")/lib.sh"
bench_args "$@"
bench_need dockerd docker-registry debootstrap python3 curl
docker_cli=/usr/bin/docker # Debian's client, matching its daemon

base=$("$repo/scripts/debian-base.sh")
# Short: containerd's sockets live under dockerd's exec root.
work=$(mktemp -d /tmp/berth-bench-rt.XXXXXX)
reg_pid=
dockerd_pid=
stop_registry() {
    if [[ -n $reg_pid ]]; then kill "$reg_pid" 2>/dev/null || true; wait "$reg_pid" 2>/dev/null || true; reg_pid=; fi
}
cleanup() {
    stop_registry
    if [[ -n $dockerd_pid ]]; then
        kill "$dockerd_pid" 2>/dev/null || true
        for _ in $(seq 300); do kill -0 "$dockerd_pid" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$dockerd_pid" 2>/dev/null || true
    fi
    grep -o " $work[^ ]*" /proc/self/mounts | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

# start_registry: an empty docker-registry on a free loopback port; sets $reg.
start_registry() {
    stop_registry
    rm -rf "$work/registry-data"
    local port
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    cat >"$work/registry.yml" <<EOF
version: 0.1
log:
  level: error
storage:
  filesystem:
    rootdirectory: $work/registry-data
http:
  addr: 127.0.0.1:$port
EOF
    docker-registry serve "$work/registry.yml" >>"$work/registry.log" 2>&1 &
    reg_pid=$!
    reg=127.0.0.1:$port
    for _ in $(seq 100); do
        curl -fsS "http://$reg/v2/" >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    echo "roundtrip bench: docker-registry did not start" >&2; exit 1
}

dockerd --data-root "$work/dk/data" --exec-root "$work/dk/exec" --pidfile "$work/dk/d.pid" \
    -H "unix://$work/dk/d.sock" --iptables=false --ip6tables=false --bridge=none >"$work/dockerd.log" 2>&1 &
dockerd_pid=$!
D=("$docker_cli" -H "unix://$work/dk/d.sock")
for _ in $(seq 300); do "${D[@]}" version >/dev/null 2>&1 && break; sleep 0.2; done
"${D[@]}" version >/dev/null 2>&1 || { tail "$work/dockerd.log" >&2; echo "roundtrip bench: dockerd did not start" >&2; exit 1; }

B=("$berth" --root "$work/berth" --runroot "$work/berth-run")
"${B[@]}" import "$base" debian-base:1 >/dev/null
"${D[@]}" import "$base" debian-base:1 >/dev/null

# The test's Dockerfile and its .debs.
ctx=$work/ctx
mkdir -p "$ctx/debs"
(cd "$ctx/debs" && apt-get download -q iputils-ping attr libcap2-bin >/dev/null 2>&1) \
    || { echo "roundtrip bench: apt-get download failed (apt-get update?)" >&2; exit 1; }
python3 - "$repo/crates/berth/tests/roundtrip.rs" "$ctx/Dockerfile" <<'PY'
import re, sys
src = open(sys.argv[1]).read()
m = re.search(r'const DOCKERFILE: &str = r#"(.*?)"#;', src, re.S)
if not m:
    sys.exit("roundtrip bench: no DOCKERFILE in roundtrip.rs")
open(sys.argv[2], "w").write(m.group(1))
PY

now() { date +%s.%N; }
declare -A times
record() { times[$1]="${times[$1]:-} $2"; }
timed() { # key command...
    local t0 t1
    t0=$(now)
    "${@:2}" >/dev/null 2>"$work/last.err" || { cat "$work/last.err" >&2; echo "roundtrip bench: $1 failed" >&2; exit 1; }
    t1=$(now)
    record "$1" "$(python3 -c "print($t1 - $t0)")"
}

build_berth() { timed build-berth "${B[@]}" build -q --no-cache --network none -t rt-bench:1 "$ctx"; }
build_docker() { timed build-docker env DOCKER_BUILDKIT=0 "${D[@]}" build -q --no-cache --network none -t rt-bench:1 "$ctx"; }
push_berth() { start_registry; timed push-berth "${B[@]}" push -q --tls-verify=false rt-bench:1 "$reg/rt/bench:1"; }
push_berth_gz() { start_registry; timed push-berth-gz "${B[@]}" push -q --tls-verify=false --compression-format gzip rt-bench:1 "$reg/rt/bench:1"; }
push_docker() {
    start_registry
    "${D[@]}" tag rt-bench:1 "$reg/rt/bench:1"
    timed push-docker "${D[@]}" push "$reg/rt/bench:1"
    "${D[@]}" rmi "$reg/rt/bench:1" >/dev/null
}
pull_berth() {
    local root=$work/berth-pull
    rm -rf "$root"; sync
    timed pull-berth "$berth" --root "$root" --runroot "$work/berth-pull-run" pull -q --tls-verify=false "$reg/rt/bench:1"
    rm -rf "$root"
}
pull_docker() {
    # An empty daemon: the base layer must be fetched too.
    # Twice: a parent is refused while its children are there.
    for _ in 1 2; do "${D[@]}" images -aq | sort -u | xargs -r "${D[@]}" rmi -f >/dev/null 2>&1 || true; done
    [[ -z $("${D[@]}" images -aq) ]] || { "${D[@]}" images -a >&2; echo "roundtrip bench: docker still has images" >&2; exit 1; }
    sync
    timed pull-docker "${D[@]}" pull -q "$reg/rt/bench:1"
    "${D[@]}" rmi -f "$reg/rt/bench:1" >/dev/null
}

# One build each first: first-use costs out of the figures.
build_berth; build_docker
times=()
for ((r = 0; r < rounds; r++)); do
    if ((r % 2 == 0)); then
        build_berth; build_docker; push_berth; push_berth_gz; push_docker
    else
        build_docker; build_berth; push_docker; push_berth_gz; push_berth
    fi
    echo "  round $((r + 1)): builds and pushes done" >&2
done
# Pulls last (a pull empties Docker's images, the base included), from one
# registry holding the image as Docker pushed it.
start_registry
"${D[@]}" tag rt-bench:1 "$reg/rt/bench:1"
"${D[@]}" push "$reg/rt/bench:1" >/dev/null
for ((r = 0; r < rounds; r++)); do
    if ((r % 2 == 0)); then pull_berth; pull_docker; else pull_docker; pull_berth; fi
done

echo "Debian image round trip, $rounds interleaved rounds (median seconds):"
printf '  %-22s %9s %9s %12s\n' step berth docker berth/docker
row() { # label berth-key docker-key
    # shellcheck disable=SC2086
    local mb md
    mb=$(median ${times[$2]}); md=$(median ${times[$3]})
    printf '  %-22s %9.2f %9.2f %12.2f\n' "$1" "$mb" "$md" "$(python3 -c "print($mb / $md)")"
}
row "build --no-cache" build-berth build-docker
row "push (berth plain)" push-berth push-docker
row "push (both gzip)" push-berth-gz push-docker
row "pull (gzip layers)" pull-berth pull-docker
