#!/usr/bin/env python3
"""Prints docs/experiments.md section 8's table from the run folders of experiments/pretrained.sh:
   experiments/pretrained-table.py RUNS_DIR [RUNS_DIR ...]   (each with pretrained/ and/or scratch/)."""
import json, os, sys

def row(name, m):
    return f"| {name} | {m['head']:.2f} | {m['medium']:.2f} | {m['tail']:.2f} | **{m['top1']:.2f}** | {m['ece']:.2f} |"

print("| run | Head | Medium | Tail | All | ECE |")
print("| --- | ---: | ---: | ---: | ---: | ---: |")
for root in sys.argv[1:]:
    for start in ("pretrained", "scratch"):
        base = os.path.join(root, start)
        if not os.path.isdir(base):
            continue
        label = f"{os.path.basename(root.rstrip('/'))} {start}"
        s1 = os.path.join(base, "stage1", "metrics.json")
        if os.path.exists(s1) and json.load(open(s1)).get("final"):
            print(row(f"{label}: stage I", json.load(open(s1))["final"]))
        for method, title in (("crt", "cRT"), ("las", "MiSLAS")):
            f = os.path.join(base, method, "sweep.json")
            if not os.path.exists(f):
                continue
            d = json.load(open(f))
            rows = {r["rho"]: r for r in d["rows"]}
            print(row(f"{label}: {title} (rho = 0)", rows[0]["final_test"]))
            sel = d["selected_rho"]
            print(row(f"{label}: {title} + H2T, rho = {sel:g} chosen on validation", rows[sel]["final_test"]))
