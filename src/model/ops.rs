//! The models' convolution, max pooling and ReLU6, as a backend extension tuned for what a CAM
//! runs: a forward pass without autodiff up to the cut layer, then the head forward and backward
//! for the gradient with respect to the activations only.
//!
//! burn's own kernels on the flex CPU backend (0.22.1) do more work than these passes need:
//!
//! - **Dense convolutions**: flex reorders the weight and the input (to channels-last)
//!   serially on every call, allocates per tile of 512 outputs and scatters each tile's
//!   product into place; one image at 7x7 runs on one core. Here each image is an im2col in
//!   the weight's own order (none for a 1x1 convolution), in tiles of output rows, and one
//!   matrix product per tile added to the bias; the input gradient is the weight's
//!   transpose times the output gradient, added back by col2im (burn: a transposed
//!   convolution, as slow).
//! - **Max pooling**: flex tracks every window's argmax even when no gradient is wanted. The
//!   forward pass here takes the maximum of the window's rows, then of its columns.
//! - **Depthwise convolutions with stride 1**: flex accumulates each kernel tap row by row,
//!   and Lite0's rows (7 to 14 values) are shorter than its vectors. Here the plane is padded
//!   once and the output computed as wide as the padded plane, so each tap is one long
//!   multiply-add.
//! - **Other backward passes**: burn computes a depthwise convolution's input gradient as a
//!   transposed convolution (one tiny GEMM per channel and a scalar scatter); here it is the
//!   forward depthwise convolution (stride 1, above) of the output gradient with the kernel
//!   flipped. ReLU6's backward is two fused passes instead of the masks of burn's clamps, and
//!   passes no gradient at 0 and 6, as PyTorch's ReLU6.
//!
//! Results equal burn's up to float rounding (tests below). Gradients with respect to weights
//! and biases, when anything asks for them, are burn's.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, NodeGuard, Ops, OpsKind, unary};
use burn::backend::flex::FlexTensor;
use burn::backend::ops::{ConvOptions, FloatTensorOps, ModuleOps};
use burn::backend::tensor::FloatTensor;
use burn::backend::{
    Autodiff, Backend, DType, Dispatch, Flex, Shape, TensorData, TensorMetadata, backend_extension,
};
use burn::nn::PaddingConfig2d;
use burn::nn::conv::Conv2d;
use burn::nn::pool::MaxPool2d;
use burn::tensor::{Slice, Tensor};
use rayon::prelude::*;
use std::cell::RefCell;
use std::ops::Range;

/// The layer operations of this module as a backend extension.
#[backend_extension(Flex, Autodiff)]
pub trait LayerOps: Backend {
    /// `conv2d(x, weight, bias)`, as burn's.
    fn layer_conv2d(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        options: ConvOptions<2>,
    ) -> FloatTensor<Self>;
    /// `conv2d(x, weight)` without a bias (the extension macro does not take optional tensors).
    fn layer_conv2d_unbiased(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        options: ConvOptions<2>,
    ) -> FloatTensor<Self>;
    /// The gradient of `conv2d(x, weight, ..)` with respect to `x`, given the output's `grad`.
    fn layer_conv2d_input_gradient(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        options: ConvOptions<2>,
    ) -> FloatTensor<Self>;
    /// Max pooling with symmetric `padding`, dilation 1, floor rounding.
    fn layer_max_pool2d(
        x: FloatTensor<Self>,
        kernel: [usize; 2],
        stride: [usize; 2],
        padding: [usize; 2],
    ) -> FloatTensor<Self>;
    /// `clamp(x, 0, 6)`.
    fn layer_relu6(x: FloatTensor<Self>) -> FloatTensor<Self>;
}

/// `conv.forward(x)`, through [`LayerOps`] (burn's for "same" padding, which no built-in model
/// uses). A model defined outside this crate gets the faster passes by calling it.
pub fn conv2d(conv: &Conv2d, x: Tensor<4>) -> Tensor<4> {
    let Some(padding) = fixed_padding(&conv.padding) else {
        return conv.forward(x);
    };
    let options = ConvOptions::new_with_padding(conv.stride, padding, conv.dilation, conv.groups);
    let (x, weight) = (x.into_dispatch(), conv.weight.val().into_dispatch());
    Tensor::from_dispatch(match &conv.bias {
        Some(bias) => {
            <Dispatch as LayerOps>::layer_conv2d(x, weight, bias.val().into_dispatch(), options)
        }
        None => <Dispatch as LayerOps>::layer_conv2d_unbiased(x, weight, options),
    })
}

/// `pool.forward(x)`, through [`LayerOps`] when the pool is a plain one (symmetric padding, no
/// dilation, floor rounding: every pool of the built-in models).
pub fn max_pool2d(pool: &MaxPool2d, x: Tensor<4>) -> Tensor<4> {
    let Some([(top, bottom), (left, right)]) = fixed_padding(&pool.padding) else {
        return pool.forward(x);
    };
    if top != bottom || left != right || pool.dilation != [1, 1] || pool.ceil_mode {
        return pool.forward(x);
    }
    Tensor::from_dispatch(<Dispatch as LayerOps>::layer_max_pool2d(
        x.into_dispatch(),
        pool.kernel_size,
        pool.stride,
        [top, left],
    ))
}

