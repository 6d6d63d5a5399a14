#!/usr/bin/env python3
"""The Python package against pytorch-grad-cam, in one Python process, and against the Rust side.

    bench/python_bench.py [ROUNDS] [REPS]          # defaults 3 and 10

Needs a Python with torch, pytorch-grad-cam and the gradcam package (for example the bench venv
with the built wheel unpacked on PYTHONPATH: docs/benchmarks.md, "From Python", has the
commands), and bench/run.sh run once (it makes the ResNet-50 checkpoint with random weights and
the input batch in $BENCH_CACHE, the same files bench/steady.sh uses).

Two tables, medians over ROUNDS rounds of each side's median ms per image:

1. Grad-CAM on the same preprocessed inputs and weights: `gradcam.compat.GradCAM` against
   `pytorch_grad_cam.GradCAM` (same process, same threads, their REPS calls alternating), and
   the Rust library's own time for the same case (`bench_cam` with REPS runs, what
   bench/steady.sh times as "ours", once per round): ratio package / Rust.
2. Whole images from files: `gradcam.Explainer.explain(paths)` against `gradcam explain --format
   npy` (decode, Grad-CAM, box, top-5; the map written as .npy), the CLI's per-image time as
   (T(N images) - T(1 image)) / (N - 1), so that its start and model loading do not count.

BENCH_CASES=REGEX keeps the cases of table 1 whose "model layer batch" matches;
BENCH_TABLES=cam or BENCH_TABLES=images runs one table.

Threads: 2 on every side (RAYON_NUM_THREADS=2, torch.set_num_threads(2)). Each timed call
starts after a pause of $BENCH_PAUSE seconds (default 0.5), so that the other side's idle
threads (torch's OpenMP workers spin a while after a call) have gone to sleep.
"""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("RAYON_NUM_THREADS", "2")
os.environ.setdefault("BENCH_THREADS", "2")

import numpy as np  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "bench"))
import torch_side  # noqa: E402  (the PyTorch side of bench/steady.sh: models, layers, threads)

import gradcam  # noqa: E402
from gradcam import compat  # noqa: E402

CACHE = Path(os.environ.get("BENCH_CACHE", Path.home() / ".cache" / "gradcam-bench"))
INPUT = CACHE / "input-8x3x224x224-seed0.npy"
RESNET = CACHE / "resnet50-random-seed0.legacy.pth"
BENCH_CAM = REPO / "target" / "release" / "examples" / "bench_cam"
CLI = REPO / "target" / "release" / "gradcam"
IMAGES = Path(os.environ.get("BENCH_IMAGES", REPO.parent / "shared" / "data" / "images"))
PAUSE = float(os.environ.get("BENCH_PAUSE", "0.5"))

CASES = [
    ("efficientnet_lite0", "head", 1),
    ("efficientnet_lite0", "head", 8),
    ("resnet50", "layer4", 1),
    ("resnet50", "layer4", 8),
]


def median(values):
    return float(np.median(values))


def lite0_weights():
    out = subprocess.run([str(BENCH_CAM), "--lite0-path"], capture_output=True, text=True, check=True)
    return out.stdout.strip()


def paired(explainers, torch_cases, model, layer, batch, reps, x, weights):
    """Median ms per image of compat.GradCAM and of pytorch_grad_cam.GradCAM on `x[:batch]`,
    their calls alternating (one warm-up each), so that both see the same machine."""
    cam = compat.GradCAM(model=explainers[model], target_layers=[layer], batch_size=batch)
    inputs = np.ascontiguousarray(x[:batch])
    key = (model, layer, batch)
    if key not in torch_cases:
        torch_cases[key] = torch_side.Case(model, weights, layer, "gradcam", batch, str(INPUT))
    case = torch_cases[key]
    cam(inputs)
    case.run()
    ours, theirs = [], []
    for _ in range(reps):
        time.sleep(PAUSE)
        start = time.perf_counter()
        cam(inputs)
        ours.append((time.perf_counter() - start) * 1e3 / batch)
        time.sleep(PAUSE)
        theirs.append(case.run() * 1e3 / batch)
    return median(ours), median(theirs)


