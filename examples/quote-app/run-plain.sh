#!/usr/bin/env bash
# The quote-app with plain berth commands, no compose: builds both images
# (build-images.sh), makes a user network and a named volume, runs the
# database and waits for its healthcheck, runs the web service with its
# port published on 127.0.0.1, fetches quotes from the host, adds one
# through the API (and sees bad ones refused), restarts both containers and
# reads it back, replaces the database container by a new one on the same
# volume and reads it back again, stops them (each must exit 0: a clean
# shutdown), and removes everything it made.
#
# Usage: examples/quote-app/run-plain.sh BERTH [PORT]   (PORT: 8080)
#   BERTH_ROOT/BERTH_RUNROOT pick the store (berth's defaults otherwise).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
berth=$(readlink -f "${1:?usage: run-plain.sh BERTH [PORT]}")
port=${2:-8080}
command -v curl >/dev/null || { echo "run-plain: curl is missing (apt-get install curl)" >&2; exit 1; }

net="quote-plain"
db="quote-plain-db"
web="quote-plain-web"
volume="quote-plain-data"
url=http://127.0.0.1:$port
# A password of this run's own, given to both containers.
password=$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')

cleanup() {
    "$berth" rm -f "$web" "$db" >/dev/null 2>&1 || true
    "$berth" network rm "$net" >/dev/null 2>&1 || true
    "$berth" volume rm "$volume" >/dev/null 2>&1 || true
}
fail() {
    echo "run-plain: $*" >&2
    for c in "$db" "$web"; do
        echo "== berth logs $c (last lines)" >&2
        "$berth" logs --tail 20 "$c" >&2 2>&1 || true
    done
    exit 1
}
# Waits until each container's healthcheck says healthy (SECONDS: 120 at
# most); a container that stops on the way is a failure at once.
wait_healthy() {
    local c status deadline=$((SECONDS + 120))
    for c in "$@"; do
        while :; do
            status=$("$berth" inspect -f '{{.State.Status}} {{.State.Health.Status}}' "$c")
            [[ $status == "running healthy" ]] && break
            [[ $status == running* ]] || fail "$c stopped before it was healthy ($status)"
            ((SECONDS < deadline)) || fail "$c not healthy after 120s ($status)"
            sleep 0.2
        done
        echo "$c is healthy"
    done
}

# The database container; the web service finds it as `db`, its alias on
# the network. The cluster lives in the named volume.
run_db() {
    "$berth" run -d --name "$db" --network "$net" --network-alias db \
        --restart unless-stopped \
        -e POSTGRES_USER=quotes -e POSTGRES_PASSWORD="$password" -e POSTGRES_DB=quotes \
        -v "$volume:/var/lib/postgresql/data" \
        postgres-debian:bookworm >/dev/null
}
# The database's own account of its starts and stops, without timestamps.
db_log() {
    "$berth" logs "$db" 2>&1 \
        | grep -E 'initialising|database system (was|is)|shutdown request' \
        | sed 's/^[0-9-]* [0-9:.]* UTC \[[0-9]*\] //'
}
# Every quote, which must include the new one.
read_back() {
    local all
    all=$(curl -fsS --max-time 10 "$url/quotes")
    grep -qF "\"$quote\"" <<<"$all" || fail "the new quote is gone after $1: $all"
    echo "found: $quote"
    echo "$all"
}

cleanup
trap cleanup EXIT
"$here/build-images.sh" "$berth"

echo "== the network, the volume, the database"
"$berth" network create "$net" >/dev/null
"$berth" volume create "$volume" >/dev/null
run_db
wait_healthy "$db"

echo "== the web service on $url"
"$berth" run -d --name "$web" --network "$net" --restart unless-stopped \
    -e PGHOST=db -e PGUSER=quotes -e PGPASSWORD="$password" -e PGDATABASE=quotes \
    -p "127.0.0.1:$port:8080" \
    quote-app:1 >/dev/null
wait_healthy "$web"
"$berth" ps --filter "network=$net" --format '{{.Names}}\t{{.Status}}\t{{.Ports}}'

echo "== three quotes from the host"
for _ in 1 2 3; do
    curl -fsS --max-time 10 "$url/quote"
done

echo "== a new quote through the API"
quote="Added by run-plain.sh at $(date -u +%FT%T.%NZ)."
curl -fsS --max-time 10 -H 'Content-Type: application/json' \
    -d "{\"text\": \"$quote\"}" "$url/quotes"

echo "== bad quotes are refused (status, then the reply)"
for body in "{\"text\": \"$quote\"}" '{"text": "  "}' '{"quote": "x"}' 'not json'; do
    reply=$(curl -sS --max-time 10 -H 'Content-Type: application/json' -d "$body" \
        -w ' %{http_code}' "$url/quotes")
    body=${reply% *}
    echo "${reply##* } ${body%$'\n'}"
done

echo "== restart both"
"$berth" restart "$db" "$web" >/dev/null
wait_healthy "$db" "$web"

echo "== read back after the restart"
read_back "the restart"
echo "== the database's starts and stops"
db_log

# A restarted container keeps its own files: only a new container shows
# that the data is in the volume (and that its entrypoint leaves an
# existing cluster alone).
echo "== a new database container on the same volume"
"$berth" stop "$db" >/dev/null
"$berth" rm "$db" >/dev/null
run_db
wait_healthy "$db" "$web"
read_back "a new database container"

echo "== stop"
"$berth" stop "$web" "$db" >/dev/null
for c in "$web" "$db"; do
    "$berth" inspect -f "$c exited {{.State.ExitCode}}" "$c"
done
echo "== the new database's starts and stops"
db_log

echo "== remove everything"
cleanup
trap - EXIT
echo "done"
