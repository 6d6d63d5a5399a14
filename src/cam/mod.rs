//! The CAM runner and its methods.
//!
//! The runner owns the pipeline, as pytorch-grad-cam's `BaseCAM` does, with one difference:
//! instead of hooks and a backward through the whole network, it cuts the model at the layer.
//! The body runs without autodiff; its output becomes a leaf that requires grad; only the
//! head runs with autodiff (the parameters stay constants), so the backward pass touches
//! the head alone. Each method then only says how it turns activations (and gradients)
//! into a map ([`Method`]).

mod ablation_cam;
mod cancel;
mod class_activation_map;
mod dff;
mod eigen;
mod eigen_cam;
mod eigen_grad_cam;
mod fem;
mod finer_cam;
mod full_grad;
mod grad_cam;
mod grad_cam_elementwise;
mod grad_cam_plus_plus;
mod guided;
mod hires_cam;
mod is_cam;
mod kpca_cam;
mod layer_cam;
mod legrad;
mod method;
mod nmf;
mod noise;
mod normalize;
mod random_cam;
mod refine_cam;
mod registry;
mod score_cam;
mod seg_eigen_cam;
mod sess;
mod shapley_cam;
mod smooth_grad_cam_pp;
mod ss_cam;
mod target;
mod torchcam_score;
mod xgrad_cam;

use std::sync::Arc;
use std::time::Instant;

use burn::tensor::Tensor;
use rayon::prelude::*;

pub use ablation_cam::AblationCam;
pub use cancel::{Cancel, CancelOnDrop};
pub use class_activation_map::ClassActivationMap;
pub use dff::{Concepts, DeepFeatureFactorization, deep_feature_factorization};
pub use eigen::first_component;
pub use eigen_cam::EigenCam;
pub use eigen_grad_cam::EigenGradCam;
pub use fem::Fem;
pub use finer_cam::FinerCam;
pub use full_grad::FullGrad;
pub use grad_cam::GradCam;
pub use grad_cam_elementwise::GradCamElementWise;
pub use grad_cam_plus_plus::GradCamPlusPlus;
pub use guided::{guided_backprop, guided_gradcam};
pub(crate) use guided::{guided_gradients, weight_by_map};
pub use hires_cam::HiResCam;
pub use is_cam::IsCam;
pub use kpca_cam::{Kernel, KpcaCam};
pub use layer_cam::LayerCam;
pub use legrad::LeGrad;
pub use method::{CamInput, ChannelWeights, Method, channel_sum_or_projection};
pub use normalize::{fuse_layers, scale_map};
pub use random_cam::RandomCam;
pub use refine_cam::RefineCam;
pub use registry::{InputGradient, METHODS, MethodInfo, method, method_info, method_names};
pub use score_cam::ScoreCam;
pub use seg_eigen_cam::SegEigenCam;
pub use sess::Sess;
pub use shapley_cam::ShapleyCam;
pub use smooth_grad_cam_pp::SmoothGradCamPlusPlus;
pub use ss_cam::SsCam;
pub use target::{
    BinaryOutput, ClassLogit, ClassSoftmax, ClassTarget, ClassifierOutputReST, CosineSimilarity,
    FinerWeightedTarget, Negated, SemanticSegmentation, Target,
};
pub use xgrad_cam::XGradCam;

use crate::error::{Error, Result};
use crate::model::{CamModel, Cut};
use crate::timefmt::ms;

/// Picks one image's target from its output row (see [`Targets::Chosen`]).
pub type ChooseTarget = dyn Fn(&[f32]) -> Arc<dyn Target> + Send + Sync;

/// Which score each image's map explains.
#[derive(Clone)]
pub enum Targets {
    /// The class with the `r`-th highest logit of each image (0: the top-1, the default).
    Rank(usize),
    /// The `r`-th most likely class of each image (see [`ClassTarget::ranked`]), explained
    /// by that kind of target.
    Ranked(usize, ClassTarget),
    /// The same target for every image.
    All(Arc<dyn Target>),
    /// One target per image.
    PerImage(Vec<Arc<dyn Target>>),
    /// A target chosen from each image's output row, such as a segmentation model's class
    /// ranked by its share of the pixels.
    Chosen(Arc<ChooseTarget>),
}

