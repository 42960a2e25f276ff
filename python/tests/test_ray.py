"""klrp.ray: the Ray Data run (actor pool, ⊕-reduce per class) equals the single-process run."""

from pathlib import Path

import numpy as np
import pytest

import klrp

ray = pytest.importorskip("ray")
from klrp.ray import reduce_dataset, reduce_local  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
MODEL = str(ROOT / "examples" / "python" / "mnist_mlp.onnx")
N = 256


@pytest.fixture(scope="module")
def digits():
    images, labels = klrp.load_mnist(
        ROOT / "data/mnist/images.idx3-ubyte.gz", ROOT / "data/mnist/labels.idx1-ubyte.gz"
    )
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield images[:N], labels[:N]
    ray.shutdown()


@pytest.mark.parametrize(
    "semiring,reduce,layer,options",
    [
        ("boolean", "and", None, dict(theta=0.001)),
        ("boolean", "or", None, dict(theta=0.02)),
        ("counting", "sum", None, dict(theta=0.01)),
        ("counting", "sum", 2, dict(theta=0.01)),
    ],
)
def test_exact_semirings_bit_for_bit(digits, semiring, reduce, layer, options):
    images, labels = digits
    local = reduce_local(MODEL, images, labels, semiring=semiring, reduce=reduce, layer=layer, **options)
    # batch 48: the Ray partials are cut differently from the local loop's batches of 64
    on_ray = reduce_dataset(
        MODEL, images, labels, semiring=semiring, reduce=reduce, layer=layer, batch_size=48, **options
    )
    assert sorted(local) == sorted(on_ray) == list(range(10))
    for c in local:
        assert local[c][0] == on_ray[c][0]
        assert local[c][1].dtype == on_ray[c][1].dtype
        np.testing.assert_array_equal(local[c][1], on_ray[c][1])
    # the reduction is not trivial: the class masks differ between classes
    values = [local[c][1] for c in local]
    assert any(not np.array_equal(values[0], v) for v in values[1:])


def test_mean_real_relevance_and_neuron_ranking(digits):
    images, labels = digits
    kw = dict(semiring="real", reduce="mean", rule="epsilon=0.25")
    local = reduce_local(MODEL, images, labels, **kw)
    on_ray = reduce_dataset(MODEL, images, labels, batch_size=48, **kw)
    for c in local:
        assert local[c][0] == on_ray[c][0] == int((labels == c).sum())
        np.testing.assert_allclose(on_ray[c][1], local[c][1], rtol=1e-6, atol=1e-9)
    # per-neuron relevance at the input of layer 2 (the 64 hidden neurons), for pruning
    neurons = reduce_dataset(MODEL, images, labels, layer=2, **kw)
    assert neurons[0][1].shape == (64,)
    # by hand for class 0: the mean of the class's layer-2 relevance, one explain call
    model = klrp.Model.from_onnx(MODEL)
    zeros = images[labels == 0]
    by_hand = model.explain(zeros, 0, rule="epsilon=0.25", keep_layers=True)[2].mean(axis=0)
    np.testing.assert_allclose(neurons[0][1], by_hand, rtol=1e-5, atol=1e-7)


def test_reduction_must_fit_the_semiring():
    with pytest.raises(ValueError, match="applies to the boolean"):
        reduce_local(MODEL, np.zeros((1, 784), np.float32), np.zeros(1), semiring="real", reduce="and")
