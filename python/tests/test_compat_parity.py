"""gradcam.compat against pytorch-grad-cam 1.5.7's maps: the Lite0 references of tests/fixtures/lite0
(made by tools/make_fixtures.py, the same files tests/methods.rs and tests/lite0.rs read), on their
own preprocessed inputs, within 1e-4 (the Rust tests' MAP_TOLERANCE; measured at most 2.5e-5,
AblationCAM)."""

import numpy as np
import pytest

from gradcam import compat
from conftest import fixture

MAP_TOLERANCE = 1e-4
IMAGES = ["cat_dog", "both"]
#: Every compat class with a Lite0 reference map, by the library method it runs.
WITH_REFERENCES = [
    "GradCAM",
    "GradCAMPlusPlus",
    "XGradCAM",
    "HiResCAM",
    "GradCAMElementWise",
    "LayerCAM",
    "EigenCAM",
    "EigenGradCAM",
    "SegEigenCAM",
    "AblationCAM",
    "FEM",
]


@pytest.mark.parametrize("image", IMAGES)
@pytest.mark.parametrize("name", WITH_REFERENCES)
def test_maps_equal_pytorch_grad_cams(lite0, name, image):
    cls = getattr(compat, name)
    x = fixture(f"lite0/{image}.input.npy")
    with cls(model=lite0, target_layers=["head"]) as cam:
        maps = cam(input_tensor=x, targets=None)
    expected = fixture(f"lite0/{image}.{cls.method}.npy")
    assert maps.shape == (1, 224, 224) and maps.dtype == np.float32
    assert np.abs(maps[0] - expected).max() <= MAP_TOLERANCE


def test_scorecam(lite0):
    """1280 forward passes: one image, as tests/methods.rs."""
    x = fixture("lite0/cat_dog.input.npy")
    maps = compat.ScoreCAM(model=lite0, target_layers=["head"], batch_size=1)(input_tensor=x)
    assert np.abs(maps[0] - fixture("lite0/cat_dog.scorecam.npy")).max() <= MAP_TOLERANCE


@pytest.mark.parametrize(
    "targets", [[281], [compat.ClassifierOutputTarget(281)], [np.int64(281)]]
)
def test_targets_as_indices_or_objects(lite0, targets):
    x = fixture("lite0/cat_dog.input.npy")
    maps = compat.GradCAM(model=lite0, target_layers=["head"])(input_tensor=x, targets=targets)
    assert np.abs(maps[0] - fixture("lite0/cat_dog.gradcam.class281.npy")).max() <= MAP_TOLERANCE


def test_a_batch_is_the_images_one_by_one(lite0):
    """Both references in one (2, 3, 224, 224) call, cut into passes of one image."""
    x = np.concatenate([fixture(f"lite0/{i}.input.npy") for i in IMAGES])
    cam = compat.GradCAMPlusPlus(model=lite0, target_layers=["head"], batch_size=1)
    maps = cam(input_tensor=x)
    assert maps.shape == (2, 224, 224)
    for b, image in enumerate(IMAGES):
        assert np.abs(maps[b] - fixture(f"lite0/{image}.gradcam++.npy")).max() <= MAP_TOLERANCE


def test_one_class_per_method_of_the_table():
    import gradcam

    rows = gradcam.methods()
    names = {cls.method for cls in (getattr(compat, n) for n in compat.__all__) if hasattr(cls, "method")}
    assert names == {r["name"] for r in rows}
    assert compat.GradCAMPlusPlus.method == "gradcam++"
    assert compat.FEM.method == "fem" and compat.SegEigenCAM.method == "segeigencam"


def test_target_objects_score_numpy_outputs():
    logits = np.array([1.0, 3.0, 2.0], dtype=np.float32)
    assert compat.ClassifierOutputTarget(1)(logits) == 3.0
    p = compat.ClassifierOutputSoftmaxTarget(1)(logits)
    assert abs(p - np.exp(3) / np.exp([1, 3, 2]).sum()) < 1e-12
    assert abs(compat.SimilarityToConceptTarget(logits)(logits) - 1.0) < 1e-6
