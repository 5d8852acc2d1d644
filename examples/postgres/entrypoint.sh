#!/bin/bash
# The postgres image's entrypoint: on the first start, makes the cluster in
# $PGDATA (a volume) for POSTGRES_USER/POSTGRES_PASSWORD/POSTGRES_DB, as the
# official image does; then runs the server as the postgres user, listening
# on every address with scram-sha-256 passwords for network clients.
#
# The server runs as this script's child, not in its place: Kubernetes and
# a plain `kill` send SIGTERM, which the postmaster takes as a "smart"
# shutdown that waits for every client to leave (the web service keeps its
# connections, so the stop would end in SIGKILL after the grace period).
# Here SIGTERM and SIGINT become a fast shutdown (SIGINT to the server: open
# transactions rolled back, a checkpoint written, a clean exit), and SIGQUIT
# stays the immediate one.
set -euo pipefail

die() {
    echo "postgres-entrypoint: $*" >&2
    exit 1
}

# VAR from VAR or from the file VAR_FILE names (compose and Kubernetes
# secrets arrive as files), else the default $2.
file_env() {
    local var=$1 file_var=${1}_FILE value=${2:-}
    if [[ -n ${!var:-} && -n ${!file_var:-} ]]; then
        die "both $var and $file_var are set: use one"
    fi
    if [[ -n ${!var:-} ]]; then
        value=${!var}
    elif [[ -n ${!file_var:-} ]]; then
        value=$(<"${!file_var}") || die "cannot read $file_var (${!file_var})"
    fi
    export "$var=$value"
    unset "$file_var"
}

# `berth run IMAGE -c shared_buffers=64MB` passes flags to the server;
# anything else (psql, bash) runs as asked.
if [[ ${1:-} == -* ]]; then
    set -- postgres "$@"
fi
if [[ ${1:-} != postgres ]]; then
    exec "$@"
fi

if [[ $(id -u) == 0 ]]; then
    # The data directory may be a fresh volume of any origin (a named
    # volume, a bind mount, a Kubernetes claim): it becomes the server's,
    # and root is dropped for good before anything else runs.
    mkdir -p "$PGDATA"
    chown postgres:postgres "$PGDATA"
    chmod 0700 "$PGDATA"
    install -d -o postgres -g postgres -m 2775 /run/postgresql
    exec setpriv --reuid=postgres --regid=postgres --init-groups "${BASH_SOURCE[0]}" "$@"
fi

if [[ ! -s $PGDATA/PG_VERSION ]]; then
    file_env POSTGRES_USER postgres
    file_env POSTGRES_PASSWORD
    file_env POSTGRES_DB "$POSTGRES_USER"
    [[ -n $POSTGRES_PASSWORD ]] \
        || die "POSTGRES_PASSWORD is not set: network clients need a password (set POSTGRES_PASSWORD or POSTGRES_PASSWORD_FILE)"
    echo "postgres-entrypoint: initialising a new cluster in $PGDATA (user $POSTGRES_USER, database $POSTGRES_DB)"
    # Local (Unix socket) connections are trusted: only processes inside
    # the container reach the socket. Everything over TCP needs the password.
    # initdb's own sync fsyncs its ~1000 files one by one (7 s here); one
    # syncfs of the volume's filesystem makes the same data durable in a
    # fraction of that (2.6 s for both, a first start 4 s sooner).
    initdb --username="$POSTGRES_USER" --pwfile=<(printf '%s\n' "$POSTGRES_PASSWORD") \
        --auth-local=trust --auth-host=scram-sha-256 --encoding=UTF8 --no-sync \
        -D "$PGDATA" >/dev/null
    sync -f "$PGDATA"
    echo "listen_addresses = '*'" >>"$PGDATA/postgresql.conf"
    echo "host all all all scram-sha-256" >>"$PGDATA/pg_hba.conf"

    # The database and any init scripts, on a server nobody can reach over
    # the network yet (the healthcheck asks over TCP, so it stays unhealthy
    # until the real server below is up).
    pg_ctl -D "$PGDATA" -o "-c listen_addresses=''" -w -t 60 start >/dev/null
    psql=(psql -v ON_ERROR_STOP=1 -X -q --username "$POSTGRES_USER" --no-password)
    if [[ $POSTGRES_DB != postgres ]]; then
        "${psql[@]}" --dbname postgres -v db="$POSTGRES_DB" <<<'CREATE DATABASE :"db";'
    fi
    for f in /docker-entrypoint-initdb.d/*; do
        case $f in
        *.sql) echo "postgres-entrypoint: running $f"; "${psql[@]}" --dbname "$POSTGRES_DB" -f "$f" ;;
        *.sh) echo "postgres-entrypoint: running $f"; bash "$f" ;;
        */\*) ;;
        *) echo "postgres-entrypoint: ignoring $f (neither .sql nor .sh)" ;;
        esac
    done
    pg_ctl -D "$PGDATA" -m fast -w -t 60 stop >/dev/null
    echo "postgres-entrypoint: cluster ready"
fi
unset POSTGRES_PASSWORD

"$@" &
server=$!
trap 'kill -INT "$server" 2>/dev/null || true' TERM INT
trap 'kill -QUIT "$server" 2>/dev/null || true' QUIT
set +e
# A trapped signal ends `wait` early; wait again until the server is gone,
# then once more for its exit status (bash keeps it for a reaped child).
while kill -0 "$server" 2>/dev/null; do
    wait "$server"
done
wait "$server"
exit $?
