#!/usr/bin/env bash
# Bad input loses nothing: random datagrams at the relay and random bytes at the
# control port are dropped and counted; the hub keeps serving, and a client that logs
# in afterwards reaches its target.
source "$(dirname "$0")/lib.sh"
alice_and_her_target

before=$(( $(hub_stat dropped_malformed) + $(hub_stat dropped_unauthorised) ))
in_ns "$NS_CLI" python3 - "$HUB_IP" "$HUB_PORT" <<'PY' && pass "the hub closed every garbage control connection" || fail "garbage control connections"
import os, random, socket, sys
host, port = sys.argv[1], int(sys.argv[2])
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for i in range(2000):
    n = random.choice([0, 1, 7, 8, 9, 40, 148, 1500])
    b = bytearray(os.urandom(n))
    if n >= 8 and i % 2:
        b[0:4] = bytes([1, random.choice([1, 2, 3]), 0, 0])  # valid headers, garbage after
    u.sendto(bytes(b), (host, port))
held_open = 0
for i in range(30):
    t = socket.create_connection((host, port), timeout=5)
    try:
        t.sendall(os.urandom(random.choice([1, 2, 100, 5000])))
        t.shutdown(socket.SHUT_WR)  # the hub must give up on a half frame at EOF
        while t.recv(4096):
            pass
    except socket.timeout:
        held_open += 1  # the hub kept a garbage connection open past EOF
    except OSError:
        # The hub may reject the garbage and close (or reset) before we finish
        # writing or half-close: that is a correct answer, not a test failure.
        # Whether the hub survived is checked below.
        pass
    t.close()
if held_open:
    sys.exit(f"the hub held {held_open} garbage connections open for 5 s after EOF")
PY
wait_until 5 "the hub counted the garbage" sh -c "[ \$(( \$($MCVPN hub stats --status-socket $HUB_SOCK --json | python3 -c 'import json,sys; r=json.load(sys.stdin)[\"relay\"]; print(r[\"dropped_malformed\"]+r[\"dropped_unauthorised\"])') )) -ge $((before + 1900)) ]" \
    && pass "the relay dropped and counted the random datagrams ($(hub_stat dropped_malformed) malformed, $(hub_stat dropped_unauthorised) unauthorised)"
kill -0 "$HUB_PID" && pass "the hub is still running" || die "the hub died"
target_connected && pass "the target's session survived" || fail "the target lost its session"
client_up "$NS_CLI" c1 alice >/dev/null && pass "a client logs in after the garbage" || fail "login failed after the garbage"
wait_until 10 "ping after the garbage" in_ns "$NS_CLI" ping -c 1 -W 1 "$TIP" && pass "and reaches the target"
