#!/usr/bin/env python3
"""gradcam's forward pass against ONNX Runtime's: same ONNX export, same inputs, alternating.

Run it through bench/ort_compare.sh, which builds the binary first:

    bench/ort_compare.sh                          # Lite0 and ResNet-50, batch 1 and 8, 5 rounds
    bench/ort_compare.sh --rounds 7 --cases resnet50 --batches 8

Models: EfficientNet-Lite0 with its real ImageNet weights (the file gradcam caches, through
../shared/tools/lite0_torch.py), torchvision's ResNet-50 with random weights
(torch.manual_seed(0), the .pth compare.py makes and shares) and, with `--cases vgg16`,
VGG-16 the same way, exported once with torch's
legacy exporter (opset 17, dynamic batch) into --cache. Input: compare.py's fixed-seed normal
[8, 3, 224, 224] float32 array; batch 1 uses its first image.

Per case (model, batch) and round, three sides run one after the other, the order rotating
between rounds:
- `ort`: onnxruntime's CPU provider in this process (session made once per model,
  intra_op_num_threads=THREADS, inter_op 1, sequential, default graph optimisations ALL);
  WARMUP runs, then ITERS timed `run`s, their median;
- `onnx`: `gradcam bench --model FILE.onnx --input X.npy` (our ONNX interpreter), the median of
  its ITERS forward passes after WARMUP; it also times Grad-CAM at the default layer;
- `builtin`: the same for our built-in model with the same weights (`--model
  efficientnet_lite0` / `--model resnet50 --weights the.pth`, the same for vgg16).
The table gives the median over rounds of each side's medians, in ms per image, and the ratios
ours / ONNX Runtime (at most 1: as fast). Before each round the harness waits for other
processes to use under --clean of the CPU (see compare.py), and says how much they used during.

`--cpu-time` (with `--threads 1`) also measures each side's CPU time per image, which other
processes on a busy machine disturb far less than wall time: onnxruntime's from
`time.process_time()` around its timed runs in this process, ours as the difference in CPU time
(getrusage of the children) between a `gradcam bench` of WARMUP + ITERS passes and one of
WARMUP passes, divided by ITERS.
"""
import resource
import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))
from compare import cpu_sample, loadavg, median, others_cpu, wait_quiet  # noqa: E402

MODELS = {"lite0": "efficientnet_lite0", "resnet50": "resnet50", "vgg16": "vgg16"}
# The torchvision models, with random weights (torch.manual_seed(0)) in a legacy-format .pth.
TORCHVISION = ("resnet50", "vgg16")


def prepare(cache, shared, gradcam, cases):
    """The ONNX exports, the torchvision checkpoints and the input of `cases`, made once into
    `cache`."""
    import numpy as np
    import torch
    import torchvision

    cache.mkdir(parents=True, exist_ok=True)
    inp = cache / "input-8x3x224x224-seed0.npy"
    if not inp.exists():
        np.save(inp, np.random.default_rng(0).standard_normal((8, 3, 224, 224)).astype(np.float32))
    pth = {name: cache / f"{name}-random-seed0.legacy.pth" for name in TORCHVISION}
    for name in TORCHVISION:
        if name not in cases or pth[name].exists():
            continue
        torch.manual_seed(0)
        tmp = pth[name].with_suffix(".tmp")
        # The legacy (pre-zip) format, as compare.py writes it (burn's reader needs it).
        torch.save(getattr(torchvision.models, name)(weights=None).state_dict(), tmp,
                   _use_new_zipfile_serialization=False)
        tmp.rename(pth[name])
    # The Lite0 weights gradcam caches (downloaded on first use by `gradcam bench`).
    subprocess.run([str(gradcam), "bench", "--model", "efficientnet_lite0", "--forward-only",
                    "-n", "1", "--warmup", "0"], check=True, capture_output=True)
    lite0_pth = Path(os.environ.get("GRADCAM_LITE0_WEIGHTS",
                                    Path.home() / ".cache/gradcam/efficientnet-lite0-57934424.pth"))
    onnx = {"lite0": cache / "lite0.legacy.onnx",
            **{name: cache / f"{name}-random-seed0.legacy.onnx" for name in TORCHVISION}}
    x = torch.from_numpy(np.load(inp)[:2])
    for short, path in onnx.items():
        if short not in cases or path.exists():
            continue
        if short == "lite0":
            sys.path.insert(0, str(shared / "tools"))
            from lite0_torch import load_effnet_lite0
            model = load_effnet_lite0(str(lite0_pth)).eval()
        else:
            model = getattr(torchvision.models, short)(weights=None)
            model.load_state_dict(torch.load(pth[short], weights_only=True))
            model.eval()
        tmp = path.with_suffix(".tmp.onnx")
        with torch.no_grad():
            torch.onnx.export(model, (x,), str(tmp), dynamo=False, opset_version=17,
                              input_names=["input"], output_names=["logits"],
                              dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}})
        tmp.rename(path)
    builtin = {"lite0": ["--model", "efficientnet_lite0"],
               **{name: ["--model", name, "--weights", str(pth[name])] for name in TORCHVISION}}
    return {"input": inp, "onnx": onnx, "builtin": builtin}


