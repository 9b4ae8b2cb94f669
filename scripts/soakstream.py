#!/usr/bin/env python3
"""A checked, resumable TCP stream for scripts/soak.sh.

  soakstream.py recv PORT STATUS_JSON [--stall S]
  soakstream.py send HOST PORT STATUS_JSON [--chunk BYTES] [--rate CHUNKS_PER_S]
  soakstream.py report WORK_DIR --t0 EPOCH [--quick 0/1] [--json OUT]   (scripts/soak.sh)

The sender sends numbered chunks, each framed as seq (u64), length (u32), sha256 (32 bytes)
and the payload; a chunk's payload is a pure function of its number, so any chunk can be
sent again. On every connection the receiver first answers with the number of the next
chunk it expects (8 bytes), and then keeps acknowledging (the same 8 bytes) every 0.2 s.
The sender starts every connection at the receiver's number: it resumes exactly where the
receiver stands, whatever the previous connection lost in flight. A connection without an
acknowledgement for --dead seconds is given up and a new one opened (every 0.5 s until one
connects).

The receiver checks every chunk (number in sequence, sha256 of the payload); a bad chunk
is counted and its connection closed, so that the sender resends it. It records every
stall: a gap of more than --stall seconds (default 1) between two verified chunks, as
[wall-clock time of the last chunk before, of the first chunk after]. Both ends rewrite
STATUS_JSON every 0.5 s and once more when they stop. SIGTERM stops the sender
gracefully: no new chunks, then it waits (up to --drain seconds) until the receiver has
acknowledged every chunk it made, and writes its final status; SIGTERM stops the receiver
at once.
"""
import argparse
import hashlib
import json
import os
import random
import signal
import socket
import struct
import sys
import threading
import time

HDR = struct.Struct("!QI32s")
ACK = struct.Struct("!Q")


def payload(seq, size):
    return random.Random(seq).randbytes(size)


def write_json(path, obj):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(obj, f)
    os.replace(tmp, path)


def recv_exact(conn, n):
    buf = bytearray()
    while len(buf) < n:
        b = conn.recv(n - len(buf))
        if not b:
            raise ConnectionError("closed")
        buf += b
    return bytes(buf)


class Receiver:
    def __init__(self, port, status, stall):
        self.status, self.stall = status, stall
        self.lock = threading.Lock()
        self.expected = 0  # next chunk number
        self.verified_bytes = 0
        self.corrupt = 0  # chunks whose sha256 did not match
        self.out_of_order = 0  # chunks whose number was not the expected one
        self.connections = 0
        self.generation = 0
        self.first_t = None
        self.last_t = None
        self.stalls = []
        self.srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.srv.bind(("0.0.0.0", port))
        self.srv.listen(4)

    def snapshot(self):
        with self.lock:
            now = time.time()
            current = None
            if self.last_t is not None and now - self.last_t > self.stall:
                current = [self.last_t, None]
            return {"expected": self.expected, "verified_bytes": self.verified_bytes,
                    "corrupt": self.corrupt, "out_of_order": self.out_of_order,
                    "connections": self.connections, "first_t": self.first_t,
                    "last_t": self.last_t, "stalls": self.stalls, "stalled_since": current,
                    "t": now}

    def handle(self, conn, gen):
        conn.settimeout(30)
        stop = threading.Event()

        def acker():
            while not stop.wait(0.2):
                try:
                    with self.lock:
                        n = self.expected
                    conn.sendall(ACK.pack(n))
                except OSError:
                    return

        try:
            with self.lock:
                conn.sendall(ACK.pack(self.expected))
            threading.Thread(target=acker, daemon=True).start()
            while True:
                seq, size, digest = HDR.unpack(recv_exact(conn, HDR.size))
                data = recv_exact(conn, size)
                with self.lock:
                    if gen != self.generation:
                        return  # a newer connection took over
                    if seq != self.expected:
                        self.out_of_order += 1
                        return
                    if hashlib.sha256(data).digest() != digest or data != payload(seq, size):
                        self.corrupt += 1
                        return
                    now = time.time()
                    if self.first_t is None:
                        self.first_t = now
                    if self.last_t is not None and now - self.last_t > self.stall:
                        self.stalls.append([self.last_t, now])
                    self.last_t = now
                    self.expected += 1
                    self.verified_bytes += size
        except (OSError, ConnectionError, struct.error):
            pass
        finally:
            stop.set()
            conn.close()

    def run(self):
        def writer():
            while True:
                write_json(self.status, self.snapshot())
                time.sleep(0.5)

        threading.Thread(target=writer, daemon=True).start()
        while True:
            conn, _ = self.srv.accept()
            with self.lock:
                self.generation += 1
                self.connections += 1
                gen = self.generation
            threading.Thread(target=self.handle, args=(conn, gen), daemon=True).start()


