#!/usr/bin/env bash
# The hub needs no privilege (systemd/mcvpn-hub.service runs it as the `mcvpn` user with
# CAP_NET_BIND_SERVICE only, for 443): started as `nobody` with every capability dropped, it serves logins and
# relays a tunnel, and the files it creates are 0600 in its 0700 state directory.
source "$(dirname "$0")/lib.sh"
topo_up

# A state directory only the unprivileged user can use; the work directory must be
# traversable for it to reach its own directory (the password files stay 0600 root).
chmod 711 "$WORK"
STATE=$WORK/hubstate
mkdir -m 700 "$STATE"
chown nobody:nogroup "$STATE"
HUB_DB=$STATE/hub.db HUB_KEY=$STATE/hub.key HUB_SOCK=$STATE/hub.sock
HUB_AS=(setpriv --reuid=nobody --regid=nogroup --clear-groups --inh-caps=-all --bounding-set=-all --no-new-privs)
# Its HTTPS port 443 needs CAP_NET_BIND_SERVICE (the unit grants that one); without any
# capability here, lower this namespace's privileged port range instead (per netns).
in_ns "$NS_HUB" sysctl -qw net.ipv4.ip_unprivileged_port_start=443
start_hub
hub_uid=$(stat -c %U "/proc/$HUB_PID")
[ "$hub_uid" = nobody ] && pass "the hub runs as nobody" || fail "the hub runs as $hub_uid"
grep -q '^CapEff:[[:space:]]*0000000000000000$' "/proc/$HUB_PID/status" \
    && pass "with no effective capability" || fail "the hub has capabilities: $(grep CapEff "/proc/$HUB_PID/status")"

add_account acme alice alice-password-1
enroll_target alice >/dev/null
start_target
TIP=$(target_ip)
client_up "$NS_CLI" c1 alice || die "mcvpn up against the unprivileged hub failed"
in_ns "$NS_CLI" ping -c 3 -i 0.2 -W 2 "$TIP" >/dev/null && pass "ping $TIP through the unprivileged hub" \
    || fail "ping $TIP through the unprivileged hub"

for f in "$HUB_KEY" "$HUB_DB" "$HUB_KEY.tls-cert.pem" "$HUB_KEY.tls-key.pem"; do
    mode=$(stat -c '%a %U' "$f")
    [ "$mode" = "600 nobody" ] && pass "$(basename "$f") is $mode" || fail "$(basename "$f") is $mode (want 600 nobody)"
done
grep -q "socket buffers are smaller than asked" "$WORK/hub.log" \
    && pass "the hub says its socket buffers were clamped (no CAP_NET_ADMIN, rmem_max $(cat /proc/sys/net/core/rmem_max))" \
    || log "socket buffers granted in full (rmem_max $(cat /proc/sys/net/core/rmem_max))"
