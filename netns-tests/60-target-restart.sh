#!/usr/bin/env bash
# The target's service restarts: the client's tunnel works again within 15 s, with no
# action from the user.
source "$(dirname "$0")/lib.sh"
alice_and_her_target
client_up "$NS_CLI" c1 alice || die "up failed"
in_ns "$NS_CLI" ping -c 2 -i 0.2 -W 2 "$TIP" >/dev/null || die "no tunnel before the restart"

stop_target TERM
start_target
t0=$SECONDS
if wait_until 15 "ping through the restarted target" in_ns "$NS_CLI" ping -c 1 -W 1 "$TIP"; then
    pass "tunnel back $((SECONDS - t0)) s after the target restarted"
fi
[ "$(target_ip)" = "$TIP" ] && pass "target kept its overlay address" || fail "target address changed"
