//! What a user asks an explanation for, checked once: the one set of rules and error messages
//! behind `gradcam explain`'s flags, `gradcam serve`'s parameters and the library.
//!
//! A [`RequestSpec`] holds the choices as given (names and numbers); [`RequestSpec::check`]
//! turns it into an [`ExplainRequest`] or says what is wrong, naming the option both as the
//! server's parameter and as the command-line flag.

use std::sync::Arc;

use ::image::{GrayImage, RgbImage};

use crate::cam::{CamOptions, ClassTarget, MethodInfo, method_info};
use crate::error::{Error, Result};
use crate::labels::ClassNames;
use crate::localize::PAPER_THRESHOLD;
use crate::model::CamModel;

/// Which classes to explain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Classes {
    /// The `k` highest-scoring classes of each image (1: pytorch-grad-cam's default).
    Top(usize),
    /// These classes, for every image.
    These(Vec<usize>),
}

/// An explanation request as the user gave it, before any check. `None` and empty mean the
/// defaults: Grad-CAM, the model's default layer, the top-1 class, image weight 0.5, the
/// paper's box threshold (0.15), the box drawn, the class's logit explained.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RequestSpec {
    pub method: Option<String>,
    pub layers: Vec<String>,
    /// What explains a class: `logit`, `softmax` or `binary` (see [`ClassTarget`]).
    pub target: Option<String>,
    /// Explain the cosine similarity of each image's embedding to this image's instead of a
    /// class (pytorch-grad-cam's `SimilarityToConceptTarget`).
    pub similar_to: Option<Arc<RgbImage>>,
    /// The layer whose average-pooled output is the embedding (default: the model's output).
    pub embedding: Option<String>,
    /// For a segmentation model: the pixels whose class logits are summed (light pixels, at
    /// any size: resized to the output's). Default: the pixels the model assigns to the class.
    pub mask: Option<Arc<GrayImage>>,
    /// Class indices or ImageNet names.
    pub classes: Vec<String>,
    pub top_k: Option<usize>,
    pub counterfactual: bool,
    pub eigen_smooth: bool,
    pub aug_smooth: bool,
    pub image_weight: Option<f32>,
    pub box_threshold: Option<f32>,
    pub draw_box: Option<bool>,
}

/// A checked request: everything that decides an explanation except the model and the image.
#[derive(Debug, Clone, PartialEq)]
pub struct ExplainRequest {
    pub method: &'static MethodInfo,
    /// Layer names as given (empty: the model's default layer); checked against a model by
    /// [`crate::explain::Explainer::from_request`].
    pub layers: Vec<String>,
    pub classes: Classes,
    /// Which function of the output explains each class.
    pub target: ClassTarget,
    /// Explain the similarity to an image instead of classes.
    pub similar_to: Option<Similarity>,
    /// A segmentation model's mask (see [`RequestSpec::mask`]); checked against the model by
    /// [`crate::explain::Explainer::from_request`].
    pub mask: Option<Arc<GrayImage>>,
    pub options: CamOptions,
    /// Weight of the photo in the overlay, in [0, 1].
    pub image_weight: f32,
    /// Fraction of the map's maximum that delimits the localization segment, in [0, 1].
    pub box_threshold: f32,
    /// Draw the box on the overlay.
    pub draw_box: bool,
}

impl Default for ExplainRequest {
    fn default() -> Self {
        RequestSpec::default()
            .check(1000, 1)
            .expect("the defaults are valid")
    }
}

/// The reference of a similarity explanation.
#[derive(Debug, Clone, PartialEq)]
pub struct Similarity {
    /// The image whose embedding the explained images are compared with.
    pub image: Arc<RgbImage>,
    /// The layer whose average-pooled output is the embedding (`None`: the model's output).
    pub embedding: Option<String>,
}

