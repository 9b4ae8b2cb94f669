#!/usr/bin/env bash
# WireGuard sessions rekey after 120 s; boringtun 0.7.1 has a report of tunnels going
# deaf 15-30 s after a rekey (boringtun issue 495). Traffic must flow continuously
# across the rekey, and again after a long idle period.
source "$(dirname "$0")/lib.sh"
alice_and_her_target
client_up "$NS_CLI" c1 alice || die "up failed"

# 170 s of pings, one every 0.5 s: spans the first rekey (120 s) and the window after it.
out=$(in_ns "$NS_CLI" ping -c 340 -i 0.5 -W 1 "$TIP" | tail -n 3)
loss=$(printf '%s' "$out" | sed -n 's/.* \([0-9.]*\)% packet loss.*/\1/p')
log "continuous: $loss% loss over 170 s"
awk -v l="$loss" 'BEGIN { exit !(l <= 2) }' && pass "at most 2% loss across the rekey ($loss%)" || fail "loss $loss% across the rekey"

# Idle past the session's lifetime, then traffic again (the first ping may wait on a
# fresh handshake).
log "idling 140 s"
sleep 140
wait_until 10 "ping after 140 s idle" in_ns "$NS_CLI" ping -c 1 -W 1 "$TIP" && pass "tunnel works after 140 s idle"
