#!/usr/bin/env python3
"""Pre-authentication flood against the hub, for netns-tests/48-preauth-flood.sh.

  preauth_flood.py tcp HOST PORT SRC_PREFIX FIRST LAST CONNS SECONDS STATUS_FILE
      Holds up to CONNS TCP connections to HOST:PORT, each bound to a source address
      SRC_PREFIX.FIRST .. SRC_PREFIX.LAST in turn, each sending either b"\\xff\\xff" (a frame
      length of 65535) or the start of a Noise IK message 1 of valid length, then nothing.
      Every connection the hub closes is reopened (paced), so the pressure lasts SECONDS.
      Writes a JSON progress line to STATUS_FILE every 0.5 s and the totals to stdout.

  preauth_flood.py udp HOST PORT RATE SECONDS
      Sends RATE garbage datagrams a second to HOST:PORT for SECONDS; the total to stdout.

One thread and epoll: 30,000 sockets are cheap for the kernel, and a thread per socket is not.
"""
import errno
import json
import os
import random
import resource
import selectors
import socket
import sys
import time

# The longest a connection attempt may stay unanswered before it is dropped and reopened
# (a hub that stops accepting leaves SYNs in its backlog).
CONNECT_GIVE_UP_S = 3.0
# New connections a second at most: enough to refill what a capped hub closes, without
# taking a whole core of the shared test machine.
OPEN_RATE = 6000


def raise_nofile(n):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = max(n, soft)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, max(want, hard)))
    except (ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def tcp(host, port, prefix, first, last, conns, seconds, status_file):
    raise_nofile(conns + 1024)
    sources = [f"{prefix}.{i}" for i in range(first, last + 1)]
    # The IK message 1 of our Hello is 125..129 bytes; 0x007d = 125 announces a valid one.
    partial_msg1 = b"\x00\x7d" + os.urandom(40)
    payloads = [b"\xff\xff", partial_msg1]
    sel = selectors.DefaultSelector()
    socks = {}  # fd -> [sock, state, opened_at]; state "connecting" or "held"
    st = dict(attempted=0, held=0, max_held=0, closed_by_hub=0, connect_failed=0, connect_gave_up=0)
    next_src = 0
    tokens = 0.0
    start = last_tick = last_status = time.monotonic()
    end = start + seconds

    def drop(fd):
        s = socks.pop(fd)
        if s[1] == "held":
            st["held"] -= 1
        try:
            sel.unregister(s[0])
        except (KeyError, ValueError):
            pass
        s[0].close()

    def write_status(now):
        with open(status_file + ".tmp", "w") as f:
            json.dump(dict(st, open=len(socks), elapsed=round(now - start, 1)), f)
        os.replace(status_file + ".tmp", status_file)

    while True:
        now = time.monotonic()
        if now >= end:
            break
        tokens = min(tokens + (now - last_tick) * OPEN_RATE, OPEN_RATE / 10)
        last_tick = now
        while len(socks) < conns and tokens >= 1:
            tokens -= 1
            src = sources[next_src % len(sources)]
            next_src += 1
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setblocking(False)
            st["attempted"] += 1
            try:
                s.bind((src, 0))
                s.connect_ex((host, port))
            except OSError:
                st["connect_failed"] += 1
                s.close()
                continue
            socks[s.fileno()] = [s, "connecting", now]
            sel.register(s, selectors.EVENT_WRITE)
        for key, _ in sel.select(timeout=0.01):
            fd = key.fd
            if fd not in socks:
                continue
            s, state, _ = socks[fd]
            if state == "connecting":
                err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if err:
                    st["connect_failed"] += 1
                    drop(fd)
                    continue
                try:
                    s.send(random.choice(payloads))
                except OSError:
                    st["closed_by_hub"] += 1
                    drop(fd)
                    continue
                socks[fd][1] = "held"
                st["held"] += 1
                st["max_held"] = max(st["max_held"], st["held"])
                sel.modify(s, selectors.EVENT_READ)
            else:
                try:
                    data = s.recv(4096)
                except BlockingIOError:
                    continue
                except OSError:
                    data = b""
                if not data:
                    st["closed_by_hub"] += 1
                    drop(fd)
        if now - last_status >= 0.5:
            last_status = now
            # SYNs the hub never answered: give up on them so the slot is reused.
            for fd in [fd for fd, s in socks.items() if s[1] == "connecting" and now - s[2] > CONNECT_GIVE_UP_S]:
                st["connect_gave_up"] += 1
                drop(fd)
            write_status(now)
    write_status(time.monotonic())
    print(json.dumps(st))


def udp(host, port, rate, seconds):
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    pool = [os.urandom(random.choice([0, 1, 8, 40, 148, 600, 1400])) for _ in range(256)]
    sent = errors = 0
    start = time.monotonic()
    while True:
        elapsed = time.monotonic() - start
        if elapsed >= seconds:
            break
        due = int(elapsed * rate)
        while sent + errors < due:
            try:
                u.sendto(pool[(sent + errors) & 255], (host, port))
                sent += 1
            except OSError as e:
                if e.errno not in (errno.ENOBUFS, errno.EAGAIN, errno.ECONNREFUSED):
                    raise
                errors += 1
        time.sleep(0.002)
    print(json.dumps(dict(datagrams_sent=sent, send_errors=errors, seconds=round(time.monotonic() - start, 1))))


if __name__ == "__main__":
    mode, a = sys.argv[1], sys.argv[2:]
    if mode == "tcp":
        tcp(a[0], int(a[1]), a[2], int(a[3]), int(a[4]), int(a[5]), float(a[6]), a[7])
    elif mode == "udp":
        udp(a[0], int(a[1]), int(a[2]), float(a[3]))
    else:
        sys.exit(f"unknown mode {mode!r}: tcp or udp")
