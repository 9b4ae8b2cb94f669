#!/usr/bin/env python3
"""Unproven WebSocket links against the hub's HTTPS port, for
netns-tests/126-https-preauth-flood.sh.

  wss_flood.py HOST PORT SRC_PREFIX FIRST LAST PER_SOURCE SECONDS BIG_FRAME_BYTES

From each source address SRC_PREFIX.FIRST .. SRC_PREFIX.LAST it holds PER_SOURCE TLS 1.3
connections upgraded to the hub's WebSocket path, never logging in or binding. Every
other one then sends the start of one binary frame announcing BIG_FRAME_BYTES and all
of it but the last byte (what makes a WebSocket reader buffer the most), the rest send
nothing. Whatever the hub closes is reopened, so the pressure lasts SECONDS. Prints
JSON totals: upgrades, big frames sent, closed by the hub, failures.
"""
import base64
import json
import os
import socket
import ssl
import struct
import sys
import threading
import time

host, port = sys.argv[1], int(sys.argv[2])
prefix, first, last = sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
per_source, seconds, big = int(sys.argv[6]), float(sys.argv[7]), int(sys.argv[8])

ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE  # the hub's own certificate; nothing here trusts it
ctx.minimum_version = ssl.TLSVersion.TLSv1_3
totals = dict(upgraded=0, big_frames=0, closed_by_hub=0, failed=0)
lock = threading.Lock()


def count(key):
    with lock:
        totals[key] += 1


def big_frame_start(n):
    """A masked client binary frame announcing n bytes, with n - 1 of them."""
    head = bytes([0x82, 0x80 | 127]) + struct.pack(">Q", n) if n > 0xFFFF else bytes([0x82, 0x80 | 126]) + struct.pack(">H", n)
    return head + os.urandom(4) + os.urandom(n - 1)


def open_link(src, send_big):
    try:
        s = socket.create_connection((host, port), timeout=5, source_address=(src, 0))
        t = ctx.wrap_socket(s, server_hostname="hub")
        key = base64.b64encode(os.urandom(16)).decode()
        t.sendall(
            f"GET /mcvpn/v1 HTTP/1.1\r\nHost: hub\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
        )
        if b" 101 " not in t.recv(4096):
            t.close()
            count("failed")
            return None
        count("upgraded")
        if send_big and big > 0:
            t.sendall(big_frame_start(big))
            count("big_frames")
        t.setblocking(False)
        return t
    except OSError:
        count("failed")
        return None


def still_open(t):
    try:
        return t.recv(1) != b""
    except (ssl.SSLWantReadError, BlockingIOError):
        return True
    except OSError:
        return False


def worker(src, end):
    held, n = [], 0
    while time.time() < end:
        alive = []
        for t in held:
            if still_open(t):
                alive.append(t)
            else:
                count("closed_by_hub")
                t.close()
        held = alive
        while len(held) < per_source and time.time() < end:
            t = open_link(src, n % 2 == 1)
            n += 1
            if t is None:
                time.sleep(0.2)
                break
            held.append(t)
        time.sleep(0.2)
    for t in held:
        t.close()


end = time.time() + seconds
threads = [threading.Thread(target=worker, args=(f"{prefix}.{i}", end)) for i in range(first, last + 1)]
for th in threads:
    th.start()
for th in threads:
    th.join()
print(json.dumps(totals))
