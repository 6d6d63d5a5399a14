//! The seeded random numbers of the stochastic methods (Random-CAM, SS-CAM, Smooth Grad-CAM++).
//!
//! Counter-based, so value `i` of a stream depends only on `(seed, i)`: the same numbers come
//! out however a method batches its work, and tools/make_fixtures.py reproduces them in NumPy
//! (`our_uniform`, `our_normal`) to feed the reference libraries the same noise.

/// SplitMix64's output function applied to `seed + (i + 1) * golden`: 64 random bits.
fn bits(seed: u64, i: u64) -> u64 {
    let mut z = seed.wrapping_add(i.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Value `i` of the uniform stream `seed`, in [0, 1) with 53 random bits.
pub fn uniform(seed: u64, i: u64) -> f64 {
    (bits(seed, i) >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
}

/// Value `i` of the standard normal stream `seed` (Box-Muller on uniforms `2i` and `2i + 1`).
pub fn normal(seed: u64, i: u64) -> f64 {
    let u1 = 1.0 - uniform(seed, 2 * i);
    let u2 = uniform(seed, 2 * i + 1);
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// `len` values `std * normal(seed, start + j)` as f32.
pub fn normals(seed: u64, start: u64, len: usize, std: f64) -> Vec<f32> {
    (0..len as u64)
        .map(|j| (std * normal(seed, start + j)) as f32)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_are_reproducible_and_look_like_their_distributions() {
        // SplitMix64 with state 0: its first output is 0xE220A8397B1DCDAF (the reference
        // implementation's published first value).
        assert_eq!(bits(0, 0), 0xE220_A839_7B1D_CDAF);
        let n = 200_000u64;
        let u: Vec<f64> = (0..n).map(|i| uniform(7, i)).collect();
        let mean = u.iter().sum::<f64>() / n as f64;
        assert!(u.iter().all(|v| (0.0..1.0).contains(v)));
        assert!((mean - 0.5).abs() < 0.005, "{mean}");
        let z = normals(7, 0, n as usize, 2.0);
        let m = z.iter().map(|&v| v as f64).sum::<f64>() / n as f64;
        let var = z.iter().map(|&v| (v as f64 - m).powi(2)).sum::<f64>() / n as f64;
        assert!(
            m.abs() < 0.02 && (var.sqrt() - 2.0).abs() < 0.02,
            "{m} {var}"
        );
        assert_eq!(normals(7, 5, 3, 2.0), z[5..8]);
        assert_ne!(uniform(8, 0), uniform(7, 0));
    }
}
