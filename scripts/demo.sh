#!/usr/bin/env bash
# The main job: the quote-app (examples/quote-app: a Python web service over
# PostgreSQL, both images built by `berth build` from the Debian minbase) as
# a Compose project, then the same application moved to Kubernetes YAML.
#
#   1. installs what is needed and builds berth (static release), unless
#      BERTH names a berth binary to use;
#   2. builds the two images (examples/quote-app/build-images.sh: the
#      Debian base imported once, every step cached after the first run);
#   3. berth compose up -d --wait (the web service waits for the
#      database's healthcheck), quotes fetched from the host through the
#      published port, one added through the API, compose restart, the new
#      quote read back, compose ps, compose logs;
#   4. berth kube generate of the project's containers, compose down, berth
#      kube play of the generated YAML: the new quote is still there, in
#      the named volume; kube play --down, and the volume removed.
#
# Usage: scripts/demo.sh [PORT]   (default 8080, on 127.0.0.1)
# The store is berth's default (/var/lib/berth) or BERTH_ROOT's; the images
# stay in it, the containers, network and volume are removed at the end.
# Without compose: examples/quote-app/run-plain.sh runs the same
# application with plain berth commands.
set -euo pipefail
cd "$(dirname "$0")/.."
port=${1:-8080}
export QUOTE_APP_PORT=$port
compose_file=examples/quote-app/compose.yaml
project="quote-app"
url=http://127.0.0.1:$port

if [[ -z ${BERTH:-} ]]; then
    ./scripts/install-deps.sh
    ./scripts/build-release.sh
    host=$(rustc -vV | sed -n 's/^host: //p')
    BERTH=target/$host/release/berth
fi
berth=$(readlink -f "$BERTH")

# Both halves need commands of issue 17; say which one is missing before
# anything is built or started.
for verb in compose kube; do
    if ! "$berth" "$verb" --help >/dev/null 2>&1; then
        echo "demo: this berth ($berth) has no '$verb' command yet (issue 17);" \
            "examples/quote-app/run-plain.sh runs the same application with plain berth commands" >&2
        exit 1
    fi
done
command -v curl >/dev/null || { echo "demo: curl is missing (apt-get install curl)" >&2; exit 1; }

compose() { "$berth" compose -p "$project" -f "$compose_file" "$@"; }
work=$(mktemp -d)
generated=$work/quote-app-kube.yaml
cleanup() {
    if [[ -s $generated ]]; then
        "$berth" kube play --down "$generated" >/dev/null 2>&1 || true
    fi
    compose down -v >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT
# GET PATH, retried until it answers (60 s at most: a restarted service
# takes a moment to listen again).
get() {
    local deadline=$((SECONDS + 60))
    until curl -fsS --max-time 5 "$url$1" 2>/dev/null; do
        ((SECONDS < deadline)) || { echo "demo: $url$1 did not answer in 60s" >&2; exit 1; }
        sleep 0.2
    done
}
read_back() {
    local all
    all=$(get /quotes)
    grep -qF "\"$quote\"" <<<"$all" || { echo "demo: the added quote is missing ($1): $all" >&2; exit 1; }
    echo "found after $1: $quote"
}

echo "== the images (berth build, from the Debian base)"
examples/quote-app/build-images.sh "$berth"

echo "== berth compose up -d --wait"
compose down -v >/dev/null 2>&1 || true
compose up -d --wait

echo "== quotes from the host, through $url"
for _ in 1 2 3; do
    get /quote
done

echo "== a new quote through the API"
quote="Added by the demo at $(date -u +%FT%TZ)."
curl -fsS --max-time 10 -H 'Content-Type: application/json' -d "{\"text\": \"$quote\"}" "$url/quotes"

echo "== berth compose restart"
compose restart
read_back "compose restart"

echo "== berth compose ps"
compose ps
echo "== berth compose logs --tail 5"
compose logs --tail 5

echo "== berth kube generate, compose down, berth kube play"
"$berth" kube generate --service "$project-db-1" "$project-web-1" >"$generated"
echo "(generated $(grep -c '^kind:' "$generated") objects: $(sed -n 's/^kind: //p' "$generated" | paste -sd' '))"
# Without -v: the database's volume stays for the pod to use.
compose down
"$berth" kube play "$generated"
read_back "compose down and kube play (the named volume kept the data)"
get /quote

echo "== berth kube play --down, and the volume"
"$berth" kube play --down "$generated"
"$berth" volume rm "${project}_pgdata"
echo "done"
