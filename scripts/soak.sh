#!/usr/bin/env bash
# Soak (issue 13): two real tunnels, client c1 -> hub -> target and client c2 -> hub ->
# target (two devices of one account, behind one NAT, in netns-tests/lib.sh's topology),
# each carrying a continuous checked stream (scripts/soakstream.py: numbered chunks with
# their sha256, resumed from the receiver's position after any connection loss) for the
# whole run, while a chaos schedule repeats:
#
#   +0 s    5 % loss and 10 % reordering each way on the clients' NAT link for 60 s (no
#           netem here: nftables and HTB, see chaos_link): no session may drop (each
#           node's connected_for_s keeps counting)
#   +75 s   the target killed with SIGKILL; its unit-like loop restarts it 2 s later
#           (RestartSec=2 as systemd/mcvpn-target.service): streams back within 15 s
#   +105 s  the hub killed with SIGKILL, restarted 2 s later with the same store and key
#           (in the full run, only in the cycles that start in the first half, so that
#           the last hub instance lives long enough for the RSS drift): back within 30 s
#   +150 s  the clients' NAT changes its public address (192.0.2.3 <-> 192.0.2.4; the old
#           address is removed, which drops the NAT's mappings): back within 10 s
#
# The cycle is 360 s (--quick: one cycle, in 240 s). WireGuard rekeys cannot be forced:
# boringtun 0.7.1's REKEY_AFTER_TIME is a constant 120 s, so the run covers one rekey per
# tunnel every 120 s of session (counted from `status`'s last_handshake_s). A stall of a
# stream of more than 5 s outside the events' windows fails the run.
#
#   sudo scripts/soak.sh [--minutes N] [--quick] [--out REPORT.json]
#
# Exit status 0 only if no byte was lost or corrupted, every recovery was within its
# bound, no session dropped in the loss burst, and (full runs only) the last hub
# instance's RSS grew at most 10 % between minute 5 and the end.
# The whole script is one block, read before it runs: editing the file meanwhile is safe.
{
set -euo pipefail
MINUTES=30
QUICK=0
OUT=
while [ $# -gt 0 ]; do
    case $1 in
    --minutes) MINUTES=$2; shift 2 ;;
    --quick) QUICK=1; MINUTES=4; shift ;;
    --out) OUT=$2; shift 2 ;;
    *) echo "usage: $0 [--minutes N] [--quick] [--out REPORT.json]" >&2; exit 2 ;;
    esac
done
if [ "$(id -u)" -ne 0 ]; then
    echo "soak.sh needs root for network namespaces and TUN: sudo $0" >&2
    exit 4
fi
HERE=$(cd "$(dirname "$0")" && pwd)
RUN_ID=${RUN_ID:-soak$$}
# shellcheck source=../netns-tests/lib.sh
source "$HERE/../netns-tests/lib.sh"
[ -x "$MCVPN" ] || { echo "no $MCVPN: cargo build --release first" >&2; exit 1; }
STREAM=$HERE/soakstream.py
TOTAL_S=$((MINUTES * 60))
CYCLE_S=360
RESTART_DELAY_S=2
BG_PIDS=() # our processes outside the namespaces (the sampler)

soak_down() {
    local rc=$?
    set +e
    for p in ${BG_PIDS[@]+"${BG_PIDS[@]}"}; do kill "$p" 2>/dev/null; done
    # keep the report and the logs that topo_down deletes with $WORK
    if [ -n "$OUT" ] && [ -s "$WORK/report.json" ]; then cp "$WORK/report.json" "$OUT"; fi
    restore_rc() { return "$1"; }
    restore_rc "$rc"
    topo_down
}

topo_up
trap soak_down EXIT
log "uptime: $(uptime)"
start_hub
add_account acme alice alice-password-1
enroll_target alice >/dev/null

