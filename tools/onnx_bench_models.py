"""Exports torchvision's ResNet-50 (random weights, eval mode, dynamic batch) with both of torch's
exporters, for the by-hand speed test `tests/onnx_speed.rs`:

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
print("wrote", out)
