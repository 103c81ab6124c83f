#!/usr/bin/env bash
# The CPU protocol of the method note (parity with the authors' code, docs/experiments.md):
#   stage I: ResNet-32, CE + mixup 1.0, SGD 0.9, lr 0.1 cosine, wd 2e-4, batch 128, STAGE1_EPOCHS (30) epochs, IF=100
#   stage II: from the final stage-I checkpoint, 10 epochs, balanced tail side + instance head side, shift-BN on,
#             lr 0.1 x 0.2 cosine, wd 5e-4, batch 128, CE; rho = 0, 0.25, 0.5
# Usage: experiments/cpu-protocol.sh DATASET [SEED] [DATA_PATH]   (DATASET: fashion-mnist | cifar10-jpg)
# Resumable: re-running it continues interrupted runs and skips finished ones. H2T=<cmd> picks the CLI binary.
# STAGE1_EVAL_EVERY=N evaluates stage I on the test set every N epochs only (default 1; the last epoch always).
# STAGE2=sweep trains the three rho values in one `h2t sweep` pass (no validation split) instead of three runs:
# the same batches, draws and results (SweepTests proves member = single run), about half the time.
# PRECISION=bf16 runs both stages in bf16 mixed precision (default fp32; docs/precision.md).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dataset="${1:?dataset}"; seed="${2:-0}"; data="${3:-}"
epochs1="${STAGE1_EPOCHS:-30}"; epochs2="${STAGE2_EPOCHS:-10}"; eval1="${STAGE1_EVAL_EVERY:-1}"
h2t="${H2T:-$root/h2t}"
precision="${PRECISION:-fp32}"
suffix=""; [ "$precision" = fp32 ] || suffix="-$precision"
out="${OUT:-$root/runs/protocol-$dataset-e$epochs1-s$seed$suffix}"
dataopt=(); [ -n "$data" ] && dataopt=(--data "$data")
done_run() { [ -f "$1/metrics.json" ] && grep -q '"completed": true' "$1/metrics.json"; }

if ! done_run "$out/stage1"; then
  $h2t stage1 --dataset "$dataset" "${dataopt[@]}" --imb-factor 100 --epochs "$epochs1" --loss ce --mixup 1.0 \
    --lr 0.1 --batch-size 128 --wd 2e-4 --schedule cosine --seed "$seed" --eval-every "$eval1" --precision "$precision" --out "$out/stage1" --resume
fi
if [ "${STAGE2:-single}" = sweep ]; then
  if ! done_run "$out/sweep/rho0.5"; then
    $h2t sweep --from "$out/stage1/last.ckpt" --rho 0,0.25,0.5 --val-per-class 0 --epochs "$epochs2" --sampler balanced --shift-bn on \
      --lr 0.1 --lr-factor 0.2 --wd 5e-4 --batch-size 128 --seed "$seed" --precision "$precision" "${dataopt[@]}" --out "$out/sweep" --resume
  fi
  $h2t report "$out/stage1" "$out/sweep/rho0" "$out/sweep/rho0.25" "$out/sweep/rho0.5" --out "$out/report.md"
  exit 0
fi
for rho in 0 0.25 0.5; do
  if ! done_run "$out/stage2-rho$rho"; then
    $h2t stage2 --from "$out/stage1/last.ckpt" --rho "$rho" --epochs "$epochs2" --sampler balanced --shift-bn on \
      --lr 0.1 --lr-factor 0.2 --wd 5e-4 --batch-size 128 --seed "$seed" --precision "$precision" "${dataopt[@]}" --out "$out/stage2-rho$rho" --resume
  fi
done
$h2t report "$out/stage1" "$out/stage2-rho0" "$out/stage2-rho0.25" "$out/stage2-rho0.5" --out "$out/report.md"
