#!/usr/bin/env bash
# The kill storm of crates/berth/tests/faults.rs with many rounds (CI runs
# 12): `run --rm`, `run -d` and `rm -f` killed with SIGKILL at random points,
# then `system check` and a census of runtime state, cgroups, processes and
# mounts; then `rm -f` of everything must leave nothing.
#
# Usage: scripts/kill-storm.sh [ROUNDS]   (root; default 300)
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-300}
[[ $rounds =~ ^[1-9][0-9]*$ ]] || { echo "ROUNDS must be a positive integer" >&2; exit 2; }
start=$(date +%s)
BERTH_STORM_ROUNDS=$rounds cargo test --locked -p berth --test faults -- --nocapture
echo "kill storm: $rounds rounds, nothing left, in $(( $(date +%s) - start )) s"