/// `clamp(x, 0, 6)` through [`LayerOps`]; its gradient is zero outside `0 < x < 6`.
///
/// ```
/// use burn::tensor::{Device, Tensor};
/// let x = Tensor::<1>::from_floats([-1.0, 3.0, 7.0], &Device::flex());
/// let y: Vec<f32> = gradcam::model::ops::relu6(x).into_data().iter::<f32>().collect();
/// assert_eq!(y, [0.0, 3.0, 6.0]);
/// ```
pub fn relu6<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    Tensor::from_dispatch(<Dispatch as LayerOps>::layer_relu6(x.into_dispatch()))
}

/// `(top, bottom), (left, right)` of an explicit or "valid" padding.
fn fixed_padding(padding: &PaddingConfig2d) -> Option<[(usize, usize); 2]> {
    match *padding {
        PaddingConfig2d::Explicit(top, left, bottom, right) => Some([(top, bottom), (left, right)]),
        PaddingConfig2d::Valid => Some([(0, 0); 2]),
        PaddingConfig2d::Same => None,
    }
}

impl LayerOps for Flex {
    fn layer_conv2d(
        x: FlexTensor,
        weight: FlexTensor,
        bias: FlexTensor,
        options: ConvOptions<2>,
    ) -> FlexTensor {
        flex_conv2d(x, weight, Some(bias), options)
    }

    fn layer_conv2d_unbiased(
        x: FlexTensor,
        weight: FlexTensor,
        options: ConvOptions<2>,
    ) -> FlexTensor {
        flex_conv2d(x, weight, None, options)
    }

    fn layer_conv2d_input_gradient(
        x: FlexTensor,
        weight: FlexTensor,
        grad: FlexTensor,
        options: ConvOptions<2>,
    ) -> FlexTensor {
        match ConvGeometry::of_dense_f32(&x, &weight, &options) {
            Some(geometry) => dense_conv2d_input_gradient_f32(&geometry, weight, grad),
            None => input_gradient::<Flex>(x, weight, grad, options),
        }
    }

    fn layer_max_pool2d(
        x: FlexTensor,
        kernel: [usize; 2],
        stride: [usize; 2],
        padding: [usize; 2],
    ) -> FlexTensor {
        if x.dtype() != DType::F32 {
            return Flex::max_pool2d(x, kernel, stride, padding, [1, 1], false);
        }
        max_pool2d_f32(x, kernel, stride, padding)
    }

    fn layer_relu6(x: FlexTensor) -> FlexTensor {
        // Two vectorised passes; flex's `clamp` is one scalar loop.
        Flex::float_clamp_max(Flex::float_clamp_min(x, 0.0.into()), 6.0.into())
    }
}

impl<B: LayerOps, C: CheckpointStrategy> LayerOps for Autodiff<B, C> {
    fn layer_conv2d(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        options: ConvOptions<2>,
    ) -> FloatTensor<Self> {
        let (x, x_node) = x.into_parts();
        let (weight, weight_node) = weight.into_parts();
        let (bias, bias_node) = bias.into_parts();
        tracked_conv2d::<B, C, 3>(
            [x_node, weight_node, bias_node],
            x,
            weight,
            Some(bias),
            options,
        )
    }

    fn layer_conv2d_unbiased(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        options: ConvOptions<2>,
    ) -> FloatTensor<Self> {
        let (x, x_node) = x.into_parts();
        let (weight, weight_node) = weight.into_parts();
        tracked_conv2d::<B, C, 2>([x_node, weight_node], x, weight, None, options)
    }

    fn layer_conv2d_input_gradient(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        options: ConvOptions<2>,
    ) -> FloatTensor<Self> {
        // Only a second-order gradient would get here: burn's.
        Self::conv2d_x_backward(x, weight, grad, options)
    }

    fn layer_max_pool2d(
        x: FloatTensor<Self>,
        kernel: [usize; 2],
        stride: [usize; 2],
        padding: [usize; 2],
    ) -> FloatTensor<Self> {
        // burn's, whose backward sends the gradient to the first maximum as PyTorch's does.
        Self::max_pool2d(x, kernel, stride, padding, [1, 1], false)
    }

    fn layer_relu6(x: FloatTensor<Self>) -> FloatTensor<Self> {
        let (x, node) = x.into_parts();
        match Relu6Backward
            .prepare::<C>([node])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let y = B::layer_relu6(x);
                prep.finish(y.clone(), y)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::layer_relu6(x)),
        }
    }
}

/// The inner backend's convolution, recorded with [`ConvBackward`]: `nodes` are those of `x`,
/// `weight` and, when `N` is 3, `bias`.
fn tracked_conv2d<B: LayerOps, C: CheckpointStrategy, const N: usize>(
    nodes: [NodeGuard; N],
    x: FloatTensor<B>,
    weight: FloatTensor<B>,
    bias: Option<FloatTensor<B>>,
    options: ConvOptions<2>,
) -> FloatTensor<Autodiff<B, C>> {
    let forward = |x, weight, bias: Option<_>, options| match bias {
        Some(bias) => B::layer_conv2d(x, weight, bias, options),
        None => B::layer_conv2d_unbiased(x, weight, options),
    };
    match ConvBackward.prepare::<C>(nodes).compute_bound().stateful() {
        OpsKind::Tracked(prep) => {
            let y = forward(x.clone(), weight.clone(), bias.clone(), options.clone());
            prep.finish((x, weight, bias, options), y)
        }
        OpsKind::UnTracked(prep) => prep.finish(forward(x, weight, bias, options)),
    }
}

/// A convolution's backward pass: `(x, weight, bias, options)` as state; parents `x`, `weight`
/// and, when `N` is 3, `bias`.
#[derive(Debug)]
struct ConvBackward;

