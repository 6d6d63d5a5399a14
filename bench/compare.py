#!/usr/bin/env python3
"""gradcam (Rust) against pytorch-grad-cam: same models, weights and inputs, alternating runs.

Run it through bench/run.sh, which builds the Rust side first:

    bench/run.sh                       # every case, 5 timed runs each, end-to-end on 100 images
    bench/run.sh --reps 9 --cases resnet50
    bench/run.sh --skip-e2e --skip-memory --cases "lite0 gradcam head"

Per case, our side is examples/bench_cam in --serve mode (model loaded once, one warm-up run)
and theirs is pytorch-grad-cam in this process (model and CAM object built once, one warm-up
call). Then the timed runs alternate, one of ours, one of theirs, REPS times each, and the
table gives the medians in ms per image and the ratio theirs / ours. After the timed runs the
two sides' last maps are compared (max |difference|) and so are their top-1 classes.

Models: EfficientNet-Lite0 with its real ImageNet weights (the file gradcam caches), and a
ResNet-50 with random weights: torchvision's initialisation under torch.manual_seed(0), saved
as a .pth (torchvision's key layout, torch's legacy non-zip format) in the cache directory and
loaded by both sides. Inputs:
a fixed-seed standard normal float32 array [8, 3, 224, 224] (numpy default_rng(0)), saved as
.npy and read by both sides; batch 1 uses its first image.

The end-to-end case runs `gradcam explain` over the first N images of
../shared/data/imagenet-val-1300/images against torch_side.py's `e2e` loop (see there), each
as its own process under /usr/bin/time -v: wall time per image (process start to exit,
including model loading), the same for the first image alone (start-up), the marginal time
per image (wall N - wall 1) / (N - 1), and the peak resident memory.

Threads: torch.set_num_threads(THREADS) and RAYON_NUM_THREADS=THREADS for ours, THREADS from
--threads (default 2).
"""
import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))

# Our model name, layer, method, batch; `forward` is the forward pass alone (torch.no_grad()).
CASES = [
    ("efficientnet_lite0", "-", "forward", 1),
    ("resnet50", "-", "forward", 1),
    ("efficientnet_lite0", "-", "forward", 8),
    ("resnet50", "-", "forward", 8),
    ("efficientnet_lite0", "head", "gradcam", 1),
    ("efficientnet_lite0", "head", "gradcam", 8),
    ("efficientnet_lite0", "blocks.8", "gradcam", 1),
    ("efficientnet_lite0", "blocks.8", "gradcam", 8),
    ("resnet50", "layer4", "gradcam", 1),
    ("resnet50", "layer4", "gradcam", 8),
    ("resnet50", "layer3", "gradcam", 1),
    ("resnet50", "layer3", "gradcam", 8),
    ("efficientnet_lite0", "head", "gradcam++", 1),
    ("resnet50", "layer4", "gradcam++", 1),
    ("efficientnet_lite0", "head", "ablationcam", 1),
]
# pytorch-grad-cam's Ablation-CAM runs the whole network once per channel (2048 at layer4):
# minutes per image on two cores. Only with --slow.
SLOW_CASES = [("resnet50", "layer4", "ablationcam", 1)]
SHORT = {"efficientnet_lite0": "lite0", "resnet50": "resnet50"}


def case_name(model, layer, method, batch):
    layer = "" if layer == "-" else f" {layer}"
    return f"{SHORT.get(model, model)} {method}{layer} b{batch}"


def median(values):
    v = sorted(values)
    n = len(v)
    if n == 0:
        return float("nan")
    return v[n // 2] if n % 2 else (v[n // 2 - 1] + v[n // 2]) / 2


def cpu_sample(live_child=None):
    """(busy, total) CPU seconds of the whole machine and the CPU seconds of this process, its
    waited-for children and the running child `live_child` (a pid)."""
    import resource
    with open("/proc/stat") as f:
        fields = [int(v) for v in f.readline().split()[1:]]
    hz = os.sysconf("SC_CLK_TCK")
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    total = sum(fields[:8])
    mine = sum(getattr(resource.getrusage(who), k) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)
               for k in ("ru_utime", "ru_stime"))
    if live_child is not None:
        try:
            with open(f"/proc/{live_child}/stat") as f:
                stat = f.read().rsplit(")", 1)[1].split()
            mine += (int(stat[11]) + int(stat[12])) / hz  # utime, stime
        except (OSError, IndexError, ValueError):
            pass
    return (total - idle) / hz, total / hz, mine


