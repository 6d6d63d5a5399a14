//! Parity of the CAM family with pytorch-grad-cam 1.5.7 (fixtures made by
//! tools/make_fixtures.py): every method on the small torchvision-layout models and on the real
//! EfficientNet-Lite0, guided backpropagation, Guided Grad-CAM, `aug_smooth` and
//! `eigen_smooth`; and a gradient check of the (guided) input gradient on a hand-sized network.
//!
//! Run with `--nocapture` to see each difference.

mod common;

use std::ops::Range;

use burn::module::{Module, Param};
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::{MaxPool2d, MaxPool2dConfig};
use burn::nn::{Linear, LinearConfig, PaddingConfig2d};
use burn::tensor::{Device, Tensor, TensorData};
use common::{LITE0_IMAGES, SMALL_MODELS, lite0, max_abs, max_abs_diff, npy, small_model, tensor};
use gradcam::cam::{self, AblationCam, Cam, CamOptions, GradCam, ScoreCam, Targets};
use gradcam::kernels::guided_relu::relu;
use gradcam::model::{CamModel, Layer, Preprocess, Rounding};

/// Largest allowed difference of a final (normalised) map.
const TOLERANCE: f32 = 1e-3;

/// Every method of this file at each small model's default layer, top-1 targets.
fn check_small(method: &str) {
    let m = cam::method(method).unwrap();
    for &name in SMALL_MODELS {
        let model = small_model(name);
        let out = Cam::new(model.as_ref(), m.as_ref(), &[] as &[&str])
            .unwrap()
            .run(tensor(&format!("{name}.input.npy")), &Targets::Rank(0))
            .unwrap();
        let (expected, shape) = npy(&format!("{name}.{method}.npy"));
        assert_eq!(shape, [2, 64, 64]);
        let diff = max_abs_diff(&out.maps.concat(), &expected);
        println!("{method:>20} {name:>13}: max abs diff {diff:.2e}");
        assert!(diff <= TOLERANCE, "{method} on {name}: max abs diff {diff}");
    }
}

/// A method on EfficientNet-Lite0's head for the reference images, top-1 targets.
fn check_lite0(method: &dyn cam::Method) {
    check_lite0_on(method, LITE0_IMAGES);
}

fn check_lite0_on(method: &dyn cam::Method, images: &[&str]) {
    for &image in images {
        let out = Cam::new(lite0(), method, &["head"])
            .unwrap()
            .run(
                tensor(&format!("lite0/{image}.input.npy")),
                &Targets::Rank(0),
            )
            .unwrap();
        let (expected, _) = npy(&format!("lite0/{image}.{}.npy", method.name()));
        let diff = max_abs_diff(&out.maps[0], &expected);
        println!(
            "{:>20} lite0 {image:>8}: max abs diff {diff:.2e}",
            method.name()
        );
        assert!(
            diff <= TOLERANCE,
            "{} on Lite0 {image}: max abs diff {diff}",
            method.name()
        );
    }
}

macro_rules! parity {
    ($($small:ident, $lite0:ident, $name:literal;)*) => {$(
        #[test]
        fn $small() {
            check_small($name);
        }

        #[test]
        fn $lite0() {
            check_lite0(cam::method($name).unwrap().as_ref());
        }
    )*};
}

parity! {
    gradcam_plus_plus_small, gradcam_plus_plus_lite0, "gradcam++";
    xgradcam_small, xgradcam_lite0, "xgradcam";
    hirescam_small, hirescam_lite0, "hirescam";
    gradcam_elementwise_small, gradcam_elementwise_lite0, "gradcam-elementwise";
    layercam_small, layercam_lite0, "layercam";
    eigencam_small, eigencam_lite0, "eigencam";
    eigengradcam_small, eigengradcam_lite0, "eigengradcam";
    ablationcam_small, ablationcam_lite0, "ablationcam";
}

#[test]
fn scorecam_small() {
    check_small("scorecam");
}

