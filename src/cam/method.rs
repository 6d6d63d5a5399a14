//! What a CAM method is: a rule that turns a layer's activations (and, for most, the gradients
//! of the target score) into a map. The runner in [`super`] does everything else.

use std::sync::Arc;

use burn::tensor::Tensor;

use super::Target;
use crate::error::{Error, Result};
use crate::model::{CamModel, CutContext};

/// Everything a method may look at for one layer and one set of targets.
pub struct CamInput<'a> {
    /// The layer's output `A`, `[batch, channels, h, w]`, without autodiff.
    pub activations: Tensor<4>,
    /// `d score / d A`, present when the method [uses gradients](Method::uses_gradients).
    pub gradients: Option<Tensor<4>>,
    /// The model, for methods that re-run its head (Ablation-CAM) or all of it (Score-CAM).
    pub model: &'a dyn CamModel,
    /// The cut the activations come from (its layer and what the head needs besides them).
    pub context: &'a CutContext,
    /// The network input, `[batch, 3, H, W]`.
    pub input: &'a Tensor<4>,
    /// One target per image, counterfactual negation already applied.
    pub targets: &'a [Arc<dyn Target>],
    /// Checked between the passes of the methods that make many (Score-CAM, Ablation-CAM).
    pub cancel: &'a super::Cancel,
}

impl CamInput<'_> {
    /// The gradients, or an error for a method that forgot to ask for them.
    pub fn gradients(&self) -> Result<Tensor<4>> {
        self.gradients
            .clone()
            .ok_or_else(|| Error::Invalid("this method needs gradients".to_string()))
    }

    /// The model's logits from modified `activations` of this layer, row `i` belonging to
    /// image `rows[i]` (`None`: to image `i`).
    pub fn head(&self, activations: Tensor<4>, rows: Option<&[usize]>) -> Result<Tensor<2>> {
        self.model.forward_from(activations, self.context, rows)
    }

    /// The target scores of each image for a batch of model outputs `[n, classes]`, where
    /// output row `i` belongs to image `image_of(i)`: shape `[n]`.
    pub fn scores(&self, outputs: Tensor<2>, image_of: impl Fn(usize) -> usize) -> Tensor<1> {
        super::batch_scores(self.targets, outputs, image_of)
    }
}

/// A CAM method: how one layer's activations become a map.
///
/// Most methods only weigh channels; they implement [`ChannelWeights`] and get this trait
/// from it. Methods that build the map another way (LayerCAM, HiResCAM) implement it directly.
pub trait Method: Send + Sync {
    /// The name used on the command line, as pytorch-grad-cam's class names in lower case.
    fn name(&self) -> &'static str;
    /// Whether the runner must compute `d score / d A` (one head backward per target set).
    fn uses_gradients(&self) -> bool {
        true
    }
    /// Whether the method finds concepts shared by the images instead of a map per target
    /// (Deep Feature Factorization): the map pipeline refuses it, and the CLI, the server and
    /// Python run [`super::deep_feature_factorization`] instead.
    fn finds_concepts(&self) -> bool {
        false
    }
    /// The raw, signed map `[batch, h, w]` at the layer's resolution. With `eigen_smooth`,
    /// the first principal component of the weighted activations replaces their channel sum.
    fn raw_map(&self, cam: &CamInput, eigen_smooth: bool) -> Result<Tensor<3>>;
    /// One image's final map from its per-layer maps, each already scaled to [0, 1] and
    /// resized to the input (default: pytorch-grad-cam's `aggregate_multi_layers`, the mean).
    fn fuse(&self, layers: &[&[f32]]) -> Vec<f32> {
        super::fuse_layers(layers.iter().copied())
    }
    /// The layers explained when the caller names none, for a method with its own choice
    /// (LeGrad: the last transformer blocks); `None` (the default): the model's default layer.
    fn default_layers(&self, _model: &dyn CamModel) -> Option<Result<Vec<String>>> {
        None
    }
    /// Whether the method can explain `layers` (names; none: its default) of `model`, checked
    /// before any image is read (default: every layer of every model can be).
    fn check(&self, _model: &dyn CamModel, _layers: &[String]) -> Result<()> {
        Ok(())
    }
    /// For a meta-method that runs the whole pipeline its own way (SESS, on windows of the
    /// input): the outputs for `sets`; `None` (the default) lets `runner` do it.
    fn run_whole(
        &self,
        _runner: &super::Cam,
        _input: Tensor<4>,
        _sets: &[super::Targets],
    ) -> Option<Result<Vec<super::CamOutput>>> {
        None
    }
}

/// A method that weighs the activation channels: `map = sum_k w_k A_k`.
pub trait ChannelWeights: Send + Sync {
    /// See [`Method::name`].
    fn name(&self) -> &'static str;
    /// See [`Method::uses_gradients`].
    fn uses_gradients(&self) -> bool {
        true
    }
    /// One weight per image and channel, `[batch, channels]`.
    fn weights(&self, cam: &CamInput) -> Result<Tensor<2>>;
}

impl<T: ChannelWeights> Method for T {
    fn name(&self) -> &'static str {
        ChannelWeights::name(self)
    }

    fn uses_gradients(&self) -> bool {
        ChannelWeights::uses_gradients(self)
    }

    fn raw_map(&self, cam: &CamInput, eigen_smooth: bool) -> Result<Tensor<3>> {
        let weights = self.weights(cam)?;
        let weighted = cam.activations.clone() * weights.unsqueeze_dims::<4>(&[2, 3]);
        Ok(channel_sum_or_projection(weighted, eigen_smooth))
    }
}

/// The sum over channels `[batch, h, w]`, or with `eigen_smooth` the projection on the first
/// principal component (see [`super::eigen::first_component`]).
pub fn channel_sum_or_projection(x: Tensor<4>, eigen_smooth: bool) -> Tensor<3> {
    if eigen_smooth {
        super::eigen::first_component(x)
    } else {
        x.sum_dim(1).squeeze_dim::<3>(1)
    }
}
