#!/usr/bin/env python3
"""Peer (PyTorch / Zennit) figures for klrp's graph benches (benches/graph_models.rs).

torchvision ResNet-50 and MobileNetV2, random weights with the random BatchNorm statistics of
tests/fixtures/onnx/make_graph_models.py (the models klrp's bench loads from its ONNX exports),
batch of one 1x3x224x224 input (the exports' x_1x3x224x224.npy when --exports DIR is given):

  <model>_forward              PyTorch forward under torch.no_grad
  <model>_zennit_epsilon_gamma_box
                               Zennit forward + relevance, one-hot at the top class:
                                   with Gradient(model, EpsilonGammaBox(-3, 3, canonizers)) as a:
                                       out, rel = a(x, one_hot)
                               canonizers: ResNetCanonizer (ResNet-50), SequentialMergeBatchNorm
                               (MobileNetV2). Registration is outside the timed region.

Every figure is the median of --repeats timed runs after --warmup untimed runs:

  peer: <name> <median_ms> ms (min <min_ms> max <max_ms>)

  venv/bin/python bench/peer/peer_graph_models.py [--threads 2] [--repeats 7] [--exports DIR]
  venv/bin/python bench/peer/peer_graph_models.py --once resnet50   # one explanation (for
                                                                    # /usr/bin/time -v)
"""
import argparse
import importlib.metadata
import os
import platform
import sys

import numpy as np
import torch
import torch.nn as nn
import torchvision
from zennit.attribution import Gradient
from zennit.canonizers import SequentialMergeBatchNorm
from zennit.composites import EpsilonGammaBox
from zennit.torchvision import ResNetCanonizer

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                                "tests", "fixtures", "onnx"))
from make_graph_models import randomize_bn  # noqa: E402  (the exports' BatchNorm statistics)
from timing import report, timeit  # noqa: E402  (this folder: bench/peer/timing.py)


MODELS = {
    "resnet50": (torchvision.models.resnet50, ResNetCanonizer),
    "mobilenet_v2": (torchvision.models.mobilenet_v2, SequentialMergeBatchNorm),
}


def build(name):
    make, canon = MODELS[name]
    torch.manual_seed(0)
    model = make()
    randomize_bn(model)
    return model.eval(), canon


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--exports", metavar="DIR", help="read DIR/x_1x3x224x224.npy as the input")
    ap.add_argument("--once", choices=list(MODELS), help="one explanation of this model, no timing")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.exports:
        x = torch.from_numpy(np.load(os.path.join(args.exports, "x_1x3x224x224.npy")))
    else:
        x = torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    if args.once:
        model, canon = build(args.once)
        one_hot = torch.eye(1000)[[0]]
        with Gradient(model=model, composite=EpsilonGammaBox(-3.0, 3.0, canonizers=[canon()])) as a:
            out, rel = a(x, one_hot)
        print(f"peer: {args.once} one explanation, sum R {rel.sum().item():.4f}")
        return
    print(f"peer: torch {torch.__version__} torchvision {torchvision.__version__} "
          f"zennit {importlib.metadata.version('zennit')} python {platform.python_version()}")
    print(f"peer: threads {torch.get_num_threads()} repeats {args.repeats} warmup {args.warmup}",
          flush=True)
    for name in MODELS:
        model, canon = build(name)
        with torch.no_grad():
            report(f"{name}_forward", timeit(lambda: model(x), args.repeats, args.warmup))
            target = int(model(x).argmax(1))
        one_hot = torch.eye(1000)[[target]]
        comp = EpsilonGammaBox(low=-3.0, high=3.0, canonizers=[canon()])
        with Gradient(model=model, composite=comp) as attributor:
            def lrp():
                return attributor(x, one_hot)[1]
            rel = lrp()
            assert rel.shape == x.shape and torch.isfinite(rel).all()
            report(f"{name}_zennit_epsilon_gamma_box", timeit(lrp, args.repeats, args.warmup))


if __name__ == "__main__":
    main()
