//! `POST /v1/explain?method=deepfeaturefactorization`: the photo's concepts, each with its label,
//! top classes and overlay, and the picture of all of them, instead of a map per class.

use ::image::RgbImage;
use serde::Serialize;

use super::error::ApiError;
use crate::concepts::{ConceptExplainer, ConceptExplanation, DEFAULT_CONCEPTS, concept_pictures};
use crate::explain::Prediction;
use crate::model::CamModel;
use crate::request::ExplainRequest;

/// The options that ask for a map per class, by their parameter names, which DFF refuses.
pub(super) fn refuse_map_options(spec: &crate::request::RequestSpec) -> Result<(), ApiError> {
    let given: Vec<&str> = [
        (!spec.classes.is_empty(), "class"),
        (spec.top_k.is_some(), "top_k"),
        (spec.target.is_some(), "target"),
        (spec.similar_to.is_some(), "similar_to"),
        (spec.mask.is_some(), "mask"),
        (spec.counterfactual, "counterfactual"),
        (spec.eigen_smooth, "eigen_smooth"),
        (spec.aug_smooth, "aug_smooth"),
        (spec.layers.len() > 1, "a second layer"),
    ]
    .into_iter()
    .filter_map(|(on, name)| on.then_some(name))
    .collect();
    if given.is_empty() {
        return Ok(());
    }
    Err(ApiError::BadRequest(format!(
        "deepfeaturefactorization finds the concepts of the image, not a map per class: leave out \
         {} (it takes `concepts`, one `layer`, `image_weight`, `overlay` and `map`)",
        given.join(", ")
    )))
}

/// One concept as the answer carries it.
#[derive(Debug, Serialize)]
pub(super) struct ConceptOut {
    /// 1 for the first.
    index: usize,
    /// `tabby 0.62, tiger cat 0.21`.
    label: String,
    /// Its two best classes: the classifier's logit for the concept and its softmax.
    classes: Vec<Prediction>,
    /// Its map's overlay on the photo with its legend (PNG, base64).
    #[serde(skip_serializing_if = "Option::is_none")]
    overlay_png: Option<super::handlers::Base64>,
    /// Its map at network input size, row-major, when `map=json`.
    #[serde(skip_serializing_if = "Option::is_none")]
    map: Option<Vec<f32>>,
}

/// What the answer adds for DFF.
pub(super) struct ConceptAnswer {
    pub explanation: ConceptExplanation,
    pub concepts: Vec<ConceptOut>,
    /// Every concept in its colour, with the legend (PNG, base64).
    pub combined_png: Option<super::handlers::Base64>,
}

/// Factorizes `image` into `k` concepts (default 4) at the request's layer, with the pictures
/// when `overlay` and the maps when `map_json`.
pub(super) fn run(
    model: std::sync::Arc<dyn CamModel>,
    request: &ExplainRequest,
    k: Option<usize>,
    image: &RgbImage,
    overlay: bool,
    map_json: bool,
) -> Result<ConceptAnswer, ApiError> {
    let explainer = ConceptExplainer::new(
        model,
        request.layers.first().map(String::as_str),
        k.unwrap_or(DEFAULT_CONCEPTS),
    )?;
    let explanation = explainer.explain(image)?;
    let pictures = if overlay {
        Some(concept_pictures(image, &explanation, request.image_weight)?)
    } else {
        None
    };
    let mut concepts = Vec::with_capacity(explanation.concepts.len());
    for (i, c) in explanation.concepts.iter().enumerate() {
        concepts.push(ConceptOut {
            index: c.index,
            label: c.label.clone(),
            classes: c.classes.clone(),
            overlay_png: match &pictures {
                Some(p) => Some(super::handlers::Base64(super::handlers::png(
                    &p.concepts[i],
                )?)),
                None => None,
            },
            map: map_json.then(|| c.map.clone()),
        });
    }
    let combined_png = match &pictures {
        Some(p) => Some(super::handlers::Base64(super::handlers::png(&p.combined)?)),
        None => None,
    };
    Ok(ConceptAnswer {
        explanation,
        concepts,
        combined_png,
    })
}
