#!/usr/bin/env bash
# Issue 18 item 3 (art. 37): `mcvpn diagnose` on the client, in one healthy network and
# four broken ones: UDP dropped (nft in the client's NAT router), a 1280-byte MTU on the
# router's wan link, 20 % loss each way (tc netem), the hub down. Each run must give the
# right verdict for the broken check, exit 0 only when healthy (5 warnings, 6 failed), and
# write a report with no password, device key or token in it; `admin diagnose-report`
# reads it back in Japanese and refuses a file that is not a report.
source "$(dirname "$0")/lib.sh"
topo_up
start_hub
add_account acme alice alice-password-1
# A real `mcvpn up` first: it remembers the hub (which diagnose then uses) and creates
# the device key whose content must never reach a report.
client_up "$NS_CLI" c1 alice >"$WORK/up.out" 2>&1 || die "mcvpn up failed: $(cat "$WORK/up.out")"
client_cmd "$NS_CLI" c1 down >/dev/null 2>&1 || die "mcvpn down failed"
KEY_FILE=$WORK/c1/device.key
[ -s "$KEY_FILE" ] || die "no device key at $KEY_FILE"

# diagnose NAME: runs diagnose (saved hub, Japanese) with --report; sets RC and REPORT.
diagnose() {
    REPORT=$WORK/report-$1.json
    set +e
    client_cmd "$NS_CLI" c1 diagnose --lang ja --report "$REPORT" >"$WORK/diag-$1.out" 2>&1
    RC=$?
    set -e
    log "$1: exit $RC"
    sed 's/^/    /' "$WORK/diag-$1.out"
}

# verdict REPORT CHECK: that check's verdict in the report.
verdict() { python3 -c "import json,sys; r=json.load(open(sys.argv[1])); print([c['verdict'] for c in r['checks'] if c['id']==sys.argv[2]][0])" "$1" "$2"; }
field() { python3 -c "import json,sys; r=json.load(open(sys.argv[1])); print([c.get(sys.argv[3]) for c in r['checks'] if c['id']==sys.argv[2]][0])" "$1" "$2" "$3"; }

expect() { # expect NAME CHECK VERDICT WANT_RC
    local got
    got=$(verdict "$REPORT" "$2")
    [ "$got" = "$3" ] && pass "$1: $2 is $got" || fail "$1: $2 is $got (want $3)"
    [ "$RC" -eq "$4" ] && pass "$1: exit status $RC" || fail "$1: exit status $RC (want $4)"
}

no_secrets() { # no_secrets NAME: the report holds neither the password nor the key
    local f=$REPORT key_b64 key_hex
    grep -qF alice-password-1 "$f" && fail "$1: the password is in the report"
    key_b64=$(tr -d '\n' <"$KEY_FILE")
    grep -qF "$key_b64" "$f" && fail "$1: the device key file's content is in the report"
    key_hex=$(python3 -c "import base64,sys; print(base64.b64decode(open(sys.argv[1]).read().strip()).hex())" "$KEY_FILE")
    grep -qiF "$key_hex" "$f" && fail "$1: the device key (hex) is in the report"
    grep -qiE 'token|resume|password|secret|key=' "$f" && fail "$1: a credential-looking field is in the report: $(grep -iE 'token|resume|password|secret|key=' "$f")"
    pass "$1: no password, key or token in the report"
}

# 1. Healthy.
diagnose healthy
for c in url dns tcp udp https mtu loss root tun routes clock; do
    [ "$(verdict "$REPORT" "$c")" = ok ] || fail "healthy: $c is $(verdict "$REPORT" "$c")"
done
[ "$RC" -eq 0 ] && pass "healthy: every check ok, exit 0" || fail "healthy: exit $RC (want 0)"
log "healthy: path MTU $(field "$REPORT" mtu largest) bytes; loss $(field "$REPORT" loss loss_pct) %, rtt avg $(field "$REPORT" loss avg_ms) ms"
no_secrets healthy
python3 -c "import json,sys; r=json.load(open(sys.argv[1])); assert r['version']==1 and r['kind']=='mcvpn-diagnose-report' and r['hub_source'].endswith('mcvpn.toml'), r" "$REPORT" &&
    pass "healthy: a versioned report about the remembered hub" || fail "healthy: report header"

