//! Targets: which scalar of the model output a map explains.
//!
//! A target maps one image's output row (`[outputs]`) to a one-element score; the runner sums
//! the batch's scores into one loss and runs one backward pass, as pytorch-grad-cam does.

use burn::tensor::activation::{log_softmax, softmax};
use burn::tensor::{Tensor, TensorData};

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
