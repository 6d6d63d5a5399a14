//! One batch run from start to end: plan against the manifest, load the model only when there
//! is work, run the pipeline, record each image, sort the manifest, write the gallery.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use burn::tensor::Device;
use sha2::{Digest, Sha256};

use super::inputs::{Input, Shard};
use super::lock::ManifestLock;
use super::manifest::{self, Record, Status};
use super::output::FileFormats;
use super::pipeline::{self, Done, PipelineOptions};
use super::{finish_manifest, html, open_manifest, plan};
use crate::cam::ClassTarget;
use crate::error::Result;
use crate::explain::Explainer;
use crate::io::{remove_stale_temps, write_atomic};
use crate::model::{CamModel, ModelSpec};
use crate::request::{Classes, ExplainRequest};

/// The images of a run and what to make of them.
pub struct Job {
    /// The images, in the order they are done (see [`super::inputs::expand`]).
    pub inputs: Vec<Input>,
    pub model: ModelSpec,
    /// The model already loaded from `model` (e.g. to check the request against an ONNX
    /// model's classes); else it is loaded when there is work.
    pub loaded: Option<Arc<dyn CamModel>>,
    pub request: ExplainRequest,
}

/// How a run writes and paces itself.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// The output directory; it also holds the manifest.
    pub out: PathBuf,
    pub formats: FileFormats,
    /// Also write the gallery, `index.html`.
    pub html: bool,
    pub shard: Shard,
    /// Where the shard came from (`--shard`, `SLURM_ARRAY_TASK_ID`, ...), for messages.
    pub shard_source: String,
    /// Explain every image again, even those the manifest says are done.
    pub overwrite: bool,
    /// When another run holds this manifest's lock, wait for it instead of failing.
    pub wait_lock: bool,
    /// Images per pass; `None`: the model's [default](crate::model::CamModel::default_batch_size).
    pub batch_size: Option<usize>,
    /// Worker threads that decode and write images.
    pub threads: usize,
    /// Images with more pixels are refused before decoding.
    pub max_pixels: u64,
}

/// What a run tells its caller while it goes.
pub trait Observer {
    /// Something worth knowing, that `--quiet` hides.
    fn notice(&mut self, _text: &str) {}
    /// Something that may be wrong, shown even when quiet.
    fn warning(&mut self, _text: &str) {}
    /// The model is loaded and `todo` images are about to be explained.
    fn started(&mut self, _todo: usize) {}
    /// These images are done (or failed), their files written and their lines recorded.
    fn done(&mut self, _images: &[Done]) {}
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    /// Images found by the job (all shards).
    pub total: usize,
    pub explained: usize,
    pub failed: usize,
    /// Already done according to the manifest.
    pub skipped: usize,
    /// Left to the other shards.
    pub other_shards: usize,
    /// Images per second of the pipeline, when it ran.
    pub rate: f64,
    /// Images per pass, when the pipeline ran.
    pub batch_size: usize,
    pub threads: usize,
    /// The manifest, when there is one.
    pub manifest: Option<PathBuf>,
    pub elapsed: Duration,
}

/// The digest of everything that shapes an image's outputs: a resumed run redoes the images
/// whose line was made with another.
pub fn settings_digest(
    model: &ModelSpec,
    request: &ExplainRequest,
    formats: &FileFormats,
) -> String {
    let mut settings = serde_json::json!({
        "model": model.name,
        "weights": model.weights,
        "num_classes": model.num_classes,
        "method": request.method.name,
        "layers": request.layers,
        "classes": match &request.classes {
            Classes::Top(k) => serde_json::json!({ "top": k }),
            Classes::These(c) => serde_json::json!(c),
        },
        "counterfactual": request.options.counterfactual,
        "eigen_smooth": request.options.eigen_smooth,
        "aug_smooth": request.options.aug_smooth,
        "image_weight": request.image_weight,
        "box_threshold": request.box_threshold,
        "format": formats.id(),
    });
    // Only when not the default, so that existing output folders stay done.
    if request.target != ClassTarget::Logit {
        settings["target"] = serde_json::json!(request.target);
    }
    if let Some(mask) = &request.mask {
        let pixels = Sha256::digest(mask.as_raw());
        settings["mask"] = serde_json::json!({
            "size": [mask.width(), mask.height()],
            "sha256": pixels.iter().map(|b| format!("{b:02x}")).collect::<String>(),
        });
    }
    if let Some(s) = &request.similar_to {
        let (w, h) = s.image.dimensions();
        let pixels = Sha256::digest(s.image.as_raw());
        settings["similar_to"] = serde_json::json!({
            "size": [w, h],
            "sha256": pixels.iter().map(|b| format!("{b:02x}")).collect::<String>(),
            "embedding": s.embedding,
        });
    }
    // Only for ONNX models, so that built-in models' existing output folders stay done.
    if model.is_onnx() {
        settings["onnx"] = serde_json::json!(model.onnx);
    }
    manifest::settings_id(&settings)
}