impl Targets {
    /// The raw logit of `class` for every image.
    pub fn class(class: usize) -> Self {
        Targets::All(Arc::new(ClassLogit(class)))
    }

    /// One target per image, checked against the model's number of classes.
    fn resolve(&self, logits: &[Vec<f32>], counterfactual: bool) -> Result<Vec<Arc<dyn Target>>> {
        let classes = logits.first().map_or(0, Vec::len);
        let targets: Vec<Arc<dyn Target>> = match *self {
            Targets::Rank(rank) => {
                Targets::Ranked(rank, ClassTarget::Logit).resolve(logits, false)?
            }
            Targets::Ranked(rank, kind) => {
                let count = kind.classes(classes);
                if rank >= count {
                    return Err(Error::Class(format!(
                        "cannot explain the class ranked {} of a model with {count} classes",
                        rank + 1
                    )));
                }
                logits
                    .iter()
                    .map(|row| kind.of(kind.ranked(row)[rank]))
                    .collect()
            }
            Targets::All(ref t) => vec![t.clone(); logits.len()],
            Targets::Chosen(ref choose) => logits.iter().map(|row| choose(row)).collect(),
            Targets::PerImage(ref ts) if ts.len() == logits.len() => ts.clone(),
            Targets::PerImage(ref ts) => {
                return Err(Error::Invalid(format!(
                    "{} targets given for a batch of {} images",
                    ts.len(),
                    logits.len()
                )));
            }
        };
        for t in &targets {
            if let Some(c) = t.reads().filter(|&c| c >= classes) {
                return Err(Error::Class(format!(
                    "class {c} is out of range: the model has {classes} classes (0..={})",
                    classes.saturating_sub(1)
                )));
            }
        }
        Ok(if counterfactual {
            targets
                .into_iter()
                .map(|t| Arc::new(Negated(t)) as Arc<dyn Target>)
                .collect()
        } else {
            targets
        })
    }
}

impl Target for Arc<dyn Target> {
    fn score(&self, output: Tensor<1>) -> Tensor<1> {
        self.as_ref().score(output)
    }
    fn class(&self) -> Option<usize> {
        self.as_ref().class()
    }
    fn reads(&self) -> Option<usize> {
        self.as_ref().reads()
    }
}

/// Class indices sorted by decreasing logit (stable, so ties keep index order).
pub fn ranked(logits: &[f32]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..logits.len()).collect();
    order.sort_by(|&a, &b| logits[b].total_cmp(&logits[a]));
    order
}

/// Softmax probabilities of a row of logits, in f64.
pub fn softmax(logits: &[f32]) -> Vec<f64> {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    let exp: Vec<f64> = logits.iter().map(|&l| (l as f64 - max).exp()).collect();
    let total: f64 = exp.iter().sum();
    exp.into_iter().map(|e| e / total).collect()
}

/// Options that change how maps are made.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct CamOptions {
    /// Explain the negated score: regions that argue against the class.
    pub counterfactual: bool,
    /// Replace the channel sum by the first principal component (pytorch-grad-cam's
    /// `eigen_smooth`).
    pub eigen_smooth: bool,
    /// Test-time augmentation (pytorch-grad-cam's `aug_smooth`): the mean of the final maps of
    /// the input flipped or not and scaled by 0.9, 1 and 1.1, each map flipped back.
    pub aug_smooth: bool,
}

/// The raw, signed map of one layer for each image, at the layer's resolution.
#[derive(Debug, Clone, PartialEq)]
pub struct LayerMap {
    pub layer: String,
    pub height: usize,
    pub width: usize,
    /// One `height * width` map per image, row-major.
    pub maps: Vec<Vec<f32>>,
}

/// Where the time went, in milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct Timings {
    /// The body up to the layer(s), without autodiff.
    pub forward: f64,
    /// The head with autodiff and its backward pass (or the method's own passes).
    pub backward: f64,
    /// Weights, maps, normalisation and resizing.
    pub postprocess: f64,
}

