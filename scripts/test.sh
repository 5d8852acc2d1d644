#!/usr/bin/env bash
# The whole test suite on a fresh Debian machine, as root: installs what the
# tests need, checks formatting and lints, builds once, and runs unit and
# integration tests (real containers, podman and containerd as clients).
set -euo pipefail
cd "$(dirname "$0")/.."

./scripts/install-deps.sh
cargo fmt --all --check
cargo clippy --workspace --all-targets --locked -- -D warnings

# The release artifact (static, as shipped) must start containers too: a
# three-round run of the benchmark drives it beside crun and runc (no
# timing is judged here; bench/ is for that). The integration tests of
# --init use this static build: only a static berth runs inside an image.
./scripts/build-release.sh >/dev/null
bench/runtime-run.sh --rounds 3 --limits

# Last, so its summary closes the output.
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --locked --no-fail-fast
else
  cargo test --workspace --locked --no-fail-fast
fi
