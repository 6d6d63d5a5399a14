#!/usr/bin/env python3
"""pytorch-grad-cam over a whole directory of images: the Python side of the dataset benchmark
(`gradcam explain DIR` is the Rust side; bench/dataset.sh runs the two alternately).

    dataset_loop.py IMAGES_DIR OUT_DIR [--weights LITE0.pth] [--batch-size B] [--threads T]
                    [--limit N]

For each image (walked recursively, *.jpg/jpeg/png/bmp/webp in any case, sorted), as
`gradcam explain` does by default: PIL load and convert to RGB, resize to 224x224 (bilinear),
normalise as EfficientNet-Lite0 wants ((x*255-127)/128), Grad-CAM at `model.head` for the
top-1 class (pytorch-grad-cam 1.5.x, B images per call), top-5 with softmax probabilities, the
map resized to the image (cv2.resize), show_cam_on_image, cv2.imwrite JPEG q95, np.save of the
224x224 map, and a small JSON. A file that fails to load is counted and skipped.

Prints one JSON line: images, errors, load_s (model), loop_s, images_per_s, threads.
Threads: torch.set_num_threads(T), default 2 (or $BENCH_THREADS).
"""
import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("GRADCAM_SHARED", REPO.parent / "shared"))
EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}
MEAN = np.float32(127 / 255)
STD = np.float32(128 / 255)


def images_in(root):
    return sorted(p for p in Path(root).rglob("*") if p.is_file() and p.suffix.lower() in EXTENSIONS)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("images")
    ap.add_argument("out")
    ap.add_argument("--weights", default=str(Path.home() / ".cache/gradcam/efficientnet-lite0-57934424.pth"))
    ap.add_argument("--batch-size", type=int, default=1)
    ap.add_argument("--threads", type=int, default=int(os.environ.get("BENCH_THREADS", "2")))
    ap.add_argument("--limit", type=int, default=0)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    import cv2
    from PIL import Image
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.image import show_cam_on_image

    sys.path.insert(0, str(SHARED / "tools"))
    from lite0_torch import load_effnet_lite0  # the project's reference definition

    paths = images_in(args.images)
    if args.limit:
        paths = paths[: args.limit]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    model = load_effnet_lite0(args.weights)
    cam = GradCAM(model=model, target_layers=[model.head])
    loaded = time.perf_counter()
    done = errors = 0
    for start in range(0, len(paths), args.batch_size):
        batch = []
        for path in paths[start:start + args.batch_size]:
            try:
                img = Image.open(path).convert("RGB")
            except Exception as e:  # noqa: BLE001 (a bad file is counted, not fatal)
                print(f"{path}: {e}", file=sys.stderr)
                errors += 1
                continue
            small = np.asarray(img.resize((224, 224), Image.BILINEAR), dtype=np.float32) / 255
            batch.append((path, img, ((small - MEAN) / STD).transpose(2, 0, 1)))
        if not batch:
            continue
        x = torch.from_numpy(np.stack([b[2] for b in batch]))
        maps = cam(input_tensor=x, targets=None)
        logits = cam.outputs.detach()
        probs = torch.softmax(logits, 1)
        for i, (path, img, _) in enumerate(batch):
            top5 = torch.topk(logits[i], 5).indices.tolist()
            rgb = np.asarray(img, dtype=np.float32) / 255
            mask = cv2.resize(maps[i], (img.width, img.height))
            vis = show_cam_on_image(rgb, mask, use_rgb=True)
            stem = path.stem
            cv2.imwrite(str(out / f"{stem}.gradcam.jpg"), cv2.cvtColor(vis, cv2.COLOR_RGB2BGR),
                        [cv2.IMWRITE_JPEG_QUALITY, 95])
            np.save(out / f"{stem}.cam.npy", maps[i])
            with open(out / f"{stem}.json", "w") as f:
                json.dump({"image": str(path), "top5": [
                    {"class": c, "logit": float(logits[i, c]), "probability": float(probs[i, c])} for c in top5]}, f)
            done += 1
    end = time.perf_counter()
    print(json.dumps({"images": done, "errors": errors, "batch_size": args.batch_size, "load_s": loaded - t0,
                      "loop_s": end - loaded, "images_per_s": done / max(end - loaded, 1e-9),
                      "threads": torch.get_num_threads()}))


if __name__ == "__main__":
    main()
