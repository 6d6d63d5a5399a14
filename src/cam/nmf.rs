//! Non-negative matrix factorization by coordinate descent, as scikit-learn's `NMF` with
//! `solver="cd"` (Frobenius loss, no regularisation, no shuffling), in float32 as it runs on
//! float32 data.

use super::noise;

/// `X ~ W H`: `W` is `rows x k`, `H` is `k x cols`, both row-major and non-negative.
#[derive(Debug, Clone, PartialEq)]
pub struct Factors {
    pub w: Vec<f32>,
    pub h: Vec<f32>,
    /// Iterations run (at most `max_iter`).
    pub iterations: usize,
}

/// The starting point, scikit-learn's `init="random"` with our seeded normals in place of
/// NumPy's: `avg = sqrt(mean(X) / k)`, `H = avg * |n|` (the first `k * cols` values of the
/// normal stream `seed`), then `W = avg * |n|` (the next `rows * k`).
pub fn random_init(
    x: &[f32],
    rows: usize,
    cols: usize,
    k: usize,
    seed: u64,
) -> (Vec<f32>, Vec<f32>) {
    let mean = x.iter().map(|&v| v as f64).sum::<f64>() / x.len().max(1) as f64;
    let avg = (mean / k as f64).sqrt() as f32;
    let scaled = |start: usize, n: usize| -> Vec<f32> {
        noise::normals(seed, start as u64, n, 1.0)
            .into_iter()
            .map(|v| (avg * v).abs())
            .collect()
    };
    let h = scaled(0, k * cols);
    let w = scaled(k * cols, rows * k);
    (w, h)
}

/// scikit-learn's `_fit_coordinate_descent` from `(w, h)`: alternate one cyclic pass over the
/// coordinates of `W`, then of `H`, until the summed projected-gradient violation falls to
/// `tol` times the first iteration's, or `max_iter` iterations.
pub fn coordinate_descent(
    x: &[f32],
    (rows, cols): (usize, usize),
    (mut w, h): (Vec<f32>, Vec<f32>),
    k: usize,
    tol: f64,
    max_iter: usize,
) -> Factors {
    let xt = transpose(x, rows, cols);
    let mut ht = transpose(&h, k, cols); // cols x k
    let mut first = None;
    let mut iterations = 0;
    for n in 1..=max_iter {
        iterations = n;
        let mut violation = update(&mut w, x, &ht, rows, cols, k) as f64;
        violation += update(&mut ht, &xt, &w, cols, rows, k) as f64;
        let init = *first.get_or_insert(violation);
        if init == 0.0 || violation / init <= tol {
            break;
        }
    }
    Factors {
        w,
        h: transpose(&ht, cols, k),
        iterations,
    }
}

/// One pass of `_update_cdnmf_fast` over `W` (`n x k`) for `X` (`n x m`) and `Ht`
/// (`m x k`): the violation sum.
fn update(w: &mut [f32], x: &[f32], ht: &[f32], n: usize, m: usize, k: usize) -> f32 {
    // HHt = Ht^T Ht (k x k), XHt = X Ht (n x k).
    let mut hht = vec![0.0f32; k * k];
    for row in ht.chunks(k) {
        for a in 0..k {
            for b in 0..k {
                hht[a * k + b] += row[a] * row[b];
            }
        }
    }
    let mut xht = vec![0.0f32; n * k];
    for i in 0..n {
        for (j, row) in ht.chunks(k).enumerate().take(m) {
            let v = x[i * m + j];
            for t in 0..k {
                xht[i * k + t] += v * row[t];
            }
        }
    }
    let mut violation = 0.0f32;
    for t in 0..k {
        for i in 0..n {
            let mut grad = -xht[i * k + t];
            for r in 0..k {
                grad += hht[t * k + r] * w[i * k + r];
            }
            let pg = if w[i * k + t] == 0.0 {
                grad.min(0.0)
            } else {
                grad
            };
            violation += pg.abs();
            let hess = hht[t * k + t];
            if hess != 0.0 {
                w[i * k + t] = (w[i * k + t] - grad / hess).max(0.0);
            }
        }
    }
    violation
}

fn transpose(a: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut out = vec![0.0f32; a.len()];
    for r in 0..rows {
        for c in 0..cols {
            out[c * rows + r] = a[r * cols + c];
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_exact_rank_two_matrix_is_recovered() {
        // X = W H with non-negative rank-2 factors: the fit's residual becomes small.
        let (w0, h0) = (
            [1.0f32, 0.0, 0.5, 2.0, 0.0, 1.0],
            [1.0f32, 2.0, 0.0, 0.0, 1.0, 3.0],
        );
        let mut x = vec![0.0f32; 9];
        for i in 0..3 {
            for j in 0..3 {
                x[i * 3 + j] = (0..2).map(|t| w0[i * 2 + t] * h0[t * 3 + j]).sum();
            }
        }
        let init = random_init(&x, 3, 3, 2, 0);
        let f = coordinate_descent(&x, (3, 3), init, 2, 1e-8, 2000);
        let residual: f32 = (0..9)
            .map(|p| {
                let (i, j) = (p / 3, p % 3);
                let y: f32 = (0..2).map(|t| f.w[i * 2 + t] * f.h[t * 3 + j]).sum();
                (y - x[p]).abs()
            })
            .fold(0.0, f32::max);
        assert!(
            residual < 1e-3,
            "{residual} after {} iterations",
            f.iterations
        );
        assert!(f.w.iter().chain(&f.h).all(|&v| v >= 0.0));
    }
}
