//! The crate's fast convolution and max pooling kernels, named in this one place so
//! that moving them (to `crate::kernels`) is a one-line change here.

use crate::kernels::{self as fast, LayerOps};
use burn::backend::Dispatch;
use burn::tensor::Tensor;

/// `conv2d(x, weight, bias)` through the crate's im2col / gemm and depthwise kernels.
pub(super) use fast::conv2d_with as conv2d;
/// The same with a rectifier, or an add and a rectifier, in the convolution's epilogue.
pub(super) use fast::{conv2d_act_with as conv2d_act, conv2d_add_act_with as conv2d_add_act};

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
