"""Images as the native module takes them: a path (decoded in Rust) or an (H, W, 3) uint8 array."""

from __future__ import annotations

import os
from typing import Any, List, Sequence, Union

import numpy as np

ImageLike = Union[str, "os.PathLike[str]", np.ndarray, Any]


def one_image(image: ImageLike) -> Union[str, np.ndarray]:
    """A path as a string, a PIL image or an array as a C-contiguous (H, W, 3) uint8 array."""
    if isinstance(image, (str, os.PathLike)):
        return os.fspath(image)
    if hasattr(image, "convert") and hasattr(image, "size"):  # a PIL image, without importing PIL
        return np.ascontiguousarray(np.asarray(image.convert("RGB")), dtype=np.uint8)
    array = np.asarray(image)
    if array.dtype != np.uint8:
        raise TypeError(
            f"an image array must be uint8 (H, W, 3) RGB, got dtype {array.dtype}; "
            "preprocessed float inputs go through gradcam.compat"
        )
    return np.ascontiguousarray(array)


def image_list(images: Union[ImageLike, Sequence[ImageLike]]) -> List[Union[str, np.ndarray]]:
    """One image or a list of them (a 4-D uint8 array is a list of (H, W, 3) images)."""
    if isinstance(images, (list, tuple)):
        return [one_image(i) for i in images]
    if isinstance(images, np.ndarray) and images.ndim == 4:
        return [one_image(i) for i in images]
    return [one_image(images)]


def floats(buffer: bytearray, shape: Sequence[int]) -> np.ndarray:
    """A bytearray of float32 values as an array of `shape`, sharing its memory."""
    return np.frombuffer(buffer, dtype=np.float32).reshape(shape)


def pixels(buffer: bytearray, height: int, width: int) -> np.ndarray:
    """A bytearray of RGB bytes as an (H, W, 3) uint8 array, sharing its memory."""
    return np.frombuffer(buffer, dtype=np.uint8).reshape(height, width, 3)
