//! Parity of the CAM family with pytorch-grad-cam 1.5.7 (fixtures made by
//! tools/make_fixtures.py): every method on the small torchvision-layout models and on the real
//! EfficientNet-Lite0, guided backpropagation, Guided Grad-CAM, `aug_smooth` and
//! `eigen_smooth`; and a gradient check of the (guided) input gradient on a hand-sized network.
//!
//! The eigen fixtures (Eigen-CAM, EigenGrad-CAM, `eigen_smooth`) are not upstream's raw output:
//! `get_2d_projection`'s sign is arbitrary (it comes from the SVD), so tools/make_fixtures.py
//! patches it to negate the projection when its dot product with the uncentred matrix's
//! channel sum is negative, which is our documented rule (tests/fixtures/README.md). Parity
//! there means parity with upstream up to that sign choice.
//!
//! Run with `--nocapture` to see each difference.

mod common;

use burn::tensor::{Device, Tensor};
use common::toy::{Params, Toy, ToySpec};
use common::{
    LITE0_IMAGES, MAP_TOLERANCE, SMALL_MODELS, lite0, max_abs, max_abs_diff, npy, small_model,
    tensor,
};
use gradcam::cam::{
    self, AblationCam, Cam, CamOptions, GradCam, Kernel, KpcaCam, RandomCam, ScoreCam, Targets,
};
use gradcam::model::Forward;

/// Largest allowed difference of a guided (raw, signed) gradient image, relative to its
/// largest magnitude: measured 1.4e-6 (Guided Grad-CAM on resnet_small).
const GUIDED_TOLERANCE: f32 = 1e-5;

/// Every method of this file at each small model's default layer, top-1 targets.
fn check_small(method: &str) {
    check_small_as(cam::method(method).unwrap().as_ref(), method);
}

/// `m` at each small model's default layer against the fixtures `{model}.{method}.npy`.
fn check_small_as(m: &dyn cam::Method, method: &str) {
    for &name in SMALL_MODELS {
        let model = small_model(name);
        let out = Cam::new(model.as_ref(), m, &[] as &[&str])
            .unwrap()
            .run(tensor(&format!("{name}.input.npy")), &Targets::Rank(0))
            .unwrap();
        let (expected, shape) = npy(&format!("{name}.{method}.npy"));
        assert_eq!(shape, [2, 64, 64]);
        let diff = max_abs_diff(&out.maps.concat(), &expected);
        println!("{method:>20} {name:>13}: max abs diff {diff:.2e}");
        assert!(
            diff <= MAP_TOLERANCE,
            "{method} on {name}: max abs diff {diff}"
        );
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
            diff <= MAP_TOLERANCE,
            "{} on Lite0 {image}: max abs diff {diff}",
            method.name()
        );
    }
}

