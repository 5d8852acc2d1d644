#!/usr/bin/env bash
# The main job: install what is needed, build berth (static), and run the
# quote service of examples/quote-app: built from its Dockerfile, run detached
# with a healthcheck, and asked for quotes through `berth exec` and from the
# host. Usage: scripts/demo.sh [PORT]   (default 8080, on 127.0.0.1)
set -euo pipefail
cd "$(dirname "$0")/.."

./scripts/install-deps.sh
./scripts/build-release.sh
host=$(rustc -vV | sed -n 's/^host: //p')
exec examples/quote-app/run.sh "target/$host/release/berth" "${1:-8080}"
