#!/usr/bin/env bash
# Issue 12 test 5: only the hub's TCP 443 is reachable (its firewall drops UDP and TCP to
# 51820 from outside). Everything works through the HTTPS port alone: target enrolment and
# service, `mcvpn up`, ping, 64 MiB with equal sha256, remote administration
# (`mcvpn admin --hub`) and `mcvpn passwd`. Also: `GET /` answers a web page, and the
# server URL names the HTTPS port only when it is not 443.
source "$(dirname "$0")/lib.sh"
topo_up
start_hub
[[ $HUB_URL != *"https="* ]] && pass "hub url on the usual port 443 names no https= ($HUB_URL)" || fail "hub url: $HUB_URL"
url8443=$("$MCVPN" hub url --key "$HUB_KEY" --listen "$HUB_IP:$HUB_PORT" --https-port 8443)
[[ $url8443 == *"&https=8443"* ]] && pass "hub url --https-port 8443 adds &https=8443" || fail "hub url --https-port 8443: $url8443"
only_https_to_hub
add_account acme alice alice-password-1
admin contract admin acme alice >/dev/null

# A probe of the port sees a web server (TLS 1.3; the certificate is not checked: it is the
# hub's own, and security rests on the Noise handshake inside).
page=$(in_ns "$NS_CLI" python3 - "$HUB_IP" "$HUB_HTTPS_PORT" <<'PY' 2>&1 || true
import socket, ssl, sys
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE  # security rests on Noise inside, not on this certificate
with socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5) as raw:
    with ctx.wrap_socket(raw, server_hostname=sys.argv[1]) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: hub\r\nConnection: close\r\n\r\n")
        data = b""
        while True:
            b = s.recv(4096)
            if not b:
                break
            data += b
        print(s.version(), data.split(b"\r\n", 1)[0].decode(), len(data))
PY
)
[[ $page == "TLSv1.3 HTTP/1.1 200"* ]] && pass "GET / over TLS: $page" || fail "GET / on the HTTPS port: $page"

enroll_target alice >/dev/null || die "target enroll through 443 only failed"
pass "target enrolled through 443 only"
start_target
TIP=$(target_ip)
transport_is target https && pass "target: transport https" || fail "target transport \"$(target_transport)\""
client_up "$NS_CLI" c1 alice >"$WORK/up.out" 2>&1 || die "mcvpn up through 443 only failed: $(cat "$WORK/up.out")"
transport_is c1 https && pass "client: transport https" || fail "client transport \"$(client_transport c1)\""
wait_until 10 "ping through 443 only" in_ns "$NS_CLI" ping -c 1 -W 1 "$TIP" && pass "ping $TIP with the hub on 443 only"
make_payload 64
transfer_ok "$NS_TGT" "$TIP" "$NS_CLI" "both ends on https" || true

# Remote administration, from the client's network.
as_alice() { in_ns "$NS_CLI" "$MCVPN" admin --hub "$HUB_URL" --as alice --admin-password-file "$WORK/pw-alice" "$@"; }
printf 'bob-password-42\n' >"$WORK/pw-bob"
as_alice account add bob --password-file "$WORK/pw-bob" >/dev/null 2>"$WORK/admin.err" &&
    pass "alice added bob through the hub's 443" || fail "remote admin account add: $(cat "$WORK/admin.err")"
accounts=$(as_alice --json account list 2>"$WORK/admin.err" | python3 -c "import json,sys; print(' '.join(sorted(a['account'] for a in json.load(sys.stdin))))" || true)
[ "$accounts" = "alice bob" ] && pass "remote admin account list: $accounts" || fail "remote admin account list: '$accounts' $(cat "$WORK/admin.err")"
as_alice account lock bob >/dev/null 2>"$WORK/admin.err" && pass "alice locked bob through 443" || fail "remote admin lock: $(cat "$WORK/admin.err")"
[ "$(admin account list --json | python3 -c "import json,sys; print([a['state'] for a in json.load(sys.stdin) if a['account']=='bob'][0])")" = locked ] &&
    pass "bob is locked in the store" || fail "bob is not locked in the store"
printf 'alice-password-1\na much better passphrase\n' >"$WORK/passwd-new"
# shellcheck disable=SC2046
in_ns "$NS_CLI" env $(client_envs c1) "$MCVPN" passwd --password-file "$WORK/passwd-new" >/dev/null 2>"$WORK/passwd.err" &&
    pass "alice changed her password through 443 (mcvpn passwd)" || fail "mcvpn passwd: $(cat "$WORK/passwd.err")"

# Nothing reached 51820: the firewall's counters saw the attempts, the relay's UDP none.
log "hub firewall: $(in_ns "$NS_HUB" nft list table inet mcvt_https_only | grep -o 'dport [0-9]* counter packets [0-9]*' | xargs)"
log "hub https counters: $(hub_https_stats)"
