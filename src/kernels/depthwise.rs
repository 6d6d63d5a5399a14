//! Depthwise convolutions (one filter per channel): the stride-1 forward pass over a padded
//! plane, and the input gradient as that forward pass of the spread gradient.

use burn::backend::flex::FlexTensor;
use burn::backend::ops::ConvOptions;
use burn::backend::tensor::FloatTensor;
use burn::backend::{DType, Shape, TensorData, TensorMetadata};
use burn::tensor::Slice;
use rayon::prelude::*;

use super::LayerOps;
use super::epilogue::Activation;
use super::scratch::with_tile;

/// Whether a convolution of `channels` input channels with a `[cout, per_group, kh, kw]`
/// weight in `groups` groups is depthwise: one filter per channel.
fn is_depthwise(channels: usize, [cout, per_group, _, _]: [usize; 4], groups: usize) -> bool {
    groups == channels && cout == channels && per_group == 1
}

/// A depthwise convolution with stride 1 and no dilation, on float32.
pub(super) fn is_depthwise_stride1_f32(
    x: &FlexTensor,
    weight: &FlexTensor,
    options: &ConvOptions<2>,
) -> bool {
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
/// wide, shorter than flex's vectors). `padding` is `[(top, bottom), (left, right)]`; `act`
/// runs as each plane is written out.
pub(super) fn depthwise_conv2d_f32(
    x: FlexTensor,
    weight: FlexTensor,
    bias: Option<FlexTensor>,
    [(top, bottom), (left, right)]: [(usize, usize); 2],
    act: Activation,
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
                        *o = act.on(v + b);
                    }
                }
            })
        });
    FlexTensor::from_data(TensorData::new(output, [n, channels, oh, ow]))
}

/// The gradient of a grouped convolution with respect to its input. For a depthwise
/// convolution: the output gradient, spread out by the stride and padded, convolved
/// (depthwise, stride 1) with the kernel flipped. Otherwise burn's transposed convolution.
pub(super) fn input_gradient<B: LayerOps>(
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
