//! Grad-CAM element-wise: pytorch-grad-cam's `GradCAMElementWise`, a variant of HiResCAM
//! (Draelos & Carin, 2020, arXiv:2011.08891) that rectifies each product before the sum.

use burn::tensor::Tensor;
use burn::tensor::activation::relu;

use super::{CamInput, Method, channel_sum_or_projection};
use crate::error::Result;

/// Grad-CAM element-wise: `map_ij = sum_k relu(g_kij A_kij)`.
///
/// Sign: never negative; positive where some channel's feature raises the target score.
/// With `eigen_smooth` the first principal component of `relu(g*A)` replaces the sum.
#[derive(Debug, Clone, Copy, Default)]
pub struct GradCamElementWise;

impl Method for GradCamElementWise {
    fn name(&self) -> &'static str {
        "gradcam-elementwise"
    }

    fn raw_map(&self, cam: &CamInput, eigen_smooth: bool) -> Result<Tensor<3>> {
        let products = relu(cam.gradients()? * cam.activations.clone());
        Ok(channel_sum_or_projection(products, eigen_smooth))
    }
}
