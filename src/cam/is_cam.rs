//! IS-CAM (Naidu et al., "IS-CAM: Integrated Score-CAM for axiomatic-based explanations",
//! 2020), as torchcam's `ISCAM`.

use burn::tensor::Tensor;

use super::torchcam_score::score_weights;
use super::{CamInput, ChannelWeights};
use crate::error::Result;

/// IS-CAM: torchcam's Score-CAM (channels min-max scaled, upsampled bilinearly, masking the
/// input) with the masked input scaled along a path and the scores averaged:
/// `w_k = softmax_k(1/N sum_i score(c_i x * M_k) - score(x))` with torchcam's running
/// coefficient `c_i = sum_{j<=i} j / N` (i = 1..N; it reaches (N + 1) / 2, not 1). No noise,
/// so deterministic; one full forward pass per channel and sample (10 x channels).
///
/// Sign: weights are positive (a softmax); torchcam applies a ReLU before its min-max
/// scaling, as the runner.
#[derive(Debug, Clone, Copy)]
pub struct IsCam {
    /// Samples (torchcam's default: 10).
    pub num_samples: usize,
    /// Masked inputs per forward pass (torchcam's default: 32); speed and memory only.
    pub batch_size: usize,
}

impl Default for IsCam {
    fn default() -> Self {
        IsCam {
            num_samples: 10,
            batch_size: 32,
        }
    }
}

impl ChannelWeights for IsCam {
    fn name(&self) -> &'static str {
        "iscam"
    }

    fn uses_gradients(&self) -> bool {
        false
    }

    fn weights(&self, cam: &CamInput) -> Result<Tensor<2>> {
        // torchcam accumulates the coefficient in Python floats (f64), used as f32.
        let n = self.num_samples;
        let coefficients: Vec<f32> = (1..=n)
            .scan(0.0f64, |c, i| {
                *c += i as f64 / n as f64;
                Some(*c as f32)
            })
            .collect();
        let scale =
            |sample: usize, _: usize, _: usize, masks: Tensor<4>| masks * coefficients[sample];
        score_weights(cam, self.batch_size, n, &scale)
    }
}
