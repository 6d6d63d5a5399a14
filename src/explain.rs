//! The whole job for images: preprocess, run a CAM method, rank the classes, map each
//! explanation back onto the original image and find its box. [`crate::batch`] writes the
//! outputs.

use std::sync::Arc;
use std::time::Instant;

use ::image::RgbImage;
use ::image::imageops::FilterType;
use serde::Serialize;

use crate::cam::{
    self, Cam, CamOptions, Cancel, ClassTarget, CosineSimilarity, InputGradient, LayerMap, Method,
    MethodInfo, SemanticSegmentation, Target, Targets, Timings,
};
use crate::error::Result;
use crate::image::{MapResizer, Region, resize_bilinear, to_input};
use crate::kernels;
use crate::labels::ClassNames;
use crate::localize::{BBox, localize_rows};
use crate::model::{CamModel, PooledEmbedding, Preprocess};
pub use crate::request::Classes;
use crate::request::{ExplainRequest, RequestSpec, invalid};
use crate::timefmt::ms;

/// A model with a method and its layers, ready to explain images.
pub struct Explainer {
    /// Shared, so that many explainers (one per request of `gradcam serve`) use one copy of
    /// the weights.
    pub model: Arc<dyn CamModel>,
    /// The method's row in [`cam::METHODS`].
    pub method: &'static MethodInfo,
    /// Layer names as the user gave them (empty: the model's default layer).
    pub layers: Vec<String>,
    /// Which function of the output explains each class.
    pub target: ClassTarget,
    /// The cosine similarity to a reference embedding, explained instead of the classes
    /// (`--similar-to`); the model then outputs the embedding.
    pub similarity: Option<Arc<dyn Target>>,
    /// For a segmentation model: its output's shape and the mask.
    pub segmentation: Option<Segmentation>,
    pub options: CamOptions,
    /// Fraction of the map's maximum that delimits the localization segment.
    pub box_threshold: f32,
    /// Set to stop the explanation between passes (`gradcam serve` sets it on a timeout).
    pub cancel: Cancel,
    /// The map-making rule (Grad-CAM for the guided methods).
    rule: Box<dyn Method>,
}

/// What a segmentation model's maps sum the class logits over.
#[derive(Debug, Clone, PartialEq)]
pub struct Segmentation {
    /// The output's `[classes, height, width]`.
    pub map: [usize; 3],
    /// The mask's `height * width` weights (`None`: each class's own pixels).
    pub mask: Option<Arc<Vec<f32>>>,
}

/// A class and how the model scores it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Prediction {
    pub class: usize,
    pub label: String,
    pub logit: f32,
    pub probability: f32,
}

/// One map of one image.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClassMap {
    /// The explained class (absent for targets that are not about one class).
    pub class: Option<usize>,
    pub label: Option<String>,
    /// The explained score (the logit, the probability for `--target softmax`; negated for a
    /// counterfactual).
    pub score: f32,
    /// The localization box in original-image pixels (inclusive), when the map is not empty.
    #[serde(rename = "box")]
    pub bbox: Option<BBox>,
    /// The normalised map at network input resolution, row-major (as pytorch-grad-cam).
    #[serde(skip)]
    pub map: Vec<f32>,
    /// The raw signed maps, one per layer, at layer resolution.
    #[serde(skip)]
    pub raw: Vec<LayerMap>,
    /// For the guided methods: the input-gradient image at network input resolution,
    /// `[height, width, 3]` row-major (raw and signed; see [`crate::image::deprocess`]).
    #[serde(skip)]
    pub guided: Option<Vec<f32>>,
    /// For a segmentation model: the pixels whose logits were summed (the mask's, or those
    /// the model assigns to the class), at the output's resolution; the overlay outlines it.
    #[serde(skip)]
    pub region: Option<Region>,
}

/// Everything `explain` finds out about one image.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Explanation {
    pub model: String,
    pub method: String,
    pub layers: Vec<String>,
    pub counterfactual: bool,
    /// Original image (width, height).
    pub image_size: (u32, u32),
    /// Network input (height, width).
    pub input_size: (usize, usize),
    /// The five best classes (both classes of a binary target; none for a similarity).
    pub top5: Vec<Prediction>,
    pub explanations: Vec<ClassMap>,
    /// Milliseconds, shared out evenly between the images of a batch.
    pub timings: Timings,
}

