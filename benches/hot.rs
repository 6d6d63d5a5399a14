//! Micro-benchmarks of the hot paths: `cargo bench --bench hot [-- FILTER]`.
//!
//! A small self-contained harness (no criterion: its dependencies would change the features
//! of crates burn depends on, and so rebuild burn for every test and example build). Each
//! benchmark warms up, then takes `SAMPLES` samples of enough iterations to last at least
//! `MIN_SAMPLE`, and prints the minimum, median and maximum time per iteration.
//!
//! - forward: the full forward pass without autodiff at batch 1, EfficientNet-Lite0 (real
//!   weights, cached on first use) and ResNet-50 (random weights);
//! - head backward: at the default layer (Lite0 `head`, ResNet-50 `layer4`), the head with
//!   autodiff from a leaf that requires grad, and its backward pass to the leaf (the body runs
//!   once, outside the timing);
//! - conv3x3 and residual: single convolutions at batch 1 (Winograd; a residual block's last
//!   convolution with its add and ReLU fused into the epilogue, and without);
//! - post-processing: `resize_map` 7x7 -> 224x224, `resize_bilinear` 640x480 -> 224x224,
//!   `overlay` at 640x480 and `localize` on a 640x480 map.

use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, Instant};

use burn::backend::ops::ConvOptions;
use burn::tensor::Distribution::Normal;
use burn::tensor::{Device, Tensor, TensorData};
use gradcam::image::{RgbImage, load, overlay, resize_bilinear, resize_map};
use gradcam::localize::{PAPER_THRESHOLD, localize};
use gradcam::model::{CamModel, Cut};

const SAMPLES: usize = 10;
const MIN_SAMPLE: Duration = Duration::from_millis(20);
const WARM_UP: Duration = Duration::from_millis(300);

fn main() {
    gradcam::alloc::tune_for_tensors();
    // cargo passes `--bench`; anything else not starting with '-' is a name filter.
    let filters: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let selected =
        |name: &str| filters.is_empty() || filters.iter().any(|f| name.contains(f.as_str()));
    let device = Device::flex();
    println!(
        "{:<44} {:>12} {:>12} {:>12}  (per iteration; {SAMPLES} samples of >= {} ms)",
        "benchmark",
        "min",
        "median",
        "max",
        MIN_SAMPLE.as_millis()
    );

    let wants_models = ["forward", "backward"].iter().any(|k| selected(k))
        || filters
            .iter()
            .any(|f| f.contains("lite0") || f.contains("resnet50"));
    if wants_models {
        let lite0 = gradcam::model::efficientnet_lite::pretrained(None, 1000, &device)
            .expect("EfficientNet-Lite0 weights");
        // Random weights, batch norms folded: as `model::load` gives it.
        let resnet50 = gradcam::model::build("resnet50", 1000, &device).expect("resnet50");
        let models: [(&str, &dyn CamModel); 2] =
            [("lite0", &lite0), ("resnet50", resnet50.as_ref())];
        for (name, model) in models {
            let input = fixed_input(model, &device);
            let id = format!("forward/{name}/batch1");
            if selected(&id) {
                bench(&id, || {
                    let logits = model.forward(input.clone()).expect("forward");
                    black_box(logits.into_data());
                });
            }
            let layer = model
                .layer_index(model.default_layer())
                .expect("default layer");
            let id = format!("head_backward/{name}/{}", model.default_layer());
            if selected(&id) {
                let cut = model.forward_to(input.clone(), layer).expect("body");
                bench(&id, || {
                    black_box(head_backward(model, &cut));
                });
            }
        }
    }

    // ResNet-50's and VGG-16's stride-1 3x3 convolutions at batch 1 (Winograd's F(2x2, 3x3)).
    for (c, k, size) in [
        (64, 64, 56),
        (128, 128, 28),
        (256, 256, 14),
        (512, 512, 7),
        (64, 64, 224),
        (256, 256, 56),
        (512, 512, 28),
        (512, 512, 14),
    ] {
        let id = format!("conv3x3/{c}->{k}/{size}x{size}");
        if selected(&id) {
            let x = Tensor::<4>::random([1, c, size, size], Normal(0.0, 1.0), &device);
            let w = Tensor::<4>::random([k, c, 3, 3], Normal(0.0, 0.05), &device);
            let b = Some(Tensor::<1>::random([k], Normal(0.0, 1.0), &device));
            let options = ConvOptions::new([1, 1], [1, 1], [1, 1], 1);
            bench(&id, || {
                let y =
                    gradcam::kernels::conv2d_with(x.clone(), w.clone(), b.clone(), options.clone());
                black_box(y.into_data());
            });
        }
    }

    // A residual block's last convolution at batch 1: the add and ReLU in its epilogue
    // against the same convolution, burn's add and ReLU; each iteration makes its own
    // residual (owned, as in a model), the same in both.
    for (c, k, kernel, size) in [
        (64, 256, 1, 56),
        (256, 1024, 1, 14),
        (512, 2048, 1, 7),
        (64, 64, 3, 56),
    ] {
        for fused in [true, false] {
            let how = if fused { "fused" } else { "unfused" };
            let id = format!("residual/{c}->{k}/k{kernel}/{size}x{size}/{how}");
            if !selected(&id) {
                continue;
            }
            let x = Tensor::<4>::random([1, c, size, size], Normal(0.0, 1.0), &device);
            let w = Tensor::<4>::random([k, c, kernel, kernel], Normal(0.0, 0.05), &device);
            let b = Some(Tensor::<1>::random([k], Normal(0.0, 1.0), &device));
            let r = Tensor::<4>::random([1, k, size, size], Normal(0.0, 1.0), &device).into_data();
            let pad = kernel / 2;
            let options = ConvOptions::new([1, 1], [pad, pad], [1, 1], 1);
            let relu = gradcam::kernels::Activation::Relu;
            bench(&id, || {
                let r = Tensor::<4>::from_data(r.clone(), &device);
                let (x, w, b, o) = (x.clone(), w.clone(), b.clone(), options.clone());
                let y = if fused {
                    gradcam::kernels::conv2d_add_act_with(x, w, b, r, o, relu)
                } else {
                    burn::tensor::activation::relu(gradcam::kernels::conv2d_with(x, w, b, o) + r)
                };
                black_box(y.into_data());
            });
        }
    }

    let image = photo();
    let (w, h) = (image.width() as usize, image.height() as usize);
    let small: Vec<f32> = (0..49).map(|i| ((i * 37) % 49) as f32 / 48.0).collect();
    let map = resize_map(&small, (7, 7), (h, w));
    if selected("postprocess/resize_map") {
        bench("postprocess/resize_map/7x7->224x224", || {
            black_box(resize_map(black_box(&small), (7, 7), (224, 224)));
        });
    }
    if selected("postprocess/resize_bilinear") {
        bench("postprocess/resize_bilinear/640x480->224x224", || {
            black_box(resize_bilinear(black_box(&image), 224, 224));
        });
    }
    if selected("postprocess/overlay") {
        bench("postprocess/overlay/640x480", || {
            black_box(overlay(black_box(&image), &map, 0.5).expect("overlay"));
        });
    }
    if selected("postprocess/localize") {
        bench("postprocess/localize/640x480", || {
            black_box(localize(black_box(&map), w, h, PAPER_THRESHOLD));
        });
    }
}

