#!/usr/bin/env bash
# `mcvpn down` leaves no interface, route or daemon; a client killed with SIGKILL is
# reported offline to the target within 10 s and leaves no interface either.
source "$(dirname "$0")/lib.sh"
alice_and_her_target

client_up "$NS_CLI" c1 alice || die "up failed"
# The daemon's status socket is root's only (review C7): another user is told to use
# sudo (not "not running") and cannot take the VPN down.
sock_mode=$(stat -c '%a %U' "$WORK/c1/client.sock")
[ "$sock_mode" = "600 root" ] && pass "client.sock is $sock_mode" || fail "client.sock is $sock_mode (want 600 root)"
chmod 711 "$WORK" "$WORK/c1"
as_nobody() { env $(client_envs c1) setpriv --reuid=nobody --regid=nogroup --clear-groups "$MCVPN" "$@" 2>&1; }
rc=0; out=$(as_nobody status) || rc=$?
[ "$rc" = 4 ] && grep -q "sudo" <<<"$out" && pass "status as nobody: exit 4, says to use sudo" \
    || fail "status as nobody: exit $rc: $out"
rc=0; out=$(as_nobody down) || rc=$?
[ "$rc" = 4 ] && client_status c1 >/dev/null && pass "down as nobody refused (exit 4), the client still up" \
    || fail "down as nobody: exit $rc: $out"
ip -n "$NS_CLI" route show | grep -q "$TIP dev mcvpn0" && pass "route to the target while up" || fail "no route to $TIP while up"
client_cmd "$NS_CLI" c1 down || fail "down failed"
ip -n "$NS_CLI" link show mcvpn0 >/dev/null 2>&1 && fail "mcvpn0 still there after down" || pass "no mcvpn0 after down"
ip -n "$NS_CLI" route show | grep -q "100\.64\." && fail "overlay routes left after down" || pass "no overlay route after down"
[ -e "$WORK/c1/client.sock" ] && fail "socket left after down" || pass "no socket left after down"
contains "not running" client_cmd "$NS_CLI" c1 down && pass "second down says not running" || fail "second down"

# A bare `up` works: hub and account were remembered.
in_ns "$NS_CLI" env $(client_envs c1) "$MCVPN" up --password-file "$WORK/pw-alice" >/dev/null && pass "bare up uses the remembered hub and account" || fail "bare up failed"
CIP=$(client_status c1 | json_get "['overlay_ip']")
# Functions, so that wait_until re-reads the status at every poll.
target_sees_client() { [ "$(peer_field target "$CIP" online)" = "$1" ]; }
wait_until 10 "target sees the client online" target_sees_client True
PID=$(client_status c1 | json_get "['pid']")
kill -KILL "$PID"
t0=$SECONDS
if wait_until 10 "target told the client is offline" target_sees_client False; then
    pass "target saw the killed client go offline after $((SECONDS - t0)) s"
fi
wait_until 5 "mcvpn0 gone with the killed daemon" sh -c "! ip -n $NS_CLI link show mcvpn0" && pass "no mcvpn0 after SIGKILL"
