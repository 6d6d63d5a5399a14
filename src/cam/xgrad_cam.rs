//! XGrad-CAM (Fu et al., "Axiom-based Grad-CAM: Towards Accurate Visualization and Explanation
//! of CNNs", BMVC 2020), as pytorch-grad-cam's `XGradCAM`.

use burn::tensor::Tensor;

use super::{CamInput, ChannelWeights};
use crate::error::Result;

/// XGrad-CAM: each channel weighs its gradients by its activations normalised to sum 1,
/// `w_k = sum_ij g_ij A_ij / (sum_ij A_ij + 1e-7)`.
///
/// Sign: positive where the layer's features raise the target score.
#[derive(Debug, Clone, Copy, Default)]
pub struct XGradCam;

impl ChannelWeights for XGradCam {
    fn name(&self) -> &'static str {
        "xgradcam"
    }

    fn weights(&self, cam: &CamInput) -> Result<Tensor<2>> {
        let a = cam.activations.clone();
        let sum_a = a.clone().sum_dims(&[2, 3]);
        Ok((cam.gradients()? * a / (sum_a + 1e-7))
            .sum_dims(&[2, 3])
            .flatten(1, 3))
    }
}
