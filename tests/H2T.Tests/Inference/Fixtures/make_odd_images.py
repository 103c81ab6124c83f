#!/usr/bin/env python3
"""Odd image files written by PIL (the producer torchvision's loaders read with), and what PIL's
Image.open(path).convert(mode) gives for each, as raw uint8 HWC bytes beside it (<name>.<mode>.raw).

Usage: make_odd_images.py SOURCE.jpg OUT_DIR   (the committed set: ../../Data/Fixtures/cifar10-jpg-sample/test/cat/0000.jpg odd-images)
SOURCE is a real photo (a CIFAR-10 test JPEG); every odd file is made from its pixels.
"""
import json
import sys
from pathlib import Path

from PIL import Image
import numpy as np

src, out = Path(sys.argv[1]), Path(sys.argv[2])
out.mkdir(parents=True, exist_ok=True)
rgb = Image.open(src).convert("RGB").resize((40, 30), Image.BILINEAR)  # non-square, so orientation shows
arr = np.asarray(rgb)

files = {}
rgb.convert("L").save(out / "grey.jpg", quality=95); files["grey.jpg"] = "grey JPEG"
rgb.convert("CMYK").save(out / "cmyk.jpg", quality=95); files["cmyk.jpg"] = "CMYK JPEG"
rgb.save(out / "rgb.png"); files["rgb.png"] = "8-bit RGB PNG"
rgba = rgb.copy(); rgba.putalpha(Image.fromarray((np.arange(40 * 30).reshape(30, 40) % 256).astype(np.uint8)))
rgba.save(out / "rgba.png"); files["rgba.png"] = "RGBA PNG (varying alpha)"
rgb.quantize(64).save(out / "palette.png"); files["palette.png"] = "palette PNG"
rgb.convert("L").save(out / "grey.png"); files["grey.png"] = "8-bit grey PNG"
# 16-bit RGB PNG: PIL writes it from a 16-bit array through mode "RGB;16"-less route: use I;16 per channel is not
# possible, so write a 16-bit grey PNG (mode I;16), the 16-bit case PIL can produce.
grey16 = (np.asarray(rgb.convert("L")).astype(np.uint16) * 257)
Image.fromarray(grey16, mode="I;16").save(out / "grey16.png"); files["grey16.png"] = "16-bit grey PNG"
exif = Image.Exif(); exif[0x0112] = 6  # Orientation: rotate 90 CW to display
rgb.save(out / "exif-rotated.jpg", quality=95, exif=exif.tobytes()); files["exif-rotated.jpg"] = "JPEG with EXIF orientation 6"

for name in files:
    im = Image.open(out / name)
    for mode in ("RGB", "L"):
        conv = np.asarray(im.convert(mode))
        (out / f"{name}.{mode}.raw").write_bytes(np.ascontiguousarray(conv).tobytes())
    files[name] = {"what": files[name], "pil_mode": im.mode, "size": list(im.size)}
(out / "index.json").write_text(json.dumps(files, indent=1))
print(json.dumps(files))
