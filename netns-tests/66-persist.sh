#!/usr/bin/env bash
# Issue 17: a client that comes back after a reboot. `mcvpn up --persist` logs in with
# the password, keeps a resume credential and writes mcvpn-client.service (this machine
# runs no systemd: the command must say so and still write the unit). No file it wrote
# holds the password. Then, as after a reboot, the VPN is down and the unit's own
# ExecStart line is run: it must log in with the resume credential alone (the hub's
# audit log says "via resume") and carry pings. `mcvpn down --persist` removes the unit
# and the credential; `mcvpn status` answers with the LSB's 0 and 3.
source "$(dirname "$0")/lib.sh"
alice_and_her_target
export MCVPN_UNIT_DIR=$WORK/units
UNIT=$MCVPN_UNIT_DIR/mcvpn-client.service
PASSWORD=$(cat "$WORK/pw-alice")

client_cmd "$NS_CLI" c1 up --hub "$HUB_URL" --account alice --resume >"$WORK/no-resume.out" 2>&1 && rc=0 || rc=$?
[ "$rc" = 1 ] && grep -q "up --persist" "$WORK/no-resume.out" &&
    pass "up --resume without a saved login fails (1) and says to run up --persist" ||
    fail "up --resume without a saved login: status $rc, $(cat "$WORK/no-resume.out")"

client_up "$NS_CLI" c1 alice --persist >"$WORK/persist.out" 2>&1 || { cat "$WORK/persist.out"; die "mcvpn up --persist failed"; }
grep -q "systemd is not running" "$WORK/persist.out" && pass "up --persist says systemd is not running here" ||
    fail "up --persist did not say systemd is not running: $(cat "$WORK/persist.out")"
[ -f "$UNIT" ] && pass "the unit file is written" || die "no $UNIT"
grep -q '^ExecStart=.* up --foreground --resume ' "$UNIT" && grep -q '^WantedBy=multi-user.target' "$UNIT" &&
    pass "the unit runs 'up --foreground --resume' at boot" || fail "unit: $(cat "$UNIT")"
[ "$(stat -c %a "$WORK/c1/client.resume")" = 600 ] && pass "the resume credential is mode 600" ||
    fail "the resume credential is mode $(stat -c %a "$WORK/c1/client.resume")"
if grep -rqF -- "$PASSWORD" "$MCVPN_UNIT_DIR" "$WORK/c1"; then
    fail "the password is in a file: $(grep -rlF -- "$PASSWORD" "$MCVPN_UNIT_DIR" "$WORK/c1" | xargs)"
else
    pass "no file written by up --persist holds the password"
fi
[ -s "$WORK/c1/client.log" ] && pass "the background client logs to its log dir (not the run dir's tmpfs by default)" ||
    fail "no client.log"

# "Reboot": the VPN is down, the unit's command line starts the client.
client_cmd "$NS_CLI" c1 down >/dev/null || fail "mcvpn down failed"
client_status c1 >/dev/null && rc=0 || rc=$?
[ "$rc" = 3 ] && pass "status after down: exit 3 (LSB: not running)" || fail "status after down: exit $rc (want 3)"
mapfile -t EXEC < <(python3 -c '
import shlex, sys
line = next(l for l in open(sys.argv[1]) if l.startswith("ExecStart="))
print("\n".join(a.replace("%%", "%") for a in shlex.split(line[len("ExecStart="):])))' "$UNIT")
ip netns exec "$NS_CLI" env -u MCVPN_UNIT_DIR "${EXEC[@]}" >>"$WORK/service.log" 2>&1 &
SERVICE_PID=$!
wait_until 15 "the service's client is up" sh -c "env $(client_envs c1) '$MCVPN' status >/dev/null"
client_status c1 >/dev/null && rc=0 || rc=$?
[ "$rc" = 0 ] && pass "status while running: exit 0" || fail "status while running: exit $rc"
in_ns "$NS_CLI" ping -c 3 -i 0.2 -W 2 "$TIP" >/dev/null && pass "ping $TIP from the client the unit started" || fail "ping $TIP"
contains "via resume" admin log --limit 20 && pass "the hub logged the unit's login 'via resume' (no password)" ||
    fail "no resume login in the audit log: $(admin log --limit 5)"

client_cmd "$NS_CLI" c1 down --persist >"$WORK/down.out" 2>&1 || fail "down --persist failed: $(cat "$WORK/down.out")"
wait "$SERVICE_PID" 2>/dev/null && pass "the service's client exits 0 on mcvpn down (no restart)" || fail "the service's client exited $?"
[ ! -e "$UNIT" ] && [ ! -e "$WORK/c1/client.resume" ] && pass "down --persist removes the unit and the saved login" ||
    fail "left behind: $(ls "$MCVPN_UNIT_DIR" "$WORK/c1")"
