//! SS-CAM (Wang et al., "SS-CAM: Smoothed Score-CAM for Sharper Visual Feature Localization",
//! 2020), as torchcam's `SSCAM`.

use burn::tensor::{Tensor, TensorData};

use super::torchcam_score::score_weights;
use super::{CamInput, ChannelWeights, noise};
use crate::error::Result;

/// SS-CAM: torchcam's Score-CAM (channels min-max scaled, upsampled bilinearly, masking the
/// input) with Gaussian noise added to each upsampled mask, averaged over samples:
/// `w_k = softmax_k(1/N sum_i score(x * (M_k + d_i)) - score(x))`, `d_i ~ N(0, std^2)` per
/// position. One full forward pass per channel and sample (35 x channels by default).
///
/// Noise: sample `i`'s value for image `b`, channel `k`, position `p` is value
/// `((i * batch + b) * channels + k) * H * W + p` of the normal stream `seed`
/// ([`noise::normals`]); the parity fixtures feed torchcam the same. Sign: weights are
/// positive (a softmax); torchcam applies a ReLU before its min-max scaling, as the runner.
#[derive(Debug, Clone, Copy)]
pub struct SsCam {
    /// Samples (torchcam's default: 35).
    pub num_samples: usize,
    /// The noise's standard deviation (torchcam's default: 2).
    pub std: f64,
    /// Masked inputs per forward pass (torchcam's default: 32); speed and memory only.
    pub batch_size: usize,
    /// The normal stream the noise comes from.
    pub seed: u64,
}

impl Default for SsCam {
    fn default() -> Self {
        SsCam {
            num_samples: 35,
            std: 2.0,
            batch_size: 32,
            seed: 0,
        }
    }
}

impl ChannelWeights for SsCam {
    fn name(&self) -> &'static str {
        "sscam"
    }

    fn uses_gradients(&self) -> bool {
        false
    }

    fn weights(&self, cam: &CamInput) -> Result<Tensor<2>> {
        let [batch, channels, _, _] = cam.activations.dims();
        let [_, _, height, width] = cam.input.dims();
        let plane = height * width;
        let add_noise = |sample: usize, image: usize, start: usize, masks: Tensor<4>| {
            let n = masks.dims()[0];
            let first = ((sample * batch + image) * channels + start) * plane;
            let values = noise::normals(self.seed, first as u64, n * plane, self.std);
            let device = masks.device();
            masks + Tensor::from_data(TensorData::new(values, [n, 1, height, width]), &device)
        };
        score_weights(cam, self.batch_size, self.num_samples, &add_noise)
    }
}
