//! EfficientNet-Lite's forward pass with FullGrad's bias probes (see
//! [`crate::model::BiasProbe`]).

use burn::tensor::Tensor;

use super::{EfficientNetLite, MBConv};
use crate::model::bias_probe::{BiasProbe, conv_bn_probed};
use crate::model::layers::{pad_same, relu6};

impl MBConv {
    fn forward_probed(&self, x: Tensor<4>, probes: &mut Vec<BiasProbe>) -> Tensor<4> {
        let mut y = x.clone();
        if let Some(conv) = &self.expand_conv {
            y = relu6(conv_bn_probed(conv, &self.bn0, y, probes));
        }
        if self.stride != 1 {
            y = pad_same(y, self.kernel, self.stride);
        }
        let y = relu6(conv_bn_probed(&self.depthwise_conv, &self.bn1, y, probes));
        let y = conv_bn_probed(&self.project_conv, &self.bn2, y, probes);
        if self.residual { y + x } else { y }
    }
}

impl EfficientNetLite {
    /// The logits, every convolution bias and batch norm of the network probed.
    pub(super) fn forward_probed(&self, x: Tensor<4>) -> (Tensor<2>, Vec<BiasProbe>) {
        let mut probes = Vec::new();
        let x = pad_same(x, 3, 2);
        let mut x = relu6(conv_bn_probed(&self.conv_stem, &self.bn0, x, &mut probes));
        for block in &self.blocks {
            x = block.forward_probed(x, &mut probes);
        }
        let x = relu6(conv_bn_probed(&self.conv_head, &self.bn1, x, &mut probes));
        let logits = self.fc.forward(x.mean_dims(&[2, 3]).flatten(1, 3));
        (logits, probes)
    }
}