impl Explainer {
    /// An explainer for a loaded model; `method` by its command-line name, `layers` by name
    /// (none: the model's default), the other choices at their defaults. `Arc::from` makes
    /// the `Box<dyn CamModel>` of [`crate::model::load`] one.
    pub fn new(
        model: Arc<dyn CamModel>,
        method: &str,
        layers: Vec<String>,
        options: CamOptions,
    ) -> Result<Self> {
        let spec = RequestSpec {
            method: Some(method.to_string()),
            layers,
            counterfactual: options.counterfactual,
            eigen_smooth: options.eigen_smooth,
            aug_smooth: options.aug_smooth,
            ..Default::default()
        };
        let request = spec.check(model.class_names(), 1)?;
        Self::from_request(model, &request)
    }

    /// An explainer for a checked request; fails when a layer is not the model's (listing
    /// the valid ones), before any image is read. For a similarity it reads the model at the
    /// embedding layer and computes the reference image's embedding.
    pub fn from_request(model: Arc<dyn CamModel>, request: &ExplainRequest) -> Result<Self> {
        let (model, similarity) = match &request.similar_to {
            None => (model, None),
            Some(s) => {
                let model: Arc<dyn CamModel> = match &s.embedding {
                    Some(layer) => Arc::new(PooledEmbedding::new(model, layer)?),
                    None => model,
                };
                let p = model.preprocess();
                let reference = cam::flat(model.forward(p.tensor(preprocess_with(&p, &s.image)))?);
                let target: Arc<dyn Target> = Arc::new(CosineSimilarity { reference });
                (model, Some(target))
            }
        };
        request.check_layers(model.as_ref())?;
        let segmentation = segmentation(model.as_ref(), request)?;
        let rule = request.method.build();
        rule.check(model.as_ref(), &request.layers)?;
        Ok(Explainer {
            model,
            method: request.method,
            layers: request.layers.clone(),
            target: request.target,
            similarity,
            segmentation,
            options: request.options,
            box_threshold: request.box_threshold,
            cancel: Cancel::default(),
            rule,
        })
    }

    /// The network input for one image: resized as Pillow's bilinear, normalised, CHW.
    pub fn preprocess(&self, image: &RgbImage) -> Vec<f32> {
        preprocess_with(&self.model.preprocess(), image)
    }

    /// Explains a batch of images.
    pub fn explain(&self, images: &[RgbImage], classes: &Classes) -> Result<Vec<Explanation>> {
        let data: Vec<f32> = images.iter().flat_map(|img| self.preprocess(img)).collect();
        self.explain_inputs(data, images, classes)
    }

    /// Explains `images` from their network inputs, [`Explainer::preprocess`]ed and laid end
    /// to end in `data` (the batch pipeline preprocesses on its worker threads).
    pub fn explain_inputs(
        &self,
        data: Vec<f32>,
        images: &[RgbImage],
        classes: &Classes,
    ) -> Result<Vec<Explanation>> {
        kernels::on_worker(|| self.explain_inputs_here(data, images, classes))
    }

