"""Bad inputs raise gradcam.GradcamError (a ValueError) with the library's message, or TypeError
for a wrong Python type; none crashes the interpreter."""

import numpy as np
import pytest

import gradcam
from gradcam import compat
from conftest import fixture


def test_the_error_is_a_value_error():
    assert issubclass(gradcam.GradcamError, ValueError)


def test_unknown_model_lists_the_valid_ones():
    with pytest.raises(gradcam.GradcamError, match="unknown model `alexnet`.*resnet50"):
        gradcam.Explainer("alexnet")


def test_bad_image(lite0, tmp_path):
    bad = tmp_path / "not_an_image.jpg"
    bad.write_bytes(b"this is text")
    with pytest.raises(gradcam.GradcamError, match="not_an_image.jpg"):
        lite0.explain(bad)
    with pytest.raises(gradcam.GradcamError, match="no such file"):
        lite0.explain(tmp_path / "missing.png")


def test_bad_arrays(lite0):
    with pytest.raises(gradcam.GradcamError, match=r"shape \(height, width, 3\)"):
        lite0.explain(np.zeros((8, 8), np.uint8))
    with pytest.raises(TypeError, match="uint8"):
        lite0.explain(np.zeros((8, 8, 3), np.float32))
    cam = compat.GradCAM(lite0, ["head"])
    with pytest.raises(gradcam.GradcamError, match=r"\(batch, 3, height, width\)"):
        cam(np.zeros((1, 1, 8, 8), np.float32))
    with pytest.raises(gradcam.GradcamError, match=r"\(batch, 3, height, width\)"):
        cam(np.zeros((3, 8, 8), np.float32))
    with pytest.raises(gradcam.GradcamError, match="2 targets given for a batch of 1"):
        cam(fixture("lite0/both.input.npy"), targets=[1, 2])


def test_unknown_layer_lists_the_valid_ones(lite0, photo):
    with pytest.raises(gradcam.GradcamError, match="unknown layer `layer4` for efficientnet_lite0; valid layers: stem, blocks.0"):
        lite0.explain(photo, layers=["layer4"])
    with pytest.raises(gradcam.GradcamError, match="unknown layer `layer9`"):
        compat.GradCAM(lite0, ["layer9"])(fixture("lite0/both.input.npy"))


def test_class_out_of_range(lite0, photo):
    with pytest.raises(gradcam.GradcamError, match="class 1000 is out of range"):
        lite0.explain(photo, classes=[1000])
    with pytest.raises(gradcam.GradcamError, match="class 4000 is out of range"):
        compat.GradCAM(lite0, ["head"])(fixture("lite0/both.input.npy"), targets=[4000])


def test_unknown_method_and_bad_options(lite0, photo):
    with pytest.raises(gradcam.GradcamError, match="unknown method `magic`.*guided-gradcam"):
        lite0.explain(photo, method="magic")
    with pytest.raises(gradcam.GradcamError, match=r"`box_threshold` \(--box-threshold\) must be in \[0, 1\]"):
        lite0.explain(photo, box_threshold=2.0)
    with pytest.raises(gradcam.GradcamError, match="either `class`"):
        lite0.explain(photo, classes=[1], top_k=2)
    with pytest.raises(gradcam.GradcamError, match="reshape_transform"):
        compat.GradCAM(lite0, ["head"], reshape_transform=lambda x: x)
    with pytest.raises(TypeError, match="target_layers are layer names"):
        compat.GradCAM(lite0, [object()])
    with pytest.raises(TypeError, match="unsupported target"):
        compat.GradCAM(lite0, ["head"])(fixture("lite0/both.input.npy"), targets=["x"])


def test_render_checks_its_sizes(photo):
    from gradcam import _gradcam

    with pytest.raises(gradcam.GradcamError, match="a map of 3 values for an input of 2x2"):
        _gradcam.render(photo, np.zeros(3, np.float32), None, None, (2, 2), 0.5, True)
    with pytest.raises(gradcam.GradcamError, match="a guided image must have 12 values"):
        _gradcam.render(photo, np.zeros(4, np.float32), np.zeros(5, np.float32), None, (2, 2), 0.5, True)
