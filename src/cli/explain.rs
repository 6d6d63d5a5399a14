//! `gradcam explain`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use clap::Args;
use gradcam::cam::CamOptions;
use gradcam::explain::{Classes, Explainer, Explanation, OutputFiles, OutputOptions, write_outputs};
use gradcam::image::{MAX_PIXELS, load};
use gradcam::labels;

use super::ModelArgs;

#[derive(Args, Debug)]
pub struct ExplainArgs {
    /// Images to explain (JPEG, PNG, BMP, WebP).
    #[arg(required = true)]
    pub images: Vec<PathBuf>,
    /// Output directory.
    #[arg(long, short, default_value = "out")]
    pub out: PathBuf,
    #[command(flatten)]
    pub model: ModelArgs,
    /// CAM method.
    #[arg(long, default_value = "gradcam")]
    pub method: String,
    /// Layer to explain (repeat for several, fused by their mean). Default: the model's.
    #[arg(long = "layer", short)]
    pub layers: Vec<String>,
    /// Class to explain, by index or ImageNet name (repeatable). Default: the top-1.
    #[arg(long = "class", short, conflicts_with = "top_k")]
    pub classes: Vec<String>,
    /// Explain the K best classes, one map each.
    #[arg(long, short = 'k')]
    pub top_k: Option<usize>,
    /// Counterfactual explanation: regions that argue against the class.
    #[arg(long)]
    pub counterfactual: bool,
    /// Replace the channel sum by the first principal component.
    #[arg(long)]
    pub eigen_smooth: bool,
    /// Weight of the image in the overlay, in [0, 1].
    #[arg(long, default_value_t = 0.5)]
    pub image_weight: f32,
    /// Fraction of the map's maximum that delimits the localization box.
    #[arg(long, default_value_t = gradcam::localize::PAPER_THRESHOLD)]
    pub box_threshold: f32,
    /// Do not draw the box on the overlay.
    #[arg(long)]
    pub no_box: bool,
    /// Print each image's JSON on standard output instead of the summary.
    #[arg(long)]
    pub json: bool,
    /// Refuse images with more pixels than this (decompression bombs).
    #[arg(long, default_value_t = MAX_PIXELS)]
    pub max_pixels: u64,
}

pub fn run(args: ExplainArgs) -> anyhow::Result<ExitCode> {
    if !(0.0..=1.0).contains(&args.image_weight) {
        anyhow::bail!("--image-weight must be in [0, 1], got {}", args.image_weight);
    }
    if !(0.0..=1.0).contains(&args.box_threshold) {
        anyhow::bail!("--box-threshold must be in [0, 1], got {}", args.box_threshold);
    }
    if args.top_k == Some(0) {
        anyhow::bail!("--top-k must be at least 1");
    }
    let model = args.model.load().with_context(|| format!("loading {}", args.model.model))?;
    let num_classes = model.num_classes();
    let classes = if args.classes.is_empty() {
        Classes::Top(args.top_k.unwrap_or(1))
    } else {
        Classes::These(
            args.classes
                .iter()
                .map(|c| labels::class(c, num_classes))
                .collect::<Result<_, _>>()?,
        )
    };
    let options = CamOptions {
        counterfactual: args.counterfactual,
        eigen_smooth: args.eigen_smooth,
        ..Default::default()
    };
    let mut explainer = Explainer::new(model, &args.method, args.layers.clone(), options)?;
    explainer.box_threshold = args.box_threshold;
    let output = OutputOptions {
        image_weight: args.image_weight,
        draw_box: !args.no_box,
    };

    let mut failed = 0;
    for path in &args.images {
        match explain_one(&explainer, path, &classes, &args, &output) {
            Ok((explanation, files)) => {
                if args.json {
                    let json = serde_json::json!({ "image": path, "explanation": explanation, "files": files });
                    println!("{}", serde_json::to_string(&json)?);
                } else {
                    print_summary(path, &explanation, &files);
                }
            }
            Err(err) => {
                failed += 1;
                eprintln!("gradcam: {}: {err:#}", path.display());
            }
        }
    }
    Ok(if failed == 0 { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

fn explain_one(
    explainer: &Explainer,
    path: &Path,
    classes: &Classes,
    args: &ExplainArgs,
    output: &OutputOptions,
) -> anyhow::Result<(Explanation, OutputFiles)> {
    let start = Instant::now();
    let image = load(path, args.max_pixels)?;
    let decode = start.elapsed().as_secs_f64() * 1e3;
    let mut explanation = explainer.explain(std::slice::from_ref(&image), classes)?.remove(0);
    let start = Instant::now();
    let stem = path.file_stem().map_or("image".into(), |s| s.to_string_lossy());
    let files = write_outputs(&args.out, &stem, &image, &explanation, output)?;
    explanation.timings.postprocess += start.elapsed().as_secs_f64() * 1e3;
    if std::env::var_os("GRADCAM_TIMINGS").is_some() {
        let t = &explanation.timings;
        eprintln!(
            "timings {}: decode {decode:.1} ms, forward {:.1} ms, backward {:.1} ms, postprocess {:.1} ms",
            path.display(),
            t.forward,
            t.backward,
            t.postprocess
        );
    }
    Ok((explanation, files))
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
    for p in &e.top5 {
        println!("  {:>5.1}%  {:>4}  {}  (logit {:.3})", 100.0 * p.probability, p.class, p.label, p.logit);
    }
    for (i, m) in e.explanations.iter().enumerate() {
        let what = match (&m.class, &m.label) {
            (Some(c), Some(l)) => format!("{c} {l}"),
            _ => "target".to_string(),
        };
        let cf = if e.counterfactual { " (counterfactual)" } else { "" };
        let bbox = match &m.bbox {
            Some(b) => format!("box x1={} y1={} x2={} y2={}", b.x1, b.y1, b.x2, b.y2),
            None => "no box (empty map)".to_string(),
        };
        println!("  map for {what}{cf}: {bbox} -> {}", files.overlay[i].display());
    }
}
