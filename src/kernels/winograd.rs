//! Winograd's F(2x2, 3x3) for dense stride-1 3x3 float32 convolutions (Lavin and Gray, "Fast
//! Algorithms for Convolutional Neural Networks", <https://arxiv.org/abs/1509.09308>): each
//! 2x2 block of outputs comes from the 4x4 block of input around it with 16 multiplications
//! per channel pair instead of 36. Per block of tiles that is 16 matrix products
//! `M_e = U_e (out channels x channels) x V_e (channels x tiles)`, `e` one of the 4x4
//! transformed positions: `U = G g G^T` of each 3x3 weight (computed once per weight, see
//! [`prepacked`]), `V = B^T d B` of each input block, and the output `A^T M A`.

use burn::backend::TensorData;
use burn::backend::flex::FlexTensor;
use rayon::prelude::*;

use super::depthwise::deinterleave;
use super::epilogue::Activation;
use super::im2col::ConvGeometry;
use super::matmul::{Matrix, matmul};
use super::parallel::for_each_chunk_pair;
use super::prepacked::{Packing, prepacked};
use super::scratch::{with_lines, with_tile};

/// Fewest input and output channels for which the transforms pay for themselves: below, the
/// matrix products are too small (VGG's and ResNet's first layers have 3 input channels).
const MIN_CHANNELS: usize = 16;

/// Whether [`conv3x3_f32`] takes this convolution: 3x3, stride 1, enough channels (any padding).
pub(super) fn applies(g: &ConvGeometry) -> bool {
    g.kernel == [3, 3]
        && g.stride == [1, 1]
        && g.channels >= MIN_CHANNELS
        && g.out_channels >= MIN_CHANNELS
}

/// `act(conv2d(x, weight) + bias)` for a convolution [`applies`] takes: images go to threads;
/// a single image splits each block's transforms and products instead. With a `residual`
/// (the output's values in row-major order) the output is written over it,
/// `act((conv2d(x, weight) + bias) + residual)`.
pub(super) fn conv3x3_f32(
    geometry: &ConvGeometry,
    x: FlexTensor,
    weight: FlexTensor,
    bias: Option<FlexTensor>,
    residual: Option<Vec<f32>>,
    act: Activation,
) -> FlexTensor {
    let g = *geometry;
    let (channels, out_channels) = (g.channels, g.out_channels);
    let u = prepacked(&weight, Packing::Winograd2x2, |w| {
        transform_weight(w, out_channels, channels)
    });
    let x = x.to_contiguous();
    let input: &[f32] = x.storage();
    let bias = bias.map(|b| b.to_contiguous());
    let bias: Option<&[f32]> = bias.as_ref().map(|b| b.storage());
    let [oh, ow] = g.out_size;
    let tiles = Tiles::of(&g);
    let add_residual = residual.is_some();
    let mut output = residual.unwrap_or_else(|| vec![0.0f32; g.batch * out_channels * oh * ow]);
    let image = |input: &[f32], out: &mut [f32], split: bool| {
        let scratch = 16 * (channels + out_channels) * tiles.width * tiles.rows_per_block;
        with_tile(scratch, |scratch| {
            for rows in (0..tiles.height).step_by(tiles.rows_per_block) {
                let rows = rows..(rows + tiles.rows_per_block).min(tiles.height);
                let n = rows.len() * tiles.width;
                let (v, m) = scratch.split_at_mut(16 * channels * n);
                let m = &mut m[..16 * out_channels * n];
                for_each_chunk_pair(
                    (v, 16 * n),
                    (input, g.height * g.width),
                    split,
                    |v, plane| transform_input(&g, &tiles, plane, v, rows.clone()),
                );
                let v: &[f32] = v;
                let product = |e: usize, m_e: &mut [f32]| {
                    let u_e = Matrix::new(
                        &u[e * channels * out_channels..],
                        [out_channels, channels],
                        [channels, 1],
                    );
                    let v_e = Matrix::new(&v[e * n..], [channels, n], [16 * n, 1]);
                    matmul(m_e, n, u_e, v_e, false, false);
                };
                if split {
                    m.par_chunks_mut(out_channels * n)
                        .enumerate()
                        .for_each(|(e, m_e)| product(e, m_e));
                } else {
                    for (e, m_e) in m.chunks_mut(out_channels * n).enumerate() {
                        product(e, m_e);
                    }
                }
                let m: &[f32] = m;
                let plane = |k: usize, plane: &mut [f32]| {
                    let b = bias.map_or(0.0, |b| b[k]);
                    let m_k = |e: usize| &m[(e * out_channels + k) * n..][..n];
                    let epilogue = Epilogue {
                        bias: b,
                        act,
                        add_residual,
                    };
                    transform_output(&g, &tiles, m_k, epilogue, plane, rows.clone());
                };
                if split {
                    out.par_chunks_mut(oh * ow)
                        .enumerate()
                        .for_each(|(k, p)| plane(k, p));
                } else {
                    for (k, p) in out.chunks_mut(oh * ow).enumerate() {
                        plane(k, p);
                    }
                }
            }
        })
    };
    for_each_chunk_pair(
        (&mut output, out_channels * oh * ow),
        (input, channels * g.height * g.width),
        g.batch > 1,
        |out, input| image(input, out, g.batch == 1),
    );
    FlexTensor::from_data(TensorData::new(output, [g.batch, out_channels, oh, ow]))
}

