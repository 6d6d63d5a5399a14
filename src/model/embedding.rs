//! A model read at one of its layers: that layer's output averaged over space is the output,
//! an embedding to compare images by (`gradcam explain --similar-to IMAGE --embedding LAYER`).
//!
//! It is a [`CamModel`] of its own, whose "classes" are the embedding's channels, so every
//! method and target runs on it unchanged: the maps explain what the target makes of the
//! embedding instead of the logits.

use std::sync::Arc;

use burn::tensor::Tensor;

use super::{CamModel, Cut, CutContext, Forward, Layer, Preprocess};
use crate::error::{Error, Result};

/// `model` up to layer `until`, average-pooled (see the module doc).
pub struct PooledEmbedding {
    model: Arc<dyn CamModel>,
    until: usize,
    /// The layers the model can still be cut at: those up to `until`.
    layers: Vec<Layer>,
    default_layer: String,
}

impl PooledEmbedding {
    /// `model` read at its layer `layer` (a name or alias).
    pub fn new(model: Arc<dyn CamModel>, layer: &str) -> Result<Self> {
        let until = model.layer_index(layer)?;
        let layers = model.layers()[..=until].to_vec();
        let default_layer = match model.layer_index(model.default_layer()) {
            Ok(i) if i <= until => model.default_layer().to_string(),
            _ => layers[until].name.clone(),
        };
        Ok(PooledEmbedding {
            model,
            until,
            layers,
            default_layer,
        })
    }

    /// The layer whose pooled output is the embedding.
    pub fn layer(&self) -> &str {
        &self.layers[self.until].name
    }
}

fn pooled(activations: Tensor<4>) -> Tensor<2> {
    activations.mean_dims(&[2, 3]).flatten(1, 3)
}

impl Forward for PooledEmbedding {
    fn forward(&self, x: Tensor<4>) -> Result<Tensor<2>> {
        Ok(pooled(self.model.forward_to(x, self.until)?.activations))
    }

    fn forward_to(&self, x: Tensor<4>, layer: usize) -> Result<Cut> {
        self.model.forward_to(x, layer)
    }

    fn forward_from(
        &self,
        activations: Tensor<4>,
        context: &CutContext,
        _rows: Option<&[usize]>,
    ) -> Result<Tensor<2>> {
        match context.layer() {
            l if l == self.until => Ok(pooled(activations)),
            l if l < self.until => self.model.forward_pooled(activations, context, self.until),
            _ => Err(Error::Invalid(format!(
                "cannot explain a layer after the embedding's ({})",
                self.layer()
            ))),
        }
    }
}

impl CamModel for PooledEmbedding {
    fn name(&self) -> &str {
        self.model.name()
    }
    fn layers(&self) -> &[Layer] {
        &self.layers
    }
    fn default_layer(&self) -> &str {
        &self.default_layer
    }
    fn default_batch_size(&self) -> usize {
        self.model.default_batch_size()
    }
    fn preprocess(&self) -> Preprocess {
        self.model.preprocess()
    }
    /// The embedding's width.
    fn num_classes(&self) -> usize {
        self.layers[self.until].channels
    }
    fn alias(&self, name: &str) -> Option<&str> {
        self.model.alias(name)
    }
    fn suggest(&self, _name: &str) -> Vec<String> {
        self.layers.iter().map(|l| l.name.clone()).collect()
    }
}
