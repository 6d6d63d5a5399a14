//! Targets: which scalar of the model output a map explains.
//!
//! A target maps one image's output row (`[outputs]`) to a one-element score; the runner sums
//! the batch's scores into one loss and runs one backward pass, as pytorch-grad-cam does.

use std::sync::Arc;

use burn::tensor::activation::{log_softmax, softmax};
use burn::tensor::{Tensor, TensorData};

use crate::error::{Error, Result};

/// A differentiable scalar function of one image's model output.
///
/// Any `Fn(Tensor<1>) -> Tensor<1> + Send + Sync` closure is a target too:
///
/// ```
/// use burn::tensor::Tensor;
/// use gradcam::cam::Target;
/// // The margin of class 3 over class 5.
/// let margin = |out: Tensor<1>| out.clone().narrow(0, 3, 1) - out.narrow(0, 5, 1);
/// let _: &dyn Target = &margin;
/// ```
pub trait Target: Send + Sync {
    /// The score explained, shape `[1]`, computed from `output` (shape `[outputs]`).
    fn score(&self, output: Tensor<1>) -> Tensor<1>;
    /// The class this target is about, when it is about one (for reports).
    fn class(&self) -> Option<usize> {
        None
    }
    /// The output this target reads, checked against the model's number of outputs (the
    /// class, but for [`BinaryOutput`], whose classes 0 and 1 both read output 0).
    fn reads(&self) -> Option<usize> {
        self.class()
    }
}

impl<F: Fn(Tensor<1>) -> Tensor<1> + Send + Sync> Target for F {
    fn score(&self, output: Tensor<1>) -> Tensor<1> {
        self(output)
    }
}

/// The raw (pre-softmax) score of a class: pytorch-grad-cam's `ClassifierOutputTarget`, and
/// the default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClassLogit(pub usize);

impl Target for ClassLogit {
    fn score(&self, output: Tensor<1>) -> Tensor<1> {
        output.narrow(0, self.0, 1)
    }
    fn class(&self) -> Option<usize> {
        Some(self.0)
    }
}

/// The softmax probability of a class: pytorch-grad-cam's `ClassifierOutputSoftmaxTarget`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClassSoftmax(pub usize);

impl Target for ClassSoftmax {
    fn score(&self, output: Tensor<1>) -> Tensor<1> {
        softmax(output, 0).narrow(0, self.0, 1)
    }
    fn class(&self) -> Option<usize> {
        Some(self.0)
    }
}

/// The negated score of another target: the paper's counterfactual explanation, whose map
/// shows the regions that argue against the class.
pub struct Negated<T>(pub T);

impl<T: Target> Target for Negated<T> {
    fn score(&self, output: Tensor<1>) -> Tensor<1> {
        self.0.score(output).neg()
    }
    fn class(&self) -> Option<usize> {
        self.0.class()
    }
    fn reads(&self) -> Option<usize> {
        self.0.reads()
    }
}

/// pytorch-grad-cam's `BinaryClassifierOutputTarget` for a model with one output (a (B, 1)
/// logit): class 1 explains the logit, class 0 its negation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BinaryOutput(pub usize);

impl Target for BinaryOutput {
    fn score(&self, output: Tensor<1>) -> Tensor<1> {
        let logit = output.narrow(0, 0, 1);
        if self.0 == 1 { logit } else { logit.neg() }
    }
    fn class(&self) -> Option<usize> {
        Some(self.0)
    }
    fn reads(&self) -> Option<usize> {
        Some(0)
    }
}

/// Which function of the output explains a class: the user's `--target` (server `target=`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ClassTarget {
    /// The raw score ([`ClassLogit`], pytorch-grad-cam's `ClassifierOutputTarget`).
    #[default]
    Logit,
    /// The softmax probability ([`ClassSoftmax`], `ClassifierOutputSoftmaxTarget`).
    Softmax,
    /// One logit read as two classes ([`BinaryOutput`], `BinaryClassifierOutputTarget`).
    Binary,
}

impl ClassTarget {
    /// The names `--target` takes.
    pub const NAMES: [&'static str; 3] = ["logit", "softmax", "binary"];

    /// A kind by its name or its pytorch-grad-cam class name, ignoring case.
    pub fn parse(name: &str) -> Result<ClassTarget> {
        match name.trim().to_ascii_lowercase().as_str() {
            "logit" | "classifieroutputtarget" => Ok(ClassTarget::Logit),
            "softmax" | "classifieroutputsoftmaxtarget" => Ok(ClassTarget::Softmax),
            "binary" | "binaryclassifieroutputtarget" => Ok(ClassTarget::Binary),
            _ => Err(Error::Invalid(format!(
                "unknown target `{}`; valid: {}",
                name.trim(),
                Self::NAMES.join(", ")
            ))),
        }
    }

    /// The name `--target` takes for this kind.
    pub fn name(self) -> &'static str {
        Self::NAMES[self as usize]
    }

    /// The target that explains `class`.
    pub fn of(self, class: usize) -> Arc<dyn Target> {
        match self {
            ClassTarget::Logit => Arc::new(ClassLogit(class)),
            ClassTarget::Softmax => Arc::new(ClassSoftmax(class)),
            ClassTarget::Binary => Arc::new(BinaryOutput(class)),
        }
    }

