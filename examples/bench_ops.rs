//! Times alternatives for EfficientNet-Lite0's conv -> batch norm -> ReLU6 steps on the flex
//! backend, to show where its forward pass loses time (see docs/benchmarks.md).
//!
//! ```text
//! cargo run --release --example bench_ops [REPS]
//! ```
//!
//! Each line is the median over REPS (default 30) runs of one variant, in ms:
//!
//! - `current`: `pad_same` (an explicit zero-padded copy), conv without padding, burn's
//!   `batch_norm` (sub, div, mul, add), `clamp(0, 6)`: what `MBConv` did before the first
//!   performance push (docs/benchmarks.md);
//! - `native-pad`: the same, with the convolution's own symmetric padding instead of the copy
//!   (possible for every stride-1 block: TF "SAME" is symmetric there);
//! - `folded-bn`: the batch norm folded into the convolution's weight and bias, then
//!   `clamp(0, 6)`;
//! - `folded-bn+min/max`: the same, with `clamp_min(0).clamp_max(6)` for the ReLU6;
//! - the ops alone: `conv` (with its own padding), `pad+conv(p=0)` (an explicit pad, then the
//!   conv without padding), the pad alone, `batch_norm`, `clamp`, `clamp_min+clamp_max`, `relu` on a fresh
//!   conv output (the conv's time subtracted); and `batch_norm` and `clamp` after the
//!   padded variant (`bn after pad`, `clamp after pad`, the pad+conv time subtracted).

use burn::tensor::module::{batch_norm, conv2d};
use burn::tensor::ops::{ConvOptions, PadMode};
use burn::tensor::{Device, Tensor, TensorData};

mod common;
use common::{reps_arg, time};

