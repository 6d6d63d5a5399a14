//! The linear system of ROAD's imputation and its solver: a sparse matrix (CSR), an
//! aggregation multigrid and preconditioned conjugate gradients, all channels at once.

use crate::error::{Error, Result};

/// pytorch-grad-cam's (and ROAD's) neighbour weights: `((d_row, d_col), weight)`.
pub const NEIGHBOR_WEIGHTS: [((isize, isize), f64); 8] = [
    ((1, 1), 1.0 / 12.0),
    ((0, 1), 1.0 / 6.0),
    ((-1, 1), 1.0 / 12.0),
    ((1, -1), 1.0 / 12.0),
    ((0, -1), 1.0 / 6.0),
    ((-1, -1), 1.0 / 12.0),
    ((1, 0), 1.0 / 6.0),
    ((-1, 0), 1.0 / 6.0),
];

/// Relative residual CG stops at (per channel, `|b - A x| <= TOLERANCE * |b|`).
const TOLERANCE: f64 = 1e-5;

/// CG's iteration limit; the V-cycle preconditioner takes about ten at 224x224.
const MAX_ITERATIONS: usize = 200;

/// The imputation system without noise: `values` (C x h x w) with the unknown pixels
/// (`keep[i] == false`) solved; [`Error::NotConverged`] if CG does not reach [`TOLERANCE`].
pub(super) fn solve_harmonic(
    values: &[f64],
    keep: &[bool],
    channels: usize,
    h: usize,
    w: usize,
) -> Result<Vec<f64>> {
    solve_harmonic_within(values, keep, channels, [h, w], MAX_ITERATIONS)
}

/// [`solve_harmonic`] with CG stopped after `max_iterations`.
fn solve_harmonic_within(
    values: &[f64],
    keep: &[bool],
    channels: usize,
    [h, w]: [usize; 2],
    max_iterations: usize,
) -> Result<Vec<f64>> {
    let n = h * w;
    let unknown: Vec<usize> = (0..n).filter(|&i| !keep[i]).collect();
    let mut out = values.to_vec();
    if unknown.is_empty() {
        return Ok(out);
    }
    if unknown.len() == n {
        out.iter_mut().for_each(|v| *v = 0.0);
        return Ok(out);
    }
    // The system over the unknowns: diag_k x_k - sum_j w_kj x_j = sum_(kept j) w_kj v_j.
    let mut index = vec![u32::MAX; n];
    for (k, &i) in unknown.iter().enumerate() {
        index[i] = k as u32;
    }
    let m = unknown.len();
    let mut a = Csr::with_capacity(m);
    let mut rhs = vec![0.0; channels * m];
    for (k, &i) in unknown.iter().enumerate() {
        let (y, x) = ((i / w) as isize, (i % w) as isize);
        let mut diag = 0.0;
        for &((dy, dx), wt) in &NEIGHBOR_WEIGHTS {
            let (ny, nx) = (y + dy, x + dx);
            if ny < 0 || nx < 0 || ny >= h as isize || nx >= w as isize {
                continue;
            }
            diag += wt;
            let j = ny as usize * w + nx as usize;
            if keep[j] {
                for c in 0..channels {
                    rhs[c * m + k] += wt * values[c * n + j];
                }
            } else {
                a.cols.push(index[j]);
                a.vals.push(-wt);
            }
        }
        a.diag.push(diag);
        a.row_start.push(a.cols.len());
    }
    let positions: Vec<(u32, u32)> = unknown
        .iter()
        .map(|&i| ((i / w) as u32, (i % w) as u32))
        .collect();
    let hierarchy = Hierarchy::new(a, positions);
    // All channels at once: unknown k, channel c at k * channels + c.
    let mut b = vec![0.0; m * channels];
    for c in 0..channels {
        for k in 0..m {
            b[k * channels + c] = rhs[c * m + k];
        }
    }
    let mut x = vec![0.0; m * channels];
    preconditioned_cg(&hierarchy, &b, &mut x, channels, TOLERANCE, max_iterations)?;
    for c in 0..channels {
        for (k, &i) in unknown.iter().enumerate() {
            out[c * n + i] = x[k * channels + c];
        }
    }
    Ok(out)
}

