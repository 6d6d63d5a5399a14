//! `gradcam eval`: how well the maps localize objects and how faithful they are to the model,
//! measured over a labelled image set as the papers measure it.
//!
//! - **Localization** (Grad-CAM paper, section 4.1): the map of a class, thresholded at 15% of
//!   its maximum; the box of the largest 8-connected segment, in the evaluated image's pixels.
//!   Top-1 error: wrong unless the best class is right and its box has IoU >= 0.5 with a
//!   ground-truth box; top-5: unless one of the five best is, with its own map's box. The
//!   error is also measured at thresholds 0.05 to 0.5. Classification error alongside.
//! - **Pointing game** (Zhang et al., ECCV 2016): the map of each ground-truth class hits when
//!   its maximum is within 15 pixels of a box of that class.
//! - **Average Drop / Increase in Confidence** (Grad-CAM++): the top-1 class's probability
//!   on the (normalised) input `Y` and on the input multiplied by the map `O`.
//! - **Deletion / Insertion** (RISE, Petsiuk et al., BMVC 2018): pixels set to the baseline
//!   (zero in normalised space), or moved from a blurred copy into the image, most relevant
//!   first, in [`Settings::steps`] steps; the area under the top-1 probability curve.
//! - **ROAD** (Rong et al., ICML 2022) as pytorch-grad-cam: pixels removed most or least
//!   relevant first and filled by noisy linear imputation ([`perturb::impute`]).
//! - **Time** to make one map.
//!
//! Results are appended image by image to `results.jsonl` in the report directory, so an
//! interrupted run resumes where it stopped; the report (`report.md`, `report.json` and PNG
//! plots) is made from them.

mod config;
pub mod dataset;
pub mod evaluate;
pub mod figures;
mod imputation;
pub mod metrics;
pub mod perturb;
pub mod plot;
pub mod report;
mod store;

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use config::unique;
pub use config::{DEFAULT_METHODS, EvalConfig, Failure, Settings, default_thresholds};
pub use dataset::{AnnotationFormat, Dataset, Sample};
pub use evaluate::{Evaluator, ImageResult};
pub use report::{MethodSummary, Report};

use crate::cam::{self, Cam};
use crate::error::{Error, Result};
use crate::io::write_atomic;
use crate::kernels;
use crate::model::CamModel;

/// Where a run stands, for a progress bar.
#[derive(Debug, Clone)]
pub struct EvalProgress<'a> {
    /// (image, method) pairs done, out of `total` (resumed ones included).
    pub done: usize,
    pub total: usize,
    /// Done in this run.
    pub done_now: usize,
    pub image: &'a str,
    pub method: &'a str,
    pub elapsed: Duration,
    /// Estimated time left, once something was measured.
    pub eta: Option<Duration>,
}

/// What [`run`] did.
#[derive(Debug)]
pub struct Outcome {
    pub report: Report,
    /// Records found in the report directory and reused.
    pub resumed: usize,
    pub evaluated: usize,
    pub failures: Vec<Failure>,
    pub elapsed: Duration,
}

/// The file names in the report directory.
pub const RESULTS_FILE: &str = "results.jsonl";
pub const SETTINGS_FILE: &str = "settings.json";

