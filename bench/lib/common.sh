# shellcheck shell=bash
# Shared helpers for scripts/bench.sh: logging, namespaces, clean-up, and the
# per-row plumbing (run_row, start_in_ns, row_proc, row_version, row_fail).
#
# Addresses (all inside namespaces this script creates; 198.18.0.0/15 is the
# range reserved for benchmarking, RFC 2544):
#   client ns  c0 198.18.1.2/24  default via 198.18.1.1
#   hub ns     h0 198.18.1.1/24  (client side), h1 198.18.2.1/24 (target side),
#              net.ipv4.ip_forward=1, no NAT
#   target ns  t0 198.18.2.2/24  default via 198.18.2.1
# Every row gets a fresh set of three namespaces, so nothing a row configures
# (routes, TUN devices, firewall rules) can leak into the next one.

BENCH_RUN_ID=$$
BENCH_NS_PREFIX="mcvb$$-"
BENCH_WORK=""
BENCH_ROW_PID=""
BENCH_CLEANED=0

BENCH_CLIENT_IP=198.18.1.2
BENCH_HUB_CLIENT_IP=198.18.1.1
BENCH_HUB_TARGET_IP=198.18.2.1
BENCH_TARGET_IP=198.18.2.2
BENCH_PREFIX_LEN=24

# Console output.  Rows run with stdout/stderr sent to their row.log, so
# progress messages go to fd 3, which scripts/bench.sh points at its stderr.
log() {
	printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&3
}

die() {
	log "error: $*"
	exit 1
}

bench_init() {
	BENCH_WORK=$(mktemp -d "/tmp/mcvb$$.XXXXXX")
	mkdir -p "$BENCH_WORK/rows"
	: >"$BENCH_WORK/ifnames"
	ip netns list >/dev/null 2>&1 || die "'ip netns' does not work here"
}

# --- clean-up ---------------------------------------------------------------

# Our namespaces: every one whose name starts with mcvb<pid>-.
bench_namespaces() {
	local prefix=${1:-$BENCH_NS_PREFIX} ns _rest
	ip netns list 2>/dev/null | while read -r ns _rest; do
		[[ "$ns" == "$prefix"* ]] && printf '%s\n' "$ns"
	done
	return 0
}

