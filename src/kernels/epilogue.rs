//! The activation a convolution applies to its output while the values are still in cache,
//! instead of a separate pass over the whole tensor (burn's ReLU, our two-clamp ReLU6).

/// The rectifier fused into a convolution's epilogue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    /// The convolution's output as it is.
    Identity,
    /// `max(x, 0)`.
    Relu,
    /// `clamp(x, 0, 6)`.
    Relu6,
}

impl Activation {
    /// `self` on one value, as flex's `relu` and `clamp` do it: NaN stays NaN, -0 becomes 0.
    #[inline(always)]
    pub(super) fn on(self, v: f32) -> f32 {
        match self {
            Activation::Identity => v,
            Activation::Relu => relu(v),
            Activation::Relu6 => {
                let v = relu(v);
                if v.is_nan() || v < 6.0 { v } else { 6.0 }
            }
        }
    }

    /// `self` on every value of `values`, in place.
    pub(super) fn apply(self, values: &mut [f32]) {
        match self {
            Activation::Identity => {}
            Activation::Relu => each(values, relu),
            Activation::Relu6 => each(values, |v| Activation::Relu6.on(v)),
        }
    }

    /// `self(v + bias(r))` on each value `v` of row `r` of `rows` (`row_len` values a row), on
    /// rayon's threads when `parallel`: a pointwise convolution's bias, added after its product
    /// when the output started as a residual, in the same pass as the activation.
    pub(super) fn apply_biased(
        self,
        rows: &mut [f32],
        row_len: usize,
        bias: impl Fn(usize) -> f32 + Sync,
        parallel: bool,
    ) {
        let row = |(r, values): (usize, &mut [f32])| {
            let b = bias(r);
            match self {
                Activation::Identity => each(values, |v| v + b),
                Activation::Relu => each(values, |v| relu(v + b)),
                Activation::Relu6 => each(values, |v| Activation::Relu6.on(v + b)),
            }
        };
        if parallel {
            use rayon::prelude::*;
            rows.par_chunks_mut(row_len.max(1))
                .enumerate()
                .for_each(row);
        } else {
            rows.chunks_mut(row_len.max(1)).enumerate().for_each(row);
        }
    }

    /// `self` on columns `columns` of each row of `rows` (`row_len` values a row): the tile of
    /// output positions a product has just written, in every output channel.
    pub(super) fn apply_columns(
        self,
        rows: &mut [f32],
        row_len: usize,
        columns: std::ops::Range<usize>,
    ) {
        if self == Activation::Identity {
            return;
        }
        for row in rows.chunks_mut(row_len.max(1)) {
            self.apply(&mut row[columns.clone()]);
        }
    }
}

#[inline(always)]
fn relu(v: f32) -> f32 {
    if v.is_nan() || v > 0.0 { v } else { 0.0 }
}

/// `f` on each value, compiled for AVX2 where the CPU has it (the crate builds for baseline
/// x86-64, whose vectors hold 4 floats).
#[inline(always)]
fn each(values: &mut [f32], f: impl Fn(f32) -> f32 + Copy) {
    #[inline(always)]
    fn plain(values: &mut [f32], f: impl Fn(f32) -> f32) {
        for v in values {
            *v = f(*v);
        }
    }
    #[cfg(target_arch = "x86_64")]
    {
        #[target_feature(enable = "avx2")]
        fn avx2(values: &mut [f32], f: impl Fn(f32) -> f32) {
            plain(values, f)
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU has AVX2, checked just above.
            return unsafe { avx2(values, f) };
        }
    }
    plain(values, f)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rectifiers_on_their_edges() {
        let mut v = [-1.0, -0.0, 0.0, 0.5, 6.0, 7.5, f32::NEG_INFINITY, f32::NAN];
        Activation::Relu6.apply(&mut v);
        assert_eq!(v[..7], [0.0, 0.0, 0.0, 0.5, 6.0, 6.0, 0.0]);
        assert!(v[6].is_sign_positive() && v[1].is_sign_positive() && v[7].is_nan());
        let mut v = [-1.0, 0.5, 7.5];
        Activation::Relu.apply(&mut v);
        assert_eq!(v, [0.0, 0.5, 7.5]);
        let mut v = [-1.0, 7.5];
        Activation::Identity.apply(&mut v);
        assert_eq!(v, [-1.0, 7.5]);
    }

    #[test]
    fn biased_rows() {
        for parallel in [false, true] {
            let mut rows = [-1.0, 2.0, -3.0, 4.0, 5.0, 6.5];
            Activation::Relu6.apply_biased(&mut rows, 2, |r| r as f32, parallel);
            assert_eq!(rows, [0.0, 2.0, 0.0, 5.0, 6.0, 6.0]);
            let mut rows = [-1.0, 2.0, -3.0];
            Activation::Identity.apply_biased(&mut rows, 1, |r| r as f32 * 0.5, parallel);
            assert_eq!(rows, [-1.0, 2.5, -2.0]);
        }
    }

    #[test]
    fn columns_of_each_row() {
        let mut rows = [-1.0, -2.0, -3.0, -4.0, -5.0, -6.0];
        Activation::Relu.apply_columns(&mut rows, 3, 1..3);
        assert_eq!(rows, [-1.0, 0.0, 0.0, -4.0, 0.0, 0.0]);
    }
}
