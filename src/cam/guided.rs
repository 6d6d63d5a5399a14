//! Guided backpropagation (Springenberg et al., "Striving for Simplicity: The All Convolutional
//! Net", ICLR 2015 workshop) and Guided Grad-CAM (Selvaraju et al., ICCV 2017).
//!
//! Both give one 3-channel map per image at the input's resolution, so they live beside the
//! [`Method`](super::Method) trait rather than in it.

use burn::tensor::Tensor;

use super::{Cam, Targets, batch_scores, flat, rows};
use crate::error::{Error, Result};
use crate::kernels::GuidedReluGuard;
use crate::model::CamModel;

/// The guided-backpropagation gradient of each image's target score with respect to the
/// network input: every ReLU (and ReLU6, on its pass-through range `0 < x < 6`) passes gradient
/// back only where its input is positive and the incoming gradient is positive.
///
/// Returns one `[height, width, 3]` array per image, row-major with the channels last, as
/// pytorch-grad-cam's `GuidedBackpropReLUModel` returns it (raw and signed; see
/// [`crate::image::deprocess`] to view it). pytorch-grad-cam guides only `torch.nn.ReLU`
/// modules; we also guide ReLU6 (EfficientNet-Lite), which it leaves plain.
pub fn guided_backprop(
    model: &dyn CamModel,
    input: Tensor<4>,
    targets: &Targets,
) -> Result<Vec<Vec<f32>>> {
    guided_gradients(model, input, targets, false)
}

/// Guided Grad-CAM: the guided-backpropagation gradient times the runner's final map (in
/// [0, 1], at the input's resolution) for the same targets, `[height, width, 3]` per image.
/// The runner's options apply to both (a counterfactual Guided Grad-CAM guides the negated
/// score).
pub fn guided_gradcam(cam: &Cam, input: Tensor<4>, targets: &Targets) -> Result<Vec<Vec<f32>>> {
    let maps = cam.run(input.clone(), targets)?.maps;
    let guided = guided_gradients(cam.model, input, targets, cam.options.counterfactual)?;
    Ok(guided
        .iter()
        .zip(&maps)
        .map(|(g, m)| weight_by_map(g, m))
        .collect())
}

/// Guided Grad-CAM's product: each pixel of a `[height, width, 3]` guided gradient times the
/// map's value there.
pub(crate) fn weight_by_map(guided: &[f32], map: &[f32]) -> Vec<f32> {
    guided
        .chunks(3)
        .zip(map)
        .flat_map(|(px, &v)| px.iter().map(move |c| c * v))
        .collect()
}

/// [`guided_backprop`] of the target scores, negated first for a counterfactual.
pub(crate) fn guided_gradients(
    model: &dyn CamModel,
    input: Tensor<4>,
    targets: &Targets,
    counterfactual: bool,
) -> Result<Vec<Vec<f32>>> {
    let [batch, channels, height, width] = input.dims();
    if batch == 0 {
        return Err(Error::Invalid("empty batch".to_string()));
    }
    let leaf = input.without_autodiff().autodiff().require_grad();
    let logits = {
        let _guided = GuidedReluGuard::enable();
        model.forward(leaf.clone())?
    };
    let targets = targets.resolve(&rows(logits.clone().detach()), counterfactual)?;
    let grads = batch_scores(&targets, logits, |i| i).sum().backward();
    let gradient = leaf.grad(&grads).ok_or_else(|| {
        Error::Invalid("the target score does not depend on the input".to_string())
    })?;
    let hwc = flat(gradient.permute([0, 2, 3, 1]));
    Ok(hwc
        .chunks(height * width * channels)
        .map(<[f32]>::to_vec)
        .collect())
}