class OrtSide:
    """One onnxruntime session per model, kept for every round."""

    def __init__(self, threads):
        self.threads = threads
        self.sessions = {}

    def session(self, path):
        import onnxruntime as ort
        if path not in self.sessions:
            opts = ort.SessionOptions()
            opts.intra_op_num_threads = self.threads
            opts.inter_op_num_threads = 1
            opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
            self.sessions[path] = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        return self.sessions[path]

    def run(self, path, x, warmup, iters):
        sess = self.session(path)
        for _ in range(warmup):
            sess.run(None, {"input": x})
        samples = []
        cpu_start = time.process_time()
        for _ in range(iters):
            start = time.perf_counter()
            sess.run(None, {"input": x})
            samples.append((time.perf_counter() - start) * 1e3 / x.shape[0])
        cpu = (time.process_time() - cpu_start) * 1e3 / (iters * x.shape[0])
        return {"forward": median(samples), "samples": samples, "cpu": cpu}


def children_cpu():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def ours(gradcam, model_args, inp, batch, warmup, iters, threads, explain, cpu_time=False):
    def bench(iters, explain):
        cmd = [str(gradcam), "bench", *model_args, "--input", str(inp), "--batch", str(batch),
               "--iters", str(iters), "--warmup", str(warmup), "--json"]
        if not explain:
            cmd.append("--forward-only")
        env = dict(os.environ, RAYON_NUM_THREADS=str(threads))
        before = children_cpu()
        out = subprocess.run(cmd, capture_output=True, text=True, env=env)
        if out.returncode != 0:
            raise SystemExit(f"{' '.join(cmd)}: exit {out.returncode}\n{out.stderr}")
        return json.loads(out.stdout), children_cpu() - before

    j, _ = bench(iters, explain)
    result = {"forward": j["forward_ms_per_image"], "explain": j["explain_ms_per_image"],
              "layer": "+".join(j["layers"]), "threads": j["threads"],
              "samples": j["forward_samples_ms_per_image"]}
    if cpu_time:
        # Forward passes only: loading, warm-up and start-up cancel out in the difference.
        _, long_run = bench(iters + 1, False)
        _, short_run = bench(1, False)
        result["cpu"] = (long_run - short_run) * 1e3 / (iters * batch)
    return result


def run_case(short, batch, ctx, args):
    import numpy as np
    x = np.ascontiguousarray(np.load(ctx["input"])[:batch])
    onnx = ctx["onnx"][short]
    sides = {
        "ort": lambda: ctx["ort"].run(onnx, x, args.warmup, args.iters),
        "onnx": lambda: ours(ctx["gradcam"], ["--model", str(onnx)], ctx["input"], batch, args.warmup,
                             args.iters, args.threads, not args.forward_only, args.cpu_time),
        "builtin": lambda: ours(ctx["gradcam"], ctx["builtin"][short], ctx["input"], batch, args.warmup,
                                args.iters, args.threads, not args.forward_only, args.cpu_time),
    }
    order = list(sides)
    rounds = []
    for r in range(args.rounds):
        quiet = wait_quiet(args.quiet_wait, threshold=args.clean, window=2.0)
        result = {"load_before": loadavg(), "others_before": quiet}
        for name in order[r % 3:] + order[:r % 3]:
            before = cpu_sample()
            result[name] = sides[name]()
            result[name]["others"] = others_cpu(before, cpu_sample())
        rounds.append(result)
        print(f"  {short} b{batch} round {r + 1}: " + ", ".join(
            f"{n} {rounds[-1][n]['forward']:.1f}" for n in order) +
            f" ms/img (others {100 * max(rounds[-1][n]['others'] for n in order):.0f}% CPU)",
            file=sys.stderr, flush=True)
    med = {n: median([r[n]["forward"] for r in rounds]) for n in order}
    cpu = {n: median([r[n]["cpu"] for r in rounds]) for n in order} if args.cpu_time else None
    explain = {n: median([r[n]["explain"] for r in rounds]) if not args.forward_only else None
               for n in ("onnx", "builtin")}
    return {"case": f"{short} b{batch}", "model": MODELS[short], "batch": batch, "rounds": rounds,
            "median": med, "cpu": cpu, "explain": explain, "layer": rounds[0]["builtin"]["layer"],
            "others_max": max(r[n]["others"] for r in rounds for n in order)}


