#!/usr/bin/env bash
# Several hubs, one PostgreSQL (issue 15, test 4): PostgreSQL restarted under load. The
# hubs keep relaying the sessions they have (a transfer and a ping run through the
# outage); a login while the store is down fails with a clear "store unavailable"; after
# the restart logins work again, and the store holds each session once.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/hubs.sh"
hubs_topo_up
start_pg
for i in 1 2; do start_hub_n "$i"; done
add_account acme alice alice-password-1
add_account beta bob bob-password-12
HUB_URL=$(hub_url_n 1)
enroll_target alice >/dev/null || die "target enrolment failed"
start_target
TIP=$(target_ip)
client_up "$NS_CLI" c1 alice >/dev/null || die "alice's up failed"
in_ns "$NS_CLI" ping -c 2 -i 0.2 -W 2 "$TIP" >/dev/null && pass "tunnel through hub1" || die "no tunnel"

# Load: a 48 MiB transfer paced at 40 Mbit/s (10 s, through the outage), and a ping every 50 ms.
head -c $((48 << 20)) /dev/urandom >"$WORK/payload"
ip netns exec "$NS_TGT" python3 "$ROOT/netns-tests/xfer.py" recv 5001 "$WORK/received" --timeout 120 >"$WORK/recv.json" &
RECV=$!
sleep 0.5
ip netns exec "$NS_CLI" python3 "$ROOT/netns-tests/xfer.py" send "$TIP" 5001 "$WORK/payload" --mbit 40 >"$WORK/send.json" &
SEND=$!
ip netns exec "$NS_CLI" ping -D -i 0.05 -W 1 "$TIP" >"$WORK/ping.log" 2>&1 &
PING=$!
sleep 1

t_down=$(date +%s.%N)
stop_pg immediate
log "PostgreSQL stopped (immediate)"
sleep 2
set +e
out=$(HUB_URL=$(hub_url_n 2) client_up "$NS_CLI2" c2 bob 2>&1)
rc=$?
set -e
if [ "$rc" -ne 0 ] && [[ $out == *unavailable* ]]; then
    pass "a login while the store is down fails clearly (status $rc): ${out##*mcvpn: }"
else
    fail "login while the store is down: status $rc: $out"
fi
sleep 3
start_pg
t_up=$(date +%s.%N)
log "PostgreSQL back after $(python3 -c "print(round($t_up - $t_down, 1))") s"

# Replies to the pings sent while the store was down: relaying never needed it.
during=$(awk -v a="$t_down" -v b="$t_up" -F'[][]' '/bytes from/ { if ($2 > a && $2 < b) n++ } END { print n + 0 }' "$WORK/ping.log")
expected=$(python3 -c "print(int(($t_up - $t_down) / 0.05))")
[ "$during" -ge $((expected * 8 / 10)) ] && pass "$during of ~$expected pings answered while the store was down" \
    || fail "only $during of ~$expected pings answered while the store was down"

bob_up() { HUB_URL=$(hub_url_n 2) client_up "$NS_CLI2" c2 bob >/dev/null 2>&1; }
t0=$SECONDS
wait_until 20 "bob's login after the restart" bob_up && pass "bob logs in again $((SECONDS - t0)) s after the restart"

wait "$SEND" || fail "the transfer's sender failed"
wait "$RECV" || fail "the transfer's receiver failed"
kill "$PING" 2>/dev/null || true
sent=$(json_get "['sha256']" <"$WORK/send.json")
got=$(json_get "['sha256']" <"$WORK/recv.json")
[ "$sent" = "$got" ] && pass "48 MiB through the outage, sha256 equal on both ends" || fail "sha256 mismatch: $sent / $got"

open=$(psql_ "SELECT hub || ':' || count(*) FROM sessions WHERE ended_at IS NULL GROUP BY hub ORDER BY hub" | tr '\n' ' ')
[ "$open" = "hub1:2 hub2:1 " ] && pass "the store holds each live session once ($open)" || fail "open sessions by hub: $open"
