//! `gradcam explain`: files, directories, glob patterns and lists of images, explained in
//! batches while worker threads decode the next ones; resumable (the manifest says what is
//! done) and shardable.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use std::sync::Arc;

use anyhow::Context;
use burn::tensor::Device;
use clap::Args;
use gradcam::batch::progress::Progress;
use gradcam::batch::{
    self, Done, FileFormats, Job, Observer, OutputFiles, RunOptions, Shard, Summary,
};
use gradcam::explain::Explanation;
use gradcam::image::MAX_PIXELS;
use gradcam::labels::ClassNames;
use gradcam::model::CamModel;
use gradcam::request::{ExplainRequest, RequestSpec};
use gradcam::timefmt::human;
use image::RgbImage;

use super::ModelArgs;

#[derive(Args, Debug)]
pub struct ExplainArgs {
    /// Images (JPEG, PNG, BMP, WebP), directories (walked recursively for *.jpg, *.jpeg,
    /// *.png, *.bmp, *.webp in any case) and glob patterns (quoted: 'data/**/*.JPEG').
    #[arg(required_unless_present = "from_list")]
    pub images: Vec<PathBuf>,
    /// Also read images, directories or patterns from FILE, one per line (`-`: standard input).
    #[arg(long, value_name = "FILE")]
    pub from_list: Option<PathBuf>,
    /// Output directory (also holds manifest.jsonl, the record of the run).
    #[arg(long, short, default_value = "out")]
    pub out: PathBuf,
    #[command(flatten)]
    pub model: ModelArgs,
    #[arg(long, default_value = "gradcam", help = super::methods_help())]
    pub method: String,
    /// Layer to explain (repeat for several, fused by their mean; refinecam: their product; legrad: transformer blocks, default the last 4). Default: the model's.
    #[arg(long = "layer", short)]
    pub layers: Vec<String>,
    /// Class to explain, by index or ImageNet name (repeatable). Default: the top-1 (segmentation
    /// models: the class with the most pixels).
    #[arg(long = "class", short, conflicts_with = "top_k")]
    pub classes: Vec<String>,
    /// Explain the K best classes, one map each (segmentation models: by their share of the
    /// pixels).
    #[arg(long, short = 'k')]
    pub top_k: Option<usize>,
    /// What explains a class: logit (pytorch-grad-cam's ClassifierOutputTarget), softmax
    /// (ClassifierOutputSoftmaxTarget: its probability) or binary (BinaryClassifierOutputTarget,
    /// for a model with one output: class 1 is the logit, class 0 its negation; default class:
    /// the predicted one). Default: logit.
    #[arg(long, value_name = "KIND")]
    pub target: Option<String>,
    /// Explain the cosine similarity of each image's embedding to IMAGE's instead of a class
    /// (pytorch-grad-cam's SimilarityToConceptTarget).
    #[arg(long, value_name = "IMAGE", conflicts_with_all = ["classes", "top_k", "target"])]
    pub similar_to: Option<PathBuf>,
    /// The embedding --similar-to compares: a layer, average-pooled, or an output of an ONNX
    /// model (as --output). Default: the model's output.
    #[arg(long, value_name = "NAME", requires = "similar_to")]
    pub embedding: Option<String>,
    /// Segmentation models (output (B, K, H, W)): explain the sum of the --class's logits over
    /// the light pixels of FILE (resized to the output's size) instead of over the pixels the
    /// model assigns to the class (pytorch-grad-cam's SemanticSegmentationTarget).
    #[arg(long, value_name = "FILE.png")]
    pub mask: Option<PathBuf>,
    /// deepfeaturefactorization: the number of concepts each image is split into (1 to 16;
    /// default 4, as pytorch-grad-cam's tutorial). Writes one PNG overlay per concept and one
    /// of all of them, each with its concepts' top classes.
    #[arg(long, value_name = "K")]
    pub concepts: Option<usize>,
    /// Counterfactual explanation: regions that argue against the class.
    #[arg(long)]
    pub counterfactual: bool,
    /// Replace the channel sum by the first principal component.
    #[arg(long)]
    pub eigen_smooth: bool,
    /// Test-time augmentation: mean of the maps of 6 flipped and rescaled inputs.
    #[arg(long)]
    pub aug_smooth: bool,
    /// Weight of the image in the overlay, in [0, 1].
    #[arg(long, default_value_t = 0.5)]
    pub image_weight: f32,
    /// Fraction of the map's maximum that delimits the localization box.
    #[arg(long, default_value_t = gradcam::localize::PAPER_THRESHOLD)]
    pub box_threshold: f32,
    /// Do not draw the box on the overlay (same as leaving `box` out of --format).
    #[arg(long)]
    pub no_box: bool,
    /// Files to write per image, a comma list of: jpg or png (the overlay), npy (the map),
    /// raw (the raw map at layer resolution), json, box (drawn on the overlay).
    #[arg(long, default_value = "jpg,npy,raw,json,box")]
    pub format: String,
    /// Also write index.html, a gallery of the run that opens without a server.
    #[arg(long)]
    pub html: bool,
    /// Print each image's JSON on standard output instead of the summary.
    #[arg(long)]
    pub json: bool,
    /// Refuse images with more pixels than this (decompression bombs).
    #[arg(long, default_value_t = MAX_PIXELS)]
    pub max_pixels: u64,
    /// Images per forward and backward pass (default: the model's fastest, 8; 1 for an ONNX
    /// graph exported for batches of one).
    #[arg(long, short = 'b', value_parser = clap::value_parser!(u64).range(1..=4096))]
    pub batch_size: Option<u64>,
    /// Worker threads that decode and write images, 1 to 64 (default: half the cores, at
    /// most 8).
    #[arg(long, short = 'j', value_parser = clap::value_parser!(u64).range(1..=64))]
    pub jobs: Option<u64>,
    /// Do part I of N (from 0) of the images. Default: from SLURM_ARRAY_TASK_ID and
    /// SLURM_ARRAY_TASK_COUNT, or a Kubernetes indexed Job's JOB_COMPLETION_INDEX with
    /// --shards or GRADCAM_SHARDS; else everything.
    #[arg(long, value_name = "I/N")]
    pub shard: Option<String>,
    /// Number of shards, with JOB_COMPLETION_INDEX (or to override SLURM_ARRAY_TASK_COUNT).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub shards: Option<u64>,
    /// Explain every image again, even those the manifest says are done.
    #[arg(long)]
    pub overwrite: bool,
    /// When another run is writing this --out (and shard), wait for it instead of failing.
    #[arg(long)]
    pub wait_lock: bool,
    /// No progress and no per-image summaries (errors are still reported).
    #[arg(long, short)]
    pub quiet: bool,
}

