//! CAM, the original class activation map (Zhou et al., "Learning Deep Features for
//! Discriminative Localization", CVPR 2016), as torchcam's `CAM`.

use burn::tensor::{Int, Tensor, TensorData};

use super::{CamInput, ChannelWeights, Target};
use crate::error::{Error, Result};

/// CAM: for a model whose head is global average pooling then one linear layer, each
/// channel weighs the classifier's weight from that channel to the class,
/// `w_k = W[c, k]`, so `sum_k w_k A_k` is the class logit before pooling (minus the bias).
/// Needs no gradient, only the classifier ([`crate::model::CamModel::linear_classifier`]);
/// any other head, or a layer that is not the last before the pooling, is an error.
///
/// Sign: positive where the features raise the class logit; a target whose score falls
/// with its class's logit (the counterfactual) negates the weights. torchcam min-max scales
/// the signed map without a ReLU; the runner applies its ReLU as for every method, so the
/// parity tests compare the raw maps.
#[derive(Debug, Clone, Copy, Default)]
pub struct ClassActivationMap;

impl ChannelWeights for ClassActivationMap {
    fn name(&self) -> &'static str {
        "cam"
    }

    fn uses_gradients(&self) -> bool {
        false
    }

    fn weights(&self, cam: &CamInput) -> Result<Tensor<2>> {
        let layer = cam.context.layer();
        let name = &cam.model.layers()[layer].name;
        let classifier = cam.model.linear_classifier(layer).ok_or_else(|| {
            Error::Invalid(format!(
                "CAM needs a model whose head is global average pooling then one linear layer, \
                 explained at the layer just before the pooling: {} after `{name}` is not \
                 (use gradcam, which equals CAM on such heads and works on any)",
                cam.model.name()
            ))
        })?;
        let [classes, channels] = classifier.dims();
        let [_, activation_channels, _, _] = cam.activations.dims();
        if channels != activation_channels {
            return Err(Error::Invalid(format!(
                "CAM: the classifier reads {channels} channels but `{name}` has {activation_channels}"
            )));
        }
        let device = cam.activations.device();
        let mut rows = Vec::with_capacity(cam.targets.len());
        let mut signs = Vec::with_capacity(cam.targets.len());
        for target in cam.targets {
            let class = target.class().ok_or_else(|| {
                Error::Invalid("CAM explains a class: give it a class target".to_string())
            })?;
            rows.push(class as i64);
            signs.push(direction(target.as_ref(), class, classes, &device));
        }
        let n = rows.len();
        let index = Tensor::<1, Int>::from_data(TensorData::new(rows, [n]), &device);
        let signs = Tensor::<2>::from_data(TensorData::new(signs, [n, 1]), &device);
        Ok(classifier.select(0, index) * signs)
    }
}

/// +1 when `target`'s score rises with the logit of `class`, -1 when it falls (the score of
/// a one-hot logit row against the zero row).
fn direction(
    target: &dyn Target,
    class: usize,
    classes: usize,
    device: &burn::tensor::Device,
) -> f32 {
    let mut one_hot = vec![0.0f32; classes];
    one_hot[class] = 1.0;
    let score = |v: Vec<f32>| {
        target
            .score(Tensor::<1>::from_data(
                TensorData::new(v, [classes]),
                device,
            ))
            .into_scalar::<f32>()
    };
    if score(one_hot) < score(vec![0.0; classes]) {
        -1.0
    } else {
        1.0
    }
}
