#!/usr/bin/env python3
"""Peer (PyTorch / Zennit) reference figures for klrp's performance targets.

Measures, on the current machine, with a fixed number of CPU threads:

  1. float32 GEMM throughput: torch.mm of two 4096x4096 matrices
     (4096^3 MAC = 2*4096^3 FLOP) -> GFLOP/s and G MAC/s.
  2. torchvision VGG-16 forward pass (random weights, eval mode, batch of one
     1x3x224x224 float32 image, under torch.no_grad) -> ms, and G MAC/s using
     VGG-16's 15.47 G MAC.
  3. Zennit LRP (forward + relevance for one target class, attr_output a
     one-hot row) with the Gradient attributor, the standard way:
         with Gradient(model, composite) as attributor:
             out, rel = attributor(x, one_hot)
     for the composites EpsilonGammaBox(low=-3, high=3), EpsilonPlusFlat and
     EpsilonAlpha2Beta1. Composite registration/removal is outside the timed
     region; each timed call is one forward + one backward pass.

Every figure is the median of --repeats timed runs after --warmup untimed runs,
printed as one line:

  peer: <name> <median_ms> ms (min <min_ms> max <max_ms>)[ <rate>]

Run (see README.md in this folder for the venv setup):

  venv/bin/python bench/peer/peer_vgg16.py [--threads 2] [--repeats 7] [--warmup 2]

Weights are random (torchvision.models.vgg16(weights=None)); they do not
affect timing. Nothing is downloaded.
"""
import argparse
import importlib.metadata
import platform
import statistics

import torch
import torchvision
from zennit.attribution import Gradient
from zennit.composites import EpsilonAlpha2Beta1, EpsilonGammaBox, EpsilonPlusFlat

from timing import report, timeit  # this folder: bench/peer/timing.py

VGG16_MACS = 15.47e9  # multiply-accumulates of one 224x224 VGG-16 forward pass


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--gemm-n", type=int, default=4096)
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    print(f"peer: torch {torch.__version__} torchvision {torchvision.__version__} "
          f"zennit {importlib.metadata.version('zennit')} python {platform.python_version()}")
    print(f"peer: threads {torch.get_num_threads()} (interop {torch.get_num_interop_threads()})")
    print(f"peer: cpu {cpu_model()} (torch cpu capability {torch.backends.cpu.get_cpu_capability()})")
    print(f"peer: repeats {args.repeats} warmup {args.warmup}", flush=True)

    # 1. GEMM throughput.
    n = args.gemm_n
    a = torch.randn(n, n, dtype=torch.float32)
    b = torch.randn(n, n, dtype=torch.float32)
    c = torch.empty(n, n, dtype=torch.float32)
    with torch.no_grad():
        t = timeit(lambda: torch.mm(a, b, out=c), args.repeats, args.warmup)
    macs = float(n) ** 3
    med = statistics.median(t)
    report(f"gemm_f32_{n}", t,
           f" {2 * macs / med / 1e6:.1f} GFLOP/s {macs / med / 1e6:.1f} GMAC/s")
    del a, b, c

    # 2. VGG-16 forward.
    model = torchvision.models.vgg16(weights=None).eval()
    x = torch.rand(1, 3, 224, 224, dtype=torch.float32) * 6 - 3  # inside [-3, 3]
    with torch.no_grad():
        t = timeit(lambda: model(x), args.repeats, args.warmup)
    fwd_ms = statistics.median(t)
    report("vgg16_forward", t, f" {VGG16_MACS / fwd_ms / 1e6:.1f} GMAC/s (15.47 GMAC)")

    # 3. Zennit LRP: forward + relevance for one target class.
    with torch.no_grad():
        target = int(model(x).argmax(1))
    one_hot = torch.eye(1000, dtype=torch.float32)[[target]]
    composites = [
        ("zennit_epsilon_gamma_box", lambda: EpsilonGammaBox(low=-3.0, high=3.0)),
        ("zennit_epsilon_plus_flat", EpsilonPlusFlat),
        ("zennit_epsilon_alpha2_beta1", EpsilonAlpha2Beta1),
    ]
    for name, make in composites:
        with Gradient(model=model, composite=make()) as attributor:
            def lrp():
                out, rel = attributor(x, one_hot)
                return rel
            rel = lrp()
            assert rel.shape == x.shape and torch.isfinite(rel).all()
            t = timeit(lrp, args.repeats, args.warmup)
        report(name, t, f" {statistics.median(t) / fwd_ms:.2f}x forward")


if __name__ == "__main__":
    main()
