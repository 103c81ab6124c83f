#!/usr/bin/env bash
# The pretrained-start protocol on CIFAR-10-LT (docs/experiments.md section 8; configs/pretrained/):
#   stage I: CNTK's ImageNet ResNet-18 from NuGet (--pretrained mlnet:resnet18) fine-tuned with CE + mixup, images at
#   64 px; the control: the same network and recipe from random initialisation (same epochs, same wall-clock).
#   Then from each final checkpoint, cRT and MiSLAS stage II, each swept over rho in one pass, rho chosen on a
#   class-balanced validation split (rho = 0 is the method without H2T).
# Usage: experiments/pretrained.sh [SEED]. Resumable: re-run it after an interruption.
# SIZE=N (default 64): the image size (resize=N over the configs'); STARTS (default "pretrained scratch"): which stage-I starts.
# PRECISION=bf16|fp32 (default bf16: measured faster on the AMD EPYC (family 26, Zen 5, avx512_bf16) this ran on; see
# docs/performance.md before using it on a CPU without AMX), OUT=DIR (default runs/pretrained-cifar10-imb100-sSEED), H2T=<cmd>.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
seed="${1:-0}"
precision="${PRECISION:-bf16}"
size="${SIZE:-64}"
starts="${STARTS:-pretrained scratch}"
h2t="${H2T:-$root/h2t}"
out="${OUT:-$root/runs/pretrained-cifar10-imb100-s$seed}"
cfg="$root/configs/pretrained/cifar10jpg_imb100_r18cntk"
cd "$root"
mkdir -p "$out"
done_run() { [ -f "$1/metrics.json" ] && grep -q '"completed": true' "$1/metrics.json"; }
for start in $starts; do
  s1="$out/$start/stage1"
  file="${cfg}_stage1.yaml"; [ "$start" = scratch ] && file="${cfg}_scratch_stage1.yaml"
  if ! done_run "$s1"; then
    t0=$SECONDS
    $h2t stage1 --config "$file" "resize=$size" --seed "$seed" --precision "$precision" --out "$s1" --resume
    echo "$start stage1: $((SECONDS - t0)) s wall (this invocation)" >> "$out/wall.txt"
  fi
  for method in crt las; do
    if ! [ -f "$out/$start/$method/sweep.json" ]; then
      t0=$SECONDS
      $h2t sweep --config "${cfg}_stage2_$method.yaml" --from "$s1/last.ckpt" --rho 0:0.5:0.05 --val-per-class 100 \
        --seed "$seed" --precision "$precision" --out "$out/$start/$method" --resume
      echo "$start $method sweep: $((SECONDS - t0)) s wall (this invocation)" >> "$out/wall.txt"
    fi
  done
done
echo "pretrained: $out/pretrained/{stage1/report.md,crt/sweep.md,las/sweep.md}; scratch: $out/scratch/..."
