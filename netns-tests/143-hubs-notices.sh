#!/usr/bin/env bash
# Several hubs, one PostgreSQL (issue 15, test 5): three hubs, each with a mail server,
# run through a renewal date (contracts whose first term renews at the end of next
# month, so the art. 14 reminder is due today in Japan): exactly one reminder per
# contract reaches the SMTP sink, because one hub at a time holds the jobs lease. When
# that hub is killed, another takes the jobs over and a new contract's reminder is
# still sent exactly once.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/hubs.sh"
SMTP_PORT=2525
MAIL_DIR=$WORK/mail
hubs_topo_up
start_pg
ip netns exec "$NS_PG" python3 "$ROOT/netns-tests/smtp_sink.py" "$PG_IP" "$SMTP_PORT" "$MAIL_DIR" >>"$WORK/smtp-sink.log" 2>&1 &
wait_until 5 "SMTP sink listening" sh -c "ip netns exec $NS_PG ss -Hltn 'sport = :$SMTP_PORT' | grep -q ."
for i in 1 2 3; do start_hub_n "$i" --smtp "smtp://$PG_IP:$SMTP_PORT" --smtp-from noc@vpn.example; done

# A start date whose first term ends at the end of next month (Japan time): the
# cancellation deadline is the end of this month, within the 30 days of the reminder.
START=$(python3 -c "
import datetime, zoneinfo
t = datetime.datetime.now(zoneinfo.ZoneInfo('Asia/Tokyo')).date()
m = t.year * 12 + t.month - 1 - 11
print(datetime.date(m // 12, m % 12 + 1, 15))")
log "contracts start on $START (first term ends at the end of next month)"
add_contract() { admin contract add "$1" --admin-email "it@$1.example" --start "$START" >/dev/null; }
for c in acme beta gamma; do add_contract "$c"; done

mails_to() { python3 - "$MAIL_DIR" "$1" <<'PY'
import glob, json, sys
d, to = sys.argv[1:]
print(sum(1 for f in glob.glob(d + "/msg-*.json") if to in json.load(open(f))["rcpt_to"]))
PY
}
all_three_mailed() { for c in acme beta gamma; do [ "$(mails_to "it@$c.example")" -ge 1 ] || return 1; done; }
# The calendar runs every 30 s on the lease holder; the outbox is read every few seconds.
wait_until 75 "a renewal reminder to each contract" all_three_mailed && pass "each contract's renewal reminder was mailed"
holder=$(psql_ "SELECT holder FROM leases WHERE name = 'jobs'")
log "the jobs lease is held by $holder; waiting one more calendar round (35 s)"
sleep 35
for c in acme beta gamma; do
    n=$(mails_to "it@$c.example")
    [ "$n" = 1 ] && pass "$c: exactly one reminder mailed" || fail "$c: $n reminders mailed"
done
rows=$(psql_ "SELECT count(*) FROM notices WHERE kind = 'renewal'")
[ "$rows" = 3 ] && pass "three renewal notices in the outbox, one per contract" || fail "$rows renewal notices in the outbox"
senders=$(grep -l "notice sent" "$WORK"/hub[123].log | xargs -n1 basename | tr '\n' ' ')
log "notices sent by: $senders"

# The holder dies: another hub takes the lease when it expires and runs the jobs.
i=${holder#hub}
stop_hub_n "$i" KILL
log "killed $holder (SIGKILL)"
add_contract delta
delta_mailed() { [ "$(mails_to it@delta.example)" -ge 1 ]; }
t0=$SECONDS
wait_until 90 "delta's reminder after $holder died" delta_mailed && pass "delta's reminder mailed $((SECONDS - t0)) s after $holder died"
new_holder=$(psql_ "SELECT holder FROM leases WHERE name = 'jobs'")
[ "$new_holder" != "$holder" ] && pass "$new_holder took the jobs over from $holder" || fail "the lease is still $holder's"
sleep 5
n=$(mails_to it@delta.example)
[ "$n" = 1 ] && pass "delta: exactly one reminder mailed after the failover" || fail "delta: $n reminders mailed"
for c in acme beta gamma; do
    [ "$(mails_to "it@$c.example")" = 1 ] || fail "$c got another reminder after the failover"
done
