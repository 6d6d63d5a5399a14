//! The kernels' one parallel-or-serial loop over matching chunks of two slices, and where a
//! pass runs so that those loops fork cheaply.

use std::mem::MaybeUninit;

use rayon::prelude::*;

use super::GuidedReluGuard;

/// Runs `f` on one of rayon's threads (on this one when it is one) and returns its result.
///
/// A pass's parallel loops then fork from a worker, which shares them through its own queue;
/// from any other thread every loop is sent to the pool and waited for, two thread wake-ups
/// per loop (docs/benchmarks.md, section 10). The guided rectifiers are on in `f` when they
/// are on here, also when a waiting worker runs `f` between the steps of another pass.
///
/// ```
/// let on_a_worker = gradcam::kernels::on_worker(|| rayon::current_thread_index().is_some());
/// assert!(on_a_worker);
/// ```
pub fn on_worker<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    if rayon::current_thread_index().is_some() {
        return f();
    }
    let guided = GuidedReluGuard::active();
    rayon::scope(|_| {
        let _guided = GuidedReluGuard::set(guided);
        f()
    })
}

/// `rows` rows of `row_len` floats, row `r` filled with `value(r)`, written once (no zeroing
/// first) and on rayon's threads.
pub(super) fn filled(rows: usize, row_len: usize, value: impl Fn(usize) -> f32 + Sync) -> Vec<f32> {
    let len = rows * row_len;
    let mut out: Vec<f32> = Vec::with_capacity(len);
    out.spare_capacity_mut()[..len]
        .par_chunks_mut(row_len.max(1))
        .with_min_len(16)
        .enumerate()
        .for_each(|(r, row)| row.fill(MaybeUninit::new(value(r))));
    // SAFETY: the loop above wrote all `len` elements (`rows` chunks of `row_len`).
    unsafe { out.set_len(len) };
    out
}

/// `value(r)` added to each value of row `r` of `values` (rows of `row_len`), on rayon's threads.
pub(super) fn add_to_rows(values: &mut [f32], row_len: usize, value: impl Fn(usize) -> f32 + Sync) {
    values
        .par_chunks_mut(row_len.max(1))
        .with_min_len(16)
        .enumerate()
        .for_each(|(r, row)| {
            let v = value(r);
            row.iter_mut().for_each(|x| *x += v);
        });
}

/// `f(index, chunk)` on each chunk of `dst` of `len` values, on rayon's threads when
/// `parallel`, else on this one.
pub(super) fn for_each_chunk(
    dst: &mut [f32],
    len: usize,
    parallel: bool,
    f: impl Fn(usize, &mut [f32]) + Sync,
) {
    let len = len.max(1);
    if parallel {
        dst.par_chunks_mut(len)
            .enumerate()
            .for_each(|(i, d)| f(i, d));
    } else {
        dst.chunks_mut(len).enumerate().for_each(|(i, d)| f(i, d));
    }
}

/// `f` on each pair of chunks of `dst` and `src` (of the lengths given), in order: on rayon's
/// threads when `parallel`, else on this one. The dense kernels' images (parallel when there
/// are several) and the channels of one image's im2col or col2im (parallel when the image is
/// alone) both go through it.
pub(super) fn for_each_chunk_pair(
    (dst, dst_len): (&mut [f32], usize),
    (src, src_len): (&[f32], usize),
    parallel: bool,
    f: impl Fn(&mut [f32], &[f32]) + Sync,
) {
    // Empty chunks only come with an empty tensor, which has nothing to compute.
    let (dst_len, src_len) = (dst_len.max(1), src_len.max(1));
    if parallel {
        dst.par_chunks_mut(dst_len)
            .zip(src.par_chunks(src_len))
            .for_each(|(d, s)| f(d, s));
    } else {
        for (d, s) in dst.chunks_mut(dst_len).zip(src.chunks(src_len)) {
            f(d, s);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn on_worker_carries_the_guided_rectifiers_over() {
        for guided in [false, true] {
            let _guard = GuidedReluGuard::set(guided);
            let seen = on_worker(|| (rayon::current_thread_index(), GuidedReluGuard::active()));
            assert!(seen.0.is_some());
            assert_eq!(seen.1, guided);
        }
    }

    #[test]
    fn filled_writes_every_row() {
        assert_eq!(filled(3, 2, |r| r as f32), [0.0, 0.0, 1.0, 1.0, 2.0, 2.0]);
        assert_eq!(filled(0, 5, |_| 1.0), Vec::<f32>::new());
        assert_eq!(filled(100, 1, |r| r as f32).len(), 100);
    }

    #[test]
    fn add_to_rows_adds_each_rows_value() {
        let mut values = vec![1.0; 6];
        add_to_rows(&mut values, 2, |r| r as f32 * 10.0);
        assert_eq!(values, [1.0, 1.0, 11.0, 11.0, 21.0, 21.0]);
    }

    #[test]
    fn serial_and_parallel_pair_the_same_chunks() {
        let src: Vec<f32> = (0..6).map(|v| v as f32).collect();
        for parallel in [false, true] {
            let mut dst = vec![0.0; 9];
            for_each_chunk_pair((&mut dst, 3), (&src, 2), parallel, |d, s| {
                d.fill(s.iter().sum());
            });
            assert_eq!(dst, [1.0, 1.0, 1.0, 5.0, 5.0, 5.0, 9.0, 9.0, 9.0]);
        }
    }
}
