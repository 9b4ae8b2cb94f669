# shellcheck shell=bash
# Shared topology and helpers for the end-to-end tests. Source it, then call topo_up.
#
#                       wan (bridge, "the internet", 192.0.2.0/24)
#            ┌─────────────────┼──────────────────┐
#       hub 192.0.2.1    rtt 192.0.2.2        rtc 192.0.2.3     (rtt/rtc masquerade)
#                            │                   │
#                       tgt 10.1.0.2       cli 10.2.0.2, cli2 10.2.0.3
#
# The target and the clients sit behind their own NAT: nothing can reach them from
# the wan, so every byte between them must go through the hub. Names carry a per-run
# prefix; topo_down (installed as an EXIT trap by topo_up) kills every process in the
# namespaces and deletes them, even when the test fails.

set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
MCVPN=${MCVPN:-$ROOT/target/release/mcvpn}
RUN_ID=${RUN_ID:-$$}
P="mcvt${RUN_ID}"
NS_WAN=$P-wan NS_HUB=$P-hub NS_RTT=$P-rtt NS_TGT=$P-tgt NS_RTC=$P-rtc NS_CLI=$P-cli NS_CLI2=$P-cli2
ALL_NS=("$NS_WAN" "$NS_HUB" "$NS_RTT" "$NS_TGT" "$NS_RTC" "$NS_CLI" "$NS_CLI2")
HUB_IP=192.0.2.1
HUB_PORT=51820
# The hub's HTTPS port (TLS + WebSocket, issue 12). `hub url` names it only when it is not 443.
HUB_HTTPS_PORT=443
WORK=$(mktemp -d "/tmp/$P.XXXX")
TEST_NAME=$(basename "$0" .sh)
FAILED=0
EXTRA_DIRS=() # more directories topo_down removes (squid's, which its own user must reach)

log() { printf '[%s %s] %s\n' "$(date +%T)" "$TEST_NAME" "$*"; }
pass() { log "PASS: $*"; }
fail() {
    log "FAIL: $*"
    FAILED=1
}
die() {
    fail "$*"
    exit 1
}

# Runs a command in a namespace. For background processes whose pid matters, call
# `ip netns exec` directly instead: `in_ns … &` makes $! a subshell's pid.
in_ns() {
    local ns=$1
    shift
    ip netns exec "$ns" "$@"
}

show_logs() {
    local f
    for f in "$WORK"/*.log "$WORK"/*/client.log ${EXTRA_DIRS[@]+"${EXTRA_DIRS[@]/%//cache.log}"}; do
        [ -s "$f" ] || continue
        echo "----- ${f#"$WORK"/} (last 40 lines) -----"
        tail -n 40 "$f"
    done
}

topo_down() {
    local rc=$? ns
    trap - EXIT INT TERM
    if [ "$rc" -ne 0 ] || [ "$FAILED" -ne 0 ]; then
        show_logs || true
    fi
    # The shell would report each killed background job ("Killed ..."): noise here.
    exec 2>/dev/null
    for ns in "${ALL_NS[@]}"; do
        ip netns pids "$ns" 2>/dev/null | xargs -r kill -9 2>/dev/null || true
    done
    for ns in "${ALL_NS[@]}"; do
        ip netns del "$ns" 2>/dev/null || true
    done
    rm -rf "$WORK" ${EXTRA_DIRS[@]+"${EXTRA_DIRS[@]}"}
    if [ "$FAILED" -ne 0 ] && [ "$rc" -eq 0 ]; then rc=1; fi
    exit "$rc"
}

# veth between two namespaces: veth NS_A IF_A NS_B IF_B
veth() {
    ip -n "$1" link add "$2" type veth peer name "$4" netns "$3"
    ip -n "$1" link set "$2" up
    ip -n "$3" link set "$4" up
}