# 2. UDP dropped by the client's router: the VPN still runs over HTTPS, so a warning.
block_udp "$NS_RTC"
diagnose udp-dropped
expect udp-dropped udp warning 5
[ "$(verdict "$REPORT" https)" = ok ] && pass "udp-dropped: https still ok" || fail "udp-dropped: https $(verdict "$REPORT" https)"
grep -q 'HTTPS で動きます' "$WORK/diag-udp-dropped.out" && pass "udp-dropped: says what to do, in Japanese" ||
    fail "udp-dropped: no Japanese advice"
no_secrets udp-dropped
unblock_udp "$NS_RTC"

# 3. A 1280-byte link between the client's router and the internet (both ends of the veth).
ip -n "$NS_RTC" link set wan0 mtu 1280
ip -n "$NS_WAN" link set c0 mtu 1280
diagnose mtu-1280
expect mtu-1280 mtu fail 6
largest=$(field "$REPORT" mtu largest)
[ "$largest" = 1280 ] && pass "mtu-1280: largest size through is $largest" || fail "mtu-1280: largest $largest (want 1280)"
no_secrets mtu-1280
ip -n "$NS_RTC" link set wan0 mtu 1500
ip -n "$NS_WAN" link set c0 mtu 1500
ip -n "$NS_CLI" route flush cache

# 4. 20 % loss each way on the router's wan link: tc netem, or where the kernel has no
# netem (some VM kernels), nftables dropping a random 20 % of what the router forwards
# either way (the same loss, counted by nft).
LOSS_BY=netem
if ! in_ns "$NS_RTC" tc qdisc add dev wan0 root netem loss 20% 2>/dev/null; then
    LOSS_BY=nft
    in_ns "$NS_RTC" nft -f - <<'NFT'
table inet mcvt_loss {
    chain forwarding {
        type filter hook forward priority 0;
        numgen random mod 100 < 20 counter drop
    }
}
NFT
else
    in_ns "$NS_WAN" tc qdisc add dev c0 root netem loss 20%
fi
diagnose loss-20
expect loss-20 loss fail 6
log "loss-20 ($LOSS_BY): measured loss $(field "$REPORT" loss loss_pct) % over $(field "$REPORT" loss sent) echoes"
no_secrets loss-20
if [ "$LOSS_BY" = netem ]; then
    in_ns "$NS_RTC" tc qdisc del dev wan0 root
    in_ns "$NS_WAN" tc qdisc del dev c0 root
else
    in_ns "$NS_RTC" nft delete table inet mcvt_loss
fi

# 5. The hub down.
stop_hub
diagnose hub-down
expect hub-down tcp fail 6
for c in udp https; do
    [ "$(verdict "$REPORT" "$c")" = fail ] && pass "hub-down: $c fail" || fail "hub-down: $c $(verdict "$REPORT" "$c")"
done
no_secrets hub-down

# The operator reads a report, with no hub or store.
out=$(cd "$WORK" && LANG=ja_JP.UTF-8 "$MCVPN" admin --db "$WORK/none.db" diagnose-report "$WORK/report-mtu-1280.json") ||
    fail "admin diagnose-report failed"
grep -q '\[異常\] 経路 MTU' <<<"$out" && pass "admin diagnose-report renders the MTU failure in Japanese" ||
    fail "admin diagnose-report: $out"
[ ! -e "$WORK/none.db" ] && pass "admin diagnose-report opened no store" || fail "admin diagnose-report created a store"
set +e
bad=$("$MCVPN" admin diagnose-report "$HUB_KEY" 2>&1)
bad_rc=$?
set -e
[ "$bad_rc" -eq 1 ] && grep -q 'not a report written by' <<<"$bad" && pass "a file that is not a report is refused: $bad" ||
    fail "not-a-report: exit $bad_rc: $bad"
