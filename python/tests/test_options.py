"""compat's options and targets against pytorch-grad-cam 1.5.7 on Lite0 at 112x112
(tests/fixtures/python, made by tools/make_python_fixtures.py): softmax and counterfactual
targets, aug_smooth, eigen_smooth (with the eigen sign rule of tests/fixtures/README.md) and two
layers fused."""

import numpy as np
import pytest

from gradcam import compat
from conftest import fixture

MAP_TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def case():
    x = fixture("python/lite0_112.input.npy")
    top = [int(c) for c in fixture("python/lite0_112.logits.npy").argmax(1)]
    return x, top


def _check(maps, name):
    expected = fixture(f"python/lite0_112.{name}.npy")
    assert maps.shape == expected.shape == (2, 112, 112)
    assert np.abs(maps - expected).max() <= MAP_TOLERANCE


def test_softmax_target(lite0, case):
    x, top = case
    targets = [compat.ClassifierOutputSoftmaxTarget(c) for c in top]
    _check(compat.GradCAM(lite0, ["head"])(x, targets=targets), "gradcam-softmax")


def test_counterfactual(lite0, case):
    x, top = case
    maps = compat.GradCAM(lite0, ["head"])(x, targets=top, counterfactual=True)
    _check(maps, "gradcam-counterfactual")


def test_aug_smooth(lite0, case):
    x, top = case
    _check(compat.GradCAM(lite0, ["head"])(x, targets=top, aug_smooth=True), "gradcam-augsmooth")


def test_eigen_smooth(lite0, case):
    x, _ = case
    _check(compat.GradCAM(lite0, ["head"])(x, eigen_smooth=True), "gradcam-eigensmooth")


def test_two_layers_fused(lite0, case):
    x, _ = case
    maps = compat.GradCAMPlusPlus(lite0, ["blocks.15", "head"])(x)
    _check(maps, "gradcam++.blocks.15+head")
