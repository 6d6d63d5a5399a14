//! KPCA-CAM (Karmani et al., "KPCA-CAM: Visual Explainability of Deep Computer Vision Models
//! using Kernel PCA", MMSP 2024), as pytorch-grad-cam's `KPCA_CAM`.

use burn::tensor::{Tensor, TensorData};

use super::eigen::top_eigenpair;
use super::{CamInput, Method, flat};
use crate::error::{Error, Result};

/// A kernel of scikit-learn's `KernelPCA`, with its default parameters there.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Kernel {
    /// `x . y`.
    Linear,
    /// `(gamma x . y + coef0)^degree` (scikit-learn: degree 3, coef0 1).
    Poly { degree: i32, coef0: f64 },
    /// `exp(-gamma |x - y|^2)`.
    Rbf,
    /// `tanh(gamma x . y + coef0)` (scikit-learn: coef0 1); pytorch-grad-cam's default.
    Sigmoid { coef0: f64 },
    /// `x . y / (|x| |y|)` (0 for a zero vector).
    Cosine,
}

/// KPCA-CAM: each image's `(h*w) x channels` activation matrix, centred per channel, goes
/// through kernel PCA (scikit-learn's `KernelPCA(n_components=1)`): the kernel matrix `K` of
/// the positions is double-centred, and the map is its top eigenvector times the square
/// root of its eigenvalue (0 if that eigenvalue is not positive). Needs no gradient and
/// ignores the target.
///
/// Sign: scikit-learn's `svd_flip`: the eigenvector's entry of largest magnitude is made
/// positive. `eigen_smooth` changes nothing. Cost: an eigen-decomposition of an
/// `(h*w) x (h*w)` matrix per image (cubic in the number of positions).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct KpcaCam {
    pub kernel: Kernel,
    /// The kernel's `gamma`; `None`: `1 / channels`, as scikit-learn.
    pub gamma: Option<f64>,
}

impl Default for KpcaCam {
    fn default() -> Self {
        KpcaCam {
            kernel: Kernel::Sigmoid { coef0: 1.0 },
            gamma: None,
        }
    }
}

impl Method for KpcaCam {
    fn name(&self) -> &'static str {
        "kpcacam"
    }

    fn uses_gradients(&self) -> bool {
        false
    }

    fn raw_map(&self, cam: &CamInput, _eigen_smooth: bool) -> Result<Tensor<3>> {
        let [batch, channels, h, w] = cam.activations.dims();
        let n = h * w;
        // The kernel is n x n and its eigen solver cubic in n.
        if n > Self::MAX_POSITIONS {
            return Err(Error::Invalid(format!(
                "kpcacam: the layer's map is {h}x{w} ({n} positions); its kernel PCA takes at \
                 most {} (56x56): choose a later layer",
                Self::MAX_POSITIONS
            )));
        }
        let values = flat(cam.activations.clone());
        let mut out = Vec::with_capacity(batch * n);
        for image in values.chunks((channels * n).max(1)).take(batch) {
            out.extend(
                self.project(image, channels, n)
                    .into_iter()
                    .map(|v| v as f32),
            );
        }
        Ok(Tensor::from_data(
            TensorData::new(out, [batch, h, w]),
            &cam.activations.device(),
        ))
    }
}

impl KpcaCam {
    /// The largest map (in positions) KPCA-CAM takes: 56x56 (3136) takes 40 s per image on
    /// Lite0's `blocks.2`, a 112x112 map would take 64 times that.
    pub const MAX_POSITIONS: usize = 3136;

    /// The first kernel principal component of one image laid out `[channels, n]`.
    fn project(&self, image: &[f32], c: usize, n: usize) -> Vec<f64> {
        // Positions as rows (n x c), centred per channel; NaNs count as 0 as upstream.
        let mut x = vec![0.0f64; n * c];
        for k in 0..c {
            let plane = &image[k * n..(k + 1) * n];
            let clean = |v: f32| if v.is_nan() { 0.0 } else { v as f64 };
            let mean = plane.iter().map(|&v| clean(v)).sum::<f64>() / n.max(1) as f64;
            for (p, &v) in plane.iter().enumerate() {
                x[p * c + k] = clean(v) - mean;
            }
        }
        let gamma = self.gamma.unwrap_or(1.0 / c.max(1) as f64);
        let row = |p: usize| &x[p * c..(p + 1) * c];
        let dot = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(u, v)| u * v).sum::<f64>();
        let norms: Vec<f64> = (0..n).map(|p| dot(row(p), row(p))).collect();
        let mut kernel = vec![0.0f64; n * n];
        for i in 0..n {
            for j in i..n {
                let d = dot(row(i), row(j));
                let value = match self.kernel {
                    Kernel::Linear => d,
                    Kernel::Poly { degree, coef0 } => (gamma * d + coef0).powi(degree),
                    Kernel::Rbf => (-gamma * (norms[i] + norms[j] - 2.0 * d).max(0.0)).exp(),
                    Kernel::Sigmoid { coef0 } => (gamma * d + coef0).tanh(),
                    Kernel::Cosine => {
                        let norm = (norms[i] * norms[j]).sqrt();
                        if norm > 0.0 { d / norm } else { 0.0 }
                    }
                };
                kernel[i * n + j] = value;
                kernel[j * n + i] = value;
            }
        }
        double_centre(&mut kernel, n);
        let (lambda, mut v) = top_eigenpair(kernel, n);
        let largest = v.iter().copied().fold(
            0.0f64,
            |best, e| if e.abs() > best.abs() { e } else { best },
        );
        if largest < 0.0 {
            v.iter_mut().for_each(|e| *e = -*e);
        }
        let scale = lambda.max(0.0).sqrt();
        v.into_iter().map(|e| e * scale).collect()
    }
}

/// scikit-learn's `KernelCenterer`: `K - row means - column means + overall mean`.
fn double_centre(k: &mut [f64], n: usize) {
    let means: Vec<f64> = (0..n)
        .map(|j| (0..n).map(|i| k[i * n + j]).sum::<f64>() / n as f64)
        .collect();
    let all = means.iter().sum::<f64>() / n.max(1) as f64;
    for i in 0..n {
        for j in 0..n {
            k[i * n + j] += all - means[i] - means[j];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_linear_kernel_gives_the_principal_component_with_the_largest_entry_positive() {
        // Two channels, three positions; the second channel is constant, so the centred rows
        // are (-4/3, 0), (-1/3, 0), (5/3, 0). The linear kernel `x xᵀ` has one non-zero
        // eigenvalue |x|² with eigenvector x / |x|: the component is x itself, its sign
        // chosen so that the largest-magnitude entry (5/3) is positive.
        let image = [0.0, 1.0, 3.0, 5.0, 5.0, 5.0];
        let m = KpcaCam {
            kernel: Kernel::Linear,
            gamma: None,
        };
        let p = m.project(&image, 2, 3);
        let expected = [-4.0 / 3.0, -1.0 / 3.0, 5.0 / 3.0];
        for (a, b) in p.iter().zip(expected) {
            assert!((a - b).abs() < 1e-12, "{p:?}");
        }
    }
}
