#!/usr/bin/env bash
# A spoofed-source Bind changes nothing (review finding S1, issue 11 item 7).
#
# bob, a user of another contract, holds a valid relay key: his own. His binds are
# dropped at his NAT router (so each one is still fresh when replayed) and captured on
# his machine. An attacker on the internet (a namespace on the wan bridge) then sends
# them to the hub with a raw socket, with alice's public endpoint (her NAT address and
# port) as the source. Before the fix the hub moved alice's endpoint to bob and her
# traffic stopped until her next bind; now the hub only challenges the new endpoint,
# the challenge reaches alice (who cannot answer for bob), and nothing moves.
source "$(dirname "$0")/lib.sh"
NS_ATK=$P-atk
ALL_NS+=("$NS_ATK")
alice_and_her_target

veth "$NS_ATK" eth0 "$NS_WAN" a0
ip -n "$NS_WAN" link set a0 master br0
ip -n "$NS_ATK" addr add 192.0.2.66/24 dev eth0

add_account other bob bob-password-1
# bob's relay datagrams never leave his NAT: the hub sees none of his binds.
in_ns "$NS_RTC" nft -f - <<EOF
table ip spoof_test {
    chain bob_udp {
        type filter hook forward priority 0;
        ip saddr 10.2.0.3 udp dport $HUB_PORT drop
    }
}
EOF

# Capture bob's binds (relay version 1, kind 2, 40 bytes) as he sends them.
ip netns exec "$NS_CLI2" python3 - "$WORK/bob-binds" "$HUB_PORT" <<'PY' &
import socket, struct, sys, time
out, port = sys.argv[1], int(sys.argv[2])
# ETH_P_ALL: only such taps see outgoing frames.
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003))
s.bind(("eth0", 0))
s.settimeout(0.2)
open(out + ".ready", "w").close()
binds = []
fh = open(out, "w")
deadline = time.monotonic() + 30
while time.monotonic() < deadline:
    try:
        f = s.recv(2048)
    except socket.timeout:
        continue
    ip = f[14:]
    if len(ip) < 20 or ip[9] != 17:
        continue
    ihl = (ip[0] & 15) * 4
    udp = ip[ihl:]
    dport = struct.unpack("!H", udp[2:4])[0]
    payload = udp[8:]
    if ip[12:14] == b"\x0a\x02" and dport == port and len(payload) == 40 and payload[:2] == b"\x01\x02" and payload not in binds:
        binds.append(payload)
        fh.write(payload.hex() + "\n")
        fh.flush()
PY
CAPTURE=$!
wait_until 5 "bind capture ready" test -e "$WORK/bob-binds.ready"
# mcvpn up waits up to 5 s for a bind acknowledgement that never comes, then goes on.
# --transport udp: on auto bob would move to the HTTPS link after 3 s without a Bound
# (issue 12), and the binds replayed below would be those of a node bound on a link.
client_up "$NS_CLI2" c2 bob --transport udp >/dev/null || die "bob's mcvpn up failed"
sleep 1
kill "$CAPTURE" 2>/dev/null || true
wait "$CAPTURE" 2>/dev/null || true
nbinds=$(grep -c . "$WORK/bob-binds" || true)
[ "$nbinds" -ge 3 ] && pass "captured $nbinds of bob's binds, none of which reached the hub" ||
    die "captured only $nbinds of bob's binds"

client_up "$NS_CLI" c1 alice >/dev/null || die "alice's mcvpn up failed"
wait_until 10 "alice reaches her target" in_ns "$NS_CLI" ping -c 1 -W 1 "$TIP" && pass "alice reaches $TIP"

# alice's public endpoint, as the hub sees it: her NAT router's mapping of her UDP socket.
alice_port=$(in_ns "$NS_RTC" python3 - "$HUB_PORT" <<'PY'
import re, sys
port = sys.argv[1]
for line in open("/proc/net/nf_conntrack"):
    if " udp " in line and "src=10.2.0.2 " in line and f"dport={port} " in line:
        # The reply direction names the NAT's port: ... src=HUB dst=192.0.2.3 sport=PORT dport=NAT_PORT
        m = re.search(r"src=192\.0\.2\.1 dst=192\.0\.2\.3 sport=%s dport=(\d+)" % port, line)
        if m:
            print(m.group(1))
            break
PY
)
[ -n "$alice_port" ] || die "cannot find alice's NAT mapping"
log "alice's endpoint at the hub: 192.0.2.3:$alice_port"

stat_or_none() { hub_stat "$1" 2>/dev/null || echo none; }
moves_before=$(stat_or_none endpoint_changes)
challenges_before=$(stat_or_none challenges)
unauth_before=$(hub_stat dropped_unauthorised)

# alice pings for 4 s while the attacker replays bob's binds "from" her endpoint.
in_ns "$NS_CLI" ping -i 0.1 -c 40 -W 1 "$TIP" >"$WORK/ping.txt" 2>&1 &
PING=$!
in_ns "$NS_ATK" python3 - "$WORK/bob-binds" "$HUB_IP" "$HUB_PORT" "$alice_port" <<'PY' &&
import socket, struct, sys, time
binds = [bytes.fromhex(l) for l in open(sys.argv[1]).read().split()]
hub, port, spoofed_port = sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
# IPPROTO_RAW implies IP_HDRINCL: we write the IP header, with alice's NAT address as
# the source. The kernel fills in the length and the header checksum; UDP checksum 0
# (none) is allowed over IPv4.
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
src, dst = socket.inet_aton("192.0.2.3"), socket.inet_aton(hub)
time.sleep(0.5)
for b in binds:
    udp = struct.pack("!HHHH", spoofed_port, port, 8 + len(b), 0) + b
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0, 64, 17, 0, src, dst)
    s.sendto(ip + udp, (hub, 0))
    time.sleep(3.0 / len(binds))
PY
    pass "sent ${nbinds} spoofed binds from 192.0.2.3:$alice_port (alice's endpoint)" || fail "spoofing failed"
wait "$PING" || true
received=$(grep -oE '[0-9]+ received' "$WORK/ping.txt" | grep -oE '[0-9]+' || echo 0)
log "alice's pings during the attack: $received of 40 answered"
[ "$received" -ge 38 ] && pass "alice's traffic kept flowing ($received/40)" ||
    fail "alice's traffic was cut: $received/40 pings answered"

challenges_after=$(stat_or_none challenges)
moves_after=$(stat_or_none endpoint_changes)
log "hub: challenges $challenges_before -> $challenges_after, endpoint changes $moves_before -> $moves_after, unauthorised drops $unauth_before -> $(hub_stat dropped_unauthorised)"
if [ "$challenges_before" != none ] && [ "$challenges_after" -ge $((challenges_before + nbinds)) ]; then
    pass "the hub answered each spoofed bind with a challenge to the claimed endpoint, not a binding"
else
    fail "the hub did not challenge the spoofed binds (challenges $challenges_before -> $challenges_after)"
fi
if [ "$moves_before" != none ] && [ "$moves_after" = "$moves_before" ]; then
    pass "no endpoint moved: alice's binding is unchanged"
else
    fail "an endpoint moved during the attack ($moves_before -> $moves_after)"
fi
# alice's client got bob's challenges and dropped them (it cannot answer for bob).
in_ns "$NS_CLI" ping -c 3 -i 0.2 -W 1 "$TIP" >/dev/null && pass "alice still reaches $TIP after the attack" ||
    fail "alice cannot reach $TIP after the attack"