type ConvState<B> = (
    FloatTensor<B>,
    FloatTensor<B>,
    Option<FloatTensor<B>>,
    ConvOptions<2>,
);

impl<B: LayerOps, const N: usize> Backward<B, N> for ConvBackward {
    type State = ConvState<B>;

    fn backward(
        self,
        ops: Ops<Self::State, N>,
        grads: &mut Gradients,
        _checkpointer: &mut Checkpointer,
    ) {
        let grad = grads.consume::<B>(&ops.node);
        let (x, weight, bias, options) = ops.state;
        let [x_node, weight_node, bias_node] = [0, 1, 2].map(|i| ops.parents.get(i).cloned());
        if let (Some(Some(node)), Some(bias)) = (bias_node, bias) {
            let db = B::conv2d_bias_backward(x.clone(), bias, grad.clone());
            grads.register::<B>(node.id, db);
        }
        if let Some(Some(node)) = weight_node {
            let dw =
                B::conv2d_weight_backward(x.clone(), weight.clone(), grad.clone(), options.clone());
            grads.register::<B>(node.id, dw);
        }
        if let Some(Some(node)) = x_node {
            let dx = B::layer_conv2d_input_gradient(x, weight, grad, options);
            grads.register::<B>(node.id, dx);
        }
    }
}

/// The gradient of a grouped convolution with respect to its input. For a depthwise
/// convolution: the output gradient, spread out by the stride and padded, convolved
/// (depthwise, stride 1) with the kernel flipped. Otherwise burn's transposed convolution.
fn input_gradient<B: LayerOps>(
    x: FloatTensor<B>,
    weight: FloatTensor<B>,
    grad: FloatTensor<B>,
    options: ConvOptions<2>,
) -> FloatTensor<B> {
    let [n, channels, h, w] = x.shape().dims();
    let [_, _, kh, kw] = weight.shape().dims();
    let [(top, bottom), (left, right)] = options.padding;
    let fits = top < kh && bottom < kh && left < kw && right < kw;
    if !is_depthwise(channels, weight.shape().dims(), options.groups)
        || !fits
        || options.dilation != [1, 1]
    {
        return B::conv2d_x_backward(x, weight, grad, options);
    }
    let [_, _, oh, ow] = grad.shape().dims();
    let [sh, sw] = options.stride;
    // The gradient at stride 1: output position i of the forward pass sits at i * stride.
    let (dh, dw) = ((oh - 1) * sh + 1, (ow - 1) * sw + 1);
    // Padding of the spread gradient so that the stride-1 convolution gives back h x w.
    let (pad_top, pad_left) = (kh - 1 - top, kw - 1 - left);
    let (pad_bottom, pad_right) = (h + top - dh, w + left - dw);
    let spread = if [sh, sw] == [1, 1] {
        grad
    } else {
        let zeros = B::float_zeros(
            Shape::new([n, channels, dh, dw]),
            &grad.device(),
            grad.dtype().into(),
        );
        let every = |stride: usize, len: usize| Slice::new(0, Some(len as isize), stride as isize);
        B::float_slice_assign(
            zeros,
            &[Slice::full(), Slice::full(), every(sh, dh), every(sw, dw)],
            grad,
        )
    };
    let flipped = B::float_flip(weight, &[2, 3]);
    let options = ConvOptions::new_with_padding(
        [1, 1],
        [(pad_top, pad_bottom), (pad_left, pad_right)],
        [1, 1],
        channels,
    );
    B::layer_conv2d_unbiased(spread, flipped, options)
}

/// ReLU6's backward pass, with the output as state: the gradient where `0 < y < 6`, in two
/// passes of burn's fused ReLU backward (`relu_backward(out, g)` keeps `g` where `out > 0`).
#[derive(Debug)]
struct Relu6Backward;

impl<B: Backend> Backward<B, 1> for Relu6Backward {
    type State = FloatTensor<B>;

    fn backward(
        self,
        ops: Ops<Self::State, 1>,
        grads: &mut Gradients,
        _checkpointer: &mut Checkpointer,
    ) {
        let y = ops.state;
        unary::<B, _>(ops.parents, ops.node, grads, |grad| {
            let below_six = B::float_neg(B::float_sub_scalar(y.clone(), 6.0.into()));
            B::relu_backward(below_six, B::relu_backward(y, grad))
        });
    }
}

/// [`dense_conv2d_f32`] for a dense float32 convolution without dilation,
/// [`depthwise_conv2d_f32`] for a depthwise one with stride 1, flex's otherwise.
fn flex_conv2d(
    x: FlexTensor,
    weight: FlexTensor,
    bias: Option<FlexTensor>,
    options: ConvOptions<2>,
) -> FlexTensor {
    if let Some(geometry) = ConvGeometry::of_dense_f32(&x, &weight, &options) {
        return dense_conv2d_f32(&geometry, x, weight, bias);
    }
    if is_depthwise_stride1_f32(&x, &weight, &options) {
        return depthwise_conv2d_f32(x, weight, bias, options.padding);
    }
    Flex::conv2d(x, weight, bias, options)
}

/// Whether a convolution of `channels` input channels with a `[cout, per_group, kh, kw]`
/// weight in `groups` groups is depthwise: one filter per channel.
fn is_depthwise(channels: usize, [cout, per_group, _, _]: [usize; 4], groups: usize) -> bool {
    groups == channels && cout == channels && per_group == 1
}

/// A depthwise convolution with stride 1 and no dilation, on float32.
fn is_depthwise_stride1_f32(x: &FlexTensor, weight: &FlexTensor, options: &ConvOptions<2>) -> bool {
    is_depthwise(x.shape()[1], weight.shape().dims(), options.groups)
        && options.stride == [1, 1]
        && options.dilation == [1, 1]
        && x.dtype() == DType::F32
        && weight.dtype() == DType::F32
}

