#!/usr/bin/env bash
# The main job, end to end, on one machine: a hub on the "internet", an office PC (the
# target) behind one NAT and an employee's PC (the client) behind another, each in its
# own network namespace. The client logs in with account and password, pings the
# target's overlay address and copies a file to it through the tunnel; the checksums
# must match. Everything is removed at the end, whatever happens.
#
#   sudo scripts/demo.sh
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
if [ "$(id -u)" -ne 0 ]; then
    echo "the demo creates network namespaces and TUN interfaces: run it with sudo" >&2
    exit 4
fi
bash "$ROOT/scripts/install-deps.sh"
echo "== building mcvpn (release; the first build takes a few minutes)"
(cd "$ROOT" && cargo build --release --quiet)

# shellcheck source=../netns-tests/lib.sh
source "$ROOT/netns-tests/lib.sh"
TEST_NAME=demo
topo_up
step() { printf '\n== %s\n' "$*"; }

step "operator: start the hub in namespace $NS_HUB ($HUB_IP:$HUB_PORT)"
start_hub
echo "server URL: $HUB_URL"

step "operator: add contract 'acme' and account 'alice'"
add_account acme alice "violet tuba mango 7"
admin account list

step "office PC ($NS_TGT, behind NAT): enroll once with alice's password, then run the service"
enroll_target alice office-pc
start_target
TIP=$(target_ip)

step "employee PC ($NS_CLI, behind another NAT): sudo mcvpn up"
client_up "$NS_CLI" laptop alice

step "mcvpn status"
client_cmd "$NS_CLI" laptop status

step "ping the office PC at $TIP"
in_ns "$NS_CLI" ping -c 4 -i 0.2 "$TIP"

step "copy a 32 MiB file to the office PC through the tunnel"
head -c $((32 << 20)) /dev/urandom >"$WORK/report.bin"
ip netns exec "$NS_TGT" python3 "$ROOT/netns-tests/xfer.py" recv 7000 "$WORK/report.copy" >"$WORK/recv.json" &
RPID=$!
sleep 0.5
in_ns "$NS_CLI" python3 "$ROOT/netns-tests/xfer.py" send "$TIP" 7000 "$WORK/report.bin" >"$WORK/send.json"
wait "$RPID"
SENT=$(json_get "['sha256']" <"$WORK/send.json")
GOT=$(json_get "['sha256']" <"$WORK/recv.json")
echo "sha256 on the laptop:    $SENT"
echo "sha256 on the office PC: $GOT"
echo "throughput: $(json_get "['mbit_s']" <"$WORK/send.json") Mbit/s"
[ "$SENT" = "$GOT" ] || die "checksums differ"

step "what the hub saw"
"$MCVPN" hub stats --status-socket "$HUB_SOCK"
admin session list

step "sudo mcvpn down"
client_cmd "$NS_CLI" laptop down
printf '\nDemo finished: the laptop reached the office PC through the hub, both behind NAT,\n'
printf 'and the copy arrived intact. Cleaning up the namespaces.\n'
