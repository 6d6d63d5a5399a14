//! The first principal component of a layer's activations, shared by Eigen-CAM,
//! EigenGrad-CAM and `--eigen-smooth`.
//!
//! pytorch-grad-cam's `get_2d_projection` takes a full SVD of each image's centred
//! `(h*w) x channels` matrix `M` and returns `M v1` (v1: the first right singular vector). We
//! compute the same vector exactly and faster from the smaller Gram matrix, in f64: with
//! `n = h*w` rows and `c` channels, either `M Mᵀ = U Σ² Uᵀ` (n <= c; then `M v1 = σ1 u1`) or
//! `Mᵀ M = V Σ² Vᵀ` (then `M v1` directly), the eigen-decomposition by cyclic Jacobi rotations.

use burn::tensor::{Tensor, TensorData};

/// Projects each image's centred `(h*w) x channels` matrix on its first right singular vector,
/// as pytorch-grad-cam's `get_2d_projection`: `[batch, h, w]`.
///
/// Sign rule: an SVD's sign is arbitrary, so the projection is negated when its dot product
/// with the per-pixel channel sum of the (uncentred) input is negative. The map then points
/// the same way as the activations themselves. NaNs count as 0, as in pytorch-grad-cam.
pub fn first_component(x: Tensor<4>) -> Tensor<3> {
    first_component_signed(x, SignRule::ChannelSum)
}

/// How the arbitrary sign of an SVD projection is fixed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignRule {
    /// Agree with the per-pixel channel sum of the input ([`first_component`]).
    ChannelSum,
    /// Make the larger of `|min|` and `|max|` the maximum (Seg-Eigen-CAM's Eq. 13:
    /// pytorch-grad-cam's `get_2d_projection_with_sign_correction`).
    LargerMagnitudePositive,
}

/// [`first_component`] with the sign fixed by `rule`.
pub fn first_component_signed(x: Tensor<4>, rule: SignRule) -> Tensor<3> {
    let [batch, channels, h, w] = x.dims();
    let device = x.device();
    let data: Vec<f32> = x.into_data().iter::<f32>().collect();
    let n = h * w;
    let mut out = Vec::with_capacity(batch * n);
    for image in data.chunks(channels * n.max(1)).take(batch) {
        out.extend(
            project(image, channels, n, rule)
                .into_iter()
                .map(|v| v as f32),
        );
    }
    Tensor::from_data(TensorData::new(out, [batch, h, w]), &device)
}

/// The signed projection of one image, `image` laid out `[channels, n]`.
fn project(image: &[f32], c: usize, n: usize, rule: SignRule) -> Vec<f64> {
    let value = |k: usize, p: usize| {
        let v = image[k * n + p] as f64;
        if v.is_nan() { 0.0 } else { v }
    };
    // Row-major n x c, centred per channel.
    let mut m = vec![0.0f64; n * c];
    let mut channel_sum = vec![0.0f64; n];
    for k in 0..c {
        let mean = (0..n).map(|p| value(k, p)).sum::<f64>() / n.max(1) as f64;
        for p in 0..n {
            let v = value(k, p);
            channel_sum[p] += v;
            m[p * c + k] = v - mean;
        }
    }
    let projection = if n <= c {
        let mut gram = vec![0.0f64; n * n];
        for i in 0..n {
            for j in i..n {
                let dot: f64 = m[i * c..(i + 1) * c]
                    .iter()
                    .zip(&m[j * c..(j + 1) * c])
                    .map(|(a, b)| a * b)
                    .sum();
                gram[i * n + j] = dot;
                gram[j * n + i] = dot;
            }
        }
        let (lambda, u) = top_eigenpair(gram, n);
        let sigma = lambda.max(0.0).sqrt();
        u.into_iter().map(|v| sigma * v).collect::<Vec<f64>>()
    } else {
        let mut gram = vec![0.0f64; c * c];
        for row in m.chunks(c) {
            for i in 0..c {
                let a = row[i];
                if a != 0.0 {
                    for (g, b) in gram[i * c + i..(i + 1) * c].iter_mut().zip(&row[i..]) {
                        *g += a * b;
                    }
                }
            }
        }
        for i in 0..c {
            for j in 0..i {
                gram[i * c + j] = gram[j * c + i];
            }
        }
        let (_, v) = top_eigenpair(gram, c);
        m.chunks(c)
            .map(|row| row.iter().zip(&v).map(|(a, b)| a * b).sum())
            .collect()
    };
    let flip = match rule {
        SignRule::ChannelSum => {
            projection
                .iter()
                .zip(&channel_sum)
                .map(|(a, b)| a * b)
                .sum::<f64>()
                < 0.0
        }
        SignRule::LargerMagnitudePositive => {
            let min = projection.iter().copied().fold(f64::INFINITY, f64::min);
            let max = projection.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            min.abs() > max.abs()
        }
    };
    if flip {
        projection.into_iter().map(|v| -v).collect()
    } else {
        projection
    }
}

