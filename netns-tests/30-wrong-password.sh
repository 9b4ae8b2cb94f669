#!/usr/bin/env bash
# A refused login says why, exits non-zero (3) and leaves nothing up.
source "$(dirname "$0")/lib.sh"
topo_up
start_hub
add_account acme alice alice-password-1
printf 'not-the-password\n' >"$WORK/pw-wrong"

check_refused() { # check_refused LABEL ACCOUNT PASSWORD_FILE EXPECTED_TEXT
    set +e
    out=$(in_ns "$NS_CLI" env $(client_envs c1) "$MCVPN" up --hub "$HUB_URL" --account "$2" --password-file "$3" 2>&1)
    rc=$?
    set -e
    [ "$rc" -eq 3 ] && pass "$1: exit status 3" || fail "$1: exit status $rc (want 3): $out"
    case "$out" in
        *"$4"*) pass "$1: says \"$4\"" ;;
        *) fail "$1: message lacks \"$4\": $out" ;;
    esac
    if ip -n "$NS_CLI" link show mcvpn0 >/dev/null 2>&1; then fail "$1: mcvpn0 left behind"; else pass "$1: no mcvpn0"; fi
    if client_status c1 >/dev/null 2>&1; then fail "$1: a daemon is still running"; else pass "$1: no daemon left"; fi
}
check_refused "wrong password" alice "$WORK/pw-wrong" "account or password is wrong"
check_refused "unknown account" mallory "$WORK/pw-wrong" "account or password is wrong"
admin account lock alice >/dev/null
check_refused "locked account" alice "$WORK/pw-alice" "is locked"
# Refusals are counted and written once a minute (one row per source and reason, with
# the count), and when the hub stops.
stop_hub
refused=$(admin log --json | python3 -c "import json,sys; print(sum(int(e['detail'].split(' ')[0]) for e in json.load(sys.stdin) if e['action'] == 'login.refused'))")
[ "$refused" -ge 3 ] && pass "the $refused refusals are counted in the audit log" || fail "refusals missing from the audit log ($refused)"
