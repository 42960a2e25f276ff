"""Hand-made image seeds for the image fuzz target: the pixel formats the test images miss.

Run from the repository root (needs Pillow, numpy and imagecodecs; the output does not depend on
the run):
    python fuzz/make_image_seeds.py fuzz/corpus/image
"""
import sys

import imagecodecs
import numpy as np
from PIL import Image

out = sys.argv[1]
pixels = [(x * 37 + y * 11) % 256 for y in range(6) for x in range(9)]


def plane(mode, n):
    img = Image.new(mode, (9, 6))
    img.putdata([tuple(((p + 60 * k) % 256) for k in range(n)) if n > 1 else p for p in pixels])
    return img


plane("LA", 2).save(f"{out}/gray_alpha.png")            # PNG grayscale with alpha
Image.new("I;16", (9, 6)).save(f"{out}/gray16.png")     # PNG 16-bit grayscale
plane("L", 1).save(f"{out}/gray.jpg", quality=90)       # JPEG one component (L8)
plane("CMYK", 4).save(f"{out}/cmyk.jpg", quality=90)    # JPEG CMYK (refused)
# A lossless 16-bit JPEG, which jpeg-decoder returns as L16 (Pillow cannot write one).
gray16 = (np.array(pixels, np.uint16).reshape(6, 9) * 257)
open(f"{out}/gray16_lossless.jpg", "wb").write(imagecodecs.ljpeg_encode(gray16, bitspersample=16))
print("ok")