/// The largest eigenvalue of the symmetric `m x m` matrix `a` (row-major) and a unit
/// eigenvector for it, by cyclic Jacobi rotations (Numerical Recipes' `jacobi`).
pub(super) fn top_eigenpair(mut a: Vec<f64>, m: usize) -> (f64, Vec<f64>) {
    if m == 0 {
        return (0.0, Vec::new());
    }
    let mut v = vec![0.0f64; m * m];
    for i in 0..m {
        v[i * m + i] = 1.0;
    }
    let mut d: Vec<f64> = (0..m).map(|i| a[i * m + i]).collect();
    let mut b = d.clone();
    let mut z = vec![0.0f64; m];
    for sweep in 0..100 {
        let off: f64 = (0..m)
            .flat_map(|p| (p + 1..m).map(move |q| (p, q)))
            .map(|(p, q)| a[p * m + q].abs())
            .sum();
        if off == 0.0 {
            break;
        }
        let threshold = if sweep < 3 {
            0.2 * off / (m * m) as f64
        } else {
            0.0
        };
        for p in 0..m - 1 {
            for q in p + 1..m {
                let apq = a[p * m + q];
                let g = 100.0 * apq.abs();
                if sweep > 3 && d[p].abs() + g == d[p].abs() && d[q].abs() + g == d[q].abs() {
                    a[p * m + q] = 0.0;
                } else if apq.abs() > threshold {
                    let h = d[q] - d[p];
                    let t = if h.abs() + g == h.abs() {
                        apq / h
                    } else {
                        let theta = 0.5 * h / apq;
                        let t = 1.0 / (theta.abs() + (1.0 + theta * theta).sqrt());
                        if theta < 0.0 { -t } else { t }
                    };
                    let c = 1.0 / (1.0 + t * t).sqrt();
                    let s = t * c;
                    let tau = s / (1.0 + c);
                    let h = t * apq;
                    z[p] -= h;
                    z[q] += h;
                    d[p] -= h;
                    d[q] += h;
                    a[p * m + q] = 0.0;
                    let rotate = |x: &mut [f64], i: usize, j: usize| {
                        let (g, h) = (x[i], x[j]);
                        x[i] = g - s * (h + g * tau);
                        x[j] = h + s * (g - h * tau);
                    };
                    for j in 0..p {
                        rotate(&mut a, j * m + p, j * m + q);
                    }
                    for j in p + 1..q {
                        rotate(&mut a, p * m + j, j * m + q);
                    }
                    for j in q + 1..m {
                        rotate(&mut a, p * m + j, q * m + j);
                    }
                    for j in 0..m {
                        rotate(&mut v, j * m + p, j * m + q);
                    }
                }
            }
        }
        for i in 0..m {
            b[i] += z[i];
            d[i] = b[i];
            z[i] = 0.0;
        }
    }
    let top = (0..m).fold(0, |best, i| if d[i] > d[best] { i } else { best });
    (d[top], (0..m).map(|j| v[j * m + top]).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A deterministic pseudo-random matrix in [-0.5, 0.5).
    fn random(len: usize, seed: u64) -> Vec<f32> {
        let mut s = seed;
        (0..len)
            .map(|_| {
                s = s
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((s >> 40) as f32 / (1u64 << 24) as f32) - 0.5
            })
            .collect()
    }

    #[test]
    fn jacobi_finds_the_top_eigenpair() {
        // [[2, 1], [1, 2]]: eigenvalues 3 and 1, top eigenvector (1, 1)/sqrt(2).
        let (l, v) = top_eigenpair(vec![2.0, 1.0, 1.0, 2.0], 2);
        assert!((l - 3.0).abs() < 1e-12);
        assert!((v[0].abs() - 0.5f64.sqrt()).abs() < 1e-12 && (v[0] - v[1]).abs() < 1e-12);
    }

    /// Both Gram routes give `M v1` for the top singular pair: `M Mᵀ (M v1) = σ1² (M v1)`.
    #[test]
    fn projection_is_the_top_singular_direction() {
        for (c, n) in [(1280, 49), (256, 64), (8, 100)] {
            let image = random(c * n, (c * n) as u64);
            let p = project(&image, c, n, SignRule::ChannelSum);
            // Centred matrix and M Mᵀ p.
            let mut m = vec![0.0f64; n * c];
            for k in 0..c {
                let mean = (0..n).map(|i| image[k * n + i] as f64).sum::<f64>() / n as f64;
                for i in 0..n {
                    m[i * c + k] = image[k * n + i] as f64 - mean;
                }
            }
            let mt_p: Vec<f64> = (0..c)
                .map(|k| (0..n).map(|i| m[i * c + k] * p[i]).sum())
                .collect();
            let mmt_p: Vec<f64> = (0..n)
                .map(|i| (0..c).map(|k| m[i * c + k] * mt_p[k]).sum())
                .collect();
            let norm2: f64 = p.iter().map(|x| x * x).sum();
            let lambda: f64 = mmt_p.iter().zip(&p).map(|(a, b)| a * b).sum::<f64>() / norm2;
            let residual: f64 = mmt_p
                .iter()
                .zip(&p)
                .map(|(a, b)| (a - lambda * b).powi(2))
                .sum::<f64>()
                .sqrt();
            assert!(
                residual <= 1e-9 * lambda * norm2.sqrt(),
                "{c}x{n}: residual {residual}"
            );
            // |M v1| = σ1, so |p|² = λ.
            assert!(
                (norm2 - lambda).abs() <= 1e-9 * lambda,
                "{c}x{n}: {norm2} vs {lambda}"
            );
            // Power iteration from p cannot find a larger eigenvalue.
            let trace: f64 = m.iter().map(|x| x * x).sum();
            assert!(lambda <= trace);
        }
    }

    #[test]
    fn sign_follows_the_channel_sum() {
        // One channel, a ramp: the projection must increase with the ramp, and so must its
        // negation's projection decrease.
        let ramp: Vec<f32> = (0..16).map(|i| i as f32).collect();
        let p = project(&ramp, 1, 16, SignRule::ChannelSum);
        assert!(p[15] > p[0]);
        let neg: Vec<f32> = ramp.iter().map(|v| -v).collect();
        let q = project(&neg, 1, 16, SignRule::ChannelSum);
        assert!(q[15] < q[0]);
    }
}
