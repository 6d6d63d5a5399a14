//! Models that can be cut at a named layer.
//!
//! Every model is a sequence of named stages (torchvision module paths, so a cut name and a
//! checkpoint key prefix are the same string) followed by a classifier. Cutting at a stage
//! replaces pytorch-grad-cam's hooks: the body runs up to the stage, the rest runs from its
//! output, and only that rest needs autodiff.

pub mod efficientnet_lite;
mod layers;
mod registry;
pub mod resnet;
pub mod vgg;

use std::ops::Range;

use burn::tensor::{Device, Tensor, TensorData};

use crate::error::{Error, Result};

pub use efficientnet_lite::EfficientNetLite;
pub use registry::{
    Architecture, DefaultWeights, MODELS, ModelInfo, ModelSpec, build, load, model_info,
};
pub use resnet::{ResNet, ResNetConfig};
pub use vgg::{Vgg, VggConfig};

/// How a model wants its input: size and per-channel normalisation of RGB values in [0, 1].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Preprocess {
    /// Network input (height, width).
    pub size: (usize, usize),
    pub mean: [f32; 3],
    pub std: [f32; 3],
}

impl Preprocess {
    /// The network input `[n, 3, height, width]` for `data`, `n` images preprocessed (see
    /// [`crate::explain::preprocess_with`]) and laid end to end.
    pub fn tensor(&self, data: Vec<f32>) -> Tensor<4> {
        let (h, w) = self.size;
        let n = data.len() / (3 * h * w).max(1);
        Tensor::from_data(TensorData::new(data, [n, 3, h, w]), &Device::flex())
    }

    /// torchvision's ImageNet statistics at 224x224.
    pub const IMAGENET: Preprocess = Preprocess {
        size: (224, 224),
        mean: [0.485, 0.456, 0.406],
        std: [0.229, 0.224, 0.225],
    };
}

/// How a stage's output size follows from the input size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rounding {
    /// `ceil(input / downsample)`: padded convolutions and poolings.
    Ceil,
    /// `floor(input / downsample)`: unpadded 2x2 max-pooling (VGG).
    Floor,
}

/// A stage a model can be cut after.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layer {
    /// torchvision module path, e.g. `layer4.2` or `features.29`.
    pub name: String,
    /// Output channels.
    pub channels: usize,
    /// Total stride from the network input to this stage's output.
    pub downsample: usize,
    pub rounding: Rounding,
}

impl Layer {
    pub fn new(
        name: impl Into<String>,
        channels: usize,
        downsample: usize,
        rounding: Rounding,
    ) -> Self {
        Layer {
            name: name.into(),
            channels,
            downsample,
            rounding,
        }
    }

    /// Output shape `[channels, height, width]` for an input of `(height, width)`.
    pub fn output_shape(&self, (h, w): (usize, usize)) -> [usize; 3] {
        let d = self.downsample;
        match self.rounding {
            Rounding::Ceil => [self.channels, h.div_ceil(d), w.div_ceil(d)],
            Rounding::Floor => [self.channels, h / d, w / d],
        }
    }
}

/// A classifier that can be cut at any of its [`layers`](CamModel::layers).
///
/// Implementors only say how to run a range of stages and the classifier; cutting, the
/// default layer and name resolution come from the provided methods.
pub trait CamModel: Send + Sync {
    /// The model's name, e.g. `resnet50`.
    fn name(&self) -> &str;
    /// The stages in forward order.
    fn layers(&self) -> &[Layer];
    /// The layer explained when the user names none (pytorch-grad-cam's usual choice).
    fn default_layer(&self) -> &str;
    /// Images per pass that explain the most images per second on the CPU backend, for
    /// callers that batch a stream of images (`gradcam explain` without `--batch-size`).
    /// Batching pays for plain convolutions; EfficientNet-Lite0 overrides it with 1 (see
    /// docs/benchmarks.md).
    fn default_batch_size(&self) -> usize {
        8
    }
    /// Input size and normalisation.
    fn preprocess(&self) -> Preprocess;
    /// Number of outputs of the classifier.
    fn num_classes(&self) -> usize;
    /// Runs stages `range` (indices into [`layers`](CamModel::layers)) on `x`.
    fn forward_stages(&self, x: Tensor<4>, range: Range<usize>) -> Tensor<4>;
    /// Pooling and classifier on the output of the last stage: logits `[batch, classes]`.
    fn classify(&self, features: Tensor<4>) -> Tensor<2>;
    /// Other names users give a stage (`layer4` for `layer4.2`); `None` if `name` is no alias.
    fn alias(&self, _name: &str) -> Option<&str> {
        None
    }

    /// The index of a layer by name or alias; an unknown name lists the valid ones.
    fn layer_index(&self, name: &str) -> Result<usize> {
        let name = self.alias(name).unwrap_or(name);
        self.layers()
            .iter()
            .position(|l| l.name == name)
            .ok_or_else(|| Error::UnknownLayer {
                name: name.to_string(),
                model: self.name().to_string(),
                valid: self.layers().iter().map(|l| l.name.clone()).collect(),
            })
    }

    /// The full forward pass: logits `[batch, classes]`.
    fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        let n = self.layers().len();
        self.classify(self.forward_stages(x, 0..n))
    }

    /// The body: the output of stage `layer`.
    fn forward_to(&self, x: Tensor<4>, layer: usize) -> Tensor<4> {
        self.forward_stages(x, 0..layer + 1)
    }

    /// The head: logits from the output of stage `layer`.
    fn forward_from(&self, activations: Tensor<4>, layer: usize) -> Tensor<2> {
        let n = self.layers().len();
        self.classify(self.forward_stages(activations, layer + 1..n))
    }
}
