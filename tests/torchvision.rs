//! torchvision ResNet and VGG: their checkpoint key layouts load as they are, and Grad-CAM
//! matches pytorch-grad-cam on them. The models are small random networks with torchvision's
//! exact module names, made with the fixtures by tools/make_fixtures.py.

mod common;

use std::path::Path;

use burn::tensor::{Device, Tensor};
use common::{
    LOGIT_TOLERANCE, MAP_TOLERANCE, fixtures, max_abs_diff, npy, resnet_config, small_resnet,
    small_vgg, tensor,
};
use gradcam::cam::{Cam, GradCam, Targets};
use gradcam::model::{CamModel, resnet};
use gradcam::weights::load_into;

fn input(name: &str) -> Tensor<4> {
    tensor(&format!("{name}.input.npy"))
}

fn check_logits(model: &dyn CamModel, name: &str) {
    let logits: Vec<f32> = model
        .forward(input(name))
        .unwrap()
        .into_data()
        .iter::<f32>()
        .collect();
    let diff = max_abs_diff(&logits, &npy(&format!("{name}.logits.npy")).0);
    eprintln!("{name}: logits max abs diff {diff:e}");
    assert!(diff <= LOGIT_TOLERANCE, "{name}: logits differ by {diff}");
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
        diff <= MAP_TOLERANCE,
        "{file}: Grad-CAM differs from pytorch-grad-cam by {diff}"
    );
}

#[test]
fn resnet_bottleneck_matches_pytorch_grad_cam() {
    let model = small_resnet("resnet_small", "resnet_small.pth");
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
    let model = small_resnet("resnet_basic", "resnet_basic.pth");
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
    let model = small_resnet("resnet_small", "resnet_small.safetensors");
    check_logits(&model, "resnet_small");
}

#[test]
fn vgg_matches_pytorch_grad_cam() {
    for (name, last_relu, last) in [("vgg_small", 9, 10), ("vgg_small_bn", 13, 14)] {
        let model = small_vgg(name);
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
    let err = load_into(
        &mut model,
        &fixtures().join("resnet_basic.pth"),
        resnet::KEY_REMAPS,
    )
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
    let err = load_into(
        &mut model,
        &fixtures().join("resnet_basic.pth"),
        resnet::KEY_REMAPS,
    )
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

/// A batch without autodiff runs image by image (see `common::assert_batch_runs_image_by_image`).
#[test]
fn a_batch_gives_each_image_its_own_values() {
    let model = small_resnet("resnet_small", "resnet_small.pth");
    let x = common::patterned([5, 3, 48, 40]);
    let graph = common::assert_batch_runs_image_by_image(&model, x, "layer3");
    eprintln!("against one graph: {graph:e}");
    // Measured 5.5e-7.
    assert!(graph <= 1e-6, "{graph}");
}
