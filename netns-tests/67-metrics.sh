#!/usr/bin/env bash
# Metrics and health (issue 17): the hub's Prometheus endpoint on a loopback listener,
# scraped and parsed by the reference parser (Debian's python3-prometheus-client), moves
# with real relayed traffic: forwarded datagrams and bytes, sessions by role, logins by
# result; /healthz and /readyz answer 200; the listener is not reachable from outside.
source "$(dirname "$0")/lib.sh"
METRICS=127.0.0.1:9190
HUB_EXTRA_ARGS=(--metrics-listen "$METRICS")
alice_and_her_target
client_up "$NS_CLI" c1 alice || die "mcvpn up failed"
wait_until 10 "tunnel up" in_ns "$NS_CLI" ping -c 1 -W 1 "$TIP"

# scrape FILE: /metrics from inside the hub's namespace (its loopback)
scrape() { ip netns exec "$NS_HUB" curl -fsS "http://$METRICS/metrics" >"$1"; }
# metric FILE NAME LABELS: the sample's value, parsed by prometheus_client's text parser
metric() {
    /usr/bin/python3 - "$1" "$2" "$3" <<'PY'
import sys
from prometheus_client.parser import text_string_to_metric_families
path, name, labels = sys.argv[1], sys.argv[2], dict(kv.split("=") for kv in sys.argv[3].split(",") if kv)
for family in text_string_to_metric_families(open(path).read()):
    for s in family.samples:
        if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
            print(int(s.value)); sys.exit(0)
print(f"no sample {name}{labels}", file=sys.stderr); sys.exit(1)
PY
}

scrape "$WORK/m0" || die "cannot scrape http://$METRICS/metrics"
pass "scraped /metrics ($(wc -l <"$WORK/m0") lines) from the hub's loopback"
f0=$(metric "$WORK/m0" mcvpn_relay_datagrams_total result=forwarded) || fail "no forwarded counter"
b0=$(metric "$WORK/m0" mcvpn_relay_bytes_total result=forwarded) || fail "no forwarded bytes counter"
in_ns "$NS_CLI" ping -c 200 -i 0.01 -s 1000 -W 2 "$TIP" >/dev/null || fail "ping flood"
scrape "$WORK/m1"
f1=$(metric "$WORK/m1" mcvpn_relay_datagrams_total result=forwarded)
b1=$(metric "$WORK/m1" mcvpn_relay_bytes_total result=forwarded)
# 200 requests and 200 replies of 1,028+ bytes each, each a relayed WireGuard datagram.
[ $((f1 - f0)) -ge 400 ] && pass "forwarded datagrams moved by $((f1 - f0)) with 200 pings (>= 400)" \
    || fail "forwarded datagrams moved by $((f1 - f0)) only"
[ $((b1 - b0)) -ge $((400 * 1000)) ] && pass "forwarded bytes moved by $((b1 - b0))" \
    || fail "forwarded bytes moved by $((b1 - b0)) only"
[ "$(metric "$WORK/m1" mcvpn_sessions role=client)" = 1 ] && [ "$(metric "$WORK/m1" mcvpn_sessions role=target)" = 1 ] \
    && pass "live sessions: 1 client, 1 target" || fail "sessions by role wrong: $(grep '^mcvpn_sessions' "$WORK/m1")"
[ "$(metric "$WORK/m1" mcvpn_logins_total result=ok)" -ge 2 ] && pass "logins ok counted" \
    || fail "logins: $(grep '^mcvpn_logins' "$WORK/m1")"

# A wrong password moves the refused logins.
r0=$(metric "$WORK/m1" mcvpn_logins_total result=refused,reason=wrong_credentials 2>/dev/null || echo 0)
echo wrong-password >"$WORK/wrong"
client_cmd "$NS_CLI" c2 up --hub "$HUB_URL" --account alice --password-file "$WORK/wrong" >/dev/null 2>&1 \
    && fail "a wrong password logged in"
scrape "$WORK/m2"
r1=$(metric "$WORK/m2" mcvpn_logins_total result=refused,reason=wrong_credentials)
[ "$((r1 - r0))" -ge 1 ] && pass "a wrong password counted as refused/wrong_credentials ($r0 -> $r1)" \
    || fail "refused logins did not move: $(grep '^mcvpn_logins' "$WORK/m2")"

for path in healthz readyz; do
    code=$(ip netns exec "$NS_HUB" curl -s -o /dev/null -w '%{http_code}' "http://$METRICS/$path")
    [ "$code" = 200 ] && pass "/$path answers 200" || fail "/$path answers $code"
done
# Loopback only: from the client's side the port is closed.
in_ns "$NS_CLI" curl -s -m 2 "http://$HUB_IP:9190/metrics" >/dev/null \
    && fail "metrics reachable from outside the hub" || pass "metrics not reachable on the hub's public address"
