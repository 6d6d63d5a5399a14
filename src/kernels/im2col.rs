//! A dense convolution's sizes, its tiles of output rows, and im2col / col2im of one input
//! channel (rows in the weight's own `[c, kh, kw]` order, so the weight is used as stored).

use std::ops::Range;

use burn::backend::flex::FlexTensor;
use burn::backend::ops::ConvOptions;
use burn::backend::{DType, Shape, TensorMetadata};

use super::depthwise::deinterleave;
use super::scratch::{TILE_FLOATS, with_lines};

/// The sizes of a dense convolution, for the float32 kernels below.
#[derive(Debug, Clone, Copy)]
pub(super) struct ConvGeometry {
    pub(super) batch: usize,
    pub(super) channels: usize,
    pub(super) height: usize,
    pub(super) width: usize,
    pub(super) out_channels: usize,
    pub(super) kernel: [usize; 2],
    pub(super) stride: [usize; 2],
    /// Top and left padding (bottom and right only show in the output size).
    pub(super) padding: [usize; 2],
    pub(super) out_size: [usize; 2],
}

impl ConvGeometry {
    /// `None` unless the convolution is dense (one group), without dilation, on float32.
    pub(super) fn of_dense_f32(
        x: &FlexTensor,
        weight: &FlexTensor,
        options: &ConvOptions<2>,
    ) -> Option<Self> {
        if options.groups != 1
            || options.dilation != [1, 1]
            || x.dtype() != DType::F32
            || weight.dtype() != DType::F32
        {
            return None;
        }
        let [batch, channels, height, width] = x.shape().dims();
        let [out_channels, _, kh, kw] = weight.shape().dims();
        let [(top, _), (left, _)] = options.padding;
        Some(Self {
            batch,
            channels,
            height,
            width,
            out_channels,
            kernel: [kh, kw],
            stride: options.stride,
            padding: [top, left],
            out_size: output_size(&x.shape(), [kh, kw], options),
        })
    }

    /// Rows of an image's im2col matrix (and columns of the weight matrix): `c * kh * kw`.
    pub(super) fn patch_len(&self) -> usize {
        self.channels * self.kernel[0] * self.kernel[1]
    }

    /// A 1x1 convolution with stride 1 and no padding, whose input already is its im2col.
    pub(super) fn is_pointwise(&self) -> bool {
        self.kernel == [1, 1] && self.stride == [1, 1] && self.padding == [0, 0]
    }

    /// Output rows per im2col tile: whole rows, about [`TILE_FLOATS`] floats (at least one row).
    pub(super) fn tile_rows(&self) -> usize {
        let row = self.patch_len() * self.out_size[1];
        (TILE_FLOATS / row.max(1)).clamp(1, self.out_size[0].max(1))
    }

    /// The output rows of an image in tiles of [`tile_rows`](Self::tile_rows).
    pub(super) fn tiles(&self) -> impl Iterator<Item = Range<usize>> {
        let (oh, step) = (self.out_size[0], self.tile_rows());
        (0..oh).step_by(step).map(move |y| y..(y + step).min(oh))
    }

    /// For each kernel offset `k` along one axis, the output positions `o` whose input position
    /// `o * stride + k - padding` is inside `0..len`.
    fn inside(o_len: usize, stride: usize, padding: usize, k: usize, len: usize) -> Range<usize> {
        let start = padding.saturating_sub(k).div_ceil(stride).min(o_len);
        let end = (len + padding)
            .saturating_sub(k)
            .div_ceil(stride)
            .min(o_len);
        start..end.max(start)
    }

