//! LayerCAM (Jiang et al., "LayerCAM: Exploring Hierarchical Class Activation Maps for
//! Localization", IEEE TIP 2021), as pytorch-grad-cam's `LayerCAM`.

use burn::tensor::Tensor;
use burn::tensor::activation::relu;

use super::{CamInput, Method, channel_sum_or_projection};
use crate::error::Result;

/// LayerCAM: each activation weighted by its own positive gradient,
/// `map_ij = sum_k relu(g_kij) A_kij`.
///
/// Sign: positive where features (after a ReLU, `A >= 0`) raise the target score; negative
/// activations of layers without a final ReLU count against it. With `eigen_smooth` the first
/// principal component of `relu(g)*A` replaces the sum.
#[derive(Debug, Clone, Copy, Default)]
pub struct LayerCam;

impl Method for LayerCam {
    fn name(&self) -> &'static str {
        "layercam"
    }

    fn raw_map(&self, cam: &CamInput, eigen_smooth: bool) -> Result<Tensor<3>> {
        let weighted = relu(cam.gradients()?) * cam.activations.clone();
        Ok(channel_sum_or_projection(weighted, eigen_smooth))
    }
}
