//! By-hand speed check (ignored by `cargo test`): torchvision's ResNet-50 exported to ONNX,
//! run by the interpreter, against the built-in ResNet-50 (random weights, batch norms folded,
//! as the dynamo exporter folds them). Make the models with tools/onnx_bench_models.py, then
//!
//!     GRADCAM_ONNX_BENCH=/tmp/gradcam-onnx-bench cargo test --release --test onnx_speed -- --ignored --nocapture
//!
//! It asserts the target: the interpreter within 1.3x of the built-in model, for the
//! full forward pass and for the heads from layer4 and layer3 with their backward passes. Run
//! it on a quiet machine: on the shared 2-core development box (load 4 to 6) runs of the same
//! code gave ratios from 0.5x to 1.7x.

use burn::tensor::{Device, Distribution, Tensor};
use gradcam::model::{CamModel, ResNetConfig};
use gradcam::onnx::{self, Float};
use std::sync::Arc;
use std::time::Instant;

/// The cuts timed: pytorch-grad-cam's usual layer and one with convolutions in its head.
const CUTS: [&str; 2] = ["layer4", "layer3"];

/// The fastest of `n` timings in milliseconds (other work on the machine only adds time).
fn fastest_ms(n: usize, mut f: impl FnMut()) -> f64 {
    f();
    let t: Vec<f64> = (0..n)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    t.into_iter().fold(f64::INFINITY, f64::min)
}

#[test]
#[ignore = "needs GRADCAM_ONNX_BENCH (tools/onnx_bench_models.py) and minutes of CPU"]
fn resnet50_from_onnx_runs_near_the_built_in_speed() {
    let dir = std::env::var("GRADCAM_ONNX_BENCH").expect("GRADCAM_ONNX_BENCH");
    let device = Device::flex();
    let batch = 4;
    let x = Tensor::<4>::random(
        [batch, 3, 224, 224],
        Distribution::Normal(0.0, 1.0),
        &device,
    );
    let builtin = ResNetConfig::named("resnet50", 1000)
        .unwrap()
        .init(&device)
        .fold_batch_norms();
    let builtin_full = fastest_ms(7, || {
        builtin.forward(x.clone()).into_data();
    });
    println!("built-in resnet50, batch {batch}: forward {builtin_full:.1} ms");
    let mut builtin_heads = vec![];
    for name in CUTS {
        let layer = builtin.layer_index(name).unwrap();
        let features = builtin.forward_to(x.clone(), layer);
        let ms = fastest_ms(7, || {
            let leaf = features.clone().autodiff().require_grad();
            let grads = builtin.forward_from(leaf.clone(), layer).sum().backward();
            leaf.grad(&grads).unwrap().into_data();
        });
        println!("built-in head from {name} + backward {ms:.1} ms");
        builtin_heads.push(ms);
    }

    for exporter in ["dynamo", "legacy"] {
        let graph = Arc::new(onnx::load(format!("{dir}/resnet50.{exporter}.onnx")).unwrap());
        let layers = onnx::layers(&graph, None).unwrap();
        let input = Float::from_tensor(x.clone());
        let full = fastest_ms(7, || {
            graph.run(input.clone()).unwrap()[0].to_vec();
        });
        println!(
            "onnx {exporter}: forward {full:.1} ms ({:.2}x)",
            full / builtin_full
        );
        assert!(
            full <= 1.3 * builtin_full,
            "{exporter}: forward {full:.1} ms vs {builtin_full:.1} ms"
        );
        for (name, builtin_head) in CUTS.iter().zip(&builtin_heads) {
            let cut = onnx::resolve_layer(&layers, name).unwrap().tensor.clone();
            let split = graph.split(&[&cut]).unwrap();
            let (cuts, context) = split.body(input.clone()).unwrap();
            let head = fastest_ms(7, || {
                let leaf = cuts[0].padded().clone().autodiff().require_grad();
                let f = Float::from_padded(leaf.clone(), cuts[0].shape().to_vec()).unwrap();
                let logits = split.head(vec![f], &context, None).unwrap().remove(0);
                let grads = logits.padded().clone().sum().backward();
                leaf.grad(&grads).unwrap().into_data();
            });
            println!(
                "onnx {exporter}: head from {name} + backward {head:.1} ms ({:.2}x)",
                head / builtin_head
            );
            assert!(
                head <= 1.3 * builtin_head,
                "{exporter} {name}: head {head:.1} ms vs {builtin_head:.1} ms"
            );
        }
    }
}
