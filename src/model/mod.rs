//! Models that can be cut at a named layer.
//!
//! Every model is a sequence of named stages (torchvision module paths, so a cut name and a
//! checkpoint key prefix are the same string) followed by a classifier. Cutting at a stage
//! replaces pytorch-grad-cam's hooks: the body runs up to the stage, the rest runs from its
//! output, and only that rest needs autodiff.

mod attention;
mod bias_probe;
pub mod efficientnet_lite;
mod embedding;
mod layers;
mod onnx;
mod registry;
pub mod resnet;
pub mod vgg;

use std::ops::Range;
use std::sync::Arc;

use burn::tensor::{Device, Tensor, TensorData};
use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::kernels::on_worker;
use crate::labels::ClassNames;

pub use attention::AttentionForward;
pub use bias_probe::BiasProbe;
pub use efficientnet_lite::EfficientNetLite;
pub use embedding::PooledEmbedding;
pub use onnx::{OnnxModel, OnnxOptions, Reshape};
pub use registry::{
    Architecture, DefaultWeights, MODELS, ModelInfo, ModelSpec, build, is_onnx_path, load,
    model_info,
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

/// A layer a model can be cut after.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layer {
    /// torchvision module path, e.g. `layer4.2` or `features.29`.
    pub name: String,
    /// Output channels.
    pub channels: usize,
    /// How the layer's spatial size follows from the input's.
    pub grid: Grid,
    /// Other names it answers to (an ONNX layer's tensor name and inner module paths).
    pub aliases: Vec<String>,
}

/// The spatial size of a layer's output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grid {
    /// A total stride from the network input, with its rounding.
    Strided {
        downsample: usize,
        rounding: Rounding,
    },
    /// A size measured at the model's one input size (graph models).
    Fixed { height: usize, width: usize },
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
            grid: Grid::Strided {
                downsample,
                rounding,
            },
            aliases: Vec::new(),
        }
    }

    /// Output shape `[channels, height, width]` for an input of `(height, width)`.
    pub fn output_shape(&self, (h, w): (usize, usize)) -> [usize; 3] {
        match self.grid {
            Grid::Strided {
                downsample: d,
                rounding: Rounding::Ceil,
            } => [self.channels, h.div_ceil(d), w.div_ceil(d)],
            Grid::Strided {
                downsample: d,
                rounding: Rounding::Floor,
            } => [self.channels, h / d, w / d],
            Grid::Fixed { height, width } => [self.channels, height, width],
        }
    }
}