def fmt(v, digits=1):
    return "-" if v is None else f"{v:.{digits}f}"


def table(rows):
    lines = ["| forward, ms per image | ONNX Runtime | gradcam, ONNX file | ratio | gradcam, built-in | ratio "
             "| Grad-CAM (built-in, default layer) | Grad-CAM / forward | others' CPU % (max) |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for row in rows:
        m, e = row["median"], row["explain"]
        ratio = lambda n: m[n] / m["ort"]  # noqa: E731
        over = None if e["builtin"] is None else e["builtin"] / m["builtin"]
        lines.append(f"| {row['case']} | {fmt(m['ort'])} | {fmt(m['onnx'])} | {fmt(ratio('onnx'), 2)} "
                     f"| {fmt(m['builtin'])} | {fmt(ratio('builtin'), 2)} | {fmt(e['builtin'])} ({row['layer']}) "
                     f"| {fmt(over, 2)} | {fmt(100 * row['others_max'], 0)} |")
    if rows and rows[0]["cpu"]:
        lines += ["", "| CPU ms per image, 1 thread | ONNX Runtime | gradcam, ONNX file | ratio "
                  "| gradcam, built-in | ratio |", "|---|---:|---:|---:|---:|---:|"]
        for row in rows:
            c = row["cpu"]
            lines.append(f"| {row['case']} | {fmt(c['ort'])} | {fmt(c['onnx'])} | {fmt(c['onnx'] / c['ort'], 2)} "
                         f"| {fmt(c['builtin'])} | {fmt(c['builtin'] / c['ort'], 2)} |")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=5, help="alternating rounds per case (default 5)")
    ap.add_argument("--iters", type=int, default=10, help="timed passes per side and round (default 10)")
    ap.add_argument("--warmup", type=int, default=2, help="untimed passes first (default 2)")
    ap.add_argument("--threads", type=int, default=2, help="threads per side (default 2)")
    ap.add_argument("--cases", default="lite0,resnet50",
                    help="comma list of lite0, resnet50, vgg16 (default lite0,resnet50)")
    ap.add_argument("--batches", default="1,8", help="comma list of batch sizes (at most 8)")
    ap.add_argument("--forward-only", action="store_true", help="do not time our Grad-CAM")
    ap.add_argument("--cpu-time", action="store_true",
                    help="also measure CPU time per image (meant for --threads 1; see above)")
    ap.add_argument("--clean", type=float, default=0.25,
                    help="wait until other processes use under this fraction of the CPU (default 0.25)")
    ap.add_argument("--quiet-wait", type=float, default=30, help="wait at most this many seconds (default 30)")
    ap.add_argument("--gradcam", type=Path, default=REPO / "target/release/gradcam")
    ap.add_argument("--cache", type=Path, default=Path(os.environ.get("BENCH_CACHE", Path.home() / ".cache/gradcam-bench")))
    ap.add_argument("--shared", type=Path, default=Path(os.environ.get("GRADCAM_SHARED", REPO.parent / "shared")))
    ap.add_argument("--json", type=Path, help="also write every sample here")
    args = ap.parse_args()
    cases = args.cases.split(",")
    if unknown := [c for c in cases if c not in MODELS]:
        ap.error(f"unknown case {', '.join(unknown)}: the cases are {', '.join(MODELS)}")
    if args.cpu_time and args.threads != 1:
        ap.error("--cpu-time measures one thread's work: add --threads 1")

    import onnxruntime
    ctx = prepare(args.cache, args.shared, args.gradcam, cases)
    ctx["gradcam"] = args.gradcam
    ctx["ort"] = OrtSide(args.threads)
    print(f"onnxruntime {onnxruntime.__version__}, {args.threads} threads per side, load before: {loadavg():.2f}",
          file=sys.stderr)
    rows = [run_case(short, int(b), ctx, args) for short in cases for b in args.batches.split(",")]
    print(table(rows))
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "onnxruntime": onnxruntime.__version__,
                                         "threads": args.threads}, indent=1, default=str))


if __name__ == "__main__":
    main()
