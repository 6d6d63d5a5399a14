//! FullGrad's view of a network: every layer that adds a per-channel bias (a convolution's
//! bias, a batch norm's shift) adds a zero "probe" to its output as well, so one backward pass
//! gives the gradient at each of those outputs, the probe's gradient.

use burn::nn::BatchNorm;
use burn::nn::conv::Conv2d;
use burn::tensor::Tensor;

use crate::kernels;

/// One biased layer of a forward pass: its bias and the probe added to its output.
pub struct BiasProbe {
    /// The per-channel bias `[channels]` the layer adds (a batch norm's is
    /// `beta - mean * gamma / sqrt(var + eps)`).
    pub bias: Tensor<1>,
    /// Zeros `[batch, channels, h, w]` that require grad, added to the layer's output: its
    /// gradient is the gradient at that output.
    pub probe: Tensor<4>,
}

/// `y` plus a new probe for `bias`, recorded in `probes`.
pub(crate) fn probed(y: Tensor<4>, bias: Tensor<1>, probes: &mut Vec<BiasProbe>) -> Tensor<4> {
    let probe = Tensor::<4>::zeros(y.dims(), &y.device())
        .autodiff()
        .require_grad();
    probes.push(BiasProbe {
        bias: bias.without_autodiff(),
        probe: probe.clone(),
    });
    y + probe
}

/// `bn(conv(x))` (or `conv(x)` alone, e.g. with the batch norm folded in), probing the
/// convolution's output when it has a bias and the batch norm's output, as pytorch-grad-cam's
/// FullGrad hooks each `Conv2d` with a bias and each `BatchNorm2d`.
pub(crate) fn conv_bn_probed(
    conv: &Conv2d,
    bn: &Option<BatchNorm>,
    x: Tensor<4>,
    probes: &mut Vec<BiasProbe>,
) -> Tensor<4> {
    let mut y = kernels::conv2d(conv, x);
    if let Some(bias) = &conv.bias {
        y = probed(y, bias.val(), probes);
    }
    match bn {
        Some(bn) => bn_probed(bn, y, probes),
        None => y,
    }
}

/// `bn(x)` with its output probed.
pub(crate) fn bn_probed(bn: &BatchNorm, x: Tensor<4>, probes: &mut Vec<BiasProbe>) -> Tensor<4> {
    let scale = bn.gamma.val() / (bn.running_var.value() + bn.epsilon).sqrt();
    let shift = bn.beta.val() - bn.running_mean.value() * scale;
    let y = bn.forward(x);
    probed(y, shift, probes)
}