    /// Fills the `kh * kw` im2col rows of one input channel for the output rows `ys`: row
    /// `(i, j)` holds, for each of their positions, the input at offset `(i, j)` of its window
    /// (zero in the padding). The kernel fills them by kernel row instead.
    #[cfg(test)]
    pub(super) fn im2col_channel(&self, plane: &[f32], rows: &mut [f32], ys: Range<usize>) {
        let kernel_row = self.kernel[1] * ys.len() * self.out_size[1];
        for (i, rows) in rows.chunks_mut(kernel_row.max(1)).enumerate() {
            self.im2col_kernel_row(plane, rows, ys.clone(), i);
        }
    }

    /// The `kw` im2col rows `(i, 0..kw)` of one input channel for the output rows `ys`: row
    /// `(i, j)` holds, for each of their positions, the input at offset `(i, j)` of its window
    /// (zero in the padding). With a column stride below the kernel's width (ResNet's 7x7 stem,
    /// stride 2), the input rows are first split into the stride's phases (the columns `c` with
    /// the same `c % stride`, one phase after the other), so that each offset's columns are one
    /// contiguous copy instead of a strided gather (45% of the stem's time before). With AVX2
    /// where the CPU has it (the crate builds for baseline x86-64, whose vectors hold 4 floats).
    pub(super) fn im2col_kernel_row(
        &self,
        plane: &[f32],
        rows: &mut [f32],
        ys: Range<usize>,
        i: usize,
    ) {
        #[cfg(target_arch = "x86_64")]
        {
            #[target_feature(enable = "avx2")]
            fn avx2(g: &ConvGeometry, plane: &[f32], rows: &mut [f32], ys: Range<usize>, i: usize) {
                g.im2col_kernel_row_here(plane, rows, ys, i)
            }
            if std::arch::is_x86_feature_detected!("avx2") {
                // SAFETY: the CPU has AVX2, checked just above.
                return unsafe { avx2(self, plane, rows, ys, i) };
            }
        }
        self.im2col_kernel_row_here(plane, rows, ys, i)
    }

    #[inline(always)]
    fn im2col_kernel_row_here(&self, plane: &[f32], rows: &mut [f32], ys: Range<usize>, i: usize) {
        let (width, kw, [sh, sw], [pt, pl]) =
            (self.width, self.kernel[1], self.stride, self.padding);
        let [oh, ow] = self.out_size;
        let rows_in = Self::inside(oh, sh, pt, i, self.height);
        let input_row = |y: usize| &plane[(y * sh + i - pt) * width..][..width];
        let split = sw > 1 && kw > sw;
        // Where phase `p` starts in a split row: after the columns of the phases before it.
        let phase_start =
            |p: usize| -> usize { (0..p).map(|q| width.saturating_sub(q).div_ceil(sw)).sum() };
        with_lines(if split { ys.len() * width } else { 0 }, |phases| {
            if split {
                for (dy, y) in ys.clone().enumerate().filter(|(_, y)| rows_in.contains(y)) {
                    let row = input_row(y);
                    let split_row = &mut phases[dy * width..][..width];
                    if sw == 2 {
                        let (even, odd) = split_row.split_at_mut(width.div_ceil(2));
                        deinterleave(row, even, odd);
                        continue;
                    }
                    let in_phases = (0..sw.min(width)).flat_map(|p| row[p..].iter().step_by(sw));
                    for (slot, &v) in split_row.iter_mut().zip(in_phases) {
                        *slot = v;
                    }
                }
            }
            for j in 0..kw {
                let cols_in = Self::inside(ow, sw, pl, j, width);
                // Saturating: an offset with no column inside has nothing to copy.
                let first = (cols_in.start * sw + j).saturating_sub(pl);
                let at = phase_start(first % sw) + first / sw;
                for (dy, y) in ys.clone().enumerate() {
                    let out_row = &mut rows[(j * ys.len() + dy) * ow..][..ow];
                    if !rows_in.contains(&y) || cols_in.is_empty() {
                        out_row.fill(0.0);
                        continue;
                    }
                    out_row[..cols_in.start].fill(0.0);
                    out_row[cols_in.end..].fill(0.0);
                    let out = &mut out_row[cols_in.clone()];
                    if split {
                        out.copy_from_slice(&phases[dy * width + at..][..out.len()]);
                    } else if sw == 1 {
                        out.copy_from_slice(&input_row(y)[first..first + out.len()]);
                    } else {
                        let values = input_row(y)[first..].iter().step_by(sw);
                        out.iter_mut().zip(values).for_each(|(o, &v)| *o = v);
                    }
                }
            }
        })
    }