macro_rules! parity {
    ($($(#[$doc:meta])* $small:ident, $lite0:ident, $name:literal;)*) => {$(
        $(#[$doc])*
        #[test]
        fn $small() {
            check_small($name);
        }

        $(#[$doc])*
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
    /// Against pytorch-grad-cam with the sign-ruled `get_2d_projection` (see the file's doc).
    eigencam_small, eigencam_lite0, "eigencam";
    /// Against pytorch-grad-cam with the sign-ruled `get_2d_projection` (see the file's doc).
    eigengradcam_small, eigengradcam_lite0, "eigengradcam";
    ablationcam_small, ablationcam_lite0, "ablationcam";
    /// Its sign rule is the paper's (Eq. 13), as pytorch-grad-cam's: no patch needed.
    segeigencam_small, segeigencam_lite0, "segeigencam";
}

/// Lite0 only: at the small models' 2x2 and 4x4 layers no position stands 2 std above its
/// channel's mean, so their FEM maps are all zero (see tools/make_fixtures.py).
#[test]
fn fem_lite0() {
    check_lite0(cam::method("fem").unwrap().as_ref());
}

// ---------------------------------------------------------------------------------------------
// The methods of issue 16 (tools/make_fixtures.py --parts 4).

/// The fixtures' seed (tools/make_fixtures.py `RANDOM_CAM_SEED`; with the default 0 some small
/// models' maps are all zero). pytorch-grad-cam's RandomCAM gets our weights there.
const RANDOM_CAM: RandomCam = RandomCam { seed: 1 };

#[test]
fn randomcam_small() {
    check_small_as(&RANDOM_CAM, "randomcam");
}

#[test]
fn randomcam_lite0() {
    check_lite0(&RANDOM_CAM);
}

#[test]
fn randomcam_is_seeded() {
    let model = small_model("resnet_small");
    let input: Tensor<4> = tensor("resnet_small.input.npy");
    let run = |m: &RandomCam| {
        Cam::new(model.as_ref(), m, &["layer4"])
            .unwrap()
            .run(input.clone(), &Targets::Rank(0))
            .unwrap()
            .layers
            .remove(0)
            .maps
    };
    assert_eq!(run(&RandomCam::default()), run(&RandomCam::default()));
    assert_ne!(run(&RandomCam::default()), run(&RANDOM_CAM));
}

#[test]
fn finercam_small() {
    check_small("finercam");
}

#[test]
fn finercam_lite0() {
    check_lite0(cam::method("finercam").unwrap().as_ref());
}

/// Against pytorch-grad-cam's double backpropagation; ours takes the Hessian-vector product
/// by central differences of the head's gradient (see `ShapleyCam`).
#[test]
fn shapleycam_small() {
    check_small("shapleycam");
}

#[test]
fn shapleycam_lite0() {
    check_lite0(cam::method("shapleycam").unwrap().as_ref());
}

#[test]
fn kpcacam_small() {
    check_small("kpcacam");
}

#[test]
fn kpcacam_rbf_small() {
    let rbf = KpcaCam {
        kernel: Kernel::Rbf,
        gamma: None,
    };
    check_small_as(&rbf, "kpcacam-rbf");
}

#[test]
fn kpcacam_lite0() {
    check_lite0(cam::method("kpcacam").unwrap().as_ref());
}

/// torchcam's normalisation of a raw map: optionally `max(map, 0)`, then
/// `map -= min; map /= max + 1e-8` (`_CAM._normalize`), at the layer's resolution.
fn torchcam_normalize(map: &[f32], relu: bool) -> Vec<f32> {
    let mut m: Vec<f32> = map
        .iter()
        .map(|&v| if relu { v.max(0.0) } else { v })
        .collect();
    let min = m.iter().copied().fold(f32::INFINITY, f32::min);
    m.iter_mut().for_each(|v| *v -= min);
    let max = m.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    m.iter_mut().for_each(|v| *v /= max + 1e-8);
    m
}

/// A torchcam method against its maps, which are at the layer's resolution: our raw maps,
/// normalised as torchcam does (with a ReLU first when `relu`), top-1 targets.
fn check_torchcam(
    method: &dyn cam::Method,
    relu: bool,
    runs: &[(&dyn gradcam::model::CamModel, &str, &str)],
) {
    for &(model, layer, prefix) in runs {
        let out = Cam::new(model, method, &[layer])
            .unwrap()
            .run(tensor(&format!("{prefix}.input.npy")), &Targets::Rank(0))
            .unwrap();
        let ours: Vec<f32> = out.layers[0]
            .maps
            .iter()
            .flat_map(|m| torchcam_normalize(m, relu))
            .collect();
        let (expected, _) = npy(&format!("{prefix}.{}.npy", method.name()));
        let diff = max_abs_diff(&ours, &expected);
        println!(
            "{:>20} {prefix:>14}: max abs diff {diff:.2e}",
            method.name()
        );
        assert!(
            diff <= MAP_TOLERANCE,
            "{} on {prefix}: max abs diff {diff}",
            method.name()
        );
    }
}

/// torchcam's CAM on the GAP + linear models (the small ResNets and Lite0).
#[test]
fn cam_matches_torchcam() {
    let (small, basic) = (small_model("resnet_small"), small_model("resnet_basic"));
    let m = cam::method("cam").unwrap();
    check_torchcam(
        m.as_ref(),
        false,
        &[
            (small.as_ref(), "layer4", "resnet_small"),
            (basic.as_ref(), "layer4", "resnet_basic"),
            (lite0(), "head", "lite0/cat_dog"),
            (lite0(), "head", "lite0/both"),
        ],
    );
}

/// The small models at their default layers, as `check_torchcam` runs.
fn small_runs(
    models: &[Box<dyn gradcam::model::CamModel>],
) -> Vec<(&dyn gradcam::model::CamModel, &str, &str)> {
    models
        .iter()
        .zip(SMALL_MODELS)
        .map(|(m, &name)| (m.as_ref(), m.default_layer(), name))
        .collect()
}

/// torchcam's SmoothGradCAMpp (4 samples, std 0.3), fed our noise, on the small models and
/// Lite0.
#[test]
fn smoothgradcampp_matches_torchcam() {
    let models: Vec<_> = SMALL_MODELS.iter().map(|&n| small_model(n)).collect();
    let mut runs = small_runs(&models);
    runs.extend([
        (
            lite0() as &dyn gradcam::model::CamModel,
            "head",
            "lite0/cat_dog",
        ),
        (lite0(), "head", "lite0/both"),
    ]);
    check_torchcam(
        cam::method("smoothgradcam++").unwrap().as_ref(),
        true,
        &runs,
    );
}

/// torchcam's SSCAM (35 samples, std 2), fed our noise; small models only (on Lite0 it is
/// 44,800 forward passes per image).
#[test]
fn sscam_matches_torchcam() {
    let models: Vec<_> = SMALL_MODELS.iter().map(|&n| small_model(n)).collect();
    check_torchcam(
        cam::method("sscam").unwrap().as_ref(),
        true,
        &small_runs(&models),
    );
}

/// torchcam's ISCAM (10 samples); small models only (12,800 forward passes per image on
/// Lite0).
#[test]
fn iscam_matches_torchcam() {
    let models: Vec<_> = SMALL_MODELS.iter().map(|&n| small_model(n)).collect();
    check_torchcam(
        cam::method("iscam").unwrap().as_ref(),
        true,
        &small_runs(&models),
    );
}

// ---------------------------------------------------------------------------------------------
// The second batch of issue 16 (tools/make_fixtures.py --parts 5).

/// The two layers RefineCAM multiplies in the fixtures (tools/make_fixtures.py
/// `refine_layers`).
fn refine_layers(model: &str) -> [&'static str; 2] {
    match model {
        "vgg_small" => ["features.4", "features.9"],
        "vgg_small_bn" => ["features.6", "features.13"],
        _ => ["layer3", "layer4"],
    }
}

#[test]
fn refinecam_small() {
    let m = cam::method("refinecam").unwrap();
    for &name in SMALL_MODELS {
        let model = small_model(name);
        let out = Cam::new(model.as_ref(), m.as_ref(), &refine_layers(name))
            .unwrap()
            .run(tensor(&format!("{name}.input.npy")), &Targets::Rank(0))
            .unwrap();
        let (expected, _) = npy(&format!("{name}.refinecam.npy"));
        let diff = max_abs_diff(&out.maps.concat(), &expected);
        println!("{:>20} {name:>13}: max abs diff {diff:.2e}", "refinecam");
        assert!(
            diff <= MAP_TOLERANCE,
            "refinecam on {name}: max abs diff {diff}"
        );
    }
}

#[test]
fn refinecam_lite0() {
    let m = cam::method("refinecam").unwrap();
    for &image in LITE0_IMAGES {
        let out = Cam::new(lite0(), m.as_ref(), &["blocks.15", "head"])
            .unwrap()
            .run(
                tensor(&format!("lite0/{image}.input.npy")),
                &Targets::Rank(0),
            )
            .unwrap();
        let (expected, _) = npy(&format!("lite0/{image}.refinecam.npy"));
        let diff = max_abs_diff(&out.maps[0], &expected);
        println!(
            "{:>20} lite0 {image:>8}: max abs diff {diff:.2e}",
            "refinecam"
        );
        assert!(
            diff <= MAP_TOLERANCE,
            "refinecam on Lite0 {image}: max abs diff {diff}"
        );
    }
}

/// SESS with its defaults (Grad-CAM on 122 windows per 64x64 image).
#[test]
fn sess_small() {
    check_small("sess");
}

/// SESS on Lite0's `cat_dog` at the head: one image, as each costs a Grad-CAM per window.
#[test]
fn sess_lite0() {
    check_lite0_on(&cam::Sess::default(), &["cat_dog"]);
}

/// FullGrad: one backward through the whole network, every bias probed.
#[test]
fn fullgrad_small() {
    check_small("fullgrad");
}

/// On Lite0's `both` a few ReLU6 units sit within float32 rounding of zero (3.6e-7 in
/// `blocks.12`, 3.8e-7 in `blocks.2`), so whether they pass their gradient is decided by the
/// order of additions; ours and PyTorch's float32 choose differently, and FullGrad, which
/// backpropagates to the input, moves by 1.0e-3 (PyTorch's float32 map is 7.1e-5 from its
/// float64 one). With those units matched our gradients equal float64's to float32 precision
/// (tests/lite0.rs, `backward_matches_pytorch_float64_up_to_relu6_units_at_zero`). `cat_dog`
/// is within 2.2e-5; `both` is held to a bound just above what was measured.
#[test]
fn fullgrad_lite0() {
    check_lite0_on(&cam::FullGrad, &["cat_dog"]);
    let out = Cam::new(lite0(), &cam::FullGrad, &["head"])
        .unwrap()
        .run(tensor("lite0/both.input.npy"), &Targets::Rank(0))
        .unwrap();
    let (expected, _) = npy("lite0/both.fullgrad.npy");
    let diff = max_abs_diff(&out.maps[0], &expected);
    println!(
        "{:>20} lite0 {:>8}: max abs diff {diff:.2e}",
        "fullgrad", "both"
    );
    assert!(
        diff <= 1.5e-3,
        "fullgrad on Lite0 both: max abs diff {diff}"
    );
}

/// A model that does not expose its biases gets a clear error, not a panic.
#[test]
fn fullgrad_needs_the_models_biases() {
    let device = Device::flex();
    let model = Toy::new(tiny_spec(), &device);
    let input = model.input(&lcg(CIN * 16, 7), &device);
    let m = cam::method("fullgrad").unwrap();
    let err = Cam::new(&model, m.as_ref(), &[] as &[&str])
        .unwrap()
        .run(input, &Targets::Rank(0))
        .expect_err("the toy model has no bias probes")
        .to_string();
    assert!(
        err.contains("FullGrad needs the bias of every layer"),
        "{err}"
    );
}

/// Deep Feature Factorization into 5 concepts against pytorch-grad-cam's, whose NMF starts from
/// our seeded noise (tools/make_fixtures.py `OurInitNMF`): maps, concept vectors and, for the
/// GAP + linear models, the classifier's logits of each concept.
#[test]
fn dff_matches_pytorch_grad_cam() {
    let mut runs: Vec<(&dyn gradcam::model::CamModel, String, String, bool)> = Vec::new();
    let models: Vec<_> = SMALL_MODELS.iter().map(|&n| small_model(n)).collect();
    for (model, &name) in models.iter().zip(SMALL_MODELS) {
        let layer = model.default_layer().to_string();
        runs.push((
            model.as_ref(),
            layer,
            name.to_string(),
            name.starts_with("resnet"),
        ));
    }
    for &image in LITE0_IMAGES {
        runs.push((lite0(), "head".to_string(), format!("lite0/{image}"), true));
    }
    for (model, layer, prefix, scored) in runs {
        let input = tensor(&format!("{prefix}.input.npy"));
        let out = cam::deep_feature_factorization(model, input, &layer, 5).unwrap();
        let (maps, shape) = npy(&format!("{prefix}.dff.maps.npy"));
        assert_eq!((shape[0], shape[1]), (out.maps.len(), 5));
        let ours: Vec<f32> = out.maps.concat().concat();
        let d_maps = max_abs_diff(&ours, &maps);
        let (concepts, _) = npy(&format!("{prefix}.dff.concepts.npy"));
        let d_concepts = max_abs_diff(&out.concepts, &concepts) / max_abs(&concepts);
        let d_scores = if scored {
            let (scores, _) = npy(&format!("{prefix}.dff.scores.npy"));
            max_abs_diff(&out.scores.concat(), &scores) / max_abs(&scores)
        } else {
            0.0
        };
        println!(
            "{:>20} {prefix:>14}: maps {d_maps:.2e}, concepts {d_concepts:.2e} (relative), \
             scores {d_scores:.2e} (relative), {} NMF iterations",
            "dff", out.iterations
        );
        // Scores only where the head is GAP + linear (the VGGs' is not).
        assert_eq!(out.scores.len(), if scored { 5 } else { 0 }, "{prefix}");
        assert!(d_maps <= MAP_TOLERANCE, "dff maps on {prefix}: {d_maps}");
        assert!(d_concepts <= 1e-4, "dff concepts on {prefix}: {d_concepts}");
        assert!(d_scores <= 1e-4, "dff scores on {prefix}: {d_scores}");
    }
}

#[test]
fn cam_explains_only_gap_linear_heads_at_their_last_layer() {
    let m = cam::method("cam").unwrap();
    let vgg = small_model("vgg_small");
    let err = Cam::new(vgg.as_ref(), m.as_ref(), &[] as &[&str])
        .unwrap()
        .run(tensor("vgg_small.input.npy"), &Targets::Rank(0))
        .expect_err("VGG's head is not GAP + linear")
        .to_string();
    assert!(
        err.contains("global average pooling then one linear layer"),
        "{err}"
    );
    let resnet = small_model("resnet_small");
    let err = Cam::new(resnet.as_ref(), m.as_ref(), &["layer3"])
        .unwrap()
        .run(tensor("resnet_small.input.npy"), &Targets::Rank(0))
        .expect_err("layer3 is not the last layer")
        .to_string();
    assert!(err.contains("after `layer3.0`"), "{err}");
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
        let diff = max_abs_diff(&x, &y) / max_abs(&y);
        println!(
            "{:>12}: raw maps, max abs diff / max abs {diff:.2e}",
            a.name()
        );
        // Measured 0 (bit-identical); the bound leaves the last bits to kernels that tile by batch.
        assert!(diff <= 1e-6, "{}: {diff}", a.name());
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
            diff <= MAP_TOLERANCE,
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

/// Against pytorch-grad-cam with the sign-ruled `get_2d_projection` (see the file's doc).
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
                diff <= GUIDED_TOLERANCE,
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

/// A layer of `outputs` channels with weights and biases from [`lcg`].
fn lcg_params<const D: usize>(shape: [usize; D], outputs: usize, seed: u64) -> Params<D> {
    Params {
        shape,
        weight: lcg(shape.iter().product(), seed),
        bias: lcg(outputs, seed + 1),
    }
}

/// The toy network of this check.
fn tiny_spec() -> ToySpec {
    ToySpec {
        input: (4, 4),
        conv: lcg_params([COUT, CIN, 3, 3], COUT, 1),
        padding: 1,
        pool: true,
        head: vec![
            lcg_params([12, HIDDEN], HIDDEN, 3),
            lcg_params([HIDDEN, CLASSES], CLASSES, 5),
        ],
    }
}

/// The input gradient of logit `class`, worked out by hand in f64; with `guided`, every ReLU
/// also drops negative incoming gradients.
fn hand_gradient(spec: &ToySpec, x: &[f32], class: usize, guided: bool) -> Vec<f64> {
    let f = |v: &[f32]| v.iter().map(|&a| a as f64).collect::<Vec<f64>>();
    let (x, conv, fc1, fc2) = (
        f(x),
        f(&spec.conv.weight),
        f(&spec.head[0].weight),
        f(&spec.head[1].weight),
    );
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
                let mut s = spec.conv.bias[co] as f64;
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
            spec.head[0].bias[o] as f64
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
    let model = Toy::new(tiny_spec(), &device);
    let x = lcg(CIN * 16, 7);
    let input = |v: &[f32]| model.input(v, &device);
    let (mut worst_fd, mut worst_hand) = (0.0f64, 0.0f64);
    for class in 0..CLASSES {
        // Plain input gradient by burn's autodiff.
        let leaf = input(&x).autodiff().require_grad();
        let grads = model
            .forward(leaf.clone())
            .unwrap()
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
                .unwrap()
                .narrow(1, class, 1)
                .into_scalar::<f32>() as f64
        };
        let eps = 1e-3f32;
        for i in 0..x.len() {
            let (mut up, mut down) = (x.clone(), x.clone());
            up[i] += eps;
            down[i] -= eps;
            let fd = (logit(&up) - logit(&down)) / (up[i] - down[i]) as f64;
            worst_fd = worst_fd.max((fd - plain[i] as f64).abs());
            assert!(
                // f32 logits over a 2e-3 step: rounding alone is ~1e-4; measured 4.9e-4.
                (fd - plain[i] as f64).abs() <= 1e-3,
                "class {class}, input {i}: {fd} vs {}",
                plain[i]
            );
        }
        // Both gradients against the hand computation.
        let guided = cam::guided_backprop(&model, input(&x), &Targets::class(class))
            .unwrap()
            .remove(0);
        let guided = chw(&guided, CIN, 16);
        let hand_plain = hand_gradient(&model.spec, &x, class, false);
        let hand_guided = hand_gradient(&model.spec, &x, class, true);
        for i in 0..x.len() {
            worst_hand = worst_hand
                .max((plain[i] as f64 - hand_plain[i]).abs())
                .max((guided[i] as f64 - hand_guided[i]).abs());
            assert!(
                // f32 against f64: measured 1.3e-7.
                (plain[i] as f64 - hand_plain[i]).abs() <= 1e-6,
                "plain {i}: {} vs {}",
                plain[i],
                hand_plain[i]
            );
            assert!(
                (guided[i] as f64 - hand_guided[i]).abs() <= 1e-6,
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
    println!("finite differences: max abs diff {worst_fd:.2e}; by hand: {worst_hand:.2e}");
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
    lite0().forward(input.clone()).unwrap(); // load the weights outside the timings
    for batch_size in [32, 64, 256] {
        let s = median(&AblationCam { batch_size }, 5);
        println!("ablationcam batch_size {batch_size:>3}: {s:.3} s/image");
    }
    for batch_size in [16, 32, 64] {
        let s = median(&ScoreCam { batch_size }, 3);
        println!("scorecam    batch_size {batch_size:>3}: {s:.3} s/image");
    }
}