/// A sparse symmetric matrix: its diagonal apart, the other entries by rows.
#[derive(Debug, Clone, Default)]
struct Csr {
    diag: Vec<f64>,
    row_start: Vec<usize>,
    cols: Vec<u32>,
    vals: Vec<f64>,
}

impl Csr {
    fn with_capacity(m: usize) -> Self {
        let mut row_start = Vec::with_capacity(m + 1);
        row_start.push(0);
        Csr {
            diag: Vec::with_capacity(m),
            row_start,
            cols: Vec::with_capacity(8 * m),
            vals: Vec::with_capacity(8 * m),
        }
    }

    fn len(&self) -> usize {
        self.diag.len()
    }

    /// `y = A x` for `nc` interleaved vectors.
    fn matvec(&self, x: &[f64], y: &mut [f64], nc: usize) {
        let mut s = [0.0f64; MAX_CHANNELS];
        for k in 0..self.len() {
            for c in 0..nc {
                s[c] = self.diag[k] * x[k * nc + c];
            }
            for e in self.row_start[k]..self.row_start[k + 1] {
                let (v, j) = (self.vals[e], self.cols[e] as usize * nc);
                for c in 0..nc {
                    s[c] += v * x[j + c];
                }
            }
            y[k * nc..k * nc + nc].copy_from_slice(&s[..nc]);
        }
    }

    /// One Gauss-Seidel sweep on `A z = r` (`nc` interleaved vectors), rows in order or
    /// reversed.
    fn gauss_seidel(&self, r: &[f64], z: &mut [f64], nc: usize, reverse: bool) {
        let sweep = |k: usize, z: &mut [f64]| {
            let mut s = [0.0f64; MAX_CHANNELS];
            s[..nc].copy_from_slice(&r[k * nc..k * nc + nc]);
            for e in self.row_start[k]..self.row_start[k + 1] {
                let (v, j) = (self.vals[e], self.cols[e] as usize * nc);
                for c in 0..nc {
                    s[c] -= v * z[j + c];
                }
            }
            let d = self.diag[k];
            for c in 0..nc {
                z[k * nc + c] = s[c] / d;
            }
        };
        if reverse {
            (0..self.len()).rev().for_each(|k| sweep(k, z));
        } else {
            (0..self.len()).for_each(|k| sweep(k, z));
        }
    }
}

/// The most channels [`impute`] solves at once (more are done in groups).
const MAX_CHANNELS: usize = 4;

/// One level of the multigrid: its matrix and, but for the coarsest, which coarse unknown
/// each of its unknowns belongs to (2x2 blocks of the grid).
struct Level {
    a: Csr,
    parent: Vec<u32>,
}

/// An aggregation multigrid for the imputation system: unknowns are merged by 2x2 blocks of
/// pixels, coarse matrices are Galerkin products `P^T A P` with piecewise constant `P` (so every
/// level stays symmetric positive definite), and the coarsest (at most 256 unknowns) is solved
/// by a dense Cholesky factorisation. One V-cycle with a forward Gauss-Seidel sweep before the
/// coarse correction and a backward one after is a symmetric preconditioner for CG.
struct Hierarchy {
    levels: Vec<Level>,
    /// Cholesky factor of the coarsest matrix, row-major lower triangle.
    chol: Vec<f64>,
}

const COARSEST: usize = 256;

