"""PyTorch peer for H2T.NET's foundation-backbone benchmark (FoundationBench.cs): torchvision 0.14's vit_b_16 or
convnext_tiny at 224 px on CPU, each way a speed-minded PyTorch 1.13 user would run it. Prints JSON.
Usage: python3 foundation_peer.py --model vit_b_16|convnext_tiny [--threads 2] [--budget 20] [--skip-fp32-train]
Eval (batch 8 and 1, torch.inference_mode): eager fp32; eager fp32 with the Linear layers on oneDNN
(torch.utils.mkldnn.MkldnnLinear; ViT's attention rebuilt on two of them); torch.jit.trace + freeze +
optimize_for_inference fp32; autocast bf16; the model cast to bf16; jit-frozen autocast and cast bf16. Train (batch
8): forward, cross-entropy, backward, SGD with momentum, in fp32, autocast bf16 (fp32 master weights, as ours) and
the model cast to bf16 (bf16 weights: a speed bound, not a recipe, kept out of "best"). ConvNeXt's model and input are
channels_last. Each figure is the median of up to 5 timed calls after one warm-up call, stopping early once --budget
seconds are spent on it; a warm-up call longer than the budget is itself the (upper-bound) figure.
Why fp32 is slow here: Debian's torch is built with BLAS_INFO=generic (torch.__config__.show()), so an fp32
nn.Linear / matmul runs ATen's own reference gemm at a few GFLOPS, while bf16 matmuls and all convolutions go
to oneDNN; the oneDNN-Linear rows are PyTorch's own way round that for inference (it has no backward)."""
import argparse, copy, json, re, statistics, time
import torch, torch.nn.functional as F, torch.utils.mkldnn, torchvision


_layer_norm = F.layer_norm


def layer_norm_in_input_dtype(x, shape, weight=None, bias=None, eps=1e-5):
    """torch 1.13's CPU autocast leaves layer_norm alone, so a bf16 map meets fp32 weights and it raises ("expected
    scalar type BFloat16 but found Float", torchvision's ConvNeXt); the weights follow the input instead."""
    if weight is not None and weight.dtype != x.dtype:
        weight, bias = weight.to(x.dtype), None if bias is None else bias.to(x.dtype)
    return _layer_norm(x, shape, weight, bias, eps)


F.layer_norm = layer_norm_in_input_dtype


