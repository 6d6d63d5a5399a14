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
/// eigenvector for it, as LAPACK's `dsyevx` finds one eigenpair: Householder reduction to a
/// tridiagonal `T = Qᵀ A Q` (`4/3 m³` flops, the only cubic step), the top eigenvalue of `T`
/// by Sturm-sequence bisection, its eigenvector by inverse iteration, then `Q` applied to it.
/// (Cyclic Jacobi, used before, took 290 s for a 1024 x 1024 kernel.)
pub(super) fn top_eigenpair(mut a: Vec<f64>, m: usize) -> (f64, Vec<f64>) {
    if m == 0 {
        return (0.0, Vec::new());
    }
    let reflectors = tridiagonalize(&mut a, m);
    let diagonal: Vec<f64> = (0..m).map(|i| a[i * m + i]).collect();
    let off: Vec<f64> = (1..m).map(|i| a[i * m + i - 1]).collect();
    let lambda = largest_tridiagonal_eigenvalue(&diagonal, &off);
    let mut y = tridiagonal_eigenvector(&diagonal, &off, lambda);
    // y ← H_0 H_1 … H_{m-3} y: the eigenvector of A.
    for (k, v) in reflectors.iter().enumerate().rev() {
        let tail = &mut y[k + 1..];
        let dot: f64 = v.iter().zip(tail.iter()).map(|(a, b)| a * b).sum();
        tail.iter_mut()
            .zip(v)
            .for_each(|(t, vi)| *t -= 2.0 * dot * vi);
    }
    (lambda, y)
}

/// Reduces `a` in place to tridiagonal form by Householder reflections `H_k = I - 2 v vᵀ`
/// (unit `v` over rows `k+1..m`); returns the `v`s. Only the diagonal and the first
/// sub-diagonal of `a` are meaningful afterwards.
fn tridiagonalize(a: &mut [f64], m: usize) -> Vec<Vec<f64>> {
    let mut reflectors = Vec::with_capacity(m.saturating_sub(2));
    for k in 0..m.saturating_sub(2) {
        let x: Vec<f64> = (k + 1..m).map(|i| a[i * m + k]).collect();
        let norm = x.iter().map(|v| v * v).sum::<f64>().sqrt();
        let alpha = if x[0] > 0.0 { -norm } else { norm };
        let mut v = x;
        v[0] -= alpha;
        let v_norm = v.iter().map(|e| e * e).sum::<f64>().sqrt();
        if v_norm == 0.0 {
            // The column is already reduced (zero below the sub-diagonal).
            reflectors.push(vec![0.0; m - k - 1]);
            continue;
        }
        v.iter_mut().for_each(|e| *e /= v_norm);
        // A22 ← H A22 H = A22 - 2 (v qᵀ + q vᵀ), with p = A22 v and q = p - (vᵀ p) v.
        let size = m - k - 1;
        let offset = k + 1;
        let p: Vec<f64> = (0..size)
            .map(|i| {
                let row = &a[(offset + i) * m + offset..(offset + i) * m + m];
                row.iter().zip(&v).map(|(a, b)| a * b).sum()
            })
            .collect();
        let vp: f64 = v.iter().zip(&p).map(|(a, b)| a * b).sum();
        let q: Vec<f64> = p.iter().zip(&v).map(|(p, v)| p - vp * v).collect();
        for i in 0..size {
            let row = &mut a[(offset + i) * m + offset..(offset + i) * m + m];
            let (vi, qi) = (v[i], q[i]);
            for ((r, vj), qj) in row.iter_mut().zip(&v).zip(&q) {
                *r -= 2.0 * (vi * qj + qi * vj);
            }
        }
        a[offset * m + k] = alpha;
        a[k * m + offset] = alpha;
        reflectors.push(v);
    }
    reflectors
}

