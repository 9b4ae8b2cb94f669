#!/usr/bin/env bash
# The hub never sees plaintext: a random marker sent through the tunnel appears on the
# target's mcvpn0 (so it was really sent) but in no frame captured on the hub's interface.
source "$(dirname "$0")/lib.sh"
alice_and_her_target
client_up "$NS_CLI" c1 alice || die "mcvpn up failed"
in_ns "$NS_CLI" ping -c 2 -i 0.2 -W 2 "$TIP" >/dev/null || die "no tunnel"

MARKER="mcvpn-marker-$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')"
ip netns exec "$NS_HUB" python3 "$ROOT/netns-tests/capture.py" eth0 "$WORK/hub.cap" >"$WORK/hub-cap.json" &
HUB_CAP=$!
ip netns exec "$NS_TGT" python3 "$ROOT/netns-tests/capture.py" mcvpn0 "$WORK/tgt.cap" >"$WORK/tgt-cap.json" &
TGT_CAP=$!
wait_until 5 "captures ready" test -e "$WORK/hub.cap.ready" -a -e "$WORK/tgt.cap.ready"

for _ in $(seq 20); do printf '%s\n' "$MARKER"; done >"$WORK/payload"
ip netns exec "$NS_TGT" python3 "$ROOT/netns-tests/xfer.py" recv 5002 "$WORK/received" --timeout 30 >/dev/null &
RPID=$!
sleep 0.5
in_ns "$NS_CLI" python3 "$ROOT/netns-tests/xfer.py" send "$TIP" 5002 "$WORK/payload" >/dev/null || fail "send failed"
wait "$RPID" || fail "receive failed"
sleep 0.5
kill -TERM "$HUB_CAP" "$TGT_CAP"
wait "$HUB_CAP" "$TGT_CAP" || true

count() { python3 -c "import sys; print(open(sys.argv[1],'rb').read().count(sys.argv[2].encode()))" "$1" "$2"; }
in_tgt=$(count "$WORK/tgt.cap" "$MARKER")
in_hub=$(count "$WORK/hub.cap" "$MARKER")
hub_frames=$(json_get "['frames']" <"$WORK/hub-cap.json")
[ "$in_tgt" -gt 0 ] && pass "marker seen $in_tgt times in clear on the target's mcvpn0" || fail "marker never reached the target"
[ "$hub_frames" -gt 10 ] && pass "captured $hub_frames frames on the hub" || fail "hub capture saw only $hub_frames frames"
[ "$in_hub" -eq 0 ] && pass "marker absent from every frame the hub saw" || fail "marker seen $in_hub times on the hub: plaintext leak"
