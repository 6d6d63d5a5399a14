"""Checks `gradcam --method legrad` on torchvision's vit_b_16 (random weights) exported to ONNX
against torchcam 0.5.0's LeGrad, and times it against gradcam (run by hand; README.md,
docs/onnx.md).

    /work/main/bench/.venv/bin/python tools/check_legrad_vit_b_16.py   # needs target/release/gradcam

Writes a 330 MB ONNX file to a temporary directory and deletes it at the end.
"""
import json
import pathlib
import shutil
import subprocess
import tempfile

import numpy as np
import torch
import torchcam
import torchvision
from PIL import Image
from torchcam.methods import LeGrad

ROOT = pathlib.Path(__file__).resolve().parent.parent
GRADCAM = str(ROOT / "target/release/gradcam")
BLOCKS = [f"encoder.layers.encoder_layer_{i}" for i in range(8, 12)]

assert torchcam.__version__ == "0.5.0", torchcam.__version__


def main():
    torch.manual_seed(0)
    model = torchvision.models.vit_b_16(weights=None).eval()
    # torchvision zero-initialises the head: every logit would be its bias.
    torch.nn.init.normal_(model.heads.head.weight, 0, 0.02)
    tmp = pathlib.Path(tempfile.mkdtemp(prefix="gradcam-legrad-"))
    try:
        onnx = tmp / "vit_b_16.onnx"
        # With gradients enabled: under no_grad nn.MultiheadAttention's fused fast path does
        # not export (legacy exporter).
        torch.onnx.export(model, (torch.randn(1, 3, 224, 224),), str(onnx), dynamo=False, opset_version=17,
                          input_names=["input"], output_names=["logits"],
                          dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}})
        # A 224x224 photo, so that our resize to the input size is the identity.
        img = Image.open(ROOT / "assets/cat_dog.jpg").convert("RGB").resize((224, 224), Image.BILINEAR)
        photo = tmp / "photo.png"
        img.save(photo)
        x = torchvision.transforms.functional.to_tensor(img)
        x = torchvision.transforms.functional.normalize(x, [0.485, 0.456, 0.406], [0.229, 0.224, 0.225])[None]
        with LeGrad(model, BLOCKS) as extractor:
            scores = model(x)
            c = int(scores.argmax(1))
            raw = extractor(c, scores, normalized=False)[0][0].detach().numpy()
        with LeGrad(model, BLOCKS) as extractor:
            scores = model(x)
            norm = extractor(c, scores)[0][0].detach().numpy()
        out = tmp / "out"
        subprocess.run([GRADCAM, "explain", str(photo), "--model", str(onnx), "--method", "legrad",
                        "--format", "raw,json", "--out", str(out)], check=True, capture_output=True)
        explained = json.loads((out / "photo.json").read_text())["explanation"]["explanations"][0]
        assert explained["class"] == c, (explained["class"], c)
        ours = np.mean([np.load(out / f"photo.cam_raw.{b}.npy").squeeze() for b in BLOCKS], axis=0)
        ours_norm = (ours - ours.min()) / ((ours - ours.min()).max() + 1e-8)
        print(f"class {c}: raw max abs diff {np.abs(ours - raw).max():.2g} (raw max {raw.max():.2g}), "
              f"normalized {np.abs(ours_norm - norm).max():.2g}")
        for method in ["gradcam", "legrad"]:
            report = subprocess.run([GRADCAM, "bench", "--model", str(onnx), "--method", method, "-n", "5",
                                     "--warmup", "1", "--json"], check=True, capture_output=True, text=True)
            r = json.loads(report.stdout)
            print(f"{method} at {'+'.join(r['layers'])}: {r['explain_ms_per_image']:.0f} ms per map "
                  f"(min {r['explain_min_ms_per_image']:.0f}), forward {r['forward_ms_per_image']:.0f} ms")
    finally:
        shutil.rmtree(tmp)


if __name__ == "__main__":
    main()