fn default_jobs() -> usize {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    (cores / 2).clamp(1, 8)
}

impl ExplainArgs {
    /// The explanation asked for, as the library checks it (the server takes the same), with
    /// the decoded --similar-to image and the embedding layer (`None` for an ONNX model's
    /// output).
    fn request(
        &self,
        classes: ClassNames,
        similar_to: Option<RgbImage>,
        embedding: Option<String>,
        mask: Option<Arc<::image::GrayImage>>,
    ) -> gradcam::Result<ExplainRequest> {
        RequestSpec {
            method: Some(self.method.clone()),
            layers: self.layers.clone(),
            target: self.target.clone(),
            similar_to: similar_to.map(Arc::new),
            embedding,
            mask,
            classes: self.classes.clone(),
            top_k: self.top_k,
            counterfactual: self.counterfactual,
            eigen_smooth: self.eigen_smooth,
            aug_smooth: self.aug_smooth,
            image_weight: Some(self.image_weight),
            box_threshold: Some(self.box_threshold),
            draw_box: None,
        }
        // Every class may be asked for (the check bounds it by the model's classes).
        .check(classes, usize::MAX)
    }
}

pub fn run(args: ExplainArgs) -> anyhow::Result<ExitCode> {
    // DFF makes concepts, not a map per class: its own path (an unknown method falls through
    // to the request's check and its error).
    let finds_concepts = gradcam::cam::method_info(&args.method).is_ok_and(|m| m.finds_concepts());
    if finds_concepts {
        return super::concepts::run(&args);
    }
    if args.concepts.is_some() {
        anyhow::bail!(
            "--concepts is the number of concepts of --method deepfeaturefactorization; {} makes a map per class",
            args.method
        );
    }
    let mut spec = args.model.spec()?;
    // An ONNX model's embedding is one of its outputs (the one the model is then read at) or
    // else one of its layers, average-pooled as for the built-in models.
    let mut embedding = args.embedding.clone();
    if spec.is_onnx()
        && let Some(name) = embedding.clone()
        && gradcam::onnx::load(&spec.name)
            .with_context(|| format!("loading {}", spec.name))?
            .output_names()
            .contains(&name.as_str())
    {
        match &spec.onnx.output {
            Some(output) if *output != name => anyhow::bail!(
                "--embedding {name} and --output {output} name different outputs; an ONNX \
                 model's embedding output is the one it is read at: give one of them"
            ),
            _ => spec.onnx.output = Some(name),
        }
        embedding = None;
    }
    let mask = match &args.mask {
        Some(path) => Some(Arc::new(
            ::image::open(path)
                .with_context(|| format!("reading --mask {}", path.display()))?
                .to_luma8(),
        )),
        None => None,
    };
    let similar_to = match &args.similar_to {
        Some(path) => Some(
            gradcam::image::load(path, args.max_pixels)
                .with_context(|| format!("reading --similar-to {}", path.display()))?,
        ),
        None => None,
    };
    // An ONNX model's classes and layers are known once it is loaded: load it first, so that a
    // bad class or layer fails before anything is written.
    let loaded: Option<Arc<dyn CamModel>> = if spec.is_onnx() {
        let model: Arc<dyn CamModel> = spec
            .load(&Device::flex())
            .with_context(|| format!("loading {}", spec.name))?
            .into();
        let method_default = gradcam::cam::method(&args.method)
            .ok()
            .and_then(|m| gradcam::cam::Method::default_layers(m.as_ref(), model.as_ref()))
            .and_then(|names| names.ok());
        if args.layers.is_empty() && !args.quiet {
            match method_default {
                // LeGrad's blocks.
                Some(names) => eprintln!(
                    "gradcam: {}: explaining {} (the method's default; choose with --layer, list with `gradcam models {}`)",
                    spec.name,
                    names.join(", "),
                    spec.name
                ),
                None => eprintln!(
                    "gradcam: {}: explaining layer {} (the default: the last feature map; choose with --layer, list with `gradcam models {}`)",
                    spec.name,
                    model.default_layer(),
                    spec.name
                ),
            }
        }
        Some(model)
    } else {
        None
    };
    let request = match &loaded {
        Some(model) => {
            let request = args.request(model.class_names(), similar_to, embedding, mask)?;
            // Every check that needs the model (layers, segmentation, the embedding).
            gradcam::explain::Explainer::from_request(model.clone(), &request)?;
            request
        }
        None => args.request(args.model.num_classes.into(), similar_to, embedding, mask)?,
    };
    let mut formats: FileFormats = args.format.parse()?;
    if args.no_box {
        formats.draw_box = false;
    }
    if args.html && formats.overlay.is_none() {
        anyhow::bail!("--html shows the overlays: add jpg or png to --format");
    }
    let (shard, shard_source) = Shard::resolve(
        args.shard.as_deref(),
        args.shards.map(|n| n as usize),
        |k| std::env::var(k).ok(),
    )?;
    let mut arguments = args.images.clone();
    if let Some(list) = &args.from_list {
        arguments.extend(
            batch::inputs::read_list(list)
                .with_context(|| format!("reading --from-list {}", list.display()))?,
        );
    }
    let inputs = batch::inputs::expand(&arguments, Some(&args.out));
    if inputs.is_empty() {
        eprintln!(
            "gradcam: warning: no images found in {}",
            describe(&arguments)
        );
    }
    let job = Job {
        inputs,
        model: spec,
        loaded,
        request,
    };
    let options = RunOptions {
        out: args.out.clone(),
        formats,
        html: args.html,
        shard,
        shard_source: shard_source.to_string(),
        overwrite: args.overwrite,
        wait_lock: args.wait_lock,
        batch_size: args.batch_size.map(|b| b as usize),
        threads: args.jobs.map_or_else(default_jobs, |j| j as usize),
        max_pixels: args.max_pixels,
    };
    let mut printer = Printer {
        args: &args,
        progress: None,
        timings: std::env::var_os("GRADCAM_TIMINGS").is_some(),
    };
    let summary = batch::run(job, &options, &mut printer)
        .with_context(|| format!("explaining with {}", args.model.model))?;
    if let Some(progress) = &mut printer.progress {
        progress.finish();
    }
    printer.notice(&summary_line(&summary));
    Ok(if summary.failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// The last line: what was done, how fast, where the manifest is.
fn summary_line(s: &Summary) -> String {
    let mut line = format!(
        "{} explained, {} failed, {} skipped (already done) in {}",
        s.explained,
        s.failed,
        s.skipped,
        human(s.elapsed)
    );
    if s.other_shards > 0 {
        line.push_str(&format!(", {} in other shards", s.other_shards));
    }
    if s.explained + s.failed > 0 {
        line.push_str(&format!(
            "; {:.1} images/s, batch {}, {} worker thread{}",
            s.rate,
            s.batch_size,
            s.threads,
            if s.threads == 1 { "" } else { "s" }
        ));
    }
    if let Some(manifest) = &s.manifest {
        line.push_str(&format!("; manifest {}", manifest.display()));
    }
    line
}

/// Shows the run on the terminal: notices and the progress on standard error, each image's
/// summary (or JSON) on standard output.
struct Printer<'a> {
    args: &'a ExplainArgs,
    progress: Option<Progress>,
    timings: bool,
}

impl Observer for Printer<'_> {
    fn notice(&mut self, text: &str) {
        if !self.args.quiet {
            eprintln!("gradcam: {text}");
        }
    }

    fn warning(&mut self, text: &str) {
        eprintln!("gradcam: {text}");
    }

    fn started(&mut self, todo: usize) {
        self.progress = Some(Progress::new(
            todo,
            self.args.quiet,
            Duration::from_secs(10),
        ));
    }

    fn done(&mut self, images: &[Done]) {
        let failed = images.iter().filter(|d| d.outcome.is_err()).count();
        let (args, timings) = (self.args, self.timings);
        if let Some(progress) = &mut self.progress {
            progress.suspend(|| report(images, args, timings));
            progress.add(images.len(), failed);
        }
    }
}

