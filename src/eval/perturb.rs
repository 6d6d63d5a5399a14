//! Perturbed network inputs for the faithfulness measures: Deletion and Insertion (RISE),
//! ROAD's removal with noisy linear imputation, and the blur that Insertion starts from.
//!
//! Images here are network inputs: `f32`, channels first (`C x H x W`, row-major), already
//! normalised; maps are `H x W`, row-major.

pub use super::imputation::NEIGHBOR_WEIGHTS;
use super::imputation::solve_harmonic;
use crate::error::{Error, Result};

/// The order in which Deletion and Insertion change pixels: most relevant first, i.e. by
/// decreasing map value; ties keep raster order (a stable sort; RISE's `np.argsort` leaves ties
/// in no particular order). NaN values count as the least relevant.
pub fn relevance_order(map: &[f32]) -> Vec<u32> {
    let mut order: Vec<u32> = (0..map.len() as u32).collect();
    let key = |i: u32| {
        let v = map[i as usize];
        if v.is_nan() { f32::NEG_INFINITY } else { v }
    };
    order.sort_by(|&a, &b| key(b).total_cmp(&key(a)));
    order
}

/// How many pixels have changed after each of `steps` steps over `pixels` pixels: RISE's
/// schedule, `ceil(pixels / steps)` per step, the last step taking what is left. `steps + 1`
/// values from 0 to `pixels`.
pub fn step_counts(pixels: usize, steps: usize) -> Vec<usize> {
    let steps = steps.max(1);
    let per = pixels.div_ceil(steps);
    (0..=steps).map(|k| (k * per).min(pixels)).collect()
}

/// The images on the way from `start` to `finish`: for each `k` of `counts`, `start` with its
/// first `k` pixels in `order` (all channels) taken from `finish`. Concatenated, in order.
///
/// Deletion: `start` = the image, `finish` = the baseline (zeros in normalised space, the
/// dataset mean). Insertion: `start` = the blurred image, `finish` = the image.
pub fn path_images(start: &[f32], finish: &[f32], order: &[u32], counts: &[usize]) -> Vec<f32> {
    assert_eq!(
        start.len(),
        finish.len(),
        "path_images: start and finish differ in size"
    );
    let n = order.len();
    assert!(
        n > 0 && start.len().is_multiple_of(n),
        "path_images: the order does not fit the image"
    );
    let channels = start.len() / n;
    let mut current = start.to_vec();
    let mut done = 0;
    let mut out = Vec::with_capacity(start.len() * counts.len());
    for &k in counts {
        let k = k.min(n);
        if k < done {
            current.copy_from_slice(start);
            done = 0;
        }
        for &p in &order[done..k] {
            for c in 0..channels {
                let i = c * n + p as usize;
                current[i] = finish[i];
            }
        }
        done = k;
        out.extend_from_slice(&current);
    }
    out
}

/// A normalised 1-D Gaussian of `taps` taps (odd) and standard deviation `sigma`.
pub fn gaussian_kernel(taps: usize, sigma: f64) -> Vec<f32> {
    let r = (taps / 2) as f64;
    let k: Vec<f64> = (0..taps)
        .map(|i| (-(i as f64 - r).powi(2) / (2.0 * sigma * sigma)).exp())
        .collect();
    let total: f64 = k.iter().sum();
    k.into_iter().map(|v| (v / total) as f32).collect()
}

/// RISE's blur for Insertion's starting image: a Gaussian of 11 taps and sigma 5, separable,
/// each channel, zero padding (as RISE's `conv2d(..., padding=klen // 2)`; in normalised space
/// zero is the dataset mean, so the borders fade towards it).
pub fn blur(image: &[f32], channels: usize, h: usize, w: usize) -> Vec<f32> {
    let k = gaussian_kernel(11, 5.0);
    let r = k.len() / 2;
    let mut tmp = vec![0.0f32; image.len()];
    let mut out = vec![0.0f32; image.len()];
    for c in 0..channels {
        let src = &image[c * h * w..(c + 1) * h * w];
        let mid = &mut tmp[c * h * w..(c + 1) * h * w];
        for y in 0..h {
            for x in 0..w {
                let mut s = 0.0;
                for (t, kv) in k.iter().enumerate() {
                    let xx = x as isize + t as isize - r as isize;
                    if xx >= 0 && (xx as usize) < w {
                        s += kv * src[y * w + xx as usize];
                    }
                }
                mid[y * w + x] = s;
            }
        }
        let dst = &mut out[c * h * w..(c + 1) * h * w];
        for y in 0..h {
            for x in 0..w {
                let mut s = 0.0;
                for (t, kv) in k.iter().enumerate() {
                    let yy = y as isize + t as isize - r as isize;
                    if yy >= 0 && (yy as usize) < h {
                        s += kv * mid[yy as usize * w + x];
                    }
                }
                dst[y * w + x] = s;
            }
        }
    }
    out
}

