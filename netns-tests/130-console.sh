#!/usr/bin/env bash
# The web console in a real browser (issue 14): Debian's Chromium, headless, driven by
# selenium through chromium-driver from the second client's namespace, against the hub's
# HTTPS port. alice, acme's account administrator, logs in, adds bob, sees bob's
# `mcvpn up` (first client namespace) under live sessions, presses Disconnect and bob's
# client ends within 1 s, locks bob and the next `mcvpn up` is refused, downloads the
# access history as CSV for Excel, and logs out: the old cookie opens nothing. Every page
# has `lang`, labels on its fields and no sideways scroll at 360 px. Then olga, an
# operator, logs in with the operator choice, suspends and resumes acme (第23条) and finds
# the administrators' pages closed to her. Screenshots are kept
# in target/netns-artefacts/130-console/; MCVPN_UPDATE_DOCS=1 copies three to docs/.
# About 30 s.
source "$(dirname "$0")/lib.sh"

command -v chromium >/dev/null && command -v chromedriver >/dev/null && /usr/bin/python3 -c 'import selenium' ||
    die "needs chromium, chromium-driver and python3-selenium: run scripts/install-deps.sh"

topo_up
start_hub
add_account acme alice alice-password-1
admin contract admin acme alice >/dev/null
printf 'bob-passphrase-2026\n' >"$WORK/pw-bob"
printf 'olga-operator-passphrase\n' >"$WORK/pw-olga"
admin operator add olga --password-file "$WORK/pw-olga" >/dev/null

# The browser trusts the hub's own certificate by its key's hash, nothing more.
SPKI=$(in_ns "$NS_CLI2" openssl s_client -connect "$HUB_IP:$HUB_HTTPS_PORT" </dev/null 2>/dev/null |
    openssl x509 -pubkey -noout | openssl pkey -pubin -outform der | openssl dgst -sha256 -binary | base64)
[ -n "$SPKI" ] || die "could not read the hub's certificate"

# What the browser script runs for bob's client, from its namespace.
# shellcheck disable=SC2046
UP_CMD="ip netns exec $NS_CLI env $(client_envs bob) $(printf '%q ' "$MCVPN" up --hub "$HUB_URL" --account bob --password-file "$WORK/pw-bob")"
RUNNING_CMD="env $(client_envs bob) $(printf '%q ' "$MCVPN" status --json) >/dev/null"

SHOTS=$WORK/screens
mkdir -p "$SHOTS"
set +e
ip netns exec "$NS_CLI2" /usr/bin/python3 "$ROOT/netns-tests/console_browser.py" \
    --base "https://$HUB_IP:$HUB_HTTPS_PORT" --spki "$SPKI" --contract acme \
    --admin alice --admin-password-file "$WORK/pw-alice" --user bob --user-password-file "$WORK/pw-bob" \
    --operator olga --operator-password-file "$WORK/pw-olga" \
    --up-cmd "$UP_CMD" --running-cmd "$RUNNING_CMD" --client-log "$WORK/bob/client.log" --out "$SHOTS" >"$WORK/browser.out" 2>"$WORK/browser.log"
rc=$?
set -e
while IFS= read -r line; do
    case $line in
    PASS:*) pass "${line#PASS: }" ;;
    FAIL:*) fail "${line#FAIL: }" ;;
    *) log "$line" ;;
    esac
done <"$WORK/browser.out"
[ "$rc" -eq 0 ] || fail "the browser script exited with $rc: $(tail -n 5 "$WORK/browser.log")"

# The audit log agrees with what the browser saw: the console's actions, marked as such.
via=$(admin log --json --limit 500 | python3 -c "
import json,sys
print(' '.join(sorted({e['action'] for e in json.load(sys.stdin) if (e.get('source') or '').endswith('via console')})))")
log "audit actions via console: $via"
[[ $via == *account.lock* && $via == *contract.suspend* ]] && pass "the hub's audit log marks the console's actions 'via console'" ||
    fail "no console action in the audit log: $via"

ARTEFACTS=$ROOT/target/netns-artefacts/130-console
rm -rf "$ARTEFACTS"
mkdir -p "$ARTEFACTS"
cp -r "$SHOTS"/. "$ARTEFACTS"/
log "screenshots and the CSV kept in $ARTEFACTS: $(cd "$ARTEFACTS" && ls -- *.png | tr '\n' ' ')"
if [ "${MCVPN_UPDATE_DOCS:-0}" = 1 ]; then
    for page in dashboard accounts history; do
        cp "$(ls "$ARTEFACTS"/*-"$page".png | head -n 1)" "$ROOT/docs/console-$page.png"
    done
    log "copied the dashboard, accounts and history screenshots to docs/"
fi