def rust(model, layer, batch, reps):
    weights = "-" if model == "efficientnet_lite0" else str(RESNET)
    out = subprocess.run(
        [str(BENCH_CAM), model, weights, layer, "gradcam", str(batch), str(reps), "--input", str(INPUT)],
        capture_output=True, text=True, check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])["median_ms_per_image"]


def cam_table(rounds, reps):
    x = np.load(INPUT)
    explainers = {
        "efficientnet_lite0": gradcam.Explainer("efficientnet_lite0"),
        "resnet50": gradcam.Explainer("resnet50", weights=RESNET),
    }
    weights = {"efficientnet_lite0": lite0_weights(), "resnet50": str(RESNET)}
    torch_cases = {}
    print("| Grad-CAM, same inputs | package ms/img | pytorch-grad-cam | ratio theirs/package "
          "| Rust (bench_cam) | package / Rust |")
    print("|---|---:|---:|---:|---:|---:|")
    for model, layer, batch in CASES:
        if not re.search(os.environ.get("BENCH_CASES", "."), f"{model} {layer} {batch}"):
            continue
        o, t, r = [], [], []
        for _ in range(rounds):
            ours, theirs = paired(explainers, torch_cases, model, layer, batch, reps, x, weights[model])
            o.append(ours)
            t.append(theirs)
            time.sleep(PAUSE)
            r.append(rust(model, layer, batch, reps))
        o, t, r = median(o), median(t), median(r)
        print(f"| {model} `{layer}` batch {batch} | {o:.1f} | {t:.1f} | {t / o:.2f}x | {r:.1f} | {o / r:.2f} |",
              flush=True)


def images_table(rounds, copies=4):
    files = sorted(p for p in IMAGES.iterdir() if p.suffix.lower() in {".jpg", ".jpeg", ".png", ".bmp"})
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        many, one = tmp / "many", tmp / "one"
        many.mkdir()
        one.mkdir()
        # Copies, not links: the CLI explains a file reached by several paths once.
        for k in range(copies):
            for f in files:
                shutil.copyfile(f, many / f"{k}_{f.name}")
        shutil.copyfile(files[0], one / files[0].name)
        paths = sorted(str(p) for p in many.iterdir())
        explainer = gradcam.Explainer("efficientnet_lite0")
        explainer.explain(paths[:2])
        package, cli = [], []
        for _ in range(rounds):
            time.sleep(PAUSE)
            start = time.perf_counter()
            explainer.explain(paths, progress=False)
            package.append((time.perf_counter() - start) * 1e3 / len(paths))
            times = {}
            for name, folder in (("many", many), ("one", one)):
                start = time.perf_counter()
                subprocess.run(
                    [str(CLI), "explain", str(folder), "--out", str(tmp / f"out-{name}"),
                     "--format", "npy", "--overwrite", "-q"],
                    check=True, capture_output=True,
                )
                times[name] = time.perf_counter() - start
            cli.append((times["many"] - times["one"]) * 1e3 / (len(paths) - 1))
        p, c = median(package), median(cli)
        print(f"\n| {len(paths)} image files, Lite0 Grad-CAM | package ms/img | CLI ms/img | package / CLI |")
        print("|---|---:|---:|---:|")
        print(f"| `Explainer.explain(paths)` vs `gradcam explain --format npy` | {p:.1f} | {c:.1f} | {p / c:.2f} |")


def main():
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    reps = int(sys.argv[2]) if len(sys.argv) > 2 else 10
    for path in (INPUT, RESNET, BENCH_CAM, CLI):
        if not path.exists():
            sys.exit(f"{path} is missing: run bench/run.sh and `cargo build --release --bins --examples` first")
    print(f"threads: RAYON_NUM_THREADS={os.environ['RAYON_NUM_THREADS']}, torch {torch_side.torch.get_num_threads()}; "
          f"load average {open('/proc/loadavg').read().split()[:3]}\n")
    tables = os.environ.get("BENCH_TABLES", "cam,images").split(",")
    if "cam" in tables:
        cam_table(rounds, reps)
    if "images" in tables:
        images_table(rounds)


if __name__ == "__main__":
    main()
