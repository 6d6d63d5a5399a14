"""DeepFeatureFactorization with pytorch-grad-cam's call shape, against the fixtures of
tests/fixtures/lite0/*.dff.*.npy (pytorch-grad-cam 1.5.7 from our seeded NMF start, made by
tools/make_fixtures.py), and the region outline of Result.overlay for segmentation maps."""

import numpy as np
import pytest

import gradcam
from gradcam import _gradcam, compat
from gradcam._images import pixels

from conftest import FIXTURES, fixture

# What tests/methods.rs asks of the same comparison: maps (absolute), concepts and scores
# (relative to their largest magnitude).
MAP_TOLERANCE = 1e-4
RELATIVE = 1e-4


@pytest.mark.parametrize("image", ["cat_dog", "both"])
def test_matches_pytorch_grad_cams_dff(lite0, image):
    x = fixture(f"lite0/{image}.input.npy")
    dff = compat.DeepFeatureFactorization(lite0, "head")
    concepts, explanations, scores = dff(x, 5)
    want_concepts = fixture(f"lite0/{image}.dff.concepts.npy")
    want_maps = fixture(f"lite0/{image}.dff.maps.npy")
    want_scores = fixture(f"lite0/{image}.dff.scores.npy")
    assert concepts.shape == (1280, 5) and scores.shape == (5, 1000)
    assert len(explanations) == 1 and explanations[0].shape == (5, 224, 224)
    assert np.abs(explanations[0] - want_maps[0]).max() <= MAP_TOLERANCE
    assert np.abs(concepts - want_concepts).max() <= RELATIVE * np.abs(want_concepts).max()
    assert np.abs(scores - want_scores).max() <= RELATIVE * np.abs(want_scores).max()


def test_invariants_of_the_factorization(lite0):
    x = np.concatenate([fixture(f"lite0/{i}.input.npy") for i in ["cat_dog", "both"]])
    concepts, explanations, scores = compat.DeepFeatureFactorization(lite0, ["head"])(x, 3)
    # The head ends in ReLU6: every channel's minimum is >= 0, so W plus it is too.
    assert (concepts >= 0).all()
    assert len(explanations) == 2
    for maps in explanations:
        assert maps.shape == (3, 224, 224)
        assert maps.min() >= 0.0 and maps.max() <= 1.0
        # Min-max scaled at the layer's 7x7, then resized bilinearly (OpenCV's half-pixel
        # centres), so the peaks are a little under 1 (0.988 to 0.994 here) and the floors near 0.
        assert (maps.reshape(3, -1).max(axis=1) > 0.95).all()
        assert (maps.reshape(3, -1).min(axis=1) < 0.05).all()
    # The same call twice gives the same numbers (a seeded start).
    again = compat.DeepFeatureFactorization(lite0, "head")(x, 3)
    assert np.array_equal(again[0], concepts) and np.array_equal(again[2], scores)


def test_computation_on_concepts_takes_the_concepts_as_rows(lite0):
    x = fixture("lite0/cat_dog.input.npy")
    seen = []

    def computation(c):
        seen.append(c.shape)
        return c.sum(axis=1, keepdims=True)

    concepts, _, scores = compat.DeepFeatureFactorization(
        lite0, "head", computation_on_concepts=computation
    )(x, 4)
    assert seen == [(4, 1280)]
    assert np.allclose(scores[:, 0], concepts.sum(axis=0), rtol=1e-6)


def test_no_scores_without_a_linear_head_and_clear_errors(lite0):
    x = fixture("lite0/cat_dog.input.npy")
    concepts, explanations, scores = compat.DeepFeatureFactorization(lite0, "blocks.15")(x, 2)
    assert scores is None and concepts.shape == (320, 2) and explanations[0].shape == (2, 224, 224)
    with pytest.raises(gradcam.GradcamError, match="n_components must be a positive integer"):
        compat.DeepFeatureFactorization(lite0, "head")(x, 0)
    with pytest.raises(gradcam.GradcamError, match="one target_layer"):
        compat.DeepFeatureFactorization(lite0, ["head", "blocks.15"])
    with pytest.raises(gradcam.GradcamError, match="nolayer"):
        compat.DeepFeatureFactorization(lite0, "nolayer")(x, 2)
    # The map pipeline sends DFF here.
    with pytest.raises(gradcam.GradcamError, match="not a map per class"):
        lite0.explain(x[0].transpose(1, 2, 0).astype(np.uint8), method="deepfeaturefactorization")


def test_segmentation_overlays_outline_the_region(photo):
    seg = gradcam.Explainer(str(FIXTURES / "targets" / "seg_net.onnx"))
    m = seg.explain(photo, classes=[1])[0].maps[0]
    assert m.region is not None and m.region.dtype == bool
    assert 0 < m.region.sum() < m.region.size
    r = m._result
    plain = pixels(
        _gradcam.render(r.image, m.map, m.guided, m.box, r.input_size, r.image_weight, r.draw_box),
        *r.image.shape[:2],
    )
    outlined = m.overlay
    changed = (outlined != plain).any(axis=2)
    assert changed.sum() > 0, "the outline is drawn"
    # Every changed pixel is the outline's white.
    assert (outlined[changed] == 255).all()
    # A classifier's map has no region, and its overlay no outline.
    assert gradcam.Explainer("efficientnet_lite0").explain(photo)[0].maps[0].region is None
