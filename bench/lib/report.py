#!/usr/bin/env python3
"""Turn the raw outputs of scripts/bench.sh into JSON and a markdown table.

usage: report.py WORK_DIR OUT_JSON

Exit status: 0, or 1 + the number of rows with an "error" (at most 100), so
that scripts/bench.sh --strict can fail; a crash of this script is also 1.

WORK_DIR holds meta.json (written by bench.sh) and rows/<row>/ with the files
described in bench/lib/measure.sh.  The JSON goes to OUT_JSON, the table to
stdout.  Ratios compare each figure with the best of the peer rows
(boringtun, gotatun, wireguard-go) in the same run.
"""

import json
import os
import re
import sys

PEERS = ("boringtun", "gotatun", "wireguard-go")


def read_text(path):
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return ""


def read_pairs(path):
    """'ROLE NUMBER' lines -> {role: int}, in file order."""
    out = {}
    for line in read_text(path).splitlines():
        parts = line.split()
        if len(parts) == 2:
            try:
                out[parts[0]] = int(parts[1])
            except ValueError:
                pass
    return out


def read_json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def tcp_result(rdir, name):
    """(gbps, bytes received) or (None, None)."""
    d = read_json(os.path.join(rdir, name + ".json"))
    if not d or d.get("error"):
        return None, None
    s = d.get("end", {}).get("sum_received")
    if not s or not s.get("seconds"):
        return None, None
    return s["bits_per_second"] / 1e9, s["bytes"]


def udp_result(rdir):
    """(packets per second received, in thousands: (packets - lost) / seconds; the
    share of what the sender sent that never reached the receiving iperf3, in %; the
    share of it that was dropped at the receiving socket, full, in %; packets per
    second the tunnel delivered to the receiving host: received + those drops)."""
    d = read_json(os.path.join(rdir, "udp64.json"))
    if not d or d.get("error"):
        return None, None, None, None
    end = d.get("end", {})
    s = end.get("sum_received") if "packets" in end.get("sum_received", {}) else end.get("sum")
    if not s or not s.get("seconds"):
        return None, None, None, None
    sent = s.get("packets")
    lost_pct = 100.0 * s["lost_packets"] / sent if sent else None
    drops = read_text(os.path.join(rdir, "udp64_rcv_drops"))
    # Never more than what was lost: the socket's count may include a datagram or two
    # from before the test's own counting began.
    rcv_drops = min(int(drops), s["lost_packets"]) if drops.isdigit() else None
    rcv_drop_pct = 100.0 * rcv_drops / sent if sent and rcv_drops is not None else None
    received = s["packets"] - s["lost_packets"]
    delivered = (received + rcv_drops) / s["seconds"] / 1000.0 if rcv_drops is not None else None
    return received / s["seconds"] / 1000.0, lost_pct, rcv_drop_pct, delivered


def rtt_ms(rdir):
    text = read_text(os.path.join(rdir, "ping.txt"))
    m = re.search(r"= [\d.]+/([\d.]+)/[\d.]+/[\d.]+ ms", text)
    return float(m.group(1)) if m else None


def rnd(x, nd):
    return None if x is None else round(x, nd)


