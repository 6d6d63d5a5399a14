//! Grad-CAM values worked out by hand, on a model small enough to follow with a pencil.
//!
//! captum's toy model: Conv2d 1->2 (3x3, weights 1, bias [-50, -75]), ReLU, Linear 8->4
//! with weights [ones(4, 5) | -ones(4, 3)] and bias 0; input arange(16) as 1x1x4x4; target 0;
//! layer: the convolution's output.
//!
//! The 3x3 window sums of arange(16) are [45, 54, 81, 90], so the convolution gives
//! channel 0 = [-5, 4, 31, 40] and channel 1 = [-30, -21, 6, 15]. Through the ReLU and the
//! first row of the Linear layer, d y / d A is [0, 1, 1, 1] on channel 0 and [0, 0, -1, -1]
//! on channel 1; the spatial means are 0.75 and -0.5, so the map is
//! 0.75 * [-5, 4, 31, 40] - 0.5 * [-30, -21, 6, 15] = [11.25, 13.5, 20.25, 22.5].

use std::ops::Range;

use burn::module::{Module, Param};
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{Linear, LinearConfig};
use burn::tensor::activation::relu;
use burn::tensor::{Device, Tensor, TensorData};
use gradcam::cam::{Cam, GradCam, Targets};
use gradcam::model::{CamModel, Layer, Preprocess, Rounding};

#[derive(Module, Debug)]
struct Toy {
    conv1: Conv2d,
    fc: Linear,
    #[module(skip)]
    layers: Vec<Layer>,
}

impl Toy {
    fn new(device: &Device) -> Self {
        let mut conv1 = Conv2dConfig::new([1, 2], [3, 3]).init(device);
        conv1.weight = Param::from_tensor(Tensor::ones([2, 1, 3, 3], device));
        conv1.bias = Some(Param::from_tensor(Tensor::from_data(
            TensorData::new(vec![-50f32, -75.0], [2]),
            device,
        )));
        let mut fc = LinearConfig::new(8, 4).init(device);
        // burn stores Linear weights as [in, out]: inputs 0..5 add, 5..8 subtract.
        let w: Vec<f32> = (0..8)
            .flat_map(|i| [if i < 5 { 1.0 } else { -1.0 }; 4])
            .collect();
        fc.weight = Param::from_tensor(Tensor::from_data(TensorData::new(w, [8, 4]), device));
        fc.bias = Some(Param::from_tensor(Tensor::zeros([4], device)));
        Toy {
            conv1,
            fc,
            layers: vec![
                Layer::new("conv1", 2, 1, Rounding::Ceil),
                Layer::new("relu", 2, 1, Rounding::Ceil),
            ],
        }
    }
}

impl CamModel for Toy {
    fn name(&self) -> &str {
        "toy"
    }
    fn layers(&self) -> &[Layer] {
        &self.layers
    }
    fn default_layer(&self) -> &str {
        "conv1"
    }
    fn preprocess(&self) -> Preprocess {
        Preprocess {
            size: (4, 4),
            mean: [0.0; 3],
            std: [1.0; 3],
        }
    }
    fn num_classes(&self) -> usize {
        4
    }
    fn forward_stages(&self, mut x: Tensor<4>, range: Range<usize>) -> Tensor<4> {
        for stage in range {
            x = if stage == 0 {
                self.conv1.forward(x)
            } else {
                relu(x)
            };
        }
        x
    }
    fn classify(&self, features: Tensor<4>) -> Tensor<2> {
        self.fc.forward(features.flatten(1, 3))
    }
}

fn toy_input(device: &Device) -> Tensor<4> {
    let data: Vec<f32> = (0..16).map(|v| v as f32).collect();
    Tensor::from_data(TensorData::new(data, [1, 1, 4, 4]), device)
}

#[test]
fn captum_toy_model_raw_gradcam() {
    let device = Device::flex();
    let model = Toy::new(&device);
    let cam = Cam::new(&model, &GradCam, &["conv1"]).unwrap();
    let out = cam.run(toy_input(&device), &Targets::class(0)).unwrap();
    let raw = &out.layers[0];
    assert_eq!((raw.height, raw.width), (2, 2));
    let expected = [11.25, 13.5, 20.25, 22.5];
    for (got, want) in raw.maps[0].iter().zip(expected) {
        assert!(
            (got - want).abs() < 1e-5,
            "raw map {:?} != {expected:?}",
            raw.maps[0]
        );
    }
    // The score explained is the first logit: 0 + 4 + 31 + 40 - (0 + 0 + 6 + 15) = 54.
    assert!(
        (out.scores[0] - 54.0).abs() < 1e-4,
        "score {}",
        out.scores[0]
    );
    // Normalised to the 4x4 input: min-max of the raw map, then resized; the corners keep
    // the extreme values 0 and 1.
    assert_eq!(out.maps[0].len(), 16);
    assert!(out.maps[0][0].abs() < 1e-6 && (out.maps[0][15] - 1.0).abs() < 1e-6);
}

#[test]
fn counterfactual_negates_the_gradients() {
    let device = Device::flex();
    let model = Toy::new(&device);
    let options = gradcam::cam::CamOptions {
        counterfactual: true,
        ..Default::default()
    };
    let cam = Cam::new(&model, &GradCam, &["conv1"])
        .unwrap()
        .with_options(options);
    let out = cam.run(toy_input(&device), &Targets::class(0)).unwrap();
    for (got, want) in out.layers[0].maps[0]
        .iter()
        .zip([-11.25, -13.5, -20.25, -22.5])
    {
        assert!((got - want).abs() < 1e-5, "{:?}", out.layers[0].maps[0]);
    }
    assert!((out.scores[0] + 54.0).abs() < 1e-4);
}

#[test]
fn class_out_of_range_is_an_error() {
    let device = Device::flex();
    let model = Toy::new(&device);
    let cam = Cam::new(&model, &GradCam, &["conv1"]).unwrap();
    let err = cam
        .run(toy_input(&device), &Targets::class(4))
        .err()
        .unwrap();
    assert!(err.to_string().contains("class 4 is out of range"), "{err}");
}

#[test]
fn unknown_layer_lists_the_valid_ones() {
    let device = Device::flex();
    let model = Toy::new(&device);
    let err = Cam::new(&model, &GradCam, &["conv9"])
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("unknown layer `conv9`") && err.contains("conv1, relu"),
        "{err}"
    );
}
