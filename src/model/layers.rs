//! Building blocks shared by the architectures.

use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, PaddingConfig2d};
use burn::tensor::ops::PadMode;
use burn::tensor::{Device, Tensor};

/// A convolution with symmetric zero padding `padding`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn conv2d(
    channels: [usize; 2],
    kernel: usize,
    stride: usize,
    padding: usize,
    groups: usize,
    bias: bool,
    device: &Device,
) -> Conv2d {
    Conv2dConfig::new(channels, [kernel, kernel])
        .with_stride([stride, stride])
        .with_padding(PaddingConfig2d::Explicit(
            padding, padding, padding, padding,
        ))
        .with_groups(groups)
        .with_bias(bias)
        .init(device)
}

pub(crate) fn batch_norm(channels: usize, epsilon: f64, device: &Device) -> BatchNorm {
    BatchNormConfig::new(channels)
        .with_epsilon(epsilon)
        .init(device)
}

/// TensorFlow's "SAME" padding, which depends on the input size: total
/// `max((ceil(n/s) - 1) * s + k - n, 0)`, the smaller half before.
pub(crate) fn pad_same(x: Tensor<4>, kernel: usize, stride: usize) -> Tensor<4> {
    let [_, _, h, w] = x.dims();
    let total = |n: usize| ((n.div_ceil(stride) - 1) * stride + kernel).saturating_sub(n);
    let (ph, pw) = (total(h), total(w));
    if ph == 0 && pw == 0 {
        return x;
    }
    x.pad(
        (pw / 2, pw - pw / 2, ph / 2, ph - ph / 2),
        PadMode::Constant(0.0),
    )
}

pub(crate) use super::guided::{relu, relu6};
