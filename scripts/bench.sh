#!/usr/bin/env bash
# Benchmark mcvpn against userspace WireGuard implementations in network
# namespaces, all in one run.  See bench/README.md.
#
#   sudo scripts/bench.sh [--quick] [--duration N] [--rows veth,mcvpn,...]
#                         [--no-install] [--keep-logs] [--help]
set -euo pipefail

BENCH_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH_LIB="$BENCH_ROOT/bench/lib"

ALL_ROWS=(veth mcvpn mcvpn-https mcvpn-mixed boringtun gotatun wireguard-go)

usage() {
	cat <<EOF
Usage: sudo scripts/bench.sh [options]

Compares mcvpn with boringtun, gotatun and wireguard-go in network namespaces
(client -- hub -- target, the hub routing) and prints a markdown table; the
same figures are written as JSON to bench/results/<UTC timestamp>.json.

Options:
  --duration N    seconds per iperf3 test (default 10)
  --quick         every test runs 2 s (for CI: keeps the script working)
  --rows LIST     comma-separated rows to run, in this order
                  (default: ${ALL_ROWS[*]})
  --no-install    do not install missing tools; their rows become error rows
  --keep-logs     keep the work directory with the logs of every process
  --strict        exit 1 if any row is an error row (default: exit 0,
                  error rows are part of the result)
  --out FILE      write the JSON here instead of bench/results/<ts>.json
  -h, --help      this text

Rows:
  veth          plain routed veth client -> hub -> target (the ceiling)
  mcvpn         client -> hub -> target through mcvpn (bench/lib/mcvpn.sh), UDP
  mcvpn-https   the same, both ends on the stream transport (TLS + WebSocket,
                hub port 443): --transport https
  mcvpn-mixed   the same, client on the stream transport, target on UDP
  boringtun     boringtun-cli, client <-> target through the hub as a router
  gotatun       gotatun (crate gotatun-cli), same peer-to-peer topology
  wireguard-go  wireguard-go (Debian package), same peer-to-peer topology

Installs when missing (unless --no-install): iperf3, wireguard-tools,
wireguard-go with apt-get; boringtun-cli and gotatun-cli with cargo install.

The relay load test (thousands of nodes on one hub, datagrams per second, hub
CPU and memory per node) is separate and not run here: scripts/bench-relay.sh.
EOF
}

ORIG_ARGS=("$@")
DURATION=10
ROWS=("${ALL_ROWS[@]}")
NO_INSTALL=0
KEEP_LOGS=0
STRICT=0
OUT_FILE=""

while (($#)); do
	case "$1" in
	--duration)
		[[ $# -ge 2 && "$2" =~ ^[1-9][0-9]*$ ]] || {
			echo "bench: --duration needs a positive whole number of seconds" >&2
			exit 2
		}
		DURATION=$2
		shift 2
		;;
	--duration=*)
		DURATION=${1#--duration=}
		[[ "$DURATION" =~ ^[1-9][0-9]*$ ]] || {
			echo "bench: --duration needs a positive whole number of seconds" >&2
			exit 2
		}
		shift
		;;
	--quick)
		DURATION=2
		shift
		;;
	--rows | --rows=*)
		if [[ "$1" == --rows=* ]]; then
			list=${1#--rows=}
			shift
		else
			[[ $# -ge 2 ]] || {
				echo "bench: --rows needs a list, e.g. --rows veth,boringtun" >&2
				exit 2
			}
			list=$2
			shift 2
		fi
		IFS=, read -ra ROWS <<<"$list"
		seen=" "
		for r in "${ROWS[@]}"; do
			[[ "$seen" != *" $r "* ]] || {
				echo "bench: row '$r' is listed twice" >&2
				exit 2
			}
			seen+="$r "
			case " ${ALL_ROWS[*]} " in
			*" $r "*) ;;
			*)
				echo "bench: unknown row '$r' (rows: ${ALL_ROWS[*]})" >&2
				exit 2
				;;
			esac
		done
		((${#ROWS[@]})) || {
			echo "bench: --rows is empty" >&2
			exit 2
		}
		;;
	--no-install)
		NO_INSTALL=1
		shift
		;;
	--keep-logs)
		KEEP_LOGS=1
		shift
		;;
	--strict)
		STRICT=1
		shift
		;;
	--out)
		[[ $# -ge 2 ]] || {
			echo "bench: --out needs a file name" >&2
			exit 2
		}
		OUT_FILE=$2
		shift 2
		;;
	-h | --help)
		usage
		exit 0
		;;
	*)
		echo "bench: unknown option '$1' (see --help)" >&2
		exit 2
		;;
	esac