/// A depthwise convolution with stride 1, one (image, channel) plane per task. The plane is
/// copied into a zero-padded buffer of width `wp`; the output is computed `wp` wide (its last
/// `kw - 1` columns are discarded), so that each kernel tap is one multiply-add over a
/// contiguous run of `oh * wp` values instead of `oh` short rows (Lite0's planes are 7 to 14
/// wide, shorter than flex's vectors). `padding` is `[(top, bottom), (left, right)]`.
fn depthwise_conv2d_f32(
    x: FlexTensor,
    weight: FlexTensor,
    bias: Option<FlexTensor>,
    [(top, bottom), (left, right)]: [(usize, usize); 2],
) -> FlexTensor {
    let (x, weight) = (x.to_contiguous(), weight.to_contiguous());
    let [n, channels, h, w] = x.shape().dims();
    let [_, _, kh, kw] = weight.shape().dims();
    let (hp, wp) = (h + top + bottom, w + left + right);
    let (oh, ow) = (hp + 1 - kh, wp + 1 - kw);
    let (input, weight): (&[f32], &[f32]) = (x.storage(), weight.storage());
    let bias = bias.map(|b| b.to_contiguous());
    let bias: Option<&[f32]> = bias.as_ref().map(|b| b.storage());
    // The wide output's last taps read up to `kw - 1` values past the padded plane.
    let (padded_len, wide_len) = (hp * wp + kw - 1, oh * wp);
    let mut output = vec![0.0f32; n * channels * oh * ow];
    output
        .par_chunks_mut(oh * ow)
        .zip(input.par_chunks(h * w))
        .enumerate()
        .for_each(|(plane_index, (out, plane))| {
            let channel = plane_index % channels;
            let taps = &weight[channel * kh * kw..][..kh * kw];
            with_tile(padded_len + wide_len, |buffer| {
                let (padded, wide) = buffer.split_at_mut(padded_len);
                padded.fill(0.0);
                for (row, input_row) in padded[top * wp..].chunks_mut(wp).zip(plane.chunks(w)) {
                    row[left..left + w].copy_from_slice(input_row);
                }
                wide.fill(0.0);
                for (tap, &t) in taps.iter().enumerate() {
                    let start = (tap / kw) * wp + tap % kw;
                    multiply_add(wide, &padded[start..start + wide_len], t);
                }
                // The bias last, as flex and PyTorch add it: starting from it rounds
                // differently, and a ReLU6 downstream can turn one ulp into a different mask.
                let b = bias.map_or(0.0, |b| b[channel]);
                for (out_row, wide_row) in out.chunks_mut(ow).zip(wide.chunks(wp)) {
                    for (o, &v) in out_row.iter_mut().zip(&wide_row[..ow]) {
                        *o = v + b;
                    }
                }
            })
        });
    FlexTensor::from_data(TensorData::new(output, [n, channels, oh, ow]))
}

/// `acc += factor * values`, with AVX2 where the CPU has it (the crate builds for baseline
/// x86-64, whose vectors hold 4 floats).
fn multiply_add(acc: &mut [f32], values: &[f32], factor: f32) {
    #[inline(always)]
    fn plain(acc: &mut [f32], values: &[f32], factor: f32) {
        for (a, &v) in acc.iter_mut().zip(values) {
            *a += factor * v;
        }
    }
    #[cfg(target_arch = "x86_64")]
    {
        #[target_feature(enable = "avx2")]
        fn avx2(acc: &mut [f32], values: &[f32], factor: f32) {
            plain(acc, values, factor)
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU has AVX2, checked just above.
            return unsafe { avx2(acc, values, factor) };
        }
    }
    plain(acc, values, factor)
}

/// The sizes of a dense convolution, for the float32 kernels below.
#[derive(Debug, Clone, Copy)]
struct ConvGeometry {
    batch: usize,
    channels: usize,
    height: usize,
    width: usize,
    out_channels: usize,
    kernel: [usize; 2],
    stride: [usize; 2],
    /// Top and left padding (bottom and right only show in the output size).
    padding: [usize; 2],
    out_size: [usize; 2],
}

impl ConvGeometry {
    /// `None` unless the convolution is dense (one group), without dilation, on float32.
    fn of_dense_f32(x: &FlexTensor, weight: &FlexTensor, options: &ConvOptions<2>) -> Option<Self> {
        if options.groups != 1
            || options.dilation != [1, 1]
            || x.dtype() != DType::F32
            || weight.dtype() != DType::F32
        {
            return None;
        }
        let [batch, channels, height, width] = x.shape().dims();
        let [out_channels, _, kh, kw] = weight.shape().dims();
        let [(top, _), (left, _)] = options.padding;
        Some(Self {
            batch,
            channels,
            height,
            width,
            out_channels,
            kernel: [kh, kw],
            stride: options.stride,
            padding: [top, left],
            out_size: output_size(&x.shape(), [kh, kw], options),
        })
    }

    /// Rows of an image's im2col matrix (and columns of the weight matrix): `c * kh * kw`.
    fn patch_len(&self) -> usize {
        self.channels * self.kernel[0] * self.kernel[1]
    }

    /// A 1x1 convolution with stride 1 and no padding, whose input already is its im2col.
    fn is_pointwise(&self) -> bool {
        self.kernel == [1, 1] && self.stride == [1, 1] && self.padding == [0, 0]
    }

