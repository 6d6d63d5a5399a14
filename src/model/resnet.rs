//! ResNet (He et al., "Deep Residual Learning for Image Recognition", CVPR 2016) with
//! torchvision's module names, so its checkpoints load as they are (ResNet v1.5: the stride of
//! a bottleneck is on its 3x3 convolution).

use std::ops::Range;

use burn::module::Module;
use burn::nn::conv::Conv2d;
use burn::nn::pool::{MaxPool2d, MaxPool2dConfig};
use burn::nn::{BatchNorm, Linear, LinearConfig, PaddingConfig2d};
use burn::tensor::{Device, Tensor};

use super::layers::{
    Activation, batch_norm, conv_bn, conv_bn_act, conv_bn_add_act, conv2d, fold_batch_norm, relu,
};
use super::{CamModel, Layer, Preprocess, Rounding, Staged};
use crate::kernels as ops;

mod bias_probes;

const BN_EPS: f64 = 1e-5;

/// torchvision names the skip connection's layers by position (`downsample.0`, `downsample.1`).
pub const KEY_REMAPS: crate::weights::KeyRemaps = &[
    (r"\.downsample\.0\.", ".downsample.conv."),
    (r"\.downsample\.1\.", ".downsample.bn."),
];

/// A 1x1 convolution and BN that bring the skip connection to the block's output shape
/// (torchvision's `downsample.0` and `downsample.1`).
#[derive(Module, Debug)]
pub struct Downsample {
    conv: Conv2d,
    bn: Option<BatchNorm>,
}

/// A residual block: BasicBlock (two 3x3 convolutions) or Bottleneck (1x1, 3x3, 1x1) when
/// `conv3` is present.
#[derive(Module, Debug)]
pub struct Block {
    conv1: Conv2d,
    bn1: Option<BatchNorm>,
    conv2: Conv2d,
    bn2: Option<BatchNorm>,
    conv3: Option<Conv2d>,
    bn3: Option<BatchNorm>,
    downsample: Option<Downsample>,
}

impl Block {
    fn basic(cin: usize, planes: usize, stride: usize, device: &Device) -> Self {
        Block {
            conv1: conv2d([cin, planes], 3, stride, 1, 1, false, device),
            bn1: Some(batch_norm(planes, BN_EPS, device)),
            conv2: conv2d([planes, planes], 3, 1, 1, 1, false, device),
            bn2: Some(batch_norm(planes, BN_EPS, device)),
            conv3: None,
            bn3: None,
            downsample: Downsample::when_needed(cin, planes, stride, device),
        }
    }

    fn bottleneck(cin: usize, planes: usize, stride: usize, device: &Device) -> Self {
        let cout = planes * 4;
        Block {
            conv1: conv2d([cin, planes], 1, 1, 0, 1, false, device),
            bn1: Some(batch_norm(planes, BN_EPS, device)),
            conv2: conv2d([planes, planes], 3, stride, 1, 1, false, device),
            bn2: Some(batch_norm(planes, BN_EPS, device)),
            conv3: Some(conv2d([planes, cout], 1, 1, 0, 1, false, device)),
            bn3: Some(batch_norm(cout, BN_EPS, device)),
            downsample: Downsample::when_needed(cin, cout, stride, device),
        }
    }

    /// `relu(last(y) + skip)`, the sum and its ReLU in the last convolution's epilogue.
    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let y = conv_bn_act(&self.conv1, &self.bn1, x.clone(), Activation::Relu);
        let (last, last_bn, y) = match &self.conv3 {
            Some(conv3) => {
                let y = conv_bn_act(&self.conv2, &self.bn2, y, Activation::Relu);
                (conv3, &self.bn3, y)
            }
            None => (&self.conv2, &self.bn2, y),
        };
        // Computed after conv1 has let go of its copy of `x`, so that the identity skip is the
        // only holder of its buffer and the sum is written into it.
        let skip = match &self.downsample {
            Some(d) => conv_bn(&d.conv, &d.bn, x),
            None => x,
        };
        conv_bn_add_act(last, last_bn, y, skip, Activation::Relu)
    }

    fn fold_batch_norms(&mut self) {
        fold_batch_norm(&mut self.conv1, &mut self.bn1);
        fold_batch_norm(&mut self.conv2, &mut self.bn2);
        if let Some(conv3) = &mut self.conv3 {
            fold_batch_norm(conv3, &mut self.bn3);
        }
        if let Some(d) = &mut self.downsample {
            fold_batch_norm(&mut d.conv, &mut d.bn);
        }
    }
}

impl Downsample {
    fn when_needed(cin: usize, cout: usize, stride: usize, device: &Device) -> Option<Self> {
        (stride != 1 || cin != cout).then(|| Downsample {
            conv: conv2d([cin, cout], 1, stride, 0, 1, false, device),
            bn: Some(batch_norm(cout, BN_EPS, device)),
        })
    }
}

/// The shape of a ResNet: blocks per stage, block type, width of the first stage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResNetConfig {
    pub name: String,
    pub blocks: [usize; 4],
    pub bottleneck: bool,
    /// Channels of the stem and of the first stage's blocks (64 in torchvision).
    pub width: usize,
    pub num_classes: usize,
}

