"""ONNX files through gradcam.compat: Grad-CAM on the ONNX fixtures of tests/fixtures/onnx (made by
tools/make_onnx_fixtures.py) against pytorch-grad-cam's Grad-CAM formula evaluated on that
script's references: the cut tensor's value from onnxruntime and torch autograd's gradient of the
class-1 logit there (``<model>.grad.npy``), each reshaped as pytorch-grad-cam's
``reshape_transform`` would."""

import json

import numpy as np
import pytest

import gradcam
from gradcam import compat
from conftest import FIXTURES

ONNX = FIXTURES / "onnx"
MAP_TOLERANCE = 1e-4


def _cv2_linear(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """cv2.resize(image, (width, height)) with INTER_LINEAR, for enlargements: half-pixel
    centres, edge samples clamped."""

    def axis(n_out, n_in):
        f = (np.arange(n_out) + 0.5) * (n_in / n_out) - 0.5
        i0 = np.floor(f).astype(int)
        t = f - i0
        t[i0 < 0], i0[i0 < 0] = 0, 0
        last = i0 >= n_in - 1
        t[last], i0[last] = 0, n_in - 1
        return i0, np.minimum(i0 + 1, n_in - 1), t

    r0, r1, tr = axis(height, image.shape[0])
    c0, c1, tc = axis(width, image.shape[1])
    rows = image[r0] * (1 - tr)[:, None] + image[r1] * tr[:, None]
    return rows[:, c0] * (1 - tc) + rows[:, c1] * tc


def _scale(image: np.ndarray) -> np.ndarray:
    """pytorch-grad-cam's scale_cam_image without the resize."""
    image = image - image.min()
    return image / (1e-7 + image.max())


def _as_maps(t: np.ndarray, reshape: str) -> np.ndarray:
    """A cut tensor as (B, C, h, w), as the reshape_transform of pytorch-grad-cam's tutorials."""
    if reshape == "vit":
        b, n, c = t.shape
        side = int(round((n - 1) ** 0.5))
        return t[:, 1:, :].reshape(b, side, side, c).transpose(0, 3, 1, 2)
    if reshape == "swin":
        return t.transpose(0, 3, 1, 2)
    return t


def _reference_gradcam(model: str, exporter: str, reshape: str, size) -> np.ndarray:
    activations = _as_maps(np.load(ONNX / f"{model}.{exporter}.cut.npy"), reshape)
    gradients = _as_maps(np.load(ONNX / f"{model}.grad.npy"), reshape)
    weights = gradients.mean(axis=(2, 3), keepdims=True)
    raw = np.maximum((weights * activations).sum(axis=1), 0)
    return np.stack([_scale(_scale(_cv2_linear(_scale(m), *size))) for m in raw])


#: tiny_vit is left out: at its reference cut (`blocks`) only the class token reaches the head, so
#: the patch tokens' gradients and both Grad-CAM maps are all zero, which would prove nothing.
CASES = [
    ("resnet_like", "legacy", None),
    ("resnet_like", "dynamo", None),
    ("depthwise_se", "legacy", None),
    ("shuffle_concat", "dynamo", None),
    ("tiny_swin", "legacy", "swin"),
]


@pytest.mark.parametrize("model,exporter,reshape", CASES)
def test_onnx_gradcam_equals_the_formula_on_torch_gradients(model, exporter, reshape):
    manifest = json.loads((ONNX / "manifest.json").read_text())["models"][model]
    x = np.load(ONNX / f"{model}.input.npy")
    explainer = gradcam.Explainer(str(ONNX / f"{model}.{exporter}.onnx"), reshape=reshape)
    cam = compat.GradCAM(model=explainer, target_layers=[manifest["module"]])
    maps = cam(input_tensor=x, targets=[1] * len(x))
    expected = _reference_gradcam(model, exporter, reshape or "none", x.shape[2:])
    assert maps.shape == expected.shape and expected.max() > 0.99
    assert np.abs(maps - expected).max() <= MAP_TOLERANCE


def test_an_onnx_path_is_a_model_like_a_name():
    path = str(ONNX / "resnet_like.legacy.onnx")
    x = np.load(ONNX / "resnet_like.input.npy")
    by_path = compat.GradCAM(model=path, target_layers=["layer2"])(x, targets=[1, 1])
    by_explainer = compat.GradCAM(gradcam.Explainer(path), ["layer2"])(x, targets=[1, 1])
    np.testing.assert_array_equal(by_path, by_explainer)
    with pytest.raises(gradcam.GradcamError, match="holds its own weights"):
        gradcam.Explainer(path, weights="w.pth")


def test_explainer_on_an_onnx_file(photo):
    """The whole path for a file model: its own input size (32x32), indices as labels."""
    explainer = gradcam.Explainer(str(ONNX / "resnet_like.legacy.onnx"))
    assert explainer.input_size == (32, 32) and explainer.num_classes == 5
    r = explainer.explain(photo, layers="layer2", top_k=2)[0]
    assert r.map.shape == (32, 32) and list(r.raw) == ["layer2"] and r.raw["layer2"].shape == (8, 8)
    assert [m.class_index for m in r.maps] == [c for c, _, _ in r.top5[:2]]
    assert r.overlay.shape == photo.shape


def _compat_class(method: str):
    return next(
        getattr(compat, n)
        for n in compat.__all__
        if getattr(getattr(compat, n), "method", None) == method
    )


def _cam_cases():
    manifest = json.loads((ONNX / "cams" / "manifest.json").read_text())
    for name, entry in manifest["models"].items():
        files = [f"{name}.{e}.onnx" for e in ("dynamo", "legacy")]
        files += [f"cams/{entry[k]}" for k in ("batch1", "nhwc") if k in entry]
        for file in files:
            layer = f"inner.{entry['layer']}" if "nhwc" in file else entry["layer"]
            for method in entry["methods"]:
                yield pytest.param(name, file, layer, method, manifest["class"], id=f"{file}-{method}")


@pytest.mark.parametrize("name,file,layer,method,target", list(_cam_cases()))
def test_onnx_maps_equal_pytorch_grad_cams(name, file, layer, method, target):
    """tests/fixtures/onnx/cams (tools/make_onnx_cam_fixtures.py, the files tests/onnx_cams.rs
    reads): pytorch-grad-cam's maps of the ONNX models' PyTorch originals, class 1."""
    x = np.load(ONNX / f"{name}.input.npy")
    expected = np.load(ONNX / "cams" / f"{name}.{method}.npy")
    # The fixed-batch export takes one image per pass.
    cam = _compat_class(method)(str(ONNX / file), [layer], batch_size=1 if "batch1" in file else None)
    maps = cam(input_tensor=x, targets=[target] * len(x))
    assert maps.shape == expected.shape
    tolerance = 1e-5 * np.abs(expected).max() if method == "guided-backprop" else MAP_TOLERANCE
    assert np.abs(maps - expected).max() <= tolerance


@pytest.mark.parametrize("exporter", ["dynamo", "legacy"])
def test_legrad_on_the_onnx_vit_equals_torchcam(exporter):
    """tests/fixtures/onnx/legrad (tools/make_legrad_fixtures.py, the files tests/legrad.rs
    reads): torchcam 0.5.0's LeGrad over the ViT's three blocks (the default: the last 4) for
    class 3, its normalised 4x4 maps enlarged as cv2 does."""
    x = np.load(ONNX / "legrad" / "input.npy")
    expected = np.stack([_cv2_linear(m, 32, 32) for m in np.load(ONNX / "legrad" / "all_class3.norm.npy")])
    maps = compat.LeGrad(str(ONNX / "legrad" / f"vit.{exporter}.onnx"))(input_tensor=x, targets=[3, 3])
    assert maps.shape == expected.shape and expected.max() > 0.99
    # Measured: 2.8e-7 for both exports.
    assert np.abs(maps - expected).max() <= 1e-6
