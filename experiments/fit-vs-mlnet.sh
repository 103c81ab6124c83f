#!/usr/bin/env bash
# Issue 40's comparison: `h2t fit` at a time limit against the ML.NET peer (bench/MlNetPeer: DnnImageFeaturizer
# ResNet-18, frozen, plus LbfgsMaximumEntropy) on the same split (the fit job's data/ CSVs) and the same weights.
# One job at a time; resumable (finished jobs are kept). Then experiments/fit_table.py writes the table and JSON.
# Usage: experiments/fit-vs-mlnet.sh NAME DATA BUDGET...   e.g. emoji data/emoji-lt-white 10m 4m
#   OUT (default runs/fit-vs-mlnet), H2T (default ./h2t), PEER (default: dotnet run the bench project).
set -uo pipefail
name=${1:?usage: $0 NAME DATA BUDGET...}; data=${2:?}; shift 2
O=${OUT:-runs/fit-vs-mlnet}
H2T=${H2T:-./h2t}
PEER=${PEER:-dotnet run -c Release --project bench/MlNetPeer --}
mkdir -p "$O"
for budget in "$@"; do
  job=$O/$name-$budget
  if [ ! -f $job/summary.json ]; then
    t0=$(date +%s)
    $H2T fit "$data" --time-limit $budget --out $job --threads 2 --resume > $job.log 2>&1
    echo "$name $budget fit rc=$? wall=$(( $(date +%s) - t0 )) s" >> $O/wall.txt
  fi
done
# The peer on the first budget's split (every budget's split is the same: its seed is 0).
d=$O/$name-$1/data
if [ -f $d/train.csv ] && [ ! -f $O/$name-mlnet.json ]; then
  t0=$(date +%s)
  $PEER --train $d/train.csv --train $d/val.csv --test $d/test.csv --classes $d/classes.csv \
    --out $O/$name-mlnet.json --threads 2 > $O/$name-mlnet.log 2>&1
  echo "$name mlnet rc=$? wall=$(( $(date +%s) - t0 )) s" >> $O/wall.txt
fi
