"""The native half of the gradcam package (python/src). Use gradcam.Explainer and gradcam.compat."""

from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

__version__: str

class GradcamError(ValueError):
    """An error of the gradcam library, with its message."""

Model = Any  # an opaque capsule holding the loaded model

def load_model(
    name: str, weights: Optional[str], num_classes: int, onnx: Dict[str, Any]
) -> Model: ...
def model_info(model: Model) -> Dict[str, Any]: ...
def methods() -> List[Dict[str, Any]]: ...
def load_image(path: str) -> Tuple[bytearray, int, int]: ...
def explain(
    model: Model,
    images: Sequence[Union[str, np.ndarray]],
    request: Dict[str, Any],
    batch_size: int,
) -> List[Dict[str, Any]]: ...
def render(
    image: np.ndarray,
    map: np.ndarray,
    guided: Optional[np.ndarray],
    box: Optional[Tuple[int, int, int, int]],
    input: Tuple[int, int],
    image_weight: float,
    draw_box: bool,
    region: Optional[Tuple[int, int, np.ndarray]] = ...,
) -> bytearray: ...
def encode_png(pixels: np.ndarray) -> bytes: ...
def run_cam(
    model: Model,
    input: np.ndarray,
    method: str,
    layers: List[str],
    targets: Optional[List[Tuple[str, Any]]],
    options: Dict[str, bool],
) -> Dict[str, Any]: ...
def run_dff(model: Model, input: np.ndarray, layer: str, n_components: int) -> Dict[str, Any]: ...
def run_guided(
    model: Model,
    input: np.ndarray,
    method: str,
    layers: List[str],
    targets: Optional[List[Tuple[str, Any]]],
    options: Dict[str, bool],
) -> Dict[str, Any]: ...
