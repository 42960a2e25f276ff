"""Trains the small MNIST MLP of the Python examples and tests and writes it as ONNX.

784-64-32-10 (ReLU), He-initialised with a fixed seed, plain minibatch SGD (batch 64, rate 0.1,
4 epochs) on the first 8,000 digits of data/mnist (the balanced training split; the last 2,000
are the test split), in numpy float64, then rounded to float32 (fixed seed; the checked-in
mnist_mlp.onnx, 93.2 % test accuracy, is this script's output). Needs numpy and onnx:

    pip install numpy onnx
    python examples/python/train_mnist_mlp.py examples/python/mnist_mlp.onnx
"""

import gzip
import sys
from pathlib import Path

import numpy as np
from onnx import TensorProto, helper, numpy_helper

ROOT = Path(__file__).resolve().parents[2]


def read_idx(path: Path) -> np.ndarray:
    data = gzip.decompress(path.read_bytes())
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(data, np.uint8, offset=4 + 4 * ndim).reshape(dims)


def main(out: str) -> None:
    images = read_idx(ROOT / "data/mnist/images.idx3-ubyte.gz").reshape(-1, 784) / 255.0
    labels = read_idx(ROOT / "data/mnist/labels.idx1-ubyte.gz").astype(np.int64)
    x_train, y_train = images[:8000], labels[:8000]
    x_test, y_test = images[8000:], labels[8000:]
    rng = np.random.default_rng(19)
    sizes = [784, 64, 32, 10]
    ws = [rng.standard_normal((o, i)) * np.sqrt(2.0 / i) for i, o in zip(sizes, sizes[1:])]
    bs = [np.zeros(o) for o in sizes[1:]]

    def forward(x):
        acts = [x]
        for k, (w, b) in enumerate(zip(ws, bs)):
            z = acts[-1] @ w.T + b
            acts.append(np.maximum(z, 0) if k < len(ws) - 1 else z)
        return acts

    for epoch in range(4):
        order = rng.permutation(len(x_train))
        for start in range(0, len(order), 64):
            idx = order[start : start + 64]
            acts = forward(x_train[idx])
            p = np.exp(acts[-1] - acts[-1].max(axis=1, keepdims=True))
            p /= p.sum(axis=1, keepdims=True)
            grad = p
            grad[np.arange(len(idx)), y_train[idx]] -= 1
            grad /= len(idx)
            for k in reversed(range(len(ws))):
                gw, gb = grad.T @ acts[k], grad.sum(axis=0)
                if k > 0:
                    grad = (grad @ ws[k]) * (acts[k] > 0)
                ws[k] -= 0.1 * gw
                bs[k] -= 0.1 * gb
        accuracy = (forward(x_test)[-1].argmax(axis=1) == y_test).mean()
        print(f"epoch {epoch + 1}: test accuracy {accuracy:.4f}")

    nodes, inits, src = [], [], "input"
    for k, (w, b) in enumerate(zip(ws, bs)):
        inits += [
            numpy_helper.from_array(w.astype(np.float32), f"w{k}"),
            numpy_helper.from_array(b.astype(np.float32), f"b{k}"),
        ]
        dst = "output" if k == len(ws) - 1 else f"z{k}"
        nodes.append(helper.make_node("Gemm", [src, f"w{k}", f"b{k}"], [dst], name=f"fc{k}", transB=1))
        if k < len(ws) - 1:
            nodes.append(helper.make_node("Relu", [dst], [f"a{k}"], name=f"relu{k}"))
            src = f"a{k}"
    graph = helper.make_graph(
        nodes,
        "mnist_mlp",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 784])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["N", 10])],
        inits,
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 13)], producer_name="klrp-examples"
    )
    model.ir_version = 8
    Path(out).write_bytes(model.SerializeToString())
    print(f"wrote {out}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else str(Path(__file__).with_name("mnist_mlp.onnx")))
