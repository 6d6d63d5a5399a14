//! Shared helpers for the integration tests: fixtures (made by the scripts in tools/, see
//! tests/fixtures/README.md), the fixtures' models, a hand-sized toy network and a model
//! wrapper that changes the input size or holds the forward pass at a gate.
#![allow(dead_code)]

pub mod models;
pub mod multipart;
pub mod run;
pub mod toy;
pub mod wrapped;

use std::path::PathBuf;

use burn::tensor::{Device, Tensor, TensorData};
use gradcam::io::read_npy;

#[allow(unused_imports)] // each test file uses some
pub use models::{
    LITE0_IMAGES, SMALL_MODELS, lite0, resnet_config, small_model, small_resnet, small_vgg,
    vgg_config,
};

/// The fixture folder: `$GRADCAM_FIXTURES`, else tests/fixtures.
pub fn fixtures() -> PathBuf {
    std::env::var_os("GRADCAM_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures"))
}

/// A fixture array: values and shape.
/// A fixture's path under tests/fixtures, as a string (for command lines and loaders).
pub fn fixture_path(name: &str) -> String {
    fixtures().join(name).display().to_string()
}

pub fn npy(name: &str) -> (Vec<f32>, Vec<usize>) {
    let path = fixtures().join(name);
    read_npy(&path).unwrap_or_else(|e| panic!("fixture {}: {e}", path.display()))
}

/// A fixture array as a tensor on the CPU.
pub fn tensor<const D: usize>(name: &str) -> Tensor<D> {
    let (data, shape) = npy(name);
    Tensor::from_data(TensorData::new(data, shape), &Device::flex())
}

/// The largest absolute difference of two equally long slices.
pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "lengths differ");
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// Asserts that the first map of each explanation, all concatenated, is within
/// [`MAP_TOLERANCE`] of the fixture `file` (a `.npy` under tests/fixtures).
pub fn assert_first_maps_match(out: &[gradcam::explain::Explanation], file: &str) {
    let (want, _) = npy(file);
    let got: Vec<f32> = out
        .iter()
        .flat_map(|e| e.explanations[0].map.clone())
        .collect();
    let d = max_abs_diff(&got, &want);
    println!("{file}: max abs diff {d:.2e}");
    assert!(d < MAP_TOLERANCE, "{file}: {d}");
}

/// The largest absolute value of a slice.
pub fn max_abs(a: &[f32]) -> f32 {
    a.iter().fold(0.0, |m, v| m.max(v.abs()))
}

/// Largest allowed difference of a final (normalised, [0, 1]) map from pytorch-grad-cam's.
/// The largest measured is 2.5e-5 (AblationCAM on Lite0's `both`); every other map is within
/// 6e-6 (`cargo test --release --test methods --test torchvision --test lite0 -- --nocapture`).
pub const MAP_TOLERANCE: f32 = 1e-4;

/// Largest allowed difference of logits from PyTorch's: measured 4.6e-6 on Lite0 (logits up to
/// about 20) and 1.4e-6 on the small models.
pub const LOGIT_TOLERANCE: f32 = 1e-5;

/// Without autodiff a batch runs image by image on the threads: asserts that the logits and
/// the activations at `layer` of a batch of `x` equal those of each image alone, and that the
/// logits are within rounding of the batch run as one graph (with autodiff: layer by layer).
/// Returns that last difference, relative to the largest logit.
/// Runs in a pool of two threads, so that there is a split to check on any machine.
pub fn assert_batch_runs_image_by_image(
    model: &dyn gradcam::model::CamModel,
    x: Tensor<4>,
    layer: &str,
) -> f32 {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(2)
        .build()
        .unwrap();
    pool.install(|| batch_against_images(model, x, layer))
}

fn batch_against_images(model: &dyn gradcam::model::CamModel, x: Tensor<4>, layer: &str) -> f32 {
    let values = |t: Tensor<2>| -> Vec<f32> { t.into_data().iter::<f32>().collect() };
    let maps = |t: Tensor<4>| -> Vec<f32> { t.into_data().iter::<f32>().collect() };
    let batch = x.dims()[0];
    assert!(batch > 1, "one image has nothing to split");
    let one = |i| x.clone().narrow(0, i, 1);
    let logits = values(model.forward(x.clone()).unwrap());
    let alone: Vec<f32> = (0..batch)
        .flat_map(|i| values(model.forward(one(i)).unwrap()))
        .collect();
    assert_eq!(logits, alone, "logits");
    let layer = model.layer_index(layer).unwrap();
    let cut = maps(model.forward_to(x.clone(), layer).unwrap().activations);
    let cut_alone: Vec<f32> = (0..batch)
        .flat_map(|i| maps(model.forward_to(one(i), layer).unwrap().activations))
        .collect();
    assert_eq!(cut, cut_alone, "activations");
    let graph = values(
        model
            .forward(x.autodiff())
            .unwrap()
            .detach()
            .without_autodiff(),
    );
    max_abs_diff(&logits, &graph) / max_abs(&logits)
}

/// A fixed input of values spread over [-1, 1] (a stride through them, so neighbours differ).
pub fn patterned(shape: [usize; 4]) -> Tensor<4> {
    let len = shape.iter().product::<usize>();
    let values = (0..len)
        .map(|i| (i * 7919 % 1000) as f32 / 500.0 - 1.0)
        .collect::<Vec<_>>();
    Tensor::from_data(TensorData::new(values, shape), &Device::flex())
}
