#!/usr/bin/env bash
# Builds the quote-app's two images with `berth build`: the database
# (examples/postgres, Debian's postgresql) and the web service
# (examples/quote-app). Both start FROM debian-base:bookworm, the
# debootstrap minbase of scripts/debian-base.sh imported with `berth
# import` (once: skipped when the store has it). Their RUN steps install
# packages from the Debian mirror the host's apt uses; a second run of this
# script takes every step from berth's build cache.
#
# Usage: examples/quote-app/build-images.sh BERTH [BUILD-FLAGS...]
#   BERTH_ROOT/BERTH_RUNROOT pick the store; BERTH_TEST_CACHE where the
#   minbase tarball is cached (default target/debian-base).
# Prints each image's name once built.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
berth=${1:?usage: build-images.sh BERTH [BUILD-FLAGS...]}
shift

base=debian-base:bookworm
if ! "$berth" image inspect "$base" >/dev/null 2>&1; then
    tar=$("$here/../../scripts/debian-base.sh")
    # What the official debian image sets: a PATH for containers and for
    # the build's ENV expansions, and bash as the default command.
    "$berth" import \
        --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change 'CMD ["bash"]' \
        "$tar" "$base" >/dev/null
    echo "imported $base"
fi

build() {
    local image=$1 dir=$2 log
    shift 2
    log=$(mktemp)
    if ! "$berth" build --progress plain "$@" -t "$image" "$dir" >"$log" 2>&1; then
        tail -20 "$log" >&2
        rm -f "$log"
        echo "build-images: building $image from $dir failed" >&2
        exit 1
    fi
    rm -f "$log"
    echo "built $image"
}
build postgres-debian:bookworm "$here/../postgres" "$@"
build quote-app:1 "$here" "$@"
