#!/usr/bin/env bash
# `compose up -d` and `compose down` of a 5-service busybox project (a user
# network, one healthcheck chain: db <- api <- web, plus two workers):
# berth compose vs docker-compose 1.29 (Debian's, against a private
# dockerd) vs podman-compose (Debian's, over a private podman env).
# Rounds are interleaved (berth, docker-compose, podman-compose, each up
# then down), medians in milliseconds and the peers' ratios to berth.
#
# Notes on fairness: every service ends at once on SIGTERM (no stop
# timeout is waited out); the healthcheck interval is the same for all.
# podman-compose 1.0.3 does not wait on depends_on conditions (it only
# orders the starts) and podman runs no healthchecks without systemd: its
# up does less than the others'. berth prepares api's and web's starts
# while their dependency is checked (their programs run only once it is
# healthy); every first probe comes one interval after the start, as in
# Docker 20.10, so the chain's two intervals are in every up.
#
# Why --interval: at the default 100ms the chain's two intervals (200 ms)
# are a floor every tool waits out, and a large share of berth's up, so
# the ratio says more about the project than about the tools (at best
# about 2100/200 = 10.5x against docker-compose). A short interval (10ms;
# Docker takes any interval of 1ms or more, docker-compose 1.29's schema
# has no start_interval) makes the floor small and the figure the tools'
# own work. Report both: the default is a project as people write it, the
# short one the tools' cost. With a short interval Docker's probes (each
# an exec through containerd, tens of ms) may take longer than the
# interval: that is Docker's cost and part of its figure.
# The machine's load moves the ratios: give it with the figures.
#
# Usage: bench/compose.sh [--rounds N] [--interval DURATION] [--berth PATH] [--no-peer]
#   DURATION: a number and ms or s (default 100ms).
set -euo pipefail

rounds=10
interval=100ms
peer=1
# shellcheck source=lib.sh
source "$(dirname -- "$(readlink -f -- "${BASH_SOURCE[0]}")")/lib.sh"
while (($#)); do
    case $1 in
        --rounds) rounds=$2; shift 2 ;;
        --interval) interval=$2; shift 2 ;;
        --berth) berth=$(readlink -m -- "$2"); shift 2 ;;
        --no-peer) peer=0; shift ;;
        *) echo "usage: $0 [--rounds N] [--interval DURATION] [--berth PATH] [--no-peer]" >&2; exit 2 ;;
    esac
done
bench_positive --rounds "$rounds"
[[ $interval =~ ^[1-9][0-9]*(ms|s)$ ]] || { echo "compose bench: --interval takes a number and ms or s (10ms, 1s)" >&2; exit 2; }
bench_need_berth
((EUID == 0)) || { echo "compose bench: needs root" >&2; exit 1; }
if ((peer)); then
    bench_need docker-compose podman-compose podman dockerd /usr/bin/docker
fi