# attacker_sources PREFIX COUNT: after topo_up, joins namespace $NS_ATK (in ALL_NS
# before topo_up) to the wan at 192.0.2.9 with COUNT more source addresses
# PREFIX.1 .. PREFIX.COUNT, which the hub routes back through it.
attacker_sources() {
    veth "$NS_ATK" eth0 "$NS_WAN" a0
    ip -n "$NS_WAN" link set a0 master br0
    ip -n "$NS_ATK" addr add 192.0.2.9/24 dev eth0
    for i in $(seq 1 "$2"); do echo "addr add $1.$i/32 dev eth0"; done | ip -n "$NS_ATK" -batch -
    ip -n "$NS_HUB" route add "$1.0/24" via 192.0.2.9
}

nat_router() { # nat_router NS WAN_IP LAN_IP/24 LAN_NET
    local ns=$1
    in_ns "$ns" sysctl -qw net.ipv4.ip_forward=1
    ip -n "$ns" addr add "$2/24" dev wan0
    ip -n "$ns" addr add "$3" dev lan0
    in_ns "$ns" nft -f - <<EOF
table ip nat {
    chain post {
        type nat hook postrouting priority 100;
        ip saddr $4 oifname "wan0" masquerade
    }
}
EOF
}

topo_up() {
    trap topo_down EXIT
    trap 'exit 130' INT TERM
    local ns
    for ns in "${ALL_NS[@]}"; do
        ip netns add "$ns"
        ip -n "$ns" link set lo up
    done
    ip -n "$NS_WAN" link add br0 type bridge
    ip -n "$NS_WAN" link set br0 up
    veth "$NS_HUB" eth0 "$NS_WAN" h0
    veth "$NS_RTT" wan0 "$NS_WAN" t0
    veth "$NS_RTC" wan0 "$NS_WAN" c0
    for ns in h0 t0 c0; do ip -n "$NS_WAN" link set "$ns" master br0; done
    ip -n "$NS_HUB" addr add "$HUB_IP/24" dev eth0

    veth "$NS_RTT" lan0 "$NS_TGT" eth0
    nat_router "$NS_RTT" 192.0.2.2 10.1.0.1/24 10.1.0.0/24
    ip -n "$NS_TGT" addr add 10.1.0.2/24 dev eth0
    ip -n "$NS_TGT" route add default via 10.1.0.1

    # Two clients behind one NAT router: a bridge on its LAN side.
    ip -n "$NS_RTC" link add lan0 type bridge
    ip -n "$NS_RTC" link set lan0 up
    veth "$NS_RTC" lc1 "$NS_CLI" eth0
    veth "$NS_RTC" lc2 "$NS_CLI2" eth0
    ip -n "$NS_RTC" link set lc1 master lan0
    ip -n "$NS_RTC" link set lc2 master lan0
    nat_router "$NS_RTC" 192.0.2.3 10.2.0.1/24 10.2.0.0/24
    ip -n "$NS_CLI" addr add 10.2.0.2/24 dev eth0
    ip -n "$NS_CLI" route add default via 10.2.0.1
    ip -n "$NS_CLI2" addr add 10.2.0.3/24 dev eth0
    ip -n "$NS_CLI2" route add default via 10.2.0.1
    log "topology $P up (work dir $WORK)"
}

# wait_until TIMEOUT_S DESCRIPTION CMD...: polls CMD every 0.2 s.
# contains PATTERN CMD [ARGS...]: CMD succeeds and its output matches the grep pattern.
# Not `CMD | grep -q`: under pipefail, grep leaving at its first match makes CMD's next
# write fail (SIGPIPE, and mcvpn writes line by line), so the pipeline fails although the
# pattern was there; a loaded machine loses that race (150 did: "mcvpn status does not
# show the current hub" with the line in the output).
contains() {
    local pattern=$1 out
    shift
    out=$("$@") || return 1
    grep -q -- "$pattern" <<<"$out"
}

