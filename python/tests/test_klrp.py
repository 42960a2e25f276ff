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


# --- images: the model's preprocessing (metadata_props) --------------------------------------

METADATA = ONNX / "metadata"


def test_metadata_is_the_models_metadata_props():
    m = klrp.Model.from_onnx(METADATA / "preprocess.onnx")
    want = {
        "klrp.crop": "6,6",
        "klrp.mean": "0.5,0.4,0.3",
        "klrp.resize": "8",
        "klrp.std": "0.25",
        "license": "MIT",
    }
    assert m.metadata == want
    assert m.info()["metadata"] == want
    assert klrp.Model.from_onnx(model_path("mlp")).metadata == {}


def test_preprocess_applies_the_declared_preprocessing():
    # klrp.resize 8, klrp.crop 6, mean (0.5, 0.4, 0.3), std 0.25. An 8 × 10 image: its shorter
    # side is already 8 (no resize); the center 6 × 6 crop is rows 1..7, columns 2..8.
    m = klrp.Model.from_onnx(METADATA / "preprocess.onnx")
    rgb = np.random.default_rng(0).integers(0, 256, size=(8, 10, 3), dtype=np.uint8)
    x = m.preprocess(rgb)
    mean = np.array([0.5, 0.4, 0.3], np.float32)[:, None, None]
    crop = rgb[1:7, 2:8].transpose(2, 0, 1).astype(np.float32) / np.float32(255)
    want = (crop - mean) / np.float32(0.25)
    assert x.dtype == np.float32 and x.shape == (3, 6, 6)
    np.testing.assert_allclose(x, want, rtol=0, atol=1e-6)
    # the result is the network's input: one sample, or a batch with np.stack
    assert m.forward(x).shape == (3,)
    assert m.forward(np.stack([x, x])).shape == (2, 3)
    # overrides: no normalisation; another resize (shorter side 6: 6 × 7, then the crop 6 × 6)
    raw = m.preprocess(rgb, normalize="none")
    np.testing.assert_allclose(raw, crop, rtol=0, atol=1e-7)
    assert m.preprocess(rgb, resize=6).shape == (3, 6, 6)
    np.testing.assert_allclose(
        m.preprocess(rgb, normalize="imagenet"),
        (crop - np.array([0.485, 0.456, 0.406], np.float32)[:, None, None])
        / np.array([0.229, 0.224, 0.225], np.float32)[:, None, None],
        rtol=0,
        atol=1e-5,
    )


def test_preprocess_gray_model_gets_the_luminance():
    # klrp.resize none, klrp.crop 6, mean 0.5, std 0.25, a [1, 6, 6] input.
    m = klrp.Model.from_onnx(METADATA / "grayscale.onnx")
    rgb = np.random.default_rng(1).integers(0, 256, size=(6, 6, 3), dtype=np.uint8)
    x = m.preprocess(rgb)
    luma = (0.299 * rgb[..., 0] + 0.587 * rgb[..., 1] + 0.114 * rgb[..., 2]) / 255
    np.testing.assert_allclose(x, ((luma - 0.5) / 0.25)[None], rtol=0, atol=1e-5)
    # a gray [H, W] array is the RGB image with three equal channels
    gray = rgb[..., 0]
    np.testing.assert_array_equal(m.preprocess(gray), m.preprocess(np.dstack([gray] * 3)))
    with pytest.raises(ValueError, match="imagenet needs a 3-channel model"):
        m.preprocess(rgb, normalize="imagenet")


def test_preprocess_of_a_file_equals_that_of_its_pixels(tmp_path):
    m = klrp.Model.from_onnx(METADATA / "preprocess.onnx")
    rgb = np.random.default_rng(2).integers(0, 256, size=(9, 12, 3), dtype=np.uint8)
    path = tmp_path / "img.png"
    klrp.write_png(path, rgb)
    np.testing.assert_array_equal(m.preprocess(path), m.preprocess(rgb))
    np.testing.assert_array_equal(m.preprocess(str(path), resize=7), m.preprocess(rgb, resize=7))
    with pytest.raises(ValueError, match="above the limit"):
        m.preprocess(path, max_pixels=100)


