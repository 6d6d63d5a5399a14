//! Random-CAM, pytorch-grad-cam's `RandomCAM`: a baseline that any real method should beat
//! in the evaluation metrics.

use burn::tensor::{Tensor, TensorData};

use super::{CamInput, ChannelWeights, noise};
use crate::error::Result;

/// Random-CAM: each channel gets a weight drawn uniformly from [-1, 1),
/// `w_k ~ U(-1, 1)`, independent of the gradients and of the target.
///
/// Seeded: weight `k` of image `b` is value `b * channels + k` of the uniform stream `seed`
/// ([`noise::uniform`]), so a run is reproducible. pytorch-grad-cam draws from NumPy's global
/// generator instead; the parity fixtures feed it these weights. Sign: arbitrary by design.
#[derive(Debug, Clone, Copy, Default)]
pub struct RandomCam {
    /// The uniform stream the weights come from.
    pub seed: u64,
}

impl RandomCam {
    /// The weights `[batch * channels]`, image-major, in [-1, 1).
    pub fn draw(&self, batch: usize, channels: usize) -> Vec<f32> {
        (0..(batch * channels) as u64)
            .map(|i| (2.0 * noise::uniform(self.seed, i) - 1.0) as f32)
            .collect()
    }
}

impl ChannelWeights for RandomCam {
    fn name(&self) -> &'static str {
        "randomcam"
    }

    // pytorch-grad-cam's RandomCAM keeps BaseCAM's default and runs the backward pass; its
    // weights ignore the gradients, so ours skips it.
    fn uses_gradients(&self) -> bool {
        false
    }

    fn weights(&self, cam: &CamInput) -> Result<Tensor<2>> {
        let [batch, channels, _, _] = cam.activations.dims();
        Ok(Tensor::from_data(
            TensorData::new(self.draw(batch, channels), [batch, channels]),
            &cam.activations.device(),
        ))
    }
}
