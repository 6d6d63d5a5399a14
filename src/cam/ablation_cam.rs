//! Ablation-CAM (Desai & Ramaswamy, "Ablation-CAM: Visual Explanations for Deep Convolutional
//! Network via Gradient-free Localization", WACV 2020), as pytorch-grad-cam's `AblationCAM`.

use burn::tensor::{Tensor, TensorData};

use super::{CamInput, ChannelWeights};
use crate::error::Result;

/// pytorch-grad-cam's `AblationCAM` batch size, which its ablation values depend on (see
/// [`AblationCam`]).
const REFERENCE_BATCH: usize = 32;

/// Ablation-CAM: the relative drop of the target score when one channel is ablated,
/// `w_k = (y - y_k) / y`, `y_k` the score with channel `k` of the layer replaced.
///
/// Only the head runs again (the layer's activations are cut out and ablated, the body never
/// re-runs), `batch_size` ablations per pass. The ablated channel is set to 0 when the image's
/// activations have minimum exactly 0 (after a ReLU), else to a very negative value as
/// pytorch-grad-cam's `AblationLayer`: `min(A) - 1e7`, and, since that layer re-reads the
/// minimum after each write, `min(A) - (j+1)*1e7` (in f32) for the `j`-th ablation of one of its
/// batches of 32 channels.
///
/// Sign: positive where channels whose removal lowers the score are active (for a positive
/// score `y`; a negative `y` flips every weight, as in pytorch-grad-cam).
#[derive(Debug, Clone, Copy)]
pub struct AblationCam {
    /// Ablated copies of the activations per head pass. Changes speed and memory, not the
    /// result.
    pub batch_size: usize,
}

impl Default for AblationCam {
    fn default() -> Self {
        AblationCam { batch_size: 64 }
    }
}

/// The values pytorch-grad-cam's `AblationLayer` writes into the ablated channel of the `j`-th
/// copy of one of its batches, for activations with minimum `min`.
fn ablation_values(min: f32) -> [f32; REFERENCE_BATCH] {
    let mut values = [0.0; REFERENCE_BATCH];
    let mut current = min;
    for v in &mut values {
        *v = if current == 0.0 { 0.0 } else { current - 1e7 };
        current = current.min(*v);
    }
    values
}

impl ChannelWeights for AblationCam {
    fn name(&self) -> &'static str {
        "ablationcam"
    }

    fn uses_gradients(&self) -> bool {
        false
    }

    fn weights(&self, cam: &CamInput) -> Result<Tensor<2>> {
        let [batch, channels, _, _] = cam.activations.dims();
        let device = cam.activations.device();
        let original = cam.scores(cam.head(cam.activations.clone(), None)?, |i| i);
        let step = self.batch_size.max(1);
        let mut scores = Vec::with_capacity(batch * channels.div_ceil(step));
        for image in 0..batch {
            let activations = cam.activations.clone().narrow(0, image, 1);
            let values = ablation_values(activations.clone().min().into_scalar::<f32>());
            for start in (0..channels).step_by(step) {
                cam.cancel.check()?;
                let n = step.min(channels - start);
                let mut keep = vec![1.0f32; n * channels];
                let mut fill = vec![0.0f32; n * channels];
                for j in 0..n {
                    let k = start + j;
                    keep[j * channels + k] = 0.0;
                    fill[j * channels + k] = values[k % REFERENCE_BATCH];
                }
                let keep =
                    Tensor::<4>::from_data(TensorData::new(keep, [n, channels, 1, 1]), &device);
                let fill =
                    Tensor::<4>::from_data(TensorData::new(fill, [n, channels, 1, 1]), &device);
                let ablated = activations.clone() * keep + fill;
                let logits = cam.head(ablated, Some(&vec![image; n]))?;
                scores.push(cam.scores(logits, |_| image));
            }
        }
        let ablated = Tensor::cat(scores, 0).reshape([batch, channels]);
        let original = original.reshape([batch, 1]);
        Ok((original.clone() - ablated) / original)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ablation_values_follow_pytorch_grad_cam() {
        assert_eq!(ablation_values(0.0), [0.0; REFERENCE_BATCH]);
        let v = ablation_values(-2.5);
        assert_eq!(v[0], -2.5f32 - 1e7);
        assert_eq!(v[1], v[0] - 1e7);
        assert_eq!(v[31], (0..32).fold(-2.5f32, |m, _| m - 1e7));
    }
}
