//! Times `gradcam::kernels` against burn's own operations on the flex backend, on the shapes
//! where they differ (see docs/benchmarks.md, "The third performance push").
//!
//! ```text
//! cargo run --release --example bench_layer_ops [REPS]
//! ```
//!
//! Medians over REPS (default 20) runs, in ms:
//!
//! - ResNet-50's dense 3x3 and downsampling 1x1 convolutions at batch 1 and 8: flex's
//!   `conv2d` against `ops::conv2d` (im2col tiles and one gemm each);
//! - ResNet's stem max pool (3x3, stride 2, padding 1) on `[B, 64, 112, 112]`;
//! - backward passes with autodiff, forward included: depthwise convolutions (EfficientNet-Lite0
//!   shapes), the dense convolutions of the heads from ResNet-50's `layer3` and Lite0's
//!   `blocks.8`, and ReLU6 on `[1, 672, 14, 14]`.

use burn::nn::PaddingConfig2d;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::MaxPool2dConfig;
use burn::tensor::{Device, Distribution, Tensor};
use gradcam::kernels as ops;

mod common;
use common::{reps_arg, time};

fn main() {
    gradcam::alloc::tune_for_tensors();
    let reps = reps_arg(20);
    let device = Device::flex();
    println!("{:<40} {:>9} {:>9}", "forward (ms)", "burn", "gradcam");
    // ResNet-50's 3x3 convolutions and its downsampling 1x1 convolutions.
    let convs: [DenseCase; 8] = [
        ("layer2 3x3 128ch 28x28", 128, 128, 3, 28, 1),
        ("layer3.0 3x3 256ch 28x28 stride 2", 256, 256, 3, 28, 2),
        ("layer3 3x3 256ch 14x14", 256, 256, 3, 14, 1),
        ("layer4.0 3x3 512ch 14x14 stride 2", 512, 512, 3, 14, 2),
        ("layer4 3x3 512ch 7x7", 512, 512, 3, 7, 1),
        ("layer2.0 downsample 256->512 56x56", 256, 512, 1, 56, 2),
        ("layer3.0 downsample 512->1024 28x28", 512, 1024, 1, 28, 2),
        ("layer4.0 downsample 1024->2048 14x14", 1024, 2048, 1, 14, 2),
    ];
    time_dense(&convs, reps, &device, |x, forward| {
        forward(x.clone()).into_data();
    });
    let pool = MaxPool2dConfig::new([3, 3])
        .with_strides([2, 2])
        .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
        .init();
    for batch in [1, 8] {
        let x = random([batch, 64, 112, 112], &device);
        let burn = time(reps, || pool.forward(x.clone()).into_data());
        let ours = time(reps, || ops::max_pool2d(&pool, x.clone()).into_data());
        println!(
            "{:<40} {burn:>9.3} {ours:>9.3}",
            format!("stem max pool, batch {batch}")
        );
    }

    println!();
    println!(
        "{:<40} {:>9} {:>9}",
        "forward + backward (ms)", "burn", "gradcam"
    );
    // (name, channels, kernel, input size, stride, padding): Lite0's depthwise convolutions.
    let depthwise = [
        ("depthwise 5x5 672ch 14x14", 672, 5, 14, 1, 2),
        ("depthwise 5x5 672ch 14x14 stride 2", 672, 5, 15, 2, 0),
        ("depthwise 5x5 1152ch 7x7", 1152, 5, 7, 1, 2),
        ("depthwise 3x3 1152ch 7x7", 1152, 3, 7, 1, 1),
    ];
    for (name, channels, k, size, stride, padding) in depthwise {
        let conv = conv(channels, channels, k, stride, padding, channels, &device);
        let x = random([1, channels, size, size], &device);
        let burn = time(reps, || input_gradient(&x, &|x| conv.forward(x)));
        let ours = time(reps, || input_gradient(&x, &|x| ops::conv2d(&conv, x)));
        println!("{name:<40} {burn:>9.3} {ours:>9.3}");
    }
    // The dense convolutions a head from ResNet-50's `layer3` or Lite0's `blocks.8`
    // backpropagates through.
    let dense: [DenseCase; 5] = [
        ("layer4.0 3x3 512ch 14x14 stride 2", 512, 512, 3, 14, 2),
        ("layer4 3x3 512ch 7x7", 512, 512, 3, 7, 1),
        ("layer4.0 downsample 1024->2048 14x14", 1024, 2048, 1, 14, 2),
        ("layer4 1x1 2048->512 7x7", 2048, 512, 1, 7, 1),
        ("lite0 1x1 672->112 14x14", 672, 112, 1, 14, 1),
    ];
    time_dense(&dense, reps, &device, |x, forward| {
        input_gradient(x, forward);
    });
    let x = random([1, 672, 14, 14], &device) * 4.0;
    let burn = time(reps, || {
        input_gradient(&x, &|x| x.clamp_min(0.0).clamp_max(6.0))
    });
    let ours = time(reps, || input_gradient(&x, &ops::relu6));
    println!("{:<40} {burn:>9.3} {ours:>9.3}", "relu6 672ch 14x14");
}

/// A dense convolution: name, channels in, out, kernel, input size, stride.
type DenseCase = (&'static str, usize, usize, usize, usize, usize);

/// Prints burn's and our times of `run` (given an input and the convolution's forward) for
/// each of `cases` at batch 1 and 8.
fn time_dense(
    cases: &[DenseCase],
    reps: usize,
    device: &Device,
    run: impl Fn(&Tensor<4>, &dyn Fn(Tensor<4>) -> Tensor<4>),
) {
    for batch in [1, 8] {
        for &(name, cin, cout, kernel, size, stride) in cases {
            let conv = conv(cin, cout, kernel, stride, kernel / 2, 1, device);
            let x = random([batch, cin, size, size], device);
            let burn = time(reps, || run(&x, &|x| conv.forward(x)));
            let ours = time(reps, || run(&x, &|x| ops::conv2d(&conv, x)));
            println!(
                "{:<40} {burn:>9.3} {ours:>9.3}",
                format!("{name}, batch {batch}")
            );
        }
    }
}

fn conv(
    cin: usize,
    cout: usize,
    kernel: usize,
    stride: usize,
    padding: usize,
    groups: usize,
    device: &Device,
) -> Conv2d {
    Conv2dConfig::new([cin, cout], [kernel, kernel])
        .with_stride([stride, stride])
        .with_padding(PaddingConfig2d::Explicit(
            padding, padding, padding, padding,
        ))
        .with_groups(groups)
        .init(device)
}

fn random(shape: [usize; 4], device: &Device) -> Tensor<4> {
    Tensor::random(shape, Distribution::Normal(0.0, 1.0), device)
}

/// The gradient of `sum(f(x))` with respect to `x`, read back.
fn input_gradient(x: &Tensor<4>, f: &dyn Fn(Tensor<4>) -> Tensor<4>) -> Vec<f32> {
    let leaf = x.clone().autodiff().require_grad();
    let grads = f(leaf.clone()).sum().backward();
    leaf.grad(&grads)
        .unwrap()
        .into_data()
        .iter::<f32>()
        .collect()
}
