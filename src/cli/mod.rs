//! Command-line parsing and the subcommands. Exit status: 0 when everything worked, 1 when
//! some images failed, 2 on a fatal error.

mod bench;
mod concepts;
mod eval;
mod explain;
mod merge;
mod models;
mod serve;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use gradcam::model::{CamModel, ModelSpec, OnnxOptions, Reshape, is_onnx_path};

#[derive(Parser)]
#[command(
    name = "gradcam",
    version,
    about = "Grad-CAM and its family: see what a vision model looks at"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Explain images: top-5 classes, a CAM overlay, the map as .npy and a localization box.
    Explain(explain::ExplainArgs),
    /// Measure the maps over a labelled image set: localization error, pointing game,
    /// Average Drop / Increase in Confidence, Deletion / Insertion, ROAD, time.
    Eval(eval::EvalArgs),
    /// List the models, their layers (with output shapes at the input size) and defaults.
    Models(models::ModelsArgs),
    /// Join the manifests of sharded runs into one (sorted, one line per image).
    Merge(merge::MergeArgs),
    /// Serve an HTTP API and a web page to explore explanations.
    Serve(serve::ServeArgs),
    /// Time a model's forward pass and explanation per image on this machine.
    Bench(bench::BenchArgs),
}

/// Which model, with which weights.
#[derive(Args, Debug, Clone)]
pub struct ModelArgs {
    #[arg(long, short, default_value = "efficientnet_lite0", help = models_help())]
    pub model: String,
    /// Checkpoint (.pth or .safetensors with torchvision's keys). EfficientNet-Lite0 fetches
    /// its ImageNet weights by itself; torchvision models also look in torchvision's cache.
    #[arg(long, short)]
    pub weights: Option<PathBuf>,
    /// Number of classes of the checkpoint's classifier.
    #[arg(long, default_value_t = 1000)]
    pub num_classes: usize,
    #[command(flatten)]
    pub onnx: OnnxArgs,
}

/// What an ONNX file does not say about itself.
#[derive(Args, Debug, Clone, Default)]
pub struct OnnxArgs {
    /// ONNX models: network input size HxW (default: the graph's, when fixed).
    #[arg(long, value_name = "HxW", value_parser = parse_size)]
    pub input_size: Option<(usize, usize)>,
    /// ONNX models: per-channel mean of RGB in [0, 1], `R,G,B` (default: ImageNet's).
    #[arg(long, value_name = "R,G,B", value_parser = parse_rgb)]
    pub mean: Option<[f32; 3]>,
    /// ONNX models: per-channel standard deviation, `R,G,B` (default: ImageNet's).
    #[arg(long, value_name = "R,G,B", value_parser = parse_rgb)]
    pub std: Option<[f32; 3]>,
    /// ONNX models: how token tensors become maps: vit (class token + grid), deit (two
    /// leading tokens), swin (channel-last), tokens:K, none (default: detected from shapes).
    #[arg(long, value_parser = |s: &str| s.parse::<Reshape>().map_err(|e| e.to_string()))]
    pub reshape: Option<Reshape>,
    /// ONNX models: the output that holds the logits, when the graph has several.
    #[arg(long, value_name = "NAME")]
    pub output: Option<String>,
    /// ONNX models: class names, one per line (default: ImageNet's for 1000 outputs).
    #[arg(long, value_name = "FILE")]
    pub labels: Option<PathBuf>,
}

impl OnnxArgs {
    /// The options, refused for a model that is not an ONNX file.
    pub fn options(&self, model: &str) -> anyhow::Result<OnnxOptions> {
        let options = OnnxOptions {
            input_size: self.input_size,
            mean: self.mean,
            std: self.std,
            reshape: self.reshape,
            output: self.output.clone(),
            labels: self.labels.clone(),
        };
        if !is_onnx_path(model) && options != OnnxOptions::default() {
            anyhow::bail!(
                "--input-size, --mean, --std, --reshape, --output and --labels are for ONNX \
                 models (--model FILE.onnx); {model} is built in"
            );
        }
        Ok(options)
    }
}

fn parse_size(s: &str) -> Result<(usize, usize), String> {
    let parse = |v: &str| {
        v.trim()
            .parse::<usize>()
            .ok()
            .filter(|&n| (1..=8192).contains(&n))
    };
    match s.split_once(['x', 'X']) {
        Some((h, w)) => parse(h).zip(parse(w)),
        None => parse(s).map(|n| (n, n)),
    }
    .ok_or_else(|| format!("expected HxW (e.g. 224x224), each in 1..=8192, got `{s}`"))
}

fn parse_rgb(s: &str) -> Result<[f32; 3], String> {
    let values: Vec<f32> = s
        .split(',')
        .map(|v| v.trim().parse::<f32>())
        .collect::<Result<_, _>>()
        .map_err(|_| format!("expected three numbers R,G,B, got `{s}`"))?;
    <[f32; 3]>::try_from(values).map_err(|_| format!("expected three numbers R,G,B, got `{s}`"))
}

impl ModelArgs {
    /// The model as the library names it.
    pub fn spec(&self) -> anyhow::Result<ModelSpec> {
        Ok(ModelSpec {
            name: self.model.clone(),
            weights: self.weights.clone(),
            num_classes: self.num_classes,
            onnx: self.onnx.options(&self.model)?,
        })
    }

    pub fn load(&self) -> anyhow::Result<Box<dyn CamModel>> {
        Ok(self.spec()?.load(&burn::tensor::Device::flex())?)
    }
}

/// `--model`'s help: every model of the library's table.
fn models_help() -> String {
    let names: Vec<&str> = gradcam::model::MODELS.iter().map(|m| m.name).collect();
    format!(
        "Model: {}, or an ONNX file (FILE.onnx; see `gradcam models`)",
        names.join(", ")
    )
}

/// `--method`'s help: every method of the library's table.
pub fn methods_help() -> String {
    let names: Vec<&str> = gradcam::cam::method_names().collect();
    format!(
        "CAM method: {} (`gradcam models` says what each does)",
        names.join(", ")
    )
}

pub fn run() -> anyhow::Result<ExitCode> {
    let cli = Cli::parse();
    match cli.command {
        Command::Explain(args) => explain::run(args),
        Command::Eval(args) => eval::run(args),
        Command::Models(args) => models::run(args),
        Command::Merge(args) => merge::run(args),
        Command::Serve(args) => serve::run(args),
        Command::Bench(args) => bench::run(args),
    }
}
