#!/usr/bin/env bash
# Issue 15, failover: three hubs of one operator (one key file, one store), a client and
# a target through a three-hub server URL. During a transfer the hub they are on is
# SIGKILLed: both must move to another hub, keep their overlay addresses, and ping must
# work again within 10 s (measured and printed); the transfer under way finishes intact
# and a new 8 MiB transfer has equal sha256 on both ends. Then the same with the client
# on the HTTPS transport (its first connect skipping the dead hub), killing the second. The hubs' logs, the nodes'
# status and the figures are kept in target/netns-artefacts/150-hub-failover/.
source "$(dirname "$0")/lib.sh"
# The shared store: a throw-away PostgreSQL in its own namespace (hubs.sh), and the
# three hubs each in its own namespace.
source "$(dirname "$0")/hubs.sh"
HUB_IPS=("$HUB_IP" 192.0.2.11 192.0.2.12) # 0-based here
HUB_PIDS=()
BOUND_S=10
ARTEFACTS=$ROOT/target/netns-artefacts/$TEST_NAME

keep_artefacts() {
    rm -rf "$ARTEFACTS"
    mkdir -p "$ARTEFACTS"
    cp "$WORK"/hub-*.log "$WORK"/target.log "$WORK"/c1/client.log "$ARTEFACTS"/ 2>/dev/null || true
    client_status c1 >"$ARTEFACTS/client-status.json" 2>/dev/null || true
    target_status >"$ARTEFACTS/target-status.json" 2>/dev/null || true
    printf '%s\n' "${FIGURES[@]}" >"$ARTEFACTS/figures.txt"
}
FIGURES=()

start_hub_n() { # start_hub_n N: hub N (0-based) on ${HUB_IPS[N]}, sharing the key and the store
    local ip=${HUB_IPS[$1]}
    ip netns exec "${HUB_NSS[$1 + 1]}" "$MCVPN" hub --name "hub$1" --listen "$ip:$HUB_PORT" --db "$HUB_DB" --key "$HUB_KEY" \
        --https-listen "$ip:$HUB_HTTPS_PORT" --status-socket "$WORK/hub-$1.sock" >>"$WORK/hub-$1.log" 2>&1 &
    HUB_PIDS[$1]=$!
    wait_until 10 "hub $1 status socket" "$MCVPN" hub stats --status-socket "$WORK/hub-$1.sock"
}

# Which hub (index into HUB_IPS) a status document says the node is on.
hub_index_of() { # hub_index_of IP:PORT
    local i
    for i in "${!HUB_IPS[@]}"; do
        [ "$1" = "${HUB_IPS[$i]}:$HUB_PORT" ] && echo "$i" && return 0
    done
    echo none
}
client_hub() { hub_index_of "$(client_status c1 | json_get "['current_hub']")"; }
target_hub() { hub_index_of "$(target_status | json_get "['current_hub']")"; }

kill_hub() { # kill_hub N: SIGKILL, and reap it without the shell's "Killed" line
    kill -KILL "${HUB_PIDS[$1]}"
    { wait "${HUB_PIDS[$1]}"; } 2>/dev/null || true
}
# ping_back LABEL: after a hub's SIGKILL at $t0, pings until the target answers; sets BACK.
ping_back() {
    until in_ns "$NS_CLI" ping -c 1 -W 0.5 "$TIP" >/dev/null 2>&1; do
        le "$(elapsed "$t0")" 30 || break
    done
    BACK=$(elapsed "$t0")
    FIGURES+=("$1: ping back $BACK s after the hub's SIGKILL (bound $BOUND_S s)")
    log "$1: ping works again $BACK s after the SIGKILL"
    le "$BACK" "$BOUND_S" && pass "$1: traffic flows again within $BOUND_S s ($BACK s)" || fail "$1: traffic back only after $BACK s"
}

hubs_topo_up
start_pg
for n in 0 1 2; do start_hub_n "$n"; done
# One URL naming the three hubs: the key (and HTTPS port) of the first hub's URL.
ONE_URL=$("$MCVPN" hub url --key "$HUB_KEY" --listen "$HUB_IP:$HUB_PORT")
LIST=$(printf '%s:'"$HUB_PORT"',' "${HUB_IPS[@]}")
HUB_URL=$(printf '%s' "$ONE_URL" | sed "s|^mcvpn://[^/]*/|mcvpn://${LIST%,}/|")
log "server URL: $HUB_URL"
case "$HUB_URL" in mcvpn://*,*,*/\?key=*) ;; *) die "not a three-hub URL: $HUB_URL" ;; esac

add_account acme alice alice-password-1
enroll_target alice >/dev/null || die "enrolment through the three-hub URL failed"
start_target
TIP=$(target_ip)
client_up "$NS_CLI" c1 alice >/dev/null || die "mcvpn up through the three-hub URL failed"
CIP=$(client_status c1 | json_get "['overlay_ip']")
in_ns "$NS_CLI" ping -c 2 -i 0.2 -W 2 "$TIP" >/dev/null && pass "ping $TIP through the hub" || die "no tunnel"
ON=$(client_hub)
[ "$ON" = 0 ] && [ "$(target_hub)" = 0 ] && pass "client and target start on the first hub of the URL" ||
    fail "client on hub $ON, target on hub $(target_hub): the first connect should take the first hub"
