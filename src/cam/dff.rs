//! Deep Feature Factorization (Collins et al., "Deep Feature Factorization for Concept
//! Discovery", ECCV 2018), as pytorch-grad-cam's `DeepFeatureFactorization`.

use burn::tensor::{Tensor, TensorData};

use super::nmf::{self, Factors};
use super::normalize::min_max;
use super::{CamInput, Method, Targets, flat, rows};
use crate::error::{Error, Result};
use crate::image::resize_map;
use crate::model::CamModel;

/// What DFF found in a batch: `k` concepts shared by the images, each a direction in the
/// layer's channel space, with where each image shows it and what the classifier makes of it.
#[derive(Debug, Clone, PartialEq)]
pub struct Concepts {
    /// The concepts' channel vectors, `channels x k` row-major (NMF's `W` plus each
    /// channel's offset).
    pub concepts: Vec<f32>,
    pub channels: usize,
    /// Number of concepts.
    pub k: usize,
    /// `maps[image][concept]`: the concept's map at the input's size, min-max scaled.
    pub maps: Vec<Vec<Vec<f32>>>,
    /// `scores[concept]`: the classifier's logits for the concept vector, when the layer is the
    /// last before global average pooling and a linear classifier (pytorch-grad-cam's
    /// `computation_on_concepts` in its examples: the head on a 1x1 map holding the concept);
    /// empty for other layers and heads. Softmax them for the "top classes" of each concept.
    pub scores: Vec<Vec<f32>>,
    /// `logits[image]`: the model's output for each image (from the same forward pass).
    pub logits: Vec<Vec<f32>>,
    /// NMF iterations run.
    pub iterations: usize,
}

/// The row of DFF in [`super::METHODS`], so that every list of methods offers it. DFF finds
/// concepts shared by the images, not a map per class: the map pipeline ([`super::Cam`])
/// refuses it with this error, and [`deep_feature_factorization`] (`gradcam explain`,
/// `gradcam serve`, Python's `DeepFeatureFactorization`) runs it.
#[derive(Debug, Clone, Copy, Default)]
pub struct DeepFeatureFactorization;

impl DeepFeatureFactorization {
    fn not_a_map() -> Error {
        Error::Invalid(
            "deepfeaturefactorization finds concepts shared by the images, not a map per class: \
             `gradcam explain --method deepfeaturefactorization`, `gradcam serve` and Python's \
             DeepFeatureFactorization give its concepts"
                .to_string(),
        )
    }
}

impl Method for DeepFeatureFactorization {
    fn name(&self) -> &'static str {
        "deepfeaturefactorization"
    }

    fn uses_gradients(&self) -> bool {
        false
    }

    fn finds_concepts(&self) -> bool {
        true
    }

    fn raw_map(&self, _cam: &CamInput, _eigen_smooth: bool) -> Result<Tensor<3>> {
        Err(Self::not_a_map())
    }

    fn run_whole(
        &self,
        _runner: &super::Cam,
        _input: Tensor<4>,
        _sets: &[Targets],
    ) -> Option<Result<Vec<super::CamOutput>>> {
        Some(Err(Self::not_a_map()))
    }
}

/// DFF of `input` at `layer` into `k` concepts (pytorch-grad-cam's default: 16; its
/// `run_dff_on_image` uses 5).
///
/// The activations `[batch, C, h, w]` become a `C x (batch h w)` matrix, each channel shifted by
/// its minimum so that it is non-negative, and NMF factors it into `W` (`C x k`, the concepts,
/// shifted back) and `H` (`k x batch h w`, the concepts' maps): scikit-learn's `NMF` (coordinate
/// descent, tol 1e-4, 200 iterations at most) from its `init="random"`, with our seeded normals
/// ([`nmf::random_init`], seed 0) in place of NumPy's generator. Each map is min-max scaled and
/// resized to the input (bilinear). No gradient.
pub fn deep_feature_factorization(
    model: &dyn CamModel,
    input: Tensor<4>,
    layer: &str,
    k: usize,
) -> Result<Concepts> {
    if k == 0 {
        return Err(Error::Invalid("DFF needs at least one concept".to_string()));
    }
    let [_, _, height, width] = input.dims();
    let index = model.layer_index(layer)?;
    let cut = model.forward_to(input.without_autodiff(), index)?;
    let logits = rows(model.forward_from(cut.activations.clone(), &cut.context, None)?);
    let [batch, channels, h, w] = cut.activations.dims();
    let values = flat(cut.activations.clone());
    // Channels as rows: X[c, (b, p)], NaNs to 0, each row shifted by its minimum.
    let cols = batch * h * w;
    let mut x = vec![0.0f32; channels * cols];
    for b in 0..batch {
        for c in 0..channels {
            for p in 0..h * w {
                let v = values[(b * channels + c) * h * w + p];
                x[c * cols + b * h * w + p] = if v.is_nan() { 0.0 } else { v };
            }
        }
    }
    let offsets: Vec<f32> = x
        .chunks(cols)
        .map(|row| row.iter().copied().fold(f32::INFINITY, f32::min))
        .collect();
    for (row, &o) in x.chunks_mut(cols).zip(&offsets) {
        row.iter_mut().for_each(|v| *v -= o);
    }
    let init = nmf::random_init(&x, channels, cols, k, 0);
    let Factors {
        w: mut concepts,
        h: factors,
        iterations,
    } = nmf::coordinate_descent(&x, (channels, cols), init, k, 1e-4, 200);
    for (row, &o) in concepts.chunks_mut(k).zip(&offsets) {
        row.iter_mut().for_each(|v| *v += o);
    }
    let maps = (0..batch)
        .map(|b| {
            (0..k)
                .map(|t| {
                    let start = t * cols + b * h * w;
                    let mut map = factors[start..start + h * w].to_vec();
                    min_max(&mut map);
                    resize_map(&map, (h, w), (height, width))
                })
                .collect()
        })
        .collect();
    let scores = if model.linear_classifier(index).is_some() {
        classify(model, &cut, &concepts, channels, k)?
    } else {
        Vec::new()
    };
    Ok(Concepts {
        concepts,
        channels,
        k,
        maps,
        scores,
        logits,
        iterations,
    })
}

/// The head's logits for each concept as a 1x1 map `[k, C, 1, 1]`: for a GAP + linear head,
/// the classifier applied to the concept vector.
fn classify(
    model: &dyn CamModel,
    cut: &crate::model::Cut,
    concepts: &[f32],
    channels: usize,
    k: usize,
) -> Result<Vec<Vec<f32>>> {
    let mut as_maps = vec![0.0f32; k * channels];
    for c in 0..channels {
        for t in 0..k {
            as_maps[t * channels + c] = concepts[c * k + t];
        }
    }
    let device = cut.activations.device();
    let probes = Tensor::<4>::from_data(TensorData::new(as_maps, [k, channels, 1, 1]), &device);
    let image_rows = vec![0; k];
    Ok(rows(model.forward_from(
        probes,
        &cut.context,
        Some(&image_rows),
    )?))
}
