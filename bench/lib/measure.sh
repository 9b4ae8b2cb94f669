# shellcheck shell=bash
# The measurements every row gets once its run_<row>_row function has set up
# the path and set ROW_TARGET_ADDR.  Raw outputs land in $ROW_DIR and
# bench/lib/report.py turns them into figures:
#   ping.txt                 ping -c 50 -i 0.01 (RTT average)
#   tcp1.json, tcp4.json     iperf3 -J, 1 and 4 TCP streams
#   udp64.json               iperf3 -J -u -l 64 -b 0 (receiver packets/s)
#   udp64_rcv_drops          datagrams the receiving iperf3's socket dropped (full)
#   cpu_before, cpu_after    "ROLE TICKS" (utime+stime) around the TCP tests
#   rss                      "ROLE KB" (VmHWM) at the end of the row
#   tcp1_loss1.json          iperf3 -J, 1 TCP stream with 1 % loss on the client's link
#                            (rows that set ROW_LOSS_TEST=1); tcp1_loss1_dropped: packets dropped

IPERF_PORT=5201

# proc_ticks PID: utime + stime in clock ticks (all threads of the process).
proc_ticks() {
	local stat rest
	stat=$(<"/proc/$1/stat")
	rest=${stat##*) } # the command name may contain spaces and parentheses
	local -a f
	read -ra f <<<"$rest"
	# after the name: f[0] is field 3 (state), so utime (14) is f[11], stime f[12]
	echo $((f[11] + f[12]))
}

cpu_snapshot() {
	local out="$ROW_DIR/$1" role pid
	: >"$out"
	[[ -f "$ROW_DIR/procs" ]] || return 0
	while read -r role pid; do
		if pid_alive "$pid"; then
			printf '%s %s\n' "$role" "$(proc_ticks "$pid")" >>"$out"
		else
			row_note "$role process (pid $pid) is gone before '$1'"
		fi
	done <"$ROW_DIR/procs"
}

rss_snapshot() {
	local role pid kb
	: >"$ROW_DIR/rss"
	[[ -f "$ROW_DIR/procs" ]] || return 0
	while read -r role pid; do
		kb=$(awk '/^VmHWM:/ {print $2}' "/proc/$pid/status" 2>/dev/null || true)
		if [[ -n "$kb" ]]; then
			printf '%s %s\n' "$role" "$kb" >>"$ROW_DIR/rss"
		else
			row_note "$role process (pid $pid) is gone, no peak RSS"
		fi
	done <"$ROW_DIR/procs"
}

check_procs_alive() {
	local role pid
	[[ -f "$ROW_DIR/procs" ]] || return 0
	while read -r role pid; do
		pid_alive "$pid" && continue
		local tail=""
		[[ -f "$ROW_DIR/$role.log" ]] && tail=$(tail -n 3 "$ROW_DIR/$role.log" | tr '\n' ' ' | cut -c1-300)
		row_fail "$role process (pid $pid) exited${tail:+: $tail}"
	done <"$ROW_DIR/procs"
}

tcp_listening() { # NS PORT
	[[ -n "$(ip netns exec "$1" ss -Hltn "sport = :$2" 2>/dev/null)" ]]
}

# iperf_test NAME DESCRIPTION [IPERF3 CLIENT ARGS...]: one-off iperf3 server in the target
# namespace, client in the client namespace; JSON in $ROW_DIR/NAME.json.
# Returns non-zero (and notes why) when the test did not produce figures.
iperf_test() {
	local name=$1 desc=$2 spid rc=0 why
	shift 2
	check_procs_alive
	log "$ROW_NAME: $desc, ${DURATION} s"
	start_in_ns "$NS_TARGET" "iperf3-server-$name" iperf3 -s -1 -p "$IPERF_PORT"
	spid=$STARTED_PID
	if ! wait_for 5 tcp_listening "$NS_TARGET" "$IPERF_PORT"; then
		kill -KILL "$spid" 2>/dev/null || true
		wait "$spid" 2>/dev/null || true
		row_note "$name: iperf3 server did not start"
		return 1
	fi
	ip netns exec "$NS_CLIENT" timeout -k 5 $((DURATION + 30)) \
		iperf3 -c "$ROW_TARGET_ADDR" -p "$IPERF_PORT" -t "$DURATION" -J \
		--connect-timeout 5000 "$@" \
		>"$ROW_DIR/$name.json" 2>"$ROW_DIR/$name.err" </dev/null || rc=$?
	# the one-off server exits after its test; do not let it linger
	wait_for 5 pid_gone "$spid" || kill -KILL "$spid" 2>/dev/null || true
	wait "$spid" 2>/dev/null || true
	# iperf3 3.12 exits 0 even when it cannot connect: also look at the JSON
	why=$(python3 "$BENCH_LIB/iperf_check.py" "$ROW_DIR/$name.json" 2>&1) ||
		why="could not check $name.json: $why"
	if ((rc)) || [[ -n "$why" ]]; then
		[[ -n "$why" ]] || why=$(tail -n 1 "$ROW_DIR/$name.err" 2>/dev/null || true)
		((rc == 124)) && why="timed out after $((DURATION + 30)) s${why:+: $why}"
		row_note "$name: iperf3 failed (exit $rc)${why:+: $why}"
		return 1
	fi
}

measure_row() {
	[[ -n "${ROW_TARGET_ADDR:-}" ]] || row_fail "run_${ROW_NAME//-/_}_row did not set ROW_TARGET_ADDR"
	check_procs_alive
	log "$ROW_NAME: waiting for $ROW_TARGET_ADDR to answer from the client namespace"
	wait_for 15 ip netns exec "$NS_CLIENT" ping -c 1 -W 1 "$ROW_TARGET_ADDR" ||
		row_fail "$ROW_TARGET_ADDR does not answer ping from the client namespace after 15 s"
	check_procs_alive

	log "$ROW_NAME: ping RTT (50 x 10 ms)"
	ip netns exec "$NS_CLIENT" ping -q -c 50 -i 0.01 -W 2 "$ROW_TARGET_ADDR" \
		>"$ROW_DIR/ping.txt" 2>&1 || row_note "ping: $(tail -n 2 "$ROW_DIR/ping.txt" | tr '\n' ' ')"

	cpu_snapshot cpu_before
	iperf_test tcp1 "TCP, 1 stream" || true
	iperf_test tcp4 "TCP, 4 streams" -P 4 || true
	cpu_snapshot cpu_after

	# Drops at the receiving iperf3's socket, for every row alike: tells packets the
	# tunnel lost from packets it delivered to a receiver that had no room for them.
	start_in_ns "$NS_TARGET" udp64-drops python3 "$BENCH_LIB/udp_drops.py" "$IPERF_PORT" "$ROW_DIR/udp64_rcv_drops"
	local drops_pid=$STARTED_PID
	iperf_test udp64 "UDP, 64-byte payloads, unlimited rate" -u -l 64 -b 0 || true
	kill -TERM "$drops_pid" 2>/dev/null || true
	wait "$drops_pid" 2>/dev/null || true

	if [[ "${ROW_LOSS_TEST:-0}" == 1 ]]; then
		loss_test
	fi

	rss_snapshot
	check_procs_alive
	log "$ROW_NAME: done"
}

# A lossy client link: each packet on the client <-> hub link dropped at random with
# probability LOSS_PCT %, each way. Inner TCP over the stream transport's outer TCP takes
# loss differently from inner TCP over UDP (the outer connection retransmits and stalls
# the inner one instead of the inner one backing off), hence this test.
# netem is not in every kernel (nor in the development VM's): nftables' numgen does the
# drop, at the ingress of each end of the link. Both ends send with gso_max_segs 1, so the
# packets on the link are single packets as on a real wire, not 64 KiB GSO batches that
# one drop would take away whole.
LOSS_PCT=1
link_loss() { # link_loss on|off
	local ns dev
	for ns in "$NS_CLIENT:c0" "$NS_HUB:h0"; do
		dev=${ns#*:}
		ns=${ns%%:*}
		if [[ "$1" == on ]]; then
			ip -n "$ns" link set dev "$dev" gso_max_segs 1
			ip netns exec "$ns" nft -f - <<EOF
table netdev mcvb_loss {
	chain ingress {
		type filter hook ingress device "$dev" priority 0;
		numgen random mod 100 < $LOSS_PCT counter drop
	}
}
EOF
		else
			ip netns exec "$ns" nft delete table netdev mcvb_loss 2>/dev/null || true
			ip -n "$ns" link set dev "$dev" gso_max_segs 65535
		fi
	done
}

# Its failures are noted in tcp1_loss1_errors, not in the row's errors: the figure is shown
# beside the table, and a row that measured everything else is no error row for it.
loss_test() {
	# shellcheck disable=SC2034 # read by row_note, called from iperf_test
	local ROW_NOTES="$ROW_DIR/tcp1_loss1_errors"
	: >"$ROW_DIR/tcp1_loss1.json"
	if ! command -v nft >/dev/null; then
		row_note "skipped, nft (nftables) is not installed"
		return 0
	fi
	if ! link_loss on 2>"$ROW_DIR/loss.err"; then
		row_note "could not make the link lossy: $(head -n 1 "$ROW_DIR/loss.err")"
		link_loss off
		return 0
	fi
	iperf_test tcp1_loss1 "TCP, 1 stream, ${LOSS_PCT} % loss on the client's link each way" || true
	# What was dropped, for the record (both directions).
	local ns dropped=0 n
	for ns in "$NS_CLIENT" "$NS_HUB"; do
		n=$(ip netns exec "$ns" nft list table netdev mcvb_loss 2>/dev/null | grep -o 'packets [0-9]*' | awk '{print $2}' || true)
		dropped=$((dropped + ${n:-0}))
	done
	printf '%s\n' "$dropped" >"$ROW_DIR/tcp1_loss1_dropped"
	link_loss off
}