/// How many eigenvalues of the tridiagonal matrix (`diagonal`, `off`) are below `x` (Sturm).
fn eigenvalues_below(diagonal: &[f64], off: &[f64], x: f64) -> usize {
    let mut count = 0;
    let mut q = 1.0f64;
    for (i, d) in diagonal.iter().enumerate() {
        let coupling = if i == 0 {
            0.0
        } else {
            off[i - 1] * off[i - 1] / q
        };
        q = d - x - coupling;
        if q == 0.0 {
            q = -f64::EPSILON * (d.abs() + x.abs()).max(f64::MIN_POSITIVE);
        }
        count += usize::from(q < 0.0);
    }
    count
}

/// The largest eigenvalue of a symmetric tridiagonal matrix, by bisection between its
/// Gershgorin bounds to the last bit.
fn largest_tridiagonal_eigenvalue(diagonal: &[f64], off: &[f64]) -> f64 {
    let radius = |i: usize| {
        let left = if i > 0 { off[i - 1].abs() } else { 0.0 };
        left + off.get(i).map_or(0.0, |e| e.abs())
    };
    let (mut lo, mut hi) =
        (0..diagonal.len()).fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), i| {
            (
                lo.min(diagonal[i] - radius(i)),
                hi.max(diagonal[i] + radius(i)),
            )
        });
    let n = diagonal.len();
    for _ in 0..200 {
        let mid = 0.5 * (lo + hi);
        if mid <= lo || mid >= hi {
            break;
        }
        if eigenvalues_below(diagonal, off, mid) == n {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    hi
}

/// A unit eigenvector of the tridiagonal matrix for its largest eigenvalue `lambda`, by
/// inverse iteration with the shift just above `lambda`: `sigma I - T` is then positive
/// definite, so its LDLᵀ factorisation needs no pivoting.
fn tridiagonal_eigenvector(diagonal: &[f64], off: &[f64], lambda: f64) -> Vec<f64> {
    let n = diagonal.len();
    let scale = diagonal
        .iter()
        .chain(off)
        .fold(0.0f64, |m, v| m.max(v.abs()));
    if scale == 0.0 {
        let mut e = vec![0.0; n];
        e[0] = 1.0;
        return e;
    }
    let sigma = lambda + 1e-10 * scale;
    // LDLᵀ of sigma I - T: pivots d and multipliers l.
    let mut pivots = vec![0.0f64; n];
    let mut multipliers = vec![0.0f64; n];
    for i in 0..n {
        let m = sigma - diagonal[i];
        pivots[i] = if i == 0 {
            m
        } else {
            multipliers[i] = -off[i - 1] / pivots[i - 1];
            m + multipliers[i] * off[i - 1]
        };
        pivots[i] = pivots[i].max(f64::EPSILON * scale);
    }
    // A start with no special structure; three solves shrink the other components by
    // (1e-10 / gap)³.
    let mut x: Vec<f64> = (0..n)
        .map(|i| 1.0 + 0.5 * ((i as f64) * 0.7548).sin())
        .collect();
    for _ in 0..3 {
        for i in 1..n {
            x[i] -= multipliers[i] * x[i - 1];
        }
        for i in 0..n {
            x[i] /= pivots[i];
        }
        for i in (0..n - 1).rev() {
            x[i] -= multipliers[i + 1] * x[i + 1];
        }
        let norm = x.iter().map(|v| v * v).sum::<f64>().sqrt();
        x.iter_mut().for_each(|v| *v /= norm);
    }
    x
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
    fn the_top_eigenpair_of_small_matrices_worked_out_by_hand() {
        // [[2, 1], [1, 2]]: eigenvalues 3 and 1, top eigenvector (1, 1)/sqrt(2).
        let (l, v) = top_eigenpair(vec![2.0, 1.0, 1.0, 2.0], 2);
        assert!((l - 3.0).abs() < 1e-12);
        assert!((v[0].abs() - 0.5f64.sqrt()).abs() < 1e-12 && (v[0] - v[1]).abs() < 1e-12);
        // The path graph's Laplacian-like [[2,-1,0],[-1,2,-1],[0,-1,2]]: eigenvalues
        // 2 - sqrt(2), 2, 2 + sqrt(2); the top eigenvector (1, -sqrt(2), 1) / 2.
        let (l, v) = top_eigenpair(vec![2.0, -1.0, 0.0, -1.0, 2.0, -1.0, 0.0, -1.0, 2.0], 3);
        assert!((l - (2.0 + 2f64.sqrt())).abs() < 1e-12, "{l}");
        let s = v[0].signum();
        let expected = [0.5, -0.5 * 2f64.sqrt(), 0.5];
        assert!(
            v.iter()
                .zip(expected)
                .all(|(a, b)| (a * s - b).abs() < 1e-12),
            "{v:?}"
        );
        // A zero matrix: eigenvalue 0 and some unit vector.
        let (l, v) = top_eigenpair(vec![0.0; 16], 4);
        assert_eq!(l, 0.0);
        assert!((v.iter().map(|x| x * x).sum::<f64>() - 1.0).abs() < 1e-12);
    }

    /// On random symmetric matrices (with a dense spectrum) the pair satisfies `A v = λ v`
    /// and no Rayleigh quotient exceeds `λ`.
    #[test]
    fn the_top_eigenpair_of_random_matrices_is_an_eigenpair_and_the_largest() {
        for (m, seed) in [(5, 1u64), (64, 2), (300, 3)] {
            let r = random(m * m, seed);
            let a: Vec<f64> = (0..m * m)
                .map(|k| (r[k] as f64 + r[(k % m) * m + k / m] as f64) / 2.0)
                .collect();
            let (lambda, v) = top_eigenpair(a.clone(), m);
            let av: Vec<f64> = (0..m)
                .map(|i| (0..m).map(|j| a[i * m + j] * v[j]).sum())
                .collect();
            let residual = av
                .iter()
                .zip(&v)
                .map(|(x, y)| (x - lambda * y).powi(2))
                .sum::<f64>()
                .sqrt();
            assert!(residual < 1e-10 * m as f64, "{m}: residual {residual}");
            for probe in 0..8 {
                let x: Vec<f64> = random(m, 100 + probe).iter().map(|&e| e as f64).collect();
                let ax: Vec<f64> = (0..m)
                    .map(|i| (0..m).map(|j| a[i * m + j] * x[j]).sum())
                    .collect();
                let quotient = ax.iter().zip(&x).map(|(p, q)| p * q).sum::<f64>()
                    / x.iter().map(|e| e * e).sum::<f64>();
                assert!(quotient <= lambda + 1e-12, "{m}: {quotient} > {lambda}");
            }
        }
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

    /// `A = H diag(λ) H` with a Householder `H = I - 2 u uᵀ` has the spectrum `λ` and the
    /// eigenvectors `H e_i`: the top pair is known exactly, with a gap of `1/m` to the next.
    #[test]
    fn the_top_eigenpair_of_a_matrix_of_known_spectrum() {
        let m = 200;
        let raw: Vec<f64> = random(m, 7).iter().map(|&e| e as f64).collect();
        let norm = raw.iter().map(|e| e * e).sum::<f64>().sqrt();
        let u: Vec<f64> = raw.iter().map(|e| e / norm).collect();
        let h = |i: usize, j: usize| f64::from(u8::from(i == j)) - 2.0 * u[i] * u[j];
        // The largest eigenvalue sits in the middle of the index range.
        let spectrum = |i: usize| -((i as f64 - 120.0).abs()) / m as f64;
        let a: Vec<f64> = (0..m * m)
            .map(|k| {
                (0..m)
                    .map(|l| h(k / m, l) * spectrum(l) * h(l, k % m))
                    .sum()
            })
            .collect();
        let (lambda, v) = top_eigenpair(a, m);
        assert!(lambda.abs() < 1e-12, "{lambda}");
        let dot: f64 = (0..m).map(|i| v[i] * h(i, 120)).sum();
        assert!((dot.abs() - 1.0).abs() < 1e-9, "{dot}");
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
