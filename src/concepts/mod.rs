//! Deep Feature Factorization for one photo, as pytorch-grad-cam's DFF example shows it: the
//! concepts NMF finds at a layer, each with its map on the photo and its top classes from the
//! classifier. `gradcam explain --method deepfeaturefactorization`, `gradcam serve` and the
//! pictures of [`concept_pictures`] use it.

mod pictures;

pub use pictures::{ConceptPictures, concept_pictures, legend_text};

use std::sync::Arc;
use std::time::Instant;

use ::image::RgbImage;
use serde::Serialize;

use crate::cam::{self, Concepts};
use crate::error::{Error, Result};
use crate::explain::{Prediction, preprocess_with, top_k};
use crate::kernels;
use crate::model::CamModel;
use crate::request::invalid;
use crate::timefmt::ms;

/// Concepts per photo when none is asked for: 4, as in pytorch-grad-cam's DFF tutorial.
pub const DEFAULT_CONCEPTS: usize = 4;

/// The most concepts one photo may be split into (each costs a map, an overlay and NMF work).
pub const MAX_CONCEPTS: usize = 16;

/// Classes named per concept: 2, as the tutorial's `create_labels(top_k=2)`.
pub const TOP_CLASSES: usize = 2;

/// A model, a layer and a number of concepts, checked, ready to factorize photos.
pub struct ConceptExplainer {
    pub model: Arc<dyn CamModel>,
    /// The layer's name (the model's default when none was given).
    pub layer: String,
    /// Number of concepts.
    pub k: usize,
}

/// One concept of a photo.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Concept {
    /// 1 for the first concept (the number shown on the pictures).
    pub index: usize,
    /// Its top classes as the pictures show them: `tabby 0.62, tiger cat 0.21`.
    pub label: String,
    /// Its top classes: `logit` is the classifier's output for the concept vector,
    /// `probability` its softmax over the classes (the tutorial's `concept_outputs`).
    pub classes: Vec<Prediction>,
    /// Its map at network input resolution, row-major, min-max scaled.
    #[serde(skip)]
    pub map: Vec<f32>,
}

/// Everything DFF finds out about one photo.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ConceptExplanation {
    pub model: String,
    pub method: &'static str,
    pub layer: String,
    /// Original image (width, height).
    pub image_size: (u32, u32),
    /// Network input (height, width): the size of each concept's map.
    pub input_size: (usize, usize),
    /// The photo's five best classes.
    pub top5: Vec<Prediction>,
    pub concepts: Vec<Concept>,
    /// NMF iterations run.
    pub iterations: usize,
    /// Milliseconds for the forward pass, the factorization and the concepts' scores.
    pub factorize_ms: f64,
}

impl ConceptExplainer {
    /// Checks `k` (1 to [`MAX_CONCEPTS`]) and the layer (default: the model's), which must be
    /// followed by global average pooling and one linear layer: the classifier that names the
    /// concepts (pytorch-grad-cam's `computation_on_concepts`, found in ONNX graphs as `cam`
    /// finds it).
    pub fn new(model: Arc<dyn CamModel>, layer: Option<&str>, k: usize) -> Result<Self> {
        if !(1..=MAX_CONCEPTS).contains(&k) {
            return Err(invalid(
                "concepts",
                format!("must be in 1..={MAX_CONCEPTS}, got {k}"),
            ));
        }
        let layer = layer.unwrap_or(model.default_layer()).to_string();
        let index = model.layer_index(&layer)?;
        let name = model.layers()[index].name.clone();
        if model.linear_classifier(index).is_none() {
            return Err(Error::Invalid(format!(
                "deepfeaturefactorization names its concepts with the classifier, so it needs a \
                 model whose head is global average pooling then one linear layer, explained at \
                 the layer just before the pooling: {} after `{name}` is not",
                model.name()
            )));
        }
        Ok(ConceptExplainer {
            model,
            layer: name,
            k,
        })
    }

    /// The concepts of one photo (the photo alone is factorized, as the tutorial does).
    pub fn explain(&self, image: &RgbImage) -> Result<ConceptExplanation> {
        let p = self.model.preprocess();
        let input = p.tensor(preprocess_with(&p, image));
        let start = Instant::now();
        let found = kernels::on_worker(|| {
            cam::deep_feature_factorization(self.model.as_ref(), input, &self.layer, self.k)
        })?;
        let factorize_ms = ms(start);
        let names = self.model.class_names();
        let Concepts {
            maps,
            scores,
            logits,
            iterations,
            ..
        } = found;
        let concepts = maps
            .into_iter()
            .next()
            .unwrap_or_default()
            .into_iter()
            .zip(&scores)
            .enumerate()
            .map(|(i, (map, scores))| {
                let classes = top_k(scores, TOP_CLASSES, names);
                Concept {
                    index: i + 1,
                    label: label(&classes),
                    classes,
                    map,
                }
            })
            .collect();
        Ok(ConceptExplanation {
            model: self.model.name().to_string(),
            method: "deepfeaturefactorization",
            layer: self.layer.clone(),
            image_size: image.dimensions(),
            input_size: p.size,
            top5: logits.first().map_or_else(Vec::new, |l| top_k(l, 5, names)),
            concepts,
            iterations,
            factorize_ms,
        })
    }
}

/// `tabby 0.62, tiger cat 0.21`: the tutorial's `create_labels` on one line.
pub fn label(classes: &[Prediction]) -> String {
    classes
        .iter()
        .map(|p| format!("{} {:.2}", p.label, p.probability))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_read_as_the_tutorials() {
        let p = |label: &str, probability| Prediction {
            class: 0,
            label: label.into(),
            logit: 0.0,
            probability,
        };
        assert_eq!(
            label(&[p("tabby", 0.6249), p("tiger cat", 0.2051)]),
            "tabby 0.62, tiger cat 0.21"
        );
        assert_eq!(label(&[]), "");
    }
}
