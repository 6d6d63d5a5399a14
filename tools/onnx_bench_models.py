"""Exports torchvision's ResNet-50 (random weights, eval mode, dynamic batch) and the real
EfficientNet-Lite0 (../shared/tools/lite0_torch.py, weights from ~/.cache/gradcam or
$GRADCAM_LITE0_WEIGHTS) with both of torch's exporters, plus a Lite0 input and onnxruntime's
logits for it, for the by-hand checks of `tests/onnx_speed.rs`:

    /work/main/bench/.venv/bin/python tools/onnx_bench_models.py /tmp/gradcam-onnx-bench
    GRADCAM_ONNX_BENCH=/tmp/gradcam-onnx-bench cargo test --release --test onnx_speed -- --ignored --nocapture
"""

import os
import sys

import torch
import torchvision

out = sys.argv[1] if len(sys.argv) > 1 else "/tmp/gradcam-onnx-bench"
os.makedirs(out, exist_ok=True)
torch.manual_seed(0)
model = torchvision.models.resnet50().eval()
x = torch.randn(2, 3, 224, 224)
with torch.no_grad():
    batch = torch.export.Dim("batch", min=1, max=64)
    prog = torch.onnx.export(model, (x,), dynamo=True, input_names=["input"], output_names=["logits"],
                             dynamic_shapes={"x": {0: batch}})
    prog.save(f"{out}/resnet50.dynamo.onnx", external_data=True)
    torch.onnx.export(model, (x,), f"{out}/resnet50.legacy.onnx", dynamo=False, opset_version=17,
                      input_names=["input"], output_names=["logits"],
                      dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}})

# EfficientNet-Lite0: TF "SAME" padding from the input's shape (the legacy exporter turns it
# into Shape / Gather / Slice / Pad arithmetic).
import numpy as np
import onnxruntime as ort

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "../../shared/tools"))
sys.path.insert(0, "/work/shared/tools")
from lite0_torch import load_effnet_lite0

weights = os.environ.get("GRADCAM_LITE0_WEIGHTS", os.path.expanduser("~/.cache/gradcam/efficientnet-lite0-57934424.pth"))
lite0 = load_effnet_lite0(weights)
x = torch.randn(1, 3, 224, 224)
np.save(f"{out}/lite0.input.npy", x.numpy())
with torch.no_grad():
    np.save(f"{out}/lite0.torch.logits.npy", lite0(x).numpy())
    batch = torch.export.Dim("batch", min=1, max=64)
    prog = torch.onnx.export(lite0, (x,), dynamo=True, input_names=["input"], output_names=["logits"],
                             dynamic_shapes={"x": {0: batch}})
    prog.save(f"{out}/lite0.dynamo.onnx", external_data=True)
    torch.onnx.export(lite0, (x,), f"{out}/lite0.legacy.onnx", dynamo=False, opset_version=17,
                      input_names=["input"], output_names=["logits"],
                      dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}})
for exporter in ("dynamo", "legacy"):
    sess = ort.InferenceSession(f"{out}/lite0.{exporter}.onnx", providers=["CPUExecutionProvider"])
    np.save(f"{out}/lite0.{exporter}.logits.npy", sess.run(None, {"input": x.numpy()})[0])
print("wrote", out)
