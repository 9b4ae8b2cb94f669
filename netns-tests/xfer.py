#!/usr/bin/env python3
"""TCP file transfer for the tests: prints sha256, byte count and throughput as JSON.

  xfer.py recv PORT OUTFILE [--timeout S]    (listens on 0.0.0.0, one connection)
  xfer.py send HOST PORT INFILE [--mbit N]   (--mbit: pace the sending to N Mbit/s)
"""
import hashlib
import json
import socket
import sys
import time

CHUNK = 1 << 16


def recv(port, out, timeout):
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("0.0.0.0", port))
    srv.listen(1)
    srv.settimeout(timeout)
    conn, _ = srv.accept()
    conn.settimeout(timeout)
    h = hashlib.sha256()
    n = 0
    t0 = None
    with open(out, "wb") as f:
        while True:
            b = conn.recv(CHUNK)
            if not b:
                break
            if t0 is None:
                t0 = time.monotonic()
            h.update(b)
            f.write(b)
            n += len(b)
    dt = time.monotonic() - (t0 or time.monotonic())
    print(json.dumps({"sha256": h.hexdigest(), "bytes": n, "seconds": round(dt, 3)}))


def send(host, port, path, mbit=None):
    h = hashlib.sha256()
    n = 0
    s = socket.create_connection((host, port), timeout=30)
    t0 = time.monotonic()
    with open(path, "rb") as f:
        while True:
            b = f.read(CHUNK)
            if not b:
                break
            h.update(b)
            s.sendall(b)
            n += len(b)
            if mbit:  # ahead of the pace: wait until the bytes sent are due
                ahead = n * 8 / (mbit * 1e6) - (time.monotonic() - t0)
                if ahead > 0:
                    time.sleep(ahead)
    s.shutdown(socket.SHUT_WR)
    s.recv(1)  # wait for the receiver to close: all bytes are across
    dt = time.monotonic() - t0
    print(json.dumps({"sha256": h.hexdigest(), "bytes": n, "seconds": round(dt, 3),
                      "mbit_s": round(n * 8 / dt / 1e6, 1)}))


if __name__ == "__main__":
    args = sys.argv[1:]
    if args[:1] == ["recv"]:
        timeout = float(args[args.index("--timeout") + 1]) if "--timeout" in args else 120
        recv(int(args[1]), args[2], timeout)
    elif args[:1] == ["send"]:
        mbit = float(args[args.index("--mbit") + 1]) if "--mbit" in args else None
        send(args[1], int(args[2]), args[3], mbit)
    else:
        sys.exit(__doc__)