/// An option's error, naming it as the server's parameter and the command-line flag.
pub(crate) fn invalid(param: &str, message: impl std::fmt::Display) -> Error {
    Error::Invalid(format!(
        "`{param}` (--{}) {message}",
        param.replace('_', "-")
    ))
}

/// A fraction in [0, 1], or `default`.
fn fraction(param: &str, value: Option<f32>, default: f32) -> Result<f32> {
    match value {
        None => Ok(default),
        Some(v) if (0.0..=1.0).contains(&v) => Ok(v),
        Some(v) => Err(invalid(param, format!("must be in [0, 1], got {v}"))),
    }
}

impl ExplainRequest {
    /// Fails, listing the valid ones, when a layer is not one of `model`'s.
    pub fn check_layers(&self, model: &dyn CamModel) -> Result<()> {
        self.layers
            .iter()
            .try_for_each(|l| model.layer_index(l).map(drop))
    }
}

impl RequestSpec {
    /// The similarity asked for, if any: it replaces the classes and their target.
    fn similarity(&self) -> Result<Option<Similarity>> {
        let Some(image) = &self.similar_to else {
            return match self.embedding {
                Some(_) => Err(invalid(
                    "embedding",
                    "chooses the embedding compared with `similar_to` (--similar-to): give that too",
                )),
                None => Ok(None),
            };
        };
        if !self.classes.is_empty() || self.top_k.is_some() || self.target.is_some() {
            return Err(invalid(
                "similar_to",
                "explains the similarity to an image, not a class: leave out `class`, `top_k` and `target`",
            ));
        }
        if self
            .embedding
            .as_deref()
            .is_some_and(|e| e.trim().is_empty())
        {
            return Err(invalid(
                "embedding",
                "is empty: name a layer (see `gradcam models`)",
            ));
        }
        Ok(Some(Similarity {
            image: image.clone(),
            embedding: self.embedding.as_ref().map(|e| e.trim().to_string()),
        }))
    }

