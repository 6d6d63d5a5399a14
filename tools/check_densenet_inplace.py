"""Why densenet121's zoo row differs from pytorch-grad-cam by 0.12 (docs/onnx.md): run by hand
from the repository root after `cargo build --release`:

    /work/main/bench/.venv/bin/python tools/check_densenet_inplace.py [--out /tmp/onnx-zoo]

torchvision's `DenseNet.forward` applies `F.relu(features, inplace=True)` to the output of the
`features` module. pytorch-grad-cam keeps that output as the layer's activation (`.cpu().detach()`
of a CPU tensor shares its storage), so the in-place ReLU overwrites the kept activations with
their ReLU, while the gradient its tensor hook receives is the one of the tensor before the
in-place change. This script compares, on the zoo's image and weights:
- gradcam on the ONNX export at `features` with pytorch-grad-cam on the unchanged model;
- the same with pytorch-grad-cam on the model whose ReLU is not in place (the same function);
- pytorch-grad-cam's unchanged map with a Grad-CAM computed by hand from relu(activations) and
  the gradient before the ReLU, which is what the in-place ReLU makes it compute.
"""

import argparse
import os
import subprocess
import sys

import numpy as np
import torch
import torch.nn.functional as F
import torchvision
from pytorch_grad_cam import GradCAM
from pytorch_grad_cam.utils.image import scale_cam_image
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import check_onnx_zoo as zoo  # noqa: E402


def forward_without_inplace(self, x):
    features = self.features(x)
    out = F.relu(features, inplace=False)
    out = F.adaptive_avg_pool2d(out, (1, 1))
    return self.classifier(torch.flatten(out, 1))


def grad_cam_by_hand(model, x, top1, post_relu_activations):
    kept = {}
    h = model.features.register_forward_hook(lambda _m, _i, out: kept.update(a=out.clone()))
    x = x.clone().requires_grad_(False)
    feats = model.features(x)
    h.remove()
    feats.retain_grad()
    out = F.adaptive_avg_pool2d(F.relu(feats), (1, 1))
    logits = model.classifier(torch.flatten(out, 1))
    logits[0, top1].backward()
    grad = feats.grad[0].detach().numpy()
    act = feats[0].detach().numpy()
    if post_relu_activations:
        act = np.maximum(act, 0)
    cam = np.maximum((grad.mean((1, 2))[:, None, None] * act).sum(0), 0)
    # pytorch-grad-cam scales per layer, then again after aggregating the layers.
    return scale_cam_image(np.maximum(scale_cam_image([cam], (224, 224)), 0), (224, 224))[0]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="/tmp/onnx-zoo")
    ap.add_argument("--gradcam", default="target/release/gradcam")
    args = ap.parse_args()
    torch.set_num_threads(2)
    os.makedirs(args.out, exist_ok=True)
    from PIL import Image

    rng = np.random.default_rng(0)
    photo = os.path.join(args.out, "noise224.png")
    Image.fromarray(rng.integers(0, 256, (224, 224, 3), dtype=np.uint8)).save(photo)
    pixels = np.asarray(Image.open(photo).convert("RGB"), dtype=np.float32) / 255.0
    x = torch.from_numpy(((pixels - zoo.MEAN) / zoo.STD).transpose(2, 0, 1)[None].copy())

    model = zoo.build("densenet121")
    path = os.path.join(args.out, "densenet121.legacy.onnx")
    if not os.path.exists(path):
        with torch.no_grad():
            zoo.export(model, path, "legacy")
    with torch.no_grad():
        top1 = int(model(x).argmax())
    target = [ClassifierOutputTarget(top1)]

    def pgc(m):
        return GradCAM(model=m, target_layers=[m.features])(input_tensor=x.clone(), targets=target)[0]

    as_is = pgc(model)
    original_forward = torchvision.models.DenseNet.forward
    torchvision.models.DenseNet.forward = forward_without_inplace
    not_inplace = pgc(model)
    torchvision.models.DenseNet.forward = original_forward

    out = os.path.join(args.out, "densenet121.inplace.out")
    subprocess.run([args.gradcam, "explain", photo, "--model", path, "--layer", "features", "--class",
                    str(top1), "--out", out, "--overwrite", "--quiet"], check=True)
    ours = np.load(os.path.join(out, "noise224.cam.npy"))

    def d(a, b):
        return f"{float(np.abs(a - b).max()):.1e}"

    print("gradcam vs pytorch-grad-cam, in-place ReLU (as torchvision):", d(ours, as_is))
    print("gradcam vs pytorch-grad-cam, ReLU not in place:", d(ours, not_inplace))
    print("pytorch-grad-cam as is vs by hand, relu(activations) x gradient before the ReLU:",
          d(as_is, grad_cam_by_hand(model, x, top1, True)))
    print("pytorch-grad-cam, ReLU not in place, vs by hand without the ReLU on activations:",
          d(not_inplace, grad_cam_by_hand(model, x, top1, False)))


if __name__ == "__main__":
    main()
