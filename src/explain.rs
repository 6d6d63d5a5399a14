//! The whole job for images: preprocess, run a CAM method, rank the classes, map each
//! explanation back onto the original image and find its box. [`crate::batch`] writes the
//! outputs.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use ::image::RgbImage;
use burn::tensor::{Device, Tensor, TensorData};
use serde::Serialize;

use crate::cam::{self, Cam, CamOptions, Cancel, LayerMap, Method, Targets, Timings};
use crate::error::{Error, Result};
use crate::image::{overlay, resize_bilinear, resize_map, to_input};
use crate::labels;
use crate::localize::{BBox, PAPER_THRESHOLD, localize};
use crate::model::{CamModel, Preprocess};

/// Which classes to explain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Classes {
    /// The `k` highest-scoring classes of each image (1: pytorch-grad-cam's default).
    Top(usize),
    /// These classes, for every image.
    These(Vec<usize>),
}

/// A model with a method and its layers, ready to explain images.
pub struct Explainer {
    /// Shared, so that many explainers (one per request of `gradcam serve`) use one copy of
    /// the weights.
    pub model: Arc<dyn CamModel>,
    pub method: Box<dyn Method>,
    /// Layer names as the user gave them (empty: the model's default layer).
    pub layers: Vec<String>,
    pub options: CamOptions,
    /// Fraction of the map's maximum that delimits the localization segment.
    pub box_threshold: f32,
    /// Set for `guided-backprop` and `guided-gradcam`, which add an input-gradient image to
    /// the Grad-CAM map.
    pub guided: Option<Guided>,
    /// Set to stop the explanation between passes (`gradcam serve` sets it on a timeout).
    pub cancel: Cancel,
}

/// The input-gradient methods, which `explain` offers beside the CAM methods.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Guided {
    /// `guided-backprop`: the guided-backpropagation gradient.
    Backprop,
    /// `guided-gradcam`: the same times the Grad-CAM map (the paper's Guided Grad-CAM).
    GradCam,
}

impl Guided {
    /// The command-line names.
    pub const NAMES: [&'static str; 2] = ["guided-backprop", "guided-gradcam"];

    /// The input-gradient method called `name`, if it is one.
    pub fn named(name: &str) -> Option<Self> {
        match name {
            "guided-backprop" => Some(Guided::Backprop),
            "guided-gradcam" => Some(Guided::GradCam),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Guided::Backprop => "guided-backprop",
            Guided::GradCam => "guided-gradcam",
        }
    }
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
    /// The explained score (the logit; negated for a counterfactual).
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
    /// `[height, width, 3]` row-major (raw and signed; see [`cam::deprocess`]).
    #[serde(skip)]
    pub guided: Option<Vec<f32>>,
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
    pub top5: Vec<Prediction>,
    pub explanations: Vec<ClassMap>,
    /// Milliseconds, shared out evenly between the images of a batch.
    pub timings: Timings,
}

/// The CAM method that `name` asks for, and its input-gradient part for the guided methods
/// (which localise with Grad-CAM and add their input-gradient image). An unknown name lists
/// every valid one, the guided ones included.
pub fn resolve_method(name: &str) -> Result<(Box<dyn Method>, Option<Guided>)> {
    match Guided::named(name) {
        Some(guided) => Ok((cam::method("gradcam")?, Some(guided))),
        None => cam::method(name).map(|m| (m, None)).map_err(|e| match e {
            Error::UnknownMethod { name, mut valid } => {
                valid.extend(Guided::NAMES.iter().map(|s| s.to_string()));
                Error::UnknownMethod { name, valid }
            }
            other => other,
        }),
    }
}

/// How the guided methods show their `[height, width, 3]` input-gradient image (`input` is
/// its `(height, width)`): pytorch-grad-cam's `deprocess_image`, resized to `width` x
/// `height` as Pillow's bilinear.
pub fn guided_picture(guided: &[f32], input: (usize, usize), width: u32, height: u32) -> RgbImage {
    let pixels = cam::deprocess(guided);
    let small = RgbImage::from_raw(input.1 as u32, input.0 as u32, pixels)
        .expect("a [height, width, 3] guided map");
    resize_bilinear(&small, width, height)
}

/// The picture of one explained class on `image`: the overlay of its map (weight
/// `image_weight` for the photo), or the input-gradient image of the guided methods, with the
/// localization box in green when `draw_box`. `input` is the map's `(height, width)`.
pub fn picture(
    image: &RgbImage,
    map: &ClassMap,
    input: (usize, usize),
    image_weight: f32,
    draw_box: bool,
) -> Result<RgbImage> {
    let (w, h) = image.dimensions();
    let mut picture = match &map.guided {
        Some(guided) => guided_picture(guided, input, w, h),
        None => overlay(
            image,
            &resize_map(&map.map, input, (h as usize, w as usize)),
            image_weight,
        )?,
    };
    if draw_box && let Some(b) = &map.bbox {
        crate::image::draw_box(&mut picture, b, [0, 255, 0], (w.max(h) / 200).max(2));
    }
    Ok(picture)
}

impl Explainer {
    /// An explainer for a loaded model; `method` by its command-line name, `layers` by name
    /// (none: the model's default). `Arc::from` makes the `Box<dyn CamModel>` of
    /// [`crate::model::load`] one.
    pub fn new(
        model: Arc<dyn CamModel>,
        method: &str,
        layers: Vec<String>,
        options: CamOptions,
    ) -> Result<Self> {
        let (method, guided) = resolve_method(method)?;
        // Resolve the layers now so that a typo fails before any image is read.
        Cam::new(model.as_ref(), method.as_ref(), &layers)?;
        Ok(Explainer {
            model,
            method,
            layers,
            options,
            box_threshold: PAPER_THRESHOLD,
            guided,
            cancel: Cancel::default(),
        })
    }