/// The 2x2 output tiles of an image and how many rows of them one block takes.
#[derive(Clone, Copy)]
struct Tiles {
    height: usize,
    width: usize,
    /// Tile rows per block: about [`BLOCK_TILES`] tiles (at least one row).
    rows_per_block: usize,
}

/// Tiles per block of the 16 products: each product reads its `U_e` (out channels x channels)
/// once per block, so blocks must be wide for the weights to be worth their reading.
const BLOCK_TILES: usize = 512;

impl Tiles {
    fn of(g: &ConvGeometry) -> Self {
        let [oh, ow] = g.out_size;
        let (height, width) = (oh.div_ceil(2), ow.div_ceil(2));
        let rows_per_block = BLOCK_TILES.div_ceil(width.max(1)).clamp(1, height.max(1));
        Tiles {
            height,
            width,
            rows_per_block,
        }
    }
}

/// `U = G g G^T` of every 3x3 weight `g = weight[k][c]`, stored `[e][k][c]` (each `U_e`
/// row-major like the weight itself, which gemm reads without packing it: it computes our
/// row-major products transposed, so the weight is its right-hand side), with
/// `G = [[1, 0, 0], [1/2, 1/2, 1/2], [1/2, -1/2, 1/2], [0, 0, 1]]`.
fn transform_weight(weight: &[f32], out_channels: usize, channels: usize) -> Vec<f32> {
    let g_times = |[a, b, c]: [f32; 3]| [a, 0.5 * (a + b + c), 0.5 * (a - b + c), c];
    let mut u = vec![0.0; 16 * channels * out_channels];
    for (kc, w) in weight.chunks_exact(9).enumerate() {
        let (k, c) = (kc / channels, kc % channels);
        // G g: each column of g through G, giving 4 rows of 3.
        let columns = [0, 1, 2].map(|j| g_times([w[j], w[3 + j], w[6 + j]]));
        for i in 0..4 {
            let row = g_times([columns[0][i], columns[1][i], columns[2][i]]);
            for (j, value) in row.into_iter().enumerate() {
                u[((i * 4 + j) * out_channels + k) * channels + c] = value;
            }
        }
    }
    u
}

/// `V = B^T d B` of the 4x4 input block `d` of each tile in the tile rows `rows`, for one input
/// channel `plane`, into `v` as `[e][tile]`, with
/// `B^T = [[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]]`. Outside the plane the
/// input is zero (the padding).
fn transform_input(
    g: &ConvGeometry,
    tiles: &Tiles,
    plane: &[f32],
    v: &mut [f32],
    rows: std::ops::Range<usize>,
) {
    let padded = 2 * tiles.width + 2;
    with_lines(8 * padded, |lines| {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU has AVX2, checked just above.
            return unsafe { transform_input_avx2(g, tiles, plane, v, rows, lines) };
        }
        transform_input_rows(g, tiles, plane, v, rows, lines)
    })
}

/// [`transform_input_rows`] compiled for AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn transform_input_avx2(
    g: &ConvGeometry,
    tiles: &Tiles,
    plane: &[f32],
    v: &mut [f32],
    rows: std::ops::Range<usize>,
    lines: &mut [f32],
) {
    transform_input_rows(g, tiles, plane, v, rows, lines)
}

