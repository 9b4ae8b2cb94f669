#!/usr/bin/env bash
# Issue 12 test 6: a middlebox resets the node's TCP connections mid-session. The client
# is on HTTPS (UDP blocked at its NAT); then its router answers every established segment
# to the hub with a TCP reset until one has been reset, and lets new connections through.
# The client must reconnect on its own and ping must work again within 10 s of the reset,
# with the same overlay address. Twice: on auto (the control channel on its own TCP
# connection to 51820), then with --transport https (control and data on one link).
source "$(dirname "$0")/lib.sh"
RECOVER_MAX_S=10
alice_and_her_target
block_udp "$NS_RTC"
client_up "$NS_CLI" c1 alice >"$WORK/up.out" 2>&1 || die "mcvpn up with UDP blocked failed: $(cat "$WORK/up.out")"
transport_is c1 https && pass "client on https" || die "client transport \"$(client_transport c1)\" (want https)"
wait_until 10 "ping over https" in_ns "$NS_CLI" ping -c 1 -W 1 "$TIP" || die "no ping over https"
overlay=$(client_status c1 | json_get "['overlay_ip']")
log "client's TCP connections to the hub: $(in_ns "$NS_CLI" ss -Htn "dst $HUB_IP" | awk '{print $4 "->" $5}' | xargs)"

# reset_and_recover LABEL: the middlebox resets the client's established connections to the
# hub until it has reset one, then steps aside; ping must be back within RECOVER_MAX_S.
reset_and_recover() {
    local label=$1 deadline t0 resets ok back_s
    reset_tcp_to_hub ON
    # Traffic through the tunnel makes the client send on its connection: the rule resets it.
    deadline=$((SECONDS + 10))
    while [ "$(reset_count)" -eq 0 ] && [ "$SECONDS" -lt "$deadline" ]; do
        in_ns "$NS_CLI" ping -c 1 -W 0.2 "$TIP" >/dev/null 2>&1 || true
    done
    t0=$(now)
    resets=$(reset_count)
    reset_tcp_to_hub OFF
    [ "$resets" -gt 0 ] || die "$label: no segment was reset in 10 s: the middlebox did not act"
    log "$label: the middlebox reset $resets segment(s); waiting for ping"
    ok=0
    deadline=$((SECONDS + RECOVER_MAX_S + 5))
    while [ "$SECONDS" -lt "$deadline" ]; do
        if in_ns "$NS_CLI" ping -c 1 -W 1 "$TIP" >/dev/null 2>&1; then
            ok=1
            break
        fi
        sleep 0.1
    done
    back_s=$(elapsed "$t0")
    if [ "$ok" = 1 ] && le "$back_s" "$RECOVER_MAX_S"; then
        pass "$label: ping resumed $back_s s after the reset (<= $RECOVER_MAX_S s)"
    else
        fail "$label: ping resumed: $ok after $back_s s (want within $RECOVER_MAX_S s)"
    fi
    log "$label: client's TCP connections to the hub now: $(in_ns "$NS_CLI" ss -Htn "dst $HUB_IP" | awk '{print $4 "->" $5}' | xargs)"
    [ "$(client_status c1 | json_get "['overlay_ip']")" = "$overlay" ] && pass "$label: same overlay address $overlay" ||
        fail "$label: overlay address changed"
}

reset_and_recover "auto (control on TCP 51820, data on the HTTPS link)"
grep -qiE 'reset|reconnect' "$WORK/c1/client.log" 2>/dev/null && log "client log: $(grep -iE 'reset|reconnect' "$WORK/c1/client.log" | tail -n 2 | xargs)" || true

# With --transport https the control channel rides the same WebSocket: the reset takes
# both away at once.
client_cmd "$NS_CLI" c1 down >/dev/null || fail "mcvpn down failed"
client_up "$NS_CLI" c1 alice --transport https >"$WORK/up.out" 2>&1 || die "mcvpn up --transport https failed: $(cat "$WORK/up.out")"
wait_until 10 "ping over https" in_ns "$NS_CLI" ping -c 1 -W 1 "$TIP" || die "no ping with --transport https"
log "--transport https: client's TCP connections to the hub: $(in_ns "$NS_CLI" ss -Htn "dst $HUB_IP" | awk '{print $4 "->" $5}' | xargs)"
reset_and_recover "--transport https (control and data on one HTTPS link)"

# And it keeps working: a short transfer.
make_payload 8
transfer_ok "$NS_TGT" "$TIP" "$NS_CLI" "after the reconnect" || true
