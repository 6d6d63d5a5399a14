"""Checks `gradcam` on full-size torchvision architectures exported to ONNX, against
pytorch-grad-cam 1.5.7 on the PyTorch originals. Run by hand from the repository root (it takes
minutes per model on two cores; it needs no network):

    /work/main/bench/.venv/bin/python tools/check_onnx_zoo.py [--models resnet50,vit_b_16] \
        [--exporter dynamo|legacy] [--out /tmp/onnx-zoo] [--gradcam target/release/gradcam]

For each model: random weights (seed 0; torchvision's zero-initialised classifier heads are
re-drawn so that gradients are not all zero), exported with a dynamic batch; one 224x224 PNG of
seeded noise; Grad-CAM for the top-1 class at the layer pytorch-grad-cam's README uses (with
its reshape transform for ViT and Swin); `gradcam explain --model FILE.onnx --layer L` on the
same PNG (a 224x224 photo is not resized, so both sides see the same tensor). It prints a
Markdown table row per model (timm's as `timm/NAME`, with timm installed): layer, max abs diff of the 224x224 maps, and the time per image of
gradcam (its own timings: body, head and backward, map) and of pytorch-grad-cam (the call).
"""

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np
import torch
import torchvision
from PIL import Image
from pytorch_grad_cam import GradCAM
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)


def tokens_reshape(leading):
    """pytorch-grad-cam's ViT reshape transform, without `leading` tokens (class, distillation)."""

    def reshape(t):
        b, n, c = t.shape
        g = int(round((n - leading) ** 0.5))
        return t[:, leading:, :].reshape(b, g, g, c).permute(0, 3, 1, 2)

    return reshape


vit_reshape = tokens_reshape(1)


def swin_reshape(t):
    return t.permute(0, 3, 1, 2)


# name -> (layer as pytorch-grad-cam's README picks it, reshape transform)
ZOO = {
    "resnet50": ("layer4", None),
    "resnext50_32x4d": ("layer4", None),
    "wide_resnet50_2": ("layer4", None),
    "vgg16": ("features.29", None),
    "mobilenet_v2": ("features.18", None),
    "mobilenet_v3_large": ("features.16", None),
    "efficientnet_b0": ("features.8", None),
    "efficientnet_v2_s": ("features.7", None),
    "regnet_y_400mf": ("trunk_output", None),
    "densenet121": ("features", None),
    "shufflenet_v2_x1_0": ("conv5", None),
    "squeezenet1_1": ("features.12", None),
    "mnasnet1_0": ("layers.16", None),
    "googlenet": ("inception5b", None),
    "convnext_tiny": ("features.7", None),
    "vit_b_16": ("encoder.layers.encoder_layer_11.ln_1", vit_reshape),
    "swin_t": ("features.7", swin_reshape),
    # timm (`timm/NAME`), the layer its users pick: the last stage, the last block's norm1 for
    # token models (DeiT's distilled model has two leading tokens), the head's BN + activation.
    "timm/deit_tiny_distilled_patch16_224": ("blocks.11.norm1", tokens_reshape(2)),
    "timm/convnext_tiny": ("stages.3", None),
    "timm/efficientnet_b3": ("bn2", None),
    "timm/maxvit_tiny_tf_224": ("stages.3", None),
}


def build(name):
    torch.manual_seed(0)
    if name.startswith("timm/"):
        import timm

        model = timm.create_model(name.removeprefix("timm/"), pretrained=False).eval()
    else:
        kwargs = {"aux_logits": False, "init_weights": True} if name == "googlenet" else {}
        model = getattr(torchvision.models, name)(weights=None, **kwargs).eval()
    # Heads that torchvision initialises to zero would give all-zero gradients.
    for m in model.modules():
        if isinstance(m, torch.nn.Linear) and not m.weight.abs().sum():
            torch.nn.init.normal_(m.weight, std=0.05)
    return model


def export(model, path, exporter):
    x = torch.randn(1, 3, 224, 224)
    if exporter == "dynamo":
        batch = torch.export.Dim("batch", min=1, max=64)
        prog = torch.onnx.export(model, (x,), dynamo=True, input_names=["input"], output_names=["logits"],
                                 dynamic_shapes={"x": {0: batch}})
        prog.save(path, external_data=True)
    else:
        torch.onnx.export(model, (x,), path, dynamo=False, opset_version=17, input_names=["input"],
                          output_names=["logits"], dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}})


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default=",".join(ZOO))
    ap.add_argument("--exporter", default="dynamo", choices=["dynamo", "legacy"])
    ap.add_argument("--out", default="/tmp/onnx-zoo")
    ap.add_argument("--gradcam", default="target/release/gradcam")
    args = ap.parse_args()
    torch.set_num_threads(2)
    os.makedirs(args.out, exist_ok=True)
    rng = np.random.default_rng(0)
    photo = os.path.join(args.out, "noise224.png")
    Image.fromarray(rng.integers(0, 256, (224, 224, 3), dtype=np.uint8)).save(photo)
    pixels = np.asarray(Image.open(photo).convert("RGB"), dtype=np.float32) / 255.0
    x = torch.from_numpy(((pixels - MEAN) / STD).transpose(2, 0, 1)[None].copy())

    print(f"| model ({args.exporter}) | layer | max abs diff | gradcam ms | pytorch-grad-cam ms |")
    print("|---|---|---:|---:|---:|")
    for name in args.models.split(","):
        layer, reshape = ZOO[name]
        model = build(name)
        path = os.path.join(args.out, f"{name.replace('/', '_')}.{args.exporter}.onnx")
        try:
            if not os.path.exists(path):
                with torch.no_grad():
                    export(model, path, args.exporter)
        except Exception as e:  # an export failure is torch's, not ours: say so and go on
            print(f"| {name} | {layer} | export failed: {type(e).__name__} | | |", flush=True)
            continue
        with torch.no_grad():
            top1 = int(model(x).argmax())
        cam = GradCAM(model=model, target_layers=[model.get_submodule(layer)], reshape_transform=reshape)
        cam(input_tensor=x, targets=[ClassifierOutputTarget(top1)])  # warm-up
        times = []
        for _ in range(3):
            start = time.perf_counter()
            theirs = cam(input_tensor=x, targets=[ClassifierOutputTarget(top1)])[0]
            times.append((time.perf_counter() - start) * 1e3)
        out = os.path.join(args.out, f"{name.replace('/', '_')}.{args.exporter}.out")
        run = subprocess.run([args.gradcam, "explain", photo, "--model", path, "--layer", layer, "--class", str(top1),
                              "--out", out, "--overwrite", "--quiet"], capture_output=True, text=True)
        if run.returncode != 0:
            lines = run.stderr.strip().splitlines()
            # The line naming what is missing, not the list of what is supported after it.
            named = [line for line in lines if "unsupported" in line] or lines[-1:]
            message = named[0][:160] if named else f"exit {run.returncode}"
            print(f"| {name} | {layer} | gradcam failed: {message} | | |", flush=True)
            continue
        ours = np.load(os.path.join(out, "noise224.cam.npy"))
        timings = json.load(open(os.path.join(out, "noise224.json")))["explanation"]["timings"]
        ours_ms = timings["forward"] + timings["backward"] + timings["postprocess"]
        diff = float(np.abs(ours - theirs).max())
        print(f"| {name} | {layer} | {diff:.1e} | {ours_ms:.0f} | {np.median(times):.0f} |", flush=True)


if __name__ == "__main__":
    sys.exit(main())
