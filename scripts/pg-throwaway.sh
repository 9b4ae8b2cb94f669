#!/usr/bin/env bash
# A throw-away PostgreSQL 15 cluster for the tests (Debian's `postgresql` package):
#
#   scripts/pg-throwaway.sh start DIR    makes a cluster in DIR (initdb), starts it on a
#                                        free 127.0.0.1 port and a unix socket in DIR, and
#                                        prints its URL (postgres://postgres@127.0.0.1:PORT/postgres)
#   scripts/pg-throwaway.sh start-tls DIR  the same with TLS only over TCP: a CA and a
#                                        server certificate for localhost/127.0.0.1 made in
#                                        DIR (openssl), ssl=on, pg_hba.conf `hostssl` for TCP
#                                        (a plaintext TCP connection is refused); prints the
#                                        URL (…?sslmode=verify-full) and, on a second line, DIR/ca.pem
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
    echo "usage: $0 start|start-tls|stop DIR" >&2
    exit 2
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "$0 needs root (it runs initdb as the postgres user): sudo $0 $*" >&2
    exit 4
fi
case "$cmd" in
start | start-tls)
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
    tls_opts=""
    if [ "$cmd" = start-tls ]; then
        # A CA of this run and a server certificate it signs, for the names the tests use
        # (the URL's 127.0.0.1, and localhost). Made fresh each start: nothing outlives it.
        "$(dirname "$0")/test-cert.sh" "$dir" localhost "DNS:localhost,IP:127.0.0.1"
        # TCP only with TLS (hostssl); the unix socket stays for pg_ctl and local admin.
        printf 'local all all trust\nhostssl all all 127.0.0.1/32 trust\nhostssl all all ::1/128 trust\n' \
            >"$dir/data/pg_hba.conf"
        tls_opts="-c ssl=on -c ssl_cert_file=$dir/server.crt -c ssl_key_file=$dir/server.key"
    fi
    runuser -u postgres -- "$BIN/pg_ctl" -D "$dir/data" -l "$dir/log" -w -t 30 \
        -o "-c listen_addresses=127.0.0.1 -c port=$port -c unix_socket_directories=$dir -c fsync=off \
            -c synchronous_commit=off -c full_page_writes=off -c max_connections=200 $tls_opts" start >/dev/null
    echo "$port" >"$dir/port"
    if [ "$cmd" = start-tls ]; then
        echo "postgres://postgres@127.0.0.1:$port/postgres?sslmode=verify-full"
        echo "$dir/ca.pem"
    else
        echo "postgres://postgres@127.0.0.1:$port/postgres"
    fi
    ;;
stop)
    if [ -d "$dir/data" ]; then
        runuser -u postgres -- "$BIN/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null 2>&1 || true
    fi
    ;;
*)
    echo "usage: $0 start|start-tls|stop DIR" >&2
    exit 2
    ;;
esac