impl Hierarchy {
    fn new(a: Csr, mut positions: Vec<(u32, u32)>) -> Self {
        let mut levels = Vec::new();
        let mut a = a;
        while a.len() > COARSEST {
            // Aggregates: unknowns in the same 2x2 block of the grid.
            let coarse_pos: Vec<(u32, u32)> =
                positions.iter().map(|&(y, x)| (y / 2, x / 2)).collect();
            let mut order: Vec<u32> = (0..a.len() as u32).collect();
            order.sort_by_key(|&k| coarse_pos[k as usize]);
            let mut parent = vec![0u32; a.len()];
            let mut next_positions = Vec::new();
            let mut members: Vec<Vec<u32>> = Vec::new();
            for &k in &order {
                let p = coarse_pos[k as usize];
                if next_positions.last() != Some(&p) {
                    next_positions.push(p);
                    members.push(Vec::new());
                }
                parent[k as usize] = (next_positions.len() - 1) as u32;
                members.last_mut().expect("pushed").push(k);
            }
            if members.len() == a.len() {
                break; // no coarsening possible
            }
            let mut coarse = Csr::with_capacity(members.len());
            let mut row: Vec<(u32, f64)> = Vec::with_capacity(9);
            for (big, group) in members.iter().enumerate() {
                row.clear();
                let mut diag = 0.0;
                let mut add = |col: u32, v: f64, row: &mut Vec<(u32, f64)>| {
                    if col as usize == big {
                        diag += v;
                    } else if let Some(e) = row.iter_mut().find(|e| e.0 == col) {
                        e.1 += v;
                    } else {
                        row.push((col, v));
                    }
                };
                for &k in group {
                    let k = k as usize;
                    add(big as u32, a.diag[k], &mut row);
                    for e in a.row_start[k]..a.row_start[k + 1] {
                        add(parent[a.cols[e] as usize], a.vals[e], &mut row);
                    }
                }
                coarse.diag.push(diag);
                for &(col, v) in &row {
                    coarse.cols.push(col);
                    coarse.vals.push(v);
                }
                coarse.row_start.push(coarse.cols.len());
            }
            levels.push(Level { a, parent });
            a = coarse;
            positions = next_positions;
        }
        // Dense Cholesky of the coarsest matrix.
        let m = a.len();
        let mut dense = vec![0.0; m * m];
        for k in 0..m {
            dense[k * m + k] = a.diag[k];
            for e in a.row_start[k]..a.row_start[k + 1] {
                dense[k * m + a.cols[e] as usize] += a.vals[e];
            }
        }
        for j in 0..m {
            let mut d = dense[j * m + j];
            for p in 0..j {
                d -= dense[j * m + p] * dense[j * m + p];
            }
            let d = d.max(1e-300).sqrt();
            dense[j * m + j] = d;
            for i in j + 1..m {
                let mut v = dense[i * m + j];
                for p in 0..j {
                    v -= dense[i * m + p] * dense[j * m + p];
                }
                dense[i * m + j] = v / d;
            }
        }
        levels.push(Level {
            a,
            parent: Vec::new(),
        });
        Hierarchy {
            levels,
            chol: dense,
        }
    }

    fn matrix(&self) -> &Csr {
        &self.levels[0].a
    }

    /// `z = B r`, B the V-cycle from `level` down, for `nc` interleaved vectors.
    fn vcycle(&self, level: usize, r: &[f64], z: &mut [f64], nc: usize) {
        let lv = &self.levels[level];
        let m = lv.a.len();
        if level + 1 == self.levels.len() {
            // Forward and backward substitution with the Cholesky factor.
            let l = &self.chol;
            for c in 0..nc {
                for i in 0..m {
                    let mut v = r[i * nc + c];
                    for p in 0..i {
                        v -= l[i * m + p] * z[p * nc + c];
                    }
                    z[i * nc + c] = v / l[i * m + i];
                }
                for i in (0..m).rev() {
                    let mut v = z[i * nc + c];
                    for p in i + 1..m {
                        v -= l[p * m + i] * z[p * nc + c];
                    }
                    z[i * nc + c] = v / l[i * m + i];
                }
            }
            return;
        }
        z.iter_mut().for_each(|v| *v = 0.0);
        lv.a.gauss_seidel(r, z, nc, false);
        let mut az = vec![0.0; r.len()];
        lv.a.matvec(z, &mut az, nc);
        let coarse_n = self.levels[level + 1].a.len();
        let mut rc = vec![0.0; coarse_n * nc];
        for k in 0..m {
            let p = lv.parent[k] as usize * nc;
            for c in 0..nc {
                rc[p + c] += r[k * nc + c] - az[k * nc + c];
            }
        }
        let mut zc = vec![0.0; coarse_n * nc];
        self.vcycle(level + 1, &rc, &mut zc, nc);
        for k in 0..m {
            let p = lv.parent[k] as usize * nc;
            for c in 0..nc {
                z[k * nc + c] += zc[p + c];
            }
        }
        lv.a.gauss_seidel(r, z, nc, true);
    }
}

