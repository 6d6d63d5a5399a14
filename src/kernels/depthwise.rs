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

/// A depthwise convolution without dilation, on float32.
pub(super) fn is_depthwise_f32(
    x: &FlexTensor,
    weight: &FlexTensor,
    options: &ConvOptions<2>,
) -> bool {
    is_depthwise(x.shape()[1], weight.shape().dims(), options.groups)
        && options.dilation == [1, 1]
        && options.stride.iter().all(|&s| s >= 1)
        && x.dtype() == DType::F32
        && weight.dtype() == DType::F32
}

/// A depthwise convolution, one (image, channel) plane per task. The zero-padded plane is split
/// into `sh x sw` phases (phase `(a, b)` holds the padded values at rows `a, a + sh, ...` and
/// columns `b, b + sw, ...`; one phase at stride 1), each `wq` wide. Tap `(ky, kx)` then reads
/// phase `(ky % sh, kx % sw)` at a fixed offset, so that the output is computed `wq` wide (its
/// last columns discarded) and each tap reads a contiguous run of `oh * wq` values instead of
/// `oh` short, strided rows (Lite0's planes are 7 to 112 wide); the taps' sums are taken a
/// chunk of outputs at a time in registers. `padding` is `[(top, bottom), (left, right)]`;
/// the bias and `act` are applied as each output is written out.
pub(super) fn depthwise_conv2d_f32(
    x: FlexTensor,
    weight: FlexTensor,
    bias: Option<FlexTensor>,
    [(top, bottom), (left, right)]: [(usize, usize); 2],
    [sh, sw]: [usize; 2],
    act: Activation,
) -> FlexTensor {
    let (x, weight) = (x.to_contiguous(), weight.to_contiguous());
    let [n, channels, h, w] = x.shape().dims();
    let [_, _, kh, kw] = weight.shape().dims();
    let (hp, wp) = (h + top + bottom, w + left + right);
    let (oh, ow) = ((hp - kh) / sh + 1, (wp - kw) / sw + 1);
    let (hq, wq) = (hp.div_ceil(sh), wp.div_ceil(sw));
    let (input, weight): (&[f32], &[f32]) = (x.storage(), weight.storage());
    let bias = bias.map(|b| b.to_contiguous());
    let bias: Option<&[f32]> = bias.as_ref().map(|b| b.storage());
    // The wide output's last taps read up to `(kw - 1) / sw` values past their phase.
    let phase_len = hq * wq + (kw - 1) / sw;
    let planes = Planes {
        width: w,
        top_left: [top, left],
        stride: [sh, sw],
        out_width: ow,
        wq,
        phase_len,
        // Where tap `(ky, kx)` starts reading: in phase `(ky % sh, kx % sw)`, row `ky / sh`,
        // column `kx / sw`.
        starts: (0..kh * kw)
            .map(|tap| {
                let (ky, kx) = (tap / kw, tap % kw);
                (ky % sh * sw + kx % sw) * phase_len + (ky / sh) * wq + kx / sw
            })
            .collect(),
        act,
    };
    let buffer_len = sh * sw * phase_len + CHUNK + oh * wq;
    let mut output = vec![0.0f32; n * channels * oh * ow];
    output
        .par_chunks_mut(oh * ow)
        .zip(input.par_chunks(h * w))
        .enumerate()
        .for_each(|(plane_index, (out, plane))| {
            let channel = plane_index % channels;
            let taps = &weight[channel * kh * kw..][..kh * kw];
            let bias = bias.map_or(0.0, |b| b[channel]);
            with_tile(buffer_len, |buffer| {
                planes.conv(plane, taps, bias, out, buffer)
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

/// `row`'s values at even positions to the start of `even`, those at odd positions to the start
/// of `odd`: a stride-2 plane's two column phases, in one pass that vectorises (inlined, so
/// that it takes its caller's instruction set).
#[inline(always)]
pub(super) fn deinterleave(row: &[f32], even: &mut [f32], odd: &mut [f32]) {
    let pairs = row.chunks_exact(2);
    if let [.., last] = pairs.remainder() {
        even[row.len() / 2] = *last;
    }
    for ((e, o), pair) in even.iter_mut().zip(odd.iter_mut()).zip(pairs) {
        *e = pair[0];
        *o = pair[1];
    }
}

/// What the planes of one depthwise convolution share: the input plane's width, padding,
/// stride and output width, the phases' width `wq` and length, each tap's start in them.
struct Planes {
    width: usize,
    top_left: [usize; 2],
    stride: [usize; 2],
    out_width: usize,
    wq: usize,
    phase_len: usize,
    starts: Vec<usize>,
    act: Activation,
}

impl Planes {
    /// One plane's convolution with its `taps` and `bias` into `out`, through `buffer` (the
    /// phases, then the wide output); with AVX2 where the CPU has it (the crate builds for
    /// baseline x86-64, whose vectors hold 4 floats).
    fn conv(&self, plane: &[f32], taps: &[f32], bias: f32, out: &mut [f32], buffer: &mut [f32]) {
        #[cfg(target_arch = "x86_64")]
        {
            #[target_feature(enable = "avx2")]
            fn avx2(
                planes: &Planes,
                plane: &[f32],
                taps: &[f32],
                bias: f32,
                out: &mut [f32],
                buffer: &mut [f32],
            ) {
                planes.conv_here(plane, taps, bias, out, buffer)
            }
            if std::arch::is_x86_feature_detected!("avx2") {
                // SAFETY: the CPU has AVX2, checked just above.
                return unsafe { avx2(self, plane, taps, bias, out, buffer) };
            }
        }
        self.conv_here(plane, taps, bias, out, buffer)
    }

    #[inline(always)]
    fn conv_here(
        &self,
        plane: &[f32],
        taps: &[f32],
        bias: f32,
        out: &mut [f32],
        buffer: &mut [f32],
    ) {
        let ([top, left], [sh, sw], wq) = (self.top_left, self.stride, self.wq);
        let phase_len = self.phase_len;
        // The phases, with room for the last chunk of the taps' sums to read whole.
        let (phases, wide) = buffer.split_at_mut(sh * sw * phase_len + CHUNK);
        phases.fill(0.0);
        // Input row `y` is padded row `y + top`: phase row `(y + top) / sh` of phase
        // `(y + top) % sh`; the same along the columns.
        for (y, input_row) in plane.chunks(self.width).enumerate() {
            let (a, i) = ((y + top) % sh, (y + top) / sh);
            if sw == 2 {
                // Column `x` is phase column `(x + left) / 2` of phase `(x + left) % 2`.
                let start = |b: usize| (a * 2 + b) * phase_len + i * wq;
                let (even, odd) = (
                    start(left % 2) + left / 2,
                    start((left + 1) % 2) + left.div_ceil(2),
                );
                let (low, high) = phases.split_at_mut(even.max(odd));
                let (even, odd) = match even < odd {
                    true => (&mut low[even..], &mut high[..]),
                    false => (&mut high[..], &mut low[odd..]),
                };
                deinterleave(input_row, even, odd);
                continue;
            }
            for b in 0..sw {
                // The first input column of phase column `b`, and where it lands.
                let x0 = (b + sw - left % sw) % sw;
                let row = (a * sw + b) * phase_len + i * wq + (x0 + left) / sw;
                let values = input_row.get(x0..).unwrap_or(&[]);
                if sw == 1 {
                    phases[row..row + values.len()].copy_from_slice(values);
                    continue;
                }
                for (p, &v) in phases[row..].iter_mut().zip(values.iter().step_by(sw)) {
                    *p = v;
                }
            }
        }
        sum_of_taps(wide, phases, &self.starts, taps);
        // The bias last, as flex and PyTorch add it: starting from it rounds differently, and
        // a ReLU6 downstream can turn one ulp into a different mask.
        #[inline(always)]
        fn finish(out: &mut [f32], wide: &[f32], [ow, wq]: [usize; 2], f: impl Fn(f32) -> f32) {
            for (out_row, wide_row) in out.chunks_mut(ow).zip(wide.chunks(wq)) {
                for (o, &v) in out_row.iter_mut().zip(wide_row) {
                    *o = f(v);
                }
            }
        }
        let widths = [self.out_width, wq];
        match self.act {
            Activation::Identity => finish(out, wide, widths, |v| v + bias),
            Activation::Relu => finish(out, wide, widths, |v| Activation::Relu.on(v + bias)),
            Activation::Relu6 => finish(out, wide, widths, |v| Activation::Relu6.on(v + bias)),
        }
    }
}

/// Outputs of [`sum_of_taps`] at a time: eight AVX2 registers of accumulators.
const CHUNK: usize = 64;

/// `out[i] = sum over taps t of factors[t] * values[starts[t] + i]`, the taps added in order
/// from zero, [`CHUNK`] outputs at a time in registers: a pass over `out` per tap would read
/// and write it 9 or 25 times. `values` holds whole chunks from every start (the last one's
/// extra values are read, then dropped).
#[inline(always)]
fn sum_of_taps(out: &mut [f32], values: &[f32], starts: &[usize], factors: &[f32]) {
    for (index, chunk) in out.chunks_mut(CHUNK).enumerate() {
        let mut acc = [0.0f32; CHUNK];
        for (&start, &factor) in starts.iter().zip(factors) {
            let run: &[f32; CHUNK] = values[start + index * CHUNK..][..CHUNK]
                .try_into()
                .expect("CHUNK values");
            for (a, &v) in acc.iter_mut().zip(run) {
                *a += factor * v;
            }
        }
        chunk.copy_from_slice(&acc[..chunk.len()]);
    }
}
