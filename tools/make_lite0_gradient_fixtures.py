"""Makes tests/fixtures/lite0/both.grad.blocks11.*: PyTorch float64 gradients of Lite0's
class-243 logit with respect to the output of `blocks.11`, on `lite0/both.input.npy`.

Run by hand from the repository root:
    bench/.venv/bin/python tools/make_lite0_gradient_fixtures.py [--weights FILE.pth]

A ReLU6 passes no gradient at or below 0, so a unit whose pre-activation lies within float32
rounding of 0 (or 6) passes or blocks its gradient depending on the order of the additions
that made it. On this input a few units of the head lie within 1e-6 of a bound; float32
(PyTorch's or ours) may land on either side, and the gradient at `blocks.11` changes by ~1e-2
of its largest value when one does. This script finds those units (|pre-activation - bound| <
1e-6 in the blocks after `blocks.11`) and saves the float64 gradient for every combination of
them passing or blocking that changes the result: `both.grad.blocks11.npy`, shape
(variants, 192, 7, 7), variant 0 being
float64's own masks, and `both.grad.blocks11.json`, the units switched in each variant.
tests/lite0.rs asserts that our gradient equals one of the variants to float32 precision.
"""
import argparse
import itertools
import json
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT.parent / "shared" / "tools"))
from lite0_torch import load_effnet_lite0  # noqa: E402

LAYER = 11  # the gradient is taken at the output of blocks.LAYER
CLASS = 243
NEAR = 1e-6


def run(model, x, switched=()):
    """Forward from the input, the gradient of the class logit at blocks.LAYER's output, and
    every ReLU6 pre-activation after it. `switched` lists (block, stage, unit) whose ReLU6
    gradient is flipped (pass <-> block); their forward values are unchanged."""
    pre = []

    def relu6(p, block, stage):
        y = F.relu6(p)
        pre.append(((block, stage), p.detach()))
        for b, s, unit in switched:
            if (b, s) == (block, stage):
                at = (0, *unit)
                mask = torch.ones_like(p)
                mask[at] = 0.0
                # The same value with the other gradient: 0 where it passed, 1 where it did not.
                passes = 0.0 < p[at].item() < 6.0
                other = y.detach() if passes else p - p.detach() + y.detach()
                y = y * mask + other * (1 - mask)
        return y

    h = F.relu6(model._bn0(model._conv_stem(x)))
    for i, block in enumerate(model._blocks):
        if i == LAYER + 1:
            h = h.detach().requires_grad_()
            cut = h
        y = h
        if block.expand:
            y = relu6(block._bn0(block._expand_conv(y)), i, "expand")
        y = relu6(block._bn1(block._depthwise_conv(y)), i, "depthwise")
        y = block._bn2(block._project_conv(y))
        h = y + h if block.skip else y
    h = relu6(model.head.bn(model.head.conv(h)), len(model._blocks), "head")
    logits = model._fc(h.mean(dim=(2, 3)))
    logits[0, CLASS].backward()
    return cut.grad[0].numpy(), [(k, p) for k, p in pre if k[0] > LAYER]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--weights", default=str(Path.home() / ".cache/gradcam/efficientnet-lite0-57934424.pth"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    model = load_effnet_lite0(args.weights).double()
    x = torch.from_numpy(np.load(ROOT / "tests/fixtures/lite0/both.input.npy")).double()

    _, pre = run(model, x)
    near = []
    for (block, stage), p in pre:
        for bound in (0.0, 6.0):
            for unit in np.argwhere(np.abs(p[0].numpy() - bound) < NEAR):
                value = p[(0, *unit)].item()
                near.append((block, stage, tuple(int(u) for u in unit)))
                print(f"block {block} {stage} unit {tuple(int(u) for u in unit)}: "
                      f"pre-activation {value:.3e} (bound {bound})")
    variants, grads = [], []
    for n in range(len(near) + 1):
        for switched in itertools.combinations(near, n):
            grad, _ = run(model, x, switched)
            grad = grad.astype(np.float32)
            if any(np.array_equal(grad, g) for g in grads):
                print(f"switching {switched} gives the gradient of an earlier variant")
                continue
            grads.append(grad)
            variants.append([{"block": b, "stage": s, "unit": list(u)} for b, s, u in switched])
    out = ROOT / "tests/fixtures/lite0"
    np.save(out / "both.grad.blocks11.npy", np.stack(grads))
    (out / "both.grad.blocks11.json").write_text(json.dumps(
        {"layer": f"blocks.{LAYER}", "class": CLASS, "torch": torch.__version__,
         "variants": variants}, indent=1) + "\n")
    base = grads[0]
    for v, g in zip(variants, grads):
        print(f"variant {v}: differs from float64's masks by "
              f"{np.abs(g - base).max() / np.abs(base).max():.2e} of the largest gradient")


if __name__ == "__main__":
    main()