/// The maps for one set of targets.
#[derive(Debug, Clone, PartialEq)]
pub struct CamOutput {
    /// Network input (height, width): the size of [`maps`](Self::maps).
    pub size: (usize, usize),
    /// The model's logits for each image.
    pub logits: Vec<Vec<f32>>,
    /// The class each image's map explains, when its target has one.
    pub classes: Vec<Option<usize>>,
    /// The explained score of each image (negated for counterfactuals).
    pub scores: Vec<f32>,
    /// Raw maps, one entry per layer.
    pub layers: Vec<LayerMap>,
    /// The final maps, one `height * width` map in [0, 1] per image, as pytorch-grad-cam
    /// returns them.
    pub maps: Vec<Vec<f32>>,
    pub timings: Timings,
}

/// A model, a method and the layers to explain: the pipeline of pytorch-grad-cam's `BaseCAM`.
///
/// ```no_run
/// use burn::tensor::{Device, Tensor};
/// use gradcam::cam::{Cam, GradCam, Targets};
///
/// let device = Device::flex();
/// let model = gradcam::model::build("resnet18", 1000, &device).unwrap();
/// let cam = Cam::new(model.as_ref(), &GradCam, &["layer4"]).unwrap();
/// let input = Tensor::<4>::zeros([1, 3, 224, 224], &device);
/// let out = cam.run(input, &Targets::Rank(0)).unwrap();
/// assert_eq!(out.maps[0].len(), 224 * 224);
/// ```
pub struct Cam<'a> {
    model: &'a dyn CamModel,
    method: &'a dyn Method,
    layers: Vec<usize>,
    options: CamOptions,
    cancel: Cancel,
}

impl<'a> Cam<'a> {
    /// A runner for `layers` (names or aliases; none means the method's default layers, or
    /// the model's default layer).
    pub fn new<S: AsRef<str>>(
        model: &'a dyn CamModel,
        method: &'a dyn Method,
        layers: &[S],
    ) -> Result<Self> {
        let indices = if layers.is_empty() {
            match method.default_layers(model) {
                Some(names) => names?
                    .iter()
                    .map(|l| model.layer_index(l))
                    .collect::<Result<_>>()?,
                None => vec![model.layer_index(model.default_layer())?],
            }
        } else {
            layers
                .iter()
                .map(|l| model.layer_index(l.as_ref()))
                .collect::<Result<_>>()?
        };
        Ok(Cam {
            model,
            method,
            layers: indices,
            options: CamOptions::default(),
            cancel: Cancel::default(),
        })
    }

    /// The same runner, stopping with [`Error::Cancelled`] between passes once `cancel` is set.
    pub fn with_cancel(mut self, cancel: Cancel) -> Self {
        self.cancel = cancel;
        self
    }

    /// The same runner with other options.
    pub fn with_options(mut self, options: CamOptions) -> Self {
        self.options = options;
        self
    }

    /// The indices of the explained layers.
    pub fn layers(&self) -> &[usize] {
        &self.layers
    }

    /// Maps for one set of targets.
    pub fn run(&self, input: Tensor<4>, targets: &Targets) -> Result<CamOutput> {
        Ok(self
            .run_many(input, std::slice::from_ref(targets))?
            .remove(0))
    }

    /// Maps for several sets of targets (e.g. the top-k classes): the body runs once per
    /// layer, the head once per set (six times each with `aug_smooth`).
    pub fn run_many(&self, input: Tensor<4>, sets: &[Targets]) -> Result<Vec<CamOutput>> {
        if self.options.aug_smooth {
            self.run_aug_smooth(input, sets)
        } else {
            self.run_plain(input, sets)
        }
    }

