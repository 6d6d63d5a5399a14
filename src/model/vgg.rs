//! VGG (Simonyan & Zisserman, "Very Deep Convolutional Networks for Large-Scale Image
//! Recognition", ICLR 2015) with torchvision's module names: `features.N` is the N-th module of
//! torchvision's `features` Sequential, so `features.29` is VGG-16's last ReLU.

use std::ops::Range;

use burn::module::Module;
use burn::nn::conv::Conv2d;
use burn::nn::pool::{MaxPool2d, MaxPool2dConfig};
use burn::nn::{BatchNorm, Linear, LinearConfig};
use burn::tensor::module::adaptive_avg_pool2d;
use burn::tensor::{Device, Tensor};

use super::layers::{batch_norm, conv2d, relu};
use super::{CamModel, Layer, Preprocess, Rounding, Staged};
use crate::kernels as ops;

mod bias_probes;

/// torchvision's classifier is a Sequential with its Linear layers at 0, 3 and 6.
pub const KEY_REMAPS: crate::weights::KeyRemaps = &[
    (r"^classifier\.3\.", "classifier.1."),
    (r"^classifier\.6\.", "classifier.2."),
];

/// One entry of torchvision's VGG configuration: a 3x3 convolution's width, or a 2x2 max-pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Item {
    Conv(usize),
    Pool,
}

use Item::{Conv as C, Pool as M};

/// torchvision's `vgg11` features (configuration "A"); `C` a 3x3 convolution, `M` a max pool.
#[rustfmt::skip]
pub const VGG11: &[Item] = &[C(64), M, C(128), M, C(256), C(256), M, C(512), C(512), M, C(512), C(512), M];
/// torchvision's `vgg13` features (configuration "B"); `C` a 3x3 convolution, `M` a max pool.
#[rustfmt::skip]
pub const VGG13: &[Item] = &[C(64), C(64), M, C(128), C(128), M, C(256), C(256), M, C(512), C(512), M, C(512), C(512), M];
/// torchvision's `vgg16` features (configuration "D"); `C` a 3x3 convolution, `M` a max pool.
#[rustfmt::skip]
pub const VGG16: &[Item] = &[C(64), C(64), M, C(128), C(128), M, C(256), C(256), C(256), M, C(512), C(512), C(512), M, C(512), C(512), C(512), M];
/// torchvision's `vgg19` features (configuration "E"); `C` a 3x3 convolution, `M` a max pool.
#[rustfmt::skip]
pub const VGG19: &[Item] = &[C(64), C(64), M, C(128), C(128), M, C(256), C(256), C(256), C(256), M, C(512), C(512), C(512), C(512), M, C(512), C(512), C(512), C(512), M];

/// One module of torchvision's `features` Sequential.
#[derive(Module, Debug)]
pub enum Feature {
    Conv(Conv2d),
    Norm(BatchNorm),
    Relu(burn::nn::Relu),
    Pool(MaxPool2d),
}

impl Feature {
    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        match self {
            Feature::Conv(conv) => ops::conv2d(conv, x),
            Feature::Norm(bn) => bn.forward(x),
            Feature::Relu(_) => relu(x),
            Feature::Pool(pool) => ops::max_pool2d(pool, x),
        }
    }
}

/// The shape of a VGG: its feature configuration, batch norm or not, classifier width.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VggConfig {
    pub name: String,
    pub features: Vec<Item>,
    pub batch_norm: bool,
    /// Width of the two hidden classifier layers (4096 in torchvision).
    pub hidden: usize,
    pub num_classes: usize,
}

impl VggConfig {
    /// Builds the network with random weights.
    pub fn init(&self, device: &Device) -> Vgg {
        let mut features = Vec::new();
        let mut layers = Vec::new();
        let (mut channels, mut downsample) = (3, 1);
        for item in &self.features {
            let mut push = |f: Feature, channels: usize, downsample: usize| {
                let rounding = if downsample == 1 {
                    Rounding::Ceil
                } else {
                    Rounding::Floor
                };
                layers.push(Layer::new(
                    format!("features.{}", features.len()),
                    channels,
                    downsample,
                    rounding,
                ));
                features.push(f);
            };
            match *item {
                Item::Conv(width) => {
                    push(
                        Feature::Conv(conv2d([channels, width], 3, 1, 1, 1, true, device)),
                        width,
                        downsample,
                    );
                    if self.batch_norm {
                        push(
                            Feature::Norm(batch_norm(width, 1e-5, device)),
                            width,
                            downsample,
                        );
                    }
                    push(Feature::Relu(burn::nn::Relu), width, downsample);
                    channels = width;
                }
                Item::Pool => {
                    downsample *= 2;
                    push(
                        Feature::Pool(MaxPool2dConfig::new([2, 2]).init()),
                        channels,
                        downsample,
                    );
                }
            }
        }
        let default_layer = match features.iter().rposition(|f| matches!(f, Feature::Relu(_))) {
            Some(i) => format!("features.{i}"),
            None => "features.0".to_string(),
        };
        let flat = channels * 7 * 7;
        Vgg {
            features,
            classifier: vec![
                LinearConfig::new(flat, self.hidden).init(device),
                LinearConfig::new(self.hidden, self.hidden).init(device),
                LinearConfig::new(self.hidden, self.num_classes).init(device),
            ],
            name: self.name.clone(),
            layers,
            default_layer,
        }
    }
}

/// A torchvision VGG. Layers: every module of `features`; the default is the last ReLU, the
/// rectified output of the last convolution, as in the Grad-CAM paper (`features.29` for VGG-16).
/// The classifier's Linear layers are torchvision's `classifier.0`, `.3` and `.6`.
#[derive(Module, Debug)]
pub struct Vgg {
    features: Vec<Feature>,
    classifier: Vec<Linear>,
    #[module(skip)]
    name: String,
    #[module(skip)]
    layers: Vec<Layer>,
    #[module(skip)]
    default_layer: String,
}

impl CamModel for Vgg {
    fn name(&self) -> &str {
        &self.name
    }

    fn layers(&self) -> &[Layer] {
        &self.layers
    }

    fn default_layer(&self) -> &str {
        &self.default_layer
    }

    fn forward_with_bias_probes(
        &self,
        x: Tensor<4>,
    ) -> crate::error::Result<(Tensor<2>, Vec<super::BiasProbe>)> {
        Ok(self.forward_probed(x))
    }

    fn preprocess(&self) -> Preprocess {
        Preprocess::IMAGENET
    }

    fn num_classes(&self) -> usize {
        self.classifier[2].weight.dims()[1]
    }
}

impl Staged for Vgg {
    fn forward_stages(&self, x: Tensor<4>, range: Range<usize>) -> Tensor<4> {
        self.features[range].iter().fold(x, |x, f| f.forward(x))
    }

    /// torchvision's `avgpool` (adaptive, to 7x7) and classifier; its dropouts are identities
    /// at inference.
    fn classify(&self, features: Tensor<4>) -> Tensor<2> {
        let x = adaptive_avg_pool2d(features, [7, 7]).flatten(1, 3);
        let x = relu(self.classifier[0].forward(x));
        let x = relu(self.classifier[1].forward(x));
        self.classifier[2].forward(x)
    }
}
