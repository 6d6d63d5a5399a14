//! Score-CAM (Wang et al., "Score-CAM: Score-Weighted Visual Explanations for Convolutional
//! Neural Networks", CVPR workshops 2020), as pytorch-grad-cam's `ScoreCAM`.

use burn::tensor::Tensor;
use burn::tensor::activation::softmax;
use burn::tensor::module::interpolate;
use burn::tensor::ops::{InterpolateMode, InterpolateOptions};

use super::{CamInput, ChannelWeights};
use crate::error::Result;

/// Score-CAM: each activation channel, upsampled to the input (bilinear, `align_corners=True`)
/// and min-max scaled to [0, 1] (`(u - min) / (max - min + 1e-8)`), masks the input; the whole
/// network scores each masked input, and the weights are the softmax over channels of those
/// target scores, `w_k = softmax_k(score(model(x * mask_k)))`.
///
/// Needs no gradient but one full forward pass per channel (run `batch_size` masked inputs at
/// a time). Sign: weights are positive, so the map is positive where channels that keep the
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
        let upsample = InterpolateOptions::new(InterpolateMode::Bilinear)
            .with_align_corners(true)
            .with_output_size([height, width]);
        let step = self.batch_size.max(1);
        let mut scores = Vec::with_capacity(batch * channels.div_ceil(step));
        for image in 0..batch {
            let input = cam.input.clone().narrow(0, image, 1);
            let activations = cam.activations.clone().narrow(0, image, 1);
            for start in (0..channels).step_by(step) {
                let n = step.min(channels - start);
                let up = interpolate(activations.clone().narrow(1, start, n), upsample.clone())
                    .reshape([n, 1, height * width]);
                let (max, min) = (up.clone().max_dim(2), up.clone().min_dim(2));
                let masks =
                    ((up - min.clone()) / (max - min + 1e-8)).reshape([n, 1, height, width]);
                let outputs = cam.model.forward(input.clone() * masks);
                scores.push(cam.scores(outputs, |_| image));
            }
        }
        Ok(softmax(
            Tensor::cat(scores, 0).reshape([batch, channels]),
            1,
        ))
    }
}
