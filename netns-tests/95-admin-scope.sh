#!/usr/bin/env bash
# Account administrators work through the hub, from the client side, within their own
# contract: alice administers acme, gus administers globex. Alice can add and manage
# acme's accounts; anything of globex is refused, logged, and unreachable for her.
# Users change their own passwords under the hub's policy.
source "$(dirname "$0")/lib.sh"
topo_up
start_hub
add_account acme alice alice-password-1
add_account globex gus gus-password-123
admin contract admin acme alice >/dev/null
admin contract admin globex gus >/dev/null

# gus enrols globex's target.
enroll_target gus globex-pc
start_target
GIP=$(target_ip)

as_alice() { in_ns "$NS_CLI" "$MCVPN" admin --hub "$HUB_URL" --as alice --admin-password-file "$WORK/pw-alice" "$@"; }
printf 'bob-password-42\n' >"$WORK/pw-bob"
as_alice account add bob --password-file "$WORK/pw-bob" >/dev/null && pass "alice added bob to acme through the hub" || fail "alice could not add bob"
accounts=$(as_alice --json account list | python3 -c "import json,sys; print(' '.join(sorted(a['account'] for a in json.load(sys.stdin))))")
[ "$accounts" = "alice bob" ] && pass "alice sees acme's accounts only: $accounts" || fail "alice sees: $accounts"
as_alice account lock bob >/dev/null && pass "alice locked bob" || fail "alice could not lock bob"

denied() { # denied LABEL ARGS...
    local label=$1
    shift
    set +e
    out=$(as_alice "$@" 2>&1)
    rc=$?
    set -e
    if [ "$rc" -eq 3 ] && [[ $out == *"not allowed"* ]]; then pass "$label refused: ${out##*not allowed: }"; else fail "$label: status $rc: $out"; fi
}
# Another contract's names are answered as names that do not exist (review C10).
missing() { # missing LABEL ARGS...
    local label=$1
    shift
    set +e
    out=$(as_alice "$@" 2>&1)
    rc=$?
    set -e
    if [ "$rc" -ne 0 ] && [[ $out == *"no "*" named"* ]]; then pass "$label answered as missing: ${out##*mcvpn: }"; else fail "$label: status $rc: $out"; fi
}
missing "listing globex's accounts" account list --contract globex
missing "locking gus" account lock gus
missing "resetting gus's password" account password gus --password-file "$WORK/pw-bob"
missing "showing globex" contract show globex
missing "granting globex's target" target grant globex-pc alice
denied "suspending a contract" contract suspend acme --reason x
[ "$(as_alice --json target list)" = "[]" ] && pass "globex's target is not listed for alice" || fail "alice sees globex's target"
[ "$(admin account list --json | python3 -c "import json,sys; print([a['state'] for a in json.load(sys.stdin) if a['account']=='gus'][0])")" = active ] \
    && pass "gus is untouched" || fail "gus was changed"
denials=$(admin log --json --limit 500 | python3 -c "import json,sys; print(sum(1 for e in json.load(sys.stdin) if e['action']=='admin.denied' and e['actor']=='admin:alice'))")
[ "$denials" -ge 6 ] && pass "$denials refused attempts are in the audit log" || fail "only $denials denials logged"

set +e
out=$(in_ns "$NS_CLI" "$MCVPN" admin --hub "$HUB_URL" --as bob --admin-password-file "$WORK/pw-bob" account list 2>&1)
set -e
[[ $out == *"not the administrator"* || $out == *"locked"* ]] && pass "bob is no administrator: ${out##*mcvpn: }" || fail "bob got in: $out"

# Alice's client cannot reach globex's target: no peer, no route, and the relay drops a forced attempt.
client_up "$NS_CLI" alice alice >/dev/null || die "alice up failed"
[ -z "$(peer_field alice "$GIP" name)" ] && pass "alice was not told about globex-pc" || fail "alice sees globex-pc"
TARGET_NODE=$(admin target list --json | json_get "[0]['node']")
before=$(hub_stat dropped_unauthorised)
in_ns "$NS_CLI2" "$MCVPN" debug relay-probe --hub "$HUB_URL" --account alice --password-file "$WORK/pw-alice" --to-node "$TARGET_NODE" --count 10 >/dev/null
after=$(hub_stat dropped_unauthorised)
[ $((after - before)) -ge 10 ] && pass "the hub dropped alice's datagrams to globex-pc" || fail "dropped_unauthorised rose by $((after - before))"

# Client devices (issue 11): alice lists acme's, not globex's, and removing her online
# laptop ends its live session at once (the command runs through the hub).
missing "listing gus's devices" device list --account gus
missing "removing gus's devices" device remove gus globex-pc
devices=$(as_alice --json device list)
accounts=$(echo "$devices" | python3 -c "import json,sys; print(' '.join(sorted(set(d['account'] for d in json.load(sys.stdin)))))")
[ "$accounts" = alice ] && pass "alice lists acme's client devices only: $(echo "$devices" | python3 -c "import json,sys; print(len(json.load(sys.stdin)))") of alice" || fail "alice lists devices of: $accounts"
LAPTOP=$(echo "$devices" | python3 -c "import json,sys; print([d['node'] for d in json.load(sys.stdin) if d['online']][0])")
as_alice device remove alice "$LAPTOP" >/dev/null && pass "alice removed her laptop (node $LAPTOP)" || fail "device remove failed"
live_sessions_of_alice() { admin session list --json | python3 -c "import json,sys; print(sum(1 for s in json.load(sys.stdin) if s['account']=='alice'))"; }
alice_offline() { [ "$(live_sessions_of_alice)" = 0 ]; }
if wait_until 5 "the end of the laptop's session" alice_offline; then
    pass "the laptop's live session ended: $(admin session list --all --json | python3 -c "import json,sys; print('; '.join(s['device'] + ': ' + str(s['end_reason']) for s in json.load(sys.stdin) if s['account']=='alice'))")"
fi
[ -z "$(as_alice --json device list | python3 -c "import json,sys; print(' '.join(str(d['node']) for d in json.load(sys.stdin) if d['node']==$LAPTOP))")" ] && pass "the laptop is no longer listed" || fail "the laptop is still listed"

# Own password change (art. 10) with the policy.
printf 'alice-password-1\nshort\n' >"$WORK/passwd-bad"
set +e
out=$(in_ns "$NS_CLI" env $(client_envs alice) "$MCVPN" passwd --password-file "$WORK/passwd-bad" 2>&1)
rc=$?
set -e
[ "$rc" -ne 0 ] && [[ $out == *"12 characters"* ]] && pass "weak new password refused: ${out##*mcvpn: }" || fail "weak password: $rc $out"
printf 'alice-password-1\na much better passphrase\n' >"$WORK/passwd-good"
in_ns "$NS_CLI" env $(client_envs alice) "$MCVPN" passwd --password-file "$WORK/passwd-good" >/dev/null && pass "alice changed her password" || fail "passwd failed"
printf 'a much better passphrase\n' >"$WORK/pw-alice"
as_alice account list >/dev/null && pass "the new password works" || fail "the new password does not work"