# The target under a unit-like loop: Restart=always, RestartSec=2. (The inner script is
# single-quoted on purpose; the loop and the target append to the same log.)
# shellcheck disable=SC2016,SC2094
ip netns exec "$NS_TGT" env "${TGT_ENV[@]}" bash -c '
    while :; do
        "$0" target run >>"$1" 2>&1
        rc=$?
        echo "[$(date +%T)] soak: target exited with status $rc, restarting in $2 s" >>"$1"
        sleep "$2"
    done' "$MCVPN" "$WORK/target.log" "$RESTART_DELAY_S" >>"$WORK/target.log" 2>&1 &
TGT_LOOP=$!
wait_until 15 "target connected" target_connected || die "the target did not connect"
TIP=$(target_ip)
target_pid() { pgrep -P "$TGT_LOOP" -x mcvpn; }

client_up "$NS_CLI" c1 alice >/dev/null || die "mcvpn up (c1) failed"
client_up "$NS_CLI2" c2 alice >/dev/null || die "mcvpn up (c2) failed"
wait_until 10 "ping from c1" in_ns "$NS_CLI" ping -c 1 -W 1 "$TIP" || die "no tunnel from c1"
wait_until 10 "ping from c2" in_ns "$NS_CLI2" ping -c 1 -W 1 "$TIP" || die "no tunnel from c2"

# The two checked streams.
ip netns exec "$NS_TGT" python3 "$STREAM" recv 5101 "$WORK/recv1.json" >>"$WORK/stream.log" 2>&1 &
ip netns exec "$NS_TGT" python3 "$STREAM" recv 5102 "$WORK/recv2.json" >>"$WORK/stream.log" 2>&1 &
wait_until 10 "receivers listening" tcp_listening "$NS_TGT" 5102
ip netns exec "$NS_CLI" python3 "$STREAM" send "$TIP" 5101 "$WORK/send1.json" >>"$WORK/stream.log" 2>&1 &
SEND1=$!
ip netns exec "$NS_CLI2" python3 "$STREAM" send "$TIP" 5102 "$WORK/send2.json" >>"$WORK/stream.log" 2>&1 &
SEND2=$!
flowing() { # both streams verified a chunk in the last second
    python3 - "$WORK/recv1.json" "$WORK/recv2.json" <<'PY'
import json, sys, time
for p in sys.argv[1:]:
    s = json.load(open(p))
    if not s["last_t"] or time.time() - s["last_t"] > 1:
        sys.exit(1)
PY
}
wait_until 20 "both streams flowing" flowing || die "the checked streams do not flow"
# Pings through each tunnel, 5 a second, for the tunnel's own recovery (the streams' also
# includes TCP's retransmission backoff).
ip netns exec "$NS_CLI" ping -D -i 0.2 -W 1 "$TIP" >"$WORK/ping1.log" 2>&1 &
PING1=$!
ip netns exec "$NS_CLI2" ping -D -i 0.2 -W 1 "$TIP" >"$WORK/ping2.log" 2>&1 &
PING2=$!
T0=$(now)
log "soak: $MINUTES min ($([ $QUICK = 1 ] && echo quick || echo full)), target $TIP, streams c1->:5101 and c2->:5102 flowing"

