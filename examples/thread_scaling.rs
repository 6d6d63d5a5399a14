//! Wall time of ResNet-50's convolutions at batch 1 (the stem's, the repeated blocks' and
//! layer2's first block's) inside a pool of one thread and of two, and the ratio: where a
//! batch of one loses the second core. The sums weigh each by how often the network has it.
//!
//! ```text
//! cargo run --release --example thread_scaling [REPS] [NAME_PART]
//! ```

use burn::nn::PaddingConfig2d;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::tensor::{Device, Distribution, Tensor};
use gradcam::kernels::{self as ops, Activation};

mod common;
use common::{reps_arg, time};

fn main() {
    gradcam::alloc::tune_for_tensors();
    let reps = reps_arg(30);
    // A second argument keeps the convolutions whose name contains it.
    let only = std::env::args().nth(2).unwrap_or_default();
    let device = Device::flex();
    // (name, in, out, kernel, input size, stride, count in ResNet-50)
    let cases: [(&str, usize, usize, usize, usize, usize, usize); 16] = [
        ("conv1 7x7 3->64 224", 3, 64, 7, 224, 2, 1),
        ("l1 1x1 64->64 56", 64, 64, 1, 56, 1, 1),
        ("l1 1x1 256->64 56", 256, 64, 1, 56, 1, 2),
        ("l1 3x3 64 56", 64, 64, 3, 56, 1, 3),
        ("l1 1x1 64->256 56", 64, 256, 1, 56, 1, 4),
        ("l2 1x1 256->128 56", 256, 128, 1, 56, 1, 1),
        ("l2.0 3x3 128 s2 56", 128, 128, 3, 56, 2, 1),
        ("l2 down 256->512 s2 56", 256, 512, 1, 56, 2, 1),
        ("l2 1x1 512->128 28", 512, 128, 1, 28, 1, 3),
        ("l2 3x3 128 28", 128, 128, 3, 28, 1, 3),
        ("l2 1x1 128->512 28", 128, 512, 1, 28, 1, 4),
        ("l3 1x1 1024->256 14", 1024, 256, 1, 14, 1, 5),
        ("l3 3x3 256 14", 256, 256, 3, 14, 1, 5),
        ("l3 1x1 256->1024 14", 256, 1024, 1, 14, 1, 6),
        ("l4 3x3 512 7", 512, 512, 3, 7, 1, 2),
        ("l4 1x1 512->2048 7", 512, 2048, 1, 7, 1, 3),
    ];
    let pools: Vec<_> = [1, 2]
        .map(|n| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(n)
                .build()
                .unwrap()
        })
        .into();
    println!(
        "{:<28} {:>8} {:>8} {:>6} {:>9} {:>9}",
        "conv", "1 thr", "2 thr", "x", "sum1", "sum2"
    );
    let (mut total1, mut total2) = (0.0, 0.0);
    for (name, cin, cout, k, size, stride, count) in cases {
        if !name.contains(only.as_str()) {
            continue;
        }
        let conv: Conv2d = Conv2dConfig::new([cin, cout], [k, k])
            .with_stride([stride, stride])
            .with_padding(PaddingConfig2d::Explicit(k / 2, k / 2, k / 2, k / 2))
            .init(&device);
        let x = Tensor::<4>::random(
            [1, cin, size, size],
            Distribution::Normal(0.0, 1.0),
            &device,
        );
        let t: Vec<f64> = pools
            .iter()
            .map(|p| {
                p.install(|| time(reps, || ops::conv2d_act(&conv, x.clone(), Activation::Relu)))
            })
            .collect();
        total1 += t[0] * count as f64;
        total2 += t[1] * count as f64;
        println!(
            "{name:<28} {:>8.3} {:>8.3} {:>6.2} {:>9.2} {:>9.2}",
            t[0],
            t[1],
            t[0] / t[1],
            t[0] * count as f64,
            t[1] * count as f64
        );
    }
    println!(
        "total convs: {total1:.1} ms on 1 thread, {total2:.1} on 2 ({:.2}x)",
        total1 / total2
    );
}
