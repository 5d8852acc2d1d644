#!/usr/bin/env bash
# Packages the quote service as an image without a Dockerfile (builds come
# later): a busybox rootfs (Debian's busybox-static) plus www/, imported with
# `berth import --change`.
#
# Usage: examples/quote-app/build.sh BERTH [IMAGE]   (IMAGE: quote-app:1)
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
berth=${1:?usage: build.sh BERTH [IMAGE]}
image=${2:-quote-app:1}

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# shellcheck source=../../tests/podman-env.sh
source <(sed -n '/^busybox_rootfs()/,/^}/p' "$here/../../tests/podman-env.sh")
busybox_rootfs "$work/rootfs"
cp -r "$here/www" "$work/rootfs/www"
chmod 0755 "$work/rootfs/www/cgi-bin/quote"
tar --numeric-owner -C "$work/rootfs" -cf "$work/rootfs.tar" .
"$berth" import \
    --change 'CMD ["httpd", "-f", "-p", "8080", "-h", "/www"]' \
    --change 'EXPOSE 8080' \
    --change 'LABEL org.opencontainers.image.title=quote-app' \
    -m "quote-app: busybox httpd with a CGI quote" \
    "$work/rootfs.tar" "$image" >/dev/null
echo "built $image"
