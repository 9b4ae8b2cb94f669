#!/usr/bin/env bash
# Issue 12 test 6: a middlebox resets the node's TCP connections mid-session. The client
# is on HTTPS (UDP blocked at its NAT); then its router answers every established segment
# to the hub with a TCP reset until one has been reset, and lets new connections through.
# The client must reconnect on its own and ping must work again within 10 s of the reset,
# with the same overlay address.
source "$(dirname "$0")/lib.sh"
RECOVER_MAX_S=10
alice_and_her_target
block_udp "$NS_RTC"
client_up "$NS_CLI" c1 alice >"$WORK/up.out" 2>&1 || die "mcvpn up with UDP blocked failed: $(cat "$WORK/up.out")"
transport_is c1 https && pass "client on https" || die "client transport \"$(client_transport c1)\" (want https)"
wait_until 10 "ping over https" in_ns "$NS_CLI" ping -c 1 -W 1 "$TIP" || die "no ping over https"
overlay=$(client_status c1 | json_get "['overlay_ip']")
log "client's TCP connections to the hub: $(in_ns "$NS_CLI" ss -Htn "dst $HUB_IP" | awk '{print $4 "->" $5}' | xargs)"

reset_tcp_to_hub ON
# Traffic through the tunnel makes the client send on its connection: the rule resets it.
deadline=$((SECONDS + 10))
while [ "$(reset_count)" -eq 0 ] && [ "$SECONDS" -lt "$deadline" ]; do
    in_ns "$NS_CLI" ping -c 1 -W 0.2 "$TIP" >/dev/null 2>&1 || true
done
t0=$(now)
resets=$(reset_count)
reset_tcp_to_hub OFF
[ "$resets" -gt 0 ] || die "no segment was reset in 10 s: the middlebox did not act"
log "the middlebox reset $resets segment(s); waiting for ping"
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
    pass "ping resumed $back_s s after the reset (<= $RECOVER_MAX_S s)"
else
    fail "ping resumed: $ok after $back_s s (want within $RECOVER_MAX_S s)"
fi
log "client's TCP connections to the hub now: $(in_ns "$NS_CLI" ss -Htn "dst $HUB_IP" | awk '{print $4 "->" $5}' | xargs)"
[ "$(client_status c1 | json_get "['overlay_ip']")" = "$overlay" ] && pass "same overlay address $overlay" ||
    fail "overlay address changed"
grep -qiE 'reset|reconnect' "$WORK/c1/client.log" 2>/dev/null && log "client log: $(grep -iE 'reset|reconnect' "$WORK/c1/client.log" | tail -n 2 | xargs)" || true
# And it keeps working: a short transfer.
make_payload 8
transfer_ok "$NS_TGT" "$TIP" "$NS_CLI" "after the reconnect" || true
