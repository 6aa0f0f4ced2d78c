#!/usr/bin/env bash
# A throw-away PostgreSQL server on 127.0.0.1 for the tests that need one (Optuna studies
# shared by several sweeper processes, an MLflow tracking server's backend store).
#   .ci/postgres.sh start DIR [PORT]   initialise DIR if new, start, print the URL to use
#   .ci/postgres.sh stop DIR           stop the server whose data lives in DIR
# The tests read the URL from RNNREC_TEST_POSTGRES_URL and skip, saying why, without it.
# PostgreSQL refuses to run as root, so as root the server runs as the `postgres` user
# (created by Debian's package). Authentication is `trust`: the server listens on the
# loopback address only and holds nothing but test data.
set -euo pipefail

action=${1:?usage: postgres.sh start|stop DIR [PORT]}
data_dir=${2:?usage: postgres.sh start|stop DIR [PORT]}
port=${3:-55432}
bin_dir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
if [[ -z "$bin_dir" ]]; then
    echo "postgres.sh: no PostgreSQL under /usr/lib/postgresql (apt-get install postgresql)" >&2
    exit 1
fi

as_owner() {
    if [[ $(id -u) -eq 0 ]]; then
        su postgres -s /bin/bash -c "$(printf '%q ' "$@")"
    else
        "$@"
    fi
}

case "$action" in
start)
    mkdir -p "$data_dir"
    if [[ $(id -u) -eq 0 ]]; then chown postgres "$data_dir"; fi
    if [[ ! -f "$data_dir/PG_VERSION" ]]; then
        as_owner "$bin_dir/initdb" --pgdata="$data_dir" --auth=trust --username=postgres \
            --encoding=UTF8 >"$data_dir.initdb.log" 2>&1
    fi
    # The socket goes into the data folder: /var/run/postgresql may not exist or be ours.
    as_owner "$bin_dir/pg_ctl" --pgdata="$data_dir" --wait --log="$data_dir/server.log" \
        -o "-c listen_addresses=127.0.0.1 -c port=$port -c unix_socket_directories=$data_dir" \
        start >/dev/null
    echo "postgresql://postgres@127.0.0.1:$port/postgres"
    ;;
stop)
    if [[ -f "$data_dir/postmaster.pid" ]]; then
        as_owner "$bin_dir/pg_ctl" --pgdata="$data_dir" --wait --mode=fast stop >/dev/null
    fi
    ;;
*)
    echo "postgres.sh: unknown action $action (start or stop)" >&2
    exit 2
    ;;
esac
