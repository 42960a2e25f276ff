"""Python overhead and Ray throughput (docs/benchmarks.md).

    python examples/python/bench_python.py overhead     # 64 digits: Python call vs the Rust call
    python examples/python/bench_python.py ray          # explanations/s: one process vs Ray

overhead: for each semiring, rounds that alternate one `model.explain` call from Python (array in,
numpy array out, target checks) and one `ExplainSpec::run` timed inside Rust on the same 64 digits
(Model._time_explain_in_rust, same process and binary); the ratio of the medians.
ray: reduce_local (one process, batches of 64) against reduce_dataset (ray.init(num_cpus=2), an actor
pool of 2) on the same digits, boolean ∧ masks per class.
"""

import statistics
import sys
import time
from pathlib import Path

import numpy as np

import klrp

ROOT = Path(__file__).resolve().parents[2]
MODEL = str(ROOT / "examples" / "python" / "mnist_mlp.onnx")


def digits(n):
    images, labels = klrp.load_mnist(
        ROOT / "data/mnist/images.idx3-ubyte.gz", ROOT / "data/mnist/labels.idx1-ubyte.gz"
    )
    return images[:n], labels[:n]


def overhead(rounds: int = 300) -> None:
    model = klrp.Model.from_onnx(MODEL)
    x, labels = digits(64)
    targets = [int(t) for t in labels]
    for semiring in ("real", "boolean", "counting", "viterbi"):
        py, rs = [], []
        for _ in range(10):  # warm-up
            model.explain(x, targets, semiring=semiring)
        for _ in range(rounds):
            start = time.perf_counter()
            model.explain(x, targets, semiring=semiring)
            py.append(time.perf_counter() - start)
            rs += model._model._time_explain_in_rust(x, targets, semiring, 1)
        p, r = statistics.median(py), statistics.median(rs)
        print(f"{semiring:9s} python {p * 1e6:8.1f} µs  rust {r * 1e6:8.1f} µs  ratio {p / r:.3f}")


def ray_throughput(n: int = 4096) -> None:
    import ray
    from klrp.ray import reduce_dataset, reduce_local

    images, labels = digits(n)
    kw = dict(semiring="boolean", reduce="and", theta=0.01)
    start = time.perf_counter()
    local = reduce_local(MODEL, images, labels, **kw)
    t_local = time.perf_counter() - start
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    reduce_dataset(MODEL, images[:256], labels[:256], **kw)  # start-up: actors, workers
    start = time.perf_counter()
    on_ray = reduce_dataset(MODEL, images, labels, concurrency=2, **kw)
    t_ray = time.perf_counter() - start
    assert all(np.array_equal(local[c][1], on_ray[c][1]) for c in local)
    print(f"{n} digits: one process {n / t_local:9.0f} explanations/s ({t_local:.2f} s)")
    print(f"{n} digits: Ray, 2 actors {n / t_ray:9.0f} explanations/s ({t_ray:.2f} s)")


if __name__ == "__main__":
    {"overhead": overhead, "ray": ray_throughput}[sys.argv[1] if len(sys.argv) > 1 else "overhead"]()
