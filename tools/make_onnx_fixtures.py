"""Makes tests/fixtures/onnx: small models exported to ONNX and their reference outputs.

Run by hand from the repository root:
    /work/main/bench/.venv/bin/python tools/make_onnx_fixtures.py

For every model below and both of torch's exporters (the default dynamo one and the legacy
`dynamo=False` one) it writes:
- `<name>.<exporter>.onnx` (the dynamo exporter's weights in `<name>.dynamo.onnx.data`);
- `<name>.input.npy`: a batch of 2 inputs, float32;
- `<name>.<exporter>.logits.npy`: onnxruntime's outputs for it;
- `<name>.<exporter>.cut.npy`: onnxruntime's value of the cut tensor (the output of the module
  named in `CUTS`, found as the last node inside that module's scope);
- `<name>.grad.npy`: torch autograd's gradient of the class-`CLASS` logit summed over the batch
  with respect to that module's output (the same for both exporters);
and `manifest.json`, naming each file's cut tensor and the values a test needs.

Deterministic: fixed seeds, one thread.
"""

import ast
import json
import math
import os
import sys

import numpy as np
import onnx
import onnxruntime as ort
import torch
import torch.nn as nn
import torch.nn.functional as F

OUT = "tests/fixtures/onnx"
CLASS = 1
torch.manual_seed(0)
torch.set_num_threads(1)


class BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU()
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.down = None
        if stride != 1 or cin != cout:
            self.down = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return self.relu(y + (x if self.down is None else self.down(x)))


class ResNetLike(nn.Module):
    """conv / bn / relu / maxpool / residual add / global average pool / linear."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, 1, 1, bias=False), nn.BatchNorm2d(8), nn.ReLU())
        self.pool = nn.MaxPool2d(3, 2, 1)
        self.layer1 = BasicBlock(8, 8, 1)
        self.layer2 = BasicBlock(8, 16, 2)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(16, 5)

    def forward(self, x):
        x = self.layer2(self.layer1(self.pool(self.stem(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


class SqueezeExcite(nn.Module):
    def __init__(self, c, r):
        super().__init__()
        self.reduce = nn.Conv2d(c, r, 1)
        self.expand = nn.Conv2d(r, c, 1)

    def forward(self, x):
        s = F.adaptive_avg_pool2d(x, 1)
        return x * torch.sigmoid(self.expand(F.relu(self.reduce(s))))


class DepthwiseSE(nn.Module):
    """depthwise conv, squeeze-excitation (sigmoid / mul), hardswish, ReLU6, hardsigmoid."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, 2, 1), nn.BatchNorm2d(16), nn.Hardswish())
        self.dw = nn.Sequential(nn.Conv2d(16, 16, 3, 1, 1, groups=16), nn.BatchNorm2d(16), nn.ReLU6())
        self.se = SqueezeExcite(16, 4)
        self.project = nn.Sequential(nn.Conv2d(16, 24, 1), nn.Hardsigmoid())
        self.dw2 = nn.Conv2d(24, 24, 5, 2, 2, groups=24)
        self.head = nn.Linear(24, 4)

    def forward(self, x):
        x = self.dw2(self.project(self.se(self.dw(self.stem(x)))))
        return self.head(x.mean((2, 3)))


