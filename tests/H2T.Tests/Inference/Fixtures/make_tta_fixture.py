#!/usr/bin/python3
"""Writes the views LIFT's test-time ensemble makes (Resize(size + expand), FiveCrop / TenCrop) of real images, as
torchvision 0.14 makes them, for TestTimeEnsembleTests.

usage: make_tta_fixture.py OUT_DIR EXPAND IMAGE...

For each image: the model input (the decoded image, and its 24 x 32 top-left part as a non-square input), then the
views of that input twice: torchvision's transforms on a uint8 tensor (the kernel TorchSharp runs) and on a PIL image
(what LIFT's trainer.py feeds them), and torchvision's unrounded float values. Raw uint8 (float32 for .float.bin)
C x H x W / V x C x H x W files and meta.json.
"""
import json
import os
import sys

import torch
from PIL import Image
from torchvision import transforms as T


def views(img, h, w, expand, ten):
    resize = T.Resize(min(h, w) + expand)
    crop = T.TenCrop((h, w)) if ten else T.FiveCrop((h, w))
    return crop(resize(img))


def main():
    out, expand, images = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
    os.makedirs(out, exist_ok=True)
    meta = []
    for i, path in enumerate(images):
        full = Image.open(path).convert("RGB")
        for name, img in (("full", full), ("wide", full.crop((0, 0, 32, 24)))):
            chw = T.PILToTensor()(img).contiguous()
            h, w = chw.shape[1:]
            case = f"{i}-{name}"
            chw.numpy().tofile(os.path.join(out, f"{case}.input.bin"))
            for ten in (False, True):
                mode = "tencrop" if ten else "fivecrop"
                tv = torch.stack(views(chw, h, w, expand, ten))
                tv.numpy().tofile(os.path.join(out, f"{case}.{mode}.tensor.bin"))
                # the same on float pixels: torchvision's values before its rounding, to tell ties apart
                unrounded = torch.stack(views(chw.float(), h, w, expand, ten)).contiguous()
                unrounded.numpy().tofile(os.path.join(out, f"{case}.{mode}.float.bin"))
                pil = torch.stack([T.PILToTensor()(v) for v in views(img, h, w, expand, ten)]).contiguous()
                pil.numpy().tofile(os.path.join(out, f"{case}.{mode}.pil.bin"))
            meta.append({"case": case, "channels": 3, "height": int(h), "width": int(w)})
    with open(os.path.join(out, "meta.json"), "w") as f:
        json.dump({"expand": expand, "torchvision": __import__("torchvision").__version__, "cases": meta}, f)


if __name__ == "__main__":
    main()
