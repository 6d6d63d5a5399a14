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
    let builtin = gradcam::model::build("resnet50", 1000, &device).unwrap();
    let builtin_full = fastest_ms(7, || {
        builtin.forward(x.clone()).unwrap().into_data();
    });
    println!("built-in resnet50, batch {batch}: forward {builtin_full:.1} ms");
    let mut builtin_heads = vec![];
    for name in CUTS {
        let layer = builtin.layer_index(name).unwrap();
        let cut = builtin.forward_to(x.clone(), layer).unwrap();
        let ms = fastest_ms(7, || {
            let leaf = cut.activations.clone().autodiff().require_grad();
            let grads = builtin
                .forward_from(leaf.clone(), &cut.context, None)
                .unwrap()
                .sum()
                .backward();
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
            let head = head_backward_ms(&split, &cuts[0], &context);
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

/// The fastest of 7 runs of the head from the cut activation `cut`, with its backward pass.
fn head_backward_ms(split: &onnx::Split, cut: &Float, context: &onnx::Context) -> f64 {
    fastest_ms(7, || {
        let leaf = cut.padded().clone().autodiff().require_grad();
        let f = Float::from_padded(leaf.clone(), cut.shape().to_vec()).unwrap();
        let logits = split.head(vec![f], context, None).unwrap().remove(0);
        let grads = logits.padded().clone().sum().backward();
        leaf.grad(&grads).unwrap().into_data();
    })
}

fn npy(path: &str) -> Float {
    let (data, shape) = gradcam::io::read_npy(std::path::Path::new(path)).unwrap();
    Float::from_vec(data, shape).unwrap()
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// The real EfficientNet-Lite0 exported both ways equals onnxruntime and the built-in Lite0:
/// logits, the `head` activation and the gradient of the top logit there; and runs near its
/// speed (batch 1, as the built-in Lite0 is run).
#[test]
#[ignore = "needs GRADCAM_ONNX_BENCH (tools/onnx_bench_models.py) and the Lite0 weights"]
fn lite0_from_onnx_matches_the_built_in() {
    let dir = std::env::var("GRADCAM_ONNX_BENCH").expect("GRADCAM_ONNX_BENCH");
    let device = Device::flex();
    let input = npy(&format!("{dir}/lite0.input.npy"));
    let x = input.to_tensor::<4>().unwrap();
    let builtin = gradcam::model::load("efficientnet_lite0", None, 1000, &device).unwrap();
    let layer = builtin.layer_index("head").unwrap();
    let logits_builtin: Vec<f32> = builtin
        .forward(x.clone())
        .unwrap()
        .into_data()
        .iter::<f32>()
        .collect();
    let cut = builtin.forward_to(x.clone(), layer).unwrap();
    let features = cut.activations.clone();
    let class = logits_builtin
        .iter()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(b.1))
        .unwrap()
        .0;
    let leaf = features.clone().autodiff().require_grad();
    let grads = builtin
        .forward_from(leaf.clone(), &cut.context, None)
        .unwrap()
        .narrow(1, class, 1)
        .sum()
        .backward();
    let grad_builtin: Vec<f32> = leaf
        .grad(&grads)
        .unwrap()
        .into_data()
        .iter::<f32>()
        .collect();
    let builtin_full = fastest_ms(7, || {
        builtin.forward(x.clone()).unwrap().into_data();
    });
    let builtin_head = fastest_ms(7, || {
        let leaf = features.clone().autodiff().require_grad();
        let grads = builtin
            .forward_from(leaf.clone(), &cut.context, None)
            .unwrap()
            .sum()
            .backward();
        leaf.grad(&grads).unwrap().into_data();
    });
    println!("built-in lite0: forward {builtin_full:.1} ms, head + backward {builtin_head:.1} ms");
    let features: Vec<f32> = features.into_data().iter::<f32>().collect();
    let mut slow = vec![];

    for exporter in ["dynamo", "legacy"] {
        let graph = Arc::new(onnx::load(format!("{dir}/lite0.{exporter}.onnx")).unwrap());
        let logits = graph.run(input.clone()).unwrap().remove(0).to_vec();
        let ort = npy(&format!("{dir}/lite0.{exporter}.logits.npy")).to_vec();
        let layers = onnx::layers(&graph, None).unwrap();
        let cut = onnx::resolve_layer(&layers, "head").unwrap().tensor.clone();
        let split = graph.split(&[&cut]).unwrap();
        let (cuts, context) = split.body(input.clone()).unwrap();
        let leaf = cuts[0].padded().clone().autodiff().require_grad();
        let f = Float::from_padded(leaf.clone(), cuts[0].shape().to_vec()).unwrap();
        let out = split
            .head(vec![f], &context, None)
            .unwrap()
            .remove(0)
            .to_tensor::<2>()
            .unwrap();
        let grads = out.narrow(1, class, 1).sum().backward();
        let grad =
            Float::from_padded(leaf.grad(&grads).unwrap(), cuts[0].shape().to_vec()).unwrap();
        let (d_ort, d_builtin) = (max_diff(&logits, &ort), max_diff(&logits, &logits_builtin));
        let (d_act, d_grad) = (
            max_diff(&cuts[0].to_vec(), &features),
            max_diff(&grad.to_vec(), &grad_builtin),
        );
        let full = fastest_ms(7, || {
            graph.run(input.clone()).unwrap()[0].to_vec();
        });
        let head = head_backward_ms(&split, &cuts[0], &context);
        println!(
            "onnx lite0 {exporter} ({} nodes, {} folded): logits vs onnxruntime {d_ort:e}, vs built-in {d_builtin:e}; \
             head activation vs built-in {d_act:e}; gradient {d_grad:e}; forward {full:.1} ms ({:.2}x), \
             head + backward {head:.1} ms ({:.2}x)",
            graph.nodes().len(),
            graph.folded_nodes(),
            full / builtin_full,
            head / builtin_head
        );
        assert!(
            d_ort < 1e-4 && d_builtin < 1e-4 && d_act < 1e-4 && d_grad < 1e-5,
            "{exporter}"
        );
        if full > 1.3 * builtin_full {
            slow.push(format!(
                "{exporter}: forward {full:.1} ms vs {builtin_full:.1} ms"
            ));
        }
    }
    assert!(slow.is_empty(), "{}", slow.join("; "));
}