work=$(mktemp -d /var/tmp/berth-bench-compose.XXXXXX)
dockerd_pid=
B() { "$berth" --root "$work/berth" --runroot "$work/berth-run" "$@"; }
D() { /usr/bin/docker -H "unix://$work/docker/d.sock" "$@"; }
cleanup() {
    (cd "$work/project" && B compose -p benchc down -t 1 >/dev/null 2>&1) || true
    # shellcheck disable=SC2046 # one word per id
    B rm -f $(B ps -aq 2>/dev/null) >/dev/null 2>&1 || true
    if ((peer)); then
        (cd "$work/project" && DOCKER_HOST="unix://$work/docker/d.sock" docker-compose -p benchc down -t 1 >/dev/null 2>&1) || true
        (cd "$work/project" && podman-compose -p benchc down -t 1 >/dev/null 2>&1) || true
        (podman_env_cleanup >/dev/null 2>&1 || true)
        if [[ -n $dockerd_pid ]]; then
            # shellcheck disable=SC2046
            D rm -f $(D ps -aq 2>/dev/null) >/dev/null 2>&1 || true
            kill "$dockerd_pid" 2>/dev/null || true
            for _ in $(seq 100); do kill -0 "$dockerd_pid" 2>/dev/null || break; sleep 0.1; done
        fi
        grep -o " $work[^ ]*" /proc/self/mounts | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

if ((peer)); then
    # shellcheck source=../tests/podman-env.sh
    source "$repo/tests/podman-env.sh" "$work/podman" >/dev/null
    podman_import_busybox bench-busybox
    tar --numeric-owner -C "$work/podman/rootfs-bench-busybox" -cf "$work/bb.tar" .
else
    mkdir -p "$work/rootfs/bin"
    cp /bin/busybox "$work/rootfs/bin/"
    for l in sh sleep true test touch; do ln -s busybox "$work/rootfs/bin/$l"; done
    tar --numeric-owner -C "$work/rootfs" -cf "$work/bb.tar" .
fi
B import -c 'CMD ["sh"]' "$work/bb.tar" bench-busybox >/dev/null
if ((peer)); then
    mkdir -p "$work/docker"
    dockerd --data-root "$work/docker/data" --exec-root "$work/docker/exec" \
        --pidfile "$work/docker/d.pid" -H "unix://$work/docker/d.sock" \
        --iptables=false --ip6tables=false --bridge=none >"$work/docker/log" 2>&1 &
    dockerd_pid=$!
    for _ in $(seq 300); do D version >/dev/null 2>&1 && break; sleep 0.1; done
    D version >/dev/null 2>&1 || { echo "compose bench: the private dockerd did not come up (see $work/docker/log)" >&2; exit 1; }
    D import -c 'CMD ["sh"]' "$work/bb.tar" bench-busybox >/dev/null
fi

mkdir -p "$work/project"
idle="trap 'exit 0' TERM; sleep 3600 & wait"
cat >"$work/project/compose.yaml" <<YAML
services:
  db:
    image: \${BENCH_IMAGE}
    command: ["sh", "-c", "$idle"]
    networks: [app]
    healthcheck:
      test: ["CMD", "true"]
      interval: $interval
  api:
    image: \${BENCH_IMAGE}
    command: ["sh", "-c", "$idle"]
    networks: [app]
    depends_on:
      db: {condition: service_healthy}
    healthcheck:
      test: ["CMD", "true"]
      interval: $interval
  web:
    image: \${BENCH_IMAGE}
    command: ["sh", "-c", "$idle"]
    networks: [app]
    depends_on:
      api: {condition: service_healthy}
  worker1:
    image: \${BENCH_IMAGE}
    command: ["sh", "-c", "$idle"]
    networks: [app]
  worker2:
    image: \${BENCH_IMAGE}
    command: ["sh", "-c", "$idle"]
    networks: [app]
networks:
  app: {}
YAML

now_ms() { date +%s%3N; }
declare -A times
# tool, phase, command...: runs it in the project directory, records ms.
timed() {
    local tool=$1 phase=$2 t0 t1
    shift 2
    t0=$(now_ms)
    (cd "$work/project" && "$@") >"$work/last.log" 2>&1 || {
        echo "compose bench: $tool $phase failed:" >&2
        cat "$work/last.log" >&2
        exit 1
    }
    t1=$(now_ms)
    times[$tool.$phase]+="$((t1 - t0)) "
}
running() { # tool count-command: 5 running containers after up
    local n
    n=$("$@" | wc -l)
    ((n == 5)) || { echo "compose bench: $n of 5 containers running" >&2; exit 1; }
}

tools=(berth)
((peer)) && tools+=(docker-compose podman-compose)
for ((r = 1; r <= rounds; r++)); do
    for tool in "${tools[@]}"; do
        case $tool in
        berth)
            timed berth up env BENCH_IMAGE=bench-busybox "$berth" --root "$work/berth" --runroot "$work/berth-run" compose -p benchc up -d
            running B ps -q
            timed berth down "$berth" --root "$work/berth" --runroot "$work/berth-run" compose -p benchc down
            ;;
        docker-compose)
            timed docker-compose up env BENCH_IMAGE=bench-busybox DOCKER_HOST="unix://$work/docker/d.sock" docker-compose -p benchc up -d
            running D ps -q
            timed docker-compose down env DOCKER_HOST="unix://$work/docker/d.sock" docker-compose -p benchc down
            ;;
        podman-compose)
            timed podman-compose up env BENCH_IMAGE=localhost/bench-busybox podman-compose -p benchc up -d
            running podman ps -q
            timed podman-compose down env BENCH_IMAGE=localhost/bench-busybox podman-compose -p benchc down
            ;;
        esac
    done
done

printf 'healthcheck interval %s, %d rounds, load %s\n' "$interval" "$rounds" "$(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-16s %10s %10s\n' "" "up -d ms" "down ms"
for tool in "${tools[@]}"; do
    up=$(printf '%s\n' ${times[$tool.up]} | median)
    down=$(printf '%s\n' ${times[$tool.down]} | median)
    eval "med_up_${tool//-/_}=$up; med_down_${tool//-/_}=$down"
    printf '%-16s %10s %10s\n' "$tool" "$up" "$down"
done
if ((peer)); then
    for tool in docker-compose podman-compose; do
        v=${tool//-/_}
        eval "up=\$med_up_$v; down=\$med_down_$v"
        printf '%-16s up %5.1fx  down %5.1fx  (peer / berth, medians of %d interleaved rounds)\n' \
            "$tool" "$(echo "$up / $med_up_berth" | bc -l)" "$(echo "$down / $med_down_berth" | bc -l)" "$rounds"
    done
fi
