"""Makes tests/fixtures/onnx/legrad: a small torchvision VisionTransformer exported to ONNX both
ways, and torchcam 0.5.0's LeGrad maps for it.

Run by hand from the repository root:
    /work/main/bench/.venv/bin/python tools/make_legrad_fixtures.py

Writes:
- `vit.dynamo.onnx` (+ `vit.dynamo.onnx.data`) and `vit.legacy.onnx`: torchvision's
  `VisionTransformer(image_size=32, patch_size=8, num_layers=3, num_heads=2, hidden_dim=32,
  mlp_dim=64, num_classes=10)` with seeded random weights (its zero-initialised head and unit
  layer norms re-drawn so that every block matters), dynamic batch (the dynamo file without its
  `pkg.torch.onnx.stack_trace` metadata, which only names lines of this script);
- `vit.batch1.onnx`: the legacy export with a fixed batch of one (run image by image);
- `input.npy`: a batch of 2 images (2, 3, 32, 32), float32;
- `logits.npy`: torch's logits for it;
- `<case>.raw.npy` and `<case>.norm.npy`: torchcam's `LeGrad(model, layers)(class_idx, scores,
  normalized=False / True)[0]`, shape (2, 4, 4), for each case of `CASES` (written to
  `manifest.json` with the layers and classes);
- `manifest.json`: the cases, the versions, and onnxruntime's distance from torch per export.

Deterministic: fixed seeds, one thread.
"""

import json
import os

import numpy as np
import onnx
import onnxruntime as ort
import torch
import torchcam
import torchvision
from torchcam.methods import LeGrad
from torchvision.models.vision_transformer import VisionTransformer

OUT = "tests/fixtures/onnx/legrad"
LAYERS = [f"encoder.layers.encoder_layer_{i}" for i in range(3)]
# name -> (layers, class per image or None for each image's top class)
CASES = {
    "all_top": (LAYERS, None),
    "all_class3": (LAYERS, [3, 3]),
    "last2_class7_1": (LAYERS[1:], [7, 1]),
    "first_class3": (LAYERS[:1], [3, 3]),
}

assert torchcam.__version__ == "0.5.0", torchcam.__version__
torch.manual_seed(0)
torch.set_num_threads(1)


def make_model():
    model = VisionTransformer(image_size=32, patch_size=8, num_layers=3, num_heads=2, hidden_dim=32,
                              mlp_dim=64, num_classes=10)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.LayerNorm):
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.3, 0.3)
        model.heads.head.weight.normal_(0, 0.5)
        model.heads.head.bias.uniform_(-0.3, 0.3)
        model.class_token.normal_(0, 0.5)
    return model.eval()


def export(model, x, path, dynamo, dynamic=True):
    for f in (path, path + ".data"):
        if os.path.exists(f):
            os.remove(f)
    # With gradients enabled: under no_grad, nn.MultiheadAttention takes its fused fast path
    # (aten::_native_multi_head_attention), which the legacy exporter cannot export.
    if dynamo:
        batch = torch.export.Dim("batch", min=1, max=64)
        prog = torch.onnx.export(model, (x,), dynamo=True, input_names=["input"], output_names=["logits"],
                                 dynamic_shapes={"x": {0: batch}}, optimize=True)
        prog.save(path, external_data=True)
        proto = onnx.load(path, load_external_data=False)
        for node in proto.graph.node:
            kept = [p for p in node.metadata_props if p.key != "pkg.torch.onnx.stack_trace"]
            del node.metadata_props[:]
            node.metadata_props.extend(kept)
        onnx.save(proto, path)
    else:
        axes = {"input": {0: "batch"}, "logits": {0: "batch"}} if dynamic else None
        torch.onnx.export(model, (x,), path, dynamo=False, opset_version=17, input_names=["input"],
                          output_names=["logits"], dynamic_axes=axes)


def run_ort(path, x):
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
    return sess.run(None, {sess.get_inputs()[0].name: x})[0]


def legrad(model, x, layers, classes, normalized):
    with LeGrad(model, layers) as extractor:
        scores = model(x)
        target = scores.argmax(1).tolist() if classes is None else classes
        return extractor(target, scores, normalized=normalized)[0].detach().numpy(), target


def main():
    os.makedirs(OUT, exist_ok=True)
    model = make_model()
    x = torch.randn(2, 3, 32, 32)
    np.save(f"{OUT}/input.npy", x.numpy())
    with torch.no_grad():
        logits = model(x).numpy()
    np.save(f"{OUT}/logits.npy", logits.astype(np.float32))
    manifest = {
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "torchcam": torchcam.__version__,
        "onnx": onnx.__version__,
        "onnxruntime": ort.__version__,
        "cases": {},
        "exports": {},
    }
    for name, (layers, classes) in CASES.items():
        raw, target = legrad(model, x.clone(), layers, classes, normalized=False)
        norm, _ = legrad(model, x.clone(), layers, classes, normalized=True)
        np.save(f"{OUT}/{name}.raw.npy", raw.astype(np.float32))
        np.save(f"{OUT}/{name}.norm.npy", norm.astype(np.float32))
        manifest["cases"][name] = {"layers": layers, "classes": target, "given": classes is not None,
                                   "raw_max": float(raw.max())}
        print(name, layers, target, "raw max", raw.max())
    for exporter, dynamo in (("dynamo", True), ("legacy", False)):
        path = f"{OUT}/vit.{exporter}.onnx"
        export(model, x, path, dynamo)
        proto = onnx.load(path)
        ort_logits = run_ort(path, x.numpy())
        manifest["exports"][exporter] = {
            "file": os.path.basename(path),
            "opset": {o.domain or "ai.onnx": o.version for o in proto.opset_import},
            "ops": sorted({n.op_type for n in proto.graph.node}),
            "softmax": [n.name for n in proto.graph.node if n.op_type == "Softmax"],
            "ort_vs_torch": float(np.abs(ort_logits - logits).max()),
        }
        print(exporter, manifest["exports"][exporter])
    export(model, x[:1], f"{OUT}/vit.batch1.onnx", dynamo=False, dynamic=False)
    one = np.concatenate([run_ort(f"{OUT}/vit.batch1.onnx", x[i : i + 1].numpy()) for i in range(2)])
    manifest["exports"]["batch1"] = {"file": "vit.batch1.onnx", "ort_vs_torch": float(np.abs(one - logits).max())}
    with open(f"{OUT}/manifest.json", "w") as f:
        json.dump(manifest, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