    /// How many classes a model with `outputs` outputs has for this kind (2 for binary).
    pub fn classes(self, outputs: usize) -> usize {
        match self {
            ClassTarget::Binary => 2,
            _ => outputs,
        }
    }

    /// One image's classes from the most to the least likely: by logit (softmax keeps the
    /// order), or for binary the predicted class (1 when the logit is positive) first.
    pub fn ranked(self, output: &[f32]) -> Vec<usize> {
        match self {
            ClassTarget::Binary if output.first().is_some_and(|&l| l > 0.0) => vec![1, 0],
            ClassTarget::Binary => vec![0, 1],
            _ => super::ranked(output),
        }
    }
}

/// Cosine similarity of an embedding output with a reference vector: explains what makes an
/// image close to another one (retrieval) or to a text embedding.
#[derive(Debug, Clone, PartialEq)]
pub struct CosineSimilarity {
    pub reference: Vec<f32>,
}

impl Target for CosineSimilarity {
    fn score(&self, output: Tensor<1>) -> Tensor<1> {
        let n = self.reference.len();
        let reference = Tensor::<1>::from_data(
            TensorData::new(self.reference.clone(), [n]),
            &output.device(),
        );
        let dot = (output.clone() * reference.clone()).sum();
        let norms = output.square().sum().sqrt() * reference.square().sum().sqrt();
        dot / norms.clamp_min(1e-8)
    }
}

/// pytorch-grad-cam's `FinerWeightedTarget`: the margin of a class over similar classes,
/// weighted by their softmax probabilities (which stay differentiable, as upstream):
/// `sum_j p_j (y_main - alpha y_j) / (sum_j p_j + 1e-9)` over the comparison classes `j`.
#[derive(Debug, Clone, PartialEq)]
pub struct FinerWeightedTarget {
    /// The class explained.
    pub main: usize,
    /// The classes it is told apart from (Finer-CAM: the most similar by logit).
    pub comparison: Vec<usize>,
    /// How strongly the comparison classes are subtracted (pytorch-grad-cam's default: 1).
    pub alpha: f32,
}

impl Target for FinerWeightedTarget {
    fn score(&self, output: Tensor<1>) -> Tensor<1> {
        let main = output.clone().narrow(0, self.main, 1);
        let prob = softmax(output.clone(), 0);
        let mut numerator: Option<Tensor<1>> = None;
        let mut denominator: Option<Tensor<1>> = None;
        for &j in &self.comparison {
            let p = prob.clone().narrow(0, j, 1);
            let term = p.clone() * (main.clone() - output.clone().narrow(0, j, 1) * self.alpha);
            numerator = Some(numerator.map_or(term.clone(), |n| n + term));
            denominator = Some(denominator.map_or(p.clone(), |d| d + p));
        }
        match (numerator, denominator) {
            (Some(n), Some(d)) => n / (d + 1e-9),
            // No comparison class: upstream's sum of nothing is 0, over 1e-9.
            _ => main.zeros_like(),
        }
    }
    fn class(&self) -> Option<usize> {
        Some(self.main)
    }
}

/// pytorch-grad-cam's `ClassifierOutputReST` (ShapleyCAM's paper): the logit minus the
/// cross-entropy of the class, `y_c - CE(y, c) = y_c + log_softmax(y)_c`, which mixes the
/// pre- and post-softmax scores.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClassifierOutputReST(pub usize);

impl Target for ClassifierOutputReST {
    fn score(&self, output: Tensor<1>) -> Tensor<1> {
        let logit = output.clone().narrow(0, self.0, 1);
        logit + log_softmax(output, 0).narrow(0, self.0, 1)
    }
    fn class(&self) -> Option<usize> {
        Some(self.0)
    }
}

/// pytorch-grad-cam's `SemanticSegmentationTarget`: the sum of a class's logits over a mask of
/// pixels, for a model whose output is (B, K, H, W) (rows flattened class by class, see
/// [`crate::model::CamModel::output_map`]). Without a given mask, the mask is the pixels the
/// model assigns to the class (their argmax over the classes), as in its segmentation tutorial;
/// the mask is a constant of the backward pass.
#[derive(Debug, Clone, PartialEq)]
pub struct SemanticSegmentation {
    pub class: usize,
    /// The output's `[classes, height, width]`.
    pub map: [usize; 3],
    /// `height * width` weights (1 in the mask, 0 outside), row-major; `None`: the class's
    /// pixels.
    pub mask: Option<Arc<Vec<f32>>>,
}

impl Target for SemanticSegmentation {
    fn score(&self, output: Tensor<1>) -> Tensor<1> {
        let [classes, h, w] = self.map;
        let plane = output.clone().narrow(0, self.class * h * w, h * w);
        let mask = match &self.mask {
            Some(mask) => {
                Tensor::<1>::from_data(TensorData::new(mask.to_vec(), [h * w]), &output.device())
            }
            None => output
                .detach()
                .reshape([classes, h * w])
                .argmax(0)
                .equal_elem(self.class as i64)
                .float()
                .reshape([h * w]),
        };
        (plane * mask).sum()
    }
    fn class(&self) -> Option<usize> {
        Some(self.class)
    }
}
