//! Smooth Grad-CAM++ (Omeiza et al., "Smooth Grad-CAM++: An Enhanced Inference Level
//! Visualization Technique for Deep Convolutional Neural Network Models", 2019), as
//! torchcam's `SmoothGradCAMpp`.

use burn::tensor::activation::relu;
use burn::tensor::{Tensor, TensorData};

use super::{CamInput, Method, channel_sum_or_projection, noise};
use crate::error::{Error, Result};

/// Smooth Grad-CAM++: Grad-CAM++'s weights from gradients averaged over noisy copies of the
/// input, `x + d_i`, `d_i ~ N(0, std^2)` per input value, i = 1..N, each copy run through the
/// whole network and back to the layer (`g_i = d score / d A` at `x + d_i`):
/// `alpha = mean(g^2) / (2 mean(g^2) + sum_ab A_ab mean(g^3) + 1e-8)` and
/// `w_k = sum_ij alpha_ij relu(g_N)_ij`, with `A` the clean activations, and
/// `map = sum_k w_k A_N,k`. As torchcam (its "personal correction" of the paper), the
/// numerator is `mean(g^2)`; and as torchcam's hooks leave them, the ReLU'd gradient `g_N`
/// and the activations `A_N` the weights multiply are the last noisy sample's.
///
/// Noise: sample `i`'s value for input element `e` (flat over `[batch, 3, H, W]`) is value
/// `i * batch * 3 * H * W + e` of the normal stream `seed` ([`noise::normals`]); the parity
/// fixtures feed torchcam the same. Sign: weights are not negative; torchcam applies a ReLU
/// before its min-max scaling, as the runner. Cost: N full forward and backward passes.
#[derive(Debug, Clone, Copy)]
pub struct SmoothGradCamPlusPlus {
    /// Noisy copies (torchcam's default: 4).
    pub num_samples: usize,
    /// The noise's standard deviation (torchcam's default: 0.3), in the network input's units.
    pub std: f64,
    /// The normal stream the noise comes from.
    pub seed: u64,
}

impl Default for SmoothGradCamPlusPlus {
    fn default() -> Self {
        SmoothGradCamPlusPlus {
            num_samples: 4,
            std: 0.3,
            seed: 0,
        }
    }
}

impl Method for SmoothGradCamPlusPlus {
    fn name(&self) -> &'static str {
        "smoothgradcam++"
    }

    // The runner's gradient is at the clean input, which this method does not use.
    fn uses_gradients(&self) -> bool {
        false
    }

    fn raw_map(&self, cam: &CamInput, eigen_smooth: bool) -> Result<Tensor<3>> {
        let shape = cam.input.dims();
        let len: usize = shape.iter().product();
        let device = cam.input.device();
        let layer = cam.context.layer();
        let (mut grad_2, mut grad_3, mut last) = (None, None, None);
        for sample in 0..self.num_samples.max(1) {
            cam.cancel.check()?;
            let values = noise::normals(self.seed, (sample * len) as u64, len, self.std);
            let noisy =
                cam.input.clone() + Tensor::from_data(TensorData::new(values, shape), &device);
            let cut = cam.model.forward_to(noisy, layer)?;
            let leaf = cut.activations.clone().autodiff().require_grad();
            let logits = cam.model.forward_from(leaf.clone(), &cut.context, None)?;
            let grads = cam.scores(logits, |i| i).sum().backward();
            let g = leaf.grad(&grads).ok_or_else(|| {
                Error::Invalid("the target score does not depend on the layer".to_string())
            })?;
            let add = |sum: Option<Tensor<4>>, t: Tensor<4>| Some(sum.map_or(t.clone(), |s| s + t));
            grad_2 = add(grad_2, g.clone().powi_scalar(2));
            grad_3 = add(grad_3, g.clone().powi_scalar(3));
            last = Some((g, cut.activations));
        }
        let n = self.num_samples.max(1) as f32;
        let (grad_2, grad_3, (gradient, activations)) = (
            grad_2.expect("one sample") / n,
            grad_3.expect("one sample") / n,
            last.expect("one sample"),
        );
        let spread = (grad_3 * cam.activations.clone()).sum_dims(&[2, 3]);
        let alpha = grad_2.clone() / (grad_2 * 2.0 + spread + 1e-8);
        let weights = (alpha * relu(gradient)).sum_dims(&[2, 3]);
        Ok(channel_sum_or_projection(
            activations * weights,
            eigen_smooth,
        ))
    }
}