/// Evaluates `config.methods` on `dataset` with `model`, resuming from the results already in
/// the report directory, and writes the report. `progress` is called after every
/// (image, method) pair.
pub fn run(
    model: &dyn CamModel,
    dataset: &Dataset,
    config: &EvalConfig,
    progress: &mut dyn FnMut(&EvalProgress),
) -> Result<Outcome> {
    let start = Instant::now();
    let settings = &config.settings;
    if config.methods.is_empty() {
        return Err(Error::Invalid("no method to evaluate".into()));
    }
    // A method named twice is evaluated once.
    let methods: Vec<Box<dyn cam::Method>> = unique(&config.methods)
        .iter()
        .map(|name| {
            let info = cam::method_info(name)?;
            if info.input_gradient.is_some() {
                return Err(Error::Invalid(format!(
                    "{name} makes an input-gradient image, not a map; eval measures the CAM \
                     methods (its localization is gradcam's)"
                )));
            }
            if info.finds_concepts() {
                return Err(Error::Invalid(format!(
                    "{name} finds concepts, not a map per class; eval measures the CAM methods \
                     (see its concepts with `gradcam explain --method {name}`)"
                )));
            }
            Ok(info.build())
        })
        .collect::<Result<_>>()?;
    for m in &methods {
        Cam::new(model, m.as_ref(), &settings.layers)?;
    }
    if settings.steps < 2 {
        return Err(Error::Invalid(
            "Deletion/Insertion need at least 2 steps".into(),
        ));
    }
    if settings
        .road_removed
        .iter()
        .any(|r| !(0.0..=100.0).contains(r))
    {
        return Err(Error::Invalid("ROAD percentages must be in 0..=100".into()));
    }
    std::fs::create_dir_all(&config.report_dir).map_err(|e| Error::io(&config.report_dir, e))?;
    check_settings(config)?;
    let (mut store, previous) = store::open(&config.report_dir.join(RESULTS_FILE))?;
    let mut records: HashMap<(String, String), ImageResult> = HashMap::new();
    for r in previous {
        records.insert((r.image.clone(), r.method.clone()), r);
    }

    let samples: Vec<&Sample> = dataset
        .samples
        .iter()
        .take(config.limit.unwrap_or(usize::MAX))
        .collect();
    let faithful = |i: usize| i < config.faithfulness_limit;
    let done = |records: &HashMap<(String, String), ImageResult>, i: usize, s: &Sample, m: &str| {
        records
            .get(&(s.name.clone(), m.to_string()))
            .is_some_and(|r| !faithful(i) || r.faithfulness.is_some())
    };
    let total = samples.len() * methods.len();
    let mut todo_faith = 0usize;
    let mut todo_plain = 0usize;
    let mut resumed = 0;
    for (i, s) in samples.iter().enumerate() {
        for m in &methods {
            if done(&records, i, s, m.name()) {
                resumed += 1;
            } else if faithful(i) {
                todo_faith += 1;
            } else {
                todo_plain += 1;
            }
        }
    }

    let evaluator = Evaluator {
        model,
        settings,
        batch_size: config.batch_size.max(1),
    };
    let mut failures = Vec::new();
    let mut evaluated = 0;
    let mut count = resumed;
    // Time spent per kind of pair, for the estimate of the time left.
    let (mut faith_time, mut faith_n, mut plain_time, mut plain_n) =
        (0.0f64, 0usize, 0.0f64, 0usize);
    let mut last_report = Instant::now();
    for (i, sample) in samples.iter().enumerate() {
        let pending: Vec<&Box<dyn cam::Method>> = methods
            .iter()
            .filter(|m| !done(&records, i, sample, m.name()))
            .collect();
        if pending.is_empty() {
            continue;
        }
        // On a worker, as explanations run (see `kernels::on_worker`).
        let prepared = match kernels::on_worker(|| evaluator.prepare(sample, faithful(i))) {
            Ok(p) => p,
            Err(e) => {
                failures.push(Failure {
                    image: sample.name.clone(),
                    method: None,
                    error: e.to_string(),
                });
                count += pending.len();
                continue;
            }
        };
        for method in pending {
            let t = Instant::now();
            match kernels::on_worker(|| evaluator.evaluate(sample, &prepared, method.as_ref())) {
                Ok(record) => {
                    store.append(std::slice::from_ref(&record))?;
                    records.insert((record.image.clone(), record.method.clone()), record);
                    evaluated += 1;
                }
                Err(e) => failures.push(Failure {
                    image: sample.name.clone(),
                    method: Some(method.name().to_string()),
                    error: e.to_string(),
                }),
            }
            let secs = t.elapsed().as_secs_f64();
            if faithful(i) {
                faith_time += secs;
                faith_n += 1;
                todo_faith = todo_faith.saturating_sub(1);
            } else {
                plain_time += secs;
                plain_n += 1;
                todo_plain = todo_plain.saturating_sub(1);
            }
            count += 1;
            let mean = |t: f64, n: usize| (n > 0).then(|| t / n as f64);
            let per_faith = mean(faith_time, faith_n);
            let per_plain = mean(plain_time, plain_n);
            // Unmeasured kinds: a faithfulness pair costs about 30 plain ones, as measured.
            let eta = match (per_faith, per_plain) {
                (None, None) => None,
                (f, p) => {
                    let f = f.unwrap_or_else(|| p.unwrap() * 30.0);
                    let p = p.unwrap_or(f / 30.0);
                    Some(Duration::from_secs_f64(
                        f * todo_faith as f64 + p * todo_plain as f64,
                    ))
                }
            };
            progress(&EvalProgress {
                done: count,
                total,
                done_now: evaluated,
                image: &sample.name,
                method: method.name(),
                elapsed: start.elapsed(),
                eta,
            });
            if config
                .report_every
                .is_some_and(|every| last_report.elapsed() >= every)
            {
                let report = Report::new(dataset, config, &samples, &records, &failures);
                write_report(&config.report_dir, &report)?;
                last_report = Instant::now();
            }
        }
    }
    let report = Report::new(dataset, config, &samples, &records, &failures);
    write_report(&config.report_dir, &report)?;
    Ok(Outcome {
        report,
        resumed,
        evaluated,
        failures,
        elapsed: start.elapsed(),
    })
}

/// Writes `report.json`, `report.md` and the plots into `dir`, each atomically.
fn write_report(dir: &Path, report: &Report) -> Result<()> {
    let json = serde_json::to_string_pretty(report).expect("serialisable");
    write_atomic(&dir.join("report.json"), json.as_bytes())?;
    write_atomic(&dir.join("report.md"), report.markdown().as_bytes())?;
    figures::write_plots(dir, report)
}

/// Records the settings in the report directory, or checks that they match those there.
fn check_settings(config: &EvalConfig) -> Result<()> {
    let path = config.report_dir.join(SETTINGS_FILE);
    let results = config.report_dir.join(RESULTS_FILE);
    if path.is_file() && results.is_file() {
        let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
        let old: Settings = serde_json::from_str(&text)
            .map_err(|e| Error::Invalid(format!("{}: {e}", path.display())))?;
        if old != config.settings {
            let a = serde_json::to_value(&old).expect("serialisable");
            let b = serde_json::to_value(&config.settings).expect("serialisable");
            let differ: Vec<String> = b
                .as_object()
                .expect("an object")
                .iter()
                .filter(|(k, v)| a.get(k.as_str()) != Some(v))
                .map(|(k, v)| {
                    format!(
                        "{k}: {} before, {v} now",
                        a.get(k.as_str()).unwrap_or(&serde_json::Value::Null)
                    )
                })
                .collect();
            return Err(Error::Invalid(format!(
                "{} holds results made with other settings ({}); use another --report directory, \
                 or delete {} to start again",
                config.report_dir.display(),
                differ.join("; "),
                results.display()
            )));
        }
        return Ok(());
    }
    let text = serde_json::to_string_pretty(&config.settings).expect("serialisable");
    write_atomic(&path, text.as_bytes())
}