def build_row(name, rdir, clk_tck):
    row = {"name": name, "version": read_text(os.path.join(rdir, "version")) or None}
    error = read_text(os.path.join(rdir, "error"))
    notes = [l for l in read_text(os.path.join(rdir, "errors")).splitlines() if l]
    measured = os.path.exists(os.path.join(rdir, "tcp1.json")) or os.path.exists(
        os.path.join(rdir, "ping.txt"))
    if error and not measured:
        row["error"] = error
        return row

    tcp1, bytes1 = tcp_result(rdir, "tcp1")
    tcp4, bytes4 = tcp_result(rdir, "tcp4")
    row["tcp1_gbps"] = rnd(tcp1, 3)
    row["tcp4_gbps"] = rnd(tcp4, 3)
    udp64, udp64_lost, udp64_rcv_drop, udp64_delivered = udp_result(rdir)
    row["udp64_kpps"] = rnd(udp64, 1)
    row["udp64_lost_pct"] = rnd(udp64_lost, 1)
    # The part of the loss that the tunnel delivered but the receiving socket had no
    # room for (the rest: the sender's TUN queue or the tunnel itself).
    row["udp64_rcv_drop_pct"] = rnd(udp64_rcv_drop, 1)
    row["udp64_delivered_kpps"] = rnd(udp64_delivered, 1)
    row["rtt_ms"] = rnd(rtt_ms(rdir), 3)
    # Rows with the lossy-link test (measure.sh, loss_test): TCP 1 stream with 1 % of the
    # packets on the client's link dropped each way, and how many were dropped.
    if os.path.exists(os.path.join(rdir, "tcp1_loss1.json")):
        row["tcp1_loss1_gbps"] = rnd(tcp_result(rdir, "tcp1_loss1")[0], 3)
        dropped = read_text(os.path.join(rdir, "tcp1_loss1_dropped"))
        row["tcp1_loss1_dropped"] = int(dropped) if dropped.isdigit() else None
        why = read_text(os.path.join(rdir, "tcp1_loss1_errors"))
        if why:
            row["tcp1_loss1_error"] = "; ".join(why.splitlines())

    roles = list(read_pairs(os.path.join(rdir, "procs")))
    if roles:
        before = read_pairs(os.path.join(rdir, "cpu_before"))
        after = read_pairs(os.path.join(rdir, "cpu_after"))
        gb = ((bytes1 or 0) + (bytes4 or 0)) / 1e9
        cpu = {}
        for role in roles:
            if role in before and role in after and gb > 0:
                cpu[role] = round((after[role] - before[role]) / clk_tck / gb, 3)
            else:
                cpu[role] = None
        row["cpu_s_per_gb"] = cpu
        rss = read_pairs(os.path.join(rdir, "rss"))
        row["rss_mib"] = {r: (round(rss[r] / 1024.0, 1) if r in rss else None) for r in roles}
    else:
        row["cpu_s_per_gb"] = None
        row["rss_mib"] = None

    problems = ([error] if error else []) + notes
    if problems:
        row["error"] = "; ".join(problems)
    return row


# --- the table ---------------------------------------------------------------

def cpu_total(row):
    c = row.get("cpu_s_per_gb")
    if not c or any(v is None for v in c.values()):
        return None
    return sum(c.values())


def rss_max(row):
    r = row.get("rss_mib")
    if not r or any(v is None for v in r.values()):
        return None
    return max(r.values())


# (column title, getter, higher is better, decimals)
METRICS = [
    ("TCP 1 stream Gbit/s", lambda r: r.get("tcp1_gbps"), True, 2),
    ("TCP 4 streams Gbit/s", lambda r: r.get("tcp4_gbps"), True, 2),
    ("UDP 64 B kpps", lambda r: r.get("udp64_kpps"), True, 0),
    ("RTT ms", lambda r: r.get("rtt_ms"), False, 3),
    ("CPU s/GB", cpu_total, False, 2),
    ("peak RSS MiB", rss_max, False, 1),
]


def fmt_num(x, nd):
    return "%.*f" % (nd, x)


def detail(row, key, nd):
    d = row.get(key)
    if not d:
        return ""
    parts = ["%s %s" % (k, "?" if v is None else fmt_num(v, nd)) for k, v in d.items()]
    return " [" + ", ".join(parts) + "]"


