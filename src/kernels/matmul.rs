//! One float32 matrix product through the `gemm` crate, on strided views of slices.

/// A float32 matrix in a slice: `rows x cols` with the given strides.
#[derive(Clone, Copy)]
pub(super) struct Matrix<'a> {
    data: &'a [f32],
    rows: usize,
    cols: usize,
    /// Distance between rows and between columns, in elements.
    strides: [usize; 2],
}

impl<'a> Matrix<'a> {
    /// A view of `data`; panics if the last element lies outside it (a bug in the caller).
    pub(super) fn new(data: &'a [f32], [rows, cols]: [usize; 2], strides: [usize; 2]) -> Self {
        let last = (rows.max(1) - 1) * strides[0] + (cols.max(1) - 1) * strides[1];
        assert!(
            rows * cols == 0 || last < data.len(),
            "matrix out of its slice"
        );
        Self {
            data,
            rows,
            cols,
            strides,
        }
    }

    /// The transpose, through the strides.
    pub(super) fn t(self) -> Self {
        Self {
            rows: self.cols,
            cols: self.rows,
            strides: [self.strides[1], self.strides[0]],
            ..self
        }
    }
}

/// Fewest columns of a band of [`matmul_by_column_bands`]: the height of gemm's AVX-512 tile.
const BAND_COLUMNS: usize = 64;

/// `dst = lhs x rhs` (`dst += lhs x rhs` when `accumulate`) with gemm; `dst` is row-major with
/// row stride `dst_stride`. Parallel over rayon's threads when `split` and the product is large
/// (flex's threshold).
pub(super) fn matmul(
    dst: &mut [f32],
    dst_stride: usize,
    lhs: Matrix,
    rhs: Matrix,
    accumulate: bool,
    split: bool,
) {
    let (m, k, n) = (lhs.rows, lhs.cols, rhs.cols);
    assert_eq!(k, rhs.rows, "inner dimensions");
    assert!(
        m * n == 0 || (m - 1) * dst_stride + n <= dst.len(),
        "output out of its slice"
    );
    let threads = rayon::current_num_threads();
    let large = split && m * n * k >= 192 * 192 * 192;
    if large && threads > 1 {
        if n > m && n >= BAND_COLUMNS * threads {
            return matmul_by_column_bands(dst, dst_stride, lhs, rhs, accumulate, threads);
        }
        if m >= 32 * threads {
            return matmul_by_row_bands(dst, dst_stride, lhs, rhs, accumulate, threads);
        }
    }
    let parallelism = if large {
        gemm::Parallelism::Rayon(0)
    } else {
        gemm::Parallelism::None
    };
    // SAFETY: the asserts above keep every element gemm writes inside `dst`, borrowed
    // mutably.
    unsafe {
        gemm_into(
            dst.as_mut_ptr(),
            dst_stride,
            lhs,
            rhs,
            accumulate,
            parallelism,
        )
    }
}

/// gemm's `dst = lhs x rhs` (or `+=`) into the row-major `dst` at row stride `dst_stride`.
///
/// # Safety
/// The `lhs.rows x rhs.cols` elements from `dst` at that stride are writable and nothing else
/// reads or writes them meanwhile.
unsafe fn gemm_into(
    dst: *mut f32,
    dst_stride: usize,
    lhs: Matrix,
    rhs: Matrix,
    accumulate: bool,
    parallelism: gemm::Parallelism,
) {
    // SAFETY: `lhs` and `rhs` hold every element they view (`Matrix::new`); `dst` is the
    // caller's.
    unsafe {
        gemm::gemm(
            lhs.rows,
            rhs.cols,
            lhs.cols,
            dst,
            1,
            dst_stride as isize,
            accumulate,
            lhs.data.as_ptr(),
            lhs.strides[1] as isize,
            lhs.strides[0] as isize,
            rhs.data.as_ptr(),
            rhs.strides[1] as isize,
            rhs.strides[0] as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            parallelism,
        );
    }
}

