"""The klrp Python package against the Rust command line, and its error handling.

Reference outputs: fixtures/<case>.npy, written by `klrp explain` (fixtures/make_fixtures.sh) for
every line of fixtures/cases.txt, on the ONNX fixtures of tests/fixtures/onnx/.
"""

import gc
import os
import shlex
import struct
from pathlib import Path

import numpy as np
import pytest

import klrp

ROOT = Path(__file__).resolve().parents[2]
ONNX = ROOT / "tests" / "fixtures" / "onnx"
FIXTURES = Path(__file__).resolve().parent / "fixtures"


def model_path(name: str) -> Path:
    if name == "mnist":
        return ROOT / "examples" / "python" / "mnist_mlp.onnx"
    return ONNX / name / "legacy.onnx"


def load_input(name: str) -> np.ndarray:
    if name == "mnist":
        return np.load(FIXTURES / "mnist64.npy")
    return np.load(ONNX / name / "input.npy")


def cases():
    for line in (FIXTURES / "cases.txt").read_text().splitlines():
        if not line or line.startswith("#"):
            continue
        name, model, target, *rest = line.split("\t")
        yield pytest.param(name, model, target, rest[0] if rest else "", id=name)


def cli_to_kwargs(opts: str) -> dict:
    """`klrp explain` flags → Model.explain keyword arguments (the same strings)."""
    kwargs: dict = {}
    args = shlex.split(opts)
    i = 0
    while i < len(args):
        flag = args[i]
        key = flag[2:].replace("-", "_")
        if flag == "--theta-abs":
            kwargs["theta_abs"] = True
            i += 1
            continue
        value = args[i + 1]
        if flag == "--theta-at":
            index, t = value.split("=")
            kwargs.setdefault("theta_at", {})[int(index)] = float(t)
        elif flag in ("--low", "--high", "--theta"):
            kwargs[key] = float(value)
        else:
            kwargs[key] = value
        i += 2
    return kwargs


def cli_target(target: str):
    if target == "predicted":
        return "predicted"
    classes = [int(c) for c in target.split(",")]
    return classes[0] if len(classes) == 1 else classes


@pytest.mark.parametrize("name,model,target,opts", list(cases()))
def test_explain_equals_the_command_line(name, model, target, opts):
    expected = np.load(FIXTURES / f"{name}.npy")
    m = klrp.Model.from_onnx(model_path(model))
    got = m.explain(load_input(model), cli_target(target), **cli_to_kwargs(opts))
    assert got.dtype == expected.dtype
    assert got.shape == expected.shape
    if got.dtype == np.float32 and "viterbi" not in opts:
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6)
    else:
        # boolean, counting and viterbi are exact: bit for bit.
        np.testing.assert_array_equal(got, expected)


def test_one_sample_has_no_batch_axis():
    m = klrp.Model.from_onnx(model_path("cnn_pool"))
    x = load_input("cnn_pool")
    batch = m.explain(x, 1, semiring="counting")
    one = m.explain(x[1], 1, semiring="counting")
    assert one.shape == x.shape[1:]
    np.testing.assert_array_equal(one, batch[1])


def test_keep_layers_lists_every_layer_and_starts_with_the_input():
    m = klrp.Model.from_onnx(model_path("mlp"))
    x = load_input("mlp")
    layers = m.explain(x, 2, semiring="counting", keep_layers=True)
    assert isinstance(layers, list)
    assert len(layers) == m.num_layers + 1
    np.testing.assert_array_equal(layers[0], m.explain(x, 2, semiring="counting"))
    assert layers[-1].shape == (3, 3)
    # the output initialisation: one path at the target class
    np.testing.assert_array_equal(layers[-1][:, 2], [1, 1, 1])
    assert layers[-1].sum() == 3


def test_predict_is_the_softmax_of_the_outputs():
    m = klrp.Model.from_onnx(model_path("mlp"))
    x = load_input("mlp")
    logits = m.forward(x).astype(np.float64)
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    top = m.predict(x, top=2)
    assert len(top) == 3
    for s, ranked in enumerate(top):
        order = np.argsort(-p[s], kind="stable")[:2]
        assert [c for c, _ in ranked] == list(order)
        np.testing.assert_allclose([q for _, q in ranked], p[s][order], rtol=1e-12)
    assert len(m.predict(x[0])) == 3  # one sample, top=5 capped by 3 classes


def test_predicted_target_is_the_top_class():
    m = klrp.Model.from_onnx(model_path("mlp"))
    x = load_input("mlp")
    classes = m.forward(x).argmax(axis=1)
    np.testing.assert_array_equal(
        m.explain(x, "predicted", semiring="boolean"),
        m.explain(x, list(classes), semiring="boolean"),
    )