def others_cpu(before, after):
    """The fraction of the machine's CPU time that other processes used between two samples
    (0.5: one of two cores busy). Our children count only once waited for."""
    busy = after[0] - before[0]
    total = after[1] - before[1]
    mine = after[2] - before[2]
    return max(busy - mine, 0.0) / total if total > 0 else float("nan")


def wait_quiet(max_seconds, threshold=0.25, window=1.0):
    """Waits (at most max_seconds) until other processes use less than `threshold` of the CPU
    over a `window`-second probe; returns the last probe's fraction (NaN when not waiting)."""
    if max_seconds <= 0:
        return float("nan")
    deadline = time.monotonic() + max_seconds
    while True:
        before = cpu_sample()
        time.sleep(window)
        frac = others_cpu(before, cpu_sample())
        if frac < threshold or time.monotonic() >= deadline:
            return frac


def loadavg():
    try:
        return os.getloadavg()[0]
    except OSError:
        return float("nan")


def machine():
    info = {"python": platform.python_version(), "nproc": os.cpu_count()}
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        for key in ("Model name", "CPU(s)", "Thread(s) per core"):
            m = re.search(rf"^{re.escape(key)}:\s*(.+)$", lscpu, re.M)
            if m:
                info[key] = m.group(1).strip()
    except FileNotFoundError:
        pass
    return info


