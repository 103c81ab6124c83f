#!/usr/bin/env bash
# The published 200-epoch CIFAR-10-LT recipe (docs/experiments.md "full schedule"; configs/full-schedule/):
#   stage I: ResNet-32, CE + mixup, MiSLAS's 200-epoch schedule; then, from its final checkpoint, two stage-II
#   methods, each swept over rho in one pass with rho chosen on a class-balanced validation split (rho = 0 is the
#   method without H2T): class-balanced re-training (crt) and MiSLAS (las).
# Usage: experiments/full-schedule.sh IF [SEED]   (IF: 100 or 50). Resumable: re-run it after an interruption.
# PRECISION=bf16|fp32 (default bf16), OUT=DIR (default runs/full-cifar10-imbIF-sSEED-PRECISION), H2T=<cmd>.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
imb="${1:?imbalance factor: 100 or 50}"; seed="${2:-0}"
precision="${PRECISION:-bf16}"
h2t="${H2T:-$root/h2t}"
out="${OUT:-$root/runs/full-cifar10-imb$imb-s$seed-$precision}"
cfg="$root/configs/full-schedule/cifar10jpg_imb$imb"
cd "$root"
done_run() { [ -f "$1/metrics.json" ] && grep -q '"completed": true' "$1/metrics.json"; }
if ! done_run "$out/stage1"; then
  $h2t stage1 --config "${cfg}_stage1_mixup_200ep.yaml" --seed "$seed" --precision "$precision" --out "$out/stage1" --resume
fi
for method in crt las; do
  if ! [ -f "$out/$method/sweep.json" ]; then
    $h2t sweep --config "${cfg}_stage2_$method.yaml" --from "$out/stage1/last.ckpt" --rho 0:0.5:0.05 --val-per-class 100 \
      --seed "$seed" --precision "$precision" --out "$out/$method" --resume
  fi
done
echo "stage I: $out/stage1/report.md; stage II: $out/crt/sweep.md, $out/las/sweep.md"
