//! Score-CAM (Wang et al., "Score-CAM: Score-Weighted Visual Explanations for Convolutional
//! Neural Networks", CVPR workshops 2020), as pytorch-grad-cam's `ScoreCAM`.

use burn::tensor::activation::softmax;
use burn::tensor::module::interpolate;
use burn::tensor::ops::{InterpolateMode, InterpolateOptions};
use burn::tensor::{Int, Tensor, TensorData};

use super::{CamInput, ChannelWeights, flat};
use crate::error::Result;

/// Score-CAM: each activation channel, upsampled to the input (bilinear, `align_corners=True`)
/// and min-max scaled to [0, 1] (`(u - min) / (max - min + 1e-8)`), masks the input; the whole
/// network scores each masked input, and the weights are the softmax over channels of those
/// target scores, `w_k = softmax_k(score(model(x * mask_k)))`.
///
/// Needs no gradient but one full forward pass per channel (run `batch_size` masked inputs at
/// a time); channels that are zero everywhere share one pass, as their masks are all zero. Sign: weights are positive, so the map is positive where channels that keep the
/// score high when shown alone are active.
#[derive(Debug, Clone, Copy)]
pub struct ScoreCam {
    /// Masked inputs per forward pass (pytorch-grad-cam's default: 16). Changes speed and
    /// memory, not the result.
    pub batch_size: usize,
}

impl Default for ScoreCam {
    fn default() -> Self {
        ScoreCam { batch_size: 16 }
    }
}

impl ChannelWeights for ScoreCam {
    fn name(&self) -> &'static str {
        "scorecam"
    }

    fn uses_gradients(&self) -> bool {
        false
    }

    fn weights(&self, cam: &CamInput) -> Result<Tensor<2>> {
        let [batch, channels, _, _] = cam.activations.dims();
        let [_, _, height, width] = cam.input.dims();
        let device = cam.input.device();
        let upsample = InterpolateOptions::new(InterpolateMode::Bilinear)
            .with_align_corners(true)
            .with_output_size([height, width]);
        let step = self.batch_size.max(1);
        let mut weights = Vec::with_capacity(batch);
        for image in 0..batch {
            let input = cam.input.clone().narrow(0, image, 1);
            let activations = cam.activations.clone().narrow(0, image, 1);
            // An all-zero channel masks the whole input to zero, so every such channel scores
            // the same: one forward pass of the zero input serves them all (after a ReLU that
            // is often a third of the channels).
            let values = flat(activations.clone());
            let plane = values.len() / channels;
            let (active, silent): (Vec<usize>, Vec<usize>) = (0..channels)
                .partition(|&k| values[k * plane..(k + 1) * plane].iter().any(|&v| v != 0.0));
            let mut scores = vec![None; channels];
            if !silent.is_empty() {
                let zero = cam.model.forward(input.clone().zeros_like())?;
                let score = flat(cam.scores(zero, |_| image))[0];
                for &k in &silent {
                    scores[k] = Some(score);
                }
            }
            for chunk in active.chunks(step) {
                cam.cancel.check()?;
                let n = chunk.len();
                let index: Vec<i64> = chunk.iter().map(|&k| k as i64).collect();
                let index = Tensor::<1, Int>::from_data(TensorData::new(index, [n]), &device);
                let up = interpolate(activations.clone().select(1, index), upsample.clone())
                    .reshape([n, 1, height * width]);
                let (max, min) = (up.clone().max_dim(2), up.clone().min_dim(2));
                let masks =
                    ((up - min.clone()) / (max - min + 1e-8)).reshape([n, 1, height, width]);
                let outputs = cam.model.forward(input.clone() * masks)?;
                for (&k, score) in chunk.iter().zip(flat(cam.scores(outputs, |_| image))) {
                    scores[k] = Some(score);
                }
            }
            weights.extend(scores.into_iter().map(|s| s.expect("every channel scored")));
        }
        let scores = Tensor::<2>::from_data(TensorData::new(weights, [batch, channels]), &device);
        Ok(softmax(scores, 1))
    }
}
