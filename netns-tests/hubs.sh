# shellcheck shell=bash
# Several hubs on one PostgreSQL (issue 15). Source after lib.sh; call hubs_topo_up
# instead of topo_up. Adds to lib.sh's topology:
#
#     wan 192.0.2.0/24 ── hub1 192.0.2.1 (lib.sh's NS_HUB), hub2 192.0.2.11, hub3 192.0.2.12
#                     └── pg 192.0.2.20: a throw-away PostgreSQL 15 cluster (initdb + pg_ctl)
#
# The hubs reach it over TLS, as hubs in several places would: a CA of this run signs the
# server's certificate for 192.0.2.20, pg_hba.conf takes only `hostssl` from the test
# network, and the hubs' URL names the CA (sslrootcert); nothing is sent in plaintext.
#
# The three hubs share one key file (one server URL key for all of them) and the one
# database; each has its own name, status socket and log. `admin` runs `mcvpn admin`
# against the database from hub1's namespace (the only place that reaches it).

PG_BIN=/usr/lib/postgresql/15/bin
NS_HUB2=$P-hub2 NS_HUB3=$P-hub3 NS_PG=$P-pg
ALL_NS+=("$NS_HUB2" "$NS_HUB3" "$NS_PG")
HUB_NSS=("" "$NS_HUB" "$NS_HUB2" "$NS_HUB3") # indexed 1..3
HUBN_IPS=("" 192.0.2.1 192.0.2.11 192.0.2.12)
HUBN_PIDS=("" "" "" "")
PG_IP=192.0.2.20
PG_PORT=5432
# PostgreSQL's own user must reach its directory: not under $WORK (0700 root).
PG_DIR=$(mktemp -d "/tmp/$P-pg.XXXX")
EXTRA_DIRS+=("$PG_DIR")
HUB_DB="postgres://postgres@$PG_IP:$PG_PORT/mcvpn?sslrootcert=$PG_DIR/ca.pem"

admin() { ip netns exec "$NS_HUB" "$MCVPN" admin --db "$HUB_DB" "$@"; }

hubs_topo_up() {
    if [ ! -x "$PG_BIN/initdb" ]; then
        log "installing PostgreSQL 15 (Debian's postgresql package)"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql >/dev/null
    fi
    topo_up
    local i
    for i in 2 3; do
        veth "${HUB_NSS[$i]}" eth0 "$NS_WAN" "h$i"
        ip -n "$NS_WAN" link set "h$i" master br0
        ip -n "${HUB_NSS[$i]}" addr add "${HUBN_IPS[$i]}/24" dev eth0
    done
    veth "$NS_PG" eth0 "$NS_WAN" pg0
    ip -n "$NS_WAN" link set pg0 master br0
    ip -n "$NS_PG" addr add "$PG_IP/24" dev eth0
}

# pg_tls_cert: a CA of this run ($PG_DIR/ca.pem, which the hubs' URL names) and the
# server certificate it signs for $PG_IP.
pg_tls_cert() {
    "$(dirname "${BASH_SOURCE[0]}")/../scripts/test-cert.sh" "$PG_DIR" "$PG_IP" "IP:$PG_IP" \
        || die "could not make the test CA and PostgreSQL's certificate (openssl)"
}

pg_ctl_() { ip netns exec "$NS_PG" runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$PG_DIR/data" "$@"; }

start_pg() {
    chown postgres "$PG_DIR"
    if [ ! -d "$PG_DIR/data" ]; then
        runuser -u postgres -- "$PG_BIN/initdb" -D "$PG_DIR/data" -A trust -U postgres --no-sync >"$PG_DIR/initdb.log" 2>&1 \
            || die "initdb failed: $(tail -n 5 "$PG_DIR/initdb.log")"
        # A throw-away cluster on a test network: trust is enough, nothing else can reach
        # it. TCP only with TLS; the unix socket stays for psql_ and createdb.
        echo "hostssl all all 192.0.2.0/24 trust" >>"$PG_DIR/data/pg_hba.conf"
        pg_tls_cert
        printf "ssl = on\nssl_cert_file = '%s'\nssl_key_file = '%s'\n" "$PG_DIR/server.crt" "$PG_DIR/server.key" \
            >>"$PG_DIR/data/postgresql.conf"
    fi
    pg_ctl_ -o "-h $PG_IP -p $PG_PORT -k $PG_DIR" -l "$PG_DIR/server.log" -w -t 30 start >/dev/null \
        || die "PostgreSQL did not start: $(tail -n 5 "$PG_DIR/server.log")"
    ip netns exec "$NS_PG" runuser -u postgres -- "$PG_BIN/psql" -h "$PG_DIR" -p "$PG_PORT" -qAt \
        -c "SELECT 1 FROM pg_database WHERE datname = 'mcvpn'" | grep -q 1 \
        || ip netns exec "$NS_PG" runuser -u postgres -- "$PG_BIN/createdb" -h "$PG_DIR" -p "$PG_PORT" mcvpn
    log "PostgreSQL up at $PG_IP:$PG_PORT"
}

stop_pg() { pg_ctl_ -m "${1:-fast}" -w stop >/dev/null; }

# psql_ SQL: one query on the hubs' database, unaligned output.
psql_() {
    ip netns exec "$NS_PG" runuser -u postgres -- "$PG_BIN/psql" -h "$PG_DIR" -p "$PG_PORT" -d mcvpn -qAt -c "$1"
}

hub_sock() { echo "$WORK/hub$1.sock"; }

# start_hub_n I [extra hub args...]: hub I (1..3) in its namespace, named hubI.
start_hub_n() {
    local i=$1
    shift
    ip netns exec "${HUB_NSS[$i]}" "$MCVPN" hub --name "hub$i" --listen "${HUBN_IPS[$i]}:$HUB_PORT" --db "$HUB_DB" \
        --key "$HUB_KEY" --https-listen "${HUBN_IPS[$i]}:$HUB_HTTPS_PORT" --status-socket "$(hub_sock "$i")" "$@" \
        >>"$WORK/hub$i.log" 2>&1 &
    HUBN_PIDS[i]=$!
    wait_until 20 "hub$i status socket" "$MCVPN" hub stats --status-socket "$(hub_sock "$i")"
}

stop_hub_n() { # stop_hub_n I [SIGNAL]
    kill "-${2:-TERM}" "${HUBN_PIDS[$1]}" 2>/dev/null || true
    wait "${HUBN_PIDS[$1]}" 2>/dev/null || true
}

# hub_url_n I: the server URL naming hub I only.
hub_url_n() { "$MCVPN" hub url --key "$HUB_KEY" --listen "${HUBN_IPS[$1]}:$HUB_PORT"; }

# hub_session_count I [ACCOUNT]: live sessions on hub I (of ACCOUNT only, if given).
hub_session_count() {
    "$MCVPN" hub stats --status-socket "$(hub_sock "$1")" --json | python3 -c "
import json, sys
s = json.load(sys.stdin)['sessions']
print(sum(1 for x in s if '${2:-}' in ('', x['account'])))"
}
