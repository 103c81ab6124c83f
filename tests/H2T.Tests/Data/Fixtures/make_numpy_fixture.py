#!/usr/bin/python3
"""Writes numpy_shuffle.json: the reference values our C# MT19937 + legacy shuffle must reproduce.

Run with Debian's numpy (/usr/bin/python3). It mirrors what the long-tail reference codebases do:
np.random.seed(seed); then per class in label order: idx = np.where(targets == c)[0]; np.random.shuffle(idx);
keep idx[:n_c].
"""
import gzip, hashlib, json, os, sys
import numpy as np

out = {"numpy": np.__version__, "shuffles": [], "long_tail": []}

# Plain shuffles of arange(n): exercises init_genrand, the twist and the masked rejection of random_interval.
for seed in (0, 1, 42, 12345, 4294967295):
    for n in (1, 2, 3, 10, 257, 1000):
        np.random.seed(seed)
        a = np.arange(n)
        np.random.shuffle(a)
        out["shuffles"].append({"seed": seed, "n": n, "result": a.tolist()})

def exp_counts(n_max, c, imb):
    f = 1.0 / imb
    return [int(n_max * (f ** (i / (c - 1.0)))) for i in range(c)]

def select(targets, counts, seed):
    np.random.seed(seed)
    sel = []
    for cls, n in zip(np.unique(targets), counts):
        idx = np.where(targets == cls)[0]
        np.random.shuffle(idx)
        sel.extend(idx[:n].tolist())
    return sel

def digest(xs):
    return hashlib.sha256(",".join(map(str, xs)).encode()).hexdigest()

# A synthetic label list, interleaved classes, so the fixture does not need any data set.
synthetic = np.array([(i * 7) % 5 for i in range(500)], dtype=np.int64)
counts = exp_counts(100, 5, 10)
sel = select(synthetic, counts, 0)
out["long_tail"].append({"name": "synthetic", "labels": "(i*7)%5 for i<500", "counts": counts, "seed": 0,
                         "selected": sel, "sha256": digest(sel)})

fm = "/usr/share/datasets/fashion-mnist/train-labels-idx1-ubyte.gz"
if os.path.exists(fm):
    with gzip.open(fm, "rb") as f:
        labels = np.frombuffer(f.read()[8:], dtype=np.uint8).astype(np.int64)
    for seed in (0, 1):
        counts = exp_counts(6000, 10, 100)
        sel = select(labels, counts, seed)
        out["long_tail"].append({"name": "fashion-mnist-train", "counts": counts, "seed": seed,
                                 "first": sel[:50], "last": sel[-50:], "sha256": digest(sel)})

for c, n_max in ((10, 5000), (100, 500)):
    out.setdefault("exp_totals", []).append({"classes": c, "n_max": n_max, "imb": 100, "counts": exp_counts(n_max, c, 100)})

with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "numpy_shuffle.json"), "w") as f:
    json.dump(out, f, separators=(",", ":"))
    f.write("\n")
print("ok", len(out["shuffles"]), "shuffles")
