"""klrp: semiring-generalized Layer-wise Relevance Propagation (K-LRP) from Python.

``R_j = ⊕_k Θ(d_jk) ⊗ R_k`` in the real (classical LRP, as Zennit), boolean (masks), counting
(paths) or viterbi (strongest path) semiring, computed by the klrp Rust crate.

The API mirrors the command line: ``Model.explain`` takes the options of ``klrp explain`` with the
same strings, meanings and defaults (it calls the same library code, ``klrp::spec``).

>>> import numpy as np, klrp
>>> model = klrp.Model.from_onnx("mlp.onnx")                     # doctest: +SKIP
>>> x = np.zeros((4, 784), dtype=np.float32)                     # doctest: +SKIP
>>> r = model.explain(x, "predicted", rule="epsilon=0.25")       # doctest: +SKIP
>>> mask = model.explain(x, 3, semiring="boolean", theta=0.05)   # doctest: +SKIP

Errors: bad input (dtype, shape, NaN, unknown semiring/rule/composite, out-of-range target, …)
raises ``ValueError`` with klrp's message; a missing file ``FileNotFoundError`` (another I/O
failure ``OSError``), naming the path.
"""

from __future__ import annotations

import os
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from . import _klrp

__all__ = [
    "Model",
    "from_torch",
    "heatmap",
    "save_heatmap",
    "write_png",
    "load_mnist",
    "DEFAULT_THETA",
    "DEFAULT_TOP",
]

#: The default Θ threshold of the boolean and counting semirings (``--theta``).
DEFAULT_THETA: float = _klrp.DEFAULT_THETA
#: The default number of classes ``predict`` returns (``--top``).
DEFAULT_TOP: int = _klrp.DEFAULT_TOP

Target = Union[int, Sequence[int], str]


def _input(x: Any) -> np.ndarray:
    """``x`` as a float32 numpy array, or ValueError naming what it is."""
    a = np.asarray(x)
    if a.dtype != np.float32:
        raise ValueError(
            f"x must be a float32 array, got dtype {a.dtype} (use x.astype(np.float32))"
        )
    return a


def _targets(target: Target) -> Optional[List[int]]:
    """``target`` as the binding takes it: None for "predicted", else a list of classes."""
    if isinstance(target, str):
        if target.strip() == "predicted":
            return None
        raise ValueError(f"target: '{target}' is not 'predicted', a class or a list of classes")
    if isinstance(target, (bool, np.bool_)):
        raise ValueError("target: a class must be an integer, got a bool")
    if isinstance(target, (int, np.integer)):
        classes = [target]
    else:
        try:
            classes = list(target)
        except TypeError:
            raise ValueError(
                f"target: expected 'predicted', an int or a sequence of ints, got {type(target).__name__}"
            ) from None
    out = []
    for c in classes:
        if isinstance(c, (bool, np.bool_)) or not isinstance(c, (int, np.integer)):
            raise ValueError(f"target: {c!r} is not an integer class")
        if c < 0:
            raise ValueError(f"target: {c} is negative")
        out.append(int(c))
    if not out:
        raise ValueError("target: give at least one class")
    return out


