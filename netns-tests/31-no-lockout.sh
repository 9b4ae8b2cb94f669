#!/usr/bin/env bash
# Issue 11 item 3: a stranger guessing alice's password from elsewhere does not lock her
# out. Failures count per (account, source) and per source: the stranger is slowed,
# alice with the right password from her own address gets in at once.
source "$(dirname "$0")/lib.sh"
topo_up
start_hub
add_account acme alice alice-password-1
printf 'not-the-password\n' >"$WORK/pw-guess"

# The stranger: the target's namespace, behind another NAT (another public address).
answers=()
for _ in $(seq 8); do
    set +e
    out=$(client_cmd "$NS_TGT" stranger up --hub "$HUB_URL" --account alice --password-file "$WORK/pw-guess" 2>&1)
    set -e
    case "$out" in
        *"account or password is wrong"*) answers+=(wrong) ;;
        *"too many failed logins"*) answers+=(slowed) ;;
        *) answers+=("other: $out") ;;
    esac
done
log "stranger's 8 guesses answered: ${answers[*]}"
case " ${answers[*]} " in
    *" slowed "*) pass "the stranger is slowed after his free guesses" ;;
    *) fail "the stranger was never slowed: ${answers[*]}" ;;
esac

t0=$(date +%s.%N)
if client_up "$NS_CLI" c1 alice >"$WORK/alice-up.log" 2>&1; then
    secs=$(python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.2f}')" "$t0" "$(date +%s.%N)")
    python3 -c "import sys; sys.exit(0 if float(sys.argv[1]) <= 5 else 1)" "$secs" &&
        pass "alice, right password, own address: in after ${secs} s" ||
        fail "alice got in only after ${secs} s (want <= 5 s)"
else
    fail "alice was locked out by the stranger: $(cat "$WORK/alice-up.log")"
fi
client_cmd "$NS_CLI" c1 down >/dev/null 2>&1 || true