class Sender:
    def __init__(self, host, port, status, chunk, rate, dead, drain):
        self.host, self.port, self.status = host, port, status
        self.chunk, self.interval, self.dead, self.drain = chunk, 1.0 / rate, dead, drain
        self.made = 0  # chunks made so far: 0 .. made-1 must all reach the receiver
        self.acked = 0
        self.connects = 0
        self.errors = {}
        self.stopping = False
        self.drained = None
        self.last_ack_t = time.monotonic()

    def snapshot(self):
        return {"made": self.made, "made_bytes": self.made * self.chunk, "acked": self.acked,
                "acked_bytes": self.acked * self.chunk, "connects": self.connects,
                "errors": self.errors, "stopping": self.stopping, "drained": self.drained,
                "t": time.time()}

    def session(self):
        s = socket.create_connection((self.host, self.port), timeout=2)
        self.connects += 1
        try:
            s.settimeout(self.dead)
            self.acked = ACK.unpack(recv_exact(s, ACK.size))[0]
            self.last_ack_t = time.monotonic()
            nxt = self.acked
            s.setblocking(False)
            pending = b""
            next_make = time.monotonic()
            rbuf = b""
            while True:
                now = time.monotonic()
                if self.stopping and self.acked >= self.made:
                    return True
                if now - self.last_ack_t > self.dead:
                    raise TimeoutError(f"no acknowledgement for {self.dead} s")
                if not self.stopping and now >= next_make:
                    self.made += 1  # a new chunk exists; it goes out in order below
                    next_make = max(next_make + self.interval, now - 1.0)
                if not pending and nxt < self.made:
                    data = payload(nxt, self.chunk)
                    pending = HDR.pack(nxt, len(data), hashlib.sha256(data).digest()) + data
                    nxt += 1
                if pending:
                    try:
                        n = s.send(pending)
                        pending = pending[n:]
                    except BlockingIOError:
                        pass
                try:
                    b = s.recv(4096)
                    if not b:
                        raise ConnectionError("closed by the receiver")
                    rbuf += b
                    while len(rbuf) >= ACK.size:
                        self.acked = max(self.acked, ACK.unpack(rbuf[:ACK.size])[0])
                        rbuf = rbuf[ACK.size:]
                        self.last_ack_t = time.monotonic()
                except BlockingIOError:
                    pass
                if not pending:
                    time.sleep(min(0.01, max(0.0, next_make - time.monotonic())))
                else:
                    time.sleep(0.001)
        finally:
            s.close()

    def run(self):
        def on_term(*_):
            if not self.stopping:
                self.stopping = True
                self.stop_deadline = time.monotonic() + self.drain

        signal.signal(signal.SIGTERM, on_term)

        def writer():
            while True:
                write_json(self.status, self.snapshot())
                time.sleep(0.5)

        threading.Thread(target=writer, daemon=True).start()
        while True:
            if self.stopping and time.monotonic() > self.stop_deadline:
                self.drained = False
                break
            try:
                if self.session():
                    self.drained = True
                    break
            except (OSError, ConnectionError, TimeoutError, struct.error) as e:
                k = type(e).__name__
                self.errors[k] = self.errors.get(k, 0) + 1
                time.sleep(0.5)
        write_json(self.status, self.snapshot())