/// [`transform_input`] with `lines`, room for 8 rows of `2 * tiles.width + 2` floats.
#[inline(always)]
fn transform_input_rows(
    g: &ConvGeometry,
    tiles: &Tiles,
    plane: &[f32],
    v: &mut [f32],
    rows: std::ops::Range<usize>,
    lines: &mut [f32],
) {
    let n = rows.len() * tiles.width;
    let padded = 2 * tiles.width + 2;
    let [top, left] = g.padding;
    let (d, bd) = lines.split_at_mut(4 * padded);
    for (row_in_block, ty) in rows.enumerate() {
        // The block's 4 input rows, zero-padded to whole tiles.
        for (i, line) in d.chunks_exact_mut(padded).enumerate() {
            line.fill(0.0);
            let Some(y) = (2 * ty + i).checked_sub(top).filter(|&y| y < g.height) else {
                continue;
            };
            let source = &plane[y * g.width..][..g.width];
            if left < padded {
                let len = (padded - left).min(g.width);
                line[left..left + len].copy_from_slice(&source[..len]);
            }
        }
        // B^T d down the columns, all of the row at once.
        let [d0, d1, d2, d3] = [0, 1, 2, 3].map(|i| &d[i * padded..][..padded]);
        let (b0, rest) = bd.split_at_mut(padded);
        let (b1, rest) = rest.split_at_mut(padded);
        let (b2, b3) = rest.split_at_mut(padded);
        for x in 0..padded {
            b0[x] = d0[x] - d2[x];
            b1[x] = d1[x] + d2[x];
            b2[x] = d2[x] - d1[x];
            b3[x] = d1[x] - d3[x];
        }
        // Then B along each row, tile by tile: tile `tx` reads `line[2 tx..2 tx + 4]`, which
        // is `even[tx], odd[tx], even[tx + 1], odd[tx + 1]` of the line's two column phases
        // (in `d`'s room, free now), so each output row is one loop over contiguous values.
        let (first, w) = (row_in_block * tiles.width, tiles.width);
        let (even, odd) = d[..padded].split_at_mut(padded / 2);
        for (i, line) in bd.chunks_exact(padded).enumerate() {
            deinterleave(line, even, odd);
            let (e0, e1, o0, o1) = (&even[..w], &even[1..=w], &odd[..w], &odd[1..=w]);
            let row = |j: usize| (i * 4 + j) * n + first;
            for (o, (a, b)) in v[row(0)..][..w].iter_mut().zip(e0.iter().zip(e1)) {
                *o = a - b;
            }
            for (o, (a, b)) in v[row(1)..][..w].iter_mut().zip(o0.iter().zip(e1)) {
                *o = a + b;
            }
            for (o, (a, b)) in v[row(2)..][..w].iter_mut().zip(e1.iter().zip(o0)) {
                *o = a - b;
            }
            for (o, (a, b)) in v[row(3)..][..w].iter_mut().zip(o0.iter().zip(o1)) {
                *o = a - b;
            }
        }
    }
}

/// What the output transform does to each value `v` of an output channel: `act(v + bias)`,
/// or `act((v + bias) + r)` with `r` the value already there when `add_residual`.
#[derive(Clone, Copy)]
struct Epilogue {
    bias: f32,
    act: Activation,
    add_residual: bool,
}

impl Epilogue {
    /// `row[2 x] = even[x]` and `row[2 x + 1] = odd[x]` through the epilogue; the choices made
    /// once for the row, so that each loop is one straight sequence.
    #[inline(always)]
    fn write_row(self, row: &mut [f32], even: &[f32], odd: &[f32]) {
        #[inline(always)]
        fn each(row: &mut [f32], even: &[f32], odd: &[f32], f: impl Fn(&mut f32, f32)) {
            let half = row.len() / 2;
            let mut pairs = row.chunks_exact_mut(2);
            for ((pair, &e), &o) in (&mut pairs).zip(even).zip(odd) {
                f(&mut pair[0], e);
                f(&mut pair[1], o);
            }
            if let [last] = pairs.into_remainder() {
                f(last, even[half]);
            }
        }
        let Epilogue { bias, act, .. } = self;
        match (self.add_residual, act) {
            (false, Activation::Identity) => each(row, even, odd, |o, v| *o = v + bias),
            (false, Activation::Relu) => each(row, even, odd, |o, v| *o = act.on(v + bias)),
            (false, Activation::Relu6) => each(row, even, odd, |o, v| *o = act.on(v + bias)),
            (true, Activation::Identity) => each(row, even, odd, |o, v| *o += v + bias),
            (true, Activation::Relu) => each(row, even, odd, |o, v| *o = act.on(v + bias + *o)),
            (true, Activation::Relu6) => each(row, even, odd, |o, v| *o = act.on(v + bias + *o)),
        }
    }
}