impl ResNetConfig {
    /// Builds the network with random weights.
    pub fn init(&self, device: &Device) -> ResNet {
        let expansion = if self.bottleneck { 4 } else { 1 };
        let mut layers = vec![
            Layer::new("conv1", self.width, 2, Rounding::Ceil),
            Layer::new("bn1", self.width, 2, Rounding::Ceil),
            Layer::new("relu", self.width, 2, Rounding::Ceil),
            Layer::new("maxpool", self.width, 4, Rounding::Ceil),
        ];
        let mut stages: [Vec<Block>; 4] = Default::default();
        let mut cin = self.width;
        let mut downsample = 4;
        for (s, stage) in stages.iter_mut().enumerate() {
            let planes = self.width << s;
            for i in 0..self.blocks[s] {
                let stride = if s > 0 && i == 0 { 2 } else { 1 };
                downsample *= stride;
                stage.push(if self.bottleneck {
                    Block::bottleneck(cin, planes, stride, device)
                } else {
                    Block::basic(cin, planes, stride, device)
                });
                cin = planes * expansion;
                layers.push(Layer::new(
                    format!("layer{}.{i}", s + 1),
                    cin,
                    downsample,
                    Rounding::Ceil,
                ));
            }
        }
        let [layer1, layer2, layer3, layer4] = stages;
        ResNet {
            conv1: conv2d([3, self.width], 7, 2, 3, 1, false, device),
            bn1: batch_norm(self.width, BN_EPS, device),
            maxpool: MaxPool2dConfig::new([3, 3])
                .with_strides([2, 2])
                .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
                .init(),
            layer1,
            layer2,
            layer3,
            layer4,
            fc: LinearConfig::new(cin, self.num_classes).init(device),
            stem: None,
            name: self.name.clone(),
            layers,
        }
    }
}

/// A torchvision ResNet. Layers: `conv1`, `bn1`, `relu`, `maxpool`, then every block
/// (`layer1.0` ... `layer4.2`); `layerN` stands for its last block. Default: `layer4`.
#[derive(Module, Debug)]
pub struct ResNet {
    conv1: Conv2d,
    bn1: BatchNorm,
    maxpool: MaxPool2d,
    layer1: Vec<Block>,
    layer2: Vec<Block>,
    layer3: Vec<Block>,
    layer4: Vec<Block>,
    fc: Linear,
    /// `conv1` with `bn1` folded in, set by [`ResNet::fold_batch_norms`]: the stem of a pass
    /// that runs `conv1`, `bn1` and `relu` together, the ReLU in its epilogue.
    #[module(skip)]
    stem: Option<Conv2d>,
    #[module(skip)]
    name: String,
    #[module(skip)]
    layers: Vec<Layer>,
}

impl ResNet {
    /// Merges the batch norm of every block into the convolution before it, for inference
    /// once the weights are loaded (see [`super::layers::fold_batch_norm`]);
    /// [`crate::model::load`] does it. The stem's `bn1` stays, as it is a layer of its own,
    /// and a folded copy of `conv1` serves the passes that run through `relu`.
    pub fn fold_batch_norms(mut self) -> Self {
        let mut stem = self.conv1.clone();
        fold_batch_norm(&mut stem, &mut Some(self.bn1.clone()));
        self.stem = Some(stem);
        for stage in [
            &mut self.layer1,
            &mut self.layer2,
            &mut self.layer3,
            &mut self.layer4,
        ] {
            stage.iter_mut().for_each(Block::fold_batch_norms);
        }
        self
    }

    fn block(&self, index: usize) -> &Block {
        let mut index = index;
        for stage in [&self.layer1, &self.layer2, &self.layer3, &self.layer4] {
            if index < stage.len() {
                return &stage[index];
            }
            index -= stage.len();
        }
        unreachable!("stage index checked by the caller")
    }
}

impl CamModel for ResNet {
    fn name(&self) -> &str {
        &self.name
    }

    fn layers(&self) -> &[Layer] {
        &self.layers
    }

    fn default_layer(&self) -> &str {
        "layer4"
    }

    fn forward_with_bias_probes(
        &self,
        x: Tensor<4>,
    ) -> crate::error::Result<(Tensor<2>, Vec<super::BiasProbe>)> {
        Ok(self.forward_probed(x))
    }

    fn alias(&self, name: &str) -> Option<&str> {
        let stage = match name {
            "layer1" => &self.layer1,
            "layer2" => &self.layer2,
            "layer3" => &self.layer3,
            "layer4" => &self.layer4,
            _ => return None,
        };
        let last = format!("{name}.{}", stage.len() - 1);
        self.layers
            .iter()
            .find(|l| l.name == last)
            .map(|l| l.name.as_str())
    }

    fn preprocess(&self) -> Preprocess {
        Preprocess::IMAGENET
    }

    fn num_classes(&self) -> usize {
        self.fc.weight.dims()[1]
    }

    // `classify` is the mean over positions then `fc`, right after the last layer.
    fn linear_classifier(&self, layer: usize) -> Option<Tensor<2>> {
        (layer + 1 == self.layers.len()).then(|| self.fc.weight.val().transpose())
    }
}

impl Staged for ResNet {
    fn forward_stages(&self, mut x: Tensor<4>, mut range: Range<usize>) -> Tensor<4> {
        // Stages 0, 1 and 2 are conv1, bn1 and relu.
        if let (Some(stem), 0, 3..) = (&self.stem, range.start, range.end) {
            x = ops::conv2d_act(stem, x, Activation::Relu);
            range.start = 3;
        }
        for stage in range {
            x = match stage {
                0 => ops::conv2d(&self.conv1, x),
                1 => self.bn1.forward(x),
                2 => relu(x),
                3 => ops::max_pool2d(&self.maxpool, x),
                s => self.block(s - 4).forward(x),
            };
        }
        x
    }

    fn classify(&self, features: Tensor<4>) -> Tensor<2> {
        self.fc.forward(features.mean_dims(&[2, 3]).flatten(1, 3))
    }
}
