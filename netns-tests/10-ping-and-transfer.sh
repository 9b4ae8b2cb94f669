#!/usr/bin/env bash
# A client behind NAT reaches a target behind another NAT through the hub: ping, then
# 64 MiB over TCP whose sha256 matches on both ends. Prints the tunnel's throughput next
# to the plain path's (no VPN, same namespaces, same run), and repeats the transfer with
# the client's packets on two threads.
source "$(dirname "$0")/lib.sh"
alice_and_her_target

client_up "$NS_CLI" c1 alice || die "mcvpn up failed"
in_ns "$NS_CLI" ping -c 3 -i 0.2 -W 2 "$TIP" >/dev/null && pass "ping $TIP through the hub" || fail "ping $TIP"

head -c $((64 << 20)) /dev/urandom >"$WORK/payload"
transfer() { # transfer DEST_NS DEST_IP SRC_NS LABEL: sets MBIT (not run in a subshell, so fail counts)
    ip netns exec "$1" python3 "$ROOT/netns-tests/xfer.py" recv 5001 "$WORK/received" --timeout 120 >"$WORK/recv.json" &
    local rpid=$!
    sleep 0.5
    in_ns "$3" python3 "$ROOT/netns-tests/xfer.py" send "$2" 5001 "$WORK/payload" >"$WORK/send.json" || fail "$4: send failed"
    wait "$rpid" || fail "$4: receive failed"
    local sent got
    sent=$(json_get "['sha256']" <"$WORK/send.json")
    got=$(json_get "['sha256']" <"$WORK/recv.json")
    if [ "$sent" = "$got" ] && [ "$(json_get "['bytes']" <"$WORK/recv.json")" = $((64 << 20)) ]; then
        pass "$4: 64 MiB, sha256 $got on both ends, $(json_get "['mbit_s']" <"$WORK/send.json") Mbit/s"
    else
        fail "$4: sha256 mismatch (sent $sent, received $got)"
    fi
    MBIT=$(json_get "['mbit_s']" <"$WORK/send.json")
}
transfer "$NS_TGT" "$TIP" "$NS_CLI" "through the tunnel"
TUNNEL=$MBIT
# The plain path: client to the hub's public address, same veths and NAT, no VPN.
transfer "$NS_HUB" "$HUB_IP" "$NS_CLI" "plain veth, no VPN"
PLAIN=$MBIT
log "throughput: tunnel ${TUNNEL} Mbit/s, plain veth ${PLAIN} Mbit/s (python sender, one stream)"

# The same transfer with the client moving packets on two threads (one per direction),
# the mode MCVPN_PACKET_THREADS=2 selects for machines with cores to spare.
client_cmd "$NS_CLI" c1 down >/dev/null || fail "mcvpn down failed"
MCVPN_PACKET_THREADS=2 client_up "$NS_CLI" c1 alice >/dev/null || die "mcvpn up (two packet threads) failed"
wait_until 10 "tunnel with two packet threads" in_ns "$NS_CLI" ping -c 1 -W 1 "$TIP"
transfer "$NS_TGT" "$TIP" "$NS_CLI" "through the tunnel, client on two packet threads"
forwarded=$(hub_stat forwarded)
[ "$forwarded" -gt 40000 ] && pass "the hub relayed $forwarded datagrams" || fail "the hub relayed only $forwarded datagrams"