/// Preconditioned conjugate gradients on the hierarchy's finest matrix for `nc` interleaved
/// right-hand sides at once (each with its own step sizes), from the initial `x`, until every
/// `|b_c - A x_c| <= tol * |b_c|`. Returns the iterations done, or [`Error::NotConverged`]
/// with the worst channel's relative residual after `max_iter` iterations (at once if a
/// residual is not finite, as with NaN in the image).
fn preconditioned_cg(
    hierarchy: &Hierarchy,
    b: &[f64],
    x: &mut [f64],
    nc: usize,
    tol: f64,
    max_iter: usize,
) -> Result<usize> {
    if nc > MAX_CHANNELS {
        // In groups of at most MAX_CHANNELS channels.
        let m = b.len() / nc;
        let mut most = 0;
        for start in (0..nc).step_by(MAX_CHANNELS) {
            let g = MAX_CHANNELS.min(nc - start);
            let pick = |v: &[f64]| {
                (0..m)
                    .flat_map(|k| (0..g).map(move |c| (k, c)))
                    .map(|(k, c)| v[k * nc + start + c])
                    .collect::<Vec<_>>()
            };
            let bg = pick(b);
            let mut xg = pick(x);
            most = most.max(preconditioned_cg(
                hierarchy, &bg, &mut xg, g, tol, max_iter,
            )?);
            for k in 0..m {
                for c in 0..g {
                    x[k * nc + start + c] = xg[k * g + c];
                }
            }
        }
        return Ok(most);
    }
    let a = hierarchy.matrix();
    let len = b.len();
    let dots = |u: &[f64], v: &[f64]| {
        let mut d = [0.0f64; MAX_CHANNELS];
        for (p, q) in u.chunks_exact(nc).zip(v.chunks_exact(nc)) {
            for c in 0..nc {
                d[c] += p[c] * q[c];
            }
        }
        d
    };
    let mut ax = vec![0.0; len];
    a.matvec(x, &mut ax, nc);
    let mut r: Vec<f64> = b.iter().zip(&ax).map(|(bi, ai)| bi - ai).collect();
    let bb = dots(b, b);
    // The worst channel's relative residual (0 for a channel whose right-hand side is 0 and
    // solved exactly, which the all-zero start does).
    let residual = |r: &[f64]| {
        let rr = dots(r, r);
        (0..nc)
            .map(|c| {
                if rr[c] == 0.0 {
                    0.0
                } else {
                    (rr[c] / bb[c]).sqrt()
                }
            })
            .fold(
                0.0,
                |worst, v| if v > worst || v.is_nan() { v } else { worst },
            )
    };
    let not_converged = |residual: f64, iterations: usize| Error::NotConverged {
        what: "ROAD imputation",
        residual,
        iterations,
        tolerance: tol,
    };
    let check = |r: &[f64], iterations: usize| match residual(r) {
        res if res <= tol => Ok(true),
        res if !res.is_finite() => Err(not_converged(res, iterations)),
        _ => Ok(false),
    };
    if check(&r, 0)? {
        return Ok(0);
    }
    let mut z = vec![0.0; len];
    hierarchy.vcycle(0, &r, &mut z, nc);
    let mut p = z.clone();
    let mut rz = dots(&r, &z);
    let mut ap = vec![0.0; len];
    for iter in 1..=max_iter {
        a.matvec(&p, &mut ap, nc);
        let pap = dots(&p, &ap);
        let alpha: Vec<f64> = (0..nc)
            .map(|c| if pap[c] > 0.0 { rz[c] / pap[c] } else { 0.0 })
            .collect();
        for (((x, r), p), ap) in x
            .chunks_exact_mut(nc)
            .zip(r.chunks_exact_mut(nc))
            .zip(p.chunks_exact(nc))
            .zip(ap.chunks_exact(nc))
        {
            for c in 0..nc {
                x[c] += alpha[c] * p[c];
                r[c] -= alpha[c] * ap[c];
            }
        }
        if check(&r, iter)? {
            return Ok(iter);
        }
        hierarchy.vcycle(0, &r, &mut z, nc);
        let rz_new = dots(&r, &z);
        let beta: Vec<f64> = (0..nc)
            .map(|c| if rz[c] > 0.0 { rz_new[c] / rz[c] } else { 0.0 })
            .collect();
        rz = rz_new;
        for (p, z) in p.chunks_exact_mut(nc).zip(z.chunks_exact(nc)) {
            for c in 0..nc {
                p[c] = z[c] + beta[c] * p[c];
            }
        }
    }
    Err(not_converged(residual(&r), max_iter))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 64x64 image of 5 channels (two groups of CG) with a 40x40 hole, well above the
    /// coarsest level, and its values.
    fn hole() -> (Vec<f64>, Vec<bool>) {
        let (h, w) = (64, 64);
        let values = (0..5 * h * w)
            .map(|i| ((i * 37) % 101) as f64 / 50.0 - 1.0)
            .collect();
        let keep = (0..h * w)
            .map(|i| !(10..50).contains(&(i / w)) || !(12..52).contains(&(i % w)))
            .collect();
        (values, keep)
    }

    /// The solution satisfies every removed pixel's equation: its value is the weighted mean
    /// of its neighbours, to about CG's tolerance.
    #[test]
    fn solution_is_the_weighted_mean_of_its_neighbours() {
        let (values, keep) = hole();
        let (h, w) = (64, 64);
        let out = solve_harmonic(&values, &keep, 5, h, w).unwrap();
        let mut worst = 0.0f64;
        for c in 0..5 {
            let plane = &out[c * h * w..][..h * w];
            for i in (0..h * w).filter(|&i| !keep[i]) {
                let (y, x) = ((i / w) as isize, (i % w) as isize);
                let (mut sum, mut total) = (0.0, 0.0);
                for &((dy, dx), wt) in &NEIGHBOR_WEIGHTS {
                    let j = (y + dy) as usize * w + (x + dx) as usize;
                    sum += wt * plane[j];
                    total += wt;
                }
                worst = worst.max((plane[i] - sum / total).abs());
            }
        }
        assert!(worst < 1e-5, "{worst}");
    }

    #[test]
    fn stopping_short_is_an_error_with_the_residual() {
        let (values, keep) = hole();
        match solve_harmonic_within(&values, &keep, 5, [64, 64], 1) {
            Err(Error::NotConverged {
                residual,
                iterations,
                tolerance,
                ..
            }) => {
                assert_eq!(iterations, 1);
                assert!(residual > tolerance && residual < 1.0, "{residual}");
            }
            other => panic!("expected NotConverged, got {other:?}"),
        }
    }

    #[test]
    fn nan_in_the_image_is_an_error_at_once() {
        let (mut values, keep) = hole();
        values[9 * 64 + 20] = f64::NAN; // kept, next to the hole
        let err = solve_harmonic(&values, &keep, 5, 64, 64).unwrap_err();
        assert!(
            matches!(err, Error::NotConverged { iterations: 0, residual, .. } if residual.is_nan()),
            "{err}"
        );
    }
}
