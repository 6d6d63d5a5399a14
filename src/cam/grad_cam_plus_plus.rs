//! Grad-CAM++ (Chattopadhyay et al., "Grad-CAM++: Improved Visual Explanations for Deep
//! Convolutional Networks", WACV 2018), as pytorch-grad-cam's `GradCAMPlusPlus`.

use burn::tensor::Tensor;
use burn::tensor::activation::relu;

use super::{CamInput, ChannelWeights};
use crate::error::Result;

/// Grad-CAM++: each channel weighs its positive gradients by the paper's closed-form
/// coefficients (equation 19, with exponential scores replaced by the raw score):
/// `a_ij = g² / (2 g² + (sum_ij A) g³ + 1e-6)`, `a = 0` where `g = 0`, and
/// `w_k = sum_ij a_ij relu(g_ij)`.
///
/// Sign: positive where the layer's features raise the target score.
#[derive(Debug, Clone, Copy, Default)]
pub struct GradCamPlusPlus;

impl ChannelWeights for GradCamPlusPlus {
    fn name(&self) -> &'static str {
        "gradcam++"
    }

    fn weights(&self, cam: &CamInput) -> Result<Tensor<2>> {
        let g = cam.gradients()?;
        let g2 = g.clone() * g.clone();
        let g3 = g2.clone() * g.clone();
        let sum_a = cam.activations.clone().sum_dims(&[2, 3]);
        let a = g2.clone() / (g2 * 2.0 + sum_a * g3 + 1e-6);
        let a = a.mask_fill(g.clone().equal_elem(0.0), 0.0);
        Ok((relu(g) * a).sum_dims(&[2, 3]).flatten(1, 3))
    }
}