class ShuffleConcat(nn.Module):
    """grouped conv, channel shuffle (reshape / transpose), concat branches, average pooling."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 12, 3, 1, 1)
        self.grouped = nn.Conv2d(12, 12, 3, 1, 1, groups=3)
        self.branch_a = nn.Sequential(nn.Conv2d(12, 6, 1), nn.ReLU())
        self.branch_b = nn.Sequential(nn.AvgPool2d(3, 1, 1), nn.Conv2d(12, 6, 3, 1, 1), nn.LeakyReLU(0.1))
        self.mix = nn.Conv2d(12, 8, 3, 2, 1)
        self.fc = nn.Linear(8, 3)

    def forward(self, x):
        x = F.relu(self.grouped(self.stem(x)))
        b, c, h, w = x.shape
        x = x.view(b, 3, c // 3, h, w).transpose(1, 2).reshape(b, c, h, w)
        x = torch.cat([self.branch_a(x), self.branch_b(x)], 1)
        x = F.relu(self.mix(x))
        return self.fc(F.adaptive_avg_pool2d(x, 1).flatten(1))


class Attention(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        b, n, c = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        attn = (q @ k.transpose(-2, -1)) * (c // self.heads) ** -0.5
        attn = attn.softmax(-1)
        return self.proj((attn @ v).transpose(1, 2).reshape(b, n, c))


class Block(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, dim * 2), nn.GELU(), nn.Linear(dim * 2, dim))

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class TinyViT(nn.Module):
    """patch embedding, class token concat, position embedding, one encoder block."""

    def __init__(self, dim=16, patch=8, size=32):
        super().__init__()
        self.patch_embed = nn.Conv2d(3, dim, patch, patch)
        self.cls_token = nn.Parameter(torch.randn(1, 1, dim) * 0.5)
        self.pos_embed = nn.Parameter(torch.randn(1, 1 + (size // patch) ** 2, dim) * 0.5)
        self.blocks = nn.Sequential(Block(dim, 2))
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, 3)

    def forward(self, x):
        x = self.patch_embed(x).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], 1) + self.pos_embed
        x = self.norm(self.blocks(x))
        return self.head(x[:, 0])


def pad_same(x, k, s):
    """TensorFlow's "SAME" padding worked out from the input's size, as timm's `pad_same`."""
    ih, iw = x.size()[-2:]
    pad_h = max((math.ceil(ih / s) - 1) * s + k - ih, 0)
    pad_w = max((math.ceil(iw / s) - 1) * s + k - iw, 0)
    return F.pad(x, [pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2])


class Conv2dSame(nn.Conv2d):
    def forward(self, x):
        return F.conv2d(pad_same(x, self.kernel_size[0], self.stride[0]), self.weight, self.bias, self.stride, 0, 1, self.groups)


class TfPadding(nn.Module):
    """TF-style "SAME" padding from the input's shape (Lite0's legacy export), stride 2 convs."""

    def __init__(self):
        super().__init__()
        self.conv1 = Conv2dSame(3, 8, 3, 2)
        self.conv2 = Conv2dSame(8, 8, 3, 2, groups=8)
        self.act = nn.ReLU6()
        self.fc = nn.Linear(8, 3)

    def forward(self, x):
        x = self.act(self.conv2(self.act(self.conv1(x))))
        return self.fc(x.mean((2, 3)))


# name -> (constructor, input size, module path whose output is the cut, legacy opset)
MODELS = {
    "resnet_like": (ResNetLike, 32, "layer2", 13),
    "depthwise_se": (DepthwiseSE, 32, "se", 17),
    "shuffle_concat": (ShuffleConcat, 16, "mix", 15),
    "tiny_vit": (TinyViT, 32, "blocks", 13),
    "tf_padding": (TfPadding, 17, "conv2", 17),
}


def randomize_norms(model):
    # Running statistics that are not 0/1, so that batch norm's folding is exercised.
    for m in model.modules():
        if isinstance(m, (nn.BatchNorm2d, nn.LayerNorm)):
            with torch.no_grad():
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.3, 0.3)
                if isinstance(m, nn.BatchNorm2d):
                    m.running_mean.uniform_(-0.3, 0.3)
                    m.running_var.uniform_(0.5, 1.5)


def scope_of(node, dynamo):
    """The module path of the scope a node was exported in ('' when none)."""
    if dynamo:
        for p in node.metadata_props:
            if p.key == "pkg.torch.onnx.name_scopes":
                # A Python list literal: ['', 'layer2', 'layer2.relu', 'relu_4']: the root module,
                # the nested modules' paths, then the operation's own name.
                names = ast.literal_eval(p.value)
                return names[-2] if len(names) > 2 else ""
        return ""
    # Legacy: "/stem/stem.0/Conv" (a container's children by full path), "/layer2/relu_1/Relu"
    # (a leaf by attribute name, with a call count): the path is built part by part.
    parts = node.name.strip("/").split("/")[:-1]
    path = ""
    for part in parts:
        path = part if not path or part.startswith(path + ".") else f"{path}.{part}"
    return path


