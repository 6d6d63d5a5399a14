//! Times one CAM case, for `bench/compare.py` (and for profiling with `perf`).
//!
//! ```text
//! bench_cam MODEL WEIGHTS LAYER METHOD BATCH REPS [--input X.npy] [--dump MAPS.npy] [--serve]
//! bench_cam --lite0-path
//! ```
//!
//! - `MODEL`: a model name (`gradcam models`), e.g. `efficientnet_lite0`, `resnet50`.
//! - `WEIGHTS`: a checkpoint, or `-` for the built-in weights (EfficientNet-Lite0: the cached
//!   ImageNet weights; any other model: random initialisation).
//! - `LAYER`: the layer to explain, or `-` for the model's default.
//! - `METHOD`: a `--method` name (`gradcam`, `gradcam++`, ...), or `forward` for the full
//!   forward pass alone (no autodiff, no map).
//! - `BATCH`: images per run; `REPS`: timed runs after one untimed warm-up run.
//! - `--input X.npy`: a float32 `[N, 3, H, W]` input with `N >= BATCH` (the first `BATCH`
//!   images are used); without it, a fixed-seed pseudo-random normal input at the model's size.
//! - `--dump MAPS.npy`: writes the maps `[BATCH, H, W]` of the last run.
//! - `--serve`: after loading and the warm-up, prints `{"ready": ...}` and then reads commands
//!   from standard input, one a line: `run` (one timed run, one JSON line back),
//!   `dump PATH` (the last run's maps), `quit`. This lets a driver alternate single runs with
//!   another tool's.
//!
//! Without `--serve` it prints one JSON object: the median, minimum and every sample in ms per
//! image, and the median forward / backward / postprocess split (see `gradcam::cam::Timings`).
//!
//! Threads: the flex backend uses rayon's global pool (one thread per core, or
//! `RAYON_NUM_THREADS`).

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::tensor::{Device, Tensor, TensorData};
use gradcam::cam::{self, Cam, Targets};
use gradcam::io::{npy_bytes, read_npy};
use gradcam::model::CamModel;

mod common;
use common::median;

const USAGE: &str = "usage: bench_cam MODEL WEIGHTS|- LAYER|- METHOD|forward BATCH REPS \
                     [--input X.npy] [--dump MAPS.npy] [--serve]\n       bench_cam --lite0-path";

struct Args {
    model: String,
    weights: Option<PathBuf>,
    layer: Option<String>,
    method: String,
    batch: usize,
    reps: usize,
    input: Option<PathBuf>,
    dump: Option<PathBuf>,
    serve: bool,
}

/// One timed run, in ms for the whole batch.
#[derive(Clone, Copy, Default)]
struct Sample {
    total: f64,
    forward: f64,
    backward: f64,
    postprocess: f64,
}

struct Last {
    maps: Vec<Vec<f32>>,
    size: (usize, usize),
    classes: Vec<Option<usize>>,
}

fn main() -> anyhow::Result<()> {
    gradcam::alloc::tune_for_tensors();
    let raw: Vec<String> = std::env::args().skip(1).collect();
    if raw.first().map(String::as_str) == Some("--lite0-path") {
        println!("{}", gradcam::weights::lite0::cached()?.display());
        return Ok(());
    }
    let args = parse(raw)?;
    let device = Device::flex();

    let start = Instant::now();
    let model = match (&args.weights, args.model.as_str()) {
        (None, name) if name != "efficientnet_lite0" => gradcam::model::build(name, 1000, &device)?,
        (weights, name) => gradcam::model::load(name, weights.as_deref(), 1000, &device)?,
    };
    let load_ms = ms(start);
    let input = make_input(model.as_ref(), &args, &device)?;
    let method = if args.method == "forward" {
        None
    } else {
        Some(cam::method(&args.method)?)
    };
    let layers: Vec<String> = args.layer.iter().cloned().collect();
    let runner = match &method {
        Some(m) => Some(Cam::new(model.as_ref(), m.as_ref(), &layers)?),
        None => None,
    };
    let layer_name = match &runner {
        Some(r) => model.layers()[r.layers()[0]].name.clone(),
        None => "-".to_string(),
    };
    let run = |last: &mut Option<Last>| -> anyhow::Result<Sample> {
        let start = Instant::now();
        match &runner {
            Some(cam) => {
                let out = cam.run(input.clone(), &Targets::Rank(0))?;
                let total = ms(start);
                let t = out.timings;
                *last = Some(Last {
                    maps: out.maps,
                    size: out.size,
                    classes: out.classes,
                });
                Ok(Sample {
                    total,
                    forward: t.forward,
                    backward: t.backward,
                    postprocess: t.postprocess,
                })
            }
            None => {
                let logits: Vec<f32> = model
                    .forward(input.clone())
                    .unwrap()
                    .into_data()
                    .iter::<f32>()
                    .collect();
                let total = ms(start);
                let classes = logits
                    .chunks(model.num_classes())
                    .map(|row| Some(cam::ranked(row)[0]))
                    .collect();
                *last = Some(Last {
                    maps: Vec::new(),
                    size: (0, 0),
                    classes,
                });
                Ok(Sample {
                    total,
                    forward: total,
                    ..Sample::default()
                })
            }
        }
    };

    let mut last = None;
    let warm = run(&mut last)?;
    let header = serde_json::json!({
        "model": args.model,
        "layer": layer_name,
        "method": args.method,
        "batch": args.batch,
        "load_ms": load_ms,
        "warmup_ms_per_image": warm.total / args.batch as f64,
        "threads": rayon_threads(),
    });

    if args.serve {
        println!("{}", serde_json::json!({ "ready": header }));
        std::io::stdout().flush()?;
        for line in std::io::stdin().lock().lines() {
            let line = line?;
            let line = line.trim();
            if line == "run" {
                let s = run(&mut last)?;
                let classes = last.as_ref().map(|l| l.classes.clone()).unwrap_or_default();
                println!(
                    "{}",
                    serde_json::json!({
                        "ms_per_image": s.total / args.batch as f64,
                        "forward": s.forward / args.batch as f64,
                        "backward": s.backward / args.batch as f64,
                        "postprocess": s.postprocess / args.batch as f64,
                        "classes": classes,
                    })
                );
            } else if let Some(path) = line.strip_prefix("dump ") {
                dump(last.as_ref(), Path::new(path.trim()))?;
                println!("{}", serde_json::json!({ "dumped": path.trim() }));
            } else if line == "quit" || line.is_empty() {
                break;
            } else {
                println!(
                    "{}",
                    serde_json::json!({ "error": format!("unknown command {line:?}") })
                );
            }
            std::io::stdout().flush()?;
        }
        return Ok(());
    }

    let samples: Vec<Sample> = (0..args.reps)
        .map(|_| run(&mut last))
        .collect::<anyhow::Result<_>>()?;
    if let Some(path) = &args.dump {
        dump(last.as_ref(), path)?;
    }
    let per_image = |f: fn(&Sample) -> f64| -> Vec<f64> {
        samples.iter().map(|s| f(s) / args.batch as f64).collect()
    };
    let totals = per_image(|s| s.total);
    let mut result = header;
    let fields = result.as_object_mut().expect("an object");
    fields.insert("reps".into(), args.reps.into());
    fields.insert("median_ms_per_image".into(), median(&totals).into());
    fields.insert(
        "min_ms_per_image".into(),
        totals.iter().copied().fold(f64::INFINITY, f64::min).into(),
    );
    fields.insert(
        "forward_ms_per_image".into(),
        median(&per_image(|s| s.forward)).into(),
    );
    fields.insert(
        "backward_ms_per_image".into(),
        median(&per_image(|s| s.backward)).into(),
    );
    fields.insert(
        "postprocess_ms_per_image".into(),
        median(&per_image(|s| s.postprocess)).into(),
    );
    fields.insert("samples_ms_per_image".into(), totals.into());
    fields.insert(
        "classes".into(),
        serde_json::to_value(last.map(|l| l.classes).unwrap_or_default())?,
    );
    println!("{}", serde_json::to_string(&result)?);
    Ok(())
}

