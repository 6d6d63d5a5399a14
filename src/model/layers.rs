//! Building blocks shared by the architectures.

use burn::module::Param;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, PaddingConfig2d};
use burn::tensor::ops::PadMode;
use burn::tensor::{Device, Tensor};

use crate::kernels;

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

/// `bn(conv(x))`, or `conv(x)` alone once [`fold_batch_norm`] has merged the batch norm into
/// the convolution (models hold such a batch norm as `Option`, `Some` until the weights are
/// loaded, so that checkpoints load as they are).
pub(crate) fn conv_bn(conv: &Conv2d, bn: &Option<BatchNorm>, x: Tensor<4>) -> Tensor<4> {
    let y = kernels::conv2d(conv, x);
    match bn {
        Some(bn) => bn.forward(y),
        None => y,
    }
}

/// `act(conv_bn(conv, bn, x))`, the activation in the convolution's epilogue once the batch
/// norm is folded (see [`kernels::conv2d_act`]).
pub(crate) fn conv_bn_act(
    conv: &Conv2d,
    bn: &Option<BatchNorm>,
    x: Tensor<4>,
    act: Activation,
) -> Tensor<4> {
    match (bn, act) {
        (None, act) => kernels::conv2d_act(conv, x, act),
        (Some(_), Activation::Identity) => conv_bn(conv, bn, x),
        (Some(_), Activation::Relu) => relu(conv_bn(conv, bn, x)),
        (Some(_), Activation::Relu6) => relu6(conv_bn(conv, bn, x)),
    }
}

/// `act(conv_bn(conv, bn, x) + residual)`, the add and the activation in the convolution's
/// epilogue once the batch norm is folded (see [`kernels::conv2d_add_act`]).
pub(crate) fn conv_bn_add_act(
    conv: &Conv2d,
    bn: &Option<BatchNorm>,
    x: Tensor<4>,
    residual: Tensor<4>,
    act: Activation,
) -> Tensor<4> {
    match (bn, act) {
        (None, act) => kernels::conv2d_add_act(conv, x, residual, act),
        (Some(_), Activation::Identity) => conv_bn(conv, bn, x) + residual,
        (Some(_), Activation::Relu) => relu(conv_bn(conv, bn, x) + residual),
        (Some(_), Activation::Relu6) => relu6(conv_bn(conv, bn, x) + residual),
    }
}

/// Folds an inference-mode batch norm into the convolution before it, in place: per output
/// channel `s = gamma / sqrt(var + eps)`, `w' = w * s`, `b' = beta + (b - mean) * s`. The
/// convolution then does the work of the pair, and the four elementwise passes of the batch
/// norm over the activations disappear. The result equals `bn(conv(x))` up to rounding.
pub(crate) fn fold_batch_norm(conv: &mut Conv2d, bn: &mut Option<BatchNorm>) {
    let Some(bn) = bn.take() else { return };
    let weight = conv.weight.val();
    let [cout, ..] = weight.dims();
    let scale = bn.gamma.val() / (bn.running_var.value() + bn.epsilon).sqrt();
    let shift = match &conv.bias {
        Some(bias) => bias.val() - bn.running_mean.value(),
        None => bn.running_mean.value().neg(),
    };
    let bias = bn.beta.val() + shift * scale.clone();
    conv.weight = Param::from_tensor(weight * scale.reshape([cout, 1, 1, 1]));
    conv.bias = Some(Param::from_tensor(bias));
}

/// TensorFlow's "SAME" padding of a `[h, w]` input, which depends on its size: `[(top,
/// bottom), (left, right)]`, each axis's total `max((ceil(n/s) - 1) * s + k - n, 0)`, the
/// smaller half before.
fn same_padding(size: [usize; 2], kernel: usize, stride: usize) -> [(usize, usize); 2] {
    size.map(|n| {
        let total = ((n.div_ceil(stride) - 1) * stride + kernel).saturating_sub(n);
        (total / 2, total - total / 2)
    })
}

/// `x` zero-padded as TensorFlow's "SAME" padding does it (see [`conv_same_act`], which pads
/// without the copy).
pub(crate) fn pad_same(x: Tensor<4>, kernel: usize, stride: usize) -> Tensor<4> {
    let [_, _, h, w] = x.dims();
    let [(top, bottom), (left, right)] = same_padding([h, w], kernel, stride);
    if top + bottom + left + right == 0 {
        return x;
    }
    x.pad((left, right, top, bottom), PadMode::Constant(0.0))
}

/// `conv_bn_act(conv, bn, pad_same(x), act)` for an unpadded square `conv`, the padding done
/// by the convolution itself (no padded copy of `x`).
pub(crate) fn conv_same_act(
    conv: &Conv2d,
    bn: &Option<BatchNorm>,
    x: Tensor<4>,
    act: Activation,
) -> Tensor<4> {
    let [_, _, h, w] = x.dims();
    let [(top, bottom), (left, right)] = same_padding([h, w], conv.kernel_size[0], conv.stride[0]);
    let mut padded = conv.clone();
    padded.padding = PaddingConfig2d::Explicit(top, left, bottom, right);
    conv_bn_act(&padded, bn, x, act)
}

pub(crate) use crate::kernels::Activation;
pub(crate) use crate::kernels::guided_relu::{relu, relu6};

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Distribution, TensorData};

    fn random<const D: usize>(shape: [usize; D], device: &Device) -> Tensor<D> {
        Tensor::random(shape, Distribution::Normal(0.0, 1.0), device)
    }

    #[test]
    fn folded_batch_norm_equals_the_pair() {
        let device = Device::flex();
        for (groups, bias) in [(1, false), (1, true), (4, false)] {
            let mut conv = conv2d([4, 8], 3, 2, 1, groups, bias, &device);
            let mut bn = batch_norm(8, 1e-3, &device);
            bn.gamma = Param::from_tensor(random([8], &device));
            bn.beta = Param::from_tensor(random([8], &device));
            bn.running_mean = burn::module::RunningState::new(random([8], &device));
            bn.running_var = burn::module::RunningState::new(random([8], &device).abs() + 0.1);
            let x = random([2, 4, 9, 9], &device);
            let expected = bn.forward(conv.forward(x.clone())).into_data();
            let mut bn = Some(bn);
            fold_batch_norm(&mut conv, &mut bn);
            assert!(bn.is_none());
            let folded: TensorData = conv_bn(&conv, &bn, x).into_data();
            folded.assert_approx_eq::<f32>(&expected, burn::tensor::Tolerance::absolute(1e-4));
        }
    }
}
