"""Deep Feature Factorization fixtures for ONNX classifiers (tests/dff.rs): pytorch-grad-cam
1.5.7's DeepFeatureFactorization on the PyTorch originals of tests/fixtures/onnx's
`resnet_like` and `depthwise_se` (their GAP + linear heads as `computation_on_concepts`), its
NMF started from our seeded noise as in tools/make_fixtures.py.

Run by hand from the repository root with the bench venv (torch, grad-cam 1.5.7, scikit-learn):
    /work/main/bench/.venv/bin/python tools/make_dff_onnx_fixtures.py
Writes tests/fixtures/onnx/cams/{resnet_like,depthwise_se}.dff.{concepts,maps,scores}.npy.
"""

import os
import sys
from pathlib import Path


sys.path.insert(0, os.path.dirname(__file__))
import make_fixtures  # noqa: E402  (its DFF runner and seeded NMF start)
import make_onnx_fixtures as fx  # noqa: E402  (seeds torch on import, as its own run does)

OUT = Path(fx.OUT) / "cams"
# The layer each model is explained at and its classifier (torchcam's CAM fixtures' choice).
DFF = {"resnet_like": ("layer2", "fc"), "depthwise_se": ("dw2", "head")}


def main() -> None:
    w = make_fixtures.Writer(OUT)
    for name, model, x in fx.originals():
        if name not in DFF:
            continue
        layer, fc = DFF[name]
        print(f"== {name} at {layer}, concepts scored by {fc}")
        make_fixtures.dff(w, name, model, model.get_submodule(layer), x, model.get_submodule(fc))
    for f in w.files:
        print("wrote", f)


if __name__ == "__main__":
    main()
