#!/usr/bin/env bash
# The outage monitor (art. 35-1): `mcvpn monitor` probes the hub end to end every 3 s
# (login, bind, relay datagrams to its own probe target and back). The hub is stopped
# for OUTAGE_S seconds (120 by default, as issue 18 asks) and started again: exactly one
# outage is recorded on the hub through the monitor login, its start within one probe
# interval after the hub stopped and its end within one probe interval after it came
# back; the operator gets the two alert mails. A monitor login may record and list
# outages and nothing else; a wrong password gets the same refusal as an unknown name.
source "$(dirname "$0")/lib.sh"
OUTAGE_S=${OUTAGE_S:-120}
INTERVAL=3
SMTP_PORT=2525
MAIL_DIR=$WORK/mail
MON_DIR=$WORK/monitor
METRICS=127.0.0.1:9191

topo_up
start_hub
add_account mcvpn-probe probe probe-password-1
printf '%s\n' 'watch-password-1' >"$WORK/pw-watch1"
admin operator add watch1 --role monitor --password-file "$WORK/pw-watch1" >/dev/null || die "operator add failed"
contains "watch1 *monitor" admin operator list && pass "operator list shows watch1 as monitor" || fail "$(admin operator list)"

# The monitor login over the admin channel: outages yes, anything else Forbidden.
as_watch() { in_ns "$NS_CLI" "$MCVPN" admin --hub "$HUB_URL" --as watch1 --operator --admin-password-file "$WORK/pw-watch1" "$@"; }
as_watch outage list >/dev/null && pass "the monitor login lists outages through the hub" || fail "outage list refused"
rc=0
out=$(as_watch contract list 2>&1) || rc=$?
[ "$rc" = 3 ] && [[ $out == *"not for a monitor login"* ]] && pass "contract list refused (exit $rc): $out" \
    || fail "contract list as monitor: exit $rc: $out"
printf 'wrong-password-1\n' >"$WORK/pw-wrong"
wrong=$(in_ns "$NS_CLI" "$MCVPN" admin --hub "$HUB_URL" --as watch1 --operator --admin-password-file "$WORK/pw-wrong" outage list 2>&1 || true)
unknown=$(in_ns "$NS_CLI" "$MCVPN" admin --hub "$HUB_URL" --as nobody --operator --admin-password-file "$WORK/pw-wrong" outage list 2>&1 || true)
[ "$wrong" = "$unknown" ] && [[ $wrong == *"account or password is wrong"* ]] \
    && pass "wrong password and unknown name get the same answer: $wrong" || fail "wrong: $wrong / unknown: $unknown"

# The mail sink and the monitor both live in the client namespace.
ip netns exec "$NS_CLI" ip link set lo up
ip netns exec "$NS_CLI" python3 "$ROOT/netns-tests/smtp_sink.py" 127.0.0.1 "$SMTP_PORT" "$MAIL_DIR" >>"$WORK/smtp-sink.log" 2>&1 &
wait_until 5 "SMTP sink listening" tcp_listening "$NS_CLI" "$SMTP_PORT"
mkdir -p "$MON_DIR"
ip netns exec "$NS_CLI" "$MCVPN" --log info,mcvpn::monitor=debug monitor --hub "$HUB_URL" --interval "$INTERVAL" \
    --probe-account probe --probe-password-file "$WORK/pw-probe" --login watch1 --login-password-file "$WORK/pw-watch1" \
    --state "$MON_DIR/state.json" --metrics-listen "$METRICS" \
    --smtp "smtp://127.0.0.1:$SMTP_PORT" --smtp-from monitor@vpn.example --alert-mail-to noc@vpn.example \
    >>"$WORK/monitor.log" 2>&1 &
# (topo_down, at exit, ends the monitor and the sink with everything in the namespaces.)

