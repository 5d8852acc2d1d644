#!/usr/bin/env bash
# The README's main job: build the quote service image from its Dockerfile
# (berth build), run it detached on the default bridge with its port
# published and the image's healthcheck, wait until healthy, fetch quotes
# through `berth exec` and from the host through the published port, show
# ps, then clean up.
#
# Usage: examples/quote-app/run.sh BERTH [PORT]   (PORT: 8080)
# BERTH_ROOT picks the store (default: a temporary one, removed at the end).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
berth=$(readlink -f "${1:?usage: run.sh BERTH [PORT]}")
port=${2:-8080}
if [[ -z ${BERTH_ROOT:-} ]]; then
    BERTH_ROOT=$(mktemp -d /var/tmp/berth-demo.XXXXXX)
    export BERTH_ROOT
    trap '"$berth" rm -f quotes >/dev/null 2>&1 || true; rm -rf "$BERTH_ROOT"' EXIT
else
    trap '"$berth" rm -f quotes >/dev/null 2>&1 || true' EXIT
fi

# berth build: examples/quote-app/Dockerfile, two stages.
"$here/build.sh" "$berth" quote-app:1
"$berth" rm -f quotes >/dev/null 2>&1 || true
# The service listens on 8080 in its own network namespace; -p publishes it
# on the host's port. Its command and healthcheck come from the image.
"$berth" run -d --name quotes -p "127.0.0.1:$port:8080" quote-app:1 >/dev/null

for _ in $(seq 100); do
    [[ $("$berth" inspect -f '{{.State.Health.Status}}' quotes) == healthy ]] && break
    sleep 0.1
done
echo "== berth ps"
"$berth" ps
echo "== a quote through berth exec"
"$berth" exec quotes wget -qO- "http://127.0.0.1:8080/cgi-bin/quote"
echo "== a quote from the host, through the published port ($("$berth" port quotes 8080))"
python3 -c "import sys, urllib.request; sys.stdout.write(urllib.request.urlopen('http://127.0.0.1:$port/cgi-bin/quote', timeout=10).read().decode())"
"$berth" inspect -f 'health: {{.State.Health.Status}}' quotes
"$berth" stop -t 2 quotes >/dev/null
"$berth" rm quotes >/dev/null
