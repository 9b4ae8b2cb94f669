#!/usr/bin/env bash
# Control-plane load test: N real control sessions (Noise IK, device-key and resume
# logins, UDP binds and their keepalives) to a real `mcvpn hub` process over loopback,
# held idle, churned, then one contract suspended (`mcvpn-bench control`, the
# workspace's crates/mcvpn-bench). See bench/README.md ("Control-plane load test").
#
#   scripts/load.sh [--quick] [--sessions N] [--out FILE] [-- extra mcvpn-bench control options]
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SESSIONS=10000
CONTRACTS=10
IDLE=30
CHURN=60
CHURN_PCT=10
PASSWORD_LOGINS=200
OUT=""
EXTRA=()

usage() {
	cat <<EOF
Usage: scripts/load.sh [options] [-- mcvpn-bench control options]

Builds mcvpn and mcvpn-bench (release), raises the open-file limit as far as allowed,
and runs \`mcvpn-bench control\`: a fresh store with SESSIONS devices, a real
\`mcvpn hub\` on 127.0.0.1 (HTTPS off, everything else as shipped), PASSWORD_LOGINS
timed password logins, then SESSIONS sessions opened, held idle, churned, and the
first contract suspended. Prints the report; writes it as JSON to
bench/results/load-<UTC timestamp>.json (or --out FILE). Exits non-zero when not
every session could be established, or the suspension did not cut all of its
contract's sessions within 10 s (speed is reported, not asserted).

Options:
  --quick              1,000 sessions in 5 contracts, 12 s idle, 10 s churn at
                       60 %/min, 20 password logins (for CI: under a minute once built)
  --sessions N         sessions held (default $SESSIONS)
  --contracts N        contracts they are spread over (default $CONTRACTS; the first is suspended)
  --idle S             seconds of the idle measurement (default $IDLE)
  --churn S            seconds of churn (default $CHURN)
  --churn-pct P        % of the sessions reconnecting per minute (default $CHURN_PCT)
  --password-logins N  password logins to time (default $PASSWORD_LOGINS)
  --out FILE           where to write the JSON
  -h, --help           this text

Run it on an otherwise idle machine: the hub and the driver share its cores.
EOF
}

while (($#)); do
	case "$1" in
	--quick)
		SESSIONS=1000
		CONTRACTS=5
		IDLE=12
		CHURN=10
		CHURN_PCT=60
		PASSWORD_LOGINS=20
		shift
		;;
	--sessions)
		SESSIONS=${2:?--sessions needs a number}
		shift 2
		;;
	--contracts)
		CONTRACTS=${2:?--contracts needs a number}
		shift 2
		;;
	--idle)
		IDLE=${2:?--idle needs seconds}
		shift 2
		;;
	--churn)
		CHURN=${2:?--churn needs seconds}
		shift 2
		;;
	--churn-pct)
		CHURN_PCT=${2:?--churn-pct needs a number}
		shift 2
		;;
	--password-logins)
		PASSWORD_LOGINS=${2:?--password-logins needs a number}
		shift 2
		;;
	--out)
		OUT=${2:?--out needs a file}
		shift 2
		;;
	-h | --help)
		usage
		exit 0
		;;
	--)
		shift
		EXTRA=("$@")
		break
		;;
	*)
		echo "load: unknown option '$1' (see --help)" >&2
		exit 2
		;;
	esac
done

export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
echo "load: building mcvpn and mcvpn-bench (release)" >&2
(cd "$ROOT" && cargo build --release --quiet -p mcvpn -p mcvpn-bench)
BIN=$CARGO_TARGET_DIR/release

# Every session is a descriptor in the hub (its TCP connection) and two in the driver
# (TCP and UDP), which shares the sessions out among worker processes within the limit.
# The systemd unit gives the hub LimitNOFILE=65536; raise ours as far as allowed.
hard=$(ulimit -Hn)
if [[ "$hard" == unlimited ]] || ((hard >= 65536)); then
	ulimit -n 65536
else
	ulimit -n "$hard"
fi
if (($(ulimit -n) < SESSIONS + 1024)); then
	echo "load: the open-file limit is $(ulimit -n): a hub cannot hold $SESSIONS sessions" >&2
	exit 1
fi

read -r LOAD1 _ </proc/loadavg
if awk -v l="$LOAD1" -v n="$(nproc)" 'BEGIN { exit !(l >= 0.5 * n) }'; then
	echo "load: warning: load average is $LOAD1 on $(nproc) CPUs: the figures will be noisy" >&2
fi

STAMP=$(date -u +%Y%m%dT%H%M%SZ)
[[ -n "$OUT" ]] || OUT="$ROOT/bench/results/load-$STAMP.json"
mkdir -p "$(dirname "$OUT")"
"$BIN/mcvpn-bench" control --mcvpn "$BIN/mcvpn" --sessions "$SESSIONS" --contracts "$CONTRACTS" \
	--idle-seconds "$IDLE" --churn-seconds "$CHURN" --churn-percent "$CHURN_PCT" \
	--password-logins "$PASSWORD_LOGINS" --out "$OUT" "${EXTRA[@]}"
echo
echo "load: JSON written to $OUT"
