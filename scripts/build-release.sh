#!/usr/bin/env bash
# Builds the release binaries statically linked (no dynamic loader work at
# each start: a runtime is started once per container operation) and prints
# where they are. --target keeps the static flag off build scripts and
# proc-macros, which must stay dynamic.
set -euo pipefail
cd "$(dirname "$0")/.."
host=$(rustc -vV | sed -n 's/^host: //p')
# libseccomp must come in as its static archive too: a dynamic libseccomp
# beside a static libc crashes at start-up.
libdir=$(pkg-config --variable=libdir libseccomp 2>/dev/null || echo /usr/lib/x86_64-linux-gnu)
[[ -f $libdir/libseccomp.a ]] || { echo "no $libdir/libseccomp.a: apt-get install libseccomp-dev" >&2; exit 1; }
export LIBSECCOMP_LINK_TYPE=static LIBSECCOMP_LIB_PATH=$libdir
export RUSTFLAGS="${RUSTFLAGS:-} -C target-feature=+crt-static"
cargo build --release --locked --target "$host" -p berth-runtime --bin berth-runtime >&2
# berth itself is started once per command, `run` included, and linked
# without PIE as well: as a static PIE it relocated its 33,600 pointers
# (540 KiB of .data.rel.ro, 113 copy-on-write page faults) at every start,
# and its code went through the GOT. bench/engine-run.sh: 0.7 ms of a 9 to
# 10 ms `run --rm` (perf stat, alternating builds). Heap, stack and mmaps
# stay randomized; its code's address is fixed, as Debian's own runc,
# containerd and podman binaries are (non-PIE). berth-runtime, which Docker
# and containerd call, keeps PIE.
cargo rustc --release --locked --target "$host" -p berth --bin berth \
  -- -C relocation-model=static >&2
# berth-monitor stays with every idle detached container, so its private
# pages are paid per container (bench/engine-memory.sh). Linked without PIE,
# nothing relocates its data at start: .data.rel.ro and most of the GOT stay
# clean file pages shared by all monitors instead of ~32 KiB private to
# each. The price: its code sits at a fixed address (heap, stack and mmaps
# stay randomized); it only moves the container's output as bytes and
# reads frames from the root-only attach socket.
cargo rustc --release --locked --target "$host" -p berth --bin berth-monitor \
  -- -C relocation-model=static >&2
# A broken static link shows at once: refuse to hand it out.
"$PWD/target/$host/release/berth-runtime" --version >/dev/null
echo "$PWD/target/$host/release"