    /// pytorch-grad-cam's `forward_augmentation_smoothing` with its default ttach transforms:
    /// horizontal flip (off, on) x multiplication of the (normalised) input by 0.9, 1, 1.1, in
    /// ttach's order; each augmented input goes through the whole pipeline, its final map is
    /// flipped back, and the result is the mean of the six maps (not rescaled).
    ///
    /// Ranked targets are resolved once, on the unaugmented input, so every copy explains the
    /// same class. Logits, scores and the raw per-layer maps are those of the unaugmented input.
    fn run_aug_smooth(&self, input: Tensor<4>, sets: &[Targets]) -> Result<Vec<CamOutput>> {
        let input = input.without_autodiff();
        let mut outputs = self.run_plain(input.clone(), sets)?;
        let fixed: Vec<Targets> = sets.iter().zip(&outputs).map(fixed_targets).collect();
        let (_, width) = outputs[0].size;
        let clean: Vec<Vec<Vec<f32>>> = outputs.iter().map(|o| o.maps.clone()).collect();
        let mut sums: Vec<Vec<Vec<f32>>> = clean
            .iter()
            .map(|maps| maps.iter().map(|m| vec![0.0; m.len()]).collect())
            .collect();
        for flip in [false, true] {
            for factor in [0.9f32, 1.0, 1.1] {
                self.cancel.check()?;
                let maps = if !flip && factor == 1.0 {
                    clean.clone()
                } else {
                    let augmented = if flip {
                        input.clone().flip([3])
                    } else {
                        input.clone()
                    };
                    let results = self.run_plain(augmented * factor, &fixed)?;
                    for (out, r) in outputs.iter_mut().zip(&results) {
                        out.timings.forward += r.timings.forward;
                        out.timings.backward += r.timings.backward;
                        out.timings.postprocess += r.timings.postprocess;
                    }
                    results.into_iter().map(|r| r.maps).collect()
                };
                for (sum, maps) in sums.iter_mut().zip(maps) {
                    for (s, m) in sum.iter_mut().zip(maps) {
                        add_deaugmented(s, &m, width, flip);
                    }
                }
            }
        }
        for (out, sum) in outputs.iter_mut().zip(sums) {
            out.maps = sum
                .into_iter()
                .map(|m| m.into_iter().map(|v| v / 6.0).collect())
                .collect();
        }
        Ok(outputs)
    }

    /// [`run_many`](Self::run_many) without augmentation.
    fn run_plain(&self, input: Tensor<4>, sets: &[Targets]) -> Result<Vec<CamOutput>> {
        let [batch, channels, height, width] = input.dims();
        if batch == 0 {
            return Err(Error::Invalid(format!(
                "empty batch: input shape [{batch}, {channels}, {height}, {width}]"
            )));
        }
        let input = input.without_autodiff();
        if let Some(outputs) = self.method.run_whole(self, input.clone(), sets) {
            return outputs;
        }
        let mut outputs: Vec<CamOutput> = sets
            .iter()
            .map(|_| CamOutput {
                size: (height, width),
                logits: Vec::new(),
                classes: Vec::new(),
                scores: Vec::new(),
                layers: Vec::new(),
                maps: Vec::new(),
                timings: Timings::default(),
            })
            .collect();
        for &layer in &self.layers {
            let start = Instant::now();
            let cut = self.model.forward_to(input.clone(), layer)?;
            let forward = ms(start);
            for (set, out) in sets.iter().zip(outputs.iter_mut()) {
                self.cancel.check()?;
                out.timings.forward += forward / sets.len() as f64;
                self.explain_layer(&input, &cut, set, out)?;
            }
        }
        for out in &mut outputs {
            let start = Instant::now();
            // Image by image on rayon's threads: the head and its backward ran as one graph.
            let layers = &out.layers;
            out.maps = (0..batch)
                .into_par_iter()
                .map(|b| {
                    let maps: Vec<Vec<f32>> = layers
                        .iter()
                        .map(|l| scale_map(&l.maps[b], (l.height, l.width), Some((height, width))))
                        .collect();
                    let maps: Vec<&[f32]> = maps.iter().map(Vec::as_slice).collect();
                    self.method.fuse(&maps)
                })
                .collect();
            out.timings.postprocess += ms(start);
        }
        Ok(outputs)
    }