def report(work, t0, quick, out):
    """The soak's verdict from its files in WORK (see scripts/soak.sh): prints the report,
    writes it as JSON to OUT, returns the exit status (0: every goal met)."""
    t0 = float(t0)
    events = []
    for line in open(os.path.join(work, "events.tsv")):
        t, kind, bound, detail = line.rstrip("\n").split("\t", 3)
        events.append({"t": float(t), "at_s": round(float(t) - t0, 1), "kind": kind,
                       "bound_s": float(bound), "detail": detail})
    recv = [json.load(open(os.path.join(work, f"recv{i}.json"))) for i in (1, 2)]
    send = [json.load(open(os.path.join(work, f"send{i}.json"))) for i in (1, 2)]
    failures = []
    rep = {"t0": t0, "quick": bool(quick), "streams": [], "events": [], "failures": failures}
    windows = []  # (start, end) of each event's effect, for the stalls no event explains

    def stalls(i):
        st = [tuple(s) for s in recv[i]["stalls"]]
        # a stream whose sender drained just ended; one that did not is still stalled
        if recv[i]["stalled_since"] and not send[i]["drained"]:
            st.append((recv[i]["stalled_since"][0], None))
        return st

    # The pings' replies (ping -D: "[epoch] 64 bytes from ..."), for the tunnel's recovery.
    pings = []
    for i in (1, 2):
        ts = []
        try:
            for line in open(os.path.join(work, f"ping{i}.log")):
                if line.startswith("[") and "bytes from" in line:
                    ts.append(float(line[1:line.index("]")]))
        except OSError:
            pass
        pings.append(ts)

    def ping_back(i, te, bound):
        """Seconds from te to the first reply after a gap of over 1 s that began within the
        event's bound; 0 if the replies went on; None if no reply came after it."""
        ts = pings[i]
        if not ts:
            return None
        back = 0.0
        for a, b in zip(ts, ts[1:]):
            if b - a > 1 and te - 2 <= a <= te + bound and b >= te:
                back = max(back, b - te)
        if ts[-1] < te:
            return None
        return round(back, 2)

    for ev in events:
        if ev["kind"] in ("target_kill", "hub_kill", "roam"):
            ev["ping_back_s"] = [ping_back(i, ev["t"], ev["bound_s"]) for i in (0, 1)]
            te, bound = ev["t"], ev["bound_s"]
            rec = []
            for i in (0, 1):
                r = 0.0
                for a, b in stalls(i):
                    if te - 2 <= a <= te + bound and (b is None or b >= te):
                        r = max(r, float("inf") if b is None else b - te)
                rec.append(r)
            ev["recovery_s"] = [None if r == float("inf") else round(r, 2) for r in rec]
            ev["ok"] = max(rec) <= bound
            if not ev["ok"]:
                failures.append(f"{ev['kind']} at {ev['at_s']} s: recovery {ev['recovery_s']} s > {bound} s")
            windows.append((te - 2, te + bound + 5))
        elif ev["kind"] == "loss":
            end = next((e for e in events if e["kind"] == "loss_end" and e["t"] > ev["t"]), None)
            te2 = end["t"] if end else ev["t"] + 60
            longest = []
            for i in (0, 1):
                m = 0.0
                for a, b in stalls(i):
                    b2 = time.time() if b is None else b
                    if b2 >= ev["t"] and a <= te2:
                        m = max(m, b2 - a)
                longest.append(round(m, 2))
            ev["longest_stall_s"] = longest
            ev["ok"] = bool(end) and "SESSION DROP" not in end["detail"]
            ev["sessions"] = end["detail"] if end else "no end recorded"
            if not ev["ok"]:
                failures.append(f"loss burst at {ev['at_s']} s: {ev['sessions']}")
            windows.append((ev["t"] - 2, te2 + 5))
        if ev["kind"] != "loss_end":
            rep["events"].append(ev)

    total_made = total_ok = 0
    for i in (0, 1):
        r, s = recv[i], send[i]
        lost = s["made_bytes"] - r["verified_bytes"]
        other = []
        for a, b in stalls(i):
            if not any(w0 <= a <= w1 for w0, w1 in windows):
                other.append([round(a - t0, 1), None if b is None else round(b - a, 2)])
        st = {"stream": f"c{i + 1}", "sent_bytes": s["made_bytes"], "verified_bytes": r["verified_bytes"],
              "lost_bytes": lost, "corrupt_chunks": r["corrupt"], "out_of_order": r["out_of_order"],
              "drained": s["drained"], "connections": r["connections"],
              "sender_errors": s["errors"], "stalls": len(stalls(i)),
              "stalls_outside_events": other}
        rep["streams"].append(st)
        total_made += s["made_bytes"]
        total_ok += r["verified_bytes"]
        if lost != 0 or r["corrupt"] or r["out_of_order"] or not s["drained"]:
            failures.append(f"stream c{i + 1}: {lost} bytes lost, {r['corrupt']} corrupt chunks, "
                            f"{r['out_of_order']} out of order, drained {s['drained']}")
        for a, d in other:
            if d is None or d > 5:
                failures.append(f"stream c{i + 1}: a stall of {d} s at {a} s outside every event")
    rep["sent_bytes"], rep["verified_bytes"] = total_made, total_ok
    rep["lost_bytes"] = total_made - total_ok

    # The samples: hub instances, handshakes.
    samples = []
    for line in open(os.path.join(work, "samples.tsv")):
        f = line.rstrip("\n").split("\t")
        if len(f) < 7:
            continue
        samples.append(f)
    inst = []
    for f in samples:
        t, pid, rss, fds = float(f[0]), f[1], f[2], f[3]
        if pid == "-" or rss in ("-", "") or fds in ("-", ""):
            continue
        if not inst or inst[-1]["pid"] != pid:
            inst.append({"pid": pid, "samples": []})
        inst[-1]["samples"].append((t, int(rss), int(fds)))
    hubs = []
    for h in inst:
        s = h["samples"]
        hubs.append({"pid": h["pid"], "from_s": round(s[0][0] - t0, 1), "to_s": round(s[-1][0] - t0, 1),
                     "rss_kib_first": s[0][1], "rss_kib_max": max(x[1] for x in s),
                     "rss_kib_last": s[-1][1], "fds_first": s[0][2], "fds_max": max(x[2] for x in s),
                     "fds_last": s[-1][2]})
    rep["hub_instances"] = hubs
    # The hub's samples, one every 30 s: [s from t0, pid, VmRSS KiB, open fds]
    series, last = [], None
    for h in inst:
        for t, rss, fds in h["samples"]:
            if last is None or t - last >= 30 or (series and series[-1][1] != h["pid"]):
                series.append([round(t - t0, 1), h["pid"], rss, fds])
                last = t
    rep["hub_series"] = series
    drift = None
    if inst:
        s = inst[-1]["samples"]
        want = max(t0 + 300, s[0][0] + 60)
        base = next((x for x in s if x[0] >= want), None)
        asserted = not quick and base is not None
        if base is None:
            base = next((x for x in s if x[0] >= s[0][0] + 60), s[0])
        end = s[-1]
        drift = {"pid": inst[-1]["pid"], "base_at_s": round(base[0] - t0, 1), "end_at_s": round(end[0] - t0, 1),
                 "rss_kib_base": base[1], "rss_kib_end": end[1],
                 "rss_drift_pct": round(100.0 * (end[1] - base[1]) / base[1], 1),
                 "fds_base": base[2], "fds_end": end[2], "asserted": asserted}
        if asserted and drift["rss_drift_pct"] > 10:
            failures.append(f"hub RSS drift {drift['rss_drift_pct']} % > 10 % (pid {drift['pid']})")
    rep["hub_drift"] = drift

    hs = {}
    for col, name in ((4, "c1"), (5, "c2"), (6, "target")):
        prev, resets = None, []
        for f in samples:
            ages = f[col].split(",")[1:]
            ages = [int(a) for a in ages if a not in ("-", "")]
            if prev is not None:
                for k, a in enumerate(ages):
                    if k < len(prev) and a < prev[k]:
                        resets.append(round(float(f[0]) - t0, 1))
            prev = ages
        outside = [r for r in resets if not any(w0 - t0 <= r <= w1 - t0 for w0, w1 in windows)]
        hs[name] = {"new_handshakes": len(resets), "outside_events": len(outside), "at_s": resets}
    rep["handshakes"] = hs

    # The human report.
    p = print
    p(f"== soak report ({'quick' if quick else 'full'}; times from the start of the chaos schedule)")
    for ev in rep["events"]:
        if ev["kind"] == "loss":
            p(f"  {ev['at_s']:>7} s  loss burst 60 s: longest stall c1 {ev['longest_stall_s'][0]} s, "
              f"c2 {ev['longest_stall_s'][1]} s; {ev['sessions']}  [{'ok' if ev['ok'] else 'FAIL'}]")
        elif "recovery_s" in ev:
            p(f"  {ev['at_s']:>7} s  {ev['kind']:<11} streams again after c1 {ev['recovery_s'][0]} s, "
              f"c2 {ev['recovery_s'][1]} s (bound {ev['bound_s']:.0f} s; pings back after "
              f"{ev['ping_back_s'][0]} s, {ev['ping_back_s'][1]} s)  [{'ok' if ev['ok'] else 'FAIL'}]  {ev['detail']}")
    for st in rep["streams"]:
        p(f"  stream {st['stream']}: sent {st['sent_bytes']} B, verified {st['verified_bytes']} B, lost "
          f"{st['lost_bytes']} B, corrupt {st['corrupt_chunks']}, connections {st['connections']}, "
          f"stalls > 1 s {st['stalls']} (outside events: {st['stalls_outside_events'] or 'none'})")
    p(f"  total: {rep['sent_bytes']} B sent, {rep['verified_bytes']} B verified, {rep['lost_bytes']} B lost")
    for name, h in hs.items():
        p(f"  WireGuard handshakes seen by {name}: {h['new_handshakes']} ({h['outside_events']} outside events: rekeys) at {h['at_s']} s")
    for h in hubs:
        p(f"  hub pid {h['pid']} {h['from_s']}..{h['to_s']} s: RSS {h['rss_kib_first']} -> {h['rss_kib_last']} KiB "
          f"(max {h['rss_kib_max']}), fds {h['fds_first']} -> {h['fds_last']} (max {h['fds_max']})")
    if drift:
        p(f"  hub RSS drift (pid {drift['pid']}, {drift['base_at_s']} s -> {drift['end_at_s']} s): "
          f"{drift['rss_kib_base']} -> {drift['rss_kib_end']} KiB = {drift['rss_drift_pct']:+} %, fds "
          f"{drift['fds_base']} -> {drift['fds_end']}"
          + ("" if drift["asserted"] else " (not asserted: the 10 % bound is for the full run's minute 5 to end)"))
    for f in failures:
        p(f"  FAIL: {f}")
    p("  PASS: every goal met" if not failures else f"  {len(failures)} failure(s)")
    if out:
        write_json(out, rep)
    return 1 if failures else 0


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("recv")
    r.add_argument("port", type=int)
    r.add_argument("status")
    r.add_argument("--stall", type=float, default=1.0)
    s = sub.add_parser("send")
    s.add_argument("host")
    s.add_argument("port", type=int)
    s.add_argument("status")
    s.add_argument("--chunk", type=int, default=16384)
    s.add_argument("--rate", type=float, default=50.0)
    s.add_argument("--dead", type=float, default=3.0)
    s.add_argument("--drain", type=float, default=60.0)
    rp = sub.add_parser("report")
    rp.add_argument("work")
    rp.add_argument("--t0", required=True)
    rp.add_argument("--quick", type=int, default=0)
    rp.add_argument("--json")
    a = ap.parse_args()
    if a.cmd == "report":
        sys.exit(report(a.work, a.t0, a.quick, a.json))
    if a.cmd == "recv":
        rc = Receiver(a.port, a.status, a.stall)
        signal.signal(signal.SIGTERM, lambda *_: (write_json(a.status, rc.snapshot()), os._exit(0)))
        rc.run()
    else:
        sd = Sender(a.host, a.port, a.status, a.chunk, a.rate, a.dead, a.drain)
        sd.run()
        sys.exit(0 if sd.drained else 1)


if __name__ == "__main__":
    main()
