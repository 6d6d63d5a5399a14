//! ShapleyCAM (Cai et al., "CAMs as Shapley Value-based Explainers", 2025), as
//! pytorch-grad-cam's `ShapleyCAM`, explaining its `ClassifierOutputReST` target.

use std::sync::Arc;

use burn::tensor::Tensor;

use super::{
    CamInput, ClassifierOutputReST, Method, Target, batch_scores, channel_sum_or_projection,
};
use crate::error::{Error, Result};

/// ShapleyCAM: channels weighted by the spatial mean of the gradient minus half the
/// Hessian-vector product along the activations, `w_k = mean_ij (g - H A / 2)_k,ij`, with
/// `g = d s / d A` and `H = d^2 s / d A^2` of the score `s` of [`ClassifierOutputReST`] of
/// the runner's target's class (`y_c + log_softmax(y)_c`; with [`rest`](Self::rest) off, of
/// the runner's target as given).
///
/// The Hessian-vector product: burn's autodiff has no double backward, so `H A` is the
/// central difference of the head's gradient along `A` itself,
/// `(g((1 + e) A) - g((1 - e) A)) / (2 e)`, `e` = [`step`](Self::step): two more head
/// backward passes. pytorch-grad-cam takes it by double backpropagation; the parity tests
/// measure the difference. Piecewise-linear parts of a head (ReLU) have no curvature, as in
/// autograd, unless a kink lies within `e A`. Sign: as Grad-CAM's.
#[derive(Debug, Clone, Copy)]
pub struct ShapleyCam {
    /// Explain `ClassifierOutputReST` of the target's class (default) rather than the target.
    pub rest: bool,
    /// The relative step of the finite difference.
    pub step: f32,
}

impl Default for ShapleyCam {
    fn default() -> Self {
        ShapleyCam {
            rest: true,
            step: 1e-2,
        }
    }
}

impl ShapleyCam {
    /// `d s / d A` at `activations`, with the head's autodiff.
    fn gradient(
        cam: &CamInput,
        targets: &[Arc<dyn Target>],
        activations: Tensor<4>,
    ) -> Result<Tensor<4>> {
        let leaf = activations.autodiff().require_grad();
        let logits = cam.head(leaf.clone(), None)?;
        let grads = batch_scores(targets, logits, |i| i).sum().backward();
        leaf.grad(&grads).ok_or_else(|| {
            Error::Invalid("the target score does not depend on the layer".to_string())
        })
    }
}

impl Method for ShapleyCam {
    fn name(&self) -> &'static str {
        "shapleycam"
    }

    // The runner's gradient is of its own target; with `rest` the target is rebuilt.
    fn uses_gradients(&self) -> bool {
        false
    }

    fn raw_map(&self, cam: &CamInput, eigen_smooth: bool) -> Result<Tensor<3>> {
        let targets: Vec<Arc<dyn Target>> = if self.rest {
            cam.targets
                .iter()
                .map(|t| {
                    t.class()
                        .map(|c| Arc::new(ClassifierOutputReST(c)) as Arc<dyn Target>)
                        .ok_or_else(|| {
                            Error::Invalid(
                                "ShapleyCAM explains a class: give it a class target".to_string(),
                            )
                        })
                })
                .collect::<Result<_>>()?
        } else {
            cam.targets.to_vec()
        };
        let a = cam.activations.clone();
        let g = Self::gradient(cam, &targets, a.clone())?;
        let e = self.step;
        let up = Self::gradient(cam, &targets, a.clone() * (1.0 + e))?;
        let down = Self::gradient(cam, &targets, a.clone() * (1.0 - e))?;
        let hvp = (up - down) / (2.0 * e);
        let weights = (g - hvp * 0.5).mean_dims(&[2, 3]);
        Ok(channel_sum_or_projection(a * weights, eigen_smooth))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, TensorData};

    #[test]
    fn rest_is_the_logit_plus_its_log_softmax() {
        // Logits (2, 1, 0), class 0: 2 + (2 - ln(e^2 + e + 1)) = 4 - 2.40761 = 1.59239.
        let logits = Tensor::<1>::from_data(
            TensorData::new(vec![2.0f32, 1.0, 0.0], [3]),
            &Device::flex(),
        );
        let score = ClassifierOutputReST(0).score(logits).into_scalar::<f32>();
        let e = std::f32::consts::E;
        assert!(
            (score - (4.0 - (e * e + e + 1.0).ln())).abs() < 1e-6,
            "{score}"
        );
    }
}