/// The [`Epilogue`] of `A^T M A` of each tile in the tile rows `rows` into one output
/// channel's `plane`, where `m(e)` is the channel's row of `M_e` and
/// `A^T = [[1, 1, 1, 0], [0, 1, -1, -1]]`; the right and bottom tiles drop what falls outside
/// the output.
fn transform_output<'m>(
    g: &ConvGeometry,
    tiles: &Tiles,
    m: impl Fn(usize) -> &'m [f32],
    epilogue: Epilogue,
    plane: &mut [f32],
    rows: std::ops::Range<usize>,
) {
    let m: [&[f32]; 16] = std::array::from_fn(m);
    with_lines(4 * tiles.width, |lines| {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU has AVX2, checked just above.
            return unsafe { transform_output_avx2(g, tiles, &m, epilogue, plane, rows, lines) };
        }
        transform_output_rows(g, tiles, &m, epilogue, plane, rows, lines)
    })
}

/// [`transform_output_rows`] compiled for AVX2 (the crate builds for baseline x86-64, whose
/// vectors hold 4 floats).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn transform_output_avx2(
    g: &ConvGeometry,
    tiles: &Tiles,
    m: &[&[f32]; 16],
    epilogue: Epilogue,
    plane: &mut [f32],
    rows: std::ops::Range<usize>,
    lines: &mut [f32],
) {
    transform_output_rows(g, tiles, m, epilogue, plane, rows, lines)
}

/// [`transform_output`] with `lines`, room for 4 rows of `tiles.width` floats: per tile row,
/// the even and odd columns of its two output rows, each one loop over the tiles, then each
/// output row written from its two column phases.
#[inline(always)]
fn transform_output_rows(
    g: &ConvGeometry,
    tiles: &Tiles,
    m: &[&[f32]; 16],
    epilogue: Epilogue,
    plane: &mut [f32],
    rows: std::ops::Range<usize>,
    lines: &mut [f32],
) {
    let [oh, ow] = g.out_size;
    let w = tiles.width;
    let (top, bottom) = lines.split_at_mut(2 * w);
    let (top_even, top_odd) = top.split_at_mut(w);
    let (bottom_even, bottom_odd) = bottom.split_at_mut(w);
    for (row_in_block, ty) in rows.enumerate() {
        let t = row_in_block * w..(row_in_block + 1) * w;
        let [
            m00,
            m01,
            m02,
            m03,
            m10,
            m11,
            m12,
            m13,
            m20,
            m21,
            m22,
            m23,
            m30,
            m31,
            m32,
            m33,
        ] = m.map(|m_e| &m_e[t.clone()]);
        for tx in 0..w {
            // A^T M: two rows of four; then A along each row.
            let s00 = m00[tx] + m10[tx] + m20[tx];
            let s01 = m01[tx] + m11[tx] + m21[tx];
            let s02 = m02[tx] + m12[tx] + m22[tx];
            let s03 = m03[tx] + m13[tx] + m23[tx];
            let s10 = m10[tx] - m20[tx] - m30[tx];
            let s11 = m11[tx] - m21[tx] - m31[tx];
            let s12 = m12[tx] - m22[tx] - m32[tx];
            let s13 = m13[tx] - m23[tx] - m33[tx];
            top_even[tx] = s00 + s01 + s02;
            top_odd[tx] = s01 - s02 - s03;
            bottom_even[tx] = s10 + s11 + s12;
            bottom_odd[tx] = s11 - s12 - s13;
        }
        // The right tile of an odd width drops its second column (the row's length says so).
        let (top_row, rest) = plane[2 * ty * ow..].split_at_mut(ow);
        epilogue.write_row(top_row, top_even, top_odd);
        if 2 * ty + 1 < oh {
            epilogue.write_row(&mut rest[..ow], bottom_even, bottom_odd);
        }
    }
}