    /// Output rows per im2col tile: whole rows, about [`TILE_FLOATS`] floats (at least one row).
    fn tile_rows(&self) -> usize {
        let row = self.patch_len() * self.out_size[1];
        (TILE_FLOATS / row.max(1)).clamp(1, self.out_size[0].max(1))
    }

    /// The output rows of an image in tiles of [`tile_rows`](Self::tile_rows).
    fn tiles(&self) -> impl Iterator<Item = Range<usize>> {
        let (oh, step) = (self.out_size[0], self.tile_rows());
        (0..oh).step_by(step).map(move |y| y..(y + step).min(oh))
    }

    /// For each kernel offset `k` along one axis, the output positions `o` whose input position
    /// `o * stride + k - padding` is inside `0..len`.
    fn inside(o_len: usize, stride: usize, padding: usize, k: usize, len: usize) -> Range<usize> {
        let start = padding.saturating_sub(k).div_ceil(stride).min(o_len);
        let end = (len + padding)
            .saturating_sub(k)
            .div_ceil(stride)
            .min(o_len);
        start..end.max(start)
    }

    /// Fills the `kh * kw` im2col rows of one input channel for the output rows `ys`: row
    /// `(i, j)` holds, for each of their positions, the input at offset `(i, j)` of its window
    /// (zero in the padding).
    fn im2col_channel(&self, plane: &[f32], rows: &mut [f32], ys: Range<usize>) {
        let (kw, [sh, sw], [pt, pl]) = (self.kernel[1], self.stride, self.padding);
        let [oh, ow] = self.out_size;
        for (offset, row) in rows.chunks_mut(ys.len() * ow).enumerate() {
            let (i, j) = (offset / kw, offset % kw);
            let rows_in = Self::inside(oh, sh, pt, i, self.height);
            let cols_in = Self::inside(ow, sw, pl, j, self.width);
            for (y, out_row) in ys.clone().zip(row.chunks_mut(ow)) {
                if !rows_in.contains(&y) || cols_in.is_empty() {
                    out_row.fill(0.0);
                    continue;
                }
                let input_row = &plane[(y * sh + i - pt) * self.width..][..self.width];
                out_row[..cols_in.start].fill(0.0);
                out_row[cols_in.end..].fill(0.0);
                let first = cols_in.start * sw + j - pl;
                let out = &mut out_row[cols_in.clone()];
                if sw == 1 {
                    out.copy_from_slice(&input_row[first..first + out.len()]);
                } else {
                    for (o, &v) in out.iter_mut().zip(input_row[first..].iter().step_by(sw)) {
                        *o = v;
                    }
                }
            }
        }
    }

    /// The transpose of [`im2col_channel`](Self::im2col_channel): adds each row's values back to
    /// the input positions they came from.
    fn col2im_channel(&self, rows: &[f32], plane: &mut [f32], ys: Range<usize>) {
        let (kw, [sh, sw], [pt, pl]) = (self.kernel[1], self.stride, self.padding);
        let [oh, ow] = self.out_size;
        for (offset, row) in rows.chunks(ys.len() * ow).enumerate() {
            let (i, j) = (offset / kw, offset % kw);
            let rows_in = Self::inside(oh, sh, pt, i, self.height);
            let cols_in = Self::inside(ow, sw, pl, j, self.width);
            if cols_in.is_empty() {
                continue;
            }
            let first = cols_in.start * sw + j - pl;
            for y in ys.start.max(rows_in.start)..ys.end.min(rows_in.end) {
                let input_row = &mut plane[(y * sh + i - pt) * self.width..][..self.width];
                let values = &row[(y - ys.start) * ow..][cols_in.clone()];
                if sw == 1 {
                    for (x, &v) in input_row[first..].iter_mut().zip(values) {
                        *x += v;
                    }
                } else {
                    for (x, &v) in input_row[first..].iter_mut().step_by(sw).zip(values) {
                        *x += v;
                    }
                }
            }
        }
    }
}

/// Floats of one im2col tile (2 MiB, a core's L2 cache on the benchmark machine); flex's tiles
/// hold 512 output positions.
const TILE_FLOATS: usize = 1 << 19;

thread_local! {
    /// Each thread's im2col tile, kept between calls: it is overwritten before it is read.
    static TILE: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// Runs `f` with this thread's tile buffer, at least `len` floats of arbitrary values (a fresh
/// one if the thread's is in use further up its stack, as when rayon runs another task while
/// this one waits).
fn with_tile<R>(len: usize, f: impl FnOnce(&mut [f32]) -> R) -> R {
    TILE.with(|cell| match cell.try_borrow_mut() {
        Ok(mut tile) => {
            if tile.len() < len {
                tile.resize(len, 0.0);
            }
            f(&mut tile[..len])
        }
        Err(_) => f(&mut vec![0.0; len]),
    })
}

/// `f` on each pair of chunks of `dst` and `src` (of the lengths given), in order: on rayon's
/// threads when `parallel`, else on this one. The dense kernels' images (parallel when there
/// are several) and the channels of one image's im2col or col2im (parallel when the image is
/// alone) both go through it.
fn for_each_chunk_pair(
    (dst, dst_len): (&mut [f32], usize),
    (src, src_len): (&[f32], usize),
    parallel: bool,
    f: impl Fn(&mut [f32], &[f32]) + Sync,
) {
    // Empty chunks only come with an empty tensor, which has nothing to compute.
    let (dst_len, src_len) = (dst_len.max(1), src_len.max(1));
    if parallel {
        dst.par_chunks_mut(dst_len)
            .zip(src.par_chunks(src_len))
            .for_each(|(d, s)| f(d, s));
    } else {
        for (d, s) in dst.chunks_mut(dst_len).zip(src.chunks(src_len)) {
            f(d, s);
        }
    }
}

/// A row-major float32 matrix in a slice: `rows x cols` with the given strides.
#[derive(Clone, Copy)]
struct Matrix<'a> {
    data: &'a [f32],
    rows: usize,
    cols: usize,
    /// Distance between rows and between columns, in elements.
    strides: [usize; 2],
}

