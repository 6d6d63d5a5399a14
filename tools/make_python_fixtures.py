#!/usr/bin/env python3
"""Reference maps for python/tests/test_options.py: pytorch-grad-cam 1.5.7 on EfficientNet-Lite0
with the options and targets the Lite0 fixtures of tools/make_fixtures.py do not cover.

Run by hand from the repository root, with the venv that runs tools/make_fixtures.py:

    /work/main/bench/.venv/bin/python tools/make_python_fixtures.py [--lite0-weights PATH]

Input: the two Lite0 reference inputs (tests/fixtures/lite0/{cat_dog,both}.input.npy), each
subsampled by 2, so a (2, 3, 112, 112) batch (Lite0's `head`
is then 4x4, `blocks.15` 7x7): small files, and an input size the model was not built for.
Targets: the top-1 class of each image (from the logits on this input) unless said otherwise.
Writes tests/fixtures/python/lite0_112.*.npy (float32); reuses tools/make_fixtures.py's Lite0
loading, eigen sign rule and counterfactual target.
"""
import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
import make_fixtures as mf  # noqa: E402  (torch on one thread, deterministic; the sign rule)

import numpy as np  # noqa: E402
import torch  # noqa: E402
from pytorch_grad_cam import GradCAM, GradCAMPlusPlus  # noqa: E402
from pytorch_grad_cam.utils.model_targets import (  # noqa: E402
    ClassifierOutputSoftmaxTarget,
    ClassifierOutputTarget,
)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shared", default=str(ROOT.parent / "shared"))
    ap.add_argument("--lite0-weights", default=str(Path.home() / ".cache/gradcam/efficientnet-lite0-57934424.pth"))
    args = ap.parse_args()
    mf.install_sign_rule()
    sys.path.insert(0, str(Path(args.shared) / "tools"))
    from lite0_torch import load_effnet_lite0

    model = load_effnet_lite0(str(mf.lite0_weights(args.lite0_weights)))
    fixtures = ROOT / "tests" / "fixtures"
    x = np.concatenate([np.load(fixtures / "lite0" / f"{i}.input.npy") for i in ("cat_dog", "both")])
    x = np.ascontiguousarray(x[:, :, ::2, ::2])
    xt = torch.from_numpy(x)
    with torch.no_grad():
        logits = model(xt).numpy()
    top = [int(c) for c in logits.argmax(1)]
    print("top-1 on the 112x112 input:", top)
    w = mf.Writer(fixtures / "python")
    w.npy("lite0_112.input.npy", x)
    w.npy("lite0_112.logits.npy", logits)
    head, blocks15 = [model.head], [model._blocks[15]]
    cases = {
        "gradcam-softmax": (GradCAM, head, [ClassifierOutputSoftmaxTarget(c) for c in top], {}),
        "gradcam-counterfactual": (GradCAM, head, [mf.NegatedLogitTarget(c) for c in top], {}),
        # Targets fixed: with None, pytorch-grad-cam would re-pick each augmented copy's argmax.
        "gradcam-augsmooth": (GradCAM, head, [ClassifierOutputTarget(c) for c in top], {"aug_smooth": True}),
        "gradcam-eigensmooth": (GradCAM, head, None, {"eigen_smooth": True}),
        "gradcam++.blocks.15+head": (GradCAMPlusPlus, blocks15 + head, None, {}),
    }
    for name, (cls, layers, targets, kw) in cases.items():
        m = mf.run_cam(cls, model, layers, xt, targets=targets, **kw)
        w.check_map(name, m)
        w.npy(f"lite0_112.{name}.npy", m)
    for p in w.files:
        print(f"   {p.stat().st_size:>8}  {p.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
