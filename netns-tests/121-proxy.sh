#!/usr/bin/env bash
# Issue 12 test 2: the client's only way out is a real HTTP proxy (Debian's squid, in its
# own namespace on the wan: CONNECT to port 443 only, Basic authentication), its router
# forwarding nothing else. A wrong proxy password: a clear error naming the proxy and its
# answer, non-zero exit, nothing left up. The right one: ping and 64 MiB through the hub,
# status "https via proxy HOST:PORT", and squid's log shows the tunnel. The proxy taken
# from HTTPS_PROXY instead of --proxy works too.
source "$(dirname "$0")/lib.sh"
alice_and_her_target
start_squid carol proxy-password-1
proxy_only_way_out
PROXY_URL="http://carol@$PROXY_IP:$PROXY_PORT"
printf 'proxy-password-1\n' >"$WORK/proxy-pw"
printf 'not-the-password\n' >"$WORK/proxy-pw-wrong"

# The router lets nothing else out: a direct connection to the hub goes nowhere.
in_ns "$NS_CLI" timeout 3 python3 -c "import socket; socket.create_connection(('$HUB_IP', $HUB_HTTPS_PORT), timeout=2)" \
    >/dev/null 2>&1 && die "the client reaches the hub without the proxy: the test's firewall is broken"

# A wrong proxy password.
set +e
# shellcheck disable=SC2046 # word splitting of the env assignments is intended
out=$(timeout 60 ip netns exec "$NS_CLI" env $(client_envs c1) "$MCVPN" up --hub "$HUB_URL" --account alice \
    --password-file "$WORK/pw-alice" --proxy "$PROXY_URL" --proxy-password-file "$WORK/proxy-pw-wrong" 2>&1)
rc=$?
set -e
if [ "$rc" -ne 0 ] && [ "$rc" -ne 124 ] && [[ $out == *"$PROXY_IP:$PROXY_PORT"* ]] && [[ $out == *407* ]]; then
    pass "wrong proxy password: status $rc, '$out'"
else
    fail "wrong proxy password: status $rc (want non-zero, not a timeout), message must name $PROXY_IP:$PROXY_PORT and 407: $out"
fi
[ "$rc" -eq 1 ] && pass "exit status 1 (failure), as for an unreachable hub" || fail "exit status $rc (want 1)"
sleep 1 # a daemon that should not have been left would show by now
no_client_left "$NS_CLI" c1 && pass "nothing left up after the proxy's refusal"
grep -q 'TCP_DENIED/407 .*CONNECT' "$SQUID_DIR/access.log" && pass "squid refused it: $(grep -m1 'TCP_DENIED/407' "$SQUID_DIR/access.log" | awk '{print $4, $6, $7, $8}')" ||
    fail "squid's log shows no 407: $(cat "$SQUID_DIR/access.log")"

# The right one.
t0=$(now)
client_up "$NS_CLI" c1 alice --proxy "$PROXY_URL" --proxy-password-file "$WORK/proxy-pw" >"$WORK/up.out" 2>&1 ||
    die "mcvpn up through the proxy failed: $(cat "$WORK/up.out")"
pass "mcvpn up through squid in $(elapsed "$t0") s"
transport=$(client_transport c1)
[ "$transport" = "https via proxy $PROXY_IP:$PROXY_PORT" ] && pass "status --json: transport \"$transport\"" ||
    fail "status --json: transport \"$transport\" (want \"https via proxy $PROXY_IP:$PROXY_PORT\")"
wait_until 10 "ping through the proxy" in_ns "$NS_CLI" ping -c 1 -W 1 "$TIP" && pass "ping $TIP through squid and the hub"
make_payload 64
transfer_ok "$NS_TGT" "$TIP" "$NS_CLI" "through squid" || true
grep -q "TCP_TUNNEL/200 .*CONNECT $HUB_IP:$HUB_HTTPS_PORT carol" "$SQUID_DIR/access.log" ||
    in_ns "$NS_PRX" ss -Htn state established "dst $HUB_IP:$HUB_HTTPS_PORT" | grep -q . &&
    pass "the tunnel runs through squid (CONNECT $HUB_IP:$HUB_HTTPS_PORT as carol)" ||
    fail "squid shows no tunnel to $HUB_IP:$HUB_HTTPS_PORT: $(cat "$SQUID_DIR/access.log")"
# The proxy is remembered without its password.
if grep -q "$PROXY_IP:$PROXY_PORT" "$WORK/c1/mcvpn.toml" && ! grep -q proxy-password-1 "$WORK/c1/mcvpn.toml"; then
    pass "the proxy is remembered in mcvpn.toml, its password is not"
else
    fail "mcvpn.toml: $(cat "$WORK/c1/mcvpn.toml")"
fi
for pid in $(ip netns pids "$NS_CLI"); do
    if tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q proxy-password-1; then
        fail "process $pid carries the proxy password on its command line"
    fi
done

# The proxy from the environment (HTTPS_PROXY), a second client behind the same router.
# shellcheck disable=SC2046
if in_ns "$NS_CLI2" env $(client_envs c2) HTTPS_PROXY="$PROXY_URL" "$MCVPN" up --hub "$HUB_URL" --account alice \
    --password-file "$WORK/pw-alice" --proxy-password-file "$WORK/proxy-pw" >"$WORK/up2.out" 2>&1; then
    transport=$(client_transport c2)
    [ "$transport" = "https via proxy $PROXY_IP:$PROXY_PORT" ] && pass "HTTPS_PROXY honoured: transport \"$transport\"" ||
        fail "with HTTPS_PROXY: transport \"$transport\""
    wait_until 10 "ping from the second client" in_ns "$NS_CLI2" ping -c 1 -W 1 "$TIP" && pass "ping from the second client too"
else
    fail "mcvpn up with HTTPS_PROXY failed: $(cat "$WORK/up2.out")"
fi