    /// The transpose of im2col over a whole channel (the `kh` calls of
    /// [`im2col_kernel_row`](Self::im2col_kernel_row)): adds each row's values back to the
    /// input positions they came from.
    pub(super) fn col2im_channel(&self, rows: &[f32], plane: &mut [f32], ys: Range<usize>) {
        let (kw, [sh, sw], [pt, pl]) = (self.kernel[1], self.stride, self.padding);
        let [oh, ow] = self.out_size;
        for (offset, row) in rows.chunks(ys.len() * ow).enumerate() {
            let (i, j) = (offset / kw, offset % kw);
            let rows_in = Self::inside(oh, sh, pt, i, self.height);
            let cols_in = Self::inside(ow, sw, pl, j, self.width);
            if cols_in.is_empty() {
                continue;
            }
            let first = cols_in.start * sw + j - pl;
            for y in ys.start.max(rows_in.start)..ys.end.min(rows_in.end) {
                let input_row = &mut plane[(y * sh + i - pt) * self.width..][..self.width];
                let values = &row[(y - ys.start) * ow..][cols_in.clone()];
                if sw == 1 {
                    for (x, &v) in input_row[first..].iter_mut().zip(values) {
                        *x += v;
                    }
                } else {
                    for (x, &v) in input_row[first..].iter_mut().step_by(sw).zip(values) {
                        *x += v;
                    }
                }
            }
        }
    }
}

