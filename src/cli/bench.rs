//! `gradcam bench`: what a model costs on this machine, before a dataset run.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use burn::tensor::Device;
use clap::Args;
use gradcam::bench::{BenchOptions, BenchReport, Spread, bench};
use gradcam::io::read_npy;

use super::ModelArgs;

#[derive(Args, Debug)]
pub struct BenchArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Built-in models: random weights instead of the checkpoint (the speed is the same; nothing
    /// is downloaded or looked up).
    #[arg(long, conflicts_with = "weights")]
    pub random_weights: bool,
    #[arg(long, default_value = "gradcam", help = super::methods_help())]
    pub method: String,
    /// Layer to explain (repeat for several). Default: the model's.
    #[arg(long = "layer", short)]
    pub layers: Vec<String>,
    /// Images per pass.
    #[arg(long, short = 'b', default_value_t = 1,
          value_parser = clap::value_parser!(u64).range(1..=4096))]
    pub batch: u64,
    /// Timed passes of each kind (after the warm-up).
    #[arg(long, short = 'n', default_value_t = 10,
          value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub iters: u64,
    /// Untimed passes of each kind first.
    #[arg(long, default_value_t = 2)]
    pub warmup: u64,
    /// Time the forward pass alone, not the explanation.
    #[arg(long)]
    pub forward_only: bool,
    /// The network input as a float32 .npy `[N, 3, H, W]` with N >= --batch (its first images
    /// are used), to time the same input as another tool. Default: fixed-seed normal values.
    #[arg(long, value_name = "X.npy")]
    pub input: Option<PathBuf>,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: BenchArgs) -> anyhow::Result<ExitCode> {
    let device = Device::flex();
    let spec = args.model.spec()?;
    let model: Arc<dyn gradcam::model::CamModel> = match args.random_weights {
        true if spec.is_onnx() => {
            anyhow::bail!("--random-weights is for built-in models; an ONNX file holds its own")
        }
        true => gradcam::model::build(&spec.name, spec.num_classes, &device)?.into(),
        false => spec.load(&device)?.into(),
    };
    let batch = args.batch as usize;
    let input = match &args.input {
        Some(path) => Some(first_images(path, batch, model.preprocess().size)?),
        None => None,
    };
    let options = BenchOptions {
        method: args.method.clone(),
        layers: args.layers.clone(),
        batch,
        iters: args.iters as usize,
        warmup: args.warmup as usize,
        explain: !args.forward_only,
        input,
    };
    let report = bench(model, &options)?;
    if args.json {
        println!("{}", serde_json::to_string(&json(&report))?);
    } else {
        print_text(&report);
    }
    Ok(ExitCode::SUCCESS)
}

/// The first `batch` images of a `[N, 3, H, W]` .npy at the model's input size.
fn first_images(
    path: &std::path::Path,
    batch: usize,
    (h, w): (usize, usize),
) -> anyhow::Result<Vec<f32>> {
    let (data, shape) = read_npy(path).with_context(|| format!("--input {}", path.display()))?;
    if shape.len() != 4 || shape[0] < batch || shape[1..] != [3, h, w] {
        anyhow::bail!(
            "--input {}: shape {shape:?}; the model needs [>= {batch}, 3, {h}, {w}]",
            path.display()
        );
    }
    Ok(data[..batch * 3 * h * w].to_vec())
}

/// The flat JSON object of `--json`: `forward_ms_per_image` and `explain_ms_per_image` are
/// medians, with `_min` / `_max` beside them and every sample.
fn json(r: &BenchReport) -> serde_json::Value {
    let mut v = serde_json::json!({
        "model": r.model,
        "method": r.method,
        "layers": r.layers,
        "batch": r.batch,
        "iters": r.iters,
        "threads": r.threads,
        "input_size": [r.input_size.0, r.input_size.1],
        "forward_ms_per_image": r.forward.median,
        "forward_min_ms_per_image": r.forward.min,
        "forward_max_ms_per_image": r.forward.max,
        "forward_samples_ms_per_image": r.forward_samples,
        "explain_ms_per_image": null,
        "explain_min_ms_per_image": null,
        "explain_max_ms_per_image": null,
        "explain_samples_ms_per_image": r.explain_samples,
        "explain_over_forward": null,
    });
    if let Some(e) = r.explain {
        v["explain_ms_per_image"] = e.median.into();
        v["explain_min_ms_per_image"] = e.min.into();
        v["explain_max_ms_per_image"] = e.max.into();
        v["explain_over_forward"] = (e.median / r.forward.median).into();
    }
    v
}

fn print_text(r: &BenchReport) {
    let (h, w) = r.input_size;
    println!(
        "{}  input {h}x{w}, batch {}, {} threads, {} timed passes after a warm-up",
        r.model, r.batch, r.threads, r.iters
    );
    let line = |what: &str, s: &Spread| {
        println!(
            "  {what:<28} {:>9.2} ms/image  (min {:.2}, max {:.2})",
            s.median, s.min, s.max
        )
    };
    line("forward", &r.forward);
    if let Some(e) = &r.explain {
        line(&format!("{} at {}", r.method, r.layers.join("+")), e);
        println!(
            "  explanation / forward        {:>9.2}x",
            e.median / r.forward.median
        );
    }
}
