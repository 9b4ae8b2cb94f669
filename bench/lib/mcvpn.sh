# shellcheck shell=bash
# The mcvpn row of scripts/bench.sh.
#
# run_mcvpn_row CLIENT_NS HUB_NS TARGET_NS ROW_DIR
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
	local client_ns=$1 hub_ns=$2 target_ns=$3 row_dir=$4
	: "$client_ns" "$hub_ns" "$target_ns" "$row_dir"
	row_fail "mcvpn row not wired yet"
}
