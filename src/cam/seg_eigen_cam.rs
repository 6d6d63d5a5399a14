//! Seg-Eigen-CAM (Chung & Ying, "Seg-Eigen-CAM: Eigen-Value-Based Visual Explanations for
//! Semantic Segmentation Models", Applied Sciences 2025), as pytorch-grad-cam's `SegEigenCAM`.

use burn::tensor::Tensor;

use super::eigen::{SignRule, first_component_signed};
use super::{CamInput, Method};
use crate::error::Result;

/// Seg-Eigen-CAM: the first principal component of `|g| * A` (element-wise: the gradient's
/// magnitude weighs each activation), projected as in [`super::EigenCam`].
///
/// Sign: the paper's correction, so no sign is arbitrary: the projection is negated when its
/// minimum is larger in magnitude than its maximum (Eq. 13). `eigen_smooth` changes nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct SegEigenCam;

impl Method for SegEigenCam {
    fn name(&self) -> &'static str {
        "segeigencam"
    }

    fn raw_map(&self, cam: &CamInput, _eigen_smooth: bool) -> Result<Tensor<3>> {
        let weighted = cam.gradients()?.abs() * cam.activations.clone();
        Ok(first_component_signed(
            weighted,
            SignRule::LargerMagnitudePositive,
        ))
    }
}
