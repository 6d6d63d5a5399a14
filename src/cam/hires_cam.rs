//! HiResCAM (Draelos & Carin, "Use HiResCAM instead of Grad-CAM for faithful explanations of
//! convolutional neural networks", 2020, arXiv:2011.08891), as pytorch-grad-cam's `HiResCAM`.

use burn::tensor::Tensor;

use super::{CamInput, Method, channel_sum_or_projection};
use crate::error::Result;

/// HiResCAM: the element-wise product of gradients and activations summed over channels,
/// `map_ij = sum_k g_kij A_kij`, with no spatial averaging of the gradients. For a head that
/// is a global average pool and a linear layer this is exactly the score's contribution of
/// each position.
///
/// Sign: positive where the layer's features raise the target score. With `eigen_smooth` the
/// first principal component of `g*A` replaces the sum (which voids the faithfulness property,
/// as pytorch-grad-cam warns).
#[derive(Debug, Clone, Copy, Default)]
pub struct HiResCam;

impl Method for HiResCam {
    fn name(&self) -> &'static str {
        "hirescam"
    }

    fn raw_map(&self, cam: &CamInput, eigen_smooth: bool) -> Result<Tensor<3>> {
        Ok(channel_sum_or_projection(
            cam.gradients()? * cam.activations.clone(),
            eigen_smooth,
        ))
    }
}
