//! One loaded model behind an `Arc`, usable where the library wants a `Box<dyn CamModel>`
//! ([`Explainer::new`](crate::explain::Explainer::new)), so that every request shares the
//! weights instead of loading or copying them.

use std::ops::Range;
use std::sync::Arc;

use burn::tensor::Tensor;

use crate::error::Result;
use crate::model::{CamModel, Layer, Preprocess};

/// Delegates every method, the provided ones included, to the shared model.
pub(crate) struct Shared(pub Arc<dyn CamModel>);

impl CamModel for Shared {
    fn name(&self) -> &str {
        self.0.name()
    }
    fn layers(&self) -> &[Layer] {
        self.0.layers()
    }
    fn default_layer(&self) -> &str {
        self.0.default_layer()
    }
    fn preprocess(&self) -> Preprocess {
        self.0.preprocess()
    }
    fn num_classes(&self) -> usize {
        self.0.num_classes()
    }
    fn forward_stages(&self, x: Tensor<4>, range: Range<usize>) -> Tensor<4> {
        self.0.forward_stages(x, range)
    }
    fn classify(&self, features: Tensor<4>) -> Tensor<2> {
        self.0.classify(features)
    }
    fn alias(&self, name: &str) -> Option<&str> {
        self.0.alias(name)
    }
    fn layer_index(&self, name: &str) -> Result<usize> {
        self.0.layer_index(name)
    }
    fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        self.0.forward(x)
    }
    fn forward_to(&self, x: Tensor<4>, layer: usize) -> Tensor<4> {
        self.0.forward_to(x, layer)
    }
    fn forward_from(&self, activations: Tensor<4>, layer: usize) -> Tensor<2> {
        self.0.forward_from(activations, layer)
    }
}
