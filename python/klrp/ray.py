"""Dataset-scale K-LRP on Ray: explain every sample (map), reduce with the semiring's ⊕.

Ray Data runs :class:`Explainer` in a fixed actor pool of ``concurrency`` actors
(``map_batches(..., compute=ray.data.ActorPoolStrategy(size=N))``): each
actor loads the ONNX model once and turns a batch of samples into one partial result per class
present in the batch (the batch's samples of that class reduced with ⊕). The driver reduces the
partials with the same ⊕. The class explained for a sample is its label.

Reductions (``reduce=``):

- ``"and"`` / ``"or"`` (boolean): class-wise masks, ∧ (pixels relevant in *every* image of the
  class) and ∨ (in *some* image).
- ``"sum"`` (counting, real) and ``"mean"`` (real): per-class path totals, and the per-class mean
  relevance (the "relevance mean over the training dataset").
- ``"max"`` (viterbi): the strongest path to each pixel over the class.

``layer=i`` reduces the relevance at the input of layer ``i`` (``keep_layers``) instead of the
input: with ``reduce="mean"`` that is the per-neuron relevance that ranks neurons for pruning.

Local cluster: ``ray.init(num_cpus=2)``; a multi-node cluster: ``ray.init(address="auto")`` on a
node of the cluster (or ``ray.init(address="ray://HEAD:10001")`` from outside) with klrp
installed on every node and the model file at the same path (or on shared storage) on each.
:func:`reduce_local` computes the same result in this process, without Ray.
"""

from __future__ import annotations

from typing import Any, Dict, Iterable, Mapping, Optional, Tuple

import numpy as np

from . import Model

__all__ = ["Explainer", "reduce_dataset", "reduce_local", "REDUCTIONS"]

#: reduction → (the semirings it applies to, ⊕ on two arrays).
REDUCTIONS = {
    "and": (("boolean",), np.logical_and),
    "or": (("boolean",), np.logical_or),
    "sum": (("counting", "real"), np.add),
    "mean": (("real",), np.add),
    "max": (("viterbi",), np.maximum),
}


def _check(semiring: str, reduce: str) -> None:
    if reduce not in REDUCTIONS:
        raise ValueError(f"reduce: '{reduce}' is not one of {', '.join(REDUCTIONS)}")
    if semiring not in REDUCTIONS[reduce][0]:
        raise ValueError(
            f"reduce '{reduce}' applies to the {' and '.join(REDUCTIONS[reduce][0])} semiring, "
            f"not {semiring}"
        )


def _reduce_axis0(reduce: str, values: np.ndarray) -> np.ndarray:
    """⊕ over the samples of one class (axis 0)."""
    if reduce == "and":
        return values.all(axis=0)
    if reduce == "or":
        return values.any(axis=0)
    if reduce == "max":
        return values.max(axis=0)
    if values.dtype == np.uint64:
        # counting: saturating ⊕ like the semiring (2**64 - 1 means "that many or more")
        total = values.astype(object).sum(axis=0)
        return np.minimum(total, np.iinfo(np.uint64).max).astype(np.uint64)
    return values.astype(np.float64).sum(axis=0)