fn describe(args: &[PathBuf]) -> String {
    let shown: Vec<String> = args
        .iter()
        .take(3)
        .map(|p| p.display().to_string())
        .collect();
    let more = if args.len() > 3 { ", ..." } else { "" };
    format!("{}{more}", shown.join(", "))
}

/// Per-image output: the summary or the JSON on standard output, errors on standard error.
fn report(done: &[Done], args: &ExplainArgs, timings: bool) {
    for d in done {
        match &d.outcome {
            Ok((e, files)) => {
                if args.json {
                    let json = serde_json::json!({ "image": d.input.path, "explanation": e, "files": files });
                    println!("{}", serde_json::to_string(&json).expect("serialisable"));
                } else if !args.quiet {
                    print_summary(&d.input.path, e, files);
                }
                if timings {
                    let t = &e.timings;
                    eprintln!(
                        "timings {}: decode {:.1} ms, forward {:.1} ms, backward {:.1} ms, postprocess {:.1} ms",
                        d.input.path.display(),
                        d.decode_ms,
                        t.forward,
                        t.backward,
                        t.postprocess + d.write_ms
                    );
                }
            }
            Err(message) => eprintln!("gradcam: {message}"),
        }
    }
}

/// One line per class of an image's top 5: probability, index, label and logit.
pub(super) fn print_top5(top5: &[gradcam::explain::Prediction]) {
    for p in top5 {
        println!(
            "  {:>5.1}%  {:>4}  {}  (logit {:.3})",
            100.0 * p.probability,
            p.class,
            p.label,
            p.logit
        );
    }
}

fn print_summary(path: &Path, e: &Explanation, files: &OutputFiles) {
    println!(
        "{} ({}x{}): {} at {}, {}",
        path.display(),
        e.image_size.0,
        e.image_size.1,
        e.method,
        e.layers.join("+"),
        e.model
    );
    print_top5(&e.top5);
    for (i, m) in e.explanations.iter().enumerate() {
        let what = match (&m.class, &m.label) {
            (Some(c), Some(l)) => format!("{c} {l}"),
            _ => "target".to_string(),
        };
        let cf = if e.counterfactual {
            " (counterfactual)"
        } else {
            ""
        };
        let bbox = match &m.bbox {
            Some(b) => format!("box x1={} y1={} x2={} y2={}", b.x1, b.y1, b.x2, b.y2),
            None => "no box (empty map)".to_string(),
        };
        let target = files
            .overlay
            .get(i)
            .or(files.json.as_ref())
            .map_or(String::new(), |p| format!(" -> {}", p.display()));
        println!("  map for {what}{cf}: {bbox}{target}");
    }
}