wait_until() {
    local timeout=$1 what=$2
    shift 2
    local deadline=$((SECONDS + timeout))
    while ! "$@" >/dev/null 2>&1; do
        if [ "$SECONDS" -ge "$deadline" ]; then
            fail "timed out after ${timeout}s waiting for: $what"
            return 1
        fi
        sleep 0.2
    done
}

# --- hub -------------------------------------------------------------------

HUB_DB=$WORK/hub.db
HUB_KEY=$WORK/hub.key
HUB_SOCK=$WORK/hub.sock

admin() { "$MCVPN" admin --db "$HUB_DB" "$@"; }

# Set HUB_EXTRA_ARGS=(--opt value ...) before start_hub to give the hub more options, and
# HUB_AS=(setpriv ...) to start it through a privilege-dropping wrapper.
start_hub() {
    # Started with `ip netns exec` directly (not through a function) so that $! is the
    # hub's own pid: kill must reach the process, not a subshell around it.
    ip netns exec "$NS_HUB" ${HUB_AS[@]+"${HUB_AS[@]}"} "$MCVPN" hub --listen "$HUB_IP:$HUB_PORT" --db "$HUB_DB" --key "$HUB_KEY" \
        --https-listen "$HUB_IP:$HUB_HTTPS_PORT" --status-socket "$HUB_SOCK" ${HUB_EXTRA_ARGS[@]+"${HUB_EXTRA_ARGS[@]}"} \
        >>"$WORK/hub.log" 2>&1 &
    HUB_PID=$!
    wait_until 10 "hub status socket" "$MCVPN" hub stats --status-socket "$HUB_SOCK"
    local https_port=()
    [ "$HUB_HTTPS_PORT" = 443 ] || https_port=(--https-port "$HUB_HTTPS_PORT")
    HUB_URL=$("$MCVPN" hub url --key "$HUB_KEY" --listen "$HUB_IP:$HUB_PORT" ${https_port[@]+"${https_port[@]}"})
}

stop_hub() {
    kill "$HUB_PID" 2>/dev/null || true
    wait "$HUB_PID" 2>/dev/null || true
}

hub_stat() { # hub_stat FIELD: a relay counter
    "$MCVPN" hub stats --status-socket "$HUB_SOCK" --json | python3 -c "import json,sys; print(json.load(sys.stdin)['relay']['$1'])"
}

# add_account CONTRACT USER PASSWORD (creates the contract if needed; a contract names
# its administrator's e-mail, art. 3, 5, 39)
add_account() {
    admin contract add "$1" --admin-email "it@$1.example" >/dev/null 2>&1 || true
    printf '%s\n' "$3" >"$WORK/pw-$2"
    admin account add "$1" "$2" --password-file "$WORK/pw-$2" >/dev/null
}

# --- target ----------------------------------------------------------------

TGT_DIR=$WORK/target
TGT_ENV=(MCVPN_TARGET_CONFIG="$TGT_DIR/target.toml" MCVPN_TARGET_KEY="$TGT_DIR/target.key" MCVPN_RUN_DIR="$TGT_DIR/run")

target_cmd() { in_ns "$NS_TGT" env "${TGT_ENV[@]}" "$MCVPN" "$@"; }

enroll_target() { # enroll_target USER [NAME]
    mkdir -p "$TGT_DIR"
    target_cmd target enroll --hub "$HUB_URL" --account "$1" --password-file "$WORK/pw-$1" --name "${2:-office-pc}"
}

start_target() {
    ip netns exec "$NS_TGT" env "${TGT_ENV[@]}" "$MCVPN" target run >>"$WORK/target.log" 2>&1 &
    TGT_PID=$!
    wait_until 15 "target connected" target_connected
}

stop_target() { # stop_target [SIGNAL]
    kill "-${1:-TERM}" "$TGT_PID" 2>/dev/null || true
    wait "$TGT_PID" 2>/dev/null || true
}

target_status() { env "${TGT_ENV[@]}" "$MCVPN" target status --json; }

json_get() { python3 -c "import json,sys; print(json.load(sys.stdin)$1)"; }

