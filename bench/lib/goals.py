#!/usr/bin/env python3
"""Check bench results against mcvpn's performance goals, one column per run.

usage: goals.py RESULT.json [RESULT.json ...]

Each RESULT.json is what scripts/bench.sh wrote (bench/results/<ts>.json).  Every
goal is judged inside one run, against the peers of that same run, so a run on a
busy machine moves both sides.  Prints a markdown table (goal, figure per run,
how many of the runs that had the rows for it met it) and exits 0; a file that
cannot be read is an error (1).

The relay goals (1 M datagrams/s per core, memory per node) come from
scripts/bench-relay.sh and are not judged here, nor is issue 12's time from `mcvpn up`
to the first ping with UDP blocked (netns-tests/120-udp-blocked.sh prints its median).
"""

import json
import sys

PEERS = ("boringtun", "gotatun", "wireguard-go")


def rows_by_name(result):
    return {r["name"]: r for r in result["rows"]
            if isinstance(r, dict) and "name" in r and (not r.get("error") or "tcp1_gbps" in r)}


def best_peer(rows, key, higher=True):
    vals = [rows[p][key] for p in PEERS if p in rows and rows[p].get(key) is not None]
    if not vals:
        return None
    return max(vals) if higher else min(vals)


def ratio_goal(rows, key, floor, row="mcvpn"):
    """mcvpn's (or `row`'s) figure over the best peer's: (text, met) or None."""
    ours = rows.get(row, {}).get(key)
    best = best_peer(rows, key)
    if ours is None or not best:
        return None
    r = ours / best
    return "%.2fx" % r, r >= floor


def rtt_goal(rows):
    ours = rows.get("mcvpn", {}).get("rtt_ms")
    theirs = rows.get("boringtun", {}).get("rtt_ms")
    if ours is None or not theirs:
        return None
    return "%.3f vs %.3f ms" % (ours, theirs), ours <= theirs


def cpu_goal(rows, roles, share):
    """Each of mcvpn's `roles` at most `share` of boringtun's smaller side."""
    ours = (rows.get("mcvpn", {}).get("cpu_s_per_gb") or {})
    theirs = [v for v in (rows.get("boringtun", {}).get("cpu_s_per_gb") or {}).values() if v]
    figures = [ours.get(r) for r in roles]
    if not theirs or any(f is None for f in figures):
        return None
    limit = share * min(theirs)
    return ("%s vs %.2f" % (", ".join("%.2f" % f for f in figures), limit),
            all(f <= limit for f in figures))


def rss_goal(rows):
    rss = rows.get("mcvpn", {}).get("rss_mib") or {}
    figures = [rss.get("client"), rss.get("target")]
    if any(f is None for f in figures):
        return None
    return "%.1f, %.1f MiB" % tuple(figures), max(figures) <= 16.0


# Issue 12: the stream transport (TLS + WebSocket on the hub's port 443).

def https_vs_udp_goal(rows, share):
    """mcvpn-https TCP 1 stream at least `share` of the mcvpn (UDP) row's, same run."""
    ours = rows.get("mcvpn-https", {}).get("tcp1_gbps")
    udp = rows.get("mcvpn", {}).get("tcp1_gbps")
    if ours is None or not udp:
        return None
    return "%.0f %%" % (100.0 * ours / udp), ours >= share * udp


def https_hub_cpu_goal(rows, limit):
    cpu = (rows.get("mcvpn-https", {}).get("cpu_s_per_gb") or {}).get("hub")
    if cpu is None:
        return None
    return "%.2f s/GB" % cpu, cpu <= limit


def https_ends_cpu_goal(rows, factor):
    """Client and target of mcvpn-https at most `factor` x their figures in the mcvpn row."""
    https = rows.get("mcvpn-https", {}).get("cpu_s_per_gb") or {}
    udp = rows.get("mcvpn", {}).get("cpu_s_per_gb") or {}
    pairs = [(https.get(r), udp.get(r)) for r in ("client", "target")]
    if any(h is None or not u for h, u in pairs):
        return None
    return (", ".join("%.2f vs %.2f" % (h, factor * u) for h, u in pairs),
            all(h <= factor * u for h, u in pairs))