/// The head with autodiff from `activations` and the gradient of the top-1 logit with respect
/// to them, as `Cam` computes it.
fn head_backward(model: &dyn CamModel, cut: &Cut) -> Vec<f32> {
    let leaf = cut.activations.clone().autodiff().require_grad();
    let logits = model
        .forward_from(leaf.clone(), &cut.context, None)
        .expect("head");
    let row: Vec<f32> = logits.clone().detach().into_data().iter::<f32>().collect();
    let class = gradcam::cam::ranked(&row)[0];
    let score = logits.narrow(1, class, 1).sum();
    let grads = score.backward();
    let g = leaf.grad(&grads).expect("gradient");
    g.into_data().iter::<f32>().take(4).collect()
}

/// A fixed pseudo-random input `[1, 3, H, W]` at the model's size.
fn fixed_input(model: &dyn CamModel, device: &Device) -> Tensor<4> {
    let (h, w) = model.preprocess().size;
    let data: Vec<f32> = (0..3 * h * w)
        .map(|i| (((i as u64).wrapping_mul(2_654_435_761) % 1000) as f32 / 500.0) - 1.0)
        .collect();
    Tensor::from_data(TensorData::new(data, [1, 3, h, w]), device)
}

/// The 640x480 photo of the paper (assets/cat_dog.jpg).
fn photo() -> RgbImage {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/cat_dog.jpg");
    load(&path, gradcam::image::MAX_PIXELS).expect("assets/cat_dog.jpg")
}

fn bench(name: &str, mut f: impl FnMut()) {
    // Warm up, and estimate how many iterations make a sample.
    let start = Instant::now();
    let mut warm = 0u64;
    while warm < 2 || start.elapsed() < WARM_UP {
        f();
        warm += 1;
    }
    let per_iter = start.elapsed() / warm as u32;
    let iters = (MIN_SAMPLE.as_nanos() / per_iter.as_nanos().max(1)).max(1) as u32;
    let mut samples: Vec<Duration> = (0..SAMPLES)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..iters {
                f();
            }
            start.elapsed() / iters
        })
        .collect();
    samples.sort();
    println!(
        "{name:<44} {:>12} {:>12} {:>12}  ({iters} iter/sample)",
        fmt(samples[0]),
        fmt((samples[(SAMPLES - 1) / 2] + samples[SAMPLES / 2]) / 2),
        fmt(samples[SAMPLES - 1])
    );
}

fn fmt(d: Duration) -> String {
    let ns = d.as_nanos() as f64;
    if ns >= 1e6 {
        format!("{:.3} ms", ns / 1e6)
    } else {
        format!("{:.2} us", ns / 1e3)
    }
}