/// [`matmul`] as one serial product per band of output columns, a band per thread: where the
/// right side is wider than the left is tall, each thread then packs its part of the right
/// side and all of the smaller left, where row bands have every thread pack all of the right
/// (ResNet-50 batch 1 on two threads 2-6% faster, Lite0 2-4%; docs/benchmarks.md, section 17).
fn matmul_by_column_bands(
    dst: &mut [f32],
    dst_stride: usize,
    lhs: Matrix,
    rhs: Matrix,
    accumulate: bool,
    threads: usize,
) {
    use rayon::prelude::*;
    /// The output, written by every band at its own columns.
    struct Output(*mut f32);
    // SAFETY: the bands write disjoint columns.
    unsafe impl Sync for Output {}
    let n = rhs.cols;
    // Band edges at multiples of 16 floats: on a row aligned to 64 bytes, no cache line is
    // written by two bands.
    let band = n.div_ceil(threads).next_multiple_of(16);
    let out = Output(dst.as_mut_ptr());
    (0..n.div_ceil(band)).into_par_iter().for_each(|i| {
        let c0 = i * band;
        let cols = band.min(n - c0);
        let rhs = Matrix::new(
            &rhs.data[c0 * rhs.strides[1]..],
            [rhs.rows, cols],
            rhs.strides,
        );
        let out = &out;
        // SAFETY: the band's columns `c0..` of every row lie in `dst` (asserted by `matmul`)
        // and no other band writes them.
        unsafe {
            gemm_into(
                out.0.add(c0),
                dst_stride,
                lhs,
                rhs,
                accumulate,
                gemm::Parallelism::None,
            )
        }
    });
}

/// [`matmul`] as one serial product per band of output rows, a band per thread. gemm's own
/// split leaves the second core idle on shapes such as ResNet-50's `layer3` reductions (256
/// output rows, 1024 deep, 196 columns: 0.41 ms on two threads against 0.43 on one, 0.23 by
/// bands; docs/benchmarks.md, section 12).
fn matmul_by_row_bands(
    dst: &mut [f32],
    dst_stride: usize,
    lhs: Matrix,
    rhs: Matrix,
    accumulate: bool,
    threads: usize,
) {
    use rayon::prelude::*;
    let (m, n) = (lhs.rows, rhs.cols);
    let band = m.div_ceil(threads);
    dst[..(m - 1) * dst_stride + n]
        .par_chunks_mut(band * dst_stride)
        .enumerate()
        .for_each(|(i, dst)| {
            let lhs = Matrix {
                data: &lhs.data[i * band * lhs.strides[0]..],
                rows: band.min(m - i * band),
                ..lhs
            };
            matmul(dst, dst_stride, lhs, rhs, accumulate, false)
        });
}

#[cfg(test)]
mod tests {
    use burn::tensor::{Device, Distribution, Tensor, TensorData};

    use super::*;

    fn random(shape: [usize; 2]) -> (Tensor<2>, Vec<f32>) {
        let t = Tensor::<2>::random(shape, Distribution::Normal(0.0, 1.0), &Device::flex());
        let values = t.to_data().iter::<f32>().collect();
        (t, values)
    }

    /// Against burn's matmul (equal: flex's runs the same gemm kernels): plain, with the left side transposed through its strides, into a
    /// wider destination, accumulating, and large enough to split over threads.
    #[test]
    fn matmul_matches_burn() {
        // Two threads on any machine: the split products of 200 and 201 rows take row bands,
        // the last two (wider than tall) column bands.
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .unwrap();
        for (m, k, n, transposed, accumulate, split) in [
            (5, 7, 3, false, false, false),
            (1, 9, 13, true, false, false),
            (6, 4, 11, false, true, false),
            (8, 1, 5, true, true, true),
            (200, 200, 200, false, true, true),
            (201, 193, 197, true, false, true),
            (193, 201, 197, true, false, true),
            (64, 160, 803, false, true, true),
        ] {
            let (a, a_values) = random(if transposed { [k, m] } else { [m, k] });
            let (b, b_values) = random([k, n]);
            let (c, c_values) = random([m, n + 2]);
            let lhs = if transposed {
                Matrix::new(&a_values, [k, m], [m, 1]).t()
            } else {
                Matrix::new(&a_values, [m, k], [k, 1])
            };
            let rhs = Matrix::new(&b_values, [k, n], [n, 1]);
            let mut dst = c_values.clone();
            pool.install(|| matmul(&mut dst, n + 2, lhs, rhs, accumulate, split));
            let a = if transposed { a.transpose() } else { a };
            let product = a.matmul(b);
            let start = if accumulate {
                c.clone().slice([0..m, 0..n])
            } else {
                product.zeros_like()
            };
            let want = c.slice_assign([0..m, 0..n], start + product);
            let got = Tensor::<2>::from_data(TensorData::new(dst, [m, n + 2]), &Device::flex());
            let diff: f32 = (got - want).abs().max().into_scalar();
            assert_eq!(diff, 0.0, "{m}x{k}x{n}");
        }
    }
}