def loss_info(rows):
    """Not a goal: TCP 1 stream with 1 % loss on the client's link, https row and udp row."""
    https = rows.get("mcvpn-https", {}).get("tcp1_loss1_gbps")
    udp = rows.get("mcvpn", {}).get("tcp1_loss1_gbps")
    if https is None and udp is None:
        return None
    fmt = lambda v: "?" if v is None else "%.3f" % v  # noqa: E731
    return "https %s, udp %s Gbit/s" % (fmt(https), fmt(udp)), None


def mixed_info(rows):
    """Not a goal: the mixed pair's TCP 1 stream over the best peer's."""
    outcome = ratio_goal(rows, "tcp1_gbps", 0.0, row="mcvpn-mixed")
    return None if outcome is None else (outcome[0], None)


GOALS = [
    ("TCP 1 stream >= 4x best peer", lambda rows: ratio_goal(rows, "tcp1_gbps", 4.0)),
    ("TCP 4 streams >= 4x best peer", lambda rows: ratio_goal(rows, "tcp4_gbps", 4.0)),
    ("UDP 64 B pps >= 2x best peer", lambda rows: ratio_goal(rows, "udp64_kpps", 2.0)),
    # Not a goal of its own: the same test counted where the tunnel ends (received plus
    # dropped by the full receiving socket), which tells a slow tunnel from a starved
    # receiver.
    ("(UDP 64 B delivered by the tunnel, same ratio)", lambda rows: ratio_goal(rows, "udp64_delivered_kpps", 2.0)),
    ("ping RTT <= boringtun's", rtt_goal),
    ("client, target CPU/GB <= 1/4 boringtun side", lambda rows: cpu_goal(rows, ("client", "target"), 0.25)),
    ("hub CPU/GB <= 1/10 boringtun side", lambda rows: cpu_goal(rows, ("hub",), 0.10)),
    ("client, target peak RSS <= 16 MiB", rss_goal),
    ("https: TCP 1 stream >= 2x best peer (UDP p2p)", lambda rows: ratio_goal(rows, "tcp1_gbps", 2.0, row="mcvpn-https")),
    ("https: TCP 1 stream >= 40 % of mcvpn's UDP row", lambda rows: https_vs_udp_goal(rows, 0.40)),
    ("https: hub CPU/GB <= 1.0 s", lambda rows: https_hub_cpu_goal(rows, 1.0)),
    ("https: client, target CPU/GB <= 2x their UDP figures", lambda rows: https_ends_cpu_goal(rows, 2.0)),
    # Not goals: figures printed beside them (no verdict).
    ("(mixed pair: TCP 1 stream / best peer)", mixed_info),
    ("(TCP 1 stream, 1 % loss on the client's link)", loss_info),
]


def goals_table(results):
    lines = [
        "| goal | " + " | ".join(r.get("date", "?") for r in results) + " | met |",
        "|---|" + "---|" * len(results) + "---|",
    ]
    for title, check in GOALS:
        cells, met, judged = [], 0, 0
        for result in results:
            outcome = check(rows_by_name(result))
            if outcome is None:
                # A row missing from the run (--rows, or an error row): nothing to judge.
                cells.append("n/a")
                continue
            text, ok = outcome
            if ok is None:
                # A figure shown beside the goals, not judged.
                cells.append(text)
                continue
            cells.append(text + ("" if ok else " (no)"))
            met += ok
            judged += 1
        verdict = "%d of %d" % (met, judged) if judged or not title.startswith("(") else "-"
        lines.append("| %s | %s | %s |" % (title, " | ".join(cells), verdict))
    return "\n".join(lines) + "\n"


def main():
    if len(sys.argv) < 2 or sys.argv[1] in ("-h", "--help"):
        print(__doc__.strip())
        sys.exit(0 if len(sys.argv) == 2 else 2)
    results = []
    for path in sys.argv[1:]:
        try:
            with open(path) as f:
                result = json.load(f)
        except (OSError, ValueError) as e:
            print("goals: cannot read %s: %s" % (path, e), file=sys.stderr)
            sys.exit(1)
        if not isinstance(result, dict) or not isinstance(result.get("rows"), list):
            print("goals: %s is not a scripts/bench.sh result (the relay test's files are "
                  "judged by scripts/bench-relay.sh)" % path, file=sys.stderr)
            sys.exit(1)
        results.append(result)
    print(goals_table(results), end="")


if __name__ == "__main__":
    main()
