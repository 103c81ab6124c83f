#!/usr/bin/env bash
# Issue 39's light-versus-heavy rows: the NuGet ResNet-18 (mlnet:resnet18), LIFT's head and loss (cosine classifier,
# scale 25, initialised from class means; logit-adjusted loss; no mixup), 10 epochs SGD lr 0.02 cosine, bf16, then a
# cRT sweep over rho 0..0.5 with pooled features. CIFAR-10-LT IF 100 at 112 px and the emoji set at its native 64 px.
# Resumable: run again with the same command.
set -uo pipefail
cd /work/main
H2T="${H2T:-./h2t}"
R="${OUT:-runs/light-tuning}"
LIFT="--mixup 0 --classifier cosine --loss logit-adjust --head-init class-mean --precision bf16 --seed 0"
done_run() { [ -f "$1/metrics.json" ] && grep -q '"completed": true' "$1/metrics.json"; }
row() { # set name tuning-args
  local set=$1 name=$2; shift 2
  local s1=$R/$set-$name/stage1
  if ! done_run "$s1"; then
    t0=$SECONDS
    if [ $set = cifar ]; then
      $H2T stage1 --config configs/pretrained/cifar10jpg_imb100_r18cntk_stage1.yaml resize=112 $LIFT "$@" \
        --out $s1 --resume
    else
      $H2T stage1 --dataset imagefolder --data "${EMOJI:-data/emoji-lt-white}" --imb-factor 1 --backbone resnet18_cntk \
        --pretrained mlnet:resnet18 --epochs 10 --lr 0.02 --batch-size 128 --wd 5e-4 --schedule cosine \
        --eval-every 2 $LIFT "$@" --out $s1 --resume
    fi
    echo "$set $name stage1: $((SECONDS - t0)) s" >> $R/wall.txt
  fi
  if ! [ -f $R/$set-$name/crt/sweep.json ]; then
    t0=$SECONDS
    if [ $set = cifar ]; then
      $H2T sweep --config configs/pretrained/cifar10jpg_imb100_r18cntk_stage2_crt.yaml --from $s1/last.ckpt \
        --rho 0:0.5:0.1 --val-per-class 100 --feature-cache pooled --precision bf16 --out $R/$set-$name/crt
    else
      $H2T sweep --from $s1/last.ckpt --rho 0:0.5:0.1 --val-per-class 50 --feature-cache pooled --precision bf16 \
        --out $R/$set-$name/crt
    fi
    echo "$set $name sweep: $((SECONDS - t0)) s" >> $R/wall.txt
  fi
}
row cifar frozen --tuning frozen
row emoji frozen --tuning frozen
row emoji ssf --tuning ssf
row emoji layer4 --trainable layer4
row emoji full
row emoji bias --tuning bias
row cifar ssf --tuning ssf
echo "all rows done" >> $R/wall.txt