impl<'a> Matrix<'a> {
    fn new(data: &'a [f32], [rows, cols]: [usize; 2], strides: [usize; 2]) -> Self {
        let last = (rows.max(1) - 1) * strides[0] + (cols.max(1) - 1) * strides[1];
        assert!(
            rows * cols == 0 || last < data.len(),
            "matrix out of its slice"
        );
        Self {
            data,
            rows,
            cols,
            strides,
        }
    }

    /// The transpose, through the strides.
    fn t(self) -> Self {
        Self {
            rows: self.cols,
            cols: self.rows,
            strides: [self.strides[1], self.strides[0]],
            ..self
        }
    }
}

/// `dst = lhs x rhs` (`dst += lhs x rhs` when `accumulate`) with gemm; `dst` is row-major with
/// row stride `dst_stride`. Parallel over rayon's threads when `split` and the product is large
/// (flex's threshold).
fn matmul(
    dst: &mut [f32],
    dst_stride: usize,
    lhs: Matrix,
    rhs: Matrix,
    accumulate: bool,
    split: bool,
) {
    let (m, k, n) = (lhs.rows, lhs.cols, rhs.cols);
    assert_eq!(k, rhs.rows, "inner dimensions");
    assert!(
        m * n == 0 || (m - 1) * dst_stride + n <= dst.len(),
        "output out of its slice"
    );
    let parallelism = if split && m * n * k >= 192 * 192 * 192 {
        gemm::Parallelism::Rayon(0)
    } else {
        gemm::Parallelism::None
    };
    // SAFETY: the asserts above keep every element gemm touches inside the three slices, and
    // `dst` is borrowed mutably, so it does not alias the others.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            dst_stride as isize,
            accumulate,
            lhs.data.as_ptr(),
            lhs.strides[1] as isize,
            lhs.strides[0] as isize,
            rhs.data.as_ptr(),
            rhs.strides[1] as isize,
            rhs.strides[0] as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            parallelism,
        );
    }
}

/// A dense float32 convolution, image by image, as im2col (rows in the weight's own
/// `[c, kh, kw]` order, so the weight is used as stored) and a matrix product per tile of
/// output rows, added to the output, which starts as the bias. A 1x1 convolution with stride
/// 1 is one product with the input as it is. Images go to threads; a single image splits each
/// tile's im2col and product instead.
///
/// flex's own does more per call: it reorders the weight and the input (to channels-last)
/// serially, allocates per tile of 512 outputs, and scatters the product into place.
fn dense_conv2d_f32(
    geometry: &ConvGeometry,
    x: FlexTensor,
    weight: FlexTensor,
    bias: Option<FlexTensor>,
) -> FlexTensor {
    let g = *geometry;
    let (x, weight) = (x.to_contiguous(), weight.to_contiguous());
    let (input, weight): (&[f32], &[f32]) = (x.storage(), weight.storage());
    let ([oh, ow], patch, plane_len) = (g.out_size, g.patch_len(), g.height * g.width);
    let positions = oh * ow;
    let weight = Matrix::new(weight, [g.out_channels, patch], [patch, 1]);
    let bias = bias.map(|b| b.to_contiguous());
    let bias: Option<&[f32]> = bias.as_ref().map(|b| b.storage());
    let mut output = vec![0.0f32; g.batch * g.out_channels * positions];
    let image = |input: &[f32], out: &mut [f32], split: bool| {
        if let Some(bias) = bias {
            for (row, &b) in out.chunks_mut(positions).zip(bias) {
                row.fill(b);
            }
        }
        if g.is_pointwise() {
            let input = Matrix::new(input, [patch, positions], [positions, 1]);
            return matmul(out, positions, weight, input, bias.is_some(), split);
        }
        let tile_len = patch * g.tile_rows() * ow;
        with_tile(tile_len, |tile| {
            for ys in g.tiles() {
                let n = ys.len() * ow;
                let columns = &mut tile[..patch * n];
                let rows_per_channel = g.kernel[0] * g.kernel[1] * n;
                for_each_chunk_pair(
                    (columns, rows_per_channel),
                    (input, plane_len),
                    split,
                    |rows, plane| g.im2col_channel(plane, rows, ys.clone()),
                );
                let columns = Matrix::new(columns, [patch, n], [n, 1]);
                let dst = &mut out[ys.start * ow..];
                matmul(dst, positions, weight, columns, true, split);
            }
        })
    };
    for_each_chunk_pair(
        (&mut output, g.out_channels * positions),
        (input, g.channels * plane_len),
        g.batch > 1,
        |out, input| image(input, out, g.batch == 1),
    );
    FlexTensor::from_data(TensorData::new(output, [g.batch, g.out_channels, oh, ow]))
}