def test_info_lists_the_layers():
    info = klrp.Model.from_onnx(model_path("mlp")).info()
    assert info["input_shape"] == [8]
    assert info["output_shape"] == [3]
    assert [l["layer"] for l in info["layers"]][:2] == ["Dense(8 → 6)", "ReLU"]
    assert info["params"] == 107 == sum(l["params"] for l in info["layers"])


# --- bad input ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def mlp():
    return klrp.Model.from_onnx(model_path("mlp"))


def test_wrong_dtype(mlp):
    with pytest.raises(ValueError, match="float32"):
        mlp.explain(load_input("mlp").astype(np.float64), 0)


def test_wrong_shape(mlp):
    with pytest.raises(ValueError, match="shape"):
        mlp.explain(np.zeros((2, 7), np.float32), 0)


def test_nan(mlp):
    x = load_input("mlp").copy()
    x[1, 3] = np.nan
    with pytest.raises(ValueError, match="non-finite"):
        mlp.explain(x, 0)


@pytest.mark.parametrize(
    "kwargs,message",
    [
        (dict(semiring="tropical"), "--semiring: 'tropical'"),
        (dict(rule="epsilon=abc"), "--rule"),
        (dict(rule="banana"), "--rule"),
        (dict(composite="nope"), "--composite"),
        (dict(theta=0.1), "--theta"),
        (dict(rule="zplus", composite="epsilon-plus-flat"), "not both"),
        (dict(semiring="counting", theta_at={9: 0.1}), "layer 9 does not exist"),
        (dict(maxpool="max"), "--maxpool"),
    ],
)
def test_bad_options_raise_the_command_lines_message(mlp, kwargs, message):
    with pytest.raises(ValueError, match=message):
        mlp.explain(load_input("mlp"), 0, **kwargs)


@pytest.mark.parametrize("target", [3, [0, 1], -1, "best", 1.5])
def test_bad_targets(mlp, target):
    with pytest.raises(ValueError, match="target"):
        mlp.explain(load_input("mlp"), target)


def test_missing_file_names_the_path(tmp_path):
    missing = tmp_path / "absent.onnx"
    with pytest.raises(FileNotFoundError, match="absent.onnx"):
        klrp.Model.from_onnx(missing)


def test_not_onnx(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model at all")
    with pytest.raises(ValueError, match="ONNX|onnx"):
        klrp.Model.from_onnx(bad)


# --- heatmaps ----------------------------------------------------------------------------------


def test_heatmap_colours_sign_and_writes_png(tmp_path):
    r = np.array([[1.0, 0.0], [-1.0, 0.5]], np.float32)
    rgb = klrp.heatmap(r)
    assert rgb.dtype == np.uint8 and rgb.shape == (2, 2, 3)
    assert tuple(rgb[0, 0]) == (255, 0, 0)  # largest positive: red
    assert tuple(rgb[0, 1]) == (255, 255, 255)  # zero: white
    assert tuple(rgb[1, 0]) == (0, 0, 255)  # most negative: blue
    mask = klrp.heatmap(np.array([[True, False]]))
    assert tuple(mask[0, 0]) == (0, 0, 0) and tuple(mask[0, 1]) == (255, 255, 255)
    path = tmp_path / "h.png"
    out = klrp.save_heatmap(path, np.ones((2, 3, 5), np.uint64))  # [C, H, W] summed
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    assert (height, width) == out.shape[:2] == (3, 5)


def test_heatmap_bad_input():
    with pytest.raises(ValueError, match="cmap"):
        klrp.heatmap(np.zeros((2, 2)), cmap="jet")
    with pytest.raises(ValueError, match="dimensions"):
        klrp.heatmap(np.zeros(4))


# --- resources ---------------------------------------------------------------------------------


def rss_bytes() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="needs Linux /proc")
def test_no_memory_growth_over_1000_calls():
    m = klrp.Model.from_onnx(model_path("cnn_pool"))
    # 64 samples: 32 KiB in, 32 KiB out per call, so a leak of either is 32 MB over 1,000 calls.
    x = np.tile(load_input("cnn_pool"), (22, 1, 1, 1))[:64]
    for _ in range(50):
        m.explain(x, 1)
    gc.collect()
    before = rss_bytes()
    for i in range(1000):
        m.explain(x, i % 3, semiring=("real", "counting")[i % 2])
    gc.collect()
    growth = rss_bytes() - before
    assert growth < 8 * 2**20, f"RSS grew by {growth / 2**20:.1f} MiB over 1,000 calls"
