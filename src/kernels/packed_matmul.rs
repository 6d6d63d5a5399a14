//! A float32 matrix product whose left side (a weight) is packed once, for Winograd's
//! products `M_e = U_e V_e`: the product of BLIS and MLAS, a 6 x 16 register tile of AVX2 +
//! FMA over the right side packed a block at a time to stay in L1 / L2. The `gemm` crate
//! packs both sides on every call, and its AVX2 kernel is 16 rows tall, which the narrow
//! maps of ResNet's last stages (16 to 49 tiles a block) fill badly.
//!
//! Needs AVX2 and FMA ([`supported`]); the callers use [`matmul`](super::matmul) where it is
//! not [`preferred`].

/// Rows of the register tile, and of a packed panel of the left side.
pub(super) const ROWS: usize = 6;
/// Columns of the register tile: two vectors of 8 floats.
const COLS: usize = 16;
/// Depth of one block: a tile's column of the packed right side (`DEPTH x 16` floats, 16 KiB)
/// stays in L1 while every panel of a row block passes over it.
const DEPTH: usize = 256;
/// Rows of the left side per block: `ROW_BLOCK x DEPTH` floats (144 KiB) stay in L2.
const ROW_BLOCK: usize = 24 * ROWS;
/// Columns of the right side per packed block: `DEPTH x COL_BLOCK` floats (256 KiB, L2).
const COL_BLOCK: usize = 16 * COLS;

/// Whether this CPU runs [`matmul_packed`]: AVX2 and FMA.
pub(super) fn supported() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    false
}

/// Whether the Winograd products take [`matmul_packed`] over gemm: where it is [`supported`]
/// and AVX-512 is not. With AVX-512, gemm's 64 x 6 kernel beat this tile and a 12 x 32
/// AVX-512 version of it in whole passes (docs/benchmarks.md, sections 15 and 17).
pub(super) fn preferred() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        supported() && !std::arch::is_x86_feature_detected!("avx512f")
    }
    #[cfg(not(target_arch = "x86_64"))]
    false
}

/// The `rows x depth` row-major matrix `a` as panels of [`ROWS`] rows, each stored `[depth][ROWS]`,
/// the last panel's missing rows zero.
pub(super) fn pack_rows(a: &[f32], rows: usize, depth: usize) -> Vec<f32> {
    assert_eq!(a.len(), rows * depth, "packed matrix's shape");
    let panels = rows.div_ceil(ROWS);
    let mut packed = vec![0.0; panels * depth * ROWS];
    if depth == 0 {
        return packed;
    }
    for (p, panel) in packed.chunks_exact_mut(depth * ROWS).enumerate() {
        for r in 0..ROWS.min(rows - p * ROWS) {
            let row = &a[(p * ROWS + r) * depth..][..depth];
            for (k, &v) in row.iter().enumerate() {
                panel[k * ROWS + r] = v;
            }
        }
    }
    packed
}

/// A left side packed by [`pack_rows`].
#[derive(Clone, Copy)]
pub(super) struct PackedRows<'a> {
    pub(super) values: &'a [f32],
    pub(super) rows: usize,
    pub(super) depth: usize,
}

