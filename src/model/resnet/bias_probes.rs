//! ResNet's forward pass with FullGrad's bias probes (see [`crate::model::BiasProbe`]).

use burn::tensor::Tensor;

use super::{Block, ResNet};
use crate::kernels as ops;
use crate::model::bias_probe::{BiasProbe, bn_probed, conv_bn_probed, probed};
use crate::model::layers::relu;

impl Block {
    fn forward_probed(&self, x: Tensor<4>, probes: &mut Vec<BiasProbe>) -> Tensor<4> {
        let y = relu(conv_bn_probed(&self.conv1, &self.bn1, x.clone(), probes));
        let y = match &self.conv3 {
            Some(conv3) => {
                let y = relu(conv_bn_probed(&self.conv2, &self.bn2, y, probes));
                conv_bn_probed(conv3, &self.bn3, y, probes)
            }
            None => conv_bn_probed(&self.conv2, &self.bn2, y, probes),
        };
        let skip = match &self.downsample {
            Some(d) => conv_bn_probed(&d.conv, &d.bn, x, probes),
            None => x,
        };
        relu(y + skip)
    }
}

impl ResNet {
    /// The logits, every convolution bias and batch norm of the network probed.
    pub(super) fn forward_probed(&self, x: Tensor<4>) -> (Tensor<2>, Vec<BiasProbe>) {
        let mut probes = Vec::new();
        let mut x = ops::conv2d(&self.conv1, x);
        if let Some(bias) = &self.conv1.bias {
            x = probed(x, bias.val(), &mut probes);
        }
        x = ops::max_pool2d(&self.maxpool, relu(bn_probed(&self.bn1, x, &mut probes)));
        for stage in [&self.layer1, &self.layer2, &self.layer3, &self.layer4] {
            for block in stage {
                x = block.forward_probed(x, &mut probes);
            }
        }
        let logits = self.fc.forward(x.mean_dims(&[2, 3]).flatten(1, 3));
        (logits, probes)
    }
}