    /// Runs the head (with autodiff when the method needs gradients) and the method for one
    /// layer and one target set, appending the raw maps to `out`.
    fn explain_layer(
        &self,
        input: &Tensor<4>,
        cut: &Cut,
        set: &Targets,
        out: &mut CamOutput,
    ) -> Result<()> {
        let start = Instant::now();
        let (activations, context) = (cut.activations.clone(), &cut.context);
        let (logits, targets, scores, gradients) = if self.method.uses_gradients() {
            let leaf = activations.clone().autodiff().require_grad();
            let logits = self.model.forward_from(leaf.clone(), context, None)?;
            let rows = rows(logits.clone().detach());
            let targets = set.resolve(&rows, self.options.counterfactual)?;
            let scores = batch_scores(&targets, logits, |i| i);
            let values = flat(scores.clone().detach());
            let grads = scores.sum().backward();
            let gradients = leaf.grad(&grads).ok_or_else(|| {
                Error::Invalid("the target score does not depend on the layer".to_string())
            })?;
            (rows, targets, values, Some(gradients))
        } else {
            let logits = self
                .model
                .forward_from(activations.clone(), context, None)?;
            let rows = rows(logits.clone());
            let targets = set.resolve(&rows, self.options.counterfactual)?;
            let values = flat(batch_scores(&targets, logits, |i| i));
            (rows, targets, values, None)
        };
        out.timings.backward += ms(start);

        let start = Instant::now();
        let [_, _, h, w] = activations.dims();
        let raw = self.method.raw_map(
            &CamInput {
                activations,
                gradients,
                model: self.model,
                context,
                input,
                targets: &targets,
                cancel: &self.cancel,
            },
            self.options.eigen_smooth,
        )?;
        let data = flat(raw);
        out.layers.push(LayerMap {
            layer: self.model.layers()[context.layer()].name.clone(),
            height: h,
            width: w,
            maps: data.chunks(h * w).map(<[f32]>::to_vec).collect(),
        });
        if out.logits.is_empty() {
            out.classes = targets.iter().map(|t| t.class()).collect();
            out.logits = logits;
            out.scores = scores;
        }
        out.timings.postprocess += ms(start);
        Ok(())
    }
}

/// The layers `method` explains on `model` when the caller names none: the method's own
/// choice (LeGrad's last blocks) or the model's default layer.
pub fn default_layer_names(model: &dyn CamModel, method: &dyn Method) -> Result<Vec<String>> {
    method
        .default_layers(model)
        .unwrap_or_else(|| Ok(vec![model.default_layer().to_string()]))
}

/// The target score of each output row `[n, classes]`, row `i` scored by the target of
/// image `image_of(i)`: shape `[n]`.
pub fn batch_scores(
    targets: &[Arc<dyn Target>],
    outputs: Tensor<2>,
    image_of: impl Fn(usize) -> usize,
) -> Tensor<1> {
    let n = outputs.dims()[0];
    let rows: Vec<Tensor<1>> = (0..n)
        .map(|i| targets[image_of(i)].score(outputs.clone().narrow(0, i, 1).flatten(0, 1)))
        .collect();
    Tensor::cat(rows, 0)
}

/// A target set with ranked targets replaced by the classes they resolved to in `out`.
fn fixed_targets((set, out): (&Targets, &CamOutput)) -> Targets {
    let classes: Option<Vec<usize>> = out.classes.iter().copied().collect();
    match (set, classes) {
        (Targets::Rank(_), Some(classes)) => Targets::PerImage(
            classes
                .into_iter()
                .map(|c| ClassTarget::Logit.of(c))
                .collect(),
        ),
        (&Targets::Ranked(_, kind), Some(classes)) => {
            Targets::PerImage(classes.into_iter().map(|c| kind.of(c)).collect())
        }
        _ => set.clone(),
    }
}

/// `sum += map`, with `map`'s rows (of `width` values) reversed when `flip`.
fn add_deaugmented(sum: &mut [f32], map: &[f32], width: usize, flip: bool) {
    let width = width.max(1);
    for (s, m) in sum.chunks_mut(width).zip(map.chunks(width)) {
        if flip {
            s.iter_mut().zip(m.iter().rev()).for_each(|(a, b)| *a += b);
        } else {
            s.iter_mut().zip(m).for_each(|(a, b)| *a += b);
        }
    }
}

/// A tensor's values, row-major.
pub(crate) fn flat<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().iter::<f32>().collect()
}

fn rows(t: Tensor<2>) -> Vec<Vec<f32>> {
    let [_, cols] = t.dims();
    flat(t).chunks(cols.max(1)).map(<[f32]>::to_vec).collect()
}
