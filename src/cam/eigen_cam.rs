//! Eigen-CAM (Muhammad & Yeasin, "Eigen-CAM: Class Activation Map using Principal Components",
//! IJCNN 2020), as pytorch-grad-cam's `EigenCAM`.

use burn::tensor::Tensor;

use super::{CamInput, Method, first_component};
use crate::error::Result;

/// Eigen-CAM: the projection of each image's centred `(h*w) x channels` activation matrix on
/// its first right singular vector. Needs no gradient and ignores the target (every class gets
/// the same map).
///
/// Sign: pytorch-grad-cam leaves the SVD's sign arbitrary; ours is negated when its dot product
/// with the per-pixel channel sum of `A` is negative, so the map follows the activations (see
/// [`first_component`]). `eigen_smooth` changes nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct EigenCam;

impl Method for EigenCam {
    fn name(&self) -> &'static str {
        "eigencam"
    }

    fn uses_gradients(&self) -> bool {
        false
    }

    fn raw_map(&self, cam: &CamInput, _eigen_smooth: bool) -> Result<Tensor<3>> {
        Ok(first_component(cam.activations.clone()))
    }
}
