//! The report: per-method summaries of the results, for `report.json` and `report.md` (the
//! plots are made from it by [`super::figures`]).

use std::collections::HashMap;
use std::fmt::Write as _;

use serde::Serialize;

use super::config::{EvalConfig, Failure, Settings, unique};
use super::dataset::{AnnotationFormat, Dataset, Sample};
use super::evaluate::ImageResult;
use super::metrics::{
    ClassificationMetric, Confidence, ConfidenceMetric, CurveMetric, CurveSummary,
    LocalizationMetric, PointingGame, RoadMetric, RoadSummary, TimeMetric, TopErrors,
};
use crate::localize::PAPER_THRESHOLD;
use crate::timefmt::duration;

/// One method's numbers.
#[derive(Debug, Clone, Serialize)]
pub struct MethodSummary {
    pub method: String,
    /// Images with a record.
    pub images: usize,
    pub classification: TopErrors,
    /// Localization error (percent) at each threshold of the settings.
    pub localization: Vec<TopErrors>,
    /// At the paper's threshold, 15%.
    pub localization_paper: TopErrors,
    /// Pointing game accuracy in percent, over `pointing_pairs` (image, class) pairs.
    pub pointing: f64,
    pub pointing_pairs: usize,
    pub confidence: Confidence,
    /// Images with Deletion, Insertion and ROAD.
    pub faithfulness_images: usize,
    pub deletion: CurveSummary,
    pub insertion: CurveSummary,
    pub road: RoadSummary,
    /// Mean milliseconds to make one map, and for all the measures of one image.
    pub map_ms: f64,
    pub total_ms: f64,
}

/// The whole report.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub title: String,
    pub dataset: String,
    pub format: AnnotationFormat,
    /// Images asked for.
    pub images: usize,
    pub faithfulness_limit: usize,
    pub command: Option<String>,
    pub settings: Settings,
    /// Top-1 / top-5 classification error of the model (the same for every method).
    pub classification: Option<TopErrors>,
    pub methods: Vec<MethodSummary>,
    pub failures: Vec<Failure>,
    /// Compute time of all the records, in seconds.
    pub compute_seconds: f64,
}

