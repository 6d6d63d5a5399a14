//! Grad-CAM (Selvaraju et al., ICCV 2017).

use burn::tensor::Tensor;

use super::{CamInput, ChannelWeights};
use crate::error::Result;

/// Grad-CAM: each channel weighs the spatial mean of its gradient,
/// `w_k = 1/Z sum_ij dy/dA_k,ij`.
///
/// Sign: positive where the layer's features raise the target score.
#[derive(Debug, Clone, Copy, Default)]
pub struct GradCam;

impl ChannelWeights for GradCam {
    fn name(&self) -> &'static str {
        "gradcam"
    }

    fn weights(&self, cam: &CamInput) -> Result<Tensor<2>> {
        Ok(cam.gradients()?.mean_dims(&[2, 3]).flatten(1, 3))
    }
}
