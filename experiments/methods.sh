#!/usr/bin/env bash
# The baselines table of docs/experiments.md section 5: every method of configs/methods/, stage I from its config,
# then each of its stage-II configs (without H2T and with H2T), on one dataset.
# Usage: experiments/methods.sh DATASET [METHOD...]   (DATASET: fmnist | cifar10; default methods: all folders)
# Env: BACKBONE (default resnet8, the demo's: a fifth of resnet32's compute, so the table fits a CPU session; the
#      RIDE/ResLT configs name their own backbones and get the matching multi-expert resnet8),
#      H2T=<cmd> (default ./h2t), OUT (default runs/methods-DATASET), EVAL_EVERY (stage I, default 10),
#      SWEEP=1: also sweep each H2T config over rho 0,0.05,0.1,0.25,0.5 with 100 validation images per class
#      (h2t sweep --config), so the table can show H2T at the rho validation chooses.
# Resumable: re-running it continues interrupted runs and skips finished ones. Ends with OUT/report.md.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"  # the configs' data paths are relative to the repository root
prefix="${1:?dataset prefix: fmnist or cifar10}"; shift
methods=("$@"); [ ${#methods[@]} -eq 0 ] && methods=(decouple mislas gcl bsce-cmo ride reslt)
backbone="${BACKBONE:-resnet8}"
h2t="${H2T:-$root/h2t}"
out="${OUT:-$root/runs/methods-$prefix}"
done_run() { [ -f "$1/metrics.json" ] && grep -q '"completed": true' "$1/metrics.json"; }
# A multi-expert config keeps its family: ride_resnet32 -> ride_resnet8 when BACKBONE=resnet8.
backbone_of() {
  local arch; arch=$(sed -n "s/^backbone: *'\{0,1\}\([^' ]*\).*/\1/p" "$1")
  case "$arch" in ride_*|reslt_*) echo "${arch%%_*}_$backbone" ;; *) echo "$backbone" ;; esac
}

runs=()
for m in "${methods[@]}"; do
  s1=$(ls configs/methods/"$m"/"$prefix"_stage1_*.yaml)
  bb=$(backbone_of "$s1")
  if ! done_run "$out/$m/stage1"; then
    $h2t stage1 --config "$s1" backbone="$bb" --eval-every "${EVAL_EVERY:-10}" --out "$out/$m/stage1" --resume
  fi
  runs+=("$out/$m/stage1")
  for s2 in configs/methods/"$m"/"$prefix"_stage2_*.yaml; do
    name=$(basename "$s2" .yaml)
    if ! done_run "$out/$m/$name"; then
      $h2t stage2 --config "$s2" backbone="$bb" resume="$out/$m/stage1/last.ckpt" --out "$out/$m/$name" --resume
    fi
    runs+=("$out/$m/$name")
    if [ "${SWEEP:-0}" = 1 ] && [[ "$name" == *_H2T ]]; then
      sweep="$out/$m/${name}_sweep"
      if ! done_run "$sweep/rho0.5"; then
        $h2t sweep --config "$s2" backbone="$bb" resume="$out/$m/stage1/last.ckpt" --rho 0,0.05,0.1,0.25,0.5 \
          --val-per-class 100 --out "$sweep" --resume
      fi
    fi
  done
done
$h2t report "${runs[@]}" --out "$out/report.md"