target_connected() {
    target_status | python3 -c "import json,sys; s=json.load(sys.stdin); sys.exit(0 if s.get('connected') and s.get('relay_bound') else 1)"
}

target_ip() { target_status | json_get "['overlay_ip']"; }

# The start most tests share: the topology, the hub, contract acme with account alice,
# and alice's target enrolled and running. Sets TIP, the target's overlay address.
alice_and_her_target() {
    topo_up
    start_hub
    add_account acme alice alice-password-1
    enroll_target alice >/dev/null
    start_target
    TIP=$(target_ip)
}

# --- clients ---------------------------------------------------------------

client_envs() { # client_envs NAME: the environment of one client (config, run dir, key, log, saved login)
    mkdir -p "$WORK/$1"
    echo "MCVPN_CONFIG=$WORK/$1/mcvpn.toml" "MCVPN_RUN_DIR=$WORK/$1" "MCVPN_KEY=$WORK/$1/device.key" \
        "MCVPN_LOG_DIR=$WORK/$1" "MCVPN_RESUME_FILE=$WORK/$1/client.resume"
}

client_cmd() { # client_cmd NS NAME ARGS...
    local ns=$1 name=$2
    shift 2
    # shellcheck disable=SC2046 # word splitting of the env assignments is intended
    in_ns "$ns" env $(client_envs "$name") "$MCVPN" "$@"
}

client_up() { # client_up NS NAME USER [extra args]: returns mcvpn up's status
    local ns=$1 name=$2 user=$3
    shift 3
    client_cmd "$ns" "$name" up --hub "$HUB_URL" --account "$user" --password-file "$WORK/pw-$user" "$@"
}

client_status() { # client_status NAME
    # shellcheck disable=SC2046
    env $(client_envs "$1") "$MCVPN" status --json
}

# peer_field CLIENT_NAME|target PEER_IP FIELD
peer_field() {
    local json
    if [ "$1" = target ]; then json=$(target_status); else json=$(client_status "$1"); fi
    printf '%s' "$json" | python3 -c "
import json,sys
s=json.load(sys.stdin)
for p in s.get('peers',[]):
    if p['overlay_ip']=='$2': print(p['$3'])"
}

# --- transports (issue 12): firewalls, a real proxy, transfers ------------------

client_transport() { client_status "$1" | json_get ".get('transport')"; } # client_transport NAME
target_transport() { target_status | json_get ".get('transport')"; }

# transport_is NAME|target WANT: the node's status names transport WANT.
transport_is() {
    local got
    if [ "$1" = target ]; then got=$(target_transport); else got=$(client_transport "$1"); fi
    [ "$got" = "$2" ]
}

tcp_listening() { [ -n "$(ip netns exec "$1" ss -Hltn "sport = :$2" 2>/dev/null)" ]; } # tcp_listening NS PORT

# block_udp ROUTER_NS: the NAT router drops every UDP datagram it would forward to the wan
# (a network that lets only TCP out). unblock_udp ROUTER_NS lifts it.
block_udp() {
    in_ns "$1" nft -f - <<'EOF'
table inet mcvt_block_udp {
    chain forwarding {
        type filter hook forward priority 0;
        oifname "wan0" meta l4proto udp counter drop
    }
}
EOF
}
unblock_udp() { in_ns "$1" nft delete table inet mcvt_block_udp; }

# only_https_to_hub: the hub's host firewall drops UDP and TCP to $HUB_PORT from outside,
# leaving its HTTPS port the only way in (the relay still gets the stream transport's
# datagrams: those come from loopback).
only_https_to_hub() {
    in_ns "$NS_HUB" nft -f - <<EOF
table inet mcvt_https_only {
    chain input {
        type filter hook input priority 0;
        iifname "eth0" udp dport $HUB_PORT counter drop
        iifname "eth0" tcp dport $HUB_PORT counter drop
    }
}
EOF
}

