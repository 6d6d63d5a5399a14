//! Grad-CAM values worked out by hand, on a model small enough to follow with a pencil.
//!
//! captum's toy model (tests/common/toy.rs): Conv2d 1->2 (3x3, weights 1, bias [-50, -75]), ReLU, Linear 8->4
//! with weights [ones(4, 5) | -ones(4, 3)] and bias 0; input arange(16) as 1x1x4x4; target 0;
//! layer: the convolution's output.
//!
//! The 3x3 window sums of arange(16) are [45, 54, 81, 90], so the convolution gives
//! channel 0 = [-5, 4, 31, 40] and channel 1 = [-30, -21, 6, 15]. Through the ReLU and the
//! first row of the Linear layer, d y / d A is [0, 1, 1, 1] on channel 0 and [0, 0, -1, -1]
//! on channel 1; the spatial means are 0.75 and -0.5, so the map is
//! 0.75 * [-5, 4, 31, 40] - 0.5 * [-30, -21, 6, 15] = [11.25, 13.5, 20.25, 22.5].

mod common;

use burn::tensor::{Device, Tensor};
use common::toy::Toy;
use gradcam::cam::{Cam, GradCam, Targets};

fn toy_input(model: &Toy, device: &Device) -> Tensor<4> {
    let data: Vec<f32> = (0..16).map(|v| v as f32).collect();
    model.input(&data, device)
}

#[test]
fn captum_toy_model_raw_gradcam() {
    let device = Device::flex();
    let model = Toy::captum(&device);
    let cam = Cam::new(&model, &GradCam, &["conv"]).unwrap();
    let out = cam
        .run(toy_input(&model, &device), &Targets::class(0))
        .unwrap();
    let raw = &out.layers[0];
    assert_eq!((raw.height, raw.width), (2, 2));
    // Every intermediate is a small integer, or one times 0.75 or 0.5: exact in f32.
    assert_eq!(raw.maps[0], [11.25, 13.5, 20.25, 22.5]);
    // The score explained is the first logit: 0 + 4 + 31 + 40 - (0 + 0 + 6 + 15) = 54.
    assert_eq!(out.scores[0], 54.0);
    // Normalised to the 4x4 input: min-max of the raw map (over max - min + 1e-7, as
    // pytorch-grad-cam), then resized; the corners keep the extreme values 0 and 1.
    assert_eq!(out.maps[0].len(), 16);
    // The top corner is 11.25 / (11.25 + 1e-7) in f32: measured 0.9999999.
    assert_eq!(out.maps[0][0], 0.0);
    assert!((out.maps[0][15] - 1.0).abs() <= 2e-7, "{}", out.maps[0][15]);
}

#[test]
fn counterfactual_negates_the_gradients() {
    let device = Device::flex();
    let model = Toy::captum(&device);
    let options = gradcam::cam::CamOptions {
        counterfactual: true,
        ..Default::default()
    };
    let cam = Cam::new(&model, &GradCam, &["conv"])
        .unwrap()
        .with_options(options);
    let out = cam
        .run(toy_input(&model, &device), &Targets::class(0))
        .unwrap();
    assert_eq!(out.layers[0].maps[0], [-11.25, -13.5, -20.25, -22.5]);
    assert_eq!(out.scores[0], -54.0);
}

#[test]
fn class_out_of_range_is_an_error() {
    let device = Device::flex();
    let model = Toy::captum(&device);
    let cam = Cam::new(&model, &GradCam, &["conv"]).unwrap();
    let err = cam
        .run(toy_input(&model, &device), &Targets::class(4))
        .err()
        .unwrap();
    assert!(err.to_string().contains("class 4 is out of range"), "{err}");
}

#[test]
fn unknown_layer_lists_the_valid_ones() {
    let device = Device::flex();
    let model = Toy::captum(&device);
    let err = Cam::new(&model, &GradCam, &["conv9"])
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("unknown layer `conv9`") && err.contains("conv, relu"),
        "{err}"
    );
}