/// 1280 full forward passes per image (about a minute here), so one image only.
#[test]
fn scorecam_lite0() {
    check_lite0_on(&ScoreCam { batch_size: 32 }, &["cat_dog"]);
}

#[test]
fn batch_sizes_do_not_change_perturbation_methods() {
    let model = small_model("resnet_small");
    let input: Tensor<4> = tensor("resnet_small.input.npy");
    for (a, b) in [
        (
            Box::new(ScoreCam { batch_size: 5 }) as Box<dyn cam::Method>,
            Box::new(ScoreCam::default()) as Box<dyn cam::Method>,
        ),
        (
            Box::new(AblationCam { batch_size: 7 }),
            Box::new(AblationCam { batch_size: 256 }),
        ),
    ] {
        let run = |m: &dyn cam::Method| {
            Cam::new(model.as_ref(), m, &["layer4"])
                .unwrap()
                .run(input.clone(), &Targets::Rank(0))
                .unwrap()
                .layers[0]
                .maps
                .concat()
        };
        let (x, y) = (run(a.as_ref()), run(b.as_ref()));
        assert!(max_abs_diff(&x, &y) <= 1e-5 * max_abs(&y), "{}", a.name());
    }
}

fn check_smoothing(options: CamOptions, fixture: &str) {
    for name in ["resnet_small", "vgg_small"] {
        let model = small_model(name);
        let out = Cam::new(model.as_ref(), &GradCam, &[] as &[&str])
            .unwrap()
            .with_options(options)
            .run(tensor(&format!("{name}.input.npy")), &Targets::Rank(0))
            .unwrap();
        let (expected, _) = npy(&format!("{name}.{fixture}.npy"));
        let diff = max_abs_diff(&out.maps.concat(), &expected);
        println!("{fixture:>20} {name:>13}: max abs diff {diff:.2e}");
        assert!(
            diff <= TOLERANCE,
            "{fixture} on {name}: max abs diff {diff}"
        );
    }
}

#[test]
fn aug_smooth_matches_pytorch_grad_cam() {
    check_smoothing(
        CamOptions {
            aug_smooth: true,
            ..Default::default()
        },
        "gradcam-augsmooth",
    );
}

#[test]
fn eigen_smooth_matches_pytorch_grad_cam() {
    check_smoothing(
        CamOptions {
            eigen_smooth: true,
            ..Default::default()
        },
        "gradcam-eigensmooth",
    );
}

