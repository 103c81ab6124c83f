#!/usr/bin/env python3
"""Collects experiments/fit-vs-mlnet.sh's jobs into a Markdown table (stdout) and a JSON file.
Usage: experiments/fit_table.py OUT_DIR JSON_OUT"""
import glob, json, os, re, sys

out, target = sys.argv[1], sys.argv[2]
walls = {}
for line in open(os.path.join(out, "wall.txt")):
    m = re.match(r"(\S+) (\S+) (?:fit )?rc=(\d+) wall=(\d+) s", line)
    if m: walls[(m[1], m[2])] = (int(m[3]), int(m[4]))
cpu = None
rows = []
for summary in sorted(glob.glob(os.path.join(out, "*", "summary.json"))):
    job = os.path.basename(os.path.dirname(summary))
    name, budget = job.rsplit("-", 1)
    s = json.load(open(summary))
    p = s["plan"]
    rows.append(dict(set=name, tool="h2t fit", budget=budget, plan=f"{p['tuning']} at {p['image_size'] or 'native'}"
                     f" px, {p['epochs']} epochs, {p['precision']}", chosen=s["chosen"], head=s["head"],
                     medium=s["medium"], tail=s["tail"], mean_per_class=s["mean_per_class"], micro=s["micro"],
                     wall_s=walls.get((name, budget), (None, None))[1], job_s=round(s["wall_seconds"])))
for peer in sorted(glob.glob(os.path.join(out, "*-mlnet.json"))):
    name = os.path.basename(peer)[:-len("-mlnet.json")]
    d = json.load(open(peer))
    cpu = cpu or d["cpu"]
    rows.append(dict(set=name, tool="ML.NET", budget="-", plan=d["trainer"]["name"] + " (ML.NET defaults)" if isinstance(d["trainer"], dict)
                     else "LbfgsMaximumEntropy on frozen DnnImageFeaturizer ResNet-18", chosen="-",
                     head=100 * d["head"], medium=100 * d["medium"], tail=100 * d["tail"],
                     mean_per_class=100 * d["mean_per_class_accuracy"], micro=100 * d["micro_accuracy"],
                     wall_s=walls.get((name, "mlnet"), (None, round(d["seconds"]["total"])))[1],
                     job_s=round(d["seconds"]["total"])))
rows.sort(key=lambda r: (r["set"], r["tool"] != "ML.NET", r["budget"]))
print("| set | tool | budget | plan | chosen | Head | Medium | Tail | mean per-class | micro | wall (s) |")
print("|---|---|---|---|---|---|---|---|---|---|---|")
for r in rows:
    print(f"| {r['set']} | {r['tool']} | {r['budget']} | {r['plan']} | {r['chosen']} | {r['head']:.2f} | "
          f"{r['medium']:.2f} | {r['tail']:.2f} | **{r['mean_per_class']:.2f}** | {r['micro']:.2f} | {r['wall_s']} |")
tmp = target + ".tmp"
json.dump(dict(cpu=cpu, rows=rows), open(tmp, "w"), indent=2)
os.replace(tmp, target)
