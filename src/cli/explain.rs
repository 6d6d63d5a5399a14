//! `gradcam explain`: files, directories, glob patterns and lists of images, explained in
//! batches while worker threads decode the next ones; resumable (the manifest says what is
//! done) and shardable.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use gradcam::batch::progress::{Progress, duration};
use gradcam::batch::{self, Done, Format, PipelineOptions, Record, Shard, Status, manifest};
use gradcam::cam::CamOptions;
use gradcam::explain::{Classes, Explainer, Explanation, OutputFiles};
use gradcam::image::MAX_PIXELS;
use gradcam::labels;

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
    /// Images per forward and backward pass (default: the model's fastest, 1 for
    /// EfficientNet-Lite0, 8 for ResNet and VGG).
    #[arg(long, short = 'b', value_parser = clap::value_parser!(u64).range(1..=4096))]
    pub batch_size: Option<u64>,
    /// Worker threads that decode and write images (default: half the cores, 1 to 8).
    #[arg(long, short = 'j')]
    pub jobs: Option<usize>,
    /// Do part I of N (from 0) of the images. Default: from SLURM_ARRAY_TASK_ID and
    /// SLURM_ARRAY_TASK_COUNT, or a Kubernetes indexed Job's JOB_COMPLETION_INDEX with
    /// --shards or GRADCAM_SHARDS; else everything.
    #[arg(long, value_name = "I/N")]
    pub shard: Option<String>,
    /// Number of shards, with JOB_COMPLETION_INDEX (or to override SLURM_ARRAY_TASK_COUNT).
    #[arg(long, value_name = "N")]
    pub shards: Option<usize>,
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