/// `dst = lhs x rhs`, `rhs` the `lhs.depth x cols` row-major matrix with row stride
/// `rhs_stride`, `dst` row-major with row stride `dst_stride`, on the calling thread.
///
/// # Panics
/// If a matrix does not fit its slice, or the CPU lacks AVX2 / FMA ([`supported`]).
pub(super) fn matmul_packed(
    dst: &mut [f32],
    dst_stride: usize,
    lhs: PackedRows,
    (rhs, rhs_stride, cols): (&[f32], usize, usize),
) {
    let (rows, depth) = (lhs.rows, lhs.depth);
    let panels = rows.div_ceil(ROWS);
    assert!(supported(), "matmul_packed needs AVX2 and FMA");
    assert!(lhs.values.len() >= panels * ROWS * depth);
    if rows * cols == 0 {
        return;
    }
    assert!(
        (rows - 1) * dst_stride + cols <= dst.len(),
        "output out of its slice"
    );
    assert!(
        depth == 0 || (depth - 1) * rhs_stride + cols <= rhs.len(),
        "right side out of its slice"
    );
    super::scratch::with_packed(DEPTH * COL_BLOCK, |packed| {
        for c0 in (0..cols).step_by(COL_BLOCK) {
            let width = COL_BLOCK.min(cols - c0);
            let col_tiles = width.div_ceil(COLS);
            // A depth of 0 still writes the (zero) product.
            for k0 in (0..depth.max(1)).step_by(DEPTH) {
                let kc = DEPTH.min(depth - k0);
                pack_columns(
                    packed,
                    &rhs[k0 * rhs_stride..],
                    rhs_stride,
                    c0..c0 + width,
                    kc,
                );
                // The first depth block writes the output, the later ones add to it.
                let add_old = k0 > 0;
                for p0 in (0..panels).step_by(ROW_BLOCK / ROWS) {
                    let p1 = (p0 + ROW_BLOCK / ROWS).min(panels);
                    for j in 0..col_tiles {
                        let b = &packed[j * kc * COLS..][..kc * COLS];
                        let col = c0 + j * COLS;
                        let tile_cols = COLS.min(cols - col);
                        for p in p0..p1 {
                            let a = &lhs.values[(p * depth + k0) * ROWS..][..kc * ROWS];
                            let row = p * ROWS;
                            let tile_rows = ROWS.min(rows - row);
                            let dst = &mut dst[row * dst_stride + col..];
                            // SAFETY: AVX2 and FMA are there (asserted above); the tile's
                            // rows and columns lie in `dst` (the asserts above).
                            #[cfg(target_arch = "x86_64")]
                            unsafe {
                                avx2::tile(
                                    a,
                                    b,
                                    kc,
                                    dst,
                                    dst_stride,
                                    [tile_rows, tile_cols],
                                    add_old,
                                )
                            };
                        }
                    }
                }
            }
        }
    });
}

