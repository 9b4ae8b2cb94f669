#!/usr/bin/env python3
"""Captures every frame on one interface (AF_PACKET) into a file until killed or
until --seconds pass, then reports how many frames and bytes it saw.

  capture.py IFACE OUTFILE [--seconds S]

The file is the raw frames back to back (not pcap): the tests only search it.
"""
import json
import signal
import socket
import sys
import time

ETH_P_ALL = 0x0003


def main():
    iface, out = sys.argv[1], sys.argv[2]
    seconds = float(sys.argv[sys.argv.index("--seconds") + 1]) if "--seconds" in sys.argv else 3600
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    s.bind((iface, 0))
    s.settimeout(0.2)
    stop = [False]
    signal.signal(signal.SIGTERM, lambda *_: stop.__setitem__(0, True))
    frames = total = 0
    deadline = time.monotonic() + seconds
    with open(out, "wb") as f:
        # Signal readiness only once the socket is bound: nothing sent after this is missed.
        open(out + ".ready", "w").close()
        while not stop[0] and time.monotonic() < deadline:
            try:
                b = s.recv(65535)
            except socket.timeout:
                continue
            f.write(b)
            frames += 1
            total += len(b)
    print(json.dumps({"frames": frames, "bytes": total}))


if __name__ == "__main__":
    main()