/// The `p`-th percentile (0..=100) of `values` as NumPy's `np.percentile` (linear
/// interpolation between the closest ranks). NaN for an empty slice.
pub fn percentile(values: &[f32], p: f64) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    let mut v: Vec<f64> = values.iter().map(|&x| x as f64).collect();
    v.sort_by(f64::total_cmp);
    let rank = (p / 100.0).clamp(0.0, 1.0) * (v.len() - 1) as f64;
    let lo = rank.floor() as usize;
    let hi = rank.ceil() as usize;
    let t = rank - lo as f64;
    let (a, b) = (v[lo], v[hi]);
    // NumPy's `_lerp`: `a + (b - a) * t`, or `b - (b - a) * (1 - t)` when t >= 0.5.
    if t >= 0.5 {
        b - (b - a) * (1.0 - t)
    } else {
        a + (b - a) * t
    }
}

/// Which pixels ROAD keeps (true) for pytorch-grad-cam's `percentile`: most relevant first
/// (`ROADMostRelevantFirst`) keeps the pixels whose map value is below the `percentile`-th
/// percentile of the map, so it removes the `100 - percentile` % most relevant; least relevant
/// first (`ROADLeastRelevantFirst`) does the same on `1 - map`, removing the `100 - percentile`
/// % least relevant. The comparison is strict, so ties at the percentile are removed.
pub fn road_keep(map: &[f32], percentile_: f64, most_relevant_first: bool) -> Vec<bool> {
    if most_relevant_first {
        let t = percentile(map, percentile_);
        map.iter().map(|&v| (v as f64) < t).collect()
    } else {
        let inverted: Vec<f32> = map.iter().map(|&v| 1.0 - v).collect();
        let t = percentile(&inverted, percentile_);
        inverted.iter().map(|&v| (v as f64) < t).collect()
    }
}

/// ROAD's noise: absolute standard deviation added to every imputed value
/// (pytorch-grad-cam's `NoisyLinearImputer(noise=0.01)`).
pub const ROAD_NOISE: f32 = 0.01;

/// A small deterministic generator of standard normal values (SplitMix64 and Box-Muller), so
/// that a run of `gradcam eval` can be repeated exactly.
#[derive(Debug, Clone)]
pub struct Normal {
    state: u64,
    spare: Option<f64>,
}

impl Normal {
    pub fn new(seed: u64) -> Self {
        Normal {
            state: seed,
            spare: None,
        }
    }

    fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in (0, 1].
    fn uniform(&mut self) -> f64 {
        ((self.next_u64() >> 11) as f64 + 1.0) / (1u64 << 53) as f64
    }

    pub fn sample(&mut self) -> f64 {
        if let Some(s) = self.spare.take() {
            return s;
        }
        let (u, v) = (self.uniform(), self.uniform());
        let r = (-2.0 * u.ln()).sqrt();
        let theta = 2.0 * std::f64::consts::PI * v;
        self.spare = Some(r * theta.sin());
        r * theta.cos()
    }
}

