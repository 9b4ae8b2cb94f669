#!/usr/bin/env bash
# A throw-away PostgreSQL 15 cluster for the tests (Debian's `postgresql` package):
#
#   scripts/pg-throwaway.sh start DIR    makes a cluster in DIR (initdb), starts it on a
#                                        free 127.0.0.1 port and a unix socket in DIR, and
#                                        prints its URL (postgres://postgres@127.0.0.1:PORT/postgres)
#   scripts/pg-throwaway.sh stop DIR     stops it (DIR stays; remove it yourself)
#
# Needs root: initdb refuses to run as root, so the cluster belongs to the `postgres`
# user (runuser). Trust authentication for local connections: it listens on loopback
# only and lives as long as a test run. fsync is off: nothing in it needs to outlive a
# crash of the machine.
set -euo pipefail
BIN=/usr/lib/postgresql/15/bin
cmd=${1:-}
dir=${2:-}
if [ -z "$cmd" ] || [ -z "$dir" ]; then
    echo "usage: $0 start|stop DIR" >&2
    exit 2
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "$0 needs root (it runs initdb as the postgres user): sudo $0 $*" >&2
    exit 4
fi
case "$cmd" in
start)
    if [ ! -x "$BIN/initdb" ]; then
        echo "installing postgresql (PostgreSQL 15)" >&2
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq >&2
        apt-get install -y -qq --no-install-recommends postgresql >&2
    fi
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    chown postgres: "$dir"
    chmod 0700 "$dir"
    # The cluster's parent directories must be traversable by postgres (mktemp -d is 0700
    # for root): only the search bit, nothing readable.
    d=$(dirname "$dir")
    while [ "$d" != / ]; do
        [ "$(stat -c %U "$d")" = root ] && chmod o+x "$d" 2>/dev/null || true
        d=$(dirname "$d")
    done
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    runuser -u postgres -- "$BIN/initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >/dev/null
    runuser -u postgres -- "$BIN/pg_ctl" -D "$dir/data" -l "$dir/log" -w -t 30 \
        -o "-c listen_addresses=127.0.0.1 -c port=$port -c unix_socket_directories=$dir -c fsync=off \
            -c synchronous_commit=off -c full_page_writes=off -c max_connections=200" start >/dev/null
    echo "$port" >"$dir/port"
    echo "postgres://postgres@127.0.0.1:$port/postgres"
    ;;
stop)
    if [ -d "$dir/data" ]; then
        runuser -u postgres -- "$BIN/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null 2>&1 || true
    fi
    ;;
*)
    echo "usage: $0 start|stop DIR" >&2
    exit 2
    ;;
esac
