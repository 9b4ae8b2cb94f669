#!/usr/bin/env bash
# Notices by e-mail (art. 23-2, 39): with --smtp the hub mails the suspension notice to
# the contract's administrator within seconds and marks it sent; a notice queued while
# the mail server is down is delivered once it is back; a permanent refusal (550) marks
# the notice undeliverable once, without retries, and starts the five days of art. 24-3
# for a termination; a contract without an administrator e-mail is refused.
source "$(dirname "$0")/lib.sh"
SMTP_PORT=2525
MAIL_DIR=$WORK/mail
# shellcheck disable=SC2034 # read by start_hub in lib.sh
HUB_EXTRA_ARGS=(--smtp "smtp://127.0.0.1:$SMTP_PORT" --smtp-from "noc@vpn.example")

# The sink listens on the hub namespace's loopback: only the hub can reach it.
start_sink() {
    ip netns exec "$NS_HUB" python3 "$ROOT/netns-tests/smtp_sink.py" 127.0.0.1 "$SMTP_PORT" "$MAIL_DIR" nobody@beta.example \
        >>"$WORK/smtp-sink.log" 2>&1 &
    SINK_PID=$!
    wait_until 5 "SMTP sink listening" sink_listening
}

sink_listening() { ip netns exec "$NS_HUB" ss -Hltn "sport = :$SMTP_PORT" | grep -q .; }

stop_sink() {
    kill "$SINK_PID" 2>/dev/null || true
    wait "$SINK_PID" 2>/dev/null || true
}

# mail_has TO TEXT: a received message to TO whose body contains TEXT
mail_has() {
    python3 - "$MAIL_DIR" "$1" "$2" <<'EOF'
import glob, json, sys
d, to, text = sys.argv[1:]
msgs = [json.load(open(f)) for f in glob.glob(d + "/msg-*.json")]
sys.exit(0 if any(to in m["rcpt_to"] and text in m["body"] for m in msgs) else 1)
EOF
}

mail_count() { find "$MAIL_DIR" -name 'msg-*.json' 2>/dev/null | wc -l; }

# notice_field CONTRACT KIND FIELD: FIELD of that notice in `notice list --all --json`
notice_field() {
    admin notice list --all --json | python3 -c "
import json,sys
n=[x for x in json.load(sys.stdin) if x['contract']=='$1' and x['kind']=='$2']
print(n[-1]['$3'] if n else '')"
}

# notice_sent CONTRACT KIND: the notice is marked sent (its "sent" column is a time)
notice_sent() { [[ $(notice_field "$1" "$2" sent) == [0-9]* ]]; }

# notice_error CONTRACT KIND TEXT: the notice is unsent, its last error contains TEXT
notice_error() { [[ $(notice_field "$1" "$2" sent) == "unsent: "*"$3"* ]]; }

topo_up
start_sink
start_hub
grep -q "notices are delivered by e-mail" "$WORK/hub.log" && pass "hub says it delivers notices by e-mail" \
    || fail "no delivery line in the hub log"

# 1. A suspension is mailed to the administrator at once.
add_account acme alice alice-password-1
admin contract set acme admin-email it@acme.example >/dev/null
t0=$SECONDS
admin contract suspend acme --reason "unpaid invoice 2026-11" >/dev/null || die "suspend command failed"
if wait_until 8 "suspension mail to it@acme.example" mail_has it@acme.example "unpaid invoice 2026-11"; then
    pass "suspension notice mailed to it@acme.example with the reason, $((SECONDS - t0)) s after the command"
fi
python3 - "$MAIL_DIR" <<'EOF' && pass "sender noc@vpn.example, subject says suspended" || fail "wrong sender or subject"
import glob, json, sys
m = [json.load(open(f)) for f in glob.glob(sys.argv[1] + "/msg-*.json")][0]
sys.exit(0 if m["mail_from"] == "noc@vpn.example" and "suspended" in m["subject"] else 1)
EOF
wait_until 5 "suspension notice marked sent" notice_sent acme suspension \
    && pass "notice list --all --json shows it sent at $(notice_field acme suspension sent)"
[ "$(admin notice list --json | json_get '.__len__()')" = 0 ] \
    && pass "the outbox of unsent notices is empty" || fail "unsent notices left: $(admin notice list)"

# 2. The mail server is down: the notice stays unsent with the error, and goes out once
#    the server is back (the hub retries with a backoff of 5, 10, 20 s ...).
stop_sink
admin account lock alice >/dev/null || die "lock command failed"
wait_until 8 "failed attempt recorded" notice_error acme account-locked "refused" \
    && pass "with the mail server down: $(notice_field acme account-locked sent)"
notice_sent acme account-locked && fail "notice marked sent while the mail server was down"
start_sink
t0=$SECONDS
if wait_until 30 "account-locked mail after the server came back" mail_has it@acme.example "account alice was locked"; then
    pass "queued notice delivered $((SECONDS - t0)) s after the mail server came back"
fi
wait_until 5 "account-locked notice marked sent" notice_sent acme account-locked && pass "and marked sent"

# 3. No administrator e-mail: the contract is refused (art. 3, 5, 39).
if admin contract add gamma >/dev/null 2>&1; then
    fail "a contract without --admin-email was accepted"
else
    pass "contract add without --admin-email refused: $(admin contract add gamma 2>&1 | head -c 120)"
fi

# 4. The mail server refuses the address for good (550): the termination notice is
#    marked undeliverable once, not retried, audited (art. 23-1(4)), and the termination
#    takes effect five days after that moment (art. 24-3), not after the command.
add_account beta bob bob-password-1
admin contract set beta admin-email nobody@beta.example >/dev/null
admin contract terminate beta --reason "breach of art. 22" --notice-undeliverable >/dev/null \
    || die "terminate beta failed"
# (Output captured first: `grep -q` closing the pipe early would fail the pipeline.)
shown=$(admin contract show beta)
[[ $shown == *"five days after its notice is sent"* ]] \
    && pass "before the notice is sent, the termination waits for it" || fail "termination scheduled before sending"
wait_until 8 "beta's notice marked undeliverable" notice_error beta termination "undeliverable: " \
    && pass "a 550 refusal: $(notice_field beta termination sent)"
contains "notice.undeliverable" admin log && pass "audited as notice.undeliverable" || fail "no audit entry"
# The hub's contract job (every 30 s) counts the five days from the refusal.
scheduled() { admin contract show beta | grep "termination scheduled" || true; }
sched() { [[ $(scheduled) == *"+09:00"* ]]; }
wait_until 40 "termination scheduled from the refusal" sched && pass "$(scheduled | tr -s ' ')"
sleep 3
n=$(grep -c "notice refused for good" "$WORK/hub.log" || true)
[ "$n" -eq 1 ] && pass "refused once, not retried" || fail "refused $n times"
[ "$(mail_count)" -eq 2 ] && pass "exactly two mails delivered in all" || fail "$(mail_count) mails sent, expected 2"