class Model:
    """A network to explain, loaded from ONNX (as ``klrp explain --model``)."""

    __slots__ = ("_model",)

    def __init__(self, model: "_klrp.Model") -> None:
        self._model = model

    @staticmethod
    def from_onnx(path: Union[str, "os.PathLike[str]"]) -> "Model":
        """Loads an ONNX file.

        Raises FileNotFoundError if it does not exist, ValueError if it is not an ONNX model
        klrp can import (the message says which node and why).
        """
        return Model(_klrp.Model.from_onnx(os.fspath(path)))

    def info(self) -> Dict[str, Any]:
        """The layers as ``klrp info`` lists them: a dict with ``model``, ``input_shape``,
        ``output_shape``, ``params``, ``layers`` (each ``index``, ``from``, ``layer``,
        ``output_shape``, ``params``) and ``metadata`` (the ONNX ``metadata_props``)."""
        return self._model.info()

    @property
    def metadata(self) -> Dict[str, str]:
        """The model's ONNX ``metadata_props`` (key → value). klrp reads ``klrp.mean``,
        ``klrp.std``, ``klrp.resize`` and ``klrp.crop``: the preprocessing its image inputs need
        (see ``preprocess``)."""
        return self._model.metadata()

    def preprocess(
        self,
        image: Union[str, "os.PathLike[str]", np.ndarray],
        *,
        resize: Optional[int] = None,
        normalize: Optional[str] = None,
        max_pixels: Optional[int] = None,
    ) -> np.ndarray:
        """An image as this model's input: float32 ``[C, H, W]``, ready for ``explain``,
        ``predict`` and ``forward`` (stack several with ``np.stack`` for a batch).

        ``image``: a PNG/JPEG file, or a uint8 array ``[H, W, 3]`` (RGB) or ``[H, W]`` (gray).
        Preprocessed as ``klrp explain --input IMAGE`` does: as the model's ``metadata`` declares
        (``klrp.resize``, ``klrp.crop``, ``klrp.mean``/``klrp.std``), else scale to [0, 1],
        resize the shorter side to ⌊256/224 · H⌋, center crop ``H × W``, and ImageNet
        normalisation for 3 channels (none for 1; a 1-channel model gets the luminance).
        ``resize`` (the shorter side, pixels) and ``normalize`` (``"imagenet"`` or ``"none"``)
        override it, as ``--resize``/``--normalize`` do; ``max_pixels`` bounds a file's size
        (default 2**26).

        Raises ValueError if the model's input is not an image ``[C, H, W]`` with C = 1 or 3,
        if its metadata is invalid, or for a bad array or file (FileNotFoundError if missing).
        """
        if resize is not None and (
            isinstance(resize, bool) or not isinstance(resize, (int, np.integer)) or resize < 1
        ):
            raise ValueError(f"resize: must be an integer of at least 1, got {resize!r}")
        if isinstance(image, (str, os.PathLike)):
            if max_pixels is not None and (
                isinstance(max_pixels, bool)
                or not isinstance(max_pixels, (int, np.integer))
                or max_pixels < 1
            ):
                raise ValueError(f"max_pixels: must be an integer of at least 1, got {max_pixels!r}")
            return self._model.preprocess_file(
                os.fspath(image),
                resize=None if resize is None else int(resize),
                normalize=normalize,
                max_pixels=None if max_pixels is None else int(max_pixels),
            )
        if max_pixels is not None:
            raise ValueError("max_pixels: applies to image files only")
        a = np.asarray(image)
        if a.dtype != np.uint8 or a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[2] != 3):
            raise ValueError(
                f"image: expected a file path or a uint8 [H, W, 3] or [H, W] array, got "
                f"{a.dtype} {a.shape}"
            )
        if a.ndim == 2:
            a = np.repeat(a[:, :, None], 3, axis=2)
        return self._model.preprocess_rgb(
            np.ascontiguousarray(a),
            resize=None if resize is None else int(resize),
            normalize=normalize,
        )

    @property
    def num_layers(self) -> int:
        """The number of layers after canonization (the indices ``theta_at`` takes)."""
        return self._model.num_layers()

    def explain(
        self,
        x: np.ndarray,
        target: Target,
        *,
        semiring: str = "real",
        rule: Optional[str] = None,
        first_rule: Optional[str] = None,
        composite: Optional[str] = None,
        low: Union[float, Sequence[float], None] = None,
        high: Union[float, Sequence[float], None] = None,
        theta: Optional[float] = None,
        theta_at: Optional[Mapping[int, float]] = None,
        theta_abs: bool = False,
        theta_auto: Optional[str] = None,
        init: Optional[str] = None,
        maxpool: str = "wta",
        keep_layers: bool = False,
    ) -> Union[np.ndarray, List[np.ndarray]]:
        """Explains ``x`` for ``target`` with K-LRP, as ``klrp explain`` does.

        ``x``: float32, a batch ``[N, …]`` or one sample (then the result has no batch axis).
        ``target``: a class for every sample, one class per sample, or ``"predicted"``.
        The options take the command line's strings: ``semiring`` real | boolean | counting |
        viterbi; ``rule`` e.g. ``"epsilon=0.25"``, ``"alpha-beta=2,1"``, ``"gamma=0.25"``;
        ``first_rule`` a rule or ``"zbox"``; ``composite`` e.g. ``"epsilon-gamma-box"``;
        ``low``/``high`` the z^B bounds (default ±3; a sequence gives one per channel); ``theta`` Θ (default 0.01) and
        ``theta_at`` ``{layer index: θ}`` for boolean/counting, ``theta_abs`` for ``|d| > θ``;
        ``theta_auto`` per-layer θ calibrated on ``x``: ``"fair-share:K"``, ``"inputs:F"`` or
        ``"connections:F"`` (docs/semantics.md §9);
        ``init`` output | one; ``maxpool`` wta | average.

        Returns the input relevance shaped like ``x``: float32 (real, viterbi), bool (boolean)
        or uint64 (counting, ``2**64 - 1`` meaning "that many or more"); with
        ``keep_layers=True`` a list of the relevance at every layer's input, then at the output.

        Raises ValueError for bad input (dtype, shape, NaN/Inf, unknown option values,
        out-of-range target). The GIL is released during the computation.
        """
        if theta_at is not None:
            theta_at = {int(k): float(v) for k, v in dict(theta_at).items()}
            if any(k < 0 for k in theta_at):
                raise ValueError("theta_at: layer indices must be non-negative")
            theta_at = dict(sorted(theta_at.items()))  # by layer, as --theta-at lists them
        return self._model.explain(
            _input(x),
            _targets(target),
            semiring=semiring,
            rule=rule,
            first_rule=first_rule,
            composite=composite,
            low=low,
            high=high,
            theta=theta,
            theta_at=theta_at,
            theta_abs=theta_abs,
            theta_auto=theta_auto,
            init=init,
            maxpool=maxpool,
            keep_layers=keep_layers,
        )

    def predict(self, x: np.ndarray, top: int = DEFAULT_TOP) -> Union[
        List[List[Tuple[int, float]]], List[Tuple[int, float]]
    ]:
        """The ``top`` most probable classes (softmax of the outputs), best first, as
        ``(class, probability)``: a list per sample for a batch, one list for one sample."""
        if isinstance(top, bool) or not isinstance(top, (int, np.integer)) or top < 1:
            raise ValueError(f"top: K must be an integer of at least 1, got {top!r}")
        a = _input(x)
        single = a.ndim == len(self.info()["input_shape"])
        result = self._model.predict(a, int(top))
        return result[0] if single else result

    def forward(self, x: np.ndarray) -> np.ndarray:
        """The network's outputs (logits), float32."""
        return self._model.forward(_input(x))

    def near_kinks(self, x: np.ndarray) -> List[Tuple[int, int]]:
        """The units of the forward pass on ``x`` within float32 rounding of a kink, as
        ``[(layer index, count), …]`` for the layers with any (empty when none): max-pooling
        windows whose two largest inputs are nearly tied, ReLU inputs within rounding of 0
        (``klrp explain`` warns about them). Where a reference in another precision (float64
        gradient × input) takes the other side, the relevance of those units' receptive fields
        moves: docs/semantics.md §9, "Near kinks"."""
        return [(int(i), int(n)) for i, n in self._model.near_kinks(_input(x))]


