#!/usr/bin/env bash
# Account B's client cannot reach account A's target: it is not told about it, and a
# client that names A's target anyway is dropped by the hub and counted.
source "$(dirname "$0")/lib.sh"
topo_up
start_hub
add_account acme alice alice-password-1
add_account globex bob bob-password-22
enroll_target alice
start_target
TIP=$(target_ip)
client_up "$NS_CLI" alice alice || die "alice up failed"
client_up "$NS_CLI2" bob bob || die "bob up failed"
in_ns "$NS_CLI" ping -c 2 -i 0.2 -W 2 "$TIP" >/dev/null && pass "alice reaches her target" || fail "alice cannot reach her target"

[ -z "$(peer_field bob "$TIP" name)" ] && pass "bob was not told about alice's target" || fail "bob sees alice's target"
if in_ns "$NS_CLI2" ping -c 2 -i 0.2 -W 1 "$TIP" >/dev/null 2>&1; then fail "bob got a reply from alice's target"; else pass "bob's ping gets no reply"; fi

TARGET_NODE=$(admin target list --json | json_get "[0]['node']")
before=$(hub_stat dropped_unauthorised)
probe=$(in_ns "$NS_CLI2" "$MCVPN" debug relay-probe --hub "$HUB_URL" --account bob --password-file "$WORK/pw-bob" --to-node "$TARGET_NODE" --count 25)
after=$(hub_stat dropped_unauthorised)
log "probe: $probe; dropped_unauthorised $before -> $after"
[ $((after - before)) -ge 25 ] && pass "the hub dropped and counted bob's 25 datagrams to alice's target" || fail "dropped_unauthorised rose by only $((after - before))"
[ "$(printf '%s' "$probe" | json_get "['answers']")" = 0 ] && pass "nothing came back to bob" || fail "bob's probe got answers"