def table(rows):
    best = {}
    for title, get, higher, _nd in METRICS:
        vals = [(get(r), r["name"]) for r in rows if r["name"] in PEERS and get(r) is not None]
        if vals:
            best[title] = (max if higher else min)(vals)
    lines = [
        "| row | version | " + " | ".join(m[0] for m in METRICS) + " |",
        "|---|---|" + "---:|" * len(METRICS),
    ]
    errors = []
    for r in rows:
        cells = [r["name"], (r.get("version") or "?").replace("|", "/")]
        if r.get("error") and "tcp1_gbps" not in r:
            cells += ["error"] * len(METRICS)
        else:
            for title, get, _higher, nd in METRICS:
                v = get(r)
                if v is None:
                    cells.append("n/a" if title.startswith(("CPU", "peak")) and r.get("cpu_s_per_gb") is None
                                 else "error")
                    continue
                cell = fmt_num(v, nd)
                if title in best and best[title][0]:
                    cell += " (%.2fx)" % (v / best[title][0])
                if title.startswith("UDP") and r.get("udp64_lost_pct") is not None:
                    at_rcv = r.get("udp64_rcv_drop_pct")
                    cell += (" [lost %.0f%%, %.0f%% at the receiver]" % (r["udp64_lost_pct"], at_rcv)
                             if at_rcv is not None else " [lost %.0f%%]" % r["udp64_lost_pct"])
                if title.startswith("CPU"):
                    cell += detail(r, "cpu_s_per_gb", 2)
                elif title.startswith("peak"):
                    cell += detail(r, "rss_mib", 1)
                cells.append(cell)
        if r.get("error"):
            errors.append("- **%s**: %s" % (r["name"], r["error"]))
        lines.append("| " + " | ".join(cells) + " |")
    out = "\n".join(lines) + "\n"
    if best:
        out += ("\nRatios: figure / best peer (of %s) in this run; best: %s.\n"
                % ("/".join(PEERS), ", ".join("%s %s" % (t, b[1]) for t, b in best.items())))
    else:
        out += "\nNo peer row produced figures: no ratios.\n"
    out += ("UDP 64 B: packets/s received by iperf3 (-b 0, sender at full speed); lost: the share "
            "of what it sent that did not arrive; at the receiver: the share that came out of the "
            "tunnel but found the receiving socket full.\n")
    out += ("CPU s/GB: utime+stime of the tunnel processes during the TCP tests / GB received "
            "(total, per process in brackets). Peak RSS: VmHWM, largest process (per process in brackets).\n")
    lossy = []
    for r in rows:
        if "tcp1_loss1_gbps" not in r:
            continue
        v, base, dropped = r["tcp1_loss1_gbps"], r.get("tcp1_gbps"), r.get("tcp1_loss1_dropped")
        if v is None:
            lossy.append("%s error (%s)" % (r["name"], r.get("tcp1_loss1_error") or "no figure"))
            continue
        lossy.append("%s %s Gbit/s (%s of its lossless figure, %s packets dropped)" % (
            r["name"], fmt_num(v, 3), "%.0f %%" % (100.0 * v / base) if base else "?",
            "?" if dropped is None else dropped))
    if lossy:
        out += "TCP 1 stream with 1 %% of the packets on the client's link lost each way: %s.\n" % "; ".join(lossy)
    if errors:
        out += "\nErrors:\n" + "\n".join(errors) + "\n"
    return out


def main():
    work, out_json = sys.argv[1], sys.argv[2]
    meta = read_json(os.path.join(work, "meta.json"))
    rows = [build_row(n, os.path.join(work, "rows", n), meta["clk_tck"]) for n in meta["rows"]]
    result = {
        "date": meta["date"],
        "kernel": meta["kernel"],
        "nproc": meta["nproc"],
        "duration_s": meta["duration_s"],
        "loadavg_1m_at_start": meta.get("loadavg_1m"),
        "rows": rows,
    }
    with open(out_json, "w") as f:
        json.dump(result, f, indent=2)
        f.write("\n")
    print()
    print("mcvpn benchmark, %s, kernel %s, %d CPUs, %d s per test\n"
          % (meta["date"], meta["kernel"], meta["nproc"], meta["duration_s"]))
    print(table(rows), end="")
    errors = sum(1 for r in rows if r.get("error"))
    sys.exit(1 + min(errors, 100) if errors else 0)


if __name__ == "__main__":
    main()