    /// [`Explainer::explain_inputs`] on this thread.
    fn explain_inputs_here(
        &self,
        data: Vec<f32>,
        images: &[RgbImage],
        classes: &Classes,
    ) -> Result<Vec<Explanation>> {
        if images.is_empty() {
            return Ok(Vec::new());
        }
        let input = self.model.preprocess().tensor(data);
        let kind = self.target;
        let num_classes = kind.classes(self.model.num_classes());
        let names = self.model.class_names();
        let sets: Vec<Targets> = match (&self.similarity, classes) {
            (Some(similarity), _) => vec![Targets::All(similarity.clone())],
            (None, classes) if self.segmentation.is_some() => {
                let Segmentation { map, mask } = self.segmentation.clone().expect("checked");
                let target = move |class| -> Arc<dyn cam::Target> {
                    Arc::new(SemanticSegmentation {
                        class,
                        map,
                        mask: mask.clone(),
                    })
                };
                match classes {
                    Classes::These(list) => list
                        .iter()
                        .map(|&class| Targets::All(target(class)))
                        .collect(),
                    // Each image's classes by their share of its pixels, as its top-5 lists them.
                    Classes::Top(k) => (0..(*k).clamp(1, num_classes))
                        .map(|rank| {
                            let target = target.clone();
                            Targets::Chosen(Arc::new(move |row: &[f32]| {
                                target(classes_by_share(&pixel_counts(row, map))[rank])
                            }))
                        })
                        .collect(),
                }
            }
            (None, Classes::Top(k)) => (0..(*k).clamp(1, num_classes))
                .map(|rank| Targets::Ranked(rank, kind))
                .collect(),
            (None, Classes::These(list)) => {
                list.iter().map(|&c| Targets::All(kind.of(c))).collect()
            }
        };
        let cam = Cam::new(self.model.as_ref(), self.rule.as_ref(), &self.layers)?
            .with_options(self.options)
            .with_cancel(self.cancel.clone());
        let guided: Vec<Option<Vec<Vec<f32>>>> = match self.method.input_gradient {
            Some(_) => sets
                .iter()
                .map(|set| {
                    cam::guided_gradients(
                        self.model.as_ref(),
                        input.clone(),
                        set,
                        self.options.counterfactual,
                    )
                    .map(Some)
                })
                .collect::<Result<_>>()?,
            None => vec![None; sets.len()],
        };
        let outputs = cam.run_many(input, &sets)?;
        let layer_names: Vec<String> = cam
            .layers()
            .iter()
            .map(|&i| self.model.layers()[i].name.clone())
            .collect();
        let batch = images.len() as f64;
        let mut timings = Timings::default();
        for out in &outputs {
            timings.forward += out.timings.forward / batch;
            timings.backward += out.timings.backward / batch;
            timings.postprocess += out.timings.postprocess / batch;
        }

        let mut result = Vec::with_capacity(images.len());
        for (b, image) in images.iter().enumerate() {
            let start = Instant::now();
            let size = (image.height() as usize, image.width() as usize);
            let explanations = outputs
                .iter()
                .zip(&guided)
                .map(|(out, guided)| {
                    // Row by row: the map at the photo's size is never held whole.
                    let full = MapResizer::new(&out.maps[b], out.size, size);
                    let bbox = localize_rows(size.1, size.0, self.box_threshold, |y, row| {
                        full.row(y, row)
                    });
                    let class = out.classes[b];
                    ClassMap {
                        class,
                        label: class.map(|c| names.name(c)),
                        score: out.scores[b],
                        bbox,
                        map: out.maps[b].clone(),
                        raw: out
                            .layers
                            .iter()
                            .map(|l| LayerMap {
                                maps: vec![l.maps[b].clone()],
                                ..l.clone()
                            })
                            .collect(),
                        guided: guided.as_ref().map(|g| match self.method.input_gradient {
                            Some(InputGradient::GuidedGradCam) => {
                                cam::weight_by_map(&g[b], &out.maps[b])
                            }
                            _ => g[b].clone(),
                        }),
                        region: self
                            .segmentation
                            .as_ref()
                            .zip(class)
                            .map(|(s, c)| segment_region(&out.logits[b], s, c)),
                    }
                })
                .collect();
            let mut image_timings = timings;
            image_timings.postprocess += ms(start);
            result.push(Explanation {
                model: self.model.name().to_string(),
                method: self.method.name.to_string(),
                layers: layer_names.clone(),
                counterfactual: self.options.counterfactual,
                image_size: (image.width(), image.height()),
                input_size: outputs[0].size,
                top5: match (kind, self.segmentation.as_ref().map(|s| s.map)) {
                    _ if self.similarity.is_some() => Vec::new(),
                    (_, Some(map)) => segment_predictions(&outputs[0].logits[b], map, names),
                    (ClassTarget::Binary, _) => binary_predictions(outputs[0].logits[b][0], names),
                    _ => top_k(&outputs[0].logits[b], 5, names),
                },
                explanations,
                timings: image_timings,
            });
        }
        Ok(result)
    }
}

/// The network input for one image as a model with preprocessing `p` wants it (what
/// [`Explainer::preprocess`] does, without the model, for worker threads).
pub fn preprocess_with(p: &Preprocess, image: &RgbImage) -> Vec<f32> {
    let resized = resize_bilinear(image, p.size.1 as u32, p.size.0 as u32);
    to_input(&resized, p.mean, p.std)
}