fn parse(raw: Vec<String>) -> anyhow::Result<Args> {
    let mut positional = Vec::new();
    let mut input = None;
    let mut dump = None;
    let mut serve = false;
    let mut it = raw.into_iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--input" => {
                input = Some(PathBuf::from(
                    it.next()
                        .ok_or_else(|| anyhow::anyhow!("--input needs a path"))?,
                ))
            }
            "--dump" => {
                dump = Some(PathBuf::from(
                    it.next()
                        .ok_or_else(|| anyhow::anyhow!("--dump needs a path"))?,
                ))
            }
            "--serve" => serve = true,
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            _ => positional.push(a),
        }
    }
    let [model, weights, layer, method, batch, reps] = <[String; 6]>::try_from(positional)
        .map_err(|p| anyhow::anyhow!("expected 6 arguments, got {}\n{USAGE}", p.len()))?;
    let dash = |s: String| if s == "-" { None } else { Some(s) };
    let batch: usize = batch.parse()?;
    anyhow::ensure!(batch > 0, "BATCH must be at least 1");
    Ok(Args {
        model,
        weights: dash(weights).map(PathBuf::from),
        layer: dash(layer),
        method,
        batch,
        reps: reps.parse()?,
        input,
        dump,
        serve,
    })
}

fn make_input(model: &dyn CamModel, args: &Args, device: &Device) -> anyhow::Result<Tensor<4>> {
    let (h, w) = model.preprocess().size;
    let (data, shape) = match &args.input {
        Some(path) => {
            let (data, shape) = read_npy(path)?;
            anyhow::ensure!(
                shape.len() == 4 && shape[0] >= args.batch && shape[1] == 3,
                "{}: shape {shape:?}, expected [>= {}, 3, H, W]",
                path.display(),
                args.batch
            );
            let per = shape[1] * shape[2] * shape[3];
            (
                data[..args.batch * per].to_vec(),
                [args.batch, 3, shape[2], shape[3]],
            )
        }
        None => (normal(args.batch * 3 * h * w, 0), [args.batch, 3, h, w]),
    };
    Ok(Tensor::from_data(TensorData::new(data, shape), device))
}

/// Standard normal values from a fixed seed (xorshift64* and Box-Muller).
fn normal(n: usize, seed: u64) -> Vec<f32> {
    let mut state = seed ^ 0x9E37_79B9_7F4A_7C15;
    let mut uniform = || {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        ((state.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    };
    (0..n)
        .map(|_| {
            let (u, v) = (uniform(), uniform());
            ((-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()) as f32
        })
        .collect()
}

fn dump(last: Option<&Last>, path: &Path) -> anyhow::Result<()> {
    let last = last.ok_or_else(|| anyhow::anyhow!("nothing ran yet"))?;
    anyhow::ensure!(!last.maps.is_empty(), "the forward case makes no maps");
    let data: Vec<f32> = last.maps.concat();
    std::fs::write(
        path,
        npy_bytes(&data, &[last.maps.len(), last.size.0, last.size.1]),
    )?;
    Ok(())
}

fn rayon_threads() -> usize {
    std::env::var("RAYON_NUM_THREADS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&n| n > 0)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

fn ms(start: Instant) -> f64 {
    start.elapsed().as_secs_f64() * 1e3
}
