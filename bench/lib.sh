# shellcheck shell=bash
# What every bench script starts with. Source it first thing after
# `set -euo pipefail`:
#     source "$(dirname -- "$(readlink -f -- "${BASH_SOURCE[0]}")")/lib.sh"
# It sets script_path (the calling script, for re-executing it), repo and
# berth (the static release build; --berth overrides it in each script).

script_path=$(readlink -f -- "${BASH_SOURCE[1]}")
repo=$(cd -- "$(dirname -- "$script_path")/.." && pwd)
berth="$repo/target/$(rustc -vV | sed -n 's/^host: //p')/release/berth"
bench_name=$(basename -- "$script_path" .sh)

# Leaves with a one-line message unless $berth is an executable.
bench_need_berth() {
    [[ -x $berth ]] || { echo "$bench_name: no berth binary at $berth (scripts/build-release.sh)" >&2; exit 1; }
}

# Leaves with a one-line message naming the first missing program.
bench_need() {
    local t
    for t; do
        command -v "$t" >/dev/null || { echo "$bench_name: $t missing (scripts/install-deps.sh)" >&2; exit 1; }
    done
}

# Leaves unless $2 (the value of option $1) is a positive integer.
bench_positive() {
    [[ $2 =~ ^[1-9][0-9]*$ ]] || { echo "$bench_name: $1 takes a positive integer" >&2; exit 2; }
}

# The median of the numbers given as arguments, or one per line on stdin
# when there are none (the mean of the middle two for an even count).
median() {
    if (($#)); then printf '%s\n' "$@"; else cat; fi | sort -n |
        awk '{v[NR] = $1} END {if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2}'
}

# The options of the scripts that take only these two: --rounds N (into
# $rounds, whose default the script sets first) and --berth PATH; then the
# checks of both.
bench_args() {
    while (($#)); do
        case $1 in
            --rounds) rounds=$2; shift 2 ;;
            --berth) berth=$(readlink -m -- "$2"); shift 2 ;;
            *) echo "usage: $script_path [--rounds N] [--berth PATH]" >&2; exit 2 ;;
        esac
    done
    bench_positive --rounds "$rounds"
    bench_need_berth
}