class Ours:
    """examples/bench_cam in --serve mode."""

    def __init__(self, bench_cam, model, weights, layer, method, batch, input_path, threads):
        env = dict(os.environ, RAYON_NUM_THREADS=str(threads))
        cmd = [str(bench_cam), model, str(weights), layer, method, str(batch), "0",
               "--input", str(input_path), "--serve"]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, bufsize=1, env=env)
        line = self.proc.stdout.readline()
        if not line:
            err = self.proc.stderr.read().strip().splitlines()
            self.proc.wait()
            raise RuntimeError(err[-1] if err else f"bench_cam exited with {self.proc.returncode}")
        self.ready = json.loads(line)["ready"]

    def command(self, text):
        self.proc.stdin.write(text + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            err = self.proc.stderr.read().strip().splitlines()
            raise RuntimeError(err[-1] if err else "bench_cam died")
        out = json.loads(line)
        if "error" in out:
            raise RuntimeError(out["error"])
        return out

    def close(self):
        try:
            self.proc.stdin.write("quit\n")
            self.proc.stdin.close()
        except (BrokenPipeError, ValueError):
            pass
        self.proc.wait()


# A case whose runs take longer than this (ms, theirs, whole batch) gets no extra pairs.
SLOW_RUN_MS = 5000


def timed_pairs(pair, reps, ctx, live_child=None, slow=lambda result: False):
    """Runs `pair()` (one run of ours then one of theirs) until `reps` clean pairs, those during
    which other processes used less than ctx["clean"] of the CPU, or ctx["max_pairs"] pairs in
    all (`reps` when the first pair is `slow`). Each pair first waits up to ctx["quiet_wait"]
    seconds for a quiet machine. Returns the pairs to use, the clean ones when there are at
    least min(3, reps) of them, else all; and statistics about them."""
    results, fractions = [], []
    max_pairs = max(ctx["max_pairs"] or 3 * reps, reps)
    while len(results) < max_pairs and sum(f < ctx["clean"] for f in fractions) < reps:
        wait_quiet(ctx["quiet_wait"], threshold=ctx["clean"])
        before = cpu_sample(live_child)
        result = pair()
        fractions.append(others_cpu(before, cpu_sample(live_child)))
        results.append(result)
        if len(results) == 1 and slow(result):
            max_pairs = reps
    clean = [i for i, f in enumerate(fractions) if f < ctx["clean"]]
    use = clean if len(clean) >= min(3, reps) else list(range(len(results)))
    stats = {"pairs": len(results), "clean_pairs": len(clean), "used_pairs": len(use),
             "others_all": fractions, "others_during": sum(fractions[i] for i in use) / len(use)}
    return [results[i] for i in use], stats


def run_case(spec, ctx, reps, warmup):
    import numpy as np
    import torch_side

    model, layer, method, batch = spec
    weights = ctx["weights"][model]
    torch_layer = layer
    row = {"case": case_name(*spec), "model": model, "layer": layer, "method": method, "batch": batch,
           "load_before": loadavg(), "others_before": wait_quiet(ctx["quiet_wait"], threshold=ctx["clean"], window=2.0)}
    try:
        ours = Ours(ctx["bench_cam"], model, weights, layer, method, batch, ctx["input"], ctx["threads"])
    except Exception as e:  # noqa: BLE001 -- a method we lack is skipped, not fatal
        row["skipped"] = f"ours: {e}"
        return row
    try:
        if layer == "-" and method != "forward":
            torch_layer = ours.ready["layer"]
        try:
            theirs = torch_side.Case(model, weights, torch_layer, method, batch, ctx["input"])
        except Exception as e:  # noqa: BLE001
            row["skipped"] = f"theirs: {type(e).__name__}: {e}"
            return row
        for _ in range(max(warmup - 1, 0)):
            ours.command("run")
        for _ in range(warmup):
            theirs.run()
        def pair():
            ours_run = ours.command("run")
            return ours_run, theirs.run() * 1e3 / batch

        pairs, stats = timed_pairs(pair, reps, ctx, live_child=ours.proc.pid,
                                   slow=lambda p: p[1] * batch > SLOW_RUN_MS)
        row.update(stats)
        ours_runs = [p[0] for p in pairs]
        row["ours_samples"] = [r["ms_per_image"] for r in ours_runs]
        row["theirs_samples"] = [p[1] for p in pairs]
        row["ours"] = median(row["ours_samples"])
        row["theirs"] = median(row["theirs_samples"])
        row["ratio"] = row["theirs"] / row["ours"]
        for part in ("forward", "backward", "postprocess"):
            row[part] = median([r[part] for r in ours_runs])
        row["ours_classes"] = ours_runs[-1]["classes"]
        row["theirs_classes"] = theirs.classes
        row["same_top1"] = row["ours_classes"] == row["theirs_classes"]
        if method != "forward":
            dump = Path(ctx["tmp"]) / "maps.npy"
            ours.command(f"dump {dump}")
            row["max_abs_diff"] = float(np.abs(np.load(dump) - theirs.maps).max())
    finally:
        ours.close()
    row["load_after"] = loadavg()
    return row


def time_v(cmd, env=None):
    """Runs cmd under /usr/bin/time -v: (wall s, peak RSS MiB, stdout, stderr)."""
    start = time.perf_counter()
    p = subprocess.run(["/usr/bin/time", "-v", *cmd], capture_output=True, text=True, env=env)
    wall = time.perf_counter() - start
    if p.returncode != 0:
        raise RuntimeError(f"{cmd[0]} failed ({p.returncode}): {p.stderr[-2000:]}")
    m = re.search(r"Maximum resident set size \(kbytes\): (\d+)", p.stderr)
    rss = int(m.group(1)) / 1024 if m else float("nan")
    return wall, rss, p.stdout, p.stderr


def run_e2e(ctx, n_images, reps):
    images = sorted(p for p in (ctx["shared"] / "data/imagenet-val-1300/images").iterdir()
                    if p.suffix.lower() in (".jpg", ".jpeg", ".png"))[:n_images]
    if not images:
        return {"skipped": "no images in ../shared/data/imagenet-val-1300/images"}
    n = len(images)
    out_ours, out_theirs = Path(ctx["tmp"]) / "e2e-ours", Path(ctx["tmp"]) / "e2e-theirs"
    env_ours = dict(os.environ, GRADCAM_TIMINGS="1", RAYON_NUM_THREADS=str(ctx["threads"]))
    env_theirs = dict(os.environ, BENCH_THREADS=str(ctx["threads"]))
    lite0 = str(ctx["weights"]["efficientnet_lite0"])

    def ours_cmd(imgs):
        return [str(ctx["gradcam"]), "explain", "--out", str(out_ours), "--weights", lite0, *map(str, imgs)]

    def theirs_cmd(imgs):
        return [sys.executable, str(HERE / "torch_side.py"), "e2e", str(out_theirs), lite0, *map(str, imgs)]

    load_before = loadavg()
    others_before = wait_quiet(ctx["quiet_wait"], threshold=ctx["clean"], window=2.0)

    def pair():
        """Both sides on all the images, then both on the first image alone (start-up cost)."""
        runs = {}
        for side, cmd, env, out in (("ours", ours_cmd, env_ours, out_ours),
                                    ("theirs", theirs_cmd, env_theirs, out_theirs)):
            shutil.rmtree(out, ignore_errors=True)
            wall, rss, stdout, stderr = time_v(cmd(images), env)
            r = {"wall_s": wall, "rss_mib": rss}
            if side == "ours":
                parts = re.findall(r"decode ([\d.]+) ms, forward ([\d.]+) ms, backward ([\d.]+) ms, "
                                   r"postprocess ([\d.]+) ms", stderr)
                sums = [sum(float(p[i]) for p in parts) for i in range(4)]
                r.update(zip(("decode_ms", "forward_ms", "backward_ms", "postprocess_ms"), sums))
            else:
                r.update(json.loads(stdout.strip().splitlines()[-1]))
            r["files"] = len(list(out.iterdir()))
            runs[side] = r
        for side, cmd, env, out in (("ours", ours_cmd, env_ours, out_ours),
                                    ("theirs", theirs_cmd, env_theirs, out_theirs)):
            shutil.rmtree(out, ignore_errors=True)
            runs[side]["wall_1_s"] = time_v(cmd(images[:1]), env)[0]
        return runs

    pairs, stats = timed_pairs(pair, reps, ctx)
    rows = {side: [p[side] for p in pairs] for side in ("ours", "theirs")}
    res = {"images": n, "reps": reps, "load_before": load_before, "load_after": loadavg(), "runs": rows,
           "others_before": others_before, **stats}
    for side in ("ours", "theirs"):
        res[side] = {
            "wall_ms_per_image": median([r["wall_s"] for r in rows[side]]) * 1e3 / n,
            "startup_ms": median([r["wall_1_s"] for r in rows[side]]) * 1e3,
            "marginal_ms_per_image": median([(r["wall_s"] - r["wall_1_s"]) * 1e3 / max(n - 1, 1)
                                             for r in rows[side]]),
            "rss_mib": median([r["rss_mib"] for r in rows[side]]),
            "files": rows[side][-1]["files"],
        }
    res["theirs"]["loop_ms_per_image"] = median([r["loop_ms_per_image"] for r in rows["theirs"]])
    for key in ("decode_ms", "forward_ms", "backward_ms", "postprocess_ms"):
        res["ours"][key.replace("_ms", "_ms_per_image")] = median([r[key] for r in rows["ours"]]) / n
    return res


def run_memory(ctx, reps):
    """Peak RSS of one case run as its own process on each side."""
    rows = []
    for model, layer in (("efficientnet_lite0", "head"), ("resnet50", "layer4")):
        weights = str(ctx["weights"][model])
        ours = [str(ctx["bench_cam"]), model, weights, layer, "gradcam", "8", str(reps),
                "--input", str(ctx["input"])]
        theirs = [sys.executable, str(HERE / "torch_side.py"), "case", model, weights, layer,
                  "gradcam", "8", str(reps), str(ctx["input"])]
        env_ours = dict(os.environ, RAYON_NUM_THREADS=str(ctx["threads"]))
        env_theirs = dict(os.environ, BENCH_THREADS=str(ctx["threads"]))
        _, rss_ours, _, _ = time_v(ours, env_ours)
        _, rss_theirs, _, _ = time_v(theirs, env_theirs)
        rows.append({"case": f"{SHORT[model]} gradcam {layer} b8 ({reps} runs + warm-up)",
                     "ours_mib": rss_ours, "theirs_mib": rss_theirs})
    return rows


def prepare(ctx):
    import numpy as np
    import torch
    import torchvision

    cache = ctx["cache"]
    cache.mkdir(parents=True, exist_ok=True)
    lite0 = subprocess.run([str(ctx["bench_cam"]), "--lite0-path"], capture_output=True, text=True, check=True)
    # The legacy (pre-zip) format: burn 0.22.1's reader (zip 9.8.2) fails on this 100 MB
    # zip-format file as torch 2.x writes it ("Invalid Central Directory header").
    resnet = cache / "resnet50-random-seed0.legacy.pth"
    if not resnet.exists():
        torch.manual_seed(0)
        tmp = resnet.with_suffix(".tmp")
        torch.save(torchvision.models.resnet50(weights=None).state_dict(), tmp,
                   _use_new_zipfile_serialization=False)
        tmp.rename(resnet)
    inp = cache / "input-8x3x224x224-seed0.npy"
    if not inp.exists():
        np.save(inp, np.random.default_rng(0).standard_normal((8, 3, 224, 224)).astype(np.float32))
    ctx["weights"] = {"efficientnet_lite0": Path(lite0.stdout.strip()), "resnet50": resnet}
    ctx["input"] = inp


def fmt(v, digits=1):
    return "-" if v is None or v != v else f"{v:.{digits}f}"


def report(ctx, rows, e2e, memory):
    import torch
    import pytorch_grad_cam

    lines = []
    m = ctx["machine"]
    lines.append(f"Machine: {m.get('Model name', '?')}, {m.get('CPU(s)', '?')} CPUs; threads {ctx['threads']} "
                 f"each side; torch {torch.__version__}, grad-cam "
                 f"{getattr(pytorch_grad_cam, '__version__', '1.5.x')}; load average (1 min) "
                 f"{fmt(ctx['load_start'], 2)} at start, {fmt(loadavg(), 2)} at end.")
    lines.append("")
    lines.append("| case | ours ms/img | theirs ms/img | ratio theirs/ours | ours forward / backward / post ms/img "
                 "| max abs diff | same top-1 | others' CPU % | pairs used/run |")
    lines.append("|---|---:|---:|---:|---|---:|---|---:|---:|")
    for r in rows:
        if "skipped" in r:
            lines.append(f"| {r['case']} | skipped: {r['skipped']} |  |  |  |  |  |  |  |")
            continue
        split = f"{fmt(r['forward'])} / {fmt(r['backward'])} / {fmt(r['postprocess'], 2)}"
        diff = "-" if "max_abs_diff" not in r else f"{r['max_abs_diff']:.1e}"
        lines.append(f"| {r['case']} | {fmt(r['ours'])} | {fmt(r['theirs'])} | {fmt(r['ratio'], 2)} | {split} "
                     f"| {diff} | {'yes' if r['same_top1'] else 'NO'} | {fmt(100 * r['others_during'], 0)} "
                     f"| {r['used_pairs']}/{r['pairs']} |")
    if e2e and "skipped" not in e2e:
        o, t = e2e["ours"], e2e["theirs"]
        lines.append("")
        lines.append(f"End to end, {e2e['images']} images, median of {e2e['used_pairs']} alternating runs per side "
                     f"({e2e['pairs']} run; other processes used {fmt(100 * e2e['others_during'], 0)}% of the CPU "
                     f"during the runs used):")
        lines.append("")
        lines.append("| | ours | theirs | ratio theirs/ours |")
        lines.append("|---|---:|---:|---:|")
        lines.append(f"| wall ms/image (process start to exit) | {fmt(o['wall_ms_per_image'])} | "
                     f"{fmt(t['wall_ms_per_image'])} | {fmt(t['wall_ms_per_image'] / o['wall_ms_per_image'], 2)} |")
        lines.append(f"| one image, process start to exit, ms | {fmt(o['startup_ms'])} | {fmt(t['startup_ms'])} | "
                     f"{fmt(t['startup_ms'] / o['startup_ms'], 2)} |")
        lines.append(f"| marginal ms/image: (wall {e2e['images']} - wall 1) / {e2e['images'] - 1} | "
                     f"{fmt(o['marginal_ms_per_image'])} | {fmt(t['marginal_ms_per_image'])} | "
                     f"{fmt(t['marginal_ms_per_image'] / o['marginal_ms_per_image'], 2)} |")
        lines.append(f"| peak RSS MiB | {fmt(o['rss_mib'], 0)} | {fmt(t['rss_mib'], 0)} | "
                     f"{fmt(t['rss_mib'] / o['rss_mib'], 2)} |")
        lines.append(f"| files written | {o['files']} | {t['files']} | |")
        lines.append("")
        lines.append(f"Theirs in-loop (timed inside the process, model loaded): {fmt(t['loop_ms_per_image'])} ms/image. "
                     f"Ours per-image stage times (GRADCAM_TIMINGS; decoding and writing run on worker threads, "
                     f"overlapping the model): decode {fmt(o['decode_ms_per_image'], 2)}, forward "
                     f"{fmt(o['forward_ms_per_image'])}, backward {fmt(o['backward_ms_per_image'], 2)}, "
                     f"postprocess incl. writing {fmt(o['postprocess_ms_per_image'], 2)} ms/image.")
    elif e2e:
        lines.append(f"\nEnd to end: skipped ({e2e['skipped']})")
    if memory:
        lines.append("")
        lines.append("| peak RSS, one process per case | ours MiB | theirs MiB |")
        lines.append("|---|---:|---:|")
        for r in memory:
            lines.append(f"| {r['case']} | {fmt(r['ours_mib'], 0)} | {fmt(r['theirs_mib'], 0)} |")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reps", type=int, default=5,
                    help="clean timed runs wanted per side and case (default 5): see --clean")
    ap.add_argument("--clean", type=float, default=0.25,
                    help="a pair of runs (ours, theirs) is clean when other processes used less than "
                         "this fraction of the CPU meanwhile (default 0.25: half a core of two)")
    ap.add_argument("--max-pairs", type=int, default=0,
                    help="stop a case after this many pairs, clean or not (default 3 x --reps); "
                         "the medians use the clean pairs when there are at least 3, else all")
    ap.add_argument("--warmup", type=int, default=1, help="untimed runs per side first (default 1)")
    ap.add_argument("--threads", type=int, default=2, help="threads per side (default 2)")
    ap.add_argument("--cases", default="", help="comma-separated substrings of case names, e.g. 'resnet50,lite0 forward'")
    ap.add_argument("--slow", action="store_true", help="also run ResNet-50 Ablation-CAM (minutes per run for theirs)")
    ap.add_argument("--skip-e2e", action="store_true")
    ap.add_argument("--e2e-images", type=int, default=100)
    ap.add_argument("--e2e-reps", type=int, default=3)
    ap.add_argument("--skip-memory", action="store_true")
    ap.add_argument("--bin-dir", type=Path, default=REPO / "target/release")
    ap.add_argument("--cache", type=Path, default=Path(os.environ.get("BENCH_CACHE", Path.home() / ".cache/gradcam-bench")))
    ap.add_argument("--shared", type=Path, default=Path(os.environ.get("GRADCAM_SHARED", REPO.parent / "shared")))
    ap.add_argument("--json", type=Path, help="also write every sample here")
    ap.add_argument("--quiet-wait", type=float, default=10,
                    help="before each case and each pair of timed runs, wait up to this many seconds "
                         "for other processes to use less than --clean of the CPU (default 10; 0: do not wait). "
                         "pytorch-grad-cam's OpenMP threads slow down many times over when another "
                         "process takes a core; our rayon threads much less")
    args = ap.parse_args()

    os.environ["BENCH_THREADS"] = str(args.threads)
    os.environ["GRADCAM_SHARED"] = str(args.shared)
    import torch  # after BENCH_THREADS; torch_side sets the thread count on import
    import torch_side  # noqa: F401
    torch.set_num_threads(args.threads)

    ctx = {"bench_cam": args.bin_dir / "examples/bench_cam", "gradcam": args.bin_dir / "gradcam",
           "cache": args.cache, "shared": args.shared, "threads": args.threads, "quiet_wait": args.quiet_wait,
           "clean": args.clean, "max_pairs": args.max_pairs,
           "machine": machine(), "load_start": loadavg()}
    for b in (ctx["bench_cam"], ctx["gradcam"]):
        if not b.exists():
            sys.exit(f"{b} not found: run `cargo build --release --examples` (bench/run.sh does)")
    if not Path("/usr/bin/time").exists() and not (args.skip_e2e and args.skip_memory):
        sys.exit("/usr/bin/time not found (Debian: apt-get install time), or pass --skip-e2e --skip-memory")
    prepare(ctx)

    specs = CASES + (SLOW_CASES if args.slow else [])
    filters = [f.strip() for f in args.cases.split(",") if f.strip()]
    if filters:
        specs = [s for s in specs if any(f in case_name(*s) for f in filters)]
    rows = []
    with tempfile.TemporaryDirectory(prefix="gradcam-bench-") as tmp:
        ctx["tmp"] = tmp
        for spec in specs:
            print(f"# {case_name(*spec)} ...", file=sys.stderr, flush=True)
            row = run_case(spec, ctx, args.reps, args.warmup)
            print(f"#   {json.dumps({k: v for k, v in row.items() if not k.endswith('samples')})}",
                  file=sys.stderr, flush=True)
            rows.append(row)
        e2e = None
        if not args.skip_e2e:
            print("# end to end ...", file=sys.stderr, flush=True)
            e2e = run_e2e(ctx, args.e2e_images, args.e2e_reps)
        memory = None
        if not args.skip_memory:
            print("# peak memory ...", file=sys.stderr, flush=True)
            memory = run_memory(ctx, 2)
    text = report(ctx, rows, e2e, memory)
    print(text)
    if args.json:
        args.json.write_text(json.dumps({"machine": ctx["machine"], "threads": args.threads, "reps": args.reps,
                                         "cases": rows, "e2e": e2e, "memory": memory,
                                         "weights": {k: str(v) for k, v in ctx["weights"].items()}},
                                        indent=1))


if __name__ == "__main__":
    main()
