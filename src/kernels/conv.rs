//! Dense float32 convolutions (one group, no dilation) and their input gradient, as im2col
//! tiles and one matrix product per tile.

use burn::backend::TensorData;
use burn::backend::flex::FlexTensor;

use super::epilogue::Activation;
use super::im2col::ConvGeometry;
use super::matmul::{Matrix, matmul};
use super::parallel::{add_to_rows, filled, for_each_chunk, for_each_chunk_pair};
use super::scratch::with_tile;

/// A dense float32 convolution, image by image, as im2col (rows in the weight's own
/// `[c, kh, kw]` order, so the weight is used as stored) and a matrix product per tile of
/// output rows, added to the output, which starts as the bias. A 1x1 convolution with stride
/// 1 is one product with the input as it is. Images go to threads; a single image splits each
/// tile's im2col and product instead (flex's reorders both operands on every call). `act`
/// runs on each tile of output positions as soon as its product is done, while it is in cache.
/// With a `residual` (the output's values in row-major order) the output is that buffer, which
/// the products add to: `act(conv(x) + residual + bias)`, the bias added with the activation
/// (pointwise) or before the products (im2col tiles).
pub(super) fn dense_conv2d_f32(
    geometry: &ConvGeometry,
    x: FlexTensor,
    weight: FlexTensor,
    bias: Option<FlexTensor>,
    residual: Option<Vec<f32>>,
    act: Activation,
) -> FlexTensor {
    let g = *geometry;
    let (x, weight) = (x.to_contiguous(), weight.to_contiguous());
    let (input, weight): (&[f32], &[f32]) = (x.storage(), weight.storage());
    let ([oh, ow], patch, plane_len) = (g.out_size, g.patch_len(), g.height * g.width);
    let positions = oh * ow;
    let weight = Matrix::new(weight, [g.out_channels, patch], [patch, 1]);
    let bias = bias.map(|b| b.to_contiguous());
    let bias: Option<&[f32]> = bias.as_ref().map(|b| b.storage());
    let bias_of = |row: usize| bias.map_or(0.0, |b| b[row % g.out_channels]);
    let has_residual = residual.is_some();
    let accumulate = bias.is_some() || has_residual;
    let mut output = match residual {
        // A pointwise convolution adds its bias after the product, with the activation.
        Some(residual) if g.is_pointwise() => residual,
        Some(mut residual) => {
            add_to_rows(&mut residual, positions, bias_of);
            residual
        }
        // Written once: every channel starts as its bias, which the products add to.
        None => filled(g.batch * g.out_channels, positions, bias_of),
    };
    let image = |input: &[f32], out: &mut [f32], split: bool| {
        if g.is_pointwise() {
            let input = Matrix::new(input, [patch, positions], [positions, 1]);
            matmul(out, positions, weight, input, accumulate, split);
            if has_residual && bias.is_some() {
                return act.apply_biased(out, positions, bias_of, split);
            }
            return for_each_chunk(out, positions, split, |_, channel| act.apply(channel));
        }
        let tile_len = patch * g.tile_rows() * ow;
        with_tile(tile_len, |tile| {
            for ys in g.tiles() {
                let n = ys.len() * ow;
                let columns = &mut tile[..patch * n];
                // By kernel row, so that a stem of 3 channels splits evenly too.
                let kh = g.kernel[0];
                for_each_chunk(columns, g.kernel[1] * n, split, |index, rows| {
                    let plane = &input[index / kh * plane_len..][..plane_len];
                    g.im2col_kernel_row(plane, rows, ys.clone(), index % kh)
                });
                let columns = Matrix::new(columns, [patch, n], [n, 1]);
                let dst = &mut out[ys.start * ow..];
                matmul(dst, positions, weight, columns, true, split);
                act.apply_columns(out, positions, ys.start * ow..ys.start * ow + n);
            }
        })
    };
    for_each_chunk_pair(
        (&mut output, g.out_channels * positions),
        (input, g.channels * plane_len),
        g.batch > 1,
        |out, input| image(input, out, g.batch == 1),
    );
    FlexTensor::from_data(TensorData::new(output, [g.batch, g.out_channels, oh, ow]))
}

/// The gradient of a dense float32 convolution with respect to its input, image by image and
/// tile by tile: the weight's transpose times the output gradient gives each im2col entry's
/// gradient, which [`col2im`](super::im2col::ConvGeometry::col2im_channel) adds back to the input positions.
pub(super) fn dense_conv2d_input_gradient_f32(
    geometry: &ConvGeometry,
    weight: FlexTensor,
    grad: FlexTensor,
) -> FlexTensor {
    let g = *geometry;
    let (weight, grad) = (weight.to_contiguous(), grad.to_contiguous());
    let (weight, grad): (&[f32], &[f32]) = (weight.storage(), grad.storage());
    let ([oh, ow], patch, plane_len) = (g.out_size, g.patch_len(), g.height * g.width);
    let positions = oh * ow;
    let weight_t = Matrix::new(weight, [g.out_channels, patch], [patch, 1]).t();
    let mut output = vec![0.0f32; g.batch * g.channels * plane_len];
    let image = |grad: &[f32], out: &mut [f32], split: bool| {
        if g.is_pointwise() {
            let grad = Matrix::new(grad, [g.out_channels, positions], [positions, 1]);
            return matmul(out, positions, weight_t, grad, false, split);
        }
        let tile_len = patch * g.tile_rows() * ow;
        with_tile(tile_len, |tile| {
            for ys in g.tiles() {
                let n = ys.len() * ow;
                let columns = &mut tile[..patch * n];
                let grad = Matrix::new(&grad[ys.start * ow..], [g.out_channels, n], [positions, 1]);
                matmul(columns, n, weight_t, grad, false, split);
                let rows_per_channel = g.kernel[0] * g.kernel[1] * n;
                for_each_chunk_pair(
                    (out, plane_len),
                    (columns, rows_per_channel),
                    split,
                    |plane, rows| g.col2im_channel(rows, plane, ys.clone()),
                );
            }
        })
    };
    for_each_chunk_pair(
        (&mut output, g.channels * plane_len),
        (grad, g.out_channels * positions),
        g.batch > 1,
        |out, grad| image(grad, out, g.batch == 1),
    );
    FlexTensor::from_data(TensorData::new(
        output,
        [g.batch, g.channels, g.height, g.width],
    ))
}
