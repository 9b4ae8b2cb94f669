#!/usr/bin/env bash
# The hub restarts: client and target come back within 30 s with the same overlay
# addresses, and the tunnel carries traffic again.
source "$(dirname "$0")/lib.sh"
alice_and_her_target
client_up "$NS_CLI" c1 alice || die "up failed"
CIP=$(client_status c1 | json_get "['overlay_ip']")
in_ns "$NS_CLI" ping -c 2 -i 0.2 -W 2 "$TIP" >/dev/null || die "no tunnel before the restart"

stop_hub
sleep 2
start_hub
t0=$SECONDS
both_back() {
    target_connected && client_status c1 | python3 -c "import json,sys; s=json.load(sys.stdin); sys.exit(0 if s['connected'] and s['relay_bound'] else 1)"
}
wait_until 30 "client and target reconnected" both_back && pass "both sides reconnected $((SECONDS - t0)) s after the hub came back"
[ "$(target_ip)" = "$TIP" ] && pass "target kept $TIP" || fail "target address changed"
[ "$(client_status c1 | json_get "['overlay_ip']")" = "$CIP" ] && pass "client kept $CIP" || fail "client address changed"
wait_until 10 "ping after the hub restart" in_ns "$NS_CLI" ping -c 1 -W 1 "$TIP" && pass "tunnel carries traffic after the hub restart"
