#!/usr/bin/env bash
# Runs every test: `cargo test` (unit and property tests), then each end-to-end test in
# netns-tests/ against a release build. Needs root (namespaces, TUN).
#
#   sudo scripts/netns-test.sh            everything
#   sudo scripts/netns-test.sh 10 40      only the end-to-end tests whose names start so
#   SKIP_SLOW=1 ...                       skip the tests marked slow (the rekey test)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
if [ "$(id -u)" -ne 0 ]; then
    echo "netns-test.sh needs root for network namespaces and TUN: sudo $0" >&2
    exit 4
fi
bash scripts/install-deps.sh

# The store tests run against PostgreSQL too (MCVPN_TEST_PG): a throw-away cluster for
# this run, stopped and removed on every way out.
# Beside it a TLS-only one (hostssl, its own CA) for the tests of TLS to the store
# (MCVPN_TEST_PG_TLS, MCVPN_TEST_PG_TLS_CA).
PG_DIR=$(mktemp -d /tmp/mcvpn-pg.XXXXXX)
trap 'bash scripts/pg-throwaway.sh stop "$PG_DIR/cluster"; bash scripts/pg-throwaway.sh stop "$PG_DIR/tls"; rm -rf "$PG_DIR"' EXIT
MCVPN_TEST_PG=$(bash scripts/pg-throwaway.sh start "$PG_DIR/cluster")
export MCVPN_TEST_PG
echo "== PostgreSQL for the store tests: $MCVPN_TEST_PG"
{
    read -r MCVPN_TEST_PG_TLS
    read -r MCVPN_TEST_PG_TLS_CA
} < <(bash scripts/pg-throwaway.sh start-tls "$PG_DIR/tls")
[ -n "$MCVPN_TEST_PG_TLS" ] && [ -f "$MCVPN_TEST_PG_TLS_CA" ] || {
    echo "the TLS PostgreSQL for the store tests did not start" >&2
    exit 1
}
export MCVPN_TEST_PG_TLS MCVPN_TEST_PG_TLS_CA
echo "== PostgreSQL with TLS only for the store tests: $MCVPN_TEST_PG_TLS (CA $MCVPN_TEST_PG_TLS_CA)"

echo "== cargo test"
# One run, kept whole: a summary here, and on a failure the failing tests' own output
# (a second run to show it could pass and hide a flaky failure).
test_log=$(mktemp /tmp/mcvpn-cargo-test.XXXXXX)
if cargo test --release --no-fail-fast >"$test_log" 2>&1; then
    grep -E "^(test result|running)" "$test_log" || true
    rm -f "$test_log"
else
    grep -E "^(test result|running|error)|FAILED|panicked at" "$test_log" || true
    echo "cargo test failed; the failing tests' output:"
    sed -n '/^failures:$/,/^test result:/p' "$test_log" | head -n 200
    echo "(the whole log: $test_log)"
    exit 1
fi
echo "== building mcvpn (release)"
cargo build --release --quiet

echo "== systemd units"
if command -v systemd-analyze >/dev/null; then
    # verify wants ExecStart's binary to exist: check copies pointing at this build.
    units=$(mktemp -d)
    for u in systemd/*.service; do
        sed "s#/usr/local/bin/mcvpn#$ROOT/target/release/mcvpn#" "$u" >"$units/$(basename "$u")"
    done
    if systemd-analyze verify "$units"/*.service; then
        echo "systemd-analyze verify: ok"
    else
        echo "systemd-analyze verify failed"
        rm -rf "$units"
        exit 1
    fi
    rm -rf "$units"
    # The hub faces the internet, the monitor holds operator credentials: their units
    # must stay hardened (exposure <= 2.0 of 10).
    for unit in mcvpn-hub mcvpn-monitor; do
        score=$(systemd-analyze security --offline=yes "systemd/$unit.service" 2>&1 | grep -o "exposure level for $unit.service: [0-9.]*" || true)
        if systemd-analyze security --offline=yes --threshold=20 "systemd/$unit.service" >/dev/null 2>&1; then
            echo "systemd-analyze security: ${score:-?} (<= 2.0): ok"
        else
            echo "systemd-analyze security: ${score:-?}, above 2.0"
            exit 1
        fi
    done
else
    echo "systemd-analyze not available: skipped"
fi

selected=("$@")
outputs="$ROOT/target/netns-artefacts/outputs"
mkdir -p "$outputs"
passed=() failed=()
for t in netns-tests/[0-9]*.sh; do
    name=$(basename "$t" .sh)
    if [ ${#selected[@]} -gt 0 ]; then
        match=0
        for s in "${selected[@]}"; do [[ $name == "$s"* ]] && match=1; done
        [ $match -eq 1 ] || continue
    fi
    if [ -n "${SKIP_SLOW:-}" ] && grep -q "rekey" <<<"$name"; then
        echo "== $name (skipped: SKIP_SLOW)"
        continue
    fi
    echo "== $name"
    start=$SECONDS
    # Namespaces of this suite are named mcvt<suite pid>t<n>-...: the leftover check
    # below then sees only ours, not those of other runs on the machine.
    # Each test's output also goes to a file, so that a failure's own lines can be shown
    # again under the summary (CI shows only the end of a long log).
    if RUN_ID="$$t${#passed[@]}x${#failed[@]}" bash "$t" 2>&1 | tee "$outputs/$name.log"; [ "${PIPESTATUS[0]}" -eq 0 ]; then
        passed+=("$name ($((SECONDS - start)) s)")
    else
        failed+=("$name")
    fi
done
echo
echo "== summary: ${#passed[@]} passed, ${#failed[@]} failed"
for p in "${passed[@]}"; do echo "  ok    $p"; done
for f in "${failed[@]}"; do echo "  FAIL  $f"; done
for f in "${failed[@]}"; do
    echo
    echo "== $f: its failed checks and its last lines (whole output: $outputs/$f.log)"
    grep -E "FAIL|Error|error|panicked" "$outputs/$f.log" | head -n 20 || true
    echo "  ..."
    tail -n 25 "$outputs/$f.log"
done
leftover=$(ip netns list | grep -c "^mcvt$$t" || true)
if [ "$leftover" -ne 0 ]; then
    echo "FAIL: $leftover test namespaces left behind"
    exit 1
fi
[ ${#failed[@]} -eq 0 ]