/// A classifier that can be cut at any of its [`layers`](CamModel::layers).
///
/// Implementors say what the layers are and how to run the network ([`Forward`]); name
/// resolution comes from the provided methods. The built-in architectures get [`Forward`]
/// from [`Staged`].
pub trait CamModel: Forward {
    /// The model's name, e.g. `resnet50`.
    fn name(&self) -> &str;
    /// The layers in forward order.
    fn layers(&self) -> &[Layer];
    /// The layer explained when the user names none (pytorch-grad-cam's usual choice).
    fn default_layer(&self) -> &str;
    /// Images per pass that explain the most images per second on the CPU backend, for
    /// callers that batch a stream of images (`gradcam explain` without `--batch-size`).
    /// A batch's images go to the threads, so batches pay for every architecture
    /// (docs/benchmarks.md, section 11).
    fn default_batch_size(&self) -> usize {
        8
    }
    /// Input size and normalisation.
    fn preprocess(&self) -> Preprocess;
    /// Number of outputs of the classifier (of classes per pixel for a segmentation model).
    fn num_classes(&self) -> usize;
    /// For a segmentation model, whose output is (B, K, H, W): `[K, H, W]`. Its output rows
    /// (what [`Forward`] returns and targets score) are then those maps flattened, `K * H * W`
    /// values, class by class.
    fn output_map(&self) -> Option<[usize; 3]> {
        None
    }
    /// Class names, when the model brings its own (ImageNet's are used for 1000 classes).
    fn labels(&self) -> Option<&[String]> {
        None
    }
    /// The class names to print and to look `--class` up in.
    fn class_names(&self) -> ClassNames<'_> {
        ClassNames::new(self.labels(), self.num_classes())
    }
    /// The weights `[classes, channels]` of the classifier when the head that follows `layer`
    /// (an index into [`layers`](CamModel::layers)) is global average pooling then one linear
    /// layer, as Zhou et al.'s CAM needs; `None` for any other head (the default).
    fn linear_classifier(&self, _layer: usize) -> Option<Tensor<2>> {
        None
    }
    /// The logits of a full forward pass of `x` (with autodiff) in which every layer that adds
    /// a per-channel bias also adds a zero probe that requires grad, and those probes in
    /// forward order: FullGrad's bias-gradient terms. Default: an error, for models that do
    /// not expose their biases.
    fn forward_with_bias_probes(&self, _x: Tensor<4>) -> Result<(Tensor<2>, Vec<BiasProbe>)> {
        Err(Error::Invalid(format!(
            "FullGrad needs the bias of every layer, which {} does not expose (the built-in \
             models and ONNX graphs do)",
            self.name()
        )))
    }
    /// The transformer blocks LeGrad can explain, by module path, in forward order (they are
    /// layers too). Default: an error, for models without attention (the built-in CNNs).
    fn attention_blocks(&self) -> Result<Vec<String>> {
        Err(attention::no_attention(self.name()))
    }
    /// LeGrad's forward pass of `x` for `blocks` (indices into
    /// [`attention_blocks`](CamModel::attention_blocks)). Default: the same error.
    fn forward_with_attention(&self, _x: Tensor<4>, _blocks: &[usize]) -> Result<AttentionForward> {
        Err(attention::no_attention(self.name()))
    }
    /// Other names users give a layer (`layer4` for `layer4.2`); `None` if `name` is no alias.
    fn alias(&self, _name: &str) -> Option<&str> {
        None
    }
    /// Names to suggest for an unknown layer `name` (default: every layer).
    fn suggest(&self, _name: &str) -> Vec<String> {
        self.layers().iter().map(|l| l.name.clone()).collect()
    }

    /// The index of a layer by name or alias; an unknown name lists the valid ones.
    fn layer_index(&self, name: &str) -> Result<usize> {
        let canonical = self.alias(name).unwrap_or(name);
        self.layers()
            .iter()
            .position(|l| l.name == canonical)
            .ok_or_else(|| Error::UnknownLayer {
                name: name.to_string(),
                model: self.name().to_string(),
                valid: self.suggest(name),
            })
    }
}

/// Running a model whole, or cut at a layer into a body (no autodiff) and a head.
pub trait Forward: Send + Sync {
    /// The full forward pass: logits `[batch, classes]`.
    fn forward(&self, x: Tensor<4>) -> Result<Tensor<2>>;
    /// The body: the output of layer `layer` (an index into [`CamModel::layers`]) as a map
    /// `[batch, channels, h, w]`, and what the head needs besides it.
    fn forward_to(&self, x: Tensor<4>, layer: usize) -> Result<Cut>;
    /// The head: logits from (possibly modified or autodiff) `activations` of the cut that
    /// `context` came from. Row `i` of `activations` belongs to image `rows[i]` of the body's
    /// batch (`None`: to image `i`), so the head can run on several copies of one image.
    fn forward_from(
        &self,
        activations: Tensor<4>,
        context: &CutContext,
        rows: Option<&[usize]>,
    ) -> Result<Tensor<2>>;
    /// The head up to layer `until` (at or after the cut's), averaged over space: an
    /// embedding `[batch, channels]`, as ResNet and EfficientNet-Lite pool before their
    /// classifier. Models that cannot stop inside their head refuse.
    fn forward_pooled(
        &self,
        _activations: Tensor<4>,
        _context: &CutContext,
        _until: usize,
    ) -> Result<Tensor<2>> {
        Err(Error::Invalid(
            "this model cannot stop at a layer for an embedding: name an output".to_string(),
        ))
    }
}

