"""What ``Explainer.explain`` returns: one :class:`Result` per image, one :class:`ClassMap` per
explained class."""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from . import _gradcam
from ._images import floats, pixels


class ClassMap:
    """One map of one image.

    Attributes:
        class_index: the explained class (``None`` for targets about no single class).
        label: its ImageNet label (or ``class N``).
        score: the explained score (the logit; negated for a counterfactual).
        map: float32 (H, W) at the network input's resolution, in [0, 1]: pytorch-grad-cam's map.
        raw: ``{layer: float32 (h, w)}``, the signed maps at each layer's resolution.
        box: ``(x1, y1, x2, y2)`` in the photo's pixels (inclusive), or ``None`` for an empty map.
        guided: for the guided methods, float32 (H, W, 3), the raw input-gradient image.
        region: for a segmentation model, bool (h, w) at the output's resolution: the pixels
            whose logits were summed (the mask's, or those the model assigns to the class);
            the overlay outlines them in white.
    """

    def __init__(self, data: Dict[str, Any], result: "Result") -> None:
        height, width = result.input_size
        self.class_index: Optional[int] = data["class"]
        self.label: Optional[str] = data["label"]
        self.score: float = data["score"]
        self.box: Optional[Tuple[int, int, int, int]] = data["box"]
        self.map: np.ndarray = floats(data["map"], (height, width))
        self.raw: Dict[str, np.ndarray] = {
            layer: floats(values, (h, w)) for layer, h, w, values in data["raw"]
        }
        guided = data["guided"]
        self.guided: Optional[np.ndarray] = (
            None if guided is None else floats(guided, (height, width, 3))
        )
        region = data.get("region")
        self.region: Optional[np.ndarray] = None
        if region is not None:
            width, height, inside = region
            self.region = np.frombuffer(bytes(inside), dtype=np.uint8).reshape(height, width) != 0
        self._result = result
        self._overlay: Optional[np.ndarray] = None

    @property
    def overlay(self) -> np.ndarray:
        """uint8 (H, W, 3): the map on the photo with its box and a segmentation region's
        outline, as ``gradcam explain`` draws it (made on first use)."""
        if self._overlay is None:
            r = self._result
            buffer = _gradcam.render(
                r.image,
                self.map,
                self.guided,
                self.box,
                r.input_size,
                r.image_weight,
                r.draw_box,
                self._region_arg(),
            )
            height, width = r.image.shape[:2]
            self._overlay = pixels(buffer, height, width)
        return self._overlay

    def _region_arg(self) -> Optional[Tuple[int, int, np.ndarray]]:
        if self.region is None:
            return None
        height, width = self.region.shape
        return (width, height, np.ascontiguousarray(self.region, dtype=np.uint8).ravel())

    def _repr_png_(self) -> bytes:
        return _gradcam.encode_png(self.overlay)

    def __repr__(self) -> str:
        return f"ClassMap(class_index={self.class_index}, label={self.label!r}, box={self.box})"


class Result:
    """The explanation of one image: its top-5 classes and one :class:`ClassMap` per explained
    class (``maps``). ``map``, ``raw``, ``box``, ``overlay``, ``class_index``, ``label`` and
    ``score`` are those of the first map.

    Attributes:
        top5: ``[(class, label, probability), ...]``, best first.
        maps: the :class:`ClassMap` of each explained class, in the order asked.
        image: uint8 (H, W, 3), the photo.
        image_size: the photo's ``(width, height)``; input_size: the network input's ``(height, width)``.
        model, method, layers: what made the maps. timings: milliseconds per stage.
    """

    def __init__(
        self, data: Dict[str, Any], image: np.ndarray, image_weight: float, draw_box: bool
    ) -> None:
        self.model: str = data["model"]
        self.method: str = data["method"]
        self.layers: List[str] = data["layers"]
        self.counterfactual: bool = data["counterfactual"]
        self.image_size: Tuple[int, int] = data["image_size"]
        self.input_size: Tuple[int, int] = data["input_size"]
        self.top5: List[Tuple[int, str, float]] = data["top5"]
        self.timings: Dict[str, float] = data["timings"]
        self.image = image
        self.image_weight = image_weight
        self.draw_box = draw_box
        self.maps: List[ClassMap] = [ClassMap(m, self) for m in data["explanations"]]

    @property
    def map(self) -> np.ndarray:
        return self.maps[0].map

    @property
    def raw(self) -> Dict[str, np.ndarray]:
        return self.maps[0].raw

    @property
    def box(self) -> Optional[Tuple[int, int, int, int]]:
        return self.maps[0].box

    @property
    def overlay(self) -> np.ndarray:
        return self.maps[0].overlay

    @property
    def guided(self) -> Optional[np.ndarray]:
        return self.maps[0].guided

    @property
    def class_index(self) -> Optional[int]:
        return self.maps[0].class_index

    @property
    def label(self) -> Optional[str]:
        return self.maps[0].label

    @property
    def score(self) -> float:
        return self.maps[0].score

    def _repr_png_(self) -> bytes:
        return self.maps[0]._repr_png_()

    def __repr__(self) -> str:
        classes = ", ".join(f"{m.class_index} {m.label!r}" for m in self.maps)
        return f"Result({self.method} on {self.model}: {classes}; box={self.box})"
