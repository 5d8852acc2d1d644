#!/usr/bin/env bash
# Builds the release binaries statically linked (no dynamic loader work at
# each start: a runtime is started once per container operation) and prints
# where they are. --target keeps the static flag off build scripts and
# proc-macros, which must stay dynamic.
set -euo pipefail
cd "$(dirname "$0")/.."
host=$(rustc -vV | sed -n 's/^host: //p')
RUSTFLAGS="${RUSTFLAGS:-} -C target-feature=+crt-static" \
  cargo build --release --locked --target "$host" -p berth-runtime >&2
echo "$PWD/target/$host/release"
