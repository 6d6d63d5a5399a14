//! EigenGrad-CAM: pytorch-grad-cam's `EigenGradCAM`, Eigen-CAM (Muhammad & Yeasin, IJCNN 2020)
//! applied to the gradient-weighted activations, which makes it class-discriminative.

use burn::tensor::Tensor;

use super::{CamInput, Method, first_component};
use crate::error::Result;

/// EigenGrad-CAM: the first principal component of `g*A` (element-wise), projected as in
/// [`super::EigenCam`].
///
/// Sign: the projection is negated when its dot product with the per-pixel channel sum of
/// `g*A` is negative, so the map points where `g*A` is mostly positive, i.e. where the features
/// raise the target score (see [`first_component`]). `eigen_smooth` changes nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct EigenGradCam;

impl Method for EigenGradCam {
    fn name(&self) -> &'static str {
        "eigengradcam"
    }

    fn raw_map(&self, cam: &CamInput, _eigen_smooth: bool) -> Result<Tensor<3>> {
        Ok(first_component(cam.gradients()? * cam.activations.clone()))
    }
}