/// Explains the images of `job` that are not done yet into `options.out`, resumably.
///
/// Failures of single images are recorded and counted, not returned; an error is what stops
/// the whole run (the model cannot be loaded, the manifest cannot be written).
pub fn run(
    job: Job,
    options: &RunOptions,
    observer: &mut (dyn Observer + Send),
) -> Result<Summary> {
    let started = Instant::now();
    let total = job.inputs.len();
    let settings = settings_digest(&job.model, &job.request, &options.formats);
    let shard = options.shard;
    // One run per manifest (held to the end); then a killed run's temporary files go.
    let _lock = ManifestLock::acquire(&options.out.join(shard.manifest_name()), options.wait_lock)?;
    remove_stale_temps(&options.out)?;
    let plan = plan(
        job.inputs,
        &options.out,
        options.shard,
        &settings,
        options.overwrite,
    )?;
    if shard.count > 1 {
        observer.notice(&format!(
            "shard {}/{} (from {}): {} of {total} images",
            shard.index,
            shard.count,
            options.shard_source,
            total - plan.other_shards
        ));
    }
    if plan.partial_last_line {
        observer.notice(&format!(
            "{}: dropped a partial last line (an interrupted run)",
            plan.manifest.display()
        ));
    }
    if plan.bad_lines > 0 {
        observer.warning(&format!(
            "{}: dropped {} unreadable lines",
            plan.manifest.display(),
            plan.bad_lines
        ));
    }
    let mut summary = Summary {
        total,
        explained: 0,
        failed: 0,
        skipped: plan.skipped,
        other_shards: plan.other_shards,
        rate: 0.0,
        batch_size: 0,
        threads: options.threads.max(1),
        manifest: None,
        elapsed: Duration::ZERO,
    };

    // The manifest, rewritten sorted, when this run touched it.
    let finished = if !plan.todo.is_empty() {
        let model: Arc<dyn CamModel> = match job.loaded {
            Some(model) => model,
            None => job.model.load(&Device::flex())?.into(),
        };
        let explainer = Explainer::from_request(model, &job.request)?;
        summary.batch_size = options
            .batch_size
            .unwrap_or_else(|| explainer.model.default_batch_size());
        let mut appender = open_manifest(&options.out, &plan)?;
        if plan.skipped > 0 {
            observer.notice(&format!(
                "{} images already done, {} to go",
                plan.skipped,
                plan.todo.len()
            ));
        }
        observer.started(plan.todo.len());
        let pipeline_options = PipelineOptions {
            batch_size: summary.batch_size,
            threads: summary.threads,
            max_pixels: options.max_pixels,
            classes: job.request.classes.clone(),
            out: options.out.clone(),
            format: options.formats,
            image_weight: job.request.image_weight,
        };
        let pipeline_start = Instant::now();
        pipeline::run(
            &explainer,
            &plan.todo,
            &pipeline_options,
            |done: Vec<Done>| {
                let records: Vec<Record> = done
                    .iter()
                    .map(|d| match &d.outcome {
                        Ok((e, files)) => Record::ok(d.input, e, files, &options.out, &settings),
                        Err(message) => Record::error(d.input, message.clone(), &settings),
                    })
                    .collect();
                appender.append(&records)?;
                let failed = records.iter().filter(|r| r.status == Status::Error).count();
                summary.explained += records.len() - failed;
                summary.failed += failed;
                observer.done(&done);
                Ok(())
            },
        )?;
        let seconds = pipeline_start.elapsed().as_secs_f64();
        summary.rate = (summary.explained + summary.failed) as f64 / seconds.max(1e-9);
        Some(finish_manifest(&plan.manifest)?)
    } else if plan.partial_last_line || plan.bad_lines > 0 {
        Some(finish_manifest(&plan.manifest)?)
    } else {
        // A shard with no images still leaves its (empty) manifest, so that `merge` knows it ran.
        if !plan.manifest.exists() {
            open_manifest(&options.out, &plan)?;
        }
        None
    };
    if options.html && options.out.is_dir() {
        let records = match finished {
            Some(records) => records,
            None => manifest::read(&plan.manifest)?.records,
        };
        let title = format!("gradcam: {}", options.out.display());
        let page = html::gallery(&title, &records, !options.formats.draw_box);
        write_atomic(&options.out.join(shard.html_name()), page.as_bytes())?;
    }
    summary.manifest = plan.manifest.exists().then_some(plan.manifest);
    summary.elapsed = started.elapsed();
    Ok(summary)
}
