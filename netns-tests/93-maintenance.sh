#!/usr/bin/env bash
# Planned maintenance (art. 34-2, 35-1), on a simulated clock: the hub runs under
# libfaketime on chosen days of March 2027. A window on 20 March announced 7 days ahead:
# each administrator of two contracts gets one notice on the 13th and one reminder on the
# 19th (mailed to a real SMTP sink), none twice across hub restarts; an outage recorded
# inside the window earns no compensation, a 130-hour one outside it five days. Last, on
# the real clock, a window in progress: `mcvpn up` is accepted and shows the banner with
# its end, and so does `mcvpn status`.
source "$(dirname "$0")/lib.sh"
FAKETIME_LIB=$(dpkg -L libfaketime 2>/dev/null | grep -m1 '/libfaketime.so.1$' || true)
[ -n "$FAKETIME_LIB" ] || die "libfaketime is missing: run scripts/install-deps.sh"
SMTP_PORT=2525
MAIL_DIR=$WORK/mail
# shellcheck disable=SC2034 # read by start_hub in lib.sh
HUB_EXTRA_ARGS=(--smtp "smtp://127.0.0.1:$SMTP_PORT" --smtp-from "noc@vpn.example")

start_sink() {
    ip netns exec "$NS_HUB" python3 "$ROOT/netns-tests/smtp_sink.py" 127.0.0.1 "$SMTP_PORT" "$MAIL_DIR" \
        >>"$WORK/smtp-sink.log" 2>&1 &
    SINK_PID=$!
    wait_until 5 "SMTP sink listening" sink_listening
}
sink_listening() { ip netns exec "$NS_HUB" ss -Hltn "sport = :$SMTP_PORT" | grep -q .; }

# mails SUBJECT_TEXT [TO]: how many mails received whose subject contains SUBJECT_TEXT
mails() {
    python3 - "$MAIL_DIR" "$1" "${2:-}" <<'PY'
import glob, json, sys
d, text, to = sys.argv[1:]
msgs = [json.load(open(f)) for f in glob.glob(d + "/msg-*.json")]
print(sum(1 for m in msgs if text in m["subject"] and (not to or to in m["rcpt_to"])))
PY
}

# hub_on 'YYYY-MM-DD HH:MM:SS' (JST): starts the hub with its clock at that moment
# (advancing; the monotonic clock is left alone so timers run as usual). The library is
# preloaded through env, which execs the hub: the `faketime` wrapper would fork, and
# stop_hub's kill would reach the wrapper rather than the hub.
hub_on() {
    HUB_AS=(env LD_PRELOAD="$FAKETIME_LIB" FAKETIME="@$1" FAKETIME_DONT_FAKE_MONOTONIC=1 TZ=Asia/Tokyo)
    start_hub
    HUB_AS=()
}

# sent_within SECONDS SUBJECT TO: waits for a mail to arrive
one_mail() { [ "$(mails "$1" "$2")" -ge 1 ]; }

topo_up
start_sink
add_account acme alice alice-password-1
add_account beta bob bob-password-1

# 1. The window, added today (real clock) for 20 March 2027, 02:00-05:00 JST.
out=$(admin maintenance add --start 2027-03-20T02:00:00 --end 2027-03-20T05:00:00 \
    --reason "ハブの更新 / hub upgrade") || die "maintenance add failed: $out"
log "$out"
[[ $out == *"notified on 2027-03-13, a reminder on 2027-03-19"* ]] && pass "the notices are planned for the 13th and the 19th" \
    || fail "unexpected plan: $out"

# 2. On the 10th nothing goes out.
hub_on "2027-03-10 09:00:00"
sleep 3
stop_hub
[ "$(mails メンテナンス)" = 0 ] && pass "no maintenance mail on the 10th" || fail "$(mails メンテナンス) mails on the 10th"