/// Columns `cols` of `kc` rows of `rhs` (row stride `stride`) as tiles of [`COLS`] columns,
/// each `[kc][COLS]`, the last tile's missing columns zero.
fn pack_columns(
    packed: &mut [f32],
    rhs: &[f32],
    stride: usize,
    cols: std::ops::Range<usize>,
    kc: usize,
) {
    for (j, c) in cols.clone().step_by(COLS).enumerate() {
        let width = COLS.min(cols.end - c);
        let tile = &mut packed[j * kc * COLS..][..kc * COLS];
        for (k, dst) in tile.chunks_exact_mut(COLS).enumerate() {
            let src = &rhs[k * stride + c..][..width];
            // A whole tile's row as one fixed-size copy (two vector moves, not a memcpy call).
            match <&[f32; COLS]>::try_from(src) {
                Ok(src) => dst.copy_from_slice(src),
                Err(_) => {
                    dst[..width].copy_from_slice(src);
                    dst[width..].fill(0.0);
                }
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    use super::{COLS, ROWS};

    /// One `ROWS x COLS` tile: the product of `a` (`[kc][ROWS]`) and `b` (`[kc][COLS]`) in
    /// registers, then written (or with `add_old` added) to the `rows x cols` corner of `dst`.
    ///
    /// # Safety
    /// The CPU has AVX2 and FMA; `dst` holds `rows` rows of `cols` values at `stride` apart.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn tile(
        a: &[f32],
        b: &[f32],
        kc: usize,
        dst: &mut [f32],
        stride: usize,
        [rows, cols]: [usize; 2],
        add_old: bool,
    ) {
        let (a, b) = (&a[..kc * ROWS], &b[..kc * COLS]);
        let mut acc = [[_mm256_setzero_ps(); 2]; ROWS];
        for k in 0..kc {
            // SAFETY: `k < kc`, inside both slices (checked above).
            let (b0, b1) = unsafe {
                (
                    _mm256_loadu_ps(b.as_ptr().add(k * COLS)),
                    _mm256_loadu_ps(b.as_ptr().add(k * COLS + 8)),
                )
            };
            for (r, acc) in acc.iter_mut().enumerate() {
                // SAFETY: as above.
                let a = unsafe { _mm256_broadcast_ss(&*a.as_ptr().add(k * ROWS + r)) };
                acc[0] = _mm256_fmadd_ps(a, b0, acc[0]);
                acc[1] = _mm256_fmadd_ps(a, b1, acc[1]);
            }
        }
        let full = cols == COLS;
        let masks = [mask(cols), mask(cols.saturating_sub(8))];
        for (r, acc) in acc.iter().enumerate().take(rows) {
            for (half, &v) in acc.iter().enumerate() {
                // SAFETY: the first `cols` values of row `r` lie in `dst` (the contract); the
                // masks leave the others untouched.
                unsafe {
                    let at = dst.as_mut_ptr().add(r * stride + half * 8);
                    let old = || match full {
                        true => _mm256_loadu_ps(at),
                        false => _mm256_maskload_ps(at, masks[half]),
                    };
                    let v = if add_old { _mm256_add_ps(v, old()) } else { v };
                    match full {
                        true => _mm256_storeu_ps(at, v),
                        false => _mm256_maskstore_ps(at, masks[half], v),
                    }
                }
            }
        }
    }

    /// Lanes `0..n` (at most 8) of a mask.
    #[target_feature(enable = "avx2")]
    fn mask(n: usize) -> __m256i {
        let lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
        _mm256_cmpgt_epi32(_mm256_set1_epi32(n.min(8) as i32), lanes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic values in [-1, 1).
    fn values(len: usize, seed: u64) -> Vec<f32> {
        let mut state = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (0..len)
            .map(|_| {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((state >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
            })
            .collect()
    }

    /// Against a float64 product over shapes with partial tiles and blocks on each side
    /// (depth over [`DEPTH`], columns over [`COL_BLOCK`]), into a wider destination whose
    /// extra columns must stay as they were.
    #[test]
    fn matches_a_float64_product() {
        if !supported() {
            return;
        }
        for (i, &(m, k, n)) in [
            (1, 1, 1),
            (6, 16, 16),
            (7, 3, 17),
            (64, 64, 300),
            (13, 300, 49),
            (150, 513, 70),
            (512, 512, 16),
            (5, 0, 9),
        ]
        .iter()
        .enumerate()
        {
            let a = values(m * k, 1 + i as u64);
            let b = values(k * (n + 3), 2 + i as u64);
            let old = values(m * (n + 5), 4 + i as u64);
            let packed = pack_rows(&a, m, k);
            let mut dst = old.clone();
            let lhs = PackedRows {
                values: &packed,
                rows: m,
                depth: k,
            };
            matmul_packed(&mut dst, n + 5, lhs, (&b, n + 3, n));
            let mut worst = 0.0f64;
            for r in 0..m {
                for c in 0..n + 5 {
                    let got = dst[r * (n + 5) + c];
                    if c >= n {
                        assert_eq!(got, old[r * (n + 5) + c], "column {c} beyond the product");
                        continue;
                    }
                    let products = (0..k).map(|j| a[r * k + j] as f64 * b[j * (n + 3) + c] as f64);
                    let want: f64 = products.clone().sum();
                    // What the float32 rounding scales with.
                    let magnitude: f64 = products.map(f64::abs).sum();
                    worst = worst.max((got as f64 - want).abs() / magnitude.max(1e-30));
                }
            }
            // Measured up to 2.2e-7 of the sum of the terms' magnitudes.
            assert!(worst < 3e-7, "{m}x{k}x{n}: {worst:e}");
        }
    }

    #[test]
    fn packs_panels_of_rows() {
        let a: Vec<f32> = (0..14).map(|v| v as f32).collect();
        let packed = pack_rows(&a, 7, 2);
        assert_eq!(packed.len(), 2 * 2 * ROWS);
        assert_eq!(packed[..ROWS], [0.0, 2.0, 4.0, 6.0, 8.0, 10.0]);
        assert_eq!(packed[ROWS..2 * ROWS], [1.0, 3.0, 5.0, 7.0, 9.0, 11.0]);
        assert_eq!(
            packed[2 * ROWS..],
            [12.0, 0.0, 0.0, 0.0, 0.0, 0.0, 13.0, 0.0, 0.0, 0.0, 0.0, 0.0]
        );
    }
}