/// The gradient of a dense float32 convolution with respect to its input, image by image and
/// tile by tile: the weight's transpose times the output gradient gives each im2col entry's
/// gradient, which [`col2im`](ConvGeometry::col2im_channel) adds back to the input positions.
fn dense_conv2d_input_gradient_f32(
    geometry: &ConvGeometry,
    weight: FlexTensor,
    grad: FlexTensor,
) -> FlexTensor {
    let g = *geometry;
    let (weight, grad) = (weight.to_contiguous(), grad.to_contiguous());
    let (weight, grad): (&[f32], &[f32]) = (weight.storage(), grad.storage());
    let ([oh, ow], patch, plane_len) = (g.out_size, g.patch_len(), g.height * g.width);
    let positions = oh * ow;
    let weight_t = Matrix::new(weight, [g.out_channels, patch], [patch, 1]).t();
    let mut output = vec![0.0f32; g.batch * g.channels * plane_len];
    let image = |grad: &[f32], out: &mut [f32], split: bool| {
        if g.is_pointwise() {
            let grad = Matrix::new(grad, [g.out_channels, positions], [positions, 1]);
            return matmul(out, positions, weight_t, grad, false, split);
        }
        let tile_len = patch * g.tile_rows() * ow;
        with_tile(tile_len, |tile| {
            for ys in g.tiles() {
                let n = ys.len() * ow;
                let columns = &mut tile[..patch * n];
                let grad = Matrix::new(&grad[ys.start * ow..], [g.out_channels, n], [positions, 1]);
                matmul(columns, n, weight_t, grad, false, split);
                let rows_per_channel = g.kernel[0] * g.kernel[1] * n;
                for_each_chunk_pair(
                    (out, plane_len),
                    (columns, rows_per_channel),
                    split,
                    |plane, rows| g.col2im_channel(rows, plane, ys.clone()),
                );
            }
        })
    };
    for_each_chunk_pair(
        (&mut output, g.channels * plane_len),
        (grad, g.out_channels * positions),
        g.batch > 1,
        |out, grad| image(grad, out, g.batch == 1),
    );
    FlexTensor::from_data(TensorData::new(
        output,
        [g.batch, g.channels, g.height, g.width],
    ))
}

/// Output height and width of a convolution (dilation 1).
fn output_size(x: &Shape, [kh, kw]: [usize; 2], options: &ConvOptions<2>) -> [usize; 2] {
    let [(top, bottom), (left, right)] = options.padding;
    let [sh, sw] = options.stride;
    [
        (x[2] + top + bottom - kh) / sh + 1,
        (x[3] + left + right - kw) / sw + 1,
    ]
}

/// Max pooling of a float32 tensor, one (image, channel) plane per task: per output row, the
/// elementwise maximum of the window's input rows, then the maximum of each window's columns
/// of that row. NaN wins, as in PyTorch.
fn max_pool2d_f32(
    x: FlexTensor,
    [kh, kw]: [usize; 2],
    [sh, sw]: [usize; 2],
    [ph, pw]: [usize; 2],
) -> FlexTensor {
    let x = x.to_contiguous();
    let [n, c, h, w] = x.shape().dims();
    let oh = (h + 2 * ph - kh) / sh + 1;
    let ow = (w + 2 * pw - kw) / sw + 1;
    // The input positions a window covers, `start..end`, clipped to the input.
    let span = |o: usize, stride: usize, pad: usize, k: usize, len: usize| {
        let start = (o * stride).saturating_sub(pad);
        start..(o * stride + k).saturating_sub(pad).min(len)
    };
    let max = |a: f32, b: f32| if b > a || b.is_nan() { b } else { a };
    let input: &[f32] = x.storage();
    let mut output = vec![0f32; n * c * oh * ow];
    output
        .par_chunks_mut(oh * ow)
        .zip(input.par_chunks(h * w))
        .for_each(|(out, plane)| {
            let mut row_max = vec![f32::NEG_INFINITY; w];
            for (r, out_row) in out.chunks_mut(ow).enumerate() {
                row_max.fill(f32::NEG_INFINITY);
                let rows = span(r, sh, ph, kh, h);
                for row in plane[rows.start * w..rows.end * w].chunks(w) {
                    for (m, &v) in row_max.iter_mut().zip(row) {
                        *m = max(*m, v);
                    }
                }
                for (col, o) in out_row.iter_mut().enumerate() {
                    *o = row_max[span(col, sw, pw, kw, w)]
                        .iter()
                        .fold(f32::NEG_INFINITY, |a, &b| max(a, b));
                }
            }
        });
    FlexTensor::from_data(TensorData::new(output, [n, c, oh, ow]))
}

#[cfg(test)]
mod tests {
    use burn::nn::pool::MaxPool2dConfig;
    use burn::tensor::module::conv2d as burn_conv2d;
    use burn::tensor::{Device, Distribution, Tolerance};

    use super::*;
    use crate::model::layers;

    fn random<const D: usize>(shape: [usize; D]) -> Tensor<D> {
        Tensor::random(shape, Distribution::Normal(0.0, 1.0), &Device::flex())
    }

    fn assert_close<const D: usize>(ours: Tensor<D>, theirs: Tensor<D>, tolerance: f32) {
        ours.into_data()
            .assert_approx_eq::<f32>(&theirs.into_data(), Tolerance::absolute(tolerance));
    }