/// Output height and width of a convolution (dilation 1).
fn output_size(x: &Shape, [kh, kw]: [usize; 2], options: &ConvOptions<2>) -> [usize; 2] {
    let [(top, bottom), (left, right)] = options.padding;
    let [sh, sw] = options.stride;
    [
        (x[2] + top + bottom - kh) / sh + 1,
        (x[3] + left + right - kw) / sw + 1,
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn geometry(
        size: [usize; 2],
        kernel: [usize; 2],
        stride: [usize; 2],
        pad: [(usize, usize); 2],
    ) -> ConvGeometry {
        let [(top, bottom), (left, right)] = pad;
        let out = |n: usize, p: usize, k: usize, s: usize| (n + p - k) / s + 1;
        ConvGeometry {
            batch: 1,
            channels: 1,
            height: size[0],
            width: size[1],
            out_channels: 1,
            kernel,
            stride,
            padding: [top, left],
            out_size: [
                out(size[0], top + bottom, kernel[0], stride[0]),
                out(size[1], left + right, kernel[1], stride[1]),
            ],
        }
    }

    /// Worked out by hand: a 2x3 plane, a 2x2 kernel, stride 1, one column of padding left.
    #[test]
    fn im2col_of_a_small_plane() {
        let g = geometry([2, 3], [2, 2], [1, 1], [(0, 0), (1, 0)]);
        assert_eq!(g.out_size, [1, 3]);
        let plane = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
        let mut rows = [f32::NAN; 12];
        g.im2col_channel(&plane, &mut rows, 0..1);
        // Offsets (0,0), (0,1), (1,0), (1,1), each over the three output positions.
        assert_eq!(
            rows,
            [0.0, 1.0, 2.0, 1.0, 2.0, 3.0, 0.0, 4.0, 5.0, 4.0, 5.0, 6.0]
        );
    }

    /// Every im2col entry is the input at its window offset, or zero in the padding (the
    /// definition, entry by entry), over strides 1 to 3, paddings wider than the kernel
    /// reaches, odd sizes and tiles of part of the output.
    #[test]
    fn im2col_entries_are_the_inputs_at_their_offsets() {
        let cases = [
            ([7, 9], [3, 3], [1, 1], [(1, 1), (1, 1)]),
            ([13, 11], [5, 3], [2, 2], [(2, 2), (0, 1)]),
            ([9, 10], [7, 7], [2, 2], [(3, 3), (3, 3)]),
            ([11, 8], [3, 5], [3, 3], [(1, 0), (4, 2)]),
            ([4, 5], [1, 1], [2, 2], [(0, 0), (0, 0)]),
            ([3, 2], [3, 3], [1, 2], [(4, 4), (4, 4)]),
        ];
        for (size, kernel, stride, pad) in cases {
            let g = geometry(size, kernel, stride, pad);
            let plane: Vec<f32> = (0..size[0] * size[1]).map(|v| v as f32 + 1.0).collect();
            let [oh, ow] = g.out_size;
            for ys in [0..oh, oh / 2..oh] {
                let mut rows = vec![f32::NAN; kernel[0] * kernel[1] * ys.len() * ow];
                g.im2col_channel(&plane, &mut rows, ys.clone());
                let mut at = 0;
                for (i, j) in (0..kernel[0]).flat_map(|i| (0..kernel[1]).map(move |j| (i, j))) {
                    for (y, x) in ys.clone().flat_map(|y| (0..ow).map(move |x| (y, x))) {
                        let row = (y * stride[0] + i).checked_sub(pad[0].0);
                        let col = (x * stride[1] + j).checked_sub(pad[1].0);
                        let want = match (row, col) {
                            (Some(r), Some(c)) if r < size[0] && c < size[1] => {
                                plane[r * size[1] + c]
                            }
                            _ => 0.0,
                        };
                        assert_eq!(
                            rows[at], want,
                            "{size:?} {kernel:?} {stride:?} {pad:?} ({i}, {j}) at ({y}, {x})"
                        );
                        at += 1;
                    }
                }
            }
        }
    }

    /// col2im is im2col's transpose: `<im2col(x), c> = <x, col2im(c)>`, over strides, paddings
    /// wider than the kernel reaches, odd sizes and tiles of one row.
    #[test]
    fn col2im_is_the_transpose_of_im2col() {
        let cases = [
            ([7, 9], [3, 3], [1, 1], [(1, 1), (1, 1)]),
            ([13, 11], [5, 3], [2, 2], [(2, 2), (0, 1)]),
            ([7, 9], [7, 7], [2, 1], [(3, 3), (3, 3)]),
            ([4, 5], [1, 1], [2, 2], [(0, 0), (0, 0)]),
            ([3, 2], [3, 3], [1, 1], [(4, 4), (4, 4)]),
        ];
        for (size, kernel, stride, pad) in cases {
            let g = geometry(size, kernel, stride, pad);
            let plane: Vec<f32> = (0..size[0] * size[1])
                .map(|i| ((i * 7) % 11) as f32 - 5.0)
                .collect();
            let [oh, ow] = g.out_size;
            for ys in [0..oh, oh / 2..oh] {
                let len = kernel[0] * kernel[1] * ys.len() * ow;
                let c: Vec<f32> = (0..len).map(|i| ((i * 5) % 13) as f32 - 6.0).collect();
                let mut rows = vec![f32::NAN; len];
                g.im2col_channel(&plane, &mut rows, ys.clone());
                let mut back = vec![0.0; plane.len()];
                g.col2im_channel(&c, &mut back, ys.clone());
                let lhs: f32 = rows.iter().zip(&c).map(|(a, b)| a * b).sum();
                let rhs: f32 = plane.iter().zip(&back).map(|(a, b)| a * b).sum();
                assert_eq!(
                    lhs, rhs,
                    "{size:?} {kernel:?} {stride:?} {pad:?} rows {ys:?}"
                );
            }
        }
    }
}