def heatmap(
    relevance: np.ndarray, *, cmap: Optional[str] = None, scale: Optional[str] = None
) -> np.ndarray:
    """A relevance map ``[H, W]`` (or ``[C, H, W]``, summed over channels) as an RGB uint8 array
    ``[H, W, 3]``, with klrp's colormaps (``klrp::viz``).

    Defaults by dtype: float → ``bwr`` with a ``symmetric`` scale (red positive, blue negative,
    white zero); bool → ``gray_r`` (black where true); integer (path counts) → ``viridis`` with
    ``log1p``. ``cmap``: bwr | gray | gray_r | viridis | hot; ``scale``: symmetric | minmax | log1p.
    """
    r = np.asarray(relevance)
    if r.dtype == np.bool_:
        defaults = ("gray_r", "minmax")
    elif np.issubdtype(r.dtype, np.integer):
        defaults = ("viridis", "log1p")
    elif np.issubdtype(r.dtype, np.floating):
        defaults = ("bwr", "symmetric")
    else:
        raise ValueError(f"heatmap: relevance must be a numeric or bool array, got {r.dtype}")
    return _klrp.heatmap(
        np.ascontiguousarray(r, dtype=np.float64), cmap or defaults[0], scale or defaults[1]
    )


def write_png(path: Union[str, "os.PathLike[str]"], rgb: np.ndarray) -> None:
    """Writes an RGB uint8 array ``[H, W, 3]`` as a PNG file."""
    a = np.asarray(rgb)
    if a.dtype != np.uint8 or a.ndim != 3:
        raise ValueError(f"write_png: expected a uint8 [H, W, 3] array, got {a.dtype} {a.shape}")
    _klrp.write_png(os.fspath(path), np.ascontiguousarray(a))


def save_heatmap(
    path: Union[str, "os.PathLike[str]"],
    relevance: np.ndarray,
    *,
    cmap: Optional[str] = None,
    scale: Optional[str] = None,
) -> np.ndarray:
    """``heatmap(relevance)`` written as a PNG file; returns the RGB array."""
    rgb = heatmap(relevance, cmap=cmap, scale=scale)
    write_png(path, rgb)
    return rgb


def load_mnist(
    images: Union[str, "os.PathLike[str]"], labels: Union[str, "os.PathLike[str]"]
) -> Tuple[np.ndarray, np.ndarray]:
    """Reads MNIST-style IDX files (raw or gzip) with klrp's IDX reader: images
    ``[N, rows·cols]`` float32 in [0, 1] and labels uint8."""
    return _klrp.load_mnist(os.fspath(images), os.fspath(labels))


def from_torch(module: Any, example_input: Any, **export_kwargs: Any) -> Model:
    """Exports a ``torch.nn.Module`` with ``torch.onnx.export`` (legacy exporter, opset 13,
    dynamic batch axis) to a temporary file and loads it. Needs torch (an optional dependency:
    ``pip install ./python[torch]``)."""
    import tempfile

    try:
        import torch
    except ImportError as e:  # pragma: no cover - torch is optional
        raise ImportError("klrp.from_torch needs torch: pip install torch onnx") from e
    kwargs: Dict[str, Any] = dict(
        opset_version=13,
        do_constant_folding=True,
        input_names=["input"],
        output_names=["output"],
        dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}},
        dynamo=False,
    )
    kwargs.update(export_kwargs)
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "model.onnx")
        module.eval()
        with torch.no_grad():
            torch.onnx.export(module, (example_input,), path, **kwargs)
        return Model.from_onnx(path)