    /// Checks every choice for a model with these classes (a count, or a model's
    /// [`ClassNames`]), allowing at most `max_maps` classes per image (`--top-k` or `--class`
    /// given that many times).
    ///
    /// ```
    /// use gradcam::request::{Classes, RequestSpec};
    ///
    /// let spec = RequestSpec { classes: vec!["tabby".into()], ..Default::default() };
    /// assert_eq!(spec.check(1000, 10).unwrap().classes, Classes::These(vec![281]));
    ///
    /// let too_many = RequestSpec { top_k: Some(5000), ..Default::default() };
    /// let err = too_many.check(1000, 1000).unwrap_err().to_string();
    /// assert!(err.contains("`top_k` (--top-k) must be in 1..=1000, got 5000"), "{err}");
    /// ```
    pub fn check<'a>(
        &self,
        classes: impl Into<ClassNames<'a>>,
        max_maps: usize,
    ) -> Result<ExplainRequest> {
        let names: ClassNames = classes.into();
        let similar_to = self.similarity()?;
        let target = match &self.target {
            None => ClassTarget::default(),
            Some(name) => ClassTarget::parse(name).map_err(|_| {
                invalid(
                    "target",
                    format!(
                        "must be one of {}, got `{}`",
                        ClassTarget::NAMES.join(", "),
                        name.trim()
                    ),
                )
            })?,
        };
        if target == ClassTarget::Binary && names.count() != 1 {
            return Err(invalid(
                "target",
                format!(
                    "binary needs a model with one output (a (B, 1) logit); this one has {}",
                    names.count()
                ),
            ));
        }
        // A binary model's one logit is two classes, 0 and 1, by index.
        let names = match target {
            ClassTarget::Binary => ClassNames::from(2),
            _ => names,
        };
        let num_classes = names.count();
        let method = method_info(self.method.as_deref().unwrap_or("gradcam"))?;
        if self.layers.iter().any(|l| l.trim().is_empty()) {
            return Err(invalid(
                "layer",
                "is empty: name a layer (see `gradcam models`)",
            ));
        }
        let max_maps = max_maps.min(num_classes).max(1);
        let classes = match (self.classes.is_empty(), self.top_k) {
            (false, Some(_)) => {
                return Err(Error::Invalid(
                    "give either `class` (--class) or `top_k` (--top-k), not both".into(),
                ));
            }
            (true, None) => Classes::Top(1),
            (true, Some(k)) if (1..=max_maps).contains(&k) => Classes::Top(k),
            (true, Some(k)) => {
                return Err(invalid(
                    "top_k",
                    format!("must be in 1..={max_maps}, got {k}"),
                ));
            }
            (false, None) if self.classes.len() > max_maps => {
                return Err(invalid(
                    "class",
                    format!("is given {} times; at most {max_maps}", self.classes.len()),
                ));
            }
            (false, None) => Classes::These(
                self.classes
                    .iter()
                    .map(|c| names.class(c))
                    .collect::<Result<_>>()?,
            ),
        };
        Ok(ExplainRequest {
            method,
            layers: self.layers.iter().map(|l| l.trim().to_string()).collect(),
            classes,
            target,
            similar_to,
            mask: self.mask.clone(),
            options: CamOptions {
                counterfactual: self.counterfactual,
                eigen_smooth: self.eigen_smooth,
                aug_smooth: self.aug_smooth,
            },
            image_weight: fraction("image_weight", self.image_weight, 0.5)?,
            box_threshold: fraction("box_threshold", self.box_threshold, PAPER_THRESHOLD)?,
            draw_box: self.draw_box.unwrap_or(true),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(spec: RequestSpec) -> Result<ExplainRequest> {
        spec.check(1000, 10)
    }

    fn message(spec: RequestSpec) -> String {
        check(spec).unwrap_err().to_string()
    }

    #[test]
    fn defaults_are_pytorch_grad_cams() {
        let r = check(RequestSpec::default()).unwrap();
        assert_eq!(r.method.name, "gradcam");
        assert_eq!(r.classes, Classes::Top(1));
        assert_eq!(
            (r.image_weight, r.box_threshold, r.draw_box),
            (0.5, 0.15, true)
        );
        assert_eq!(r.options, CamOptions::default());
        assert!(r.layers.is_empty());
    }

    #[test]
    fn methods_resolve_by_alias_and_unknown_ones_list_the_valid() {
        let spec = |m: &str| RequestSpec {
            method: Some(m.into()),
            ..Default::default()
        };
        assert_eq!(
            check(spec("GradCAMPlusPlus")).unwrap().method.name,
            "gradcam++"
        );
        let err = message(spec("magic"));
        assert!(err.contains("unknown method `magic`") && err.contains("guided-backprop"));
    }

    #[test]
    fn each_range_has_one_message() {
        let err = message(RequestSpec {
            image_weight: Some(1.5),
            ..Default::default()
        });
        assert_eq!(
            err,
            "`image_weight` (--image-weight) must be in [0, 1], got 1.5"
        );
        let err = message(RequestSpec {
            box_threshold: Some(-0.1),
            ..Default::default()
        });
        assert_eq!(
            err,
            "`box_threshold` (--box-threshold) must be in [0, 1], got -0.1"
        );
        let err = message(RequestSpec {
            top_k: Some(0),
            ..Default::default()
        });
        assert_eq!(err, "`top_k` (--top-k) must be in 1..=10, got 0");
        let err = message(RequestSpec {
            classes: vec!["1".into(); 11],
            ..Default::default()
        });
        assert_eq!(err, "`class` (--class) is given 11 times; at most 10");
        let err = message(RequestSpec {
            layers: vec![" ".into()],
            ..Default::default()
        });
        assert!(err.starts_with("`layer` (--layer) is empty"), "{err}");
    }

    #[test]
    fn targets_resolve_by_name_and_binary_needs_one_output() {
        let spec = |t: &str| RequestSpec {
            target: Some(t.into()),
            ..Default::default()
        };
        assert_eq!(check(spec("softmax")).unwrap().target, ClassTarget::Softmax);
        assert_eq!(
            check(spec("ClassifierOutputTarget")).unwrap().target,
            ClassTarget::Logit
        );
        assert_eq!(
            message(spec("probability")),
            "`target` (--target) must be one of logit, softmax, binary, got `probability`"
        );
        assert_eq!(
            message(spec("binary")),
            "`target` (--target) binary needs a model with one output (a (B, 1) logit); this one has 1000"
        );
        let binary = |classes: &[&str], top_k| RequestSpec {
            classes: classes.iter().map(|c| c.to_string()).collect(),
            top_k,
            ..spec("BinaryClassifierOutputTarget")
        };
        let r = binary(&["0", "1"], None).check(1, 10).unwrap();
        assert_eq!(
            (r.target, r.classes),
            (ClassTarget::Binary, Classes::These(vec![0, 1]))
        );
        assert_eq!(
            binary(&[], Some(2)).check(1, 10).unwrap().classes,
            Classes::Top(2)
        );
        let err = binary(&["2"], None).check(1, 10).unwrap_err().to_string();
        assert!(err.contains("class 2 is out of range"), "{err}");
        // Without `binary`, a one-output model has the one class 0 (pytorch-grad-cam's argmax).
        let err = RequestSpec {
            classes: vec!["1".into()],
            ..Default::default()
        }
        .check(1, 10)
        .unwrap_err()
        .to_string();
        assert!(err.contains("class 1 is out of range"), "{err}");
    }

    #[test]
    fn similarity_replaces_the_classes_and_needs_its_image() {
        let image = Arc::new(RgbImage::new(4, 4));
        let similar = RequestSpec {
            similar_to: Some(image.clone()),
            embedding: Some(" layer4 ".into()),
            ..Default::default()
        };
        let r = check(similar.clone()).unwrap();
        assert_eq!(
            r.similar_to,
            Some(Similarity {
                image,
                embedding: Some("layer4".into())
            })
        );
        let err = message(RequestSpec {
            classes: vec!["3".into()],
            ..similar.clone()
        });
        assert!(
            err.starts_with("`similar_to` (--similar-to) explains the similarity"),
            "{err}"
        );
        let err = message(RequestSpec {
            target: Some("softmax".into()),
            ..similar.clone()
        });
        assert!(
            err.contains("leave out `class`, `top_k` and `target`"),
            "{err}"
        );
        let err = message(RequestSpec {
            embedding: Some("layer4".into()),
            ..Default::default()
        });
        assert!(
            err.starts_with("`embedding` (--embedding) chooses the embedding"),
            "{err}"
        );
        let err = message(RequestSpec {
            embedding: Some("".into()),
            ..similar
        });
        assert!(
            err.starts_with("`embedding` (--embedding) is empty"),
            "{err}"
        );
    }

    #[test]
    fn top_k_is_bounded_by_the_classes_of_the_model() {
        let spec = RequestSpec {
            top_k: Some(6),
            ..Default::default()
        };
        let err = spec.check(5, 1000).unwrap_err().to_string();
        assert_eq!(err, "`top_k` (--top-k) must be in 1..=5, got 6");
        assert_eq!(spec.check(6, 1000).unwrap().classes, Classes::Top(6));
    }

    #[test]
    fn classes_and_top_k_exclude_each_other_and_classes_are_checked() {
        let err = message(RequestSpec {
            classes: vec!["3".into()],
            top_k: Some(2),
            ..Default::default()
        });
        assert!(err.contains("either `class` (--class) or `top_k`"), "{err}");
        let err = message(RequestSpec {
            classes: vec!["1000".into()],
            ..Default::default()
        });
        assert!(err.contains("class 1000 is out of range"), "{err}");
    }
}
