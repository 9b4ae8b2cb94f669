#!/usr/bin/env bash
# Issue 12 test 3: mixed pairs. The target sits behind a NAT that drops every UDP datagram
# (it runs on the HTTPS transport), the client on UDP: ping and 64 MiB with equal sha256
# through the hub. Then the reverse: the target restarted with UDP open (back on UDP), the
# client behind a UDP-blocking NAT (on HTTPS).
source "$(dirname "$0")/lib.sh"
topo_up
start_hub
add_account acme alice alice-password-1
block_udp "$NS_RTT"
enroll_target alice >/dev/null || die "target enroll with UDP blocked failed"
start_target
TIP=$(target_ip)
transport_is target https && pass "target behind the UDP-blocking NAT: transport https" ||
    fail "target transport \"$(target_transport)\" (want https)"

client_up "$NS_CLI" c1 alice >"$WORK/up.out" 2>&1 || die "mcvpn up failed: $(cat "$WORK/up.out")"
transport_is c1 udp && pass "client: transport udp" || fail "client transport \"$(client_transport c1)\" (want udp)"
wait_until 10 "ping client(udp) -> target(https)" in_ns "$NS_CLI" ping -c 1 -W 1 "$TIP" &&
    pass "ping client on udp -> target on https"
make_payload 64
transfer_ok "$NS_TGT" "$TIP" "$NS_CLI" "client on udp -> target on https" || true
transfer_ok "$NS_CLI" "$(client_status c1 | json_get "['overlay_ip']")" "$NS_TGT" "target on https -> client on udp" || true
log "hub https counters: $(hub_https_stats)"

# The reverse.
client_cmd "$NS_CLI" c1 down >/dev/null || fail "mcvpn down failed"
stop_target
unblock_udp "$NS_RTT"
block_udp "$NS_RTC"
start_target
transport_is target udp && pass "target restarted with UDP open: transport udp" ||
    fail "target transport \"$(target_transport)\" (want udp)"
client_up "$NS_CLI" c1 alice >"$WORK/up.out" 2>&1 || die "mcvpn up with UDP blocked failed: $(cat "$WORK/up.out")"
transport_is c1 https && pass "client behind the UDP-blocking NAT: transport https" ||
    fail "client transport \"$(client_transport c1)\" (want https)"
wait_until 10 "ping client(https) -> target(udp)" in_ns "$NS_CLI" ping -c 1 -W 1 "$TIP" &&
    pass "ping client on https -> target on udp"
transfer_ok "$NS_TGT" "$TIP" "$NS_CLI" "client on https -> target on udp" || true
