//! The crate's fast convolution, max pooling and ReLU6 kernels, named in this one place so
//! that moving them (to `crate::kernels`) is a one-line change here.

use crate::model::ops::{self as fast, LayerOps};
use burn::backend::Dispatch;
use burn::tensor::Tensor;
use burn::tensor::ops::ConvOptions;

/// `conv2d(x, weight, bias)` through the crate's im2col / gemm and depthwise kernels.
pub(super) fn conv2d(
    x: Tensor<4>,
    weight: Tensor<4>,
    bias: Option<Tensor<1>>,
    options: ConvOptions<2>,
) -> Tensor<4> {
    let (x, weight) = (x.into_dispatch(), weight.into_dispatch());
    Tensor::from_dispatch(match bias {
        Some(b) => <Dispatch as LayerOps>::layer_conv2d(x, weight, b.into_dispatch(), options),
        None => <Dispatch as LayerOps>::layer_conv2d_unbiased(x, weight, options),
    })
}

/// Max pooling with symmetric padding, dilation 1 and floor rounding.
pub(super) fn max_pool2d(
    x: Tensor<4>,
    kernel: [usize; 2],
    stride: [usize; 2],
    padding: [usize; 2],
) -> Tensor<4> {
    Tensor::from_dispatch(<Dispatch as LayerOps>::layer_max_pool2d(
        x.into_dispatch(),
        kernel,
        stride,
        padding,
    ))
}

/// `clamp(x, 0, 6)` with PyTorch's gradient (none at 0 and 6).
pub(super) fn relu6<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    fast::relu6(x)
}