def cut_tensor(model_proto, module, dynamo):
    """The last tensor produced inside the scope of `module`."""
    last = None
    for node in model_proto.graph.node:
        scope = scope_of(node, dynamo)
        if scope == module or scope.startswith(module + "."):
            last = node.output[0]
    if last is None:
        sys.exit(f"no node inside module {module}")
    return last


def run_ort(path, x, extra):
    model = onnx.load(path)
    for name in extra:
        model.graph.output.append(onnx.helper.make_empty_tensor_value_info(name))
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    return sess.run(None, {sess.get_inputs()[0].name: x})


def torch_grad(model, module, x):
    store = {}

    def hook(_m, _i, out):
        out.retain_grad()
        store["out"] = out

    handle = model.get_submodule(module).register_forward_hook(hook)
    logits = model(x)
    logits[:, CLASS].sum().backward()
    handle.remove()
    return store["out"].grad.detach().numpy(), logits.detach().numpy()


def export(model, x, path, dynamo, opset):
    base = os.path.basename(path)
    for f in (path, path + ".data"):
        if os.path.exists(f):
            os.remove(f)
    if dynamo:
        batch = torch.export.Dim("batch", min=1, max=64)
        prog = torch.onnx.export(model, (x,), dynamo=True, input_names=["input"], output_names=["logits"],
                                 dynamic_shapes={"x": {0: batch}}, optimize=True)
        prog.save(path, external_data=True)
    else:
        torch.onnx.export(model, (x,), path, dynamo=False, opset_version=opset, input_names=["input"],
                          output_names=["logits"], dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}})
    return base


def main():
    os.makedirs(OUT, exist_ok=True)
    manifest = {"class": CLASS, "models": {}}
    for name, (make, size, module, opset) in MODELS.items():
        model = make()
        randomize_norms(model)
        model.eval()
        x = torch.randn(2, 3, size, size)
        np.save(f"{OUT}/{name}.input.npy", x.numpy())
        grad, torch_logits = torch_grad(model, module, x.clone())
        np.save(f"{OUT}/{name}.grad.npy", grad.astype(np.float32))
        entry = {"module": module, "grad_shape": list(grad.shape), "exports": {}}
        for exporter, dynamo in (("dynamo", True), ("legacy", False)):
            path = f"{OUT}/{name}.{exporter}.onnx"
            with torch.no_grad():
                export(model, x, path, dynamo, opset)
            proto = onnx.load(path)
            cut = cut_tensor(proto, module, dynamo)
            logits, cut_value = run_ort(path, x.numpy(), [cut])
            np.save(f"{OUT}/{name}.{exporter}.logits.npy", logits.astype(np.float32))
            np.save(f"{OUT}/{name}.{exporter}.cut.npy", cut_value.astype(np.float32))
            ops = sorted({n.op_type for n in proto.graph.node})
            opsets = {o.domain or "ai.onnx": o.version for o in proto.opset_import}
            entry["exports"][exporter] = {
                "file": os.path.basename(path),
                "cut": cut,
                "opset": opsets,
                "ops": ops,
                "nodes": len(proto.graph.node),
                "ort_vs_torch": float(np.abs(logits - torch_logits).max()),
            }
            print(name, exporter, "opset", opsets, "nodes", len(proto.graph.node), "cut", cut,
                  "ort-torch", entry["exports"][exporter]["ort_vs_torch"], ops)
        manifest["models"][name] = entry
    with open(f"{OUT}/manifest.json", "w") as f:
        json.dump(manifest, f, indent=1, sort_keys=True)
        f.write("\n")


if __name__ == "__main__":
    main()
