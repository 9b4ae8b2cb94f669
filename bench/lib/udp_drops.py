#!/usr/bin/env python3
"""Record how many datagrams the receiving UDP socket on PORT dropped.

usage: udp_drops.py PORT OUT_FILE    (run inside the receiver's namespace)

Polls /proc/self/net/udp (and udp6) every 50 ms and keeps in OUT_FILE the
largest "drops" count seen on a socket bound to PORT: datagrams that reached
the receiving host but not the application, because its socket buffer was
full.  The count lives only as long as the socket, so it is sampled while the
test runs; a drop in the last 50 ms may be missed.  Runs until killed.

Written by the benchmark so that the 64-byte UDP figure can say whether the
packets a VPN did not deliver were lost in the tunnel or at the receiver.
"""

import os
import signal
import sys
import time


def socket_drops(port):
    """Largest drop count among the sockets bound to `port`, or None."""
    best = None
    for table in ("/proc/self/net/udp", "/proc/self/net/udp6"):
        try:
            with open(table) as f:
                lines = f.readlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) < 13:
                continue
            local_port = int(fields[1].rsplit(":", 1)[1], 16)
            if local_port == port:
                drops = int(fields[-1])
                best = drops if best is None else max(best, drops)
    return best


def main():
    port, out = int(sys.argv[1]), sys.argv[2]
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    seen = 0
    with open(out, "w") as f:
        f.write("0\n")
    while True:
        drops = socket_drops(port)
        if drops is not None and drops > seen:
            seen = drops
            with open(out + ".tmp", "w") as f:
                f.write("%d\n" % seen)
            # rename: a reader never sees a half-written file
            os.replace(out + ".tmp", out)
        time.sleep(0.05)


if __name__ == "__main__":
    main()