done

if ((EUID != 0)); then
	echo "bench: needs root for network namespaces: sudo $0 ${ORIG_ARGS[*]}" >&2
	exit 1
fi

# shellcheck source=SCRIPTDIR/../bench/lib/common.sh
source "$BENCH_LIB/common.sh"
# shellcheck source=SCRIPTDIR/../bench/lib/install.sh
source "$BENCH_LIB/install.sh"
# shellcheck source=SCRIPTDIR/../bench/lib/measure.sh
source "$BENCH_LIB/measure.sh"
# shellcheck source=SCRIPTDIR/../bench/lib/rows.sh
source "$BENCH_LIB/rows.sh"
# shellcheck source=SCRIPTDIR/../bench/lib/mcvpn.sh
source "$BENCH_LIB/mcvpn.sh"

exec 3>&2 # the console, for log()
trap bench_cleanup EXIT
trap 'bench_on_signal INT 130' INT
trap 'bench_on_signal TERM 143' TERM
bench_init

for tool in ip python3 ping ss timeout; do
	command -v "$tool" >/dev/null || die "'$tool' is required but not installed"
done

STAMP=$(date -u +%Y%m%dT%H%M%SZ)
[[ -n "$OUT_FILE" ]] || OUT_FILE="$BENCH_ROOT/bench/results/$STAMP.json"

log "run $BENCH_RUN_ID: rows ${ROWS[*]}, ${DURATION} s per iperf3 test, work dir $BENCH_WORK"
if ((NO_INSTALL)); then
	log "--no-install: not installing anything"
fi
ensure_tools "${ROWS[@]}"
if [[ " ${ROWS[*]} " == *" mcvpn"* ]] && [[ -z "${MCVPN:-}" ]]; then
	log "building mcvpn (release)"
	(cd "$BENCH_ROOT" && cargo build --release --quiet) || log "mcvpn build failed: its row will say so"
fi

read -r LOAD1 _ </proc/loadavg
if python3 -c 'import os, sys; sys.exit(float(sys.argv[1]) < 0.5 * os.cpu_count())' "$LOAD1"; then
	log "warning: load average is $LOAD1 on $(nproc) CPUs: other work will make the figures noisy"
fi

python3 - "$BENCH_WORK/meta.json" "$DURATION" "$(getconf CLK_TCK)" "$LOAD1" "${ROWS[@]}" <<'EOF'
import json, os, platform, sys, datetime
out, duration, clk, load1, rows = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]), sys.argv[5:]
json.dump({
    "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    "kernel": platform.release(),
    "nproc": os.cpu_count(),
    "duration_s": duration,
    "clk_tck": clk,
    "loadavg_1m": load1,
    "rows": rows,
}, open(out, "w"))
EOF

for row in "${ROWS[@]}"; do
	run_row "$row"
done

mkdir -p "$(dirname "$OUT_FILE")"
error_rows=0
python3 "$BENCH_LIB/report.py" "$BENCH_WORK" "$OUT_FILE" || error_rows=$?
log "JSON written to $OUT_FILE"
if [[ " ${ROWS[*]} " == *" mcvpn"* ]]; then
	echo
	echo "Goals, judged in this run (several runs: python3 bench/lib/goals.py bench/results/2*.json):"
	echo
	python3 "$BENCH_LIB/goals.py" "$OUT_FILE" || log "could not judge the goals"
fi
log "(the relay load test with thousands of nodes is separate: scripts/bench-relay.sh)"
if ((error_rows)); then
	if ((error_rows == 1)); then
		die "could not write the report"
	fi
	if ((STRICT)); then
		die "--strict: $((error_rows - 1)) row(s) with errors"
	fi
fi