# mailed_once DAY WHAT SUBJECT: a hub started on DAY (09:00) mails WHAT to each
# administrator; a restart later that day (18:00) mails none of it again.
mailed_once() {
    local day=$1 what=$2 subject=$3 to n
    hub_on "$day 09:00:00"
    for to in it@acme.example it@beta.example; do
        wait_until 15 "$what to $to" one_mail "$subject" "$to" && pass "$what mailed to $to on $day"
    done
    stop_hub
    hub_on "$day 18:00:00"
    sleep 4
    stop_hub
    n=$(mails "$subject")
    [ "$n" = 2 ] && pass "two of the $what in all after a restart on $day" || fail "$n of the $what after the restart"
}

# 3. On the 13th, one notice to each administrator; 4. on the 19th, one reminder each.
mailed_once 2027-03-13 notice "メンテナンスによるサービス停止"
mailed_once 2027-03-19 reminder "明日のメンテナンス"
n=$(mails "メンテナンス")
[ "$n" = 4 ] && pass "four maintenance mails in all: one notice and one reminder per administrator" \
    || fail "$n maintenance mails"
python3 - "$MAIL_DIR" <<'PY' && pass "the notice is Japanese first, names art. 34 and the local times" || fail "notice text"
import glob, json, sys
m = [json.load(open(f)) for f in sorted(glob.glob(sys.argv[1] + "/msg-*.json")) if "サービス停止" in json.load(open(f))["subject"]][0]
b = m["body"]
ok = b.index("第34条") < b.index("English") and "2027-03-20 02:00:00 +09:00" in b and "hub upgrade" in b
print(b) if not ok else None
sys.exit(0 if ok else 1)
PY

# 5. Compensation: an outage inside the window earns nothing; a 130 h one outside it
#    earns five days (art. 35-1, 35-2).
admin tariff set --annual-fee 12000 >/dev/null
admin outage add --start 2027-03-20T02:00:00 --end 2027-03-20T04:30:00 --note "during the window" >/dev/null
comp() { admin compensation acme --json | json_get "['$1']"; }
[ "$(comp compensation)" = 0 ] && [ "$(comp maintenance_excluded_s)" = 9000 ] \
    && pass "the outage inside the window: 2.5 h excluded, no compensation" || fail "$(admin compensation acme)"
admin outage add --start 2027-04-01T09:00:00 --end 2027-04-06T19:00:00 --note "130 h" >/dev/null
[ "$(comp compensable_days)" = 5 ] && [ "$(comp compensation)" = 1643 ] \
    && pass "a 130 h outage: 5 days, ¥120,000 x 5 / 365 = ¥1,643" || fail "$(admin compensation acme)"
admin compensation acme --statement >"$WORK/statement.txt"
grep -q "130.0時間 → 5日" "$WORK/statement.txt" && grep -q "賠償額: ¥1,643" "$WORK/statement.txt" \
    && pass "the statement: $(grep -m1 '1\. ' "$WORK/statement.txt" | sed 's/^ *//')" || fail "statement: $(cat "$WORK/statement.txt")"

# 6. On the real clock, a window in progress: logins are accepted, and `mcvpn up` and
#    `mcvpn status` show the banner with its end.
start=$(date -d '-10 min' +%Y-%m-%dT%H:%M:%S) end=$(date -d '+50 min' +%Y-%m-%dT%H:%M:%S)
admin --timezone UTC maintenance add --start "$start" --end "$end" --reason "緊急の設備交換 / equipment swap" --emergency >/dev/null \
    || die "emergency window refused"
start_hub
up=$(client_up "$NS_CLI" c1 alice 2>&1) || die "mcvpn up refused during maintenance: $up"
pass "mcvpn up accepted during the window"
grep -q "実施中 / in progress until" <<<"$up" && pass "up shows: $(grep -m1 '実施中' <<<"$up" | sed 's/^ *//')" \
    || fail "no banner in: $up"
st=$(client_cmd "$NS_CLI" c1 status 2>&1)
grep -q "equipment swap" <<<"$st" && pass "status shows the banner too" || fail "no banner in status: $st"
client_cmd "$NS_CLI" c1 down >/dev/null || fail "mcvpn down failed"
kill "$SINK_PID" 2>/dev/null || true