class OneDnnAttention(torch.nn.Module):
    """nn.MultiheadAttention (self-attention, no mask, as torchvision's ViT calls it) with its two projections on
    oneDNN; MultiheadAttention itself reads in_proj_weight raw, so MkldnnLinear cannot stand in for part of it."""

    def __init__(self, mha):
        super().__init__()
        self.heads, c = mha.num_heads, mha.embed_dim
        qkv, out = torch.nn.Linear(c, 3 * c), torch.nn.Linear(c, c)
        with torch.no_grad():
            qkv.weight.copy_(mha.in_proj_weight), qkv.bias.copy_(mha.in_proj_bias)
            out.weight.copy_(mha.out_proj.weight), out.bias.copy_(mha.out_proj.bias)
        self.qkv = torch.utils.mkldnn.MkldnnLinear(qkv, torch.float)
        self.out = torch.utils.mkldnn.MkldnnLinear(out, torch.float)

    def forward(self, query, key, value, need_weights=False):
        n, t, c = query.shape
        qkv = self.qkv(query).reshape(n, t, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        a = torch.softmax(qkv[0] @ qkv[1].transpose(-2, -1) * (c // self.heads) ** -0.5, -1)
        return self.out((a @ qkv[2]).transpose(1, 2).reshape(n, t, c)), None


def onednn_linear(model):
    m = copy.deepcopy(model)
    for parent in list(m.modules()):
        for name, child in list(parent.named_children()):
            if type(child) is torch.nn.Linear:
                setattr(parent, name, torch.utils.mkldnn.MkldnnLinear(child, torch.float))
            elif isinstance(child, torch.nn.MultiheadAttention):
                setattr(parent, name, OneDnnAttention(child))
    return m


def timed(fn, warmup, iters, budget):
    for i in range(warmup):
        t = time.perf_counter()
        fn()
        first = (time.perf_counter() - t) * 1000
        if first > budget * 1000:  # a call longer than the whole budget: that call is the (upper-bound) figure
            return {"median_ms": first, "runs": 0, "times_ms": [first], "note": "warm-up call only, over budget"}
    times, start = [], time.perf_counter()
    while len(times) < iters and (not times or time.perf_counter() - start < budget):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1000)
    return {"median_ms": statistics.median(times), "runs": len(times), "times_ms": times}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True, choices=["vit_b_16", "convnext_tiny"])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--budget", type=float, default=20.0)
    ap.add_argument("--skip-fp32-train", action="store_true")
    ap.add_argument("--skip-jit", action="store_true")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    cl = a.model.startswith("convnext")
    fmt = torch.channels_last if cl else torch.contiguous_format
    m = getattr(torchvision.models, a.model)().to(memory_format=fmt)
    blas = re.findall(r"BLAS_INFO=[^,\s]*", torch.__config__.show())
    res = {"model": a.model, "threads": torch.get_num_threads(), "torch": torch.__version__,
           "torchvision": torchvision.__version__, "blas": blas[0] if blas else "?", "channels_last": cl,
           "budget_s": a.budget, "eval": {}, "train": {}, "errors": {}}

    def inputs(batch):
        return torch.randn(batch, 3, 224, 224).contiguous(memory_format=fmt)

    def record(table, key, fn):
        try:
            table[key] = timed(fn, 1, 5, a.budget)
        except Exception as e:  # report, do not hide: some paths fail on some graphs in 1.13
            res["errors"][key] = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"

    def run(model, x, auto, ctx=torch.inference_mode):
        def call():
            with ctx(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=auto):
                model(x).float().sum().item()
        return call

    m.eval()
    fast, cast = onednn_linear(m), copy.deepcopy(m).to(torch.bfloat16)
    for batch in (8, 1):
        x = inputs(batch)
        xb = x.to(torch.bfloat16)
        record(res["eval"], f"eager fp32 batch {batch}", run(m, x, False))
        record(res["eval"], f"eager fp32, Linear on oneDNN batch {batch}", run(fast, x, False))
        # 1.13's fused MultiheadAttention inference path (ViT) is not autocast-aware: it meets fp32 weights with a
        # bf16 input and raises; the error is recorded and the cast model is the way round it.
        record(res["eval"], f"eager autocast bf16 batch {batch}", run(m, x, True))
        record(res["eval"], f"eager bf16 (model cast) batch {batch}", run(cast, xb, False))
        if a.skip_jit:
            continue
        for label, model, inp, auto in (("fp32", m, x, False), ("autocast bf16", m, x, True),
                                         ("bf16 (model cast)", cast, xb, False)):
            if res["eval"].get(f"eager {label} batch {batch}", {}).get("runs", 1) == 0:
                res["errors"][f"jit-frozen {label} batch {batch}"] = "skipped: its eager call is over the budget"
                continue  # tracing runs the model too: minutes for the over-budget fp32 rows
            try:
                # Freezing needs no_grad (not inference_mode) while tracing; autocast is traced into casts. The
                # trace's own re-run check fails on bf16's rounding, so it is off.
                with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=auto):
                    j = torch.jit.freeze(torch.jit.trace(model, inp, check_trace=False))
                    if label == "fp32":
                        j = torch.jit.optimize_for_inference(j)
            except Exception as e:
                res["errors"][f"jit-frozen {label} batch {batch}"] = f"{type(e).__name__}: {str(e).splitlines()[0]}"
                continue
            record(res["eval"], f"jit-frozen {label} batch {batch}", run(j, inp, auto, torch.no_grad))
    del fast, cast

    m.train()
    x, y = inputs(8), torch.randint(0, 1000, (8,))
    for label, auto in (("fp32", False), ("autocast bf16", True), ("bf16 (model cast, bf16 weights)", False)):
        model = copy.deepcopy(m).to(torch.bfloat16) if "model cast" in label else m
        if label == "fp32" and (a.skip_fp32_train or res["eval"]["eager fp32 batch 8"]["runs"] == 0):
            # A step is about three forwards: minutes where one fp32 forward is already over the budget.
            res["train"]["fp32 batch 8"] = {"skipped": "--skip-fp32-train or the fp32 batch-8 forward over budget",
                                            "lower_bound_ms": 3 * res["eval"]["eager fp32 batch 8"]["median_ms"]}
            continue
        opt = torch.optim.SGD(model.parameters(), 0.01, momentum=0.9, weight_decay=5e-5)
        inp = x.to(torch.bfloat16) if "model cast" in label else x

        def step():
            opt.zero_grad(set_to_none=True)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=auto):
                out = model(inp)
            F.cross_entropy(out.float(), y).backward()
            opt.step()
        record(res["train"], f"{label} batch 8", step)

    def best(table, suffix, precision):
        cands = {k: v for k, v in table.items() if k.endswith(suffix) and (precision is None or
                 ("bf16" in k) == (precision == "bf16")) and "bf16 weights" not in k}
        if not cands:
            return None
        timed_ = {k: v["median_ms"] for k, v in cands.items() if "median_ms" in v}
        if timed_:
            k = min(timed_, key=timed_.get)
            return {"config": k, "median_ms": timed_[k], "bound": "upper" if cands[k]["runs"] == 0 else None}
        k, v = next(iter(cands.items()))  # only a skipped row: its lower bound
        return {"config": k, "median_ms": v["lower_bound_ms"], "bound": "lower"}
    res["best"] = {}
    for fig, table, suffix in (("eval batch 8", res["eval"], "batch 8"), ("eval batch 1", res["eval"], "batch 1"),
                               ("train batch 8", res["train"], "batch 8")):
        res["best"][fig] = {p or "any": best(table, suffix, p) for p in ("fp32", "bf16", None)}
    print(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