# reset_tcp_to_hub ON|OFF: a middlebox in the client's NAT router answers every established
# TCP segment from its LAN to the hub with a reset (new connections, SYNs, pass).
# reset_count prints how many segments it has reset so far.
reset_tcp_to_hub() {
    if [ "$1" = ON ]; then
        in_ns "$NS_RTC" nft -f - <<EOF
table inet mcvt_reset {
    chain forwarding {
        type filter hook forward priority 0;
        iifname "lan0" ip daddr $HUB_IP tcp flags & (syn | rst) == 0 counter reject with tcp reset
    }
}
EOF
    else
        in_ns "$NS_RTC" nft delete table inet mcvt_reset
    fi
}
reset_count() { in_ns "$NS_RTC" nft list table inet mcvt_reset | grep -o 'packets [0-9]*' | awk '{print $2}'; }

# start_squid USER PASSWORD: Debian's squid, in its own namespace on the wan at
# $PROXY_IP:$PROXY_PORT, allowing CONNECT to port 443 only, to USER with Basic
# authentication (basic_ncsa_auth; the hash is an APR1 one made by openssl), nothing else.
# Sets SQUID_DIR (cache.log, access.log, squid.out). Combine with proxy_only_way_out.
PROXY_IP=192.0.2.5
PROXY_PORT=3128
NS_PRX=$P-prx
start_squid() {
    ALL_NS+=("$NS_PRX")
    ip netns add "$NS_PRX"
    ip -n "$NS_PRX" link set lo up
    veth "$NS_PRX" eth0 "$NS_WAN" p0
    ip -n "$NS_WAN" link set p0 master br0
    ip -n "$NS_PRX" addr add "$PROXY_IP/24" dev eth0
    # Started as root, squid runs as its own user (proxy on Debian): its files are that
    # user's, outside $WORK (mode 0700).
    local user=proxy
    id -u "$user" >/dev/null 2>&1 || user=nobody
    SQUID_DIR=$(mktemp -d "/tmp/$P-squid.XXXX")
    EXTRA_DIRS+=("$SQUID_DIR")
    printf '%s:%s\n' "$1" "$(printf '%s' "$2" | openssl passwd -apr1 -stdin)" >"$SQUID_DIR/passwd"
    cat >"$SQUID_DIR/squid.conf" <<EOF
http_port $PROXY_IP:$PROXY_PORT
cache_effective_user $user
pid_filename $SQUID_DIR/squid.pid
cache_log $SQUID_DIR/cache.log
access_log stdio:$SQUID_DIR/access.log
netdb_filename none
pinger_enable off
visible_hostname mcvpn-test-proxy
# Its resolver on loopback, never the host's: the tests send nothing out of their namespaces.
dns_nameservers 127.0.0.1
coredump_dir $SQUID_DIR
cache deny all
cache_mem 8 MB
shutdown_lifetime 1 second
auth_param basic program /usr/lib/squid/basic_ncsa_auth $SQUID_DIR/passwd
auth_param basic children 2 startup=1
auth_param basic realm mcvpn test proxy
acl SSL_ports port 443
acl CONNECT method CONNECT
acl users proxy_auth REQUIRED
http_access deny !CONNECT
http_access deny CONNECT !SSL_ports
http_access allow CONNECT users
http_access deny all
EOF
    chown -R "$user" "$SQUID_DIR"
    chmod 755 "$SQUID_DIR"
    ip netns exec "$NS_PRX" squid -N -f "$SQUID_DIR/squid.conf" >>"$SQUID_DIR/squid.out" 2>&1 &
    wait_until 20 "squid listening on $PROXY_IP:$PROXY_PORT" tcp_listening "$NS_PRX" "$PROXY_PORT"
}

# proxy_only_way_out: the client's router forwards nothing from its LAN but TCP to the proxy
# (a corporate network: no UDP, no direct TCP, not even to port 443).
proxy_only_way_out() {
    in_ns "$NS_RTC" nft -f - <<EOF
table inet mcvt_proxy_only {
    chain forwarding {
        type filter hook forward priority 0;
        iifname "lan0" ip daddr $PROXY_IP tcp dport $PROXY_PORT accept
        iifname "lan0" counter drop
    }
}
EOF
}

