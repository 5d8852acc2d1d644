#!/usr/bin/env bash
# Benchmark push and pull of one generated multi-layer image (>= 300 MiB,
# 5 layers: random bytes and text) through a loopback docker-registry,
# berth beside skopeo (and podman for pulls), interleaved rounds, order
# swapped each round. Prints medians and the ratio berth/peer per
# direction (goal <= 0.70 of skopeo).
#
# Two forms of the same image, because what moves differs (and a third
# push row, plain-gz: berth gzipping the plain layers on the way, as
# skopeo does, against the same skopeo times):
#   plain: layers as `berth load` keeps them (uncompressed tars, given back
#          from their files and tar-split). berth pushes them as they are;
#          skopeo, copying from an OCI layout of the same layers, gzips
#          them for a registry (containers/image always compresses for
#          docker://), so it sends fewer bytes but spends CPU on it.
#   gzip:  the layers gzipped once beforehand (skopeo copy oci: -> oci:).
#          Both tools push the same compressed blobs as they are and pull
#          them back: the like-for-like comparison.
# Pushes go to a registry started empty for each push (nothing to skip or
# mount). Pulls: berth into an empty store (download, verify, decompress,
# unpack), skopeo into an empty dir: directory (download, verify, write
# blobs; it unpacks nothing), podman into its emptied store (download,
# verify, decompress, unpack).
#
# Usage: bench/registry.sh [--rounds N] [--berth PATH] [--mib N]
# Needs root, docker-registry, skopeo, podman (tests/podman-env.sh sets up
# a private podman store).
set -euo pipefail

rounds=3
mib=320
# shellcheck source=lib.sh
source "$(dirname -- "$(readlink -f -- "${BASH_SOURCE[0]}")")/lib.sh"
while (($#)); do
    case $1 in
        --rounds) rounds=$2; shift 2 ;;
        --berth) berth=$2; shift 2 ;;
        --mib) mib=$2; shift 2 ;;
        *) echo "usage: $0 [--rounds N] [--berth PATH] [--mib N]" >&2; exit 2 ;;
    esac
done
bench_positive --rounds "$rounds"
bench_positive --mib "$mib"
bench_need_berth
bench_need docker-registry skopeo podman python3 bc

work=$(mktemp -d /var/tmp/berth-bench-registry.XXXXXX)
reg_pid=
stop_registry() {
    if [[ -n $reg_pid ]]; then kill "$reg_pid" 2>/dev/null || true; wait "$reg_pid" 2>/dev/null || true; reg_pid=; fi
}
cleanup() {
    stop_registry
    bash -c "source '$repo/tests/podman-env.sh' '$work/podman' >/dev/null 2>&1 && podman_env_cleanup >/dev/null 2>&1" || true
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
    echo "registry bench: docker-registry did not start" >&2; exit 1
}

