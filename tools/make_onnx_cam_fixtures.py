"""Makes tests/fixtures/onnx/cams: pytorch-grad-cam 1.5.7's maps for the ONNX fixture models.

Run by hand from the repository root, after tools/make_onnx_fixtures.py:
    /work/main/bench/.venv/bin/python tools/make_onnx_cam_fixtures.py

The models are rebuilt from tools/make_onnx_fixtures.py with its seeds, in its order, so their
weights are the exported ones; the script checks that by comparing the PyTorch logits with the
stored onnxruntime logits. For each model and method it writes `cams/<model>.<method>.npy`, the
(2, H, W) maps pytorch-grad-cam returns for class CLASS on `<model>.input.npy`, and
`cams/manifest.json` naming the layer (a PyTorch module path), the reshape and the methods;
`cams/resnet_like.batch1.onnx`, the legacy export with a fixed batch of one, and
`cams/resnet_like.nhwc.onnx`, the same network taking channel-last input (as tf2onnx writes
Keras models), whose module paths gain an `inner.` prefix.

Eigen-CAM's maps follow tools/make_fixtures.py's sign rule for the SVD (see tests/methods.rs).
Transformers use pytorch-grad-cam's reshape transforms: the ViT one drops the class token and
lays the tokens on their grid; the Swin one moves channel-last to channel-first. Ablation-CAM is
left out for them (pytorch-grad-cam ablates ViT channels in every token, class token included,
with AblationLayerVit; gradcam ablates the grid's). Guided backpropagation only for models whose
ReLUs are all `nn.ReLU` modules (pytorch-grad-cam replaces only those; gradcam guides every ReLU
of the graph).
"""

import json
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(__file__))
import make_fixtures  # noqa: E402  (for its Eigen-CAM sign rule)
import make_onnx_fixtures as fx  # noqa: E402  (seeds torch on import, as its own run does)

from pytorch_grad_cam import AblationCAM, EigenCAM, GradCAM, GradCAMPlusPlus, ScoreCAM  # noqa: E402
from pytorch_grad_cam import GuidedBackpropReLUModel  # noqa: E402
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget  # noqa: E402

OUT = f"{fx.OUT}/cams"
METHODS = {
    "gradcam": GradCAM,
    "gradcam++": GradCAMPlusPlus,
    "scorecam": ScoreCAM,
    "ablationcam": AblationCAM,
    "eigencam": EigenCAM,
}

# model -> (layer, reshape, guided backprop compared)
LAYERS = {
    "resnet_like": ("layer2", "none", True),
    "depthwise_se": ("se", "none", False),
    "shuffle_concat": ("mix", "none", False),
    "tiny_vit": ("blocks.0.norm1", "vit", False),
    "tf_padding": ("conv2", "none", False),
    "tiny_swin": ("stage", "swin", False),
    "upsample_head": ("encoder", "none", True),
}


# Models whose head is global average pooling + one linear layer after a module: (that module,
# the linear layer), for torchcam 0.5.0's CAM (pip install torchcam==0.5.0).
TORCHCAM_CAM = {"resnet_like": ("layer2", "fc"), "depthwise_se": ("dw2", "head")}


class ChannelLast(torch.nn.Module):
    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def forward(self, x):
        return self.inner(x.permute(0, 3, 1, 2))


def vit_reshape(grid):
    def reshape(t):
        b, _, c = t.shape
        return t[:, 1:, :].reshape(b, grid, grid, c).permute(0, 3, 1, 2)

    return reshape


def swin_reshape(t):
    return t.permute(0, 3, 1, 2)


def main():
    make_fixtures.install_sign_rule()
    os.makedirs(OUT, exist_ok=True)
    manifest = {"class": fx.CLASS, "models": {}}
    for name, model, x in fx.originals():
        layer, reshape, guided = LAYERS[name]
        transform = {"none": None, "vit": vit_reshape(x.shape[-1] // 8), "swin": swin_reshape}[reshape]
        target_layer = model.get_submodule(layer)
        targets = [ClassifierOutputTarget(fx.CLASS)] * x.shape[0]
        methods = []
        for method, cls in METHODS.items():
            if method == "ablationcam" and reshape != "none":
                continue
            cam = cls(model=model, target_layers=[target_layer], reshape_transform=transform)
            if method == "scorecam":
                cam.batch_size = 16
            maps = cam(input_tensor=x.clone(), targets=targets)
            np.save(f"{OUT}/{name}.{method}.npy", maps.astype(np.float32))
            methods.append(method)
        if guided:
            gb = GuidedBackpropReLUModel(model=model, device="cpu")
            images = [gb(x[i : i + 1].clone(), target_category=fx.CLASS) for i in range(x.shape[0])]
            np.save(f"{OUT}/{name}.guided-backprop.npy", np.stack(images).astype(np.float32))
            methods.append("guided-backprop")
        entry = {"layer": layer, "reshape": reshape, "methods": methods}
        if name in TORCHCAM_CAM:
            # torchcam's CAM (its raw maps, min-max scaled at the layer's resolution), top-1.
            from torchcam.methods import CAM

            cam_layer, fc = TORCHCAM_CAM[name]
            with torch.no_grad():
                top = [int(c) for c in model(x).argmax(1)]
            maps = make_fixtures.torchcam_maps(CAM(model, cam_layer, fc), model, x, top)
            np.save(f"{OUT}/{name}.torchcam-cam.npy", maps.astype(np.float32))
            entry["torchcam_cam"] = {"layer": cam_layer, "fc": fc, "top": top}
        if name == "resnet_like":
            # A fixed batch of one (no dynamic axes): gradcam runs such a graph image by image.
            path = f"{OUT}/{name}.batch1.onnx"
            with torch.no_grad():
                torch.onnx.export(model, (x[:1],), path, dynamo=False, opset_version=13,
                                  input_names=["input"], output_names=["logits"])
            entry["batch1"] = os.path.basename(path)
            # Channel-last input, as tf2onnx exports Keras models: the same network behind a
            # permute, so its maps are the ones above.
            path = f"{OUT}/{name}.nhwc.onnx"
            with torch.no_grad():
                torch.onnx.export(ChannelLast(model), (x.permute(0, 2, 3, 1),), path, dynamo=False,
                                  opset_version=13, input_names=["input"], output_names=["logits"],
                                  dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}})
            entry["nhwc"] = os.path.basename(path)
        manifest["models"][name] = entry
        print(name, layer, reshape, methods)
    with open(f"{OUT}/manifest.json", "w") as f:
        json.dump(manifest, f, indent=1, sort_keys=True)
        f.write("\n")


if __name__ == "__main__":
    main()