impl Report {
    /// Summarises the records of `samples` for the configured methods.
    pub fn new(
        dataset: &Dataset,
        config: &EvalConfig,
        samples: &[&Sample],
        records: &HashMap<(String, String), ImageResult>,
        failures: &[Failure],
    ) -> Report {
        let s = &config.settings;
        let xs: Vec<f64> = (0..=s.steps).map(|k| k as f64 / s.steps as f64).collect();
        let mut compute = 0.0;
        let mut methods = Vec::new();
        for method in unique(&config.methods) {
            let mut classification = ClassificationMetric::default();
            let mut localization = LocalizationMetric::new(&s.thresholds);
            let mut pointing = PointingGame::default();
            let mut confidence = ConfidenceMetric::default();
            let mut deletion = CurveMetric::new(xs.clone());
            let mut insertion = CurveMetric::new(xs.clone());
            let mut road = RoadMetric::new(s.road_removed.clone());
            let mut map_time = TimeMetric::default();
            let mut total_time = TimeMetric::default();
            for (i, sample) in samples.iter().enumerate() {
                let Some(r) = records.get(&(sample.name.clone(), method.clone())) else {
                    continue;
                };
                compute += r.total_ms / 1e3;
                classification.update(&r.classes, &r.top5);
                localization.update(&r.top5, |c, t| {
                    r.maps
                        .iter()
                        .find(|m| m.class == c)
                        .and_then(|m| m.iou.get(t).copied())
                });
                for m in &r.maps {
                    pointing.update(m.hit);
                }
                confidence.update(r.y, r.o);
                map_time.update(r.map_ms);
                total_time.update(r.total_ms);
                if i < config.faithfulness_limit
                    && let Some(f) = &r.faithfulness
                {
                    let f64s = |v: &[f32]| v.iter().map(|&x| x as f64).collect::<Vec<_>>();
                    deletion.update(&f64s(&f.deletion));
                    insertion.update(&f64s(&f.insertion));
                    road.update(r.y, &f64s(&f.road_morf), &f64s(&f.road_lerf));
                }
            }
            let paper = localization.at(PAPER_THRESHOLD).unwrap_or_default();
            methods.push(MethodSummary {
                method: method.clone(),
                images: classification.images,
                classification: classification.summary(),
                localization: localization.summary(),
                localization_paper: paper,
                pointing: pointing.summary(),
                pointing_pairs: pointing.total,
                confidence: confidence.summary(),
                faithfulness_images: deletion.images,
                deletion: deletion.summary(),
                insertion: insertion.summary(),
                road: road.summary(),
                map_ms: map_time.summary(),
                total_ms: total_time.summary(),
            });
        }
        let dataset_name = dataset
            .root
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| dataset.root.display().to_string());
        Report {
            title: format!("gradcam eval: {} on {dataset_name}", s.model),
            dataset: dataset.root.display().to_string(),
            format: dataset.format,
            images: samples.len(),
            faithfulness_limit: config.faithfulness_limit.min(samples.len()),
            command: config.command.clone(),
            settings: s.clone(),
            classification: methods
                .iter()
                .find(|m| m.images > 0)
                .map(|m| m.classification),
            methods,
            failures: failures.to_vec(),
            compute_seconds: compute,
        }
    }

    /// The headline table in Markdown.
    pub fn table(&self) -> String {
        let mut t = String::new();
        t.push_str(
            "| Method | Loc. error top-1 ↓ | Loc. error top-5 ↓ | Pointing ↑ | Avg Drop ↓ | Incr. Conf. ↑ \
             | Deletion ↓ | Insertion ↑ | ROAD MoRF ↓ | ROAD LeRF ↑ | ROAD ↑ | ms / map ↓ |\n",
        );
        t.push_str("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
        for m in &self.methods {
            let _ = writeln!(
                t,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                m.method,
                pct(m.localization_paper.top1),
                pct(m.localization_paper.top5),
                pct(m.pointing),
                pct(m.confidence.average_drop),
                pct(m.confidence.increase),
                num(m.deletion.auc, 3),
                num(m.insertion.auc, 3),
                num(m.road.morf_mean, 3),
                num(m.road.lerf_mean, 3),
                num(m.road.combined, 3),
                num(m.map_ms, 1),
            );
        }
        t
    }

    /// The whole `report.md`.
    pub fn markdown(&self) -> String {
        let s = &self.settings;
        let mut md = String::new();
        let _ = writeln!(md, "# {}\n", self.title);
        if let Some(c) = &self.command {
            let _ = writeln!(md, "Command:\n\n    {c}\n");
        }
        let layers = if s.layers.is_empty() {
            "the model's default".to_string()
        } else {
            s.layers.join(" + ")
        };
        let n = self.methods.iter().map(|m| m.images).max().unwrap_or(0);
        let nf = self
            .methods
            .iter()
            .map(|m| m.faithfulness_images)
            .max()
            .unwrap_or(0);
        let _ = writeln!(
            md,
            "Dataset: `{}` ({}), {} of {} images evaluated; Deletion, Insertion and ROAD on the first {}. \
             Model `{}`, layer {}. Compute time {}.\n",
            self.dataset,
            self.format,
            n,
            self.images,
            nf,
            s.model,
            layers,
            duration(self.compute_seconds)
        );
        if let Some(c) = &self.classification {
            let _ = writeln!(
                md,
                "Classification error of the model: top-1 {}%, top-5 {}% (the whole image resized to the \
                 network input, no crop).\n",
                pct(c.top1),
                pct(c.top5)
            );
        }
        md.push_str(&self.table());
        let _ = writeln!(
            md,
            "\nLocalization error (%) at the paper's threshold (15% of the map's maximum; IoU >= 0.5), \
             pointing game (%, maximum within {} px of a box of the class), Average Drop (%) and Increase in \
             Confidence (%) of the top-1 class on every image; Deletion and Insertion: area under the \
             top-1 probability curve ({} steps); ROAD: mean change of the top-1 probability over {}% of the \
             pixels removed, most (MoRF) and least (LeRF) relevant first, and (LeRF - MoRF) / 2. Arrows say \
             which way is better. Definitions: docs/eval/README.md.\n",
            s.pointing_tolerance,
            s.steps,
            s.road_removed
                .iter()
                .map(|r| format!("{r}"))
                .collect::<Vec<_>>()
                .join(", ")
        );

        md.push_str("## Localization error by threshold (top-1 / top-5, %)\n\n| Method |");
        for t in &s.thresholds {
            let _ = write!(md, " {t:.2} |");
        }
        md.push_str("\n|---|");
        md.push_str(&"---:|".repeat(s.thresholds.len()));
        md.push('\n');
        for m in &self.methods {
            let _ = write!(md, "| {} |", m.method);
            for e in &m.localization {
                let _ = write!(md, " {} / {} |", pct(e.top1), pct(e.top5));
            }
            md.push('\n');
        }
        md.push_str(
            "\n## Plots\n\n![Localization error by threshold](localization_threshold.png)\n\n\
             ![Deletion and Insertion](deletion_insertion.png)\n\n![ROAD](road.png)\n",
        );
        if !self.failures.is_empty() {
            let _ = writeln!(md, "\n## Failures ({})\n", self.failures.len());
            for f in &self.failures {
                let _ = writeln!(
                    md,
                    "- {} {}: {}",
                    f.image,
                    f.method.as_deref().unwrap_or(""),
                    f.error
                );
            }
        }
        md
    }
}

fn pct(v: f64) -> String {
    if v.is_finite() {
        format!("{v:.1}")
    } else {
        "–".into()
    }
}

fn num(v: f64, digits: usize) -> String {
    if v.is_finite() {
        format!("{v:.digits$}")
    } else {
        "–".into()
    }
}
