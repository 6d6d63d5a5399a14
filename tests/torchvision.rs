//! torchvision ResNet and VGG: their checkpoint key layouts load as they are, and Grad-CAM
//! matches pytorch-grad-cam on them. The models are small random networks with torchvision's
//! exact module names, made with the fixtures by tools/make_fixtures.py.

use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::tensor::{Device, Tensor, TensorData};
use gradcam::cam::{Cam, GradCam, Targets};
use gradcam::io::read_npy;
use gradcam::model::vgg::Item::{Conv as C, Pool as M};
use gradcam::model::{CamModel, ResNet, ResNetConfig, Vgg, VggConfig, resnet, vgg};
use gradcam::weights::load_into;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn resnet_config(name: &str) -> ResNetConfig {
    let (blocks, bottleneck) = match name {
        "resnet_small" => ([2, 1, 1, 2], true),
        _ => ([1, 1, 1, 1], false),
    };
    ResNetConfig {
        name: name.into(),
        blocks,
        bottleneck,
        width: 8,
        num_classes: 10,
    }
}

fn vgg_config(name: &str) -> VggConfig {
    VggConfig {
        name: name.into(),
        features: vec![C(8), M, C(16), M, C(32), C(32), M],
        batch_norm: name.ends_with("_bn"),
        hidden: 32,
        num_classes: 10,
    }
}

fn resnet(name: &str, file: &str) -> ResNet {
    let mut model = resnet_config(name).init(&Device::flex());
    load_into(&mut model, &fixture(file), resnet::KEY_REMAPS).unwrap();
    model.valid().fold_batch_norms()
}

fn vgg(name: &str) -> Vgg {
    let mut model = vgg_config(name).init(&Device::flex());
    load_into(
        &mut model,
        &fixture(&format!("{name}.pth")),
        vgg::KEY_REMAPS,
    )
    .unwrap();
    model.valid()
}

fn npy(name: &str) -> (Vec<f32>, Vec<usize>) {
    read_npy(&fixture(name)).unwrap()
}

fn input(name: &str) -> Tensor<4> {
    let (data, shape) = npy(&format!("{name}.input.npy"));
    Tensor::from_data(TensorData::new(data, shape), &Device::flex())
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

fn check_logits(model: &dyn CamModel, name: &str) {
    let logits: Vec<f32> = model
        .forward(input(name))
        .into_data()
        .iter::<f32>()
        .collect();
    let diff = max_abs_diff(&logits, &npy(&format!("{name}.logits.npy")).0);
    eprintln!("{name}: logits max abs diff {diff:e}");
    assert!(diff <= 1e-4, "{name}: logits differ by {diff}");
}

/// Grad-CAM at `layers` (fused when several) against pytorch-grad-cam's map in `file`.
fn check_gradcam(model: &dyn CamModel, name: &str, layers: &[&str], file: &str) {
    let out = Cam::new(model, &GradCam, layers)
        .unwrap()
        .run(input(name), &Targets::Rank(0))
        .unwrap();
    let (expected, shape) = npy(file);
    assert_eq!(shape, [2, 64, 64]);
    let ours: Vec<f32> = out.maps.concat();
    let diff = max_abs_diff(&ours, &expected);
    eprintln!("{file}: max abs diff {diff:e}");
    assert!(
        diff <= 1e-4,
        "{file}: Grad-CAM differs from pytorch-grad-cam by {diff}"
    );
}

#[test]
fn resnet_bottleneck_matches_pytorch_grad_cam() {
    let model = resnet("resnet_small", "resnet_small.pth");
    check_logits(&model, "resnet_small");
    for (layers, file) in [
        (&["layer4"][..], "resnet_small.gradcam.layer4.npy"),
        (&["layer3"][..], "resnet_small.gradcam.layer3.npy"),
        (
            &["layer3", "layer4"][..],
            "resnet_small.gradcam.layer3+layer4.npy",
        ),
    ] {
        check_gradcam(&model, "resnet_small", layers, file);
    }
}

#[test]
fn resnet_basic_block_matches_pytorch_grad_cam() {
    let model = resnet("resnet_basic", "resnet_basic.pth");
    check_logits(&model, "resnet_basic");
    check_gradcam(
        &model,
        "resnet_basic",
        &["layer4"],
        "resnet_basic.gradcam.layer4.npy",
    );
    check_gradcam(
        &model,
        "resnet_basic",
        &["layer3.0"],
        "resnet_basic.gradcam.layer3.npy",
    );
}

#[test]
fn safetensors_with_torchvision_keys_load_the_same() {
    let model = resnet("resnet_small", "resnet_small.safetensors");
    check_logits(&model, "resnet_small");
}

#[test]
fn vgg_matches_pytorch_grad_cam() {
    for (name, last_relu, last) in [("vgg_small", 9, 10), ("vgg_small_bn", 13, 14)] {
        let model = vgg(name);
        check_logits(&model, name);
        assert_eq!(model.default_layer(), format!("features.{last_relu}"));
        for index in [last_relu, last] {
            let layer = format!("features.{index}");
            check_gradcam(
                &model,
                name,
                &[&layer],
                &format!("{name}.gradcam.{layer}.npy"),
            );
        }
    }
}

#[test]
fn checkpoint_of_another_shape_names_the_tensors() {
    // A ResNet-50-shaped network (bottlenecks) cannot take the BasicBlock checkpoint.
    let mut model = resnet_config("resnet_small").init(&Device::flex());
    let err = load_into(&mut model, &fixture("resnet_basic.pth"), resnet::KEY_REMAPS)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("layer1.0.conv3.weight"),
        "missing tensor not named: {err}"
    );
    assert!(
        err.contains("layer1.0.conv1.weight"),
        "mismatched shape not named: {err}"
    );

    // A classifier with another number of classes.
    let mut config = resnet_config("resnet_basic");
    config.num_classes = 1000;
    let mut model = config.init(&Device::flex());
    let err = load_into(&mut model, &fixture("resnet_basic.pth"), resnet::KEY_REMAPS)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("fc.weight") && err.contains("--num-classes"),
        "{err}"
    );
}

#[test]
fn missing_checkpoint_is_a_clear_error() {
    let mut model = resnet_config("resnet_basic").init(&Device::flex());
    let err = load_into(
        &mut model,
        Path::new("/nonexistent/resnet18.pth"),
        resnet::KEY_REMAPS,
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("/nonexistent/resnet18.pth") && err.contains("no such file"),
        "{err}"
    );
}
