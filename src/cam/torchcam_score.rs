//! The weights of torchcam's Score-CAM family (`ScoreCAM._get_score_weights` and its SS-CAM
//! and IS-CAM overrides), shared by [`super::SsCam`] and [`super::IsCam`].

use burn::tensor::activation::softmax;
use burn::tensor::module::interpolate;
use burn::tensor::ops::{InterpolateMode, InterpolateOptions};
use burn::tensor::{Tensor, TensorData};

use super::{CamInput, flat};
use crate::error::Result;

/// Which masks one channel range sees in one sample: `(sample, image, first channel, masks)`
/// with `masks` `[n, 1, H, W]`, returning the masks that multiply the input.
pub(super) type MaskOf<'a> = dyn Fn(usize, usize, usize, Tensor<4>) -> Tensor<4> + 'a;

/// torchcam's Score-CAM weights over `samples` rounds: each channel, min-max scaled over its
/// positions (`(A - min) / (max(A - min) + 1e-8)`) and upsampled to the input (bilinear,
/// `align_corners=False`), becomes a mask (through `mask_of`); the whole network scores the
/// masked input, and `w_k = softmax_k(mean over samples of score(x * mask_k) - score(x))`.
pub(super) fn score_weights(
    cam: &CamInput,
    batch_size: usize,
    samples: usize,
    mask_of: &MaskOf,
) -> Result<Tensor<2>> {
    let [batch, channels, h, w] = cam.activations.dims();
    let [_, _, height, width] = cam.input.dims();
    let device = cam.input.device();
    let upsample = InterpolateOptions::new(InterpolateMode::Bilinear)
        .with_align_corners(false)
        .with_output_size([height, width]);
    let planes = cam.activations.clone().reshape([batch, channels, h * w]);
    let shifted = planes.clone() - planes.min_dim(2);
    let scaled = (shifted.clone() / (shifted.max_dim(2) + 1e-8)).reshape([batch, channels, h, w]);
    let step = batch_size.max(1);
    let mut sums = vec![0.0f32; batch * channels];
    for image in 0..batch {
        let input = cam.input.clone().narrow(0, image, 1);
        let baseline = flat(cam.scores(cam.model.forward(input.clone())?, |_| image))[0];
        let activations = scaled.clone().narrow(0, image, 1);
        for sample in 0..samples {
            for start in (0..channels).step_by(step) {
                cam.cancel.check()?;
                let n = step.min(channels - start);
                let up = interpolate(activations.clone().narrow(1, start, n), upsample.clone())
                    .reshape([n, 1, height, width]);
                let masks = mask_of(sample, image, start, up);
                let outputs = cam.model.forward(input.clone() * masks)?;
                let scores = flat(cam.scores(outputs, |_| image));
                for (k, score) in scores.into_iter().enumerate() {
                    sums[image * channels + start + k] += score - baseline;
                }
            }
        }
    }
    let means: Vec<f32> = sums.into_iter().map(|s| s / samples as f32).collect();
    let means = Tensor::<2>::from_data(TensorData::new(means, [batch, channels]), &device);
    Ok(softmax(means, 1))
}
