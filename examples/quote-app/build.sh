#!/usr/bin/env bash
# Builds the quote service image from examples/quote-app/Dockerfile with
# `berth build`. The Dockerfile starts FROM busybox; with no registry at
# hand, that base is Debian's busybox-static as a rootfs, imported as
# `busybox` when the store has none.
#
# Usage: examples/quote-app/build.sh BERTH [IMAGE]   (IMAGE: quote-app:1)
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
berth=${1:?usage: build.sh BERTH [IMAGE]}
image=${2:-quote-app:1}

if ! "$berth" image inspect busybox >/dev/null 2>&1; then
    work=$(mktemp -d)
    trap 'rm -rf "$work"' EXIT
    # shellcheck source=../../tests/podman-env.sh
    source <(sed -n '/^busybox_rootfs()/,/^}/p' "$here/../../tests/podman-env.sh")
    busybox_rootfs "$work/rootfs"
    tar --numeric-owner -C "$work/rootfs" -cf "$work/rootfs.tar" .
    "$berth" import \
        --change 'CMD ["sh"]' \
        --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        "$work/rootfs.tar" busybox >/dev/null
fi
"$berth" build --progress plain -t "$image" "$here" >/dev/null
echo "built $image"
