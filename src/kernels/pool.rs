//! Max pooling's forward pass on float32 (its backward is burn's).

use burn::backend::flex::FlexTensor;
use burn::backend::{TensorData, TensorMetadata};
use rayon::prelude::*;

/// Max pooling of a float32 tensor, one (image, channel) plane per task: per output row, the
/// elementwise maximum of the window's input rows, then the maximum of each window's columns
/// of that row. NaN wins, as in PyTorch.
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
    // The input positions a window covers, `start..end`, clipped to the input.
    let span = |o: usize, stride: usize, pad: usize, k: usize, len: usize| {
        let start = (o * stride).saturating_sub(pad);
        start..(o * stride + k).saturating_sub(pad).min(len)
    };
    let max = |a: f32, b: f32| if b > a || b.is_nan() { b } else { a };
    let input: &[f32] = x.storage();
    let mut output = vec![0f32; n * c * oh * ow];
    output
        .par_chunks_mut(oh * ow)
        .zip(input.par_chunks(h * w))
        .for_each(|(out, plane)| {
            let mut row_max = vec![f32::NEG_INFINITY; w];
            for (r, out_row) in out.chunks_mut(ow).enumerate() {
                row_max.fill(f32::NEG_INFINITY);
                let rows = span(r, sh, ph, kh, h);
                for row in plane[rows.start * w..rows.end * w].chunks(w) {
                    for (m, &v) in row_max.iter_mut().zip(row) {
                        *m = max(*m, v);
                    }
                }
                for (col, o) in out_row.iter_mut().enumerate() {
                    *o = row_max[span(col, sw, pw, kw, w)]
                        .iter()
                        .fold(f32::NEG_INFINITY, |a, &b| max(a, b));
                }
            }
        });
    FlexTensor::from_data(TensorData::new(output, [n, c, oh, ow]))
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
