"""Reference values for ROAD's noisy linear imputation, from pytorch-grad-cam itself.

Run from the repository root:  .venv/bin/python tools/make_road_fixture.py

Writes tests/fixtures/road/: a small normalised image (3 x 9 x 11), a map (9 x 11, with ties),
and for each case the image that pytorch-grad-cam's ROAD perturbation returns with the noise
switched off (NoisyLinearImputer(noise=0)):

- `road.keep_hand.npy` / `road.imputed_hand.npy`: a hand-drawn mask (1 = kept) and its imputation;
- `road.morf.p<P>.npy`: RemoveMostRelevantFirst(P, imputer)(image, map);
- `road.lerf.p<P>.npy`: RemoveLeastRelevantFirst(P, imputer)(image, map);

for P in 20, 50, 80 (pytorch-grad-cam's percentile: the share of pixels KEPT). tests/eval.rs
compares gradcam's `perturb::road_keep` and `perturb::impute` with them. Deterministic (fixed seed).
"""
import os

import numpy as np
import torch
from pytorch_grad_cam.metrics.road import NoisyLinearImputer
from pytorch_grad_cam.metrics.perturbation_confidence import (
    RemoveLeastRelevantFirst,
    RemoveMostRelevantFirst,
)

OUT = "tests/fixtures/road"
os.makedirs(OUT, exist_ok=True)
rng = np.random.default_rng(20240601)
C, H, W = 3, 9, 11
image = rng.normal(size=(C, H, W)).astype(np.float32)
# A map with a bright blob, a plateau of exact zeros (ties) and values in [0, 1].
yy, xx = np.mgrid[0:H, 0:W]
cam = np.exp(-((yy - 3.0) ** 2 + (xx - 7.0) ** 2) / 8.0)
cam = np.where(cam < 0.05, 0.0, cam)
cam = (cam - cam.min()) / (cam.max() - cam.min())
cam = cam.astype(np.float32)
np.save(f"{OUT}/road.image.npy", image)
np.save(f"{OUT}/road.map.npy", cam)

imputer = NoisyLinearImputer(noise=0.0)
keep = np.ones((H, W), dtype=np.float32)
keep[2:6, 3:9] = 0  # an inner block
keep[0, 0:3] = 0  # a piece of the border
keep[8, 10] = 0  # a corner
np.save(f"{OUT}/road.keep_hand.npy", keep)
out = imputer(torch.from_numpy(image), torch.from_numpy(keep))
np.save(f"{OUT}/road.imputed_hand.npy", out.numpy().astype(np.float32))

for p in (20, 50, 80):
    morf = RemoveMostRelevantFirst(p, imputer)(torch.from_numpy(image), torch.from_numpy(cam))
    lerf = RemoveLeastRelevantFirst(p, imputer)(torch.from_numpy(image), torch.from_numpy(cam))
    np.save(f"{OUT}/road.morf.p{p}.npy", morf.numpy().astype(np.float32))
    np.save(f"{OUT}/road.lerf.p{p}.npy", lerf.numpy().astype(np.float32))
    print(p, "morf removed", int((morf != torch.from_numpy(image)).any(0).sum()),
          "lerf removed", int((lerf != torch.from_numpy(image)).any(0).sum()))
print("written to", OUT)
