#!/usr/bin/env python3
"""The PyTorch / pytorch-grad-cam side of the benchmarks (imported by compare.py).

Also runnable on its own, so that /usr/bin/time can measure its peak memory:

    torch_side.py case MODEL WEIGHTS LAYER METHOD BATCH REPS INPUT.npy
        one case as compare.py times it (warm-up + REPS runs); prints JSON
    torch_side.py e2e OUT_DIR LITE0_WEIGHTS IMAGE...
        the end-to-end loop: PIL load, resize to 224x224 (bilinear), normalise,
        pytorch-grad-cam Grad-CAM at `head`, top-5, map resized to the image,
        show_cam_on_image, cv2.imwrite (JPEG q95), np.save, a small JSON;
        prints JSON with the in-loop time

Threads: torch.set_num_threads(THREADS), THREADS from $BENCH_THREADS (default 2).
"""
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torchvision

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("GRADCAM_SHARED", REPO.parent / "shared"))
THREADS = int(os.environ.get("BENCH_THREADS", "2"))
torch.set_num_threads(THREADS)

# Lite0's input normalisation (DESIGN.md section 4).
MEAN_LITE = np.array([127 / 255] * 3, dtype=np.float32)
STD_LITE = np.array([128 / 255] * 3, dtype=np.float32)


def lite0_module():
    sys.path.insert(0, str(SHARED / "tools"))
    import lite0_torch  # noqa: E402  (the project's reference definition, ../shared/tools)
    return lite0_torch


def load_model(name, weights):
    """The PyTorch model for one of our model names, in eval mode."""
    if name == "efficientnet_lite0":
        return lite0_module().load_effnet_lite0(weights)
    if name == "resnet50":
        model = torchvision.models.resnet50(weights=None)
        model.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
        return model.eval()
    raise ValueError(f"no PyTorch model for {name}")


def target_layer(model, name, layer):
    """pytorch-grad-cam's target layer for our layer name."""
    if name == "efficientnet_lite0":
        if layer == "head":
            return model.head
        if layer.startswith("blocks."):
            return model._blocks[int(layer.split(".")[1])]
    elif name == "resnet50":
        if layer in ("layer1", "layer2", "layer3", "layer4"):
            return getattr(model, layer)
    raise ValueError(f"no target layer {layer} for {name}")


METHODS = {
    "gradcam": "GradCAM",
    "gradcam++": "GradCAMPlusPlus",
    "ablationcam": "AblationCAM",
    "xgradcam": "XGradCAM",
    "hirescam": "HiResCAM",
    "layercam": "LayerCAM",
    "eigencam": "EigenCAM",
    "scorecam": "ScoreCAM",
}


class Case:
    """One timed case: `run()` does one call as a user would and returns its seconds.

    METHOD `forward` is the plain forward pass under torch.no_grad(); any other is a
    pytorch-grad-cam CAM object built once and called with targets=None (the top-1).
    """

    def __init__(self, model_name, weights, layer, method, batch, input_path):
        self.model = load_model(model_name, weights)
        x = np.load(input_path)[:batch]
        self.input = torch.from_numpy(np.ascontiguousarray(x))
        self.method = method
        self.maps = None
        self.classes = None
        if method == "forward":
            self.cam = None
        else:
            import pytorch_grad_cam
            cls = getattr(pytorch_grad_cam, METHODS[method])
            self.cam = cls(model=self.model, target_layers=[target_layer(self.model, model_name, layer)])

    def run(self):
        start = time.perf_counter()
        if self.cam is None:
            with torch.no_grad():
                logits = self.model(self.input)
            elapsed = time.perf_counter() - start
            self.classes = logits.argmax(1).tolist()
        else:
            self.maps = self.cam(input_tensor=self.input, targets=None)
            elapsed = time.perf_counter() - start
            self.classes = self.cam.outputs.argmax(1).tolist()
        return elapsed


def median(values):
    v = sorted(values)
    n = len(v)
    return float("nan") if n == 0 else (v[n // 2] if n % 2 else (v[n // 2 - 1] + v[n // 2]) / 2)


def main_case(args):
    model, weights, layer, method, batch, reps, input_path = args
    batch, reps = int(batch), int(reps)
    case = Case(model, weights, layer, method, batch, input_path)
    warm = case.run()
    samples = [case.run() * 1e3 / batch for _ in range(reps)]
    print(json.dumps({
        "model": model, "layer": layer, "method": method, "batch": batch, "reps": reps,
        "warmup_ms_per_image": warm * 1e3 / batch,
        "median_ms_per_image": median(samples), "samples_ms_per_image": samples,
        "classes": case.classes, "threads": torch.get_num_threads(),
    }))


def main_e2e(args):
    import cv2
    from PIL import Image
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.image import show_cam_on_image

    out_dir, weights, images = Path(args[0]), args[1], args[2:]
    out_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    model = load_model("efficientnet_lite0", weights)
    cam = GradCAM(model=model, target_layers=[model.head])
    loaded = time.perf_counter()
    for path in images:
        img = Image.open(path).convert("RGB")
        rgb = np.asarray(img, dtype=np.float32) / 255
        small = np.asarray(img.resize((224, 224), Image.BILINEAR), dtype=np.float32) / 255
        x = torch.from_numpy(((small - MEAN_LITE) / STD_LITE).transpose(2, 0, 1).copy()).unsqueeze(0)
        grayscale = cam(input_tensor=x, targets=None)[0]
        logits = cam.outputs[0].detach()
        probs = torch.softmax(logits, 0)
        top5 = torch.topk(logits, 5).indices.tolist()
        mask = cv2.resize(grayscale, (img.width, img.height))
        vis = show_cam_on_image(rgb, mask, use_rgb=True)
        stem = Path(path).stem
        cv2.imwrite(str(out_dir / f"{stem}.gradcam.jpg"), cv2.cvtColor(vis, cv2.COLOR_RGB2BGR),
                    [cv2.IMWRITE_JPEG_QUALITY, 95])
        np.save(out_dir / f"{stem}.cam.npy", grayscale)
        with open(out_dir / f"{stem}.json", "w") as f:
            json.dump({"top5": [{"class": c, "logit": float(logits[c]), "probability": float(probs[c])}
                                for c in top5]}, f)
    done = time.perf_counter()
    print(json.dumps({"images": len(images), "load_s": loaded - t0, "loop_s": done - loaded,
                      "loop_ms_per_image": (done - loaded) * 1e3 / max(len(images), 1),
                      "threads": torch.get_num_threads()}))


if __name__ == "__main__":
    if len(sys.argv) >= 2 and sys.argv[1] == "case" and len(sys.argv) == 9:
        main_case(sys.argv[2:])
    elif len(sys.argv) >= 5 and sys.argv[1] == "e2e":
        main_e2e(sys.argv[2:])
    else:
        sys.exit(__doc__)