fn main() {
    gradcam::alloc::tune_for_tensors();
    let reps = reps_arg(30);
    let device = Device::flex();
    // (name, channels in, channels out, groups, kernel, size): Lite0 block shapes.
    let cases = [
        ("blocks.0 dw 3x3 32ch 112x112", 32, 32, 32, 3, 112),
        ("blocks.2 dw 3x3 144ch 56x56", 144, 144, 144, 3, 56),
        ("blocks.8 dw 5x5 480ch 14x14", 480, 480, 480, 5, 14),
        ("blocks.1 expand 1x1 16->96 112x112", 16, 96, 1, 1, 112),
        ("blocks.9 project 1x1 672->112 14x14", 672, 112, 1, 1, 14),
    ];
    println!(
        "{:<38} {:>10} {:>10} {:>10} {:>14}",
        "case", "current", "native-pad", "folded-bn", "folded+min/max"
    );
    let mut op_rows = Vec::new();
    for (name, cin, cout, groups, k, n) in cases {
        let x = tensor(&[1, cin, n, n], 1, &device);
        let w = tensor(&[cout, cin / groups, k, k], 2, &device) * 0.1;
        let gamma = tensor(&[cout], 3, &device).abs() + 0.5;
        let beta = tensor(&[cout], 4, &device);
        let mean = tensor(&[cout], 5, &device);
        let var = tensor(&[cout], 6, &device).abs() + 0.5;
        let eps = 1e-3;
        let pad = (k - 1) / 2;
        // Folded: w' = w * gamma / sqrt(var + eps), b' = beta - mean * gamma / sqrt(var + eps).
        let scale = gamma.clone() / (var.clone() + eps).sqrt();
        let wf = w.clone() * scale.clone().reshape([cout, 1, 1, 1]);
        let bf = beta.clone() - mean.clone() * scale;
        let opts = |p: usize| ConvOptions::new([1, 1], [p, p], [1, 1], groups);

        let current = time(reps, || {
            let y = x.clone().pad((pad, pad, pad, pad), PadMode::Constant(0.0));
            let y = conv2d(y, w.clone(), None, opts(0));
            let y = batch_norm(
                y,
                gamma.clone(),
                beta.clone(),
                mean.clone(),
                var.clone(),
                eps,
            );
            y.clamp(0.0, 6.0).into_data()
        });
        let native = time(reps, || {
            let y = conv2d(x.clone(), w.clone(), None, opts(pad));
            let y = batch_norm(
                y,
                gamma.clone(),
                beta.clone(),
                mean.clone(),
                var.clone(),
                eps,
            );
            y.clamp(0.0, 6.0).into_data()
        });
        let folded = time(reps, || {
            let y = conv2d(x.clone(), wf.clone(), Some(bf.clone()), opts(pad));
            y.clamp(0.0, 6.0).into_data()
        });
        let folded_mm = time(reps, || {
            let y = conv2d(x.clone(), wf.clone(), Some(bf.clone()), opts(pad));
            y.clamp_min(0.0).clamp_max(6.0).into_data()
        });
        println!("{name:<38} {current:>10.3} {native:>10.3} {folded:>10.3} {folded_mm:>14.3}");

        let conv = time(reps, || {
            conv2d(x.clone(), w.clone(), None, opts(pad)).into_data()
        });
        let conv_padded = time(reps, || {
            let y = x.clone().pad((pad, pad, pad, pad), PadMode::Constant(0.0));
            conv2d(y, w.clone(), None, opts(0)).into_data()
        });
        let pad_copy = time(reps, || {
            x.clone()
                .pad((pad, pad, pad, pad), PadMode::Constant(0.0))
                .into_data()
        }) - time(reps, || x.clone().into_data());
        let bn = time(reps, || {
            let y = conv2d(x.clone(), w.clone(), None, opts(pad));
            batch_norm(
                y,
                gamma.clone(),
                beta.clone(),
                mean.clone(),
                var.clone(),
                eps,
            )
            .into_data()
        }) - conv;
        let clamp = time(reps, || {
            conv2d(x.clone(), w.clone(), None, opts(pad))
                .clamp(0.0, 6.0)
                .into_data()
        }) - conv;
        let minmax = time(reps, || {
            conv2d(x.clone(), w.clone(), None, opts(pad))
                .clamp_min(0.0)
                .clamp_max(6.0)
                .into_data()
        }) - conv;
        let relu = time(reps, || {
            burn::tensor::activation::relu(conv2d(x.clone(), w.clone(), None, opts(pad)))
                .into_data()
        }) - conv;
        let padded = || {
            let y = x.clone().pad((pad, pad, pad, pad), PadMode::Constant(0.0));
            conv2d(y, w.clone(), None, opts(0))
        };
        let bn_after_pad = time(reps, || {
            batch_norm(
                padded(),
                gamma.clone(),
                beta.clone(),
                mean.clone(),
                var.clone(),
                eps,
            )
            .into_data()
        }) - conv_padded;
        let clamp_after_pad = time(reps, || padded().clamp(0.0, 6.0).into_data()) - conv_padded;
        op_rows.push((
            name,
            [
                conv,
                conv_padded,
                pad_copy,
                bn,
                clamp,
                minmax,
                relu,
                bn_after_pad,
                clamp_after_pad,
            ],
        ));
    }
    println!();
    println!(
        "{:<38} {:>7} {:>13} {:>8} {:>7} {:>7} {:>8} {:>7} {:>13} {:>16}",
        "ops alone (ms)",
        "conv",
        "pad+conv(p=0)",
        "pad copy",
        "bn",
        "clamp",
        "min+max",
        "relu",
        "bn after pad",
        "clamp after pad"
    );
    for (
        name,
        [
            conv,
            conv_padded,
            pad_copy,
            bn,
            clamp,
            minmax,
            relu,
            bn_p,
            clamp_p,
        ],
    ) in op_rows
    {
        println!(
            "{name:<38} {conv:>7.3} {conv_padded:>13.3} {pad_copy:>8.3} {bn:>7.3} {clamp:>7.3} {minmax:>8.3} {relu:>7.3} {bn_p:>13.3} {clamp_p:>16.3}"
        );
    }
}

/// Pseudo-random values in [-1, 1) from a fixed seed.
fn tensor<const D: usize>(shape: &[usize], seed: u64, device: &Device) -> Tensor<D> {
    let n: usize = shape.iter().product();
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let data: Vec<f32> = (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 40) as f32 / (1u64 << 23) as f32 - 1.0
        })
        .collect();
    Tensor::from_data(TensorData::new(data, shape.to_vec()), device)
}
