"""Checks `gradcam` on torchvision's LRASPP (random weights) exported to ONNX against
pytorch-grad-cam 1.5.7's SemanticSegmentationTarget (run by hand; docs/onnx.md).

    bench/.venv/bin/python tools/check_onnx_segmentation.py   # needs target/release/gradcam
"""
import pathlib
import subprocess
import tempfile

import numpy as np
import torch
import torchvision
from PIL import Image
from pytorch_grad_cam import GradCAM
from pytorch_grad_cam.utils.model_targets import SemanticSegmentationTarget

ROOT = pathlib.Path(__file__).resolve().parent.parent


class Out(torch.nn.Module):
    """The model's `out` logits (B, K, H, W) without the dict."""

    def __init__(self, model):
        super().__init__()
        self.m = model

    def forward(self, x):
        return self.m(x)["out"]


def main():
    torch.manual_seed(0)
    model = torchvision.models.segmentation.lraspp_mobilenet_v3_large(
        weights=None, weights_backbone=None, num_classes=21).eval()
    wrapped = Out(model).eval()
    tmp = pathlib.Path(tempfile.mkdtemp(prefix="gradcam-seg-"))
    onnx = tmp / "lraspp.onnx"
    torch.onnx.export(wrapped, (torch.randn(1, 3, 224, 224),), str(onnx), dynamo=False,
                      input_names=["input"], output_names=["out"],
                      dynamic_axes={"input": {0: "batch"}, "out": {0: "batch"}})
    # A 224x224 photo, so that our resize to the input size is the identity.
    img = Image.open(ROOT / "assets/cat_dog.jpg").convert("RGB").resize((224, 224), Image.BILINEAR)
    photo = tmp / "photo.png"
    img.save(photo)
    x = torchvision.transforms.functional.to_tensor(img)
    x = torchvision.transforms.functional.normalize(
        x, [0.485, 0.456, 0.406], [0.229, 0.224, 0.225])[None]
    with torch.no_grad():
        pred = wrapped(x)[0].argmax(0).numpy()
    counts = np.bincount(pred.ravel(), minlength=21)
    c = int(counts.argmax())
    mask = (pred == c).astype(np.float32)
    print(f"class {c}: {counts[c]} of {pred.size} pixels")
    for name in ["16", "12"]:
        ref = GradCAM(model=wrapped, target_layers=[model.backbone[name]])(
            input_tensor=x, targets=[SemanticSegmentationTarget(c, mask)])[0]
        out = tmp / f"out-{name}"
        subprocess.run([str(ROOT / "target/release/gradcam"), "explain", str(photo),
                        "--model", str(onnx), "--class", str(c), "--layer", f"m.backbone.{name}",
                        "--out", str(out)], check=True, capture_output=True)
        ours = np.load(out / "photo.cam.npy").squeeze()
        print(f"m.backbone.{name}: max abs diff {np.abs(ours - ref).max():.2g}")


if __name__ == "__main__":
    main()