/// Guided backpropagation and Guided Grad-CAM against `GuidedBackpropReLUModel`: raw signed
/// gradients, so the difference is relative to the largest magnitude.
#[test]
fn guided_backprop_matches_pytorch_grad_cam() {
    for name in ["resnet_small", "vgg_small"] {
        let model = small_model(name);
        let input: Tensor<4> = tensor(&format!("{name}.input.npy"));
        let guided =
            cam::guided_backprop(model.as_ref(), input.clone(), &Targets::Rank(0)).unwrap();
        let cam = Cam::new(model.as_ref(), &GradCam, &[] as &[&str]).unwrap();
        let guided_gradcam = cam::guided_gradcam(&cam, input, &Targets::Rank(0)).unwrap();
        for (ours, fixture) in [
            (guided, "guided-backprop"),
            (guided_gradcam, "guided-gradcam"),
        ] {
            let (expected, shape) = npy(&format!("{name}.{fixture}.npy"));
            assert_eq!(shape, [2, 64, 64, 3]);
            let diff = max_abs_diff(&ours.concat(), &expected) / max_abs(&expected);
            println!("{fixture:>20} {name:>13}: max abs diff / max abs {diff:.2e}");
            assert!(
                diff <= TOLERANCE,
                "{fixture} on {name}: relative difference {diff}"
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Gradient check on a hand-sized network: conv 3x3 (2 -> 3 channels, padding 1), ReLU, 2x2
// max-pool, Linear 12 -> 4, ReLU, Linear 4 -> 3, on a 2x4x4 input.

const CIN: usize = 2;
const COUT: usize = 3;
const HIDDEN: usize = 4;
const CLASSES: usize = 3;

/// Deterministic weights in [-1, 1).
fn lcg(len: usize, seed: u64) -> Vec<f32> {
    let mut s = seed;
    (0..len)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (s >> 40) as f32 / (1u64 << 23) as f32 - 1.0
        })
        .collect()
}

struct Weights {
    conv: Vec<f32>, // [COUT, CIN, 3, 3]
    conv_bias: Vec<f32>,
    fc1: Vec<f32>, // [12, HIDDEN] (burn's [in, out])
    fc1_bias: Vec<f32>,
    fc2: Vec<f32>, // [HIDDEN, CLASSES]
    fc2_bias: Vec<f32>,
}

impl Weights {
    fn new() -> Self {
        Weights {
            conv: lcg(COUT * CIN * 9, 1),
            conv_bias: lcg(COUT, 2),
            fc1: lcg(12 * HIDDEN, 3),
            fc1_bias: lcg(HIDDEN, 4),
            fc2: lcg(HIDDEN * CLASSES, 5),
            fc2_bias: lcg(CLASSES, 6),
        }
    }
}

#[derive(Module, Debug)]
struct Tiny {
    conv: Conv2d,
    pool: MaxPool2d,
    fc1: Linear,
    fc2: Linear,
    #[module(skip)]
    layers: Vec<Layer>,
}

fn param<const D: usize>(data: &[f32], shape: [usize; D], device: &Device) -> Param<Tensor<D>> {
    Param::from_tensor(Tensor::from_data(
        TensorData::new(data.to_vec(), shape),
        device,
    ))
}

impl Tiny {
    fn new(w: &Weights, device: &Device) -> Self {
        let mut conv = Conv2dConfig::new([CIN, COUT], [3, 3])
            .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
            .init(device);
        conv.weight = param(&w.conv, [COUT, CIN, 3, 3], device);
        conv.bias = Some(param(&w.conv_bias, [COUT], device));
        let mut fc1 = LinearConfig::new(12, HIDDEN).init(device);
        fc1.weight = param(&w.fc1, [12, HIDDEN], device);
        fc1.bias = Some(param(&w.fc1_bias, [HIDDEN], device));
        let mut fc2 = LinearConfig::new(HIDDEN, CLASSES).init(device);
        fc2.weight = param(&w.fc2, [HIDDEN, CLASSES], device);
        fc2.bias = Some(param(&w.fc2_bias, [CLASSES], device));
        Tiny {
            conv,
            pool: MaxPool2dConfig::new([2, 2]).init(),
            fc1,
            fc2,
            layers: vec![
                Layer::new("conv", COUT, 1, Rounding::Ceil),
                Layer::new("relu", COUT, 1, Rounding::Ceil),
                Layer::new("pool", COUT, 2, Rounding::Floor),
            ],
        }
    }
}

impl CamModel for Tiny {
    fn name(&self) -> &str {
        "tiny"
    }
    fn layers(&self) -> &[Layer] {
        &self.layers
    }
    fn default_layer(&self) -> &str {
        "pool"
    }
    fn preprocess(&self) -> Preprocess {
        Preprocess {
            size: (4, 4),
            mean: [0.0; 3],
            std: [1.0; 3],
        }
    }
    fn num_classes(&self) -> usize {
        CLASSES
    }
    fn forward_stages(&self, mut x: Tensor<4>, range: Range<usize>) -> Tensor<4> {
        for stage in range {
            x = match stage {
                0 => self.conv.forward(x),
                1 => relu(x),
                _ => self.pool.forward(x),
            };
        }
        x
    }
    fn classify(&self, features: Tensor<4>) -> Tensor<2> {
        self.fc2
            .forward(relu(self.fc1.forward(features.flatten(1, 3))))
    }
}

/// The input gradient of logit `class`, worked out by hand in f64; with `guided`, every ReLU
/// also drops negative incoming gradients.
fn hand_gradient(w: &Weights, x: &[f32], class: usize, guided: bool) -> Vec<f64> {
    let f = |v: &[f32]| v.iter().map(|&a| a as f64).collect::<Vec<f64>>();
    let (x, conv, fc1, fc2) = (f(x), f(&w.conv), f(&w.fc1), f(&w.fc2));
    let relu_back = |grad: f64, input: f64| {
        if input > 0.0 && (!guided || grad > 0.0) {
            grad
        } else {
            0.0
        }
    };
    // Forward.
    let mut z = vec![0.0f64; COUT * 16];
    for co in 0..COUT {
        for i in 0..4 {
            for j in 0..4 {
                let mut s = w.conv_bias[co] as f64;
                for ci in 0..CIN {
                    for ki in 0..3 {
                        for kj in 0..3 {
                            let (ii, jj) = (i + ki, j + kj);
                            if (1..5).contains(&ii) && (1..5).contains(&jj) {
                                s += conv[((co * CIN + ci) * 3 + ki) * 3 + kj]
                                    * x[(ci * 4 + ii - 1) * 4 + jj - 1];
                            }
                        }
                    }
                }
                z[(co * 4 + i) * 4 + j] = s;
            }
        }
    }
    let a: Vec<f64> = z.iter().map(|v| v.max(0.0)).collect();
    let mut pooled = [0.0f64; 12];
    let mut argmax = [0usize; 12];
    for co in 0..COUT {
        for pi in 0..2 {
            for pj in 0..2 {
                let cells = [(0, 0), (0, 1), (1, 0), (1, 1)]
                    .map(|(di, dj)| (co * 4 + 2 * pi + di) * 4 + 2 * pj + dj);
                let best = cells
                    .into_iter()
                    .fold(cells[0], |b, c| if a[c] > a[b] { c } else { b });
                pooled[(co * 2 + pi) * 2 + pj] = a[best];
                argmax[(co * 2 + pi) * 2 + pj] = best;
            }
        }
    }
    let h: Vec<f64> = (0..HIDDEN)
        .map(|o| {
            w.fc1_bias[o] as f64
                + (0..12)
                    .map(|i| pooled[i] * fc1[i * HIDDEN + o])
                    .sum::<f64>()
        })
        .collect();
    // Backward.
    let d_h: Vec<f64> = (0..HIDDEN)
        .map(|o| relu_back(fc2[o * CLASSES + class], h[o]))
        .collect();
    let d_pooled: Vec<f64> = (0..12)
        .map(|i| (0..HIDDEN).map(|o| fc1[i * HIDDEN + o] * d_h[o]).sum())
        .collect();
    let mut d_a = vec![0.0f64; COUT * 16];
    for (p, &cell) in argmax.iter().enumerate() {
        d_a[cell] += d_pooled[p];
    }
    let d_z: Vec<f64> = d_a.iter().zip(&z).map(|(&g, &v)| relu_back(g, v)).collect();
    let mut d_x = vec![0.0f64; CIN * 16];
    for co in 0..COUT {
        for i in 0..4 {
            for j in 0..4 {
                for ci in 0..CIN {
                    for ki in 0..3 {
                        for kj in 0..3 {
                            let (ii, jj) = (i + ki, j + kj);
                            if (1..5).contains(&ii) && (1..5).contains(&jj) {
                                d_x[(ci * 4 + ii - 1) * 4 + jj - 1] += conv
                                    [((co * CIN + ci) * 3 + ki) * 3 + kj]
                                    * d_z[(co * 4 + i) * 4 + j];
                            }
                        }
                    }
                }
            }
        }
    }
    d_x
}

/// `[1, c, h, w]` from `[h, w, c]`.
fn chw(hwc: &[f32], c: usize, hw: usize) -> Vec<f32> {
    (0..c)
        .flat_map(|ch| (0..hw).map(move |p| hwc[p * c + ch]))
        .collect()
}

#[test]
fn input_gradients_match_finite_differences_and_the_guided_rule() {
    let device = Device::flex();
    let w = Weights::new();
    let model = Tiny::new(&w, &device);
    let x = lcg(CIN * 16, 7);
    let input =
        |v: &[f32]| Tensor::<4>::from_data(TensorData::new(v.to_vec(), [1, CIN, 4, 4]), &device);
    for class in 0..CLASSES {
        // Plain input gradient by burn's autodiff.
        let leaf = input(&x).autodiff().require_grad();
        let grads = model
            .forward(leaf.clone())
            .narrow(1, class, 1)
            .sum()
            .backward();
        let plain: Vec<f32> = leaf
            .grad(&grads)
            .unwrap()
            .into_data()
            .iter::<f32>()
            .collect();
        // Central finite differences of the logit.
        let logit = |v: &[f32]| {
            model
                .forward(input(v))
                .narrow(1, class, 1)
                .into_scalar::<f32>() as f64
        };
        let eps = 1e-3f32;
        for i in 0..x.len() {
            let (mut up, mut down) = (x.clone(), x.clone());
            up[i] += eps;
            down[i] -= eps;
            let fd = (logit(&up) - logit(&down)) / (up[i] - down[i]) as f64;
            assert!(
                (fd - plain[i] as f64).abs() <= 2e-3,
                "class {class}, input {i}: {fd} vs {}",
                plain[i]
            );
        }
        // Both gradients against the hand computation.
        let guided = cam::guided_backprop(&model, input(&x), &Targets::class(class))
            .unwrap()
            .remove(0);
        let guided = chw(&guided, CIN, 16);
        let hand_plain = hand_gradient(&w, &x, class, false);
        let hand_guided = hand_gradient(&w, &x, class, true);
        for i in 0..x.len() {
            assert!(
                (plain[i] as f64 - hand_plain[i]).abs() <= 1e-5,
                "plain {i}: {} vs {}",
                plain[i],
                hand_plain[i]
            );
            assert!(
                (guided[i] as f64 - hand_guided[i]).abs() <= 1e-5,
                "guided {i}: {} vs {}",
                guided[i],
                hand_guided[i]
            );
        }
        // The case is not degenerate: the guided rule changes something.
        assert!(
            hand_plain
                .iter()
                .zip(&hand_guided)
                .any(|(a, b)| (a - b).abs() > 1e-3),
            "class {class}"
        );
    }
}

/// Median seconds per image of the perturbation methods on EfficientNet-Lite0's head at
/// 224x224 (one image per run): `cargo test --release --test methods -- --ignored
/// --nocapture bench_perturbation_lite0`.
#[test]
#[ignore]
fn bench_perturbation_lite0() {
    let input: Tensor<4> = tensor("lite0/cat_dog.input.npy");
    let median = |method: &dyn cam::Method, runs: usize| {
        let cam = Cam::new(lite0(), method, &["head"]).unwrap();
        let mut times: Vec<f64> = (0..runs)
            .map(|_| {
                let start = std::time::Instant::now();
                cam.run(input.clone(), &Targets::Rank(0)).unwrap();
                start.elapsed().as_secs_f64()
            })
            .collect();
        times.sort_by(f64::total_cmp);
        times[runs / 2]
    };
    lite0().forward(input.clone()); // load the weights outside the timings
    for batch_size in [32, 64, 256] {
        let s = median(&AblationCam { batch_size }, 5);
        println!("ablationcam batch_size {batch_size:>3}: {s:.3} s/image");
    }
    for batch_size in [16, 32, 64] {
        let s = median(&ScoreCam { batch_size }, 3);
        println!("scorecam    batch_size {batch_size:>3}: {s:.3} s/image");
    }
}
