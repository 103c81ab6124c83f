#!/usr/bin/python3
"""Writes the image fixtures of tests/H2T.Tests/Data/FitDataTests.cs with Debian's PIL (python3-pil 9.4).

Run from this folder: /usr/bin/python3 make_fit_fixtures.py
- modes/: one small image per pixel mode the data audit must tell apart (PNG colour types and bit depths, JPEG
  component counts), each a gradient so that it is a real picture;
- bomb.png: 30,000 x 30,000 pixels of mode '1' (zeros), about 110 KB: the decompression-bomb guard must refuse it
  from its header (PIL itself raises DecompressionBombError on it, at twice its MAX_IMAGE_PIXELS);
- cat-q30.jpg: the committed CIFAR-10 training image train/cat/0000.jpg re-encoded by PIL at JPEG quality 30, a near
  duplicate of the original.
"""
import os
from PIL import Image

here = os.path.dirname(os.path.abspath(__file__))
os.makedirs(os.path.join(here, "modes"), exist_ok=True)


def gradient(mode, size=(24, 16)):
    img = Image.new("RGB", size)
    img.putdata([(x * 10 % 256, y * 15 % 256, (x + y) * 5 % 256) for y in range(size[1]) for x in range(size[0])])
    return img.convert(mode)


def save(img, name, **kw):
    img.save(os.path.join(here, "modes", name), **kw)


save(gradient("RGB"), "rgb.png")
rgba = gradient("RGBA")
rgba.putalpha(128)
save(rgba, "rgba.png")
save(gradient("L"), "grey.png")
save(gradient("LA"), "grey-alpha.png")
save(gradient("P"), "palette.png")
# 16-bit grey: PIL's I;16 mode is written as a PNG of bit depth 16, colour type 0.
save(gradient("L").point(lambda v: v * 256, "I").convert("I;16"), "grey16.png")
save(gradient("RGB"), "rgb.jpg", quality=90)
save(gradient("L"), "grey.jpg", quality=90)
save(gradient("CMYK"), "cmyk.jpg", quality=90)

Image.new("1", (30000, 30000)).save(os.path.join(here, "bomb.png"), optimize=True)

cat = os.path.join(here, "..", "cifar10-jpg-sample", "train", "cat", "0000.jpg")
Image.open(cat).convert("RGB").save(os.path.join(here, "cat-q30.jpg"), quality=30)
