//! Max pooling's forward pass on float32 (its backward is burn's).

use burn::backend::flex::FlexTensor;
use burn::backend::{TensorData, TensorMetadata};
use rayon::prelude::*;

use super::depthwise::deinterleave;

/// Max pooling of a float32 tensor, one (image, channel) plane per task ([`pool_plane`]).
/// NaN wins, as in PyTorch.
pub(super) fn max_pool2d_f32(
    x: FlexTensor,
    [kh, kw]: [usize; 2],
    [sh, sw]: [usize; 2],
    [ph, pw]: [usize; 2],
) -> FlexTensor {
    let x = x.to_contiguous();
    let [n, c, h, w] = x.shape().dims();
    // A window larger than the padded input has no position (PyTorch refuses it; an empty
    // output here lets the caller's shape checks say what is wrong).
    let oh = (h + 2 * ph).checked_sub(kh).map_or(0, |d| d / sh + 1);
    let ow = (w + 2 * pw).checked_sub(kw).map_or(0, |d| d / sw + 1);
    if n * c * oh * ow == 0 {
        return FlexTensor::from_data(TensorData::new(Vec::<f32>::new(), [n, c, oh, ow]));
    }
    let input: &[f32] = x.storage();
    let mut output = vec![0f32; n * c * oh * ow];
    let window = Window {
        kernel: [kh, kw],
        stride: [sh, sw],
        padding: [ph, pw],
        input: [h, w],
    };
    output
        .par_chunks_mut(oh * ow)
        .zip(input.par_chunks(h * w))
        .for_each(|(out, plane)| {
            #[cfg(target_arch = "x86_64")]
            if std::arch::is_x86_feature_detected!("avx2") {
                // SAFETY: the CPU has AVX2, checked just above.
                return unsafe { pool_plane_avx2(&window, plane, out) };
            }
            pool_plane(&window, plane, out)
        });
    FlexTensor::from_data(TensorData::new(output, [n, c, oh, ow]))
}

/// A max pooling's window over an input plane of `input` rows and columns.
struct Window {
    kernel: [usize; 2],
    stride: [usize; 2],
    padding: [usize; 2],
    input: [usize; 2],
}

/// The larger of two values, NaN winning, as PyTorch's max pooling compares them.
#[inline(always)]
fn max(a: f32, b: f32) -> f32 {
    if b > a || b.is_nan() { b } else { a }
}

/// [`pool_plane`] compiled for AVX2 (the crate builds for baseline x86-64, whose vectors hold
/// 4 floats).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn pool_plane_avx2(window: &Window, plane: &[f32], out: &mut [f32]) {
    pool_plane(window, plane, out)
}

/// One plane's max pooling: per output row, the elementwise maximum of the window's input rows
/// (between -inf columns for the padding), then each window's maximum along that row, as one
/// straight loop per kernel column for strides 1 and 2 (the stride's column phases for 2).
/// Every window takes its values in the same order as a scan of it would, so even the sign of
/// a zero is PyTorch's.
#[inline(always)]
fn pool_plane(window: &Window, plane: &[f32], out: &mut [f32]) {
    let Window {
        kernel: [kh, kw],
        stride: [sh, sw],
        padding: [ph, pw],
        input: [h, w],
    } = *window;
    let ow = (w + 2 * pw - kw) / sw + 1;
    let mut padded = vec![f32::NEG_INFINITY; w + 2 * pw];
    let half = padded.len().div_ceil(2);
    let mut phases = vec![0.0; 2 * half];
    for (r, out_row) in out.chunks_mut(ow).enumerate() {
        let row_max = &mut padded[pw..pw + w];
        row_max.fill(f32::NEG_INFINITY);
        let start = (r * sh).saturating_sub(ph);
        let end = (r * sh + kh).saturating_sub(ph).min(h);
        for row in plane[start * w..end * w].chunks(w) {
            for (m, &v) in row_max.iter_mut().zip(row) {
                *m = max(*m, v);
            }
        }
        out_row.fill(f32::NEG_INFINITY);
        match sw {
            1 => {
                for j in 0..kw {
                    for (o, &v) in out_row.iter_mut().zip(&padded[j..]) {
                        *o = max(*o, v);
                    }
                }
            }
            2 => {
                let (even, odd) = phases.split_at_mut(half);
                deinterleave(&padded, even, odd);
                for j in 0..kw {
                    let phase = if j % 2 == 0 {
                        &even[j / 2..]
                    } else {
                        &odd[j / 2..]
                    };
                    for (o, &v) in out_row.iter_mut().zip(phase) {
                        *o = max(*o, v);
                    }
                }
            }
            _ => {
                for (col, o) in out_row.iter_mut().enumerate() {
                    for &v in &padded[col * sw..col * sw + kw] {
                        *o = max(*o, v);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_window_larger_than_the_input_gives_an_empty_output_not_a_panic() {
        let x = FlexTensor::from_data(TensorData::new(vec![1.0f32; 2], [1, 2, 1, 1]));
        let y = max_pool2d_f32(x, [2, 2], [2, 2], [0, 0]);
        assert_eq!(y.shape().dims::<4>(), [1, 2, 0, 0]);
    }
}
