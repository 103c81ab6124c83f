#!/usr/bin/env bash
# Stage II's feature sources side by side (docs/performance.md, "Stage II on frozen features"): the same sweep from the
# same stage-I checkpoint with --feature-cache off (a backbone pass per batch), maps and pooled, one after another as
# whole processes under /usr/bin/time -v (wall, peak resident memory), then one JSON with the CPU, each run's cost,
# its selected rho and its rho = 0 / 0.25 rows.
# Usage: bench/stage2/sources.sh STAGE1_CKPT STAGE2_CONFIG OUT_DIR JSON [MODES] [-- extra sweep args]
#   MODES: a comma list of off,maps,pooled (default all three); extra args go to every sweep (e.g. --cache-views 2).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
ckpt="$1"; cfg="$2"; out="$3"; json="$4"; modes="${5:-off,maps,pooled}"
shift $(( $# >= 5 ? 5 : 4 )); [ "${1:-}" = "--" ] && shift
h2t="${H2T:-$root/h2t}"
mkdir -p "$out"
for mode in ${modes//,/ }; do
  [ -f "$out/$mode/sweep.json" ] && continue
  /usr/bin/time -v -o "$out/$mode.time" $h2t sweep --config "$cfg" --from "$ckpt" --rho "${RHO:-0:0.5:0.05}" --val-per-class 100 \
    --seed 0 --precision "${PRECISION:-bf16}" --feature-cache "$mode" --out "$out/$mode" "$@" > "$out/$mode.log" 2>&1
done
python3 - "$out" "$json" "$modes" "$ckpt" "$cfg" "$*" <<'PY'
import json, re, sys, subprocess, datetime, os
out, path, modes, ckpt, cfg, extra = sys.argv[1:7]
lscpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
model = re.search(r"Model name:\s*(.+)", lscpu).group(1).strip()
fam = re.search(r"CPU family:\s*(\d+)", lscpu); mod = re.search(r"Model:\s*(\d+)", lscpu)
flags = re.search(r"Flags:\s*(.+)", lscpu).group(1).split()
def timing(f):
    t = open(f).read()
    wall = re.search(r"Elapsed \(wall clock\) time.*: (.+)", t).group(1).strip().split(":")
    secs = sum(float(x) * 60 ** i for i, x in enumerate(reversed(wall)))
    rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", t).group(1))
    return secs, rss / 1024
runs = {}
for m in modes.split(","):
    s = json.load(open(os.path.join(out, m, "sweep.json")))
    wall, rss = timing(os.path.join(out, m + ".time"))
    def row(rho):
        r = next((r for r in s["rows"] if abs(r["rho"] - rho) < 1e-9), None)
        t = r and r["final_test"]
        return t and {"all": t["top1"], "head": t["head"], "medium": t["medium"], "tail": t["tail"]}
    sel = next(r for r in s["rows"] if abs(r["rho"] - s["selected_rho"]) < 1e-9)
    runs[m] = {"wall_s": wall, "peak_rss_mib": rss, "train_s": s["train_seconds"], "eval_s": s["eval_seconds"],
               "selected_rho": s["selected_rho"], "selected_test_all": sel["final_test"]["top1"], "selected_test_tail": sel["final_test"]["tail"],
               "rho0": row(0), "rho0.25": row(0.25)}
doc = {"date": datetime.date.today().isoformat(), "cpu": {"model": model, "family": fam and int(fam.group(1)), "model_number": mod and int(mod.group(1)),
       "avx512_bf16": "avx512_bf16" in flags, "amx_bf16": "amx_bf16" in flags, "cores": os.cpu_count()},
       "stage1": ckpt, "config": cfg, "extra_args": extra, "rho": os.environ.get("RHO", "0:0.5:0.05"), "runs": runs}
if "off" in runs:
    for m in runs:
        runs[m]["speedup_vs_off"] = runs["off"]["wall_s"] / runs[m]["wall_s"]
json.dump(doc, open(path, "w"), indent=2)
print(json.dumps(doc, indent=2))
PY