# Kill every process inside the given namespaces (TERM, then KILL after 2 s)
# and delete the namespaces.
teardown_namespaces() {
	local ns pids i any
	(($#)) || return 0
	for ns in "$@"; do
		pids=$(ip netns pids "$ns" 2>/dev/null || true)
		# shellcheck disable=SC2086 # word splitting of the pid list is wanted
		[[ -z "$pids" ]] || kill -TERM $pids 2>/dev/null || true
	done
	for ((i = 0; i < 40; i++)); do
		any=0
		for ns in "$@"; do
			pids=$(ip netns pids "$ns" 2>/dev/null || true)
			[[ -z "$pids" ]] && continue
			any=1
			# shellcheck disable=SC2086
			((i < 20)) || kill -KILL $pids 2>/dev/null || true
		done
		((any)) || break
		sleep 0.1
	done
	for ns in "$@"; do
		ip netns del "$ns" 2>/dev/null || true
	done
}

# Stop a background row (a subshell in the root namespace).  It was sent
# TERM before its namespaces were emptied: its TERM trap (row_on_term) reaps
# its children and exits.  If it does not within 5 s, kill it and its children.
finish_row_subshell() {
	local pid=$1 kids
	[[ -n "$pid" ]] || return 0
	if ! wait_for 5 pid_gone "$pid"; then
		kids=$(ps -o pid= --ppid "$pid" 2>/dev/null || true)
		# shellcheck disable=SC2086 # word splitting of the pid list is wanted
		kill -KILL "$pid" $kids 2>/dev/null || true
	fi
	wait "$pid" 2>/dev/null || true
}

remove_uapi_sockets() {
	local ifname
	[[ -f "$BENCH_WORK/ifnames" ]] || return 0
	while read -r ifname; do
		[[ -n "$ifname" ]] && rm -f "/var/run/wireguard/$ifname.sock"
	done <"$BENCH_WORK/ifnames"
	return 0
}

bench_cleanup() {
	local rc=$?
	((BENCH_CLEANED)) && return 0
	BENCH_CLEANED=1
	set +e
	[[ -z "$BENCH_ROW_PID" ]] || kill -TERM "$BENCH_ROW_PID" 2>/dev/null
	local nss pass
	# Emptying the namespaces ends whatever the row waits for, so it can act
	# on the TERM; a second pass catches a namespace it was just creating.
	for pass in 1 2; do
		mapfile -t nss < <(bench_namespaces)
		if ((${#nss[@]})); then
			log "removing namespaces ${nss[*]}"
			teardown_namespaces "${nss[@]}"
		fi
		if ((pass == 1)); then
			finish_row_subshell "$BENCH_ROW_PID"
			BENCH_ROW_PID=""
		fi
	done
	remove_uapi_sockets
	if [[ -n "$BENCH_WORK" && -d "$BENCH_WORK" ]]; then
		if ((KEEP_LOGS)); then
			log "logs kept in $BENCH_WORK"
		else
			rm -rf "$BENCH_WORK"
		fi
	fi
	return "$rc"
}

bench_on_signal() {
	local sig=$1 code=$2
	trap '' INT TERM
	log "caught SIG$sig, cleaning up"
	bench_cleanup
	trap - EXIT
	exit "$code"
}

# --- topology -----------------------------------------------------------------

# make_topology ROW: creates mcvb<pid>-ROW-{client,hub,target} and sets
# NS_CLIENT, NS_HUB, NS_TARGET.
make_topology() {
	local row=$1 ns
	NS_CLIENT="${BENCH_NS_PREFIX}${row}-client"
	NS_HUB="${BENCH_NS_PREFIX}${row}-hub"
	NS_TARGET="${BENCH_NS_PREFIX}${row}-target"
	for ns in "$NS_CLIENT" "$NS_HUB" "$NS_TARGET"; do
		ip netns add "$ns"
		ip -n "$ns" link set lo up
	done
	ip link add c0 netns "$NS_CLIENT" type veth peer name h0 netns "$NS_HUB"
	ip link add t0 netns "$NS_TARGET" type veth peer name h1 netns "$NS_HUB"
	ip -n "$NS_CLIENT" addr add "$BENCH_CLIENT_IP/$BENCH_PREFIX_LEN" dev c0
	ip -n "$NS_HUB" addr add "$BENCH_HUB_CLIENT_IP/$BENCH_PREFIX_LEN" dev h0
	ip -n "$NS_HUB" addr add "$BENCH_HUB_TARGET_IP/$BENCH_PREFIX_LEN" dev h1
	ip -n "$NS_TARGET" addr add "$BENCH_TARGET_IP/$BENCH_PREFIX_LEN" dev t0
	ip -n "$NS_CLIENT" link set c0 up
	ip -n "$NS_HUB" link set h0 up
	ip -n "$NS_HUB" link set h1 up
	ip -n "$NS_TARGET" link set t0 up
	ip -n "$NS_CLIENT" route add default via "$BENCH_HUB_CLIENT_IP"
	ip -n "$NS_TARGET" route add default via "$BENCH_HUB_TARGET_IP"
	ip netns exec "$NS_HUB" sysctl -qw net.ipv4.ip_forward=1
}

# --- helpers for row functions -------------------------------------------------

# start_in_ns NS NAME CMD [ARGS...]: runs CMD in the background inside NS with
# its output in $ROW_DIR/NAME.log; sets STARTED_PID to the PID of CMD itself
# (ip netns exec execs the command, so the PID is the daemon's).
start_in_ns() {
	local ns=$1 name=$2
	shift 2
	ip netns exec "$ns" "$@" >"$ROW_DIR/$name.log" 2>&1 </dev/null &
	STARTED_PID=$!
}

# row_proc ROLE PID: count PID's CPU time and peak RSS under ROLE
# (client/hub/target for mcvpn, a/b for the peers).  If $ROW_DIR/ROLE.log
# exists, its last lines are quoted when the process dies.
row_proc() {
	printf '%s %s\n' "$1" "$2" >>"$ROW_DIR/procs"
}

# row_version TEXT: the version string shown for the row.
row_version() {
	printf '%s\n' "$*" >"$ROW_DIR/version"
}

# row_fail MESSAGE: the row becomes an error row saying MESSAGE; ends the row.
row_fail() {
	printf '%s\n' "$*" >"$ROW_DIR/error"
	log "$ROW_NAME: error: $*"
	exit 1
}

# row_note MESSAGE: a test of the row failed but the others still count. ROW_NOTES, when
# set, is another file for them (the loss test's, which do not make the row an error row).
row_note() {
	printf '%s\n' "$*" >>"${ROW_NOTES:-$ROW_DIR/errors}"
	log "$ROW_NAME: $*"
}

# require_tool BIN: fail the row unless BIN is installed.
require_tool() {
	local bin=$1
	if [[ -n "${TOOL_ERR[$bin]:-}" ]]; then
		row_fail "${TOOL_ERR[$bin]}"
	fi
	if ! command -v "$bin" >/dev/null; then
		if ((NO_INSTALL)); then
			row_fail "'$bin' is not installed (--no-install given)"
		fi
		row_fail "'$bin' is not installed"
	fi
}

# register_ifname NAME: a userspace WireGuard interface whose control socket
# /var/run/wireguard/NAME.sock is removed on exit if its daemon left it.
register_ifname() {
	printf '%s\n' "$1" >>"$BENCH_WORK/ifnames"
}

# wait_for SECONDS CMD...: runs CMD every 0.1 s until it succeeds; fails
# once SECONDS have passed.
wait_for() {
	local now deadline
	now=${EPOCHREALTIME//[.,]/}
	deadline=$((now + $1 * 1000000))
	shift
	while :; do
		"$@" >/dev/null 2>&1 && return 0
		now=${EPOCHREALTIME//[.,]/}
		((now < deadline)) || return 1
		sleep 0.1
	done
}

# pid_alive PID: running (a zombie, i.e. exited but not yet waited for, is not).
pid_alive() {
	local st
	st=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) || return 1
	[[ -n "$st" && "$st" != Z ]]
}

pid_gone() {
	! pid_alive "$1"
}

# --- the per-row driver --------------------------------------------------------

row_on_err() {
	local cmd=$1 line=$2 src=$3
	local msg out
	[[ -s "$ROW_DIR/error" ]] && return 0
	# the command's own message, if it printed one, is the last line of row.log
	out=$(tail -n 1 "$ROW_DIR/row.log" 2>/dev/null | cut -c1-300)
	msg="command failed: $cmd (${src##*/}:$line)${out:+: $out}"
	printf '%s\n' "$msg" >"$ROW_DIR/error"
	log "$ROW_NAME: error: $msg"
}

# On any exit of the row subshell: stop the processes it started (they are
# its children) and reap them, so that none is left behind or as a zombie.
row_reap() {
	local pids i
	trap - ERR
	pids=$(jobs -p)
	[[ -n "$pids" ]] || return 0
	# shellcheck disable=SC2086 # word splitting of the pid list is wanted
	kill -TERM $pids 2>/dev/null || true
	for ((i = 0; i < 30; i++)); do
		pids=$(jobs -pr)
		[[ -n "$pids" ]] || break
		sleep 0.1
	done
	# shellcheck disable=SC2086
	[[ -z "$pids" ]] || kill -KILL $pids 2>/dev/null || true
	wait 2>/dev/null || true
}

# TERM from bench_cleanup (which then empties the namespaces as well).
row_on_term() {
	trap - TERM
	exit 143
}

# Runs in a background subshell: builds the namespaces, calls
# run_<row>_row CLIENT_NS HUB_NS TARGET_NS ROW_DIR, then measures.
row_body() {
	ROW_NAME=$1
	ROW_DIR=$2
	set -Eeuo pipefail
	trap 'row_on_err "$BASH_COMMAND" "$LINENO" "${BASH_SOURCE[0]}"' ERR
	trap - INT
	trap row_on_term TERM
	trap row_reap EXIT
	ROW_TARGET_ADDR=""
	require_tool iperf3
	make_topology "$ROW_NAME"
	local fn="run_${ROW_NAME//-/_}_row"
	"$fn" "$NS_CLIENT" "$NS_HUB" "$NS_TARGET" "$ROW_DIR"
	measure_row
}

run_row() {
	local row=$1 rdir="$BENCH_WORK/rows/$1" rc=0
	mkdir -p "$rdir"
	log "=== $row"
	(row_body "$row" "$rdir") >"$rdir/row.log" 2>&1 &
	BENCH_ROW_PID=$!
	wait "$BENCH_ROW_PID" || rc=$?
	BENCH_ROW_PID=""
	local nss
	mapfile -t nss < <(bench_namespaces "${BENCH_NS_PREFIX}${row}-")
	teardown_namespaces "${nss[@]}"
	if ((rc)) && [[ ! -s "$rdir/error" ]]; then
		printf 'row aborted (exit %s): %s\n' "$rc" "$(tail -n 1 "$rdir/row.log")" >"$rdir/error"
	fi
}
