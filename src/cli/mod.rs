//! Command-line parsing and the subcommands. Exit status: 0 when everything worked, 1 when
//! some images failed, 2 on a fatal error.

mod eval;
mod explain;
mod merge;
mod models;
mod serve;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

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
}

impl ModelArgs {
    /// The model as the library names it.
    pub fn spec(&self) -> gradcam::model::ModelSpec {
        gradcam::model::ModelSpec {
            name: self.model.clone(),
            weights: self.weights.clone(),
            num_classes: self.num_classes,
            onnx: Default::default(),
        }
    }

    pub fn load(&self) -> anyhow::Result<Box<dyn gradcam::model::CamModel>> {
        Ok(self.spec().load(&burn::tensor::Device::flex())?)
    }
}

/// `--model`'s help: every model of the library's table.
fn models_help() -> String {
    let names: Vec<&str> = gradcam::model::MODELS.iter().map(|m| m.name).collect();
    format!("Model: {} (see `gradcam models`)", names.join(", "))
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
    }
}