    /// Every path of [`conv2d`] against burn's conv2d and its autodiff input gradient, for one
    /// image (split over threads) and three (one per thread): the dense kernel (1x1 with stride
    /// 1 and 2, 3x3 with stride 1 and 2, 7x7 with stride 2 as ResNet's stem, padding wider than
    /// the input reaches, with and without bias, two cases of more than one im2col tile), a
    /// grouped convolution (flex's), and the depthwise input gradient (stride 1 and 2, padding
    /// as PyTorch's and as TensorFlow's "SAME" without padding).
    #[test]
    fn conv2d_matches_burn_forward_and_input_gradient() {
        // (channels in, out, kernel, stride, padding, groups, bias, size)
        let cases = [
            (6, 5, 3, 1, 1, 1, false, 7),
            (6, 5, 3, 2, 1, 1, true, 10),
            (4, 8, 3, 1, 1, 1, true, 20),
            (4, 8, 1, 1, 0, 1, true, 9),
            (4, 8, 1, 2, 0, 1, false, 9),
            (3, 4, 7, 2, 3, 1, true, 16),
            (3, 2, 3, 1, 4, 1, false, 2),
            (64, 4, 3, 1, 1, 1, true, 40),
            (32, 4, 3, 2, 1, 1, false, 100),
            (8, 8, 3, 1, 1, 8, true, 9),
            (8, 8, 5, 1, 2, 8, false, 10),
            (8, 8, 5, 2, 0, 8, true, 11),
            (8, 8, 3, 2, 1, 8, false, 12),
            (8, 4, 3, 1, 1, 2, true, 6),
        ];
        let batches = cases.iter().flat_map(|&case| [(1, case), (3, case)]);
        for (batch, (cin, cout, k, stride, padding, groups, bias, size)) in batches {
            let conv = layers::conv2d(
                [cin, cout],
                k,
                stride,
                padding,
                groups,
                bias,
                &Device::flex(),
            );
            let x = random([batch, cin, size, size]);
            let theirs = |x: Tensor<4>| conv.forward(x);
            let ours = |x: Tensor<4>| conv2d(&conv, x);
            assert_close(ours(x.clone()), theirs(x.clone()), 1e-4);
            let leaf = x.clone().autodiff().require_grad();
            let c = random(ours(x.clone()).dims());
            let grad = |f: &dyn Fn(Tensor<4>) -> Tensor<4>| {
                let grads = (f(leaf.clone()) * c.clone()).sum().backward();
                leaf.grad(&grads).unwrap()
            };
            assert_close(grad(&ours), grad(&theirs), 1e-4);
        }
    }

    #[test]
    fn conv2d_weight_and_bias_gradients_are_burns() {
        let conv = layers::conv2d([3, 4], 3, 1, 1, 1, true, &Device::flex());
        let x = random([1, 3, 6, 6]);
        let gradients = |f: &dyn Fn(Tensor<4>, Tensor<4>, Tensor<1>) -> Tensor<4>| {
            let w = conv.weight.val().autodiff().require_grad();
            let b = conv.bias.as_ref().unwrap().val().autodiff().require_grad();
            let grads = f(x.clone().autodiff(), w.clone(), b.clone())
                .sum()
                .backward();
            (w.grad(&grads).unwrap(), b.grad(&grads).unwrap())
        };
        let options = ConvOptions::new([1, 1], [1, 1], [1, 1], 1);
        let (dw, db) = gradients(&|x, w, b| {
            Tensor::from_dispatch(<Dispatch as LayerOps>::layer_conv2d(
                x.into_dispatch(),
                w.into_dispatch(),
                b.into_dispatch(),
                options.clone(),
            ))
        });
        let (dw_burn, db_burn) = gradients(&|x, w, b| burn_conv2d(x, w, Some(b), options.clone()));
        assert_close(dw, dw_burn, 1e-4);
        db.into_data()
            .assert_approx_eq::<f32>(&db_burn.into_data(), Tolerance::absolute(1e-4));
    }

    #[test]
    fn max_pool2d_matches_burn() {
        // ResNet's stem pool (k3 s2 p1) on even and odd sizes, VGG's (k2 s2), overlapping k3 s1.
        for (k, s, p, size) in [(3, 2, 1, 12), (3, 2, 1, 13), (2, 2, 0, 9), (3, 1, 0, 7)] {
            let pool = MaxPool2dConfig::new([k, k])
                .with_strides([s, s])
                .with_padding(PaddingConfig2d::Explicit(p, p, p, p))
                .init();
            let x = random([2, 3, size, size]);
            assert_close(max_pool2d(&pool, x.clone()), pool.forward(x), 0.0);
        }
        let pool = MaxPool2dConfig::new([2, 2]).init();
        let x = Tensor::<1>::from_floats([1.0, f32::NAN, 3.0, 4.0], &Device::flex())
            .reshape([1, 1, 2, 2]);
        let y: Vec<f32> = max_pool2d(&pool, x).into_data().iter::<f32>().collect();
        assert!(y[0].is_nan(), "NaN propagates: {y:?}");
    }

    #[test]
    fn relu6_gradient_is_zero_outside_its_linear_range() {
        let x = Tensor::<1>::from_floats([-1.0, 0.0, 0.5, 3.0, 6.0, 7.0], &Device::flex());
        let leaf = x.autodiff().require_grad();
        let y = relu6(leaf.clone());
        let values: Vec<f32> = y.clone().into_data().iter::<f32>().collect();
        assert_eq!(values, [0.0, 0.0, 0.5, 3.0, 6.0, 6.0]);
        let c = Tensor::<1>::from_floats([1.0, 2.0, -3.0, 4.0, 5.0, 6.0], &Device::flex());
        let grads = (y * c).sum().backward();
        let grad: Vec<f32> = leaf
            .grad(&grads)
            .unwrap()
            .into_data()
            .iter::<f32>()
            .collect();
        assert_eq!(grad, [0.0, 0.0, -3.0, 4.0, 0.0, 0.0]);
    }
}