def test_lite0_photo_gives_pytorchs_logits():
    """The shipped EfficientNet-Lite0 declares TensorFlow's normalisation in its metadata; with it
    a PNG photo gives PyTorch's logits (models/reference/logits.npy, row 1: chelsea.png, tiger cat
    282 at 0.4072) to the 1e-5 the Rust test allows (tests/it/imagenet.rs)."""
    m = klrp.Model.from_onnx(ROOT / "models" / "efficientnet_lite0.onnx")
    x = m.preprocess(ROOT / "data" / "photos" / "chelsea.png")
    assert x.shape == (3, 224, 224)
    logits = m.forward(x)
    want = np.load(ROOT / "models" / "reference" / "logits.npy")[1]
    assert np.abs(logits - want).max() / np.abs(want).max() < 1e-5
    (top, p), *_ = m.predict(x, top=1)
    assert top == 282 and round(p, 4) == 0.4072
    # ImageNet's normalisation instead (what the model does not declare) gives other logits
    other = m.forward(m.preprocess(ROOT / "data" / "photos" / "chelsea.png", normalize="imagenet"))
    assert np.abs(other - want).max() / np.abs(want).max() > 1e-2


def test_preprocess_errors(tmp_path, mlp):
    png = ROOT / "tests" / "fixtures" / "images" / "rgb.png"
    with pytest.raises(ValueError, match=r"not an image \(\[C, H, W\]\)"):
        mlp.preprocess(png)
    bad = klrp.Model.from_onnx(METADATA / "mean_without_std.onnx")
    with pytest.raises(ValueError, match="klrp.std is missing"):
        bad.preprocess(png)
    m = klrp.Model.from_onnx(METADATA / "preprocess.onnx")
    with pytest.raises(FileNotFoundError, match="nope.png"):
        m.preprocess(tmp_path / "nope.png")
    with pytest.raises(ValueError, match="normalize: 'tf' is not imagenet or none"):
        m.preprocess(png, normalize="tf")
    for resize in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match="resize"):
            m.preprocess(png, resize=resize)
    with pytest.raises(ValueError, match="uint8"):
        m.preprocess(np.zeros((4, 4, 3), np.float32))
    with pytest.raises(ValueError, match="uint8"):
        m.preprocess(np.zeros((4, 4, 4), np.uint8))
    with pytest.raises(ValueError, match="H, W"):
        m.preprocess(np.zeros((0, 4, 3), np.uint8))
    with pytest.raises(ValueError, match="max_pixels"):
        m.preprocess(np.zeros((4, 4, 3), np.uint8), max_pixels=10)
    garbage = tmp_path / "g.png"
    garbage.write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    with pytest.raises(ValueError, match="PNG"):
        m.preprocess(garbage)


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


def test_per_channel_box_bounds():
    # A sequence gives one z^B bound per channel (`--low L0,L1,L2`): the same numbers in every
    # channel are the scalar bound; others change the relevance; an empty box is refused.
    m = klrp.Model.from_onnx(model_path("cnn_bn"))
    x = load_input("cnn_bn")
    opts = dict(rule="epsilon=1e-6", first_rule="zbox", init="one")
    scalar = m.explain(x, 1, low=-2.0, high=2.0, **opts)
    listed = m.explain(x, 1, low=[-2.0, -2.0, -2.0], high=np.array([2.0, 2.0, 2.0]), **opts)
    assert np.array_equal(scalar, listed)
    other = m.explain(x, 1, low=[-2.0, -1.0, -0.5], high=(2.0, 2.5, 3.0), **opts)
    assert not np.allclose(other, scalar)
    with pytest.raises(ValueError, match="low < high"):
        m.explain(x, 1, low=[0.0, 1.0, 0.0], high=[1.0, 1.0, 1.0], **opts)
    with pytest.raises(ValueError, match="z\\^B box bound"):
        m.explain(x, 1, low=[0.0, 0.0], high=[1.0, 1.0], **opts)


def test_near_kinks_counts_units_within_float32_rounding_of_a_kink():
    # The bundled fixtures decide every max-pooling window and ReLU clearly.
    for name in ["mlp", "cnn_pool", "cnn_bn"]:
        assert klrp.Model.from_onnx(model_path(name)).near_kinks(load_input(name)) == []
    # VGG-11 with random weights has near-tied max-pooling windows (issue #29).
    vgg = ROOT / "tests" / "fixtures" / "torchvision" / "vgg11"
    m = klrp.Model.from_onnx(vgg / "model.onnx")
    near = m.near_kinks(np.load(vgg / "input.npy"))
    assert near and all(n > 0 for _, n in near)
    names = {l["index"]: l["layer"] for l in m.info()["layers"]}
    assert any(names[i].startswith("MaxPool2d") for i, _ in near), near
