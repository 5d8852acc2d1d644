#!/usr/bin/env bash
# The kill storm of crates/berth/tests/faults.rs with many rounds (CI runs
# 14, two of each command): `run --rm`, `run -d`, `rm -f`, `commit`, `build`
# (RUN steps that sleep, so kills land inside them), `pull` (from a loopback
# docker-registry) and `load` killed with SIGKILL at random points, then
# `system check` and a census of runtime state, cgroups, processes, mounts
# and the store's files; then removing everything must leave the store as
# it was.
#
# Usage: scripts/kill-storm.sh [ROUNDS]   (root; default 700)
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-700}
[[ $rounds =~ ^[1-9][0-9]*$ ]] || { echo "ROUNDS must be a positive integer" >&2; exit 2; }
start=$(date +%s)
BERTH_STORM_ROUNDS=$rounds cargo test --locked -p berth --test faults \
    killed_commands_leave_nothing_after_system_check -- --nocapture
echo "kill storm: $rounds rounds, nothing left, in $(( $(date +%s) - start )) s"