/// What a segmentation model needs of a request: the logit target, and a mask only for it;
/// the mask as weights at the output's resolution.
fn segmentation(model: &dyn CamModel, request: &ExplainRequest) -> Result<Option<Segmentation>> {
    let Some(map) = model.output_map() else {
        return match request.mask {
            Some(_) => Err(invalid(
                "mask",
                "is for segmentation models, whose output is (B, K, H, W); this one's is (B, K)",
            )),
            None => Ok(None),
        };
    };
    if request.target != ClassTarget::Logit || request.similar_to.is_some() {
        return Err(invalid(
            "target",
            "of a segmentation model is the sum of the class's logits over its pixels: leave \
             out `target` and `similar_to`",
        ));
    }
    let [_, h, w] = map;
    let mask = match &request.mask {
        None => None,
        Some(image) => {
            let resized =
                ::image::imageops::resize(image.as_ref(), w as u32, h as u32, FilterType::Nearest);
            let weights: Vec<f32> = resized
                .pixels()
                .map(|p| if p.0[0] >= 128 { 1.0 } else { 0.0 })
                .collect();
            if !weights.contains(&1.0) {
                return Err(invalid(
                    "mask",
                    format!("has no light pixel at the output's {w}x{h}: nothing to explain"),
                ));
            }
            Some(Arc::new(weights))
        }
    };
    Ok(Some(Segmentation { map, mask }))
}

/// The class a segmentation model assigns each of its output's `h * w` pixels (the largest
/// logit).
fn pixel_classes(output: &[f32], [classes, h, w]: [usize; 3]) -> Vec<usize> {
    let pixels = h * w;
    (0..pixels)
        .map(|p| {
            (0..classes)
                .max_by(|&a, &b| output[a * pixels + p].total_cmp(&output[b * pixels + p]))
                .unwrap_or(0)
        })
        .collect()
}

/// The pixels a segmentation map of `class` sums the logits over: the mask's, else those the
/// model assigns to `class`.
fn segment_region(output: &[f32], segmentation: &Segmentation, class: usize) -> Region {
    let [_, height, width] = segmentation.map;
    let inside = match &segmentation.mask {
        Some(mask) => mask.iter().map(|&v| v > 0.0).collect(),
        None => pixel_classes(output, segmentation.map)
            .into_iter()
            .map(|c| c == class)
            .collect(),
    };
    Region {
        width,
        height,
        inside,
    }
}

/// A segmentation model's classes by the share of pixels it assigns them (the `probability`),
/// with their mean logit, the five largest.
pub fn segment_predictions(
    output: &[f32],
    [classes, h, w]: [usize; 3],
    names: ClassNames,
) -> Vec<Prediction> {
    let pixels = h * w;
    let counts = pixel_counts(output, [classes, h, w]);
    classes_by_share(&counts)
        .into_iter()
        .take(5)
        .map(|c| Prediction {
            class: c,
            label: names.name(c),
            logit: output[c * pixels..(c + 1) * pixels].iter().sum::<f32>() / pixels as f32,
            probability: counts[c] as f32 / pixels as f32,
        })
        .collect()
}

/// How many of the output's pixels a segmentation model assigns each class.
fn pixel_counts(output: &[f32], map: [usize; 3]) -> Vec<usize> {
    let mut counts = vec![0usize; map[0]];
    for best in pixel_classes(output, map) {
        counts[best] += 1;
    }
    counts
}

/// The classes from the one with the most pixels (`counts`, see [`pixel_counts`]) to the one
/// with the fewest; ties: the lower index first.
fn classes_by_share(counts: &[usize]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..counts.len()).collect();
    order.sort_by(|&a, &b| counts[b].cmp(&counts[a]));
    order
}

/// A one-logit model's two classes, the predicted first, with their sigmoid probabilities;
/// class 0's logit is the negated one (what `--target binary --class 0` explains).
pub fn binary_predictions(logit: f32, names: ClassNames) -> Vec<Prediction> {
    let p1 = 1.0 / (1.0 + (-logit as f64).exp());
    let prediction = |class: usize| Prediction {
        class,
        label: names.name(class),
        logit: if class == 1 { logit } else { -logit },
        probability: if class == 1 { p1 } else { 1.0 - p1 } as f32,
    };
    ClassTarget::Binary
        .ranked(&[logit])
        .into_iter()
        .map(prediction)
        .collect()
}

/// The `k` best classes with their softmax probabilities.
pub fn top_k(logits: &[f32], k: usize, names: ClassNames) -> Vec<Prediction> {
    let probabilities = cam::softmax(logits);
    cam::ranked(logits)
        .into_iter()
        .take(k)
        .map(|c| Prediction {
            class: c,
            label: names.name(c),
            logit: logits[c],
            probability: probabilities[c] as f32,
        })
        .collect()
}