def _combine(reduce: str, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """⊕ of two partial results."""
    if a.dtype == np.uint64:
        return _reduce_axis0(reduce, np.stack([a, b]))
    return REDUCTIONS[reduce][1](a, b)


def _partials(
    model: Model,
    images: np.ndarray,
    labels: np.ndarray,
    semiring: str,
    reduce: str,
    layer: Optional[int],
    explain_kwargs: Mapping[str, Any],
) -> Dict[str, np.ndarray]:
    """One batch → one row per class present: label, count and the class's ⊕ of the batch."""
    labels = np.asarray(labels).astype(np.int64)
    x = np.ascontiguousarray(images, dtype=np.float32)
    if layer is None:
        r = model.explain(x, list(labels), semiring=semiring, **explain_kwargs)
    else:
        r = model.explain(x, list(labels), semiring=semiring, keep_layers=True, **explain_kwargs)[layer]
    classes = np.unique(labels)
    return {
        "label": classes,
        "count": np.array([(labels == c).sum() for c in classes], np.int64),
        "value": np.stack([_reduce_axis0(reduce, r[labels == c]) for c in classes]),
    }


class Explainer:
    """The Ray Data actor: loads the model once, turns each batch into per-class partials.

    Batches are dicts of numpy arrays with the columns ``image`` (float32 ``[B, …]``) and
    ``label`` (the class to explain).
    """

    def __init__(
        self,
        model_path: str,
        semiring: str,
        reduce: str,
        layer: Optional[int] = None,
        explain_kwargs: Optional[Mapping[str, Any]] = None,
    ) -> None:
        _check(semiring, reduce)
        self.model = Model.from_onnx(model_path)
        self.semiring, self.reduce, self.layer = semiring, reduce, layer
        self.explain_kwargs = dict(explain_kwargs or {})

    def __call__(self, batch: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
        return _partials(
            self.model,
            batch["image"],
            batch["label"],
            self.semiring,
            self.reduce,
            self.layer,
            self.explain_kwargs,
        )


def _finish(
    reduce: str, rows: Iterable[Tuple[int, int, np.ndarray]]
) -> Dict[int, Tuple[int, np.ndarray]]:
    """Partials → {class: (samples, ⊕ over them)} (divided by the count for "mean")."""
    acc: Dict[int, Tuple[int, np.ndarray]] = {}
    for label, count, value in rows:
        label, count = int(label), int(count)
        if label in acc:
            n, v = acc[label]
            acc[label] = (n + count, _combine(reduce, v, value))
        else:
            acc[label] = (count, value)
    if reduce == "mean":
        acc = {c: (n, v / n) for c, (n, v) in acc.items()}
    return dict(sorted(acc.items()))


def reduce_dataset(
    model_path: str,
    images: np.ndarray,
    labels: np.ndarray,
    *,
    semiring: str,
    reduce: str,
    layer: Optional[int] = None,
    concurrency: int = 2,
    batch_size: int = 64,
    num_cpus_per_actor: float = 1.0,
    **explain_kwargs: Any,
) -> Dict[int, Tuple[int, np.ndarray]]:
    """Explains every sample for its label on Ray and reduces per class with ⊕.

    Returns ``{class: (number of samples, reduced relevance)}``. ``explain_kwargs`` are
    :meth:`klrp.Model.explain`'s options (``rule=``, ``theta=``, …). Starts a local Ray if none
    is running (``ray.init()`` first to choose the cluster).
    """
    import ray

    _check(semiring, reduce)
    if not ray.is_initialized():
        ray.init()
    images = np.ascontiguousarray(images, dtype=np.float32)
    labels = np.asarray(labels).astype(np.int64)
    if len(images) != len(labels):
        raise ValueError(f"{len(images)} images but {len(labels)} labels")
    ds = ray.data.from_items([{"image": x, "label": y} for x, y in zip(images, labels)])
    partials = ds.map_batches(
        Explainer,
        fn_constructor_kwargs=dict(
            model_path=str(model_path),
            semiring=semiring,
            reduce=reduce,
            layer=layer,
            explain_kwargs=explain_kwargs,
        ),
        batch_size=batch_size,
        batch_format="numpy",
        compute=ray.data.ActorPoolStrategy(size=concurrency),
        num_cpus=num_cpus_per_actor,
    )
    rows = (
        (b["label"][i], b["count"][i], b["value"][i])
        for b in partials.iter_batches(batch_format="numpy", batch_size=None)
        for i in range(len(b["label"]))
    )
    return _finish(reduce, rows)


def reduce_local(
    model_path: str,
    images: np.ndarray,
    labels: np.ndarray,
    *,
    semiring: str,
    reduce: str,
    layer: Optional[int] = None,
    batch_size: int = 64,
    **explain_kwargs: Any,
) -> Dict[int, Tuple[int, np.ndarray]]:
    """:func:`reduce_dataset` in this process, one batch after the other (the reference)."""
    _check(semiring, reduce)
    model = Model.from_onnx(model_path)
    rows = []
    for start in range(0, len(images), batch_size):
        p = _partials(
            model,
            images[start : start + batch_size],
            labels[start : start + batch_size],
            semiring,
            reduce,
            layer,
            explain_kwargs,
        )
        rows += list(zip(p["label"], p["count"], p["value"]))
    return _finish(reduce, rows)
