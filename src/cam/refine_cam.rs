//! RefineCAM ("How to Evaluate and Refine your CAM", arXiv 2605.14641), as pytorch-grad-cam's
//! `RefineCAM` with its default base method, Grad-CAM++.

use burn::tensor::Tensor;

use super::{CamInput, GradCamPlusPlus, Method, fuse_layers};
use crate::error::Result;

/// RefineCAM: the base method's map at each explained layer (`--layer` given several times),
/// each as pytorch-grad-cam returns it for that layer alone (clamped at 0, min-max scaled,
/// resized to the input, scaled again), multiplied together position by position, and the
/// product min-max scaled: `M = scale(prod_l M_l)`. A position stays bright only where every
/// layer agrees, which denoises the sharp but noisy maps of early layers.
///
/// The base method is Grad-CAM++ (upstream's default); its sign convention carries over. With
/// one layer the map is the base method's. torchcam 0.5.0's `RefineCAM` multiplies the same
/// maps at the largest layer's resolution instead of the input's; parity is with
/// pytorch-grad-cam's.
#[derive(Debug, Clone, Copy, Default)]
pub struct RefineCam {
    /// The per-layer method.
    pub base: GradCamPlusPlus,
}

impl Method for RefineCam {
    fn name(&self) -> &'static str {
        "refinecam"
    }

    fn uses_gradients(&self) -> bool {
        Method::uses_gradients(&self.base)
    }

    fn raw_map(&self, cam: &CamInput, eigen_smooth: bool) -> Result<Tensor<3>> {
        self.base.raw_map(cam, eigen_smooth)
    }

    fn fuse(&self, layers: &[&[f32]]) -> Vec<f32> {
        let mut product: Vec<f32> = Vec::new();
        for &layer in layers {
            // Each layer as the base method alone returns it (its one-layer aggregation).
            let map = fuse_layers(std::iter::once(layer));
            if product.is_empty() {
                product = map;
            } else {
                product.iter_mut().zip(&map).for_each(|(p, m)| *p *= m);
            }
        }
        // scale_cam_image: min-max without a clamp (the product is non-negative anyway).
        fuse_layers(std::iter::once(product.as_slice()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layers_multiply_so_only_agreeing_positions_stay_bright() {
        // Scaled maps [0, 0.5, 1, 1] and [1, 1, 0, 1]: product [0, 0.5, 0, 1].
        let a = [0.0, 0.5, 1.0, 1.0];
        let b = [1.0, 1.0, 0.0, 1.0];
        let out = RefineCam::default().fuse(&[&a, &b]);
        let expected = [0.0, 0.5, 0.0, 1.0];
        for (o, e) in out.iter().zip(expected) {
            assert!((o - e).abs() < 1e-6, "{out:?}");
        }
        // One layer: the base method's map.
        assert_eq!(
            RefineCam::default().fuse(&[&a]),
            fuse_layers([&a[..]].into_iter())
        );
    }
}
