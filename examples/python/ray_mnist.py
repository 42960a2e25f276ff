"""Class-wise masks, mean relevance and neuron ranking over the MNIST digits of data/mnist, on Ray.

    pip install ./python "ray[data]"
    python examples/python/ray_mnist.py [--address ADDRESS] [--samples N] [--concurrency K]

Without --address a local Ray with 2 CPUs is started (ray.init(num_cpus=2)); with
--address auto (on a cluster node) or ray://HEAD:10001 the same code runs on a multi-node cluster
(klrp and this repository's files at the same paths on every node).
"""

import argparse
import time
from pathlib import Path

import numpy as np
import ray

import klrp
from klrp.ray import reduce_dataset

ROOT = Path(__file__).resolve().parents[2]
MODEL = str(ROOT / "examples" / "python" / "mnist_mlp.onnx")


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--address", default=None)
    p.add_argument("--samples", type=int, default=10_000)
    p.add_argument("--concurrency", type=int, default=2)
    a = p.parse_args()
    if a.address:
        ray.init(address=a.address)
    else:
        ray.init(num_cpus=2, include_dashboard=False)
    images, labels = klrp.load_mnist(
        ROOT / "data/mnist/images.idx3-ubyte.gz", ROOT / "data/mnist/labels.idx1-ubyte.gz"
    )
    images, labels = images[: a.samples], labels[: a.samples]
    kw = dict(concurrency=a.concurrency)

    start = time.perf_counter()
    every = reduce_dataset(MODEL, images, labels, semiring="boolean", reduce="and", theta=0.001, **kw)
    some = reduce_dataset(MODEL, images, labels, semiring="boolean", reduce="or", theta=0.02, **kw)
    for c in every:
        print(f"class {c}: {every[c][0]} digits, {every[c][1].sum()} pixels relevant in all, "
              f"{some[c][1].sum()} in some")
    mean = reduce_dataset(MODEL, images, labels, semiring="real", reduce="mean", rule="epsilon=0.25", **kw)
    for c, (n, r) in mean.items():
        klrp.save_heatmap(f"mean_relevance_{c}.png", r.reshape(28, 28))
    neurons = reduce_dataset(MODEL, images, labels, semiring="real", reduce="mean",
                             rule="epsilon=0.25", layer=2, **kw)
    total = sum(n * r for n, r in neurons.values()) / len(images)
    order = np.argsort(total)
    print("the 64 first-layer hidden neurons (input of layer 2) by mean relevance, lowest (prune first):",
          order[:10].tolist())
    print(f"{4 * len(images)} explanations in {time.perf_counter() - start:.1f} s; "
          "heatmaps mean_relevance_C.png written")


if __name__ == "__main__":
    main()
