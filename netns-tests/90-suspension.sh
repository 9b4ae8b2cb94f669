#!/usr/bin/env bash
# The operator suspends a contract (art. 23): its live tunnel is cut within one second,
# its logins are refused with the reason, the administrator gets a notice; lifting the
# suspension lets the users back in.
source "$(dirname "$0")/lib.sh"
topo_up
start_hub
add_account acme alice alice-password-1
admin contract set acme admin-email it@acme.example >/dev/null
enroll_target alice
start_target
TIP=$(target_ip)
client_up "$NS_CLI" c1 alice || die "up failed"
in_ns "$NS_CLI" ping -c 2 -i 0.2 -W 2 "$TIP" >/dev/null || die "no tunnel before the suspension"

# Ping every 20 ms with timestamps; suspend in the middle; find the last reply.
ip netns exec "$NS_CLI" ping -D -i 0.02 -W 1 "$TIP" >"$WORK/ping.log" 2>&1 &
PING=$!
sleep 1
t_suspend=$(date +%s.%N)
admin contract suspend acme --reason "unpaid invoice" >/dev/null || fail "suspend command failed"
sleep 2
kill "$PING" 2>/dev/null || true
wait "$PING" 2>/dev/null || true
last_reply=$(grep 'bytes from' "$WORK/ping.log" | tail -n 1 | sed 's/^\[\([0-9.]*\)\].*/\1/')
cut_ms=$(python3 -c "print(int((float('$last_reply') - float('$t_suspend')) * 1000))")
log "last reply ${cut_ms} ms after the suspend command"
[ "$cut_ms" -lt 1000 ] && pass "tunnel cut ${cut_ms} ms after the suspension (< 1 s)" || fail "tunnel still answered ${cut_ms} ms after the suspension"

wait_until 5 "client daemon ended by the kick" sh -c "! ip -n $NS_CLI link show mcvpn0" && pass "the client was taken down"
grep -q "suspended" "$WORK/c1/client.log" && pass "the client log says why" || fail "no reason in the client log"

set +e
out=$(client_up "$NS_CLI" c1 alice 2>&1)
rc=$?
set -e
[ "$rc" -eq 3 ] && pass "login refused with status 3" || fail "login while suspended gave $rc"
[[ $out == *"suspended"* ]] && pass "refusal says: ${out##*mcvpn: }" || fail "refusal lacks the reason: $out"

admin notice list --json | python3 -c "
import json,sys
n=json.load(sys.stdin)
sys.exit(0 if any(x['kind']=='suspension' and x['to']=='it@acme.example' for x in n) else 1)" \
    && pass "suspension notice queued for it@acme.example" || fail "no suspension notice"

admin contract resume acme >/dev/null
client_up "$NS_CLI" c1 alice >/dev/null && pass "login works again after the suspension is lifted" || fail "still refused after resume"
# The target was cut too; it asks again every 5 s and is let in once the suspension is lifted.
wait_until 15 "tunnel back" in_ns "$NS_CLI" ping -c 1 -W 1 "$TIP" && pass "tunnel works again"
