#!/usr/bin/env bash
# The store's crash test (issue 13): `mcvpn admin` and the hub are SIGKILLed at random
# points during mixed changes to one SQLite store (contract add, additional contract,
# suspension with its notice, account add); then the store must pass integrity_check,
# hold every change whole or not at all, keep every change that finished, and every
# notice must have reached the mail sink. See scripts/crash_test.py for the checks.
#
#   scripts/crash-test.sh [--quick] [--kills N] [--seed S] [--out FILE]
#
# Full run: 1,000 kills (a few minutes). --quick: 150 kills, for CI. Everything runs
# on 127.0.0.1 in a temporary directory, removed at the end (kept on failure).
set -euo pipefail
cd "$(dirname "$0")/.."
kills=1000 seed=$RANDOM out=""
while [ $# -gt 0 ]; do
    case "$1" in
        --quick) kills=150 ;;
        --kills) kills="$2"; shift ;;
        --seed) seed="$2"; shift ;;
        --out) out="$2"; shift ;;
        -h|--help) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "crash-test: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done
export PATH="$HOME/.cargo/bin:$PATH"
MCVPN=${MCVPN:-target/release/mcvpn}
[ -n "${MCVPN_NO_BUILD:-}" ] || cargo build --release --quiet --bin mcvpn
work=$(mktemp -d /tmp/mcvpn-crash.XXXXXX)
echo "== crash test: $kills kills, seed $seed, in $work"
set +e
python3 scripts/crash_test.py "$MCVPN" "$work" --kills "$kills" --seed "$seed" | tee "$work/report.json"
rc=${PIPESTATUS[0]}
set -e
[ -z "$out" ] || tail -n 1 "$work/report.json" > "$out"
if [ "$rc" -eq 0 ]; then
    rm -rf "$work"
    echo "crash test: passed"
else
    echo "crash test: FAILED (seed $seed; the store and logs are kept in $work)" >&2
fi
exit "$rc"
