#!/usr/bin/env bash
# Fuzzes what an unauthenticated peer or an account administrator reaches
# (fuzz/fuzz_targets/): relay datagrams, admin commands run in a contract scope,
# control frames and messages, server URLs, and the relay table driven by arbitrary
# sequences of control-plane and network events against a model of its rules.
#
#   scripts/fuzz.sh --quick            every target 20 s (CI)
#   scripts/fuzz.sh --seconds 600      every target 10 minutes
#   scripts/fuzz.sh relay_table        one target (default 60 s)
#
# Needs the nightly toolchain and cargo-fuzz (installed here when missing). Each target
# starts from the committed seeds (fuzz/seeds/TARGET) plus what earlier runs found
# (fuzz/corpus/TARGET, not committed). A crash stops the script with status 1 and leaves
# the input in fuzz/artifacts/TARGET/.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT/fuzz"
export PATH="$HOME/.cargo/bin:$PATH"
seconds=60
targets=()
while (($#)); do
    case "$1" in
    --quick) seconds=20; shift ;;
    --seconds) seconds=${2:?--seconds needs a number}; shift 2 ;;
    -h | --help) sed -n '2,13p' "$0"; exit 0 ;;
    -*) echo "fuzz.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    *) targets+=("$1"); shift ;;
    esac
done
[ ${#targets[@]} -gt 0 ] || mapfile -t targets < <(ls fuzz_targets | sed 's/\.rs$//')

if ! rustup toolchain list | grep -q '^nightly'; then
    echo "fuzz.sh: installing the nightly toolchain"
    rustup toolchain install nightly --profile minimal
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    echo "fuzz.sh: installing cargo-fuzz"
    cargo +nightly install cargo-fuzz --locked
fi

echo "== building the fuzz targets"
cargo +nightly fuzz build -O 2>&1 | tail -n 3
summary=()
for t in "${targets[@]}"; do
    mkdir -p "corpus/$t"
    echo "== fuzzing $t for ${seconds} s"
    log=$(mktemp)
    if ! cargo +nightly fuzz run -O "$t" "corpus/$t" "seeds/$t" -- \
        -max_total_time="$seconds" -max_len=4096 -print_final_stats=1 >"$log" 2>&1; then
        tail -n 40 "$log"
        echo "fuzz.sh: $t FAILED (input in fuzz/artifacts/$t/)"
        exit 1
    fi
    runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo '?')
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -n 1 | grep -o '[0-9]*' || echo '?')
    summary+=("$(printf '%-16s %10s runs  %6s edges covered  0 crashes' "$t" "$runs" "$cov")")
    rm -f "$log"
done
echo "== fuzz summary (${seconds} s each)"
printf '  %s\n' "${summary[@]}"
