#!/usr/bin/env bash
# A target key registered by one contract does not capture the machine (review finding
# S6, issue 11 item 8). Contract evil registers the public key of acme's office machine
# with `admin target add`; the machine, set up to run for acme, must not end up serving
# evil's users: its key alone does not log in until the machine has enrolled itself
# with an account of the registering contract, and enrolling with acme's account does
# not put it in evil.
source "$(dirname "$0")/lib.sh"
topo_up
start_hub
add_account acme alice alice-password-1
add_account evil mallory mallory-password-1

# The machine's key exists before any enrolment (an enrolment attempt creates it).
mkdir -p "$TGT_DIR"
printf 'not-the-password\n' >"$WORK/pw-wrong"
target_cmd --log info target enroll --hub "$HUB_URL" --account alice --password-file "$WORK/pw-wrong" --name office-pc \
    >"$WORK/enroll-wrong.log" 2>&1 && die "an enrolment with a wrong password succeeded"
KEY=$(grep -ho 'public_key=[A-Za-z0-9+/=_-]*' "$WORK/enroll-wrong.log" | head -1 | cut -d= -f2-)
[ -n "$KEY" ] || die "no key generated: $(cat "$WORK/enroll-wrong.log")"
log "the machine's public key: $KEY"

admin target add mallory --key "$KEY" --name office-pc >"$WORK/add.txt" 2>&1 || die "target add failed: $(cat "$WORK/add.txt")"
log "evil registered it: $(cat "$WORK/add.txt")"

# The machine is set up to run for acme (as `enroll` would have written it).
printf 'hub = "%s"\naccount = "alice"\nname = "office-pc"\n' "$HUB_URL" >"$TGT_DIR/target.toml"
ip netns exec "$NS_TGT" env "${TGT_ENV[@]}" "$MCVPN" target run >>"$WORK/target.log" 2>&1 &
TGT_PID=$!
sleep 4
contract=$(target_status 2>/dev/null | json_get "['contract']" 2>/dev/null || echo "?")
connected=$(target_status 2>/dev/null | json_get "['connected']" 2>/dev/null || echo "?")
log "target run with the key alone: connected=$connected contract=$contract"
if [ "$contract" = evil ]; then
    fail "the machine was captured: it serves contract evil"
elif grep -q "has not enrolled yet" "$WORK/target.log"; then
    pass "the key alone did not put the machine in evil: the hub refused it until the machine enrols"
else
    fail "the target neither ran nor was told why: $(tail -n 3 "$WORK/target.log")"
fi
stop_target

out=$(target_cmd target enroll --hub "$HUB_URL" --account alice --password-file "$WORK/pw-alice" --name office-pc 2>&1) || true
log "enrolment with acme's account: $out"
if admin target list 2>/dev/null | grep office-pc | grep -q mallory && [ "$contract" != evil ]; then
    pass "evil's registration stays unused: acme's enrolment did not make it live"
fi
printf 'hub = "%s"\naccount = "alice"\nname = "office-pc"\n' "$HUB_URL" >"$TGT_DIR/target.toml"
ip netns exec "$NS_TGT" env "${TGT_ENV[@]}" "$MCVPN" target run >>"$WORK/target.log" 2>&1 &
TGT_PID=$!
sleep 4
contract=$(target_status 2>/dev/null | json_get "['contract']" 2>/dev/null || echo "?")
[ "$contract" != evil ] && pass "after acme's enrolment attempt the machine still is not in evil" ||
    fail "after acme's enrolment attempt the machine serves evil"
stop_target
