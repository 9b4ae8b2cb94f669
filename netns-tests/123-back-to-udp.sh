#!/usr/bin/env bash
# Issue 12 test 4: back to UDP during a transfer. UDP is blocked at the client's NAT, the
# client comes up on HTTPS and starts sending 64 MiB, held to 2 Mbit/s (a tbf on its mcvpn0,
# so the inner traffic is slowed, not the probes) so that it lasts past the switch; then UDP
# is unblocked. The client must move back to UDP within 90 s while the transfer runs; the
# rate limit is then lifted and the transfer must complete with equal sha256.
source "$(dirname "$0")/lib.sh"
BACK_MAX_S=90
alice_and_her_target
block_udp "$NS_RTC"
client_up "$NS_CLI" c1 alice >"$WORK/up.out" 2>&1 || die "mcvpn up with UDP blocked failed: $(cat "$WORK/up.out")"
transport_is c1 https && pass "client on https with UDP blocked" || die "client transport \"$(client_transport c1)\" (want https)"
wait_until 10 "ping over https" in_ns "$NS_CLI" ping -c 1 -W 1 "$TIP" || die "no ping over https"

make_payload 64
in_ns "$NS_CLI" tc qdisc add dev mcvpn0 root tbf rate 2mbit burst 64kb latency 500ms
start_transfer "$NS_TGT" "$TIP" "$NS_CLI"
sleep 3
received_mib() { in_ns "$NS_TGT" ss -Htni "sport = :5001" | grep -o 'bytes_received:[0-9]*' | cut -d: -f2 | awk '{s += $1} END {printf "%.1f", s / 1048576}'; }
log "transfer running over https ($(received_mib) MiB received after 3 s); unblocking UDP"
forwarded_before=$(hub_stat forwarded)
unblock_udp "$NS_RTC"
t0=$(now)
deadline=$((SECONDS + BACK_MAX_S))
back=0
while [ "$SECONDS" -lt "$deadline" ]; do
    if transport_is c1 udp; then
        back=1
        break
    fi
    sleep 0.5
done
switch_s=$(elapsed "$t0")
if [ "$back" = 1 ]; then
    pass "the client moved back to udp $switch_s s after UDP was unblocked (<= $BACK_MAX_S s)"
else
    fail "the client is still on \"$(client_transport c1)\" $BACK_MAX_S s after UDP was unblocked"
fi
if kill -0 "$XFER_SEND_PID" 2>/dev/null; then
    pass "the transfer was still running at the switch ($(received_mib) MiB of 64 received)"
else
    fail "the transfer had ended before the switch: the test proves nothing about it"
fi
in_ns "$NS_CLI" tc qdisc del dev mcvpn0 root
check_transfer "64 MiB across the switch back to udp" || true
transport_is c1 udp && pass "still on udp after the transfer" || fail "transport \"$(client_transport c1)\" after the transfer"
forwarded_after=$(hub_stat forwarded)
log "the hub's relay forwarded $((forwarded_after - forwarded_before)) datagrams since the unblock; https counters: $(hub_https_stats)"
