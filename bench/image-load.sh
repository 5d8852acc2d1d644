#!/usr/bin/env bash
# Benchmark `load` of one generated docker-archive (>= 500 MiB, >= 20k
# files, 5 layers) with berth and with podman, side by side: each run
# into an empty store, the two tools interleaved and their order swapped
# each round. Prints medians and the ratio berth/podman (goal <= 0.5).
#
# Usage: bench/image-load.sh [--rounds N] [--berth PATH] [--mib N] [--files N] [--settle S]
#
# --settle S: wait S seconds before each load. ext4 without a journal (this
# host's root) skips inodes freed in the last minutes one by one when it
# places new files, so a load right after the previous round's store was
# deleted pays ~1 ms per file; berth mostly avoids that (layers/ is an
# ext4 "top directory"), podman does not. With --settle 75 both tools
# meet a settled disk and the ratio compares their own work.
# Needs root, podman (tests/podman-env.sh sets up a private podman store).
set -euo pipefail

rounds=3
mib=520
files=21000
settle=0
# shellcheck source=lib.sh
source "$(dirname -- "$(readlink -f -- "${BASH_SOURCE[0]}")")/lib.sh"
while (($#)); do
    case $1 in
        --rounds) rounds=$2; shift 2 ;;
        --berth) berth=$2; shift 2 ;;
        --mib) mib=$2; shift 2 ;;
        --files) files=$2; shift 2 ;;
        --settle) settle=$2; shift 2 ;;
        *) echo "usage: $0 [--rounds N] [--berth PATH] [--mib N] [--files N] [--settle S]" >&2; exit 2 ;;
    esac
done
bench_positive --rounds "$rounds"
bench_positive --mib "$mib"
bench_positive --files "$files"
bench_need_berth
bench_need podman

work=$(mktemp -d /var/tmp/berth-bench-load.XXXXXX)
trap 'rm -rf "$work"' EXIT

# The archive: 5 layers of random bytes (incompressible, so no tool gains
# from compression) spread over $files files in nested directories.
python3 - "$work/image.tar" "$mib" "$files" <<'PY'
import hashlib, io, json, os, sys, tarfile
out, mib, files = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
layers, per_layer = 5, files // 5
size = mib * 1024 * 1024 // files
diff_ids, names = [], []
with tarfile.open(out, "w", format=tarfile.GNU_FORMAT) as archive:
    for l in range(layers):
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as t:
            for i in range(per_layer):
                data = os.urandom(size)
                ti = tarfile.TarInfo(f"l{l}/d{i % 97}/f{i}")
                ti.size, ti.mode, ti.mtime = len(data), 0o644, 1_600_000_000
                t.addfile(ti, io.BytesIO(data))
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
                       ("manifest.json", json.dumps([{"Config": f"{cd}.json", "RepoTags": ["localhost/bench:1"], "Layers": names}]).encode())):
        ti = tarfile.TarInfo(name); ti.size = len(data)
        archive.addfile(ti, io.BytesIO(data))
PY
echo "image-load: archive $(du -m "$work/image.tar" | cut -f1) MiB, $files files in 5 layers; $rounds rounds" >&2

now() { date +%s.%N; }
time_berth() {
    local root="$work/berth-$1" t0 t1
    sleep "$settle"
    t0=$(now); "$berth" --root "$root" load -i "$work/image.tar" >/dev/null; t1=$(now)
    rm -rf "$root"
    echo "$t1 - $t0" | bc
}
time_podman() {
    local dir="$work/podman-$1"
    sleep "$settle"
    bash -c "source '$repo/tests/podman-env.sh' '$dir' >/dev/null || exit 1
             t0=\$(date +%s.%N); podman load -q -i '$work/image.tar' >/dev/null; t1=\$(date +%s.%N)
             echo \"\$t1 - \$t0\" | bc
             podman_env_cleanup >/dev/null 2>&1"
    rm -rf "$dir"
}
sync
b=(); p=()
for ((r = 0; r < rounds; r++)); do
    if ((r % 2 == 0)); then b+=("$(time_berth "$r")"); p+=("$(time_podman "$r")")
    else p+=("$(time_podman "$r")"); b+=("$(time_berth "$r")"); fi
    echo "  round $((r + 1)): berth ${b[-1]} s, podman ${p[-1]} s" >&2
done
mb=$(median "${b[@]}"); mp=$(median "${p[@]}")
printf '%-8s %10s\n' tool "median s"
printf '%-8s %10.3f\n' berth "$mb" podman "$mp"
printf 'berth/podman median ratio: %.2f (goal <= 0.50)\n' "$(echo "$mb / $mp" | bc -l)"
