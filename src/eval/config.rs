//! What an evaluation is asked to do: the settings that decide its numbers, the run's
//! configuration, and what a failed image leaves behind.

use std::collections::HashSet;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::dataset::AnnotationFormat;
use super::{metrics, perturb};

/// The methods evaluated when none is named.
pub const DEFAULT_METHODS: &[&str] = &[
    "gradcam",
    "gradcam++",
    "xgradcam",
    "layercam",
    "hirescam",
    "eigencam",
    "ablationcam",
];

/// The localization thresholds: 0.05, 0.10, ..., 0.50.
pub fn default_thresholds() -> Vec<f32> {
    (1..=10).map(|i| i as f32 * 0.05).collect()
}

/// Everything that decides the numbers. A report directory holds results of one setting only:
/// resuming with other settings is refused.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Settings {
    pub format: AnnotationFormat,
    pub model: String,
    /// The explained layers (empty: the model's default).
    pub layers: Vec<String>,
    /// Fractions of the map's maximum for the localization boxes.
    pub thresholds: Vec<f32>,
    /// Pointing game tolerance in pixels.
    pub pointing_tolerance: f32,
    /// Deletion and Insertion: number of steps from the image to the baseline.
    pub steps: usize,
    /// The value that deleted pixels take, in normalised space.
    pub deletion_baseline: f32,
    /// ROAD: percentages of pixels removed.
    pub road_removed: Vec<f64>,
    /// ROAD: standard deviation of the noise added to imputed values.
    pub road_noise: f32,
    /// Seed of ROAD's noise.
    pub seed: u64,
}

impl Settings {
    /// The defaults for `model` and the dataset format: thresholds 0.05..0.5, tolerance 15,
    /// 16 Deletion/Insertion steps (3136 pixels each at 224x224), ROAD at 10..90 % removed with
    /// noise 0.01.
    pub fn new(format: AnnotationFormat, model: &str, layers: Vec<String>) -> Self {
        Settings {
            format,
            model: model.to_string(),
            layers,
            thresholds: default_thresholds(),
            pointing_tolerance: metrics::POINTING_TOLERANCE,
            steps: 16,
            deletion_baseline: 0.0,
            road_removed: (1..=9).map(|i| i as f64 * 10.0).collect(),
            road_noise: perturb::ROAD_NOISE,
            seed: 0,
        }
    }
}

/// What to evaluate and where to write it.
pub struct EvalConfig {
    pub settings: Settings,
    pub methods: Vec<String>,
    /// Evaluate the first `limit` images (in name order) only.
    pub limit: Option<usize>,
    /// Deletion, Insertion and ROAD for the first `faithfulness_limit` images only (the
    /// confidence measures, one forward pass each, run on every image).
    pub faithfulness_limit: usize,
    /// Perturbed inputs per forward pass.
    pub batch_size: usize,
    pub report_dir: PathBuf,
    /// The command line, quoted in the report.
    pub command: Option<String>,
    /// Rewrite the report every so often during a long run (`None`: only at the end).
    pub report_every: Option<Duration>,
}

/// An image that could not be evaluated.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Failure {
    pub image: String,
    pub method: Option<String>,
    pub error: String,
}

/// Unique names, in order.
pub(crate) fn unique(names: &[String]) -> Vec<String> {
    let mut seen = HashSet::new();
    names
        .iter()
        .filter(|n| seen.insert(n.as_str()))
        .cloned()
        .collect()
}