    /// The method's command-line name.
    pub fn method_name(&self) -> &'static str {
        self.guided.map_or(self.method.name(), Guided::name)
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
        if images.is_empty() {
            return Ok(Vec::new());
        }
        let (h, w) = self.model.preprocess().size;
        let input = Tensor::<4>::from_data(
            TensorData::new(data, [images.len(), 3, h, w]),
            &Device::flex(),
        );
        let num_classes = self.model.num_classes();
        let sets: Vec<Targets> = match classes {
            Classes::Top(k) => (0..(*k).clamp(1, num_classes)).map(Targets::Rank).collect(),
            Classes::These(list) => list.iter().map(|&c| Targets::class(c)).collect(),
        };
        let cam = Cam::new(self.model.as_ref(), self.method.as_ref(), &self.layers)?
            .with_options(self.options)
            .with_cancel(self.cancel.clone());
        let guided: Vec<Option<Vec<Vec<f32>>>> = match self.guided {
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
                    let full = resize_map(&out.maps[b], out.size, size);
                    let bbox = localize(&full, size.1, size.0, self.box_threshold);
                    let class = out.classes[b];
                    ClassMap {
                        class,
                        label: class.map(|c| labels::name_of(c, num_classes)),
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
                        guided: guided.as_ref().map(|g| match self.guided {
                            Some(Guided::GradCam) => cam::weight_by_map(&g[b], &out.maps[b]),
                            _ => g[b].clone(),
                        }),
                    }
                })
                .collect();
            let mut image_timings = timings;
            image_timings.postprocess += start.elapsed().as_secs_f64() * 1e3;
            result.push(Explanation {
                model: self.model.name().to_string(),
                method: self.method_name().to_string(),
                layers: layer_names.clone(),
                counterfactual: self.options.counterfactual,
                image_size: (image.width(), image.height()),
                input_size: outputs[0].size,
                top5: top_k(&outputs[0].logits[b], 5, num_classes),
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

/// The `k` best classes with their softmax probabilities.
pub fn top_k(logits: &[f32], k: usize, num_classes: usize) -> Vec<Prediction> {
    let probabilities = cam::softmax(logits);
    cam::ranked(logits)
        .into_iter()
        .take(k)
        .map(|c| Prediction {
            class: c,
            label: labels::name_of(c, num_classes),
            logit: logits[c],
            probability: probabilities[c] as f32,
        })
        .collect()
}

/// The files written for one image, by kind.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct OutputFiles {
    pub overlay: Vec<PathBuf>,
    pub cam: Vec<PathBuf>,
    /// The guided methods' input-gradient arrays (`<name>.<method>.npy`), one per target.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub guided: Vec<PathBuf>,
    pub cam_raw: Vec<PathBuf>,
    pub json: Option<PathBuf>,
}

/// PNG, default compression.
pub fn encode_png(image: &RgbImage) -> Result<Vec<u8>> {
    use ::image::ImageEncoder;
    let mut bytes = Vec::new();
    ::image::codecs::png::PngEncoder::new(&mut bytes)
        .write_image(
            image.as_raw(),
            image.width(),
            image.height(),
            ::image::ExtendedColorType::Rgb8,
        )
        .map_err(|e| Error::Invalid(format!("PNG encoding failed: {e}")))?;
    Ok(bytes)
}

/// JPEG at quality 95.
pub fn encode_jpeg(image: &RgbImage) -> Result<Vec<u8>> {
    let mut bytes = Vec::new();
    ::image::codecs::jpeg::JpegEncoder::new_with_quality(&mut bytes, 95)
        .encode_image(image)
        .map_err(|e| Error::Invalid(format!("JPEG encoding failed: {e}")))?;
    Ok(bytes)
}
