//! What a model costs on this machine (`gradcam bench`): the forward pass and one explanation
//! per image, timed after a warm-up on a fixed-seed random input, as median, min and max.

use std::sync::Arc;
use std::time::Instant;

use ::image::RgbImage;
use serde::Serialize;

use crate::cam::CamOptions;
use crate::error::{Error, Result};
use crate::eval::perturb::Normal;
use crate::explain::{Classes, Explainer};
use crate::kernels;
use crate::model::CamModel;
use crate::timefmt::ms;

/// What to time.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    /// A `--method` name (`gradcam`, `gradcam++`, ...).
    pub method: String,
    /// Layers to explain (empty: the model's default).
    pub layers: Vec<String>,
    /// Images per pass.
    pub batch: usize,
    /// Timed passes of each kind, after the warm-up.
    pub iters: usize,
    /// Untimed passes of each kind first (allocator, caches, rayon's threads).
    pub warmup: usize,
    /// Time the explanation too (else the forward pass alone).
    pub explain: bool,
    /// The network input, `batch` images `[3, h, w]` laid end to end at the model's input
    /// size; `None`: standard normal values from a fixed seed.
    pub input: Option<Vec<f32>>,
}

impl Default for BenchOptions {
    fn default() -> Self {
        BenchOptions {
            method: "gradcam".to_string(),
            layers: Vec::new(),
            batch: 1,
            iters: 10,
            warmup: 2,
            explain: true,
            input: None,
        }
    }
}

/// Milliseconds per image over the timed passes.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Spread {
    pub median: f64,
    pub min: f64,
    pub max: f64,
}

impl Spread {
    /// The spread of `samples`; `None` when there are none.
    pub fn of(samples: &[f64]) -> Option<Spread> {
        if samples.is_empty() {
            return None;
        }
        let mut v = samples.to_vec();
        v.sort_by(f64::total_cmp);
        let n = v.len();
        Some(Spread {
            median: (v[(n - 1) / 2] + v[n / 2]) / 2.0,
            min: v[0],
            max: v[n - 1],
        })
    }
}

/// The measurements, in milliseconds per image (a pass's time divided by the batch).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BenchReport {
    pub model: String,
    pub method: String,
    /// The explained layers (the model's default when none was asked for).
    pub layers: Vec<String>,
    pub batch: usize,
    pub iters: usize,
    /// Threads of the pool the kernels run on (`RAYON_NUM_THREADS`, else one per core).
    pub threads: usize,
    /// Network input (height, width).
    pub input_size: (usize, usize),
    pub forward: Spread,
    /// `None` when the explanation was not timed.
    pub explain: Option<Spread>,
    pub forward_samples: Vec<f64>,
    pub explain_samples: Vec<f64>,
}

/// Times `model`'s forward pass, then its explanation with `options.method` at the top-1
/// class (forward, backward and the map resized to the input, as `gradcam explain` makes
/// it, without decoding or writing files).
pub fn bench(model: Arc<dyn CamModel>, options: &BenchOptions) -> Result<BenchReport> {
    if options.batch == 0 || options.iters == 0 {
        return Err(Error::Invalid(
            "the batch and the number of iterations must be at least 1".to_string(),
        ));
    }
    let preprocess = model.preprocess();
    let (h, w) = preprocess.size;
    let numel = options.batch * 3 * h * w;
    let data = match &options.input {
        Some(data) if data.len() != numel => {
            return Err(Error::Invalid(format!(
                "the input has {} values; {} images of 3x{h}x{w} need {numel}",
                data.len(),
                options.batch
            )));
        }
        Some(data) => data.clone(),
        None => {
            let mut normal = Normal::new(0);
            (0..numel).map(|_| normal.sample() as f32).collect()
        }
    };
    // Building the explainer first checks the method and layers before anything runs.
    let explainer = Explainer::new(
        model.clone(),
        &options.method,
        options.layers.clone(),
        CamOptions::default(),
    )?;
    let layers = match explainer.layers.is_empty() {
        true => crate::cam::default_layer_names(model.as_ref(), explainer.method.build().as_ref())?,
        false => explainer.layers.clone(),
    };

    let input = preprocess.tensor(data.clone());
    let forward_once = || -> Result<f64> {
        let start = Instant::now();
        // Reading the logits back waits for the whole pass.
        let logits = kernels::on_worker(|| model.forward(input.clone()))?.into_data();
        std::hint::black_box(logits);
        Ok(ms(start))
    };
    let forward_samples = timed(options, forward_once)?;

    let images = vec![RgbImage::new(w as u32, h as u32); options.batch];
    let explain_once = || -> Result<f64> {
        let start = Instant::now();
        let out = explainer.explain_inputs(data.clone(), &images, &Classes::Top(1))?;
        std::hint::black_box(out);
        Ok(ms(start))
    };
    let explain_samples = match options.explain {
        true => timed(options, explain_once)?,
        false => Vec::new(),
    };

    let per_image = |s: Vec<f64>| -> Vec<f64> {
        s.into_iter()
            .map(|t| t / options.batch as f64)
            .collect::<Vec<_>>()
    };
    let forward_samples = per_image(forward_samples);
    let explain_samples = per_image(explain_samples);
    Ok(BenchReport {
        model: model.name().to_string(),
        method: explainer.method.name.to_string(),
        layers,
        batch: options.batch,
        iters: options.iters,
        threads: rayon::current_num_threads(),
        input_size: (h, w),
        forward: Spread::of(&forward_samples).expect("iters >= 1"),
        explain: Spread::of(&explain_samples),
        forward_samples,
        explain_samples,
    })
}

/// `options.warmup` untimed runs of `once`, then `options.iters` timed ones (ms per pass).
fn timed(options: &BenchOptions, once: impl Fn() -> Result<f64>) -> Result<Vec<f64>> {
    for _ in 0..options.warmup {
        once()?;
    }
    (0..options.iters).map(|_| once()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spread_of_odd_and_even_counts() {
        let s = Spread::of(&[3.0, 1.0, 2.0]).unwrap();
        assert_eq!((s.median, s.min, s.max), (2.0, 1.0, 3.0));
        let s = Spread::of(&[4.0, 1.0, 2.0, 3.0]).unwrap();
        assert_eq!((s.median, s.min, s.max), (2.5, 1.0, 4.0));
        assert_eq!(Spread::of(&[]), None);
    }
}
