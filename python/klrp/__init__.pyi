"""Type stubs of the klrp Python package (see klrp/__init__.py for the documentation)."""

import os
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
import numpy.typing as npt

_Path = Union[str, os.PathLike[str]]
Target = Union[int, Sequence[int], str]

DEFAULT_THETA: float
DEFAULT_TOP: int

class Model:
    @staticmethod
    def from_onnx(path: _Path) -> Model: ...
    def info(self) -> Dict[str, Any]: ...
    @property
    def metadata(self) -> Dict[str, str]: ...
    def preprocess(
        self,
        image: Union[_Path, npt.NDArray[np.uint8]],
        *,
        resize: Optional[int] = None,
        normalize: Optional[str] = None,
        max_pixels: Optional[int] = None,
    ) -> npt.NDArray[np.float32]: ...
    @property
    def num_layers(self) -> int: ...
    def explain(
        self,
        x: npt.NDArray[np.float32],
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
    ) -> Union[np.ndarray, List[np.ndarray]]: ...
    def predict(
        self, x: npt.NDArray[np.float32], top: int = 5
    ) -> Union[List[List[Tuple[int, float]]], List[Tuple[int, float]]]: ...
    def forward(self, x: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]: ...

def heatmap(
    relevance: np.ndarray, *, cmap: Optional[str] = None, scale: Optional[str] = None
) -> npt.NDArray[np.uint8]: ...
def save_heatmap(
    path: _Path, relevance: np.ndarray, *, cmap: Optional[str] = None, scale: Optional[str] = None
) -> npt.NDArray[np.uint8]: ...
def write_png(path: _Path, rgb: npt.NDArray[np.uint8]) -> None: ...
def load_mnist(images: _Path, labels: _Path) -> Tuple[npt.NDArray[np.float32], npt.NDArray[np.uint8]]: ...
def from_torch(module: Any, example_input: Any, **export_kwargs: Any) -> Model: ...
