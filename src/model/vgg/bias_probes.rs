//! VGG's forward pass with FullGrad's bias probes (see [`crate::model::BiasProbe`]).

use burn::tensor::Tensor;

use super::{Feature, Vgg};
use crate::model::Staged;
use crate::model::bias_probe::{BiasProbe, bn_probed, conv_bn_probed};

impl Vgg {
    /// The logits, every convolution bias and batch norm of `features` probed.
    pub(super) fn forward_probed(&self, x: Tensor<4>) -> (Tensor<2>, Vec<BiasProbe>) {
        let mut probes = Vec::new();
        let x = self.features.iter().fold(x, |x, f| match f {
            Feature::Conv(conv) => conv_bn_probed(conv, &None, x, &mut probes),
            Feature::Norm(bn) => bn_probed(bn, x, &mut probes),
            other => other.forward(x),
        });
        (self.classify(x), probes)
    }
}
