#!/usr/bin/env bash
# Unproven WebSocket links (issue 12, with issue 11's pre-auth budget): 128 source
# addresses each hold 32 TLS connections upgraded to the hub's WebSocket path that never
# log in or bind, half of them sending the start of the biggest frame the hub accepts
# (all but its last byte), reopened as the hub closes them. Meanwhile a real client on
# `--transport https` logs in from another address within 5 s, and the hub's peak RSS
# stays at or under 256 MiB (it was 1.5 GiB: every link cost tungstenite's 128 KiB read
# buffer, zero-filled, and a 256 KiB message buffer). Prints the figures. About 45 s.
source "$(dirname "$0")/lib.sh"

SOURCES=128
PER_SOURCE=32
FLOOD_S=25
BIG_FRAME=16000
LOGIN_MAX_S=5
RSS_MAX_MIB=256

NS_ATK=$P-atk
ALL_NS+=("$NS_ATK")
topo_up
attacker_sources 198.18.1 "$SOURCES"

ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
start_hub
add_account acme alice alice-password-1
enroll_target alice >/dev/null
start_target
TIP=$(target_ip)

(
    while [ -d "/proc/$HUB_PID" ]; do
        awk '/^VmRSS/ {print $2}' "/proc/$HUB_PID/status" 2>/dev/null >>"$WORK/samples" || true
        sleep 0.5
    done
) &
SAMPLER=$!

ip netns exec "$NS_ATK" python3 "$ROOT/netns-tests/wss_flood.py" "$HUB_IP" "$HUB_HTTPS_PORT" 198.18.1 1 "$SOURCES" \
    "$PER_SOURCE" "$FLOOD_S" "$BIG_FRAME" >"$WORK/flood.json" 2>"$WORK/flood.log" &
FLOOD=$!
sleep 10
https_stat() { "$MCVPN" hub stats --status-socket "$HUB_SOCK" --json | json_get "['https']['$1']"; }
log "flood running: $(https_stat links_total) links opened so far, $(https_stat links_unproven) closed unproven"

t0=$(date +%s.%N)
if client_up "$NS_CLI" c1 alice --transport https >"$WORK/up.out" 2>&1; then login_ok=1; else login_ok=0; fi
t1=$(date +%s.%N)
login_s=$(python3 -c "print(f'{$t1 - $t0:.2f}')")
log "mcvpn up --transport https during the flood: $([ $login_ok = 1 ] && echo ok || echo FAILED) in $login_s s"
[ $login_ok = 1 ] || cat "$WORK/up.out"
if [ $login_ok = 1 ]; then
    in_ns "$NS_CLI" ping -c 3 -i 0.2 -W 2 "$TIP" >/dev/null && pass "ping $TIP over https during the flood" ||
        fail "ping $TIP over https during the flood"
fi

wait "$FLOOD" || fail "the flood script failed: $(tail -n 5 "$WORK/flood.log")"
hwm_kb=$(awk '/^VmHWM/ {print $2}' "/proc/$HUB_PID/status" 2>/dev/null || echo 0)
kill "$SAMPLER" 2>/dev/null || true
wait "$SAMPLER" 2>/dev/null || true
peak_kb=$(awk '$1 > m {m = $1} END {print m + 0}' "$WORK/samples")
[ "$hwm_kb" -gt "$peak_kb" ] && peak_kb=$hwm_kb
peak_mib=$((peak_kb / 1024))
log "figures: flood $(cat "$WORK/flood.json"); login ${login_s} s; hub peak RSS ${peak_mib} MiB"
log "hub https counters: $("$MCVPN" hub stats --status-socket "$HUB_SOCK" --json | json_get "['https']")"
log "hub pre-auth counters: $("$MCVPN" hub stats --status-socket "$HUB_SOCK" --json | json_get "['preauth']")"

upgraded=$(json_get "['upgraded']" <"$WORK/flood.json")
[ "${upgraded:-0}" -ge $((SOURCES * PER_SOURCE)) ] && pass "the flood held its links ($upgraded upgrades)" ||
    fail "the flood upgraded only ${upgraded:-0} links: the test did not load the hub"
kill -0 "$HUB_PID" 2>/dev/null && pass "the hub survived the flood" || die "the hub died"
if [ $login_ok = 1 ] && python3 -c "import sys; sys.exit(0 if $login_s <= $LOGIN_MAX_S else 1)"; then
    pass "mcvpn up --transport https logged in during the flood in $login_s s (<= $LOGIN_MAX_S s)"
else
    fail "mcvpn up during the flood: ok=$login_ok after $login_s s (want success within $LOGIN_MAX_S s)"
fi
[ "$peak_mib" -le "$RSS_MAX_MIB" ] && pass "hub peak RSS $peak_mib MiB (<= $RSS_MAX_MIB MiB)" ||
    fail "hub peak RSS $peak_mib MiB (want <= $RSS_MAX_MIB MiB)"