# no_client_left NS NAME: nothing of a failed `mcvpn up` is left: no TUN, no process in the
# namespace, and `mcvpn status` says not running (3, the LSB's).
no_client_left() {
    local ns=$1 name=$2 rc=0
    if ip -n "$ns" link show mcvpn0 >/dev/null 2>&1; then
        fail "mcvpn0 is left in $ns"
        rc=1
    fi
    if [ -n "$(ip netns pids "$ns")" ]; then
        fail "processes left in $ns: $(ip netns pids "$ns" | xargs -r ps -o pid=,args= -p)"
        rc=1
    fi
    set +e
    client_status "$name" >/dev/null 2>&1
    local st=$?
    set -e
    if [ "$st" -ne 3 ]; then
        fail "mcvpn status after the failed up: status $st (want 3, not running)"
        rc=1
    fi
    return "$rc"
}

# make_payload [MiB]: $WORK/payload, random, 64 MiB unless told.
make_payload() { head -c $((${1:-64} << 20)) /dev/urandom >"$WORK/payload"; }

# start_transfer DEST_NS DEST_IP SRC_NS: sends $WORK/payload from SRC_NS to DEST_IP:5001
# with xfer.py in the background; check_transfer waits for it and compares the sha256.
start_transfer() {
    ip netns exec "$1" python3 "$ROOT/netns-tests/xfer.py" recv 5001 "$WORK/received" --timeout 120 >"$WORK/recv.json" &
    XFER_RECV_PID=$!
    wait_until 10 "the receiver listening" tcp_listening "$1" 5001
    ip netns exec "$3" python3 "$ROOT/netns-tests/xfer.py" send "$2" 5001 "$WORK/payload" >"$WORK/send.json" &
    XFER_SEND_PID=$!
}

# check_transfer LABEL: waits for start_transfer's two ends; PASS when both saw the same
# sha256 over the payload's full size. Sets MBIT (the sender's figure).
check_transfer() {
    local label=$1 size sent got
    wait "$XFER_SEND_PID" || fail "$label: send failed"
    wait "$XFER_RECV_PID" || fail "$label: receive failed"
    size=$(stat -c %s "$WORK/payload")
    sent=$(json_get "['sha256']" <"$WORK/send.json" 2>/dev/null || echo none)
    got=$(json_get "['sha256']" <"$WORK/recv.json" 2>/dev/null || echo none)
    MBIT=$(json_get "['mbit_s']" <"$WORK/send.json" 2>/dev/null || echo 0)
    if [ "$sent" = "$got" ] && [ "$(json_get "['bytes']" <"$WORK/recv.json")" = "$size" ]; then
        pass "$label: $((size >> 20)) MiB, sha256 $got on both ends, $MBIT Mbit/s"
    else
        fail "$label: sha256 mismatch or short (sent $sent, received $got)"
        return 1
    fi
}

transfer_ok() { # transfer_ok DEST_NS DEST_IP SRC_NS LABEL
    start_transfer "$1" "$2" "$3"
    check_transfer "$4"
}

# hub_https_stats: the hub's "https" counters, for the log.
hub_https_stats() {
    "$MCVPN" hub stats --status-socket "$HUB_SOCK" --json 2>/dev/null |
        python3 -c 'import json,sys; print(json.load(sys.stdin).get("https", "none"))' 2>/dev/null || echo unavailable
}

# now: seconds since the epoch, with fractions; elapsed T0: seconds since T0, 2 decimals.
now() { date +%s.%N; }
elapsed() { python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.2f}')" "$1" "$(now)"; }
le() { python3 -c "import sys; sys.exit(0 if float(sys.argv[1]) <= float(sys.argv[2]) else 1)" "$1" "$2"; } # le A B: A <= B