metric() { # metric NAME{labels...}: its value on the monitor's endpoint (0 if absent)
    ip netns exec "$NS_CLI" python3 - "$METRICS" "$1" <<'PY'
import sys, urllib.request
body = urllib.request.urlopen(f"http://{sys.argv[1]}/metrics", timeout=2).read().decode()
name = sys.argv[2]
vals = [float(l.rsplit(" ", 1)[1]) for l in body.splitlines() if l.startswith(name)]
print(int(sum(vals)) if vals else 0)
PY
}
probes_ok() { [ "$(metric 'mcvpn_monitor_probes_total{hub="'"$HUB_IP:$HUB_PORT"'",result="ok"}')" -ge 2 ]; }
wait_until 30 "two passing probes" probes_ok && pass "probes pass: $(grep -c 'probe passed' "$WORK/monitor.log") so far, last RTT $(grep 'probe passed' "$WORK/monitor.log" | tail -1 | grep -o 'rtt=[^ ]*')"

stop_hub
t_down=$(date +%s.%N)
log "hub stopped; down for $OUTAGE_S s"
sleep 10
[ "$(metric mcvpn_monitor_outage_open)" = 1 ] && pass "metrics show the outage in progress" || fail "outage_open not 1"
sleep $((OUTAGE_S - 10))
start_hub
t_up=$(date +%s.%N)
log "hub started again"

recorded() { [ "$(admin outage list --json | json_get '.__len__()')" -ge 1 ]; }
wait_until $((INTERVAL * 5)) "outage recorded on the hub" recorded
sleep $((INTERVAL * 2)) # a retry or a second report would show now
admin outage list
python3 - "$t_down" "$t_up" "$INTERVAL" <<EOF && pass "exactly one outage, start and end within one probe interval" || fail "outage figures off"
import json, subprocess, sys
from datetime import datetime
down, up, interval = float(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3])
rows = json.loads(subprocess.check_output(["$MCVPN", "admin", "--db", "$HUB_DB", "outage", "list", "--json"]))
print(f"outages recorded: {len(rows)}")
ok = len(rows) == 1
for r in rows:
    s = datetime.fromisoformat(r["start"].replace("Z", "+00:00")).timestamp()
    e = datetime.fromisoformat(r["end"].replace("Z", "+00:00")).timestamp()
    print(f"source {r['source']}: start {r['start']} = hub stop + {s - down:.1f} s; "
          f"end {r['end']} = hub start + {e - up:.1f} s; recorded {e - s:.1f} s of a true {up - down:.1f} s")
    # Store times are whole seconds: one more second of slack each way.
    ok &= r["source"] == "monitor:watch1" and -1 <= s - down <= interval + 1 and -1 <= e - up <= interval + 1
sys.exit(0 if ok else 1)
EOF
[ "$(metric mcvpn_monitor_outages_recorded_total)" = 1 ] && pass "metrics: one outage recorded, none pending ($(metric mcvpn_monitor_outages_pending))" \
    || fail "outages_recorded_total = $(metric mcvpn_monitor_outages_recorded_total)"

mail_with() { # mail_with TEXT: a message to noc@ whose subject contains TEXT
    python3 - "$MAIL_DIR" "$1" <<'PY'
import glob, json, sys
msgs = [json.load(open(f)) for f in glob.glob(sys.argv[1] + "/msg-*.json")]
sys.exit(0 if any("noc@vpn.example" in m["rcpt_to"] and sys.argv[2] in m["subject"] for m in msgs) else 1)
PY
}
wait_until 10 "outage-started mail" mail_with "outage started" && pass "alert mail: outage started (障害発生)"
wait_until 10 "outage-ended mail" mail_with "outage ended" && pass "alert mail: outage ended (復旧)"
n=$(find "$MAIL_DIR" -name 'msg-*.json' | wc -l)
[ "$n" = 2 ] && pass "exactly two alert mails" || fail "$n alert mails"
[ "$(stat -c %a "$MON_DIR/state.json")" = 600 ] && pass "state file is 0600" || fail "state file mode"
contains "outage.record" admin log && pass "audited as outage.record by operator:watch1" || fail "no outage.record in the audit log"
