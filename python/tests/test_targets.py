"""Targets beyond one class logit from Python (`target`, `similar_to`, `mask`), checked with
values worked out by hand: the parity with pytorch-grad-cam is the Rust tests' (tests/targets*.rs)."""

import numpy as np
import pytest

import gradcam
from conftest import FIXTURES


@pytest.fixture(scope="module")
def resnet_like() -> gradcam.Explainer:
    return gradcam.Explainer(str(FIXTURES / "onnx" / "resnet_like.legacy.onnx"))


def test_an_image_is_fully_similar_to_itself(resnet_like, photo):
    r = resnet_like.explain(photo, similar_to=photo)[0]
    assert r.top5 == [] and r.maps[0].class_index is None
    # The cosine similarity of an embedding (here the logits) to itself.
    assert r.score == pytest.approx(1.0, abs=1e-6)
    flipped = resnet_like.explain(photo, similar_to=np.ascontiguousarray(photo[::-1]))[0]
    assert -1.0 <= flipped.score < 1.0 - 1e-6


def test_the_softmax_target_scores_the_class_probability(resnet_like, photo):
    r = resnet_like.explain(photo, classes=[2], target="softmax")[0]
    probability = next(p for c, _, p in r.top5 if c == 2)
    assert r.score == pytest.approx(probability, abs=1e-6)


def test_the_binary_target_explains_the_logit_and_its_negation(photo):
    binary = gradcam.Explainer(str(FIXTURES / "targets" / "binary_net.onnx"))
    logit = binary.explain(photo, classes=[0])[0].score
    one = binary.explain(photo, classes=[1], target="binary")[0]
    zero = binary.explain(photo, classes=[0], target="binary")[0]
    assert one.score == pytest.approx(logit, abs=1e-6)
    assert zero.score == pytest.approx(-logit, abs=1e-6)
    with pytest.raises(gradcam.GradcamError, match="target"):
        binary.explain(photo, target="nonsense")


def test_a_segmentation_mask_sums_the_logits_over_its_light_pixels(photo):
    seg = gradcam.Explainer(str(FIXTURES / "targets" / "seg_net.onnx"))
    left = np.zeros((16, 16), np.uint8)
    left[:, :8] = 255
    right = 255 - left
    score = lambda mask: seg.explain(photo, classes=[1], mask=mask)[0].score  # noqa: E731
    # The score is a sum over the mask's pixels: additive over disjoint masks.
    whole = score(np.full((16, 16), 255, np.uint8))
    assert score(left) + score(right) == pytest.approx(whole, rel=1e-5, abs=1e-5)
    # A mask file is read as the command line reads `--mask`.
    from_file = score(str(FIXTURES / "targets" / "seg_net.mask.png"))
    assert from_file != pytest.approx(whole)
