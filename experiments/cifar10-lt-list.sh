#!/usr/bin/env bash
# CIFAR-10-LT (IF 100) as a user's list file, for `h2t fit`: the shared JPEG archive extracted once, then
# OUT_DIR/cifar10-lt.csv with path,label,split rows. Train keeps n_c = floor(5000 * 0.01^(c/9)) images of class c
# (the exponential profile of Cao et al., 5000 down to 50), the first n_c in the archive's order (image index), not
# the reference's seeded shuffle; test is the balanced 10,000.
# Usage: experiments/cifar10-lt-list.sh OUT_DIR [ARCHIVE]
set -euo pipefail
out=${1:?usage: $0 OUT_DIR [ARCHIVE]}
archive=${2:-$(dirname "$0")/../../shared/data/cifar10-jpg.tar.gz}
mkdir -p "$out"
if [ ! -d "$out/images/train" ]; then
  rm -rf "$out/images.tmp" && mkdir -p "$out/images.tmp"
  tar -xzf "$archive" -C "$out/images.tmp"
  root=$(find "$out/images.tmp" -maxdepth 2 -type d -name train -printf '%h\n' | head -1)
  mv "$root" "$out/images" && rm -rf "$out/images.tmp"
fi
python3 - "$out" <<'PY'
import math, os, sys
out = sys.argv[1]
img = os.path.join(out, "images")
classes = sorted(os.listdir(os.path.join(img, "train")))
rows = ["path,label,split"]
for c, name in enumerate(classes):
    n = int(5000 * (0.01 ** (c / (len(classes) - 1))))
    files = sorted(os.listdir(os.path.join(img, "train", name)))[:n]
    rows += [f"images/train/{name}/{f},{name},train" for f in files]
    rows += [f"images/test/{name}/{f},{name},test" for f in sorted(os.listdir(os.path.join(img, "test", name)))]
tmp = os.path.join(out, "cifar10-lt.csv.tmp")
open(tmp, "w").write("\n".join(rows) + "\n")
os.replace(tmp, os.path.join(out, "cifar10-lt.csv"))
print(f"{out}/cifar10-lt.csv: {len(rows) - 1} rows, {len(classes)} classes")
PY
