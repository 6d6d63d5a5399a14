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


class WindowBlock(nn.Module):
    """Swin-style: channel-last tokens, a cyclic shift (torch.roll), window partition (rank 6),
    attention inside each window, window reverse, MLP."""

    def __init__(self, dim, window, shift):
        super().__init__()
        self.window, self.shift = window, shift
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, 2)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, dim * 2), nn.GELU(), nn.Linear(dim * 2, dim))

    def forward(self, x):
        b, h, w, c = x.shape
        ws = self.window
        y = self.norm1(x)
        if self.shift:
            y = torch.roll(y, shifts=(-self.shift, -self.shift), dims=(1, 2))
        y = y.view(b, h // ws, ws, w // ws, ws, c).permute(0, 1, 3, 2, 4, 5).reshape(-1, ws * ws, c)
        y = self.attn(y)
        y = y.view(b, h // ws, w // ws, ws, ws, c).permute(0, 1, 3, 2, 4, 5).reshape(b, h, w, c)
        if self.shift:
            y = torch.roll(y, shifts=(self.shift, self.shift), dims=(1, 2))
        x = x + y
        return x + self.mlp(self.norm2(x))


class TinySwin(nn.Module):
    """patch embedding to channel-last (B, H, W, C), two window blocks (the second shifted)."""

    def __init__(self, dim=8):
        super().__init__()
        self.patch_embed = nn.Conv2d(3, dim, 4, 4)
        self.stage = nn.Sequential(WindowBlock(dim, 2, 0), WindowBlock(dim, 2, 1))
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, 3)

    def forward(self, x):
        x = self.stage(self.patch_embed(x).permute(0, 2, 3, 1))
        return self.head(self.norm(x).mean((1, 2)))


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


class UpsampleHead(nn.Module):
    """A segmentation-style decoder: a strided encoder, a transposed convolution (output padding),
    bilinear (half-pixel and align-corners) and nearest upsampling (Resize), then a classifier."""

    def __init__(self):
        torch.manual_seed(1)  # its own seed: `--only upsample_head` remakes it alone, identically
        super().__init__()
        self.encoder = nn.Sequential(nn.Conv2d(3, 8, 3, 2, 1), nn.BatchNorm2d(8), nn.ReLU())
        self.up = nn.ConvTranspose2d(8, 6, 3, stride=2, padding=1, output_padding=1)
        self.act = nn.ReLU()  # a module, which pytorch-grad-cam's guided backprop replaces
        self.refine = nn.Conv2d(6, 6, 3, padding=1, groups=2)
        self.fc = nn.Linear(6, 3)

    def forward(self, x):
        x = self.act(self.up(self.encoder(x)))
        x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
        x = F.interpolate(self.refine(x), size=(12, 20), mode="nearest")
        x = F.interpolate(x, scale_factor=1.5, mode="bilinear", align_corners=True)
        return self.fc(x.mean((2, 3)))


# name -> (constructor, input size, module path whose output is the cut, legacy opset)
MODELS = {
    "resnet_like": (ResNetLike, 32, "layer2", 13),
    "depthwise_se": (DepthwiseSE, 32, "se", 17),
    "shuffle_concat": (ShuffleConcat, 16, "mix", 15),
    "tiny_vit": (TinyViT, 32, "blocks", 13),
    "tf_padding": (TfPadding, 17, "conv2", 17),
    "tiny_swin": (TinySwin, 16, "stage", 17),
    "upsample_head": (UpsampleHead, 16, "encoder", 17),
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


def originals():
    """Yields (name, model, x) for every model: the PyTorch original and its fixture input,
    made by the same calls, in the same order, as main() makes before each export (torch is
    seeded on import), and checked against the stored input and logits."""
    for name, (make, size, _module, _opset) in MODELS.items():
        model = make()
        randomize_norms(model)
        model.eval()
        x = torch.randn(2, 3, size, size)
        stored = np.load(f"{OUT}/{name}.input.npy")
        assert np.array_equal(stored, x.numpy()), f"{name}: not the fixture's input"
        with torch.no_grad():
            logits = model(x).numpy()
        ort_logits = np.load(f"{OUT}/{name}.dynamo.logits.npy")
        assert np.abs(logits - ort_logits).max() < 1e-5, f"{name}: not the exported weights"
        yield name, model, x


def main(only=None):
    """Makes every model (or those in `only`, keeping the manifest's other entries)."""
    os.makedirs(OUT, exist_ok=True)
    manifest = {"class": CLASS, "models": {}}
    if only:
        with open(f"{OUT}/manifest.json") as f:
            manifest = json.load(f)
    for name, (make, size, module, opset) in MODELS.items():
        if only and name not in only:
            continue
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
    if not only:
        manifest["single_ops"] = make_single_ops()
        make_head_models()
    with open(f"{OUT}/manifest.json", "w") as f:
        json.dump(manifest, f, indent=1, sort_keys=True)
        f.write("\n")


# Single-operator models: (case, op_type, input shape, constant inputs (name -> array, or None for
# an absent optional input), attributes, opset). The float input `x` is random; the constants
# are initializers, as exporters write them.
def f32(*shape, lo=-1.0, hi=1.0):
    return np.random.default_rng(sum(shape) + len(shape)).uniform(lo, hi, shape).astype(np.float32)


def i64(*values):
    return np.array(values, dtype=np.int64)


SINGLE_OPS = [
    ("pad_reflect", "Pad", (1, 2, 4, 5), {"pads": i64(0, 0, 1, 2, 0, 0, 2, 1)}, {"mode": "reflect"}, 13),
    ("pad_edge_axes", "Pad", (1, 2, 4, 5), {"pads": i64(1, -1, 0, 2), "value": None, "axes": i64(3, 2)}, {"mode": "edge"}, 18),
    ("pad_constant", "Pad", (1, 2, 3, 3), {"pads": i64(0, 0, 1, 0, 0, 0, 0, 2), "value": np.array(0.5, np.float32)}, {}, 13),
    ("slice_steps", "Slice", (3, 8, 5), {"starts": i64(-1, 1), "ends": i64(-100, 7), "axes": i64(1, 2), "steps": i64(-2, 3)}, {}, 13),
    ("split_sizes", "Split", (2, 7, 3), {"split": i64(2, 5)}, {"axis": 1}, 13),
    ("split_uneven", "Split", (2, 7, 3), {}, {"axis": 1, "num_outputs": 3}, 18),
    ("tile", "Tile", (2, 3), {"repeats": i64(2, 3)}, {}, 13),
    ("gather_axis1", "Gather", (2, 5, 3), {"indices": i64(4, -1, 0, 2).reshape(2, 2)}, {"axis": 1}, 13),
    ("transpose_5d", "Transpose", (2, 3, 4, 1, 5), {}, {"perm": [4, 0, 2, 1, 3]}, 13),
    ("squeeze", "Squeeze", (1, 3, 1, 4), {"axes": i64(2, 0)}, {}, 13),
    ("reduce_max_18", "ReduceMax", (2, 3, 4), {"axes": i64(-1)}, {"keepdims": 0}, 18),
    ("reduce_sum_13", "ReduceSum", (2, 3, 4), {"axes": i64(0, 2)}, {}, 13),
    ("reduce_mean_attr", "ReduceMean", (2, 3, 4), {}, {"axes": [1], "keepdims": 0}, 13),
    ("log_softmax_axis1", "LogSoftmax", (2, 4, 3), {}, {"axis": 1}, 13),
    ("gelu_tanh", "Gelu", (3, 7), {}, {"approximate": "tanh"}, 20),
    ("elu", "Elu", (3, 7), {}, {"alpha": 0.7}, 13),
    ("softplus", "Softplus", (3, 7), {}, {}, 13),
    ("prelu_channels", "PRelu", (2, 3, 2, 2), {"slope": f32(3, 1, 1)}, {}, 13),
    ("matmul_vector", "MatMul", (2, 3, 4), {"b": f32(4)}, {}, 13),
    ("matmul_broadcast", "MatMul", (2, 1, 3, 4), {"b": f32(3, 4, 5)}, {}, 13),
    ("gemm_trans", "Gemm", (4, 3), {"b": f32(5, 4), "c": f32(5)}, {"transA": 1, "transB": 1, "alpha": 0.5, "beta": 2.0}, 13),
    ("maxpool_ceil_asym", "MaxPool", (1, 2, 7, 6), {}, {"kernel_shape": [3, 2], "strides": [2, 2], "pads": [1, 0, 0, 1], "ceil_mode": 1}, 13),
    ("maxpool_same", "MaxPool", (1, 2, 7, 6), {}, {"kernel_shape": [3, 3], "strides": [2, 2], "auto_pad": "SAME_UPPER"}, 13),
    ("avgpool_include_pad", "AveragePool", (1, 2, 6, 6), {}, {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1], "count_include_pad": 1}, 13),
    ("avgpool_exclude_pad", "AveragePool", (1, 2, 6, 6), {}, {"kernel_shape": [3, 3], "strides": [1, 1], "pads": [1, 1, 1, 1]}, 13),
    ("conv_same_lower", "Conv", (1, 4, 9, 8), {"w": f32(6, 2, 3, 3)}, {"group": 2, "auto_pad": "SAME_LOWER", "strides": [2, 1]}, 13),
    ("conv_dilated", "Conv", (1, 4, 9, 8), {"w": f32(6, 2, 3, 3)}, {"group": 2, "dilations": [2, 1], "pads": [2, 1, 2, 1]}, 13),
    ("conv_asym_pads", "Conv", (2, 3, 6, 7), {"w": f32(4, 3, 2, 3), "b": f32(4)}, {"pads": [0, 2, 1, 0], "strides": [1, 2]}, 13),
    ("batchnorm", "BatchNormalization", (2, 3, 2, 2), {"scale": f32(3, lo=0.5, hi=1.5), "bias": f32(3), "mean": f32(3), "var": f32(3, lo=0.5, hi=1.5)}, {"epsilon": 1e-3}, 13),
    ("layernorm_axis", "LayerNormalization", (2, 3, 4), {"scale": f32(3, 4), "bias": f32(3, 4)}, {"axis": -2}, 17),
    ("hardsigmoid", "HardSigmoid", (3, 7), {}, {"alpha": 0.3, "beta": 0.4}, 13),
    ("clip_min_only", "Clip", (3, 7), {"min": np.array(-0.2, np.float32)}, {}, 13),
    ("where_float", "Where", (2, 3), {"cond": np.array([[1, 0, 1]], bool), "x": None, "other": f32(2, 1)}, {}, 13),
    ("pow_tensor", "Pow", (2, 3), {"e": np.array([1.0, 2.0, 3.0], np.float32)}, {}, 13),
    ("max_variadic", "Max", (2, 3), {"b": f32(3), "c": f32(2, 1)}, {}, 13),
    # ScatterND: slices (Swin's mask, legacy export), single elements with a negative index, and
    # the float input as the updates.
    ("scatternd_slices", "ScatterND", (3, 4, 5), {"indices": i64(2, 0).reshape(2, 1), "updates": f32(2, 4, 5)}, {}, 13),
    ("scatternd_elements", "ScatterND", (3, 4, 5), {"indices": i64(0, 1, 2, -1, 1, 3).reshape(3, 2), "updates": f32(3, 5)}, {}, 16),
    ("scatternd_updates", "ScatterND", (2, 2, 5), {"data": f32(4, 2, 5), "indices": i64(3, 1).reshape(2, 1), "x": None}, {}, 18),
    # Resize: torch's nearest (asymmetric, floor) and bilinear (pytorch_half_pixel or
    # align_corners), and the other coordinate and rounding modes, up and down.
    ("resize_nearest_torch", "Resize", (1, 2, 3, 4), {"roi": None, "scales": np.array([1, 1, 2, 1.5], np.float32)}, {"mode": "nearest", "coordinate_transformation_mode": "asymmetric", "nearest_mode": "floor"}, 13),
    ("resize_nearest_half_pixel", "Resize", (1, 2, 5, 4), {"roi": None, "scales": None, "sizes": i64(1, 2, 3, 7)}, {"mode": "nearest"}, 13),
    ("resize_nearest_tf_ceil", "Resize", (1, 2, 5, 4), {"roi": None, "scales": None, "sizes": i64(1, 2, 8, 3)}, {"mode": "nearest", "coordinate_transformation_mode": "tf_half_pixel_for_nn", "nearest_mode": "ceil"}, 13),
    ("resize_nearest_prefer_ceil", "Resize", (1, 1, 4, 6), {"roi": None, "scales": np.array([1, 1, 0.5, 2.5], np.float32)}, {"mode": "nearest", "coordinate_transformation_mode": "align_corners", "nearest_mode": "round_prefer_ceil"}, 13),
    ("resize_linear_half_pixel", "Resize", (2, 2, 3, 4), {"roi": None, "scales": np.array([1, 1, 2, 2], np.float32)}, {"mode": "linear"}, 13),
    ("resize_linear_pytorch", "Resize", (1, 2, 4, 5), {"roi": None, "scales": None, "sizes": i64(1, 2, 1, 9)}, {"mode": "linear", "coordinate_transformation_mode": "pytorch_half_pixel"}, 13),
    ("resize_linear_align_corners", "Resize", (1, 2, 4, 5), {"roi": None, "scales": None, "sizes": i64(1, 2, 7, 3)}, {"mode": "linear", "coordinate_transformation_mode": "align_corners"}, 13),
    ("resize_linear_down_asymmetric", "Resize", (1, 2, 6, 7), {"roi": None, "scales": np.array([1, 1, 0.6, 0.5], np.float32)}, {"mode": "linear", "coordinate_transformation_mode": "asymmetric"}, 13),
    ("resize_cubic_torch", "Resize", (1, 2, 4, 5), {"roi": None, "scales": None, "sizes": i64(1, 2, 7, 8)}, {"mode": "cubic", "coordinate_transformation_mode": "pytorch_half_pixel", "cubic_coeff_a": -0.75}, 13),
    ("resize_cubic_exclude_outside", "Resize", (1, 2, 5, 4), {"roi": None, "scales": np.array([1, 1, 1.6, 0.75], np.float32)}, {"mode": "cubic", "cubic_coeff_a": -0.5, "exclude_outside": 1}, 13),
    ("resize_axes_symmetric", "Resize", (1, 2, 4, 5), {"roi": None, "scales": None, "sizes": i64(8, 3)}, {"mode": "linear", "axes": [3, 2], "coordinate_transformation_mode": "half_pixel_symmetric"}, 19),
    # ConvTranspose: torch's (symmetric pads, output padding), groups with dilation and uneven
    # pads, output_shape, SAME_LOWER, and output padding past uneven pads.
    ("convt_torch", "ConvTranspose", (2, 4, 3, 4), {"w": f32(4, 3, 3, 3), "b": f32(3)}, {"strides": [2, 2], "pads": [1, 1, 1, 1], "output_padding": [1, 1]}, 13),
    ("convt_groups_dilated", "ConvTranspose", (1, 4, 3, 4), {"w": f32(4, 2, 3, 2)}, {"group": 2, "dilations": [2, 1], "pads": [0, 1, 1, 0], "strides": [1, 2]}, 13),
    ("convt_output_shape", "ConvTranspose", (1, 4, 3, 4), {"w": f32(4, 3, 3, 3), "b": f32(3)}, {"strides": [2, 2], "output_shape": [6, 9]}, 13),
    ("convt_same_lower", "ConvTranspose", (1, 4, 3, 4), {"w": f32(4, 3, 3, 3)}, {"strides": [2, 1], "auto_pad": "SAME_LOWER"}, 13),
    # Einsum: MaxViT's relative-position term, batched products, implicit output, sums.
    ("einsum_maxvit", "Einsum", (2, 3, 4, 5), {"b": f32(6, 7, 5)}, {"equation": "nixw,jyw->nijxy"}, 13),
    ("einsum_batched", "Einsum", (2, 3, 4), {"b": f32(2, 4, 5)}, {"equation": "bij,bjk->bik"}, 13),
    ("einsum_implicit", "Einsum", (3, 4, 5), {"b": f32(5, 2)}, {"equation": "ijk,kl"}, 13),
    ("einsum_single", "Einsum", (3, 4, 5), {}, {"equation": "ijk->ki"}, 13),
    ("einsum_sums", "Einsum", (3, 4), {"b": f32(5, 2)}, {"equation": "ij, kl -> jk"}, 13),
    ("convt_outpad_uneven", "ConvTranspose", (1, 4, 3, 4), {"w": f32(4, 3, 3, 2), "b": f32(3)}, {"strides": [2, 3], "pads": [1, 0, 0, 2], "output_padding": [1, 2]}, 13),
]


def single_op_model(op_type, shape, consts, attrs, opset):
    """One node on the float input `x` and the constants."""
    from onnx import helper, numpy_helper, TensorProto

    inits = []
    # `x` is first unless the constants name its place (Where's condition, ScatterND's updates).
    names = list(consts) if "x" in consts else ["x"] + list(consts)
    for name, value in consts.items():
        if value is None:
            continue
        inits.append(numpy_helper.from_array(value, name))
    inputs = [n if n == "x" or consts.get(n) is not None else "" for n in names]
    outputs = ["y"]
    if op_type == "Split":
        outputs = ["y0", "y1"] if "split" in consts else ["y0", "y1", "y2"]
    node = helper.make_node(op_type, inputs, outputs, **attrs)
    graph = helper.make_graph(
        [node], op_type, [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(shape))],
        [helper.make_tensor_value_info(o, TensorProto.FLOAT, None) for o in outputs], initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 9
    return model, outputs


def make_single_ops():
    os.makedirs(f"{OUT}/ops", exist_ok=True)
    cases = []
    for case, op_type, shape, consts, attrs, opset in SINGLE_OPS:
        model, outputs = single_op_model(op_type, shape, consts, attrs, opset)
        path = f"{OUT}/ops/{case}.onnx"
        onnx.save(model, path)
        x = f32(*shape, lo=-2.0, hi=2.0)
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        sess = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
        ys = sess.run(None, {"x": x})
        np.save(f"{OUT}/ops/{case}.x.npy", x)
        for name, y in zip(outputs, ys):
            np.save(f"{OUT}/ops/{case}.{name}.npy", y.astype(np.float32))
        # Affine in x: the test checks autodiff's gradient against exact finite differences.
        affine = op_type in ("ScatterND", "Resize", "ConvTranspose", "Einsum")
        cases.append({"case": case, "outputs": outputs, "affine": affine})
        print("op", case, [y.shape for y in ys])
    return cases


def make_head_models():
    """`ops/head_<kind>.onnx`: x (1, 3, 4, 4) -> global average pooling -> a linear layer, the
    forms tf2onnx and exporters write (GlobalAveragePool + Squeeze + MatMul + Add; ReduceMean +
    Reshape + Gemm with alpha and without transB), and `ops/head_<kind>.w.npy`: the classifier
    `[classes, channels]` that CAM should find (alpha applied)."""
    from onnx import helper, numpy_helper, TensorProto

    w = f32(3, 2)  # [channels, classes], as MatMul and Gemm without transB read it
    heads = {
        "matmul": ([helper.make_node("GlobalAveragePool", ["x"], ["p"]),
                    helper.make_node("Squeeze", ["p", "sq"], ["f"]),
                    helper.make_node("MatMul", ["f", "w"], ["m"]),
                    helper.make_node("Add", ["m", "b"], ["y"])],
                   [numpy_helper.from_array(i64(2, 3), "sq")], 1.0),
        "gemm": ([helper.make_node("ReduceMean", ["x"], ["p"], axes=[-1, 2], keepdims=1),
                  helper.make_node("Reshape", ["p", "shape"], ["f"]),
                  helper.make_node("Gemm", ["f", "w", "b"], ["y"], alpha=0.5)],
                 [numpy_helper.from_array(i64(1, 3), "shape")], 0.5),
    }
    for kind, (nodes, extra, alpha) in heads.items():
        inits = [numpy_helper.from_array(w, "w"), numpy_helper.from_array(f32(2), "b")] + extra
        graph = helper.make_graph(nodes, kind, [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 4, 4])],
                                  [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], initializer=inits)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
        model.ir_version = 9
        path = f"{OUT}/ops/head_{kind}.onnx"
        onnx.save(model, path)
        # The weights are what the graph computes: onnxruntime against mean(x) @ w * alpha + b.
        x = f32(1, 3, 4, 4)
        y = ort.InferenceSession(path, providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
        assert np.abs(y - (alpha * x.mean((2, 3)) @ w + f32(2))).max() < 1e-6, kind
        np.save(f"{OUT}/ops/head_{kind}.w.npy", np.ascontiguousarray(alpha * w.T, dtype=np.float32))


if __name__ == "__main__" and "--heads-only" in sys.argv:
    make_head_models()


if __name__ == "__main__" and "--ops-only" in sys.argv:
    with open(f"{OUT}/manifest.json") as f:
        manifest = json.load(f)
    manifest["single_ops"] = make_single_ops()
    with open(f"{OUT}/manifest.json", "w") as f:
        json.dump(manifest, f, indent=1, sort_keys=True)
        f.write("\n")


if __name__ == "__main__" and "--ops-only" not in sys.argv and "--heads-only" not in sys.argv:
    # `--only a,b`: remake those models only (models with their own seed remake identically).
    only = sys.argv[sys.argv.index("--only") + 1].split(",") if "--only" in sys.argv else None
    main(only)
