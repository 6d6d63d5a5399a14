"""Reference values for ROAD's noisy linear imputation, from pytorch-grad-cam itself.

Run from the repository root:  .venv/bin/python tools/make_road_fixture.py

Writes tests/fixtures/road/: a small normalised image (3 x 9 x 11), a map (9 x 11, with ties),
and for each case the image that pytorch-grad-cam's ROAD perturbation returns with the noise
switched off (NoisyLinearImputer(noise=0)):

- `road.keep_hand.npy` / `road.imputed_hand.npy`: a hand-drawn mask (1 = kept) and its imputation;
- `road.morf.p<P>.npy`: RemoveMostRelevantFirst(P, imputer)(image, map);
- `road.lerf.p<P>.npy`: RemoveLeastRelevantFirst(P, imputer)(image, map);

for P in 20, 50, 80 (pytorch-grad-cam's percentile: the share of pixels KEPT). tests/eval.rs
compares gradcam's `perturb::road_keep` and `perturb::impute` with them.

And one case at the network's size, 224 x 224 (where gradcam's solver uses its multigrid; 9 x 11
is below its coarsest level), kept compact (tests/road_imputation.rs reads it):

- `road224.image.u8.npy`: [3,224,224] uint8, a smooth synthetic picture with texture; the
  normalised image is `(u8 / 255 - mean) / std` in float32 with ImageNet's statistics;
- `road224.keep.bits.npy`: the mask (1 = kept), `np.packbits` of its 224 * 224 raster values;
  the 25 % most relevant pixels of a three-blob map removed, as RemoveMostRelevantFirst(75, ..);
- `road224.imputed.npy`: [3, M] float32, NoisyLinearImputer(noise=0)'s values at the M removed
  pixels, in raster order.

Deterministic (fixed seeds, no noise).
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

# ---- 224 x 224: the multigrid path ----
MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)
rng = np.random.default_rng(20261201)
S = 224
yy, xx = np.mgrid[0:S, 0:S].astype(np.float64) / S
picture = np.stack(
    [
        0.5 + 0.3 * np.sin(6.0 * xx + 2.0 * yy) + 0.15 * np.cos(11.0 * yy),
        0.4 + 0.35 * np.cos(4.0 * xx * yy + 3.0 * xx),
        0.5 + 0.25 * np.sin(9.0 * (xx - yy)) * np.cos(3.0 * xx),
    ]
) + rng.normal(scale=0.06, size=(3, S, S))
image_u8 = np.clip(np.round(picture * 255.0), 0, 255).astype(np.uint8)
image = (image_u8.astype(np.float32) / np.float32(255.0) - MEAN[:, None, None]) / STD[:, None, None]
image = image.astype(np.float32)
blobs = [((0.3, 0.35), 0.012), ((0.6, 0.7), 0.02), ((0.8, 0.2), 0.006)]
cam = sum(np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / s2) for (cy, cx), s2 in blobs)
cam = cam + rng.uniform(0.0, 0.05, size=cam.shape)  # ragged edges
cam = ((cam - cam.min()) / (cam.max() - cam.min())).astype(np.float32)
keep224 = (cam < np.percentile(cam, 75)).astype(np.float32)  # pytorch-grad-cam's MoRF rule
out = NoisyLinearImputer(noise=0.0)(torch.from_numpy(image), torch.from_numpy(keep224))
removed = keep224.reshape(-1) == 0
imputed = np.ascontiguousarray(out.numpy().reshape(3, -1)[:, removed], dtype=np.float32)
np.save(f"{OUT}/road224.image.u8.npy", image_u8)
np.save(f"{OUT}/road224.keep.bits.npy", np.packbits(keep224.reshape(-1).astype(np.uint8)))
np.save(f"{OUT}/road224.imputed.npy", imputed)
print("224: removed", int(removed.sum()), "of", S * S, "imputed range", imputed.min(), imputed.max())
