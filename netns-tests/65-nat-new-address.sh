#!/usr/bin/env bash
# The client's NAT gets a new public address (the old one removed, every mapping through it
# gone, as with a new DHCP lease) just after the client refreshed its bind: the tunnel carries
# traffic again within 5 s. The hub drops datagrams from an endpoint it does not know until a
# bind from there is challenged and answered; the client used to wait for its next refresh
# (10 s, issue 13's soak). It now binds again after 1 s of sending into silence.
source "$(dirname "$0")/lib.sh"
BOUND_S=5
alice_and_her_target
client_up "$NS_CLI" c1 alice || die "up failed"
in_ns "$NS_CLI" ping -c 2 -i 0.2 -W 2 "$TIP" >/dev/null || die "no tunnel before the change"

# Binds are the client's only 40-byte datagrams to the hub while it pings (no keepalive then).
in_ns "$NS_RTC" nft -f - <<EOF
table inet mcvt_binds {
    chain forwarding {
        type filter hook forward priority 0;
        iifname "lan0" ip daddr $HUB_IP udp dport $HUB_PORT udp length 48 counter
    }
}
EOF
binds() { in_ns "$NS_RTC" nft list table inet mcvt_binds | grep -o 'packets [0-9]*' | awk '{print $2}'; }
n0=$(binds)
bind_seen() { [ "$(binds)" -gt "$n0" ]; }
wait_until 15 "the client's next bind refresh" bind_seen || die "no bind refresh seen"

in_ns "$NS_RTC" sysctl -qw net.ipv4.conf.wan0.promote_secondaries=1
ip -n "$NS_RTC" addr add 192.0.2.4/24 dev wan0
ip -n "$NS_RTC" addr del 192.0.2.3/24 dev wan0
t0=$(now)
changes0=$(hub_stat endpoint_changes)
if wait_until 12 "ping after the NAT's address change" in_ns "$NS_CLI" ping -c 1 -W 1 "$TIP"; then
    took=$(elapsed "$t0")
    if le "$took" "$BOUND_S"; then
        pass "tunnel back $took s after the NAT changed address (<= $BOUND_S s)"
    else
        fail "tunnel back only $took s after the NAT changed address (> $BOUND_S s)"
    fi
fi
[ "$(hub_stat endpoint_changes)" -gt "$changes0" ] && pass "the hub moved the client's binding to its new address" ||
    fail "the hub saw no endpoint change"