# The image: 5 layers, each random bytes (incompressible) and text lines
# (compressible), as a docker-archive.
python3 - "$work/image.tar" "$mib" <<'PY'
import hashlib, io, json, os, sys, tarfile
out, mib = sys.argv[1], int(sys.argv[2])
layers = 5
per_layer = mib * 1024 * 1024 // layers
diff_ids, names = [], []
with tarfile.open(out, "w", format=tarfile.GNU_FORMAT) as archive:
    for l in range(layers):
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as t:
            def add(name, data):
                ti = tarfile.TarInfo(name)
                ti.size, ti.mode, ti.mtime = len(data), 0o644, 1_600_000_000
                t.addfile(ti, io.BytesIO(data))
            random_bytes = per_layer * 5 // 8
            for i in range(random_bytes // (4 << 20)):
                add(f"l{l}/random/{i}.bin", os.urandom(4 << 20))
            text = per_layer - random_bytes
            line_no, i = 0, 0
            while text > 0:
                lines = []
                size = 0
                while size < (1 << 20):
                    s = f"layer {l} line {line_no}: the quick brown fox jumps over the lazy dog {line_no * 7919 % 100003}\n"
                    lines.append(s); size += len(s); line_no += 1
                data = "".join(lines).encode()
                add(f"l{l}/text/{i}.txt", data)
                text -= len(data); i += 1
        layer = buf.getvalue()
        digest = hashlib.sha256(layer).hexdigest()
        diff_ids.append("sha256:" + digest)
        ti = tarfile.TarInfo(f"{digest}/layer.tar"); ti.size = len(layer)
        archive.addfile(ti, io.BytesIO(layer))
        names.append(f"{digest}/layer.tar")
    config = json.dumps({"architecture": "amd64", "os": "linux", "config": {"Cmd": ["/bin/sh"]},
                         "rootfs": {"type": "layers", "diff_ids": diff_ids}}).encode()
    cd = hashlib.sha256(config).hexdigest()
    for name, data in ((f"{cd}.json", config),
                       ("manifest.json", json.dumps([{"Config": f"{cd}.json", "RepoTags": ["localhost/bench:plain"], "Layers": names}]).encode())):
        ti = tarfile.TarInfo(name); ti.size = len(data)
        archive.addfile(ti, io.BytesIO(data))
PY

# Sources: a berth store per form (one config, so one image id: a store
# keeps one manifest per image); OCI layouts of both for skopeo.
"$berth" --root "$work/src-plain" load -i "$work/image.tar" >/dev/null
"$berth" --root "$work/src-plain" save --format oci-dir -o "$work/oci-plain" localhost/bench:plain
skopeo copy -q "oci:$work/oci-plain:localhost/bench:plain" "oci:$work/oci-gzip:localhost/bench:gzip"
grep -q 'tar+gzip' "$work"/oci-gzip/blobs/sha256/* 2>/dev/null || { echo "registry bench: skopeo did not gzip the layers" >&2; exit 1; }
"$berth" --root "$work/src-gzip" load -i "$work/oci-gzip" >/dev/null
rm -f "$work/image.tar"
echo "registry bench: $(du -sm "$work/oci-plain" | cut -f1) MiB image in 5 layers (gzip: $(du -sm "$work/oci-gzip" | cut -f1) MiB); $rounds rounds" >&2

now() { date +%s.%N; }
elapsed() { echo "$2 - $1" | bc; }

# Each push goes to a registry started empty by the caller (not here: a
# registry started in a $(...) subshell would outlive it).
push_berth() { # form
    local t0 t1
    t0=$(now)
    "$berth" --root "$work/src-$1" push -q --tls-verify=false "localhost/bench:$1" "$reg/bench/img:$1"
    t1=$(now); elapsed "$t0" "$t1"
}
push_berth_gzip() { # form (plain): gzipped on the way, as skopeo does
    local t0 t1
    t0=$(now)
    "$berth" --root "$work/src-$1" push -q --tls-verify=false --compression-format gzip "localhost/bench:$1" "$reg/bench/img:$1"
    t1=$(now); elapsed "$t0" "$t1"
}
push_skopeo() { # form
    local t0 t1
    t0=$(now)
    skopeo copy -q --dest-tls-verify=false "oci:$work/oci-$1:localhost/bench:$1" "docker://$reg/bench/img:$1"
    t1=$(now); elapsed "$t0" "$t1"
}
pull_berth() { # form
    local root="$work/berth-pull" t0 t1
    rm -rf "$root"; sync
    t0=$(now)
    "$berth" --root "$root" pull -q --tls-verify=false "$reg/bench/img:$1" >/dev/null
    t1=$(now)
    rm -rf "$root"
    elapsed "$t0" "$t1"
}
pull_skopeo() { # form
    local dir="$work/skopeo-pull" t0 t1
    rm -rf "$dir"; sync
    t0=$(now)
    skopeo copy -q --src-tls-verify=false "docker://$reg/bench/img:$1" "dir:$dir"
    t1=$(now)
    rm -rf "$dir"
    elapsed "$t0" "$t1"
}
pull_podman() { # form
    bash -c "source '$repo/tests/podman-env.sh' '$work/podman' >/dev/null || exit 1
             podman rmi -af >/dev/null 2>&1; sync
             t0=\$(date +%s.%N); podman pull -q --tls-verify=false '$reg/bench/img:$1' >/dev/null || exit 1; t1=\$(date +%s.%N)
             echo \"\$t1 - \$t0\" | bc
             podman rmi -af >/dev/null 2>&1"
}

declare -A times
record() { times[$1]="${times[$1]:-} $2"; }

sync
for ((r = 0; r < rounds; r++)); do
    for form in plain gzip; do
        if ((r % 2 == 0)); then order=(berth skopeo); else order=(skopeo berth); fi
        for tool in "${order[@]}"; do
            start_registry
            record "push-$form-$tool" "$("push_$tool" "$form")"
        done
        if [[ $form == plain ]]; then
            start_registry
            record "push-plain-gz-berth" "$(push_berth_gzip plain)"
            times[push-plain-gz-skopeo]=${times[push-plain-skopeo]}
        fi
    done
    # Pulls from one registry holding both forms (pushed by berth).
    start_registry
    for form in plain gzip; do
        "$berth" --root "$work/src-$form" push -q --tls-verify=false "localhost/bench:$form" "$reg/bench/img:$form"
    done
    for form in plain gzip; do
        if ((r % 2 == 0)); then
            record "pull-$form-berth" "$(pull_berth $form)"; record "pull-$form-skopeo" "$(pull_skopeo $form)"; record "pull-$form-podman" "$(pull_podman $form)"
        else
            record "pull-$form-podman" "$(pull_podman $form)"; record "pull-$form-skopeo" "$(pull_skopeo $form)"; record "pull-$form-berth" "$(pull_berth $form)"
        fi
    done
    echo "  round $((r + 1)) done" >&2
done

printf '%-12s %-7s %10s %10s %10s %14s %14s\n' direction form "berth s" "skopeo s" "podman s" berth/skopeo berth/podman
for dir in push pull; do
    forms=(plain gzip)
    [[ $dir == push ]] && forms=(plain plain-gz gzip)
    for form in "${forms[@]}"; do
        # shellcheck disable=SC2086
        mb=$(median ${times[$dir-$form-berth]}); ms=$(median ${times[$dir-$form-skopeo]})
        mp=-; rp=-
        if [[ -n ${times[$dir-$form-podman]:-} ]]; then
            # shellcheck disable=SC2086
            mp=$(median ${times[$dir-$form-podman]}); rp=$(printf '%.2f' "$(echo "$mb / $mp" | bc -l)")
        fi
        [[ $mp == - ]] || mp=$(printf '%.2f' "$mp")
        printf '%-12s %-7s %10.2f %10.2f %10s %14.2f %14s\n' "$dir" "$form" "$mb" "$ms" "$mp" "$(echo "$mb / $ms" | bc -l)" "$rp"
    done
done
echo "goal: berth/skopeo <= 0.70 in each direction" >&2