/// The body's output at a layer.
pub struct Cut {
    /// The layer's output as a map `[batch, channels, h, w]`.
    pub activations: Tensor<4>,
    /// What [`Forward::forward_from`] needs besides the activations.
    pub context: CutContext,
}

/// The layer a [`Cut`] was made at and, for graph models, the tensors that cross the cut
/// without depending on it.
#[derive(Clone)]
pub struct CutContext {
    layer: usize,
    graph: Option<Arc<onnx::CutState>>,
}

impl CutContext {
    /// The context of a cut at `layer` of a model whose head needs nothing else.
    pub fn at(layer: usize) -> Self {
        CutContext { layer, graph: None }
    }

    /// The index of the layer the cut was made at.
    pub fn layer(&self) -> usize {
        self.layer
    }
}

/// `f(x)` for a batch `x` without autodiff, one image at a time on each of rayon's threads,
/// the results stacked in order; `f(x)` itself for one image, on one thread or with autodiff
/// (a graph must stay one).
///
/// A pass over the whole batch layer by layer keeps every image's outputs of a layer until
/// the next reads them, more than the caches hold; an image at a time keeps one image's
/// activations in cache, and the threads share each layer's weights in the common cache
/// (docs/benchmarks.md, section 11).
fn image_by_image<const D: usize>(
    x: Tensor<4>,
    f: impl Fn(Tensor<4>) -> Result<Tensor<D>> + Sync,
) -> Result<Tensor<D>> {
    if !splits_into_images(&x) {
        return f(x);
    }
    Ok(Tensor::cat(each_image(&x, f)?, 0))
}

/// Whether [`image_by_image`] splits `x`: several images, several threads, no autodiff.
fn splits_into_images(x: &Tensor<4>) -> bool {
    x.dims()[0] > 1 && rayon::current_num_threads() > 1 && !x.is_autodiff()
}

/// `f` on each image of `x` as a batch of one, an image per task on rayon's threads; the
/// results in the images' order.
fn each_image<T: Send>(x: &Tensor<4>, f: impl Fn(Tensor<4>) -> Result<T> + Sync) -> Result<Vec<T>> {
    let batch = x.dims()[0];
    on_worker(|| {
        (0..batch)
            .into_par_iter()
            .with_max_len(1)
            .map(|i| f(x.clone().narrow(0, i, 1)))
            .collect()
    })
}

/// A model made of stages run in sequence, then a classifier: the built-in architectures.
/// Cutting after stage `i` runs stages `0..=i` as the body, the rest and the classifier as
/// the head.
pub trait Staged: Send + Sync {
    /// Runs stages `range` (indices into [`CamModel::layers`]) on `x`.
    fn forward_stages(&self, x: Tensor<4>, range: Range<usize>) -> Tensor<4>;
    /// Pooling and classifier on the output of the last stage: logits `[batch, classes]`.
    fn classify(&self, features: Tensor<4>) -> Tensor<2>;
}

impl<T: Staged + CamModel> Forward for T {
    fn forward(&self, x: Tensor<4>) -> Result<Tensor<2>> {
        let stages = 0..self.layers().len();
        image_by_image(x, |x| {
            Ok(self.classify(self.forward_stages(x, stages.clone())))
        })
    }

    fn forward_to(&self, x: Tensor<4>, layer: usize) -> Result<Cut> {
        Ok(Cut {
            activations: image_by_image(x, |x| Ok(self.forward_stages(x, 0..layer + 1)))?,
            context: CutContext::at(layer),
        })
    }

    fn forward_from(
        &self,
        activations: Tensor<4>,
        context: &CutContext,
        _rows: Option<&[usize]>,
    ) -> Result<Tensor<2>> {
        let stages = context.layer + 1..self.layers().len();
        Ok(self.classify(self.forward_stages(activations, stages)))
    }

    fn forward_pooled(
        &self,
        activations: Tensor<4>,
        context: &CutContext,
        until: usize,
    ) -> Result<Tensor<2>> {
        let features = self.forward_stages(activations, context.layer + 1..until + 1);
        Ok(features.mean_dims(&[2, 3]).flatten(1, 3))
    }
}
