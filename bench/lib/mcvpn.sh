# shellcheck shell=bash
# The mcvpn rows of scripts/bench.sh: mcvpn (UDP), mcvpn-https (both ends on the stream
# transport, issue 12) and mcvpn-mixed (client on the stream transport, target on UDP).
#
# run_mcvpn_row CLIENT_NS HUB_NS TARGET_NS ROW_DIR   (and run_mcvpn_https_row, run_mcvpn_mixed_row)
#
# Called by the harness (row_body in bench/lib/common.sh) inside a subshell
# that runs with `set -Eeuo pipefail` and has stdout/stderr in ROW_DIR/row.log,
# after three fresh namespaces have been created and wired:
#
#   CLIENT_NS  c0 $BENCH_CLIENT_IP     198.18.1.2/24, default via 198.18.1.1
#   HUB_NS     h0 $BENCH_HUB_CLIENT_IP 198.18.1.1/24 (towards the client)
#              h1 $BENCH_HUB_TARGET_IP 198.18.2.1/24 (towards the target)
#              net.ipv4.ip_forward=1, no NAT
#   TARGET_NS  t0 $BENCH_TARGET_IP     198.18.2.2/24, default via 198.18.2.1
#
# ROW_DIR is this row's scratch directory (keys, configs, databases, logs);
# it is deleted at exit unless --keep-logs is given.
#
# The function must:
#   1. Set up the tunnel: start the mcvpn processes in the foreground (no
#      daemonizing: the harness needs their PIDs) with
#          start_in_ns NS LOGNAME CMD [ARGS...]
#      which sets STARTED_PID and sends the output to ROW_DIR/LOGNAME.log,
#      and wait until the tunnel is up (wait_for SECONDS CMD... retries CMD
#      every 0.1 s until it succeeds or SECONDS have passed).
#   2. Register the processes whose CPU time and peak RSS are reported:
#          row_proc client "$client_pid"
#          row_proc hub    "$hub_pid"
#          row_proc target "$target_pid"
#      The roles become the keys of cpu_s_per_gb and rss_mib in the JSON; use
#      the same log name as the role (start_in_ns NS hub ...) so that the
#      process's last log lines are quoted if it dies.
#   3. Set (plain assignment, same shell) ROW_TARGET_ADDR to the overlay
#      address of the target: an IPv4 address inside TARGET_NS that
#      CLIENT_NS reaches only through the tunnel (not 198.18.0.0/15, which
#      the hub routes in the clear; e.g. 100.64.0.0/10).  The harness then
#      pings it from CLIENT_NS and runs iperf3 -c from CLIENT_NS against
#      iperf3 -s in TARGET_NS (all addresses, port 5201, TCP and UDP).
#   4. Call row_version "mcvpn 0.1.0 (...)" for the version column.
#   5. Optionally set ROW_LOSS_TEST=1: TCP 1 stream is measured once more with 1 % of the
#      packets on the client's link lost each way (measure.sh, loss_test).
#   and return 0.
#
# On failure: row_fail "why" ends the row as an error row with that message;
# any other failing command also ends it (set -e) and the error names the
# command.  Teardown is not its job: afterwards the harness kills every
# process in the three namespaces and deletes them.
#
# Also available: $BENCH_ROOT (repository root), $DURATION (s per test),
# $BENCH_RUN_ID (PID of the run: put it in interface names that must be
# unique across namespaces), register_ifname IFNAME (removes a stale
# /var/run/wireguard/IFNAME.sock at exit), pid_alive PID, log MESSAGE
# (progress line on the console), require_tool BIN.
run_mcvpn_row() {
	mcvpn_row "$@" "" ""
	# shellcheck disable=SC2034 # read by measure_row (measure.sh)
	ROW_LOSS_TEST=1
}

# Issue 12: both ends on the stream transport (TLS + WebSocket to the hub's port 443).
run_mcvpn_https_row() {
	mcvpn_row "$@" https https
	# shellcheck disable=SC2034 # read by measure_row (measure.sh)
	ROW_LOSS_TEST=1
}

# Issue 12: a mixed pair, the client on the stream transport and the target on UDP.
run_mcvpn_mixed_row() {
	mcvpn_row "$@" https udp
}