# The sampler: every 2 s the hub's pid, VmRSS (kB) and open fds, and each node's
# connected_for_s and WireGuard handshake age.
sampler() {
    local pid rss fds
    while :; do
        pid=$(ip netns pids "$NS_HUB" 2>/dev/null | head -n 1)
        rss=- fds=-
        if [ -n "$pid" ]; then
            rss=$(awk '/^VmRSS/ {print $2}' "/proc/$pid/status" 2>/dev/null || echo -)
            fds=$(find "/proc/$pid/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l)
        fi
        printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$(now)" "${pid:--}" "${rss:--}" "$fds" \
            "$(node_line c1)" "$(node_line c2)" "$(node_line target)" >>"$WORK/samples.tsv"
        sleep 2
    done
}
node_line() { # connected_for_s (or -), then the handshake age of each peer, comma-separated
    local json
    if [ "$1" = target ]; then json=$(target_status 2>/dev/null); else json=$(client_status "$1" 2>/dev/null); fi
    printf '%s' "$json" | python3 -c '
import json, sys
try:
    s = json.load(sys.stdin)
except Exception:
    print("-,-"); sys.exit()
c = s.get("connected_for_s") if s.get("connected") else None
hs = [p.get("last_handshake_s") for p in s.get("peers", []) if p.get("last_handshake_s") is not None]
print(",".join(["-" if c is None else str(c)] + [str(h) for h in hs]))' 2>/dev/null || echo "-"
}
sampler &
BG_PIDS+=($!)

event() { # event KIND BOUND_S DETAIL: one line of events.tsv, now
    printf '%s\t%s\t%s\t%s\n' "$(now)" "$1" "$2" "$3" >>"$WORK/events.tsv"
    log "event: $1 ($3)"
}
sleep_until() { # sleep_until OFFSET_S (from T0)
    local left
    left=$(python3 -c "import sys, time; print(max(0.0, float(sys.argv[1]) + float(sys.argv[2]) - time.time()))" "$T0" "$1")
    sleep "$left"
}
connected_for() { # connected_for c1|c2|target
    node_line "$1" | cut -d, -f1
}

# The loss burst. netem is not in every kernel (nor in this development VM's: no
# CONFIG_NET_SCH_NETEM), so, as bench/lib/measure.sh does: nftables' numgen drops 5 % of the
# packets each way on the clients' NAT link (c0, the wan side of it), and reorders 10 % each
# way by sending them through a 2 Mbit/s HTB class beside the unlimited default class (the
# rest overtake them while they wait). Both ends of that path send with gso_max_segs 1, so a
# packet on the link is one packet, not a GSO batch that one drop would take whole.
chaos_link() { # chaos_link on|off
    local d
    if [ "$1" = on ]; then
        ip -n "$NS_RTC" link set dev wan0 gso_max_segs 1
        ip -n "$NS_HUB" link set dev eth0 gso_max_segs 1
        for d in c0 h0; do
            in_ns "$NS_WAN" tc qdisc add dev "$d" root handle 1: htb default 10
            in_ns "$NS_WAN" tc class add dev "$d" parent 1: classid 1:10 htb rate 10gbit quantum 60000
            in_ns "$NS_WAN" tc class add dev "$d" parent 1: classid 1:20 htb rate 2mbit ceil 2mbit
        done
        # Marked at c0's ingress: queued at h0's egress (to the hub); marked at c0's egress:
        # queued in c0's own qdisc (to the clients).
        in_ns "$NS_WAN" nft -f - <<'EOF'
table netdev mcvt_soak_chaos {
    chain from_clients {
        type filter hook ingress device "c0" priority 0;
        numgen random mod 100 < 5 counter drop
        numgen random mod 100 < 10 meta priority set 1:20 counter
    }
    chain to_clients {
        type filter hook egress device "c0" priority 0;
        numgen random mod 100 < 5 counter drop
        numgen random mod 100 < 10 meta priority set 1:20 counter
    }
}
EOF
    else
        CHAOS_COUNTS=$(in_ns "$NS_WAN" nft list table netdev mcvt_soak_chaos | grep -o 'packets [0-9]*' | awk '{printf "%s%s", sep, $2; sep="/"}')
        in_ns "$NS_WAN" nft delete table netdev mcvt_soak_chaos
        for d in c0 h0; do in_ns "$NS_WAN" tc qdisc del dev "$d" root; done
        ip -n "$NS_RTC" link set dev wan0 gso_max_segs 65535
        ip -n "$NS_HUB" link set dev eth0 gso_max_segs 65535
    fi
}

loss_burst() {
    local before=() after=() n drop=""
    for n in c1 c2 target; do before+=("$(connected_for "$n")"); done
    chaos_link on
    event loss 0 "5% loss and 10% reordering each way on the clients' NAT link for 60 s"
    sleep 60
    chaos_link off
    for n in c1 c2 target; do after+=("$(connected_for "$n")"); done
    for n in 0 1 2; do
        if [ "${before[$n]}" = - ] || [ "${after[$n]}" = - ] || [ "${after[$n]}" -lt $((before[n] + 55)) ]; then
            drop+=" $([ $n = 2 ] && echo target || echo "c$((n + 1))") (connected_for_s ${before[$n]} -> ${after[$n]})"
        fi
    done
    # CHAOS_COUNTS: dropped/reordered from the clients, dropped/reordered to them
    if [ -z "$drop" ]; then
        event loss_end 0 "no session dropped (connected_for_s c1 ${before[0]}->${after[0]}, c2 ${before[1]}->${after[1]}, target ${before[2]}->${after[2]}; packets dropped/reordered from the clients ${CHAOS_COUNTS%/*/*}, to them ${CHAOS_COUNTS#*/*/})"
    else
        event loss_end 0 "SESSION DROP:$drop"
    fi
}

kill_target() {
    local pid
    pid=$(target_pid) || { event target_kill 15 "NO TARGET PROCESS"; return; }
    kill -KILL "$pid"
    event target_kill 15 "SIGKILL to target pid $pid"
}

kill_hub() {
    # The shell's own stderr off meanwhile: it reports the killed job ("Killed ...").
    exec 3>&2 2>/dev/null
    kill -KILL "$HUB_PID"
    event hub_kill 30 "SIGKILL to hub pid $HUB_PID"
    wait "$HUB_PID" || true
    exec 2>&3 3>&-
    sleep "$RESTART_DELAY_S"
    start_hub
    log "hub restarted as pid $HUB_PID"
}

NAT_ADDR=192.0.2.3
roam() {
    local new=192.0.2.4
    [ "$NAT_ADDR" = 192.0.2.4 ] && new=192.0.2.3
    # Removing the old address makes the masquerade forget every mapping through it
    # (a DHCP lease change): the hub sees the clients come from $new.
    # promote_secondaries: else deleting the primary address deletes the new one with it
    in_ns "$NS_RTC" sysctl -qw net.ipv4.conf.wan0.promote_secondaries=1
    ip -n "$NS_RTC" addr add "$new/24" dev wan0
    ip -n "$NS_RTC" addr del "$NAT_ADDR/24" dev wan0
    event roam 10 "client NAT public address $NAT_ADDR -> $new"
    NAT_ADDR=$new
}

# The schedule.
if [ $QUICK = 1 ]; then
    STARTS=(20)
else
    STARTS=()
    for ((c = 30; c + 150 + 40 <= TOTAL_S; c += CYCLE_S)); do STARTS+=("$c"); done
fi
for c in ${STARTS[@]+"${STARTS[@]}"}; do
    sleep_until "$c"
    loss_burst
    sleep_until $((c + 75))
    kill_target
    if [ $QUICK = 1 ] || [ "$c" = 30 ] || [ $((c + 105)) -lt $((TOTAL_S / 2)) ]; then
        sleep_until $((c + 105))
        kill_hub
    fi
    sleep_until $((c + 150))
    roam
done
sleep_until "$TOTAL_S"
event end 0 "chaos over, draining the streams"

# Stop: the senders finish what they made (drain up to 60 s), then the receivers.
kill -INT "$PING1" "$PING2"
kill -TERM "$SEND1" "$SEND2"
wait "$SEND1" || log "sender 1 did not drain"
wait "$SEND2" || log "sender 2 did not drain"
sleep 1
for p in $(ip netns pids "$NS_TGT"); do
    if grep -q soakstream "/proc/$p/cmdline" 2>/dev/null; then kill -TERM "$p"; fi
done
sleep 1
kill "${BG_PIDS[@]}" 2>/dev/null || true
BG_PIDS=()
log "uptime: $(uptime)"

python3 "$STREAM" report "$WORK" --t0 "$T0" --quick "$QUICK" --json "$WORK/report.json" || FAILED=1
exit
}
