//! FEM, the Feature Explanation Method (Fuad et al., "Features understanding in 3D CNNs for
//! actions recognition in video", IPTA 2020), as pytorch-grad-cam's `FEM`.

use burn::tensor::{Tensor, TensorData};

use super::{CamInput, ChannelWeights, flat};
use crate::error::Result;

/// FEM: each channel is weighed by the fraction of its positions that stand out, those above
/// its mean plus `k` standard deviations (population, over the positions):
/// `w_k = mean_ij [A_ij > mean(A_k) + k std(A_k)]`. Needs no gradient, so the map does not
/// depend on the target class.
///
/// Sign: weights are in [0, 1], so the map is positive where strongly active channels are.
#[derive(Debug, Clone, Copy)]
pub struct Fem {
    /// The number of standard deviations above the mean (pytorch-grad-cam's default: 2).
    pub k: f32,
}

impl Default for Fem {
    fn default() -> Self {
        Fem { k: 2.0 }
    }
}

impl ChannelWeights for Fem {
    fn name(&self) -> &'static str {
        "fem"
    }

    fn uses_gradients(&self) -> bool {
        false
    }

    fn weights(&self, cam: &CamInput) -> Result<Tensor<2>> {
        let [batch, channels, h, w] = cam.activations.dims();
        let values = flat(cam.activations.clone());
        let positions = (h * w).max(1);
        let weights: Vec<f32> = values
            .chunks(positions)
            .map(|plane| {
                // In f32 as NumPy's float32 mean and std, so the threshold is the same.
                let n = plane.len() as f32;
                let mean = plane.iter().sum::<f32>() / n;
                let var = plane.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / n;
                let threshold = mean + self.k * var.sqrt();
                plane.iter().filter(|&&v| v > threshold).count() as f32 / n
            })
            .collect();
        Ok(Tensor::from_data(
            TensorData::new(weights, [batch, channels]),
            &cam.activations.device(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_count_the_positions_above_mean_plus_k_std() {
        // Channel 0: [0, 0, 0, 4]: mean 1, std sqrt(3) = 1.73; k = 1 -> threshold 2.73: one of
        // four positions. Channel 1: constant 5: threshold 5, none is above.
        let device = burn::tensor::Device::flex();
        let a = Tensor::<4>::from_data(
            TensorData::new(vec![0.0, 0.0, 0.0, 4.0, 5.0, 5.0, 5.0, 5.0], [1, 2, 2, 2]),
            &device,
        );
        let model = crate::model::build("resnet18", 10, &device).unwrap();
        let input = Tensor::<4>::zeros([1, 3, 8, 8], &device);
        let cam = CamInput {
            activations: a,
            gradients: None,
            model: model.as_ref(),
            context: &crate::model::CutContext::at(0),
            input: &input,
            targets: &[],
            cancel: &crate::cam::Cancel::default(),
        };
        let w = flat(Fem { k: 1.0 }.weights(&cam).unwrap());
        assert_eq!(w, [0.25, 0.0]);
        // k = 0: positions strictly above the mean: 1 of 4, and none for a constant plane.
        assert_eq!(flat(Fem { k: 0.0 }.weights(&cam).unwrap()), [0.25, 0.0]);
    }
}