# mcvpn_row CLIENT_NS HUB_NS TARGET_NS ROW_DIR CLIENT_TRANSPORT TARGET_TRANSPORT: the
# transports are passed as --transport (udp or https), or not at all when empty (the
# default, auto, which is UDP here).
mcvpn_row() {
	local client_ns=$1 hub_ns=$2 target_ns=$3 row_dir=$4 client_tr=$5 target_tr=$6
	local mcvpn=${MCVPN:-$BENCH_ROOT/target/release/mcvpn}
	[[ -x $mcvpn ]] || row_fail "no mcvpn build at $mcvpn (cargo build --release)"
	local db=$row_dir/hub.db port=51820
	local tgt_env=(MCVPN_TARGET_CONFIG="$row_dir/target.toml" MCVPN_TARGET_KEY="$row_dir/target.key" MCVPN_RUN_DIR="$row_dir/target-run")
	local cli_env=(MCVPN_CONFIG="$row_dir/client.toml" MCVPN_KEY="$row_dir/client.key" MCVPN_RUN_DIR="$row_dir/client-run")

	local hub_https=() client_args=() target_args=()
	if [[ "$client_tr$target_tr" == *https* ]]; then
		hub_https=(--https-listen "0.0.0.0:443")
	fi
	[[ -z "$client_tr" ]] || client_args=(--transport "$client_tr")
	[[ -z "$target_tr" ]] || target_args=(--transport "$target_tr")

	start_in_ns "$hub_ns" hub "$mcvpn" hub --listen "0.0.0.0:$port" --db "$db" --key "$row_dir/hub.key" \
		--status-socket "$row_dir/hub.sock" ${hub_https[@]+"${hub_https[@]}"}
	local hub_pid=$STARTED_PID
	wait_for 10 "$mcvpn" hub stats --status-socket "$row_dir/hub.sock" ||
		row_fail "the hub did not start: $(grep -v "^ *$" "$row_dir/hub.log" | tail -n 2 | tr "\n" " " | cut -c1-300)"
	# The hub has one address towards each side; the key is the same.
	local url_c url_t
	url_c=$("$mcvpn" hub url --key "$row_dir/hub.key" --listen "$BENCH_HUB_CLIENT_IP:$port")
	url_t=$("$mcvpn" hub url --key "$row_dir/hub.key" --listen "$BENCH_HUB_TARGET_IP:$port")
	printf 'bench-password-1\n' >"$row_dir/pw"
	"$mcvpn" admin --db "$db" contract add bench --admin-email it@bench.example >/dev/null
	"$mcvpn" admin --db "$db" account add bench bench --password-file "$row_dir/pw" >/dev/null

	ip netns exec "$target_ns" env "${tgt_env[@]}" "$mcvpn" target enroll --hub "$url_t" --account bench \
		--password-file "$row_dir/pw" --name bench-target >/dev/null
	start_in_ns "$target_ns" target env "${tgt_env[@]}" "$mcvpn" target run ${target_args[@]+"${target_args[@]}"}
	local target_pid=$STARTED_PID
	start_in_ns "$client_ns" client env "${cli_env[@]}" "$mcvpn" up --foreground --hub "$url_c" \
		--account bench --password-file "$row_dir/pw" ${client_args[@]+"${client_args[@]}"}
	local client_pid=$STARTED_PID

	status_ok() { # status_ok ENV... -- CMD: connected and bound
		env "$@" | python3 -c "import json,sys; s=json.load(sys.stdin); sys.exit(0 if s.get('connected') and s.get('relay_bound') else 1)"
	}
	wait_for 15 status_ok "${tgt_env[@]}" "$mcvpn" target status --json || row_fail "the target did not connect"
	wait_for 15 status_ok "${cli_env[@]}" "$mcvpn" status --json || row_fail "the client did not connect"
	# A row named for a transport must measure that transport.
	transport_of() { env "$@" | python3 -c "import json,sys; print(json.load(sys.stdin).get('transport'))"; }
	local got
	if [[ -n "$target_tr" ]]; then
		got=$(transport_of "${tgt_env[@]}" "$mcvpn" target status --json)
		[[ "$got" == "$target_tr" ]] || row_fail "the target runs with --transport $target_tr but its status says '$got'"
	fi
	got=$(transport_of "${cli_env[@]}" "$mcvpn" status --json)
	if [[ -n "$client_tr" ]]; then
		[[ "$got" == "$client_tr" ]] || row_fail "the client runs with --transport $client_tr but its status says '$got'"
	elif [[ "$got" != None && "$got" != udp ]]; then
		row_note "the client chose '$got', not UDP: this row does not measure the UDP path"
	fi
	ROW_TARGET_ADDR=$(env "${tgt_env[@]}" "$mcvpn" target status --json |
		python3 -c "import json,sys; print(json.load(sys.stdin)['overlay_ip'])")
	wait_for 10 ip netns exec "$client_ns" ping -c 1 -W 1 "$ROW_TARGET_ADDR" || row_fail "no ping through the tunnel"

	row_proc client "$client_pid"
	row_proc hub "$hub_pid"
	row_proc target "$target_pid"
	local transports=""
	[[ -z "$client_tr$target_tr" ]] || transports="client ${client_tr:-auto}, target ${target_tr:-auto}"
	local note="$transports${MCVPN_BENCH_NOTE:+${transports:+; }$MCVPN_BENCH_NOTE}"
	row_version "$("$mcvpn" --version)${note:+ ($note)}"
}
