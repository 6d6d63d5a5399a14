//! Finer-CAM (Zhang et al., "Finer-CAM: Spotting the Difference Reveals Finer Details for
//! Visual Explanation", CVPR 2025), as pytorch-grad-cam's `FinerCAM` with its default base
//! method, Grad-CAM.

use std::sync::Arc;

use burn::tensor::Tensor;

use super::{CamInput, FinerWeightedTarget, Method, Target, channel_sum_or_projection, flat};
use crate::error::{Error, Result};

/// Finer-CAM: Grad-CAM of a [`FinerWeightedTarget`], the explained class against the
/// classes whose logits are closest to its own (pytorch-grad-cam's
/// `comparison_categories = [1, 2, 3]`: the 2nd to 4th closest, the class itself being the
/// closest), so the map shows what tells the class apart from its look-alikes.
///
/// The comparison classes come from each image's logits; the class explained is the
/// runner's target's (the top-1 by default, as upstream). Sign: positive where features
/// raise the class's margin over the similar classes; the counterfactual's negation is not
/// carried over (the target is rebuilt from the class).
#[derive(Debug, Clone)]
pub struct FinerCam {
    /// Ranks, by closeness of logit, of the comparison classes (default 1, 2, 3).
    pub comparison_ranks: Vec<usize>,
    /// See [`FinerWeightedTarget::alpha`] (default 1).
    pub alpha: f32,
}

impl Default for FinerCam {
    fn default() -> Self {
        FinerCam {
            comparison_ranks: vec![1, 2, 3],
            alpha: 1.0,
        }
    }
}

impl FinerCam {
    /// The Finer-CAM target of class `main` for one image's logits.
    pub fn target(&self, logits: &[f32], main: usize) -> FinerWeightedTarget {
        let reference = logits[main];
        let mut order: Vec<usize> = (0..logits.len()).collect();
        // In f32, as upstream's NumPy; stable, so ties keep index order.
        order.sort_by(|&a, &b| {
            (logits[a] - reference)
                .abs()
                .total_cmp(&(logits[b] - reference).abs())
        });
        FinerWeightedTarget {
            main: order[0],
            comparison: self
                .comparison_ranks
                .iter()
                .filter(|&&r| r < logits.len())
                .map(|&r| order[r])
                .collect(),
            alpha: self.alpha,
        }
    }
}

impl Method for FinerCam {
    fn name(&self) -> &'static str {
        "finercam"
    }

    // The runner's gradient is of its own target; this method makes its own target first.
    fn uses_gradients(&self) -> bool {
        false
    }

    fn raw_map(&self, cam: &CamInput, eigen_smooth: bool) -> Result<Tensor<3>> {
        let leaf = cam.activations.clone().autodiff().require_grad();
        let logits = cam.head(leaf.clone(), None)?;
        let [batch, classes] = logits.dims();
        let values = flat(logits.clone().detach());
        let mut targets: Vec<Arc<dyn Target>> = Vec::with_capacity(batch);
        for (image, row) in values.chunks(classes.max(1)).enumerate() {
            let main = cam.targets[image].class().ok_or_else(|| {
                Error::Invalid("Finer-CAM explains a class: give it a class target".to_string())
            })?;
            targets.push(Arc::new(self.target(row, main)));
        }
        let grads = super::batch_scores(&targets, logits, |i| i)
            .sum()
            .backward();
        let gradients = leaf.grad(&grads).ok_or_else(|| {
            Error::Invalid("the target score does not depend on the layer".to_string())
        })?;
        let weights = gradients.mean_dims(&[2, 3]);
        Ok(channel_sum_or_projection(
            cam.activations.clone() * weights,
            eigen_smooth,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, TensorData};

    #[test]
    fn comparison_classes_are_the_closest_logits_and_the_margin_is_probability_weighted() {
        // |logit - 5| = 0, 0.5, 4, 0.2: closest first 0, 3, 1, 2.
        let t = FinerCam::default().target(&[5.0, 4.5, 1.0, 5.2], 0);
        assert_eq!((t.main, t.comparison.as_slice()), (0, &[3, 1, 2][..]));
        // Logits (2, 1, 0), classes 1 and 2 against 0: p1 : p2 = e : 1, so the score is
        // (e * (2 - 1) + 1 * (2 - 0)) / (e + 1) = 1.26894.
        let target = FinerWeightedTarget {
            main: 0,
            comparison: vec![1, 2],
            alpha: 1.0,
        };
        let logits = Tensor::<1>::from_data(
            TensorData::new(vec![2.0f32, 1.0, 0.0], [3]),
            &Device::flex(),
        );
        let score = target.score(logits).into_scalar::<f32>();
        let e = std::f32::consts::E;
        assert!((score - (e + 2.0) / (e + 1.0)).abs() < 1e-6, "{score}");
    }
}
