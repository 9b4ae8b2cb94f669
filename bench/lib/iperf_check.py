#!/usr/bin/env python3
"""usage: iperf_check.py IPERF3_JSON

Prints why an iperf3 -J run produced no figures, or nothing when it did.
Needed because iperf3 3.12 exits 0 even when it cannot connect."""

import json
import sys

try:
    with open(sys.argv[1]) as f:
        d = json.load(f)
except (OSError, ValueError) as e:
    print("no JSON output (%s)" % e.__class__.__name__)
    sys.exit()
end = d.get("end") or {}
if d.get("error"):
    print(d["error"])
elif not (end.get("sum_received") or end.get("sum")):
    print("no end-of-test summary in the JSON")
