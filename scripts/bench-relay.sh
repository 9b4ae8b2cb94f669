#!/usr/bin/env bash
# Relay load test: the hub's real relay loop with 1,000 and 10,000 simulated nodes
# over loopback (`mcvpn-bench relay`, the workspace's crates/mcvpn-bench), each at
# full rate and then at half the rate the hub forwarded, to check that nothing is
# dropped below saturation. See bench/README.md ("Relay load test").
#
#   scripts/bench-relay.sh [--quick] [--seconds N] [--nodes "1000 10000"] [--fraction 0.5]
#                          [--out FILE] [-- extra mcvpn-bench relay options]
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SECONDS_PER_RUN=10
NODES="1000 10000"
FRACTION=0.5
OUT=""
EXTRA=()

usage() {
	cat <<EOF
Usage: scripts/bench-relay.sh [options] [-- mcvpn-bench relay options]

Builds mcvpn-bench (release) and runs \`mcvpn-bench relay\` for each node count: once
at full rate, once at FRACTION of the rate the hub forwarded.  Prints each report and
a summary table; writes all reports as one JSON array to
bench/results/relay-<UTC timestamp>.json (or --out FILE).

Options:
  --quick         1 s per run and 1,000 nodes only (for CI: keeps the script working;
                  the figures are too short to judge the goals)
  --seconds N     measurement seconds per run (default $SECONDS_PER_RUN)
  --nodes LIST    node counts, space- or comma-separated (default "$NODES")
  --fraction F    the second run's rate as a fraction of the first's forwarded rate
                  (default $FRACTION; 0 skips the second run)
  --out FILE      where to write the JSON
  -h, --help      this text

Run as root for the hub's 8 MiB socket buffer (otherwise net.core.rmem_max caps it)
and on an otherwise idle machine: the relay, the senders and the receivers share it.
EOF
}

while (($#)); do
	case "$1" in
	--quick)
		SECONDS_PER_RUN=1
		NODES="1000"
		shift
		;;
	--seconds)
		SECONDS_PER_RUN=${2:?--seconds needs a number}
		shift 2
		;;
	--nodes)
		NODES=${2:?--nodes needs a list}
		NODES=${NODES//,/ }
		shift 2
		;;
	--fraction)
		FRACTION=${2:?--fraction needs a number}
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
		echo "bench-relay: unknown option '$1' (see --help)" >&2
		exit 2
		;;
	esac
done

command -v python3 >/dev/null || {
	echo "bench-relay: python3 is required" >&2
	exit 1
}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
echo "bench-relay: building mcvpn-bench (release)" >&2
(cd "$ROOT" && cargo build --release --quiet -p mcvpn-bench)
BIN=$CARGO_TARGET_DIR/release/mcvpn-bench

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
[[ -n "$OUT" ]] || OUT="$ROOT/bench/results/relay-$STAMP.json"

read -r LOAD1 _ </proc/loadavg
if python3 -c 'import os, sys; sys.exit(float(sys.argv[1]) < 0.5 * os.cpu_count())' "$LOAD1"; then
	echo "bench-relay: warning: load average is $LOAD1 on $(nproc) CPUs: the figures will be noisy" >&2
fi

# Two generators: single datagrams with sendmmsg (every datagram its own syscall slot
# at the hub), and GSO batches of 16 as real nodes send them (the hub then routes and
# sends a batch at a time).
MODES=("singles:--batch 64" "gso16:--gso 16 --batch 8")
i=0
for n in $NODES; do
	for mode in "${MODES[@]}"; do
		name=${mode%%:*}
		read -ra margs <<<"${mode#*:}"
		i=$((i + 1))
		echo
		echo "=== $n nodes, $name, full rate ==="
		"$BIN" relay --nodes "$n" --seconds "$SECONDS_PER_RUN" "${margs[@]}" --out "$WORK/$i-full.json" "${EXTRA[@]}"
		rate=$(python3 -c 'import json, sys; print(int(json.load(open(sys.argv[1]))["forwarded_per_s"] * float(sys.argv[2])))' \
			"$WORK/$i-full.json" "$FRACTION")
		if ((rate > 0)); then
			echo
			echo "=== $n nodes, $name, $rate datagrams/s ($FRACTION of the forwarded rate) ==="
			"$BIN" relay --nodes "$n" --seconds "$SECONDS_PER_RUN" "${margs[@]}" --rate "$rate" --out "$WORK/$i-part.json" "${EXTRA[@]}"
		fi
	done
done

mkdir -p "$(dirname "$OUT")"
python3 - "$OUT" "$WORK"/*.json <<'EOF'
import json, sys
out, files = sys.argv[1], sys.argv[2:]
runs = [json.load(open(f)) for f in files]
json.dump(runs, open(out, "w"), indent=1)
print()
print("| nodes | rate limit | offered/s | forwarded/s | hub CPU | CPU s per 10^6 | heap B/node | RSS B/node | lost | loss | other CPU |")
print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
def num(x, spec=",.0f", scale=1):
    return "-" if x is None else format(x * scale, spec)

for r in runs:
    m, t = r["memory"], r["totals"]
    print(f"| {r['nodes']:,} | {num(r['rate_limit_per_s']) if r['rate_limit_per_s'] else 'none'} "
          f"| {num(r['offered_per_s'])} | {num(r['forwarded_per_s'])} "
          f"| {num(r['hub_cpu_utilisation'], '.0f', 100)} % | {num(r['hub_cpu_s_per_million'], '.2f')} "
          f"| {num(m['heap_per_node_bytes'])} | {num(m['rss_per_node_bytes'])} "
          f"| {t['lost']:,} | {num(r['loss_ratio'], '.3f', 100)} % | {num(r['other_processes_cpu'], '.2f')} |")
if any(r["other_processes_cpu"] > 0.2 for r in runs):
    print("\nother CPU: cores other processes used during a run; above 0.2 that run's figures are noisy.")
EOF
echo
echo "bench-relay: JSON written to $OUT"