/// ROAD's noisy linear imputation (Rong et al. 2022; pytorch-grad-cam's `NoisyLinearImputer`):
/// every removed pixel (`keep[i] == false`) takes, in each channel, the weighted mean of its 8
/// neighbours ([`NEIGHBOR_WEIGHTS`], only those inside the image), where removed neighbours are
/// themselves unknowns, so all removed pixels are solved together as one sparse linear system
/// (a discrete harmonic interpolation from the kept pixels); then `noise * N(0, 1)` is added to
/// each imputed value. Kept pixels are unchanged.
///
/// pytorch-grad-cam solves the system with SciPy's direct `spsolve`; here it is solved by
/// conjugate gradients (the matrix is symmetric positive definite as soon as one pixel is
/// kept) preconditioned by an aggregation multigrid V-cycle, to a relative residual of 1e-5.
/// When no pixel is kept the system is singular (SciPy returns NaN); the image is then filled
/// with zeros (the dataset mean in normalised space) plus noise.
///
/// # Errors
///
/// [`Error::Invalid`] if `keep.len() != h * w` or `image.len()` is not a multiple of it;
/// [`Error::NotConverged`] if the solver stops short of its tolerance (NaN in the image).
pub fn impute(
    image: &[f32],
    keep: &[bool],
    h: usize,
    w: usize,
    noise: f32,
    rng: &mut Normal,
) -> Result<Vec<f32>> {
    let n = h * w;
    if keep.len() != n {
        return Err(Error::Invalid(format!(
            "impute: the mask has {} values, not {h}x{w}",
            keep.len()
        )));
    }
    if n == 0 || !image.len().is_multiple_of(n) {
        return Err(Error::Invalid(format!(
            "impute: the image has {} values, not C x {h} x {w}",
            image.len()
        )));
    }
    let channels = image.len() / n;
    let values: Vec<f64> = image.iter().map(|&v| v as f64).collect();
    let solved = solve_harmonic(&values, keep, channels, h, w)?;
    let mut out = image.to_vec();
    for c in 0..channels {
        for i in (0..n).filter(|&i| !keep[i]) {
            let mut v = solved[c * n + i];
            if noise != 0.0 {
                v += noise as f64 * rng.sample();
            }
            out[c * n + i] = v as f32;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_is_descending_and_stable() {
        assert_eq!(
            relevance_order(&[0.1, 0.9, 0.5, 0.9, f32::NAN]),
            [1, 3, 2, 0, 4]
        );
    }

    #[test]
    fn step_counts_follow_rise() {
        assert_eq!(step_counts(10, 4), [0, 3, 6, 9, 10]);
        assert_eq!(step_counts(224 * 224, 28)[1], 1792);
        assert_eq!(*step_counts(224 * 224, 28).last().unwrap(), 224 * 224);
    }

    #[test]
    fn path_moves_pixels_in_order_in_every_channel() {
        // 2 channels of 3 pixels.
        let start = [1.0, 2.0, 3.0, 10.0, 20.0, 30.0];
        let finish = [0.0; 6];
        let order = [2, 0, 1];
        let out = path_images(&start, &finish, &order, &[0, 1, 3]);
        assert_eq!(&out[0..6], &start);
        assert_eq!(&out[6..12], &[1.0, 2.0, 0.0, 10.0, 20.0, 0.0]);
        assert_eq!(&out[12..18], &[0.0; 6]);
    }

    #[test]
    fn percentile_matches_numpy() {
        // np.percentile([1, 2, 3, 4], [0, 10, 50, 90, 100]) = [1, 1.3, 2.5, 3.7, 4]
        let v = [4.0, 1.0, 3.0, 2.0];
        let want = [1.0, 1.3, 2.5, 3.7, 4.0];
        for (p, w) in [0.0, 10.0, 50.0, 90.0, 100.0].into_iter().zip(want) {
            assert!(
                (percentile(&v, p) - w).abs() < 1e-12,
                "{p}: {} vs {w}",
                percentile(&v, p)
            );
        }
    }

    #[test]
    fn road_keep_removes_the_relevant_or_the_irrelevant() {
        let map = [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9];
        // Percentile 80 (threshold 0.72): MoRF keeps the 8 smallest, removes 0.8 and 0.9.
        let keep = road_keep(&map, 80.0, true);
        assert_eq!(keep.iter().filter(|&&k| !k).count(), 2);
        assert!(!keep[8] && !keep[9]);
        // LeRF keeps the 8 largest, removes 0.0 and 0.1.
        let keep = road_keep(&map, 80.0, false);
        assert!(!keep[0] && !keep[1] && keep[2..].iter().all(|&k| k));
    }

    #[test]
    fn imputation_of_one_pixel_is_the_weighted_mean() {
        // 3x3, one channel, the centre removed: the mean with weights 1/6 (edges) and 1/12.
        let img = [1.0, 2.0, 3.0, 4.0, 100.0, 6.0, 7.0, 8.0, 9.0];
        let mut keep = [true; 9];
        keep[4] = false;
        let out = impute(&img, &keep, 3, 3, 0.0, &mut Normal::new(0)).unwrap();
        let want = (2.0 + 4.0 + 6.0 + 8.0) / 6.0 + (1.0 + 3.0 + 7.0 + 9.0) / 12.0;
        assert!((out[4] as f64 - want).abs() < 1e-6, "{} vs {want}", out[4]);
        assert_eq!(&out[..4], &img[..4]);
    }

    #[test]
    fn imputation_of_a_corner_uses_only_inside_neighbours() {
        // 2x2, the top-left removed: neighbours (0,1) 1/6, (1,0) 1/6, (1,1) 1/12 -> weighted
        // mean (1/6 * 2 + 1/6 * 3 + 1/12 * 4) / (5/12) = 2.8.
        let img = [0.0, 2.0, 3.0, 4.0];
        let keep = [false, true, true, true];
        let out = impute(&img, &keep, 2, 2, 0.0, &mut Normal::new(0)).unwrap();
        assert!((out[0] - 2.8).abs() < 1e-6, "{}", out[0]);
    }

    #[test]
    fn imputation_reproduces_a_linear_ramp() {
        // A plane is its own weighted mean of the 8 symmetric neighbours: remove an inner block
        // (every removed pixel has all its neighbours inside the image) and get it back.
        let (h, w) = (20, 30);
        let img: Vec<f32> = (0..h * w)
            .map(|i| (i % w) as f32 * 0.5 + (i / w) as f32)
            .collect();
        let keep: Vec<bool> = (0..h * w)
            .map(|i| !(5..25).contains(&(i % w)) || !(2..h - 2).contains(&(i / w)))
            .collect();
        let out = impute(&img, &keep, h, w, 0.0, &mut Normal::new(0)).unwrap();
        for (a, b) in out.iter().zip(&img) {
            assert!((a - b).abs() < 1e-3, "{a} vs {b}");
        }
    }

    #[test]
    fn a_mask_or_image_of_the_wrong_size_is_an_error() {
        let mut rng = Normal::new(0);
        let err = impute(&[0.0; 12], &[true; 5], 2, 3, 0.0, &mut rng).unwrap_err();
        assert!(
            err.to_string().contains("the mask has 5 values, not 2x3"),
            "{err}"
        );
        let err = impute(&[0.0; 13], &[true; 6], 2, 3, 0.0, &mut rng).unwrap_err();
        assert!(err.to_string().contains("the image has 13 values"), "{err}");
    }

    #[test]
    fn nothing_kept_gives_zeros() {
        let out = impute(&[5.0; 16], &[false; 16], 4, 4, 0.0, &mut Normal::new(0)).unwrap();
        assert_eq!(out, [0.0; 16]);
    }

    #[test]
    fn normal_has_unit_variance() {
        let mut g = Normal::new(7);
        let xs: Vec<f64> = (0..20000).map(|_| g.sample()).collect();
        let mean = xs.iter().sum::<f64>() / xs.len() as f64;
        let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / xs.len() as f64;
        assert!(
            mean.abs() < 0.03 && (var - 1.0).abs() < 0.05,
            "{mean} {var}"
        );
    }

    #[test]
    fn blur_keeps_a_constant_inside_and_fades_at_borders() {
        let (h, w) = (30, 30);
        let img = vec![1.0f32; h * w];
        let out = blur(&img, 1, h, w);
        assert!((out[15 * w + 15] - 1.0).abs() < 1e-5);
        assert!(out[0] < 0.6);
        assert!((gaussian_kernel(11, 5.0).iter().sum::<f32>() - 1.0).abs() < 1e-6);
    }
}