pub fn run(args: ExplainArgs) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    if !(0.0..=1.0).contains(&args.image_weight) {
        anyhow::bail!(
            "--image-weight must be in [0, 1], got {}",
            args.image_weight
        );
    }
    if !(0.0..=1.0).contains(&args.box_threshold) {
        anyhow::bail!(
            "--box-threshold must be in [0, 1], got {}",
            args.box_threshold
        );
    }
    if args.top_k == Some(0) {
        anyhow::bail!("--top-k must be at least 1");
    }
    let mut format: Format = args.format.parse()?;
    if args.no_box {
        format.draw_box = false;
    }
    if args.html && format.overlay.is_none() {
        anyhow::bail!("--html shows the overlays: add jpg or png to --format");
    }
    let num_classes = args.model.num_classes;
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
    let (shard, shard_from) = Shard::resolve(args.shard.as_deref(), args.shards, |k| {
        std::env::var(k).ok()
    })?;

    // Inputs, and what the manifest says is done.
    let mut arguments = args.images.clone();
    if let Some(list) = &args.from_list {
        arguments.extend(
            batch::inputs::read_list(list)
                .with_context(|| format!("reading --from-list {}", list.display()))?,
        );
    }
    let inputs = batch::inputs::expand(&arguments, Some(&args.out));
    let total = inputs.len();
    let settings = manifest::settings_id(&serde_json::json!({
        "model": args.model.model,
        "weights": args.model.weights,
        "num_classes": num_classes,
        "method": args.method,
        "layers": args.layers,
        "classes": match &classes { Classes::Top(k) => serde_json::json!({ "top": k }), Classes::These(c) => serde_json::json!(c) },
        "counterfactual": args.counterfactual,
        "eigen_smooth": args.eigen_smooth,
        "aug_smooth": args.aug_smooth,
        "image_weight": args.image_weight,
        "box_threshold": args.box_threshold,
        "format": format_id(&format),
    }));
    // One run per manifest (held to the end of `run`); then a killed run's temporary files go.
    let _lock =
        batch::lock::ManifestLock::acquire(&args.out.join(shard.manifest_name()), args.wait_lock)?;
    gradcam::io::remove_stale_temps(&args.out)?;
    let plan = batch::plan(inputs, &args.out, shard, &settings, args.overwrite)?;
    let say = |text: String| {
        if !args.quiet {
            eprintln!("gradcam: {text}");
        }
    };
    if shard.count > 1 {
        say(format!(
            "shard {}/{} (from {shard_from}): {} of {total} images",
            shard.index,
            shard.count,
            total - plan.other_shards
        ));
    }
    if plan.partial_last_line {
        say(format!(
            "{}: dropped a partial last line (an interrupted run)",
            plan.manifest.display()
        ));
    }
    if plan.bad_lines > 0 {
        eprintln!(
            "gradcam: {}: dropped {} unreadable lines",
            plan.manifest.display(),
            plan.bad_lines
        );
    }
    if total == 0 {
        eprintln!(
            "gradcam: warning: no images found in {}",
            describe(&arguments)
        );
    }

    let mut explained = 0;
    let mut failed = 0;
    let mut rate = 0.0;
    let threads = args.jobs.unwrap_or_else(default_jobs).max(1);
    let mut batch_size = 0;
    // The manifest, rewritten sorted, when this run touched it.
    let finished = if !plan.todo.is_empty() {
        let model = args
            .model
            .load()
            .with_context(|| format!("loading {}", args.model.model))?;
        batch_size = args
            .batch_size
            .map_or_else(|| model.default_batch_size(), |b| b as usize);
        let options = CamOptions {
            counterfactual: args.counterfactual,
            eigen_smooth: args.eigen_smooth,
            aug_smooth: args.aug_smooth,
        };
        let mut explainer =
            Explainer::new(model.into(), &args.method, args.layers.clone(), options)?;
        explainer.box_threshold = args.box_threshold;
        let mut appender = batch::open_manifest(&args.out, &plan)?;
        if plan.skipped > 0 {
            say(format!(
                "{} images already done, {} to go",
                plan.skipped,
                plan.todo.len()
            ));
        }
        let mut progress = Progress::new(plan.todo.len(), args.quiet, Duration::from_secs(10));
        let pipeline = PipelineOptions {
            batch_size,
            threads,
            max_pixels: args.max_pixels,
            classes,
            out: args.out.clone(),
            format,
            image_weight: args.image_weight,
        };
        let timings = std::env::var_os("GRADCAM_TIMINGS").is_some();
        batch::pipeline::run(&explainer, &plan.todo, &pipeline, |done: Vec<Done>| {
            let records: Vec<Record> = done
                .iter()
                .map(|d| match &d.outcome {
                    Ok((e, files)) => Record::ok(d.input, e, files, &args.out, &settings),
                    Err(message) => Record::error(d.input, message.clone(), &settings),
                })
                .collect();
            appender.append(&records)?;
            let bad = records.iter().filter(|r| r.status == Status::Error).count();
            explained += records.len() - bad;
            failed += bad;
            progress.suspend(|| report(&done, &args, timings));
            progress.add(done.len(), bad);
            Ok(())
        })?;
        rate = progress.rate();
        progress.finish();
        Some(batch::finish_manifest(&plan.manifest)?)
    } else if plan.partial_last_line || plan.bad_lines > 0 {
        Some(batch::finish_manifest(&plan.manifest)?)
    } else {
        // A shard with no images still leaves its (empty) manifest, so that `merge` knows it ran.
        if !plan.manifest.exists() {
            batch::open_manifest(&args.out, &plan)?;
        }
        None
    };
    if args.html && args.out.is_dir() {
        let records = match finished {
            Some(records) => records,
            None => manifest::read(&plan.manifest)?.records,
        };
        let title = format!("gradcam: {}", args.out.display());
        let page = batch::html::gallery(&title, &records, !format.draw_box);
        gradcam::io::write_atomic(&args.out.join(shard.html_name()), page.as_bytes())?;
    }
    let mut summary = format!(
        "{explained} explained, {failed} failed, {} skipped (already done) in {}",
        plan.skipped,
        match started.elapsed().as_secs_f64() {
            t if t < 60.0 => format!("{t:.1}s"),
            t => duration(t),
        }
    );
    if shard.count > 1 {
        summary.push_str(&format!(", {} in other shards", plan.other_shards));
    }
    if explained + failed > 0 {
        summary.push_str(&format!(
            "; {rate:.1} images/s, batch {batch_size}, {threads} worker thread{}",
            if threads == 1 { "" } else { "s" }
        ));
    }
    if plan.manifest.exists() {
        summary.push_str(&format!("; manifest {}", plan.manifest.display()));
    }
    say(summary);
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// The format as the settings digest sees it.
fn format_id(f: &Format) -> String {
    format!(
        "{}{}{}{}{}",
        f.overlay.map_or("", |o| o.extension()),
        if f.npy { ",npy" } else { "" },
        if f.raw { ",raw" } else { "" },
        if f.json { ",json" } else { "" },
        if f.draw_box { ",box" } else { "" }
    )
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
        println!(
            "  {:>5.1}%  {:>4}  {}  (logit {:.3})",
            100.0 * p.probability,
            p.class,
            p.label,
            p.logit
        );
    }
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