contains "on hub:     ${HUB_IPS[0]}:$HUB_PORT" client_cmd "$NS_CLI" c1 status && pass "mcvpn status shows the current hub" ||
    fail "mcvpn status does not show the current hub"

# A transfer under way when the hub dies (256 MiB: over a second even on a fast machine).
make_payload 256
start_transfer "$NS_TGT" "$TIP" "$NS_CLI"
sleep 0.3
UNDER_WAY=no
kill -0 "$XFER_SEND_PID" 2>/dev/null && UNDER_WAY=yes
t0=$(now)
kill_hub "$ON"
log "SIGKILLed hub $ON (${HUB_IPS[$ON]}); the transfer still under way: $UNDER_WAY"
ping_back "UDP"

NEW=$(client_hub)
[ "$NEW" != "$ON" ] && [ "$NEW" != none ] && pass "the client moved to hub $NEW (${HUB_IPS[$NEW]})" || fail "client on hub $NEW"
[ "$(target_hub)" = "$NEW" ] && pass "the target moved to the same hub" || fail "target on hub $(target_hub), client on $NEW"
[ "$NEW" = $(((ON + 1) % 3)) ] && pass "round robin: the hub after the one that died" || fail "expected hub $(((ON + 1) % 3)), got $NEW"
[ "$(client_status c1 | json_get "['overlay_ip']")" = "$CIP" ] && pass "client kept $CIP" || fail "client address changed"
[ "$(target_ip)" = "$TIP" ] && pass "target kept $TIP" || fail "target address changed"
grep -q "moved to another hub" "$WORK/c1/client.log" && pass "the client's log names the move" || fail "no move in the client's log"
if [ "$UNDER_WAY" = yes ]; then
    check_transfer "the transfer cut by the failover" || true
else
    check_transfer "the transfer started before the kill (it ended first)" || true
fi

make_payload 8
t1=$(now)
transfer_ok "$NS_TGT" "$TIP" "$NS_CLI" "a new transfer after the failover"
FIGURES+=("8 MiB after the failover: $MBIT Mbit/s, $(elapsed "$t1") s")
forwarded=$("$MCVPN" hub stats --status-socket "$WORK/hub-$NEW.sock" --json | json_get "['relay']['forwarded']")
[ "$forwarded" -gt 5000 ] && pass "hub $NEW relayed $forwarded datagrams" || fail "hub $NEW relayed only $forwarded datagrams"
# The HTTPS transport: the client again, everything over the WebSocket. Its first connect
# finds the first hub dead and takes the next; then that hub dies too.
client_cmd "$NS_CLI" c1 down >/dev/null || fail "mcvpn down failed"
client_up "$NS_CLI" c1 alice --transport https >/dev/null || die "mcvpn up --transport https with hub $ON dead failed"
wait_until 10 "ping over HTTPS" in_ns "$NS_CLI" ping -c 1 -W 1 "$TIP" && pass "the first connect skipped the dead hub"
[ "$(client_transport c1)" = https ] && pass "the client's datagrams go over HTTPS" || fail "transport $(client_transport c1)"
ON=$(client_hub)
[ "$ON" = "$NEW" ] && pass "the client is on hub $ON over HTTPS" || fail "client on hub $ON over HTTPS, target on $NEW"
t0=$(now)
kill_hub "$ON"
log "SIGKILLed hub $ON (${HUB_IPS[$ON]})"
ping_back "HTTPS"
NEW=$(client_hub)
[ "$NEW" = $(((ON + 1) % 3)) ] && [ "$(target_hub)" = "$NEW" ] && pass "client (HTTPS) and target (UDP) on hub $NEW" ||
    fail "client on hub $NEW, target on $(target_hub), want $(((ON + 1) % 3))"
[ "$(client_transport c1)" = https ] && pass "still over HTTPS after the move" || fail "transport $(client_transport c1)"
make_payload 8
transfer_ok "$NS_TGT" "$TIP" "$NS_CLI" "8 MiB over HTTPS after the second failover"
FIGURES+=("8 MiB over HTTPS after the second failover: $MBIT Mbit/s")

# Nothing duplicated in the store: one client device and one target, as before the move.
count() { python3 -c "import json,sys; print(len(json.load(sys.stdin)))"; }
devices=$(admin device list --account alice --json | count)
targets=$(admin target list --json | count)
FIGURES+=("alice's client devices in the store: $devices, targets: $targets")
[ "$devices" = 1 ] && [ "$targets" = 1 ] && pass "the store holds one client device and one target, none duplicated" ||
    fail "the store holds $devices client devices and $targets targets (want 1 and 1)"
# The killed hubs' sessions are closed by the hub holding the jobs lease once their
# heartbeat is 10 s old: the store then holds exactly the two live sessions, on the hub
# both nodes are on now.
open_sessions() { psql_ "SELECT string_agg(hub, ',' ORDER BY hub) FROM sessions WHERE ended_at IS NULL"; }
t2=$(now)
two_open() { [ "$(psql_ "SELECT count(*) FROM sessions WHERE ended_at IS NULL")" = 2 ]; }
wait_until 30 "the dead hubs' sessions closed in the store" two_open \
    && pass "the store holds the two live sessions only ($(open_sessions)), $(elapsed "$t2") s after the check began"
FIGURES+=("open sessions in the store after both failovers: $(open_sessions)")
keep_artefacts
log "figures and logs in $ARTEFACTS"
