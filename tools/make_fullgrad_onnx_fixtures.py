"""FullGrad fixtures for ONNX classifiers (tests/onnx_cams.rs): pytorch-grad-cam 1.5.7's
FullGrad (every Conv2d with a bias and every BatchNorm2d) on the PyTorch originals of the
CNNs in tests/fixtures/onnx, for their two fixture images and each image's top class.

Run by hand from the repository root with the bench venv (torch, grad-cam 1.5.7):
    /work/main/bench/.venv/bin/python tools/make_fullgrad_onnx_fixtures.py
Writes tests/fixtures/onnx/cams/<name>.fullgrad.npy ([2, H, W]) and prints, per model, the
layers FullGrad takes its bias terms from. Both exporters fold a batch norm into the
convolution before it, so where that convolution has a bias of its own (depthwise_se's stem
and dw) the graph has one bias term where the PyTorch model has two: `<name>.fullgrad.folded.npy`
is FullGrad on the PyTorch model with those pairs folded (torch's `fuse_conv_bn_eval`), the
function the graph computes.
"""

import os
import sys
from pathlib import Path

import torch
import torch.nn as nn

sys.path.insert(0, os.path.dirname(__file__))
import make_fixtures  # noqa: E402  (its FullGrad runner)
import make_onnx_fixtures as fx  # noqa: E402  (seeds torch on import, as its own run does)

OUT = Path(fx.OUT) / "cams"
# The convolutional fixtures (the transformers' maps would come from their patch embedding
# alone: FullGrad takes no LayerNorm). tf_padding is left out: its convolutions are a subclass
# of nn.Conv2d (timm's Conv2dSame), which FullGrad's exact type check skips.
MODELS = ["resnet_like", "depthwise_se", "shuffle_concat"]


def layer_with_2d_bias(m):
    """FullGrad's own test: the exact types, not subclasses."""
    return type(m) in (nn.Conv2d, nn.BatchNorm2d) and m.bias is not None


def fold_biased_conv_bn(model):
    """A copy of `model` with every (Conv2d with a bias, BatchNorm2d) pair of a Sequential
    folded into one convolution, as the exporters do."""
    import copy
    from torch.nn.utils.fusion import fuse_conv_bn_eval
    model = copy.deepcopy(model)
    folded = False
    for seq in model.modules():
        if not isinstance(seq, nn.Sequential):
            continue
        for i in range(len(seq) - 1):
            conv, bn = seq[i], seq[i + 1]
            if type(conv) is nn.Conv2d and conv.bias is not None and type(bn) is nn.BatchNorm2d:
                seq[i], seq[i + 1] = fuse_conv_bn_eval(conv, bn), nn.Identity()
                folded = True
    return model if folded else None


def main() -> None:
    w = make_fixtures.Writer(OUT)
    for name, model, x in fx.originals():
        if name not in MODELS:
            continue
        biased = [n for n, m in model.named_modules() if layer_with_2d_bias(m)]
        print(f"== {name}: bias terms from {', '.join(biased)}")
        w.npy(f"{name}.fullgrad.npy", make_fixtures.full_grad(model, x))
        folded = fold_biased_conv_bn(model)
        if folded is not None:
            biased = [n for n, m in folded.named_modules() if layer_with_2d_bias(m)]
            print(f"   folded: bias terms from {', '.join(biased)}")
            w.npy(f"{name}.fullgrad.folded.npy", make_fixtures.full_grad(folded, x))
    for f in w.files:
        print("wrote", f)


if __name__ == "__main__":
    main()
