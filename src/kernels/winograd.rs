//! Winograd's F(2x2, 3x3) and F(4x4, 3x3) for dense stride-1 3x3 float32 convolutions (Lavin
//! and Gray, "Fast Algorithms for Convolutional Neural Networks",
//! <https://arxiv.org/abs/1509.09308>): each 2x2 (4x4) block of outputs comes from the 4x4
//! (6x6) block of input around it with 16 (36) multiplications per channel pair instead of 36
//! (144). Per block of tiles that is 16 (36) matrix products
//! `M_e = U_e (out channels x channels) x V_e (channels x tiles)`, `e` one of the transformed
//! positions: `U = G g G^T` of each 3x3 weight (computed once per weight, see [`prepacked`]),
//! `V = B^T d B` of each input block, and the output `A^T M A`. F(4x4, 3x3) does 0.56x the
//! products' work of F(2x2, 3x3) and rounds more (its transforms multiply by up to 8), so it
//! takes only maps large enough for the saving to show ([`Variant::of`]).

use burn::backend::TensorData;
use burn::backend::flex::FlexTensor;
use rayon::prelude::*;

use super::depthwise::deinterleave;
use super::epilogue::Activation;
use super::im2col::ConvGeometry;
use super::matmul::{Matrix, matmul};
use super::packed_matmul::{self, PackedRows, matmul_packed, pack_rows};
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
    let variant = Variant::of(&g);
    let points = variant.points();
    let tiles = Tiles::of(&g, variant);
    let layout = if packed_matmul::preferred() {
        Layout::Panels
    } else if variant == Variant::F2x2 && tiles.height * tiles.width < NARROW_TILES {
        // One block of few tiles (F(4x4, 3x3) takes maps of at least 7 x 7 tiles, never these).
        Layout::ByChannel
    } else {
        Layout::Rows
    };
    let u = prepacked(&weight, variant.packing(layout), |w| {
        let u = match variant {
            Variant::F2x2 => transform_weight(w, out_channels, channels),
            Variant::F4x4 => transform_weight_4x4(w, out_channels, channels),
        };
        match layout {
            Layout::Rows => u,
            Layout::ByChannel => transpose_each(&u, out_channels, channels),
            Layout::Panels => u
                .chunks_exact(out_channels * channels)
                .flat_map(|u_e| pack_rows(u_e, out_channels, channels))
                .collect(),
        }
    });
    let u_len = u.len() / points;
    let x = x.to_contiguous();
    let input: &[f32] = x.storage();
    let bias = bias.map(|b| b.to_contiguous());
    let bias: Option<&[f32]> = bias.as_ref().map(|b| b.storage());
    let [oh, ow] = g.out_size;
    let add_residual = residual.is_some();
    let mut output = residual.unwrap_or_else(|| vec![0.0f32; g.batch * out_channels * oh * ow]);
    let image = |input: &[f32], out: &mut [f32], split: bool| {
        let scratch = points * (channels + out_channels) * tiles.width * tiles.rows_per_block;
        with_tile(scratch, |scratch| {
            for rows in (0..tiles.height).step_by(tiles.rows_per_block) {
                let rows = rows..(rows + tiles.rows_per_block).min(tiles.height);
                let n = rows.len() * tiles.width;
                let (v, m) = scratch.split_at_mut(points * channels * n);
                let m = &mut m[..points * out_channels * n];
                for_each_chunk_pair(
                    (v, points * n),
                    (input, g.height * g.width),
                    split,
                    |v, plane| transform_input(variant, &g, &tiles, plane, v, rows.clone()),
                );
                let v: &[f32] = v;
                let product = |e: usize, m_e: &mut [f32]| {
                    let u_e = &u[e * u_len..][..u_len];
                    if layout == Layout::Panels {
                        let u_e = PackedRows {
                            values: u_e,
                            rows: out_channels,
                            depth: channels,
                        };
                        let v_e = (&v[e * n..], points * n, n);
                        return matmul_packed(m_e, n, u_e, v_e);
                    }
                    let v_e = Matrix::new(&v[e * n..], [channels, n], [points * n, 1]);
                    if layout == Layout::ByChannel {
                        // M_e^T = V_e^T U_e^T, then back to M_e.
                        let u_e = Matrix::new(u_e, [channels, out_channels], [out_channels, 1]);
                        with_lines(n * out_channels, |m_t| {
                            matmul(m_t, out_channels, v_e.t(), u_e, false, false);
                            transpose_into(m_t, out_channels, m_e);
                        })
                    } else {
                        let u_e = Matrix::new(u_e, [out_channels, channels], [channels, 1]);
                        matmul(m_e, n, u_e, v_e, false, false);
                    }
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
                    match variant {
                        Variant::F2x2 => {
                            transform_output(&g, &tiles, m_k, epilogue, plane, rows.clone())
                        }
                        Variant::F4x4 => {
                            transform_output_4x4(&g, &tiles, m_k, epilogue, plane, rows.clone())
                        }
                    }
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

/// Which of the two algorithms a convolution takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Variant {
    F2x2,
    F4x4,
}

/// Output rows and columns from which F(4x4, 3x3) takes a convolution: measured faster than
/// F(2x2, 3x3) from 28x28 (ResNet-50's layer1 and layer2, VGG-16's first four stages; from 16
/// to 64 channels), even at 14x14 (layer3, whose 4x4 tiles overhang the map); the sizes
/// between keep the algorithm that rounds less (docs/benchmarks.md, section 12).
const F4X4_MIN_SIZE: usize = 28;

impl Variant {
    /// F(4x4, 3x3) for maps of at least [`F4X4_MIN_SIZE`] each way, F(2x2, 3x3) below.
    fn of(g: &ConvGeometry) -> Self {
        match g.out_size.iter().all(|&s| s >= F4X4_MIN_SIZE) {
            true => Variant::F4x4,
            false => Variant::F2x2,
        }
    }

    /// Output rows and columns of a tile.
    fn tile(self) -> usize {
        match self {
            Variant::F2x2 => 2,
            Variant::F4x4 => 4,
        }
    }

    /// Transformed positions of a tile: the input block's size, squared.
    fn points(self) -> usize {
        (self.tile() + 2).pow(2)
    }

    /// Tiles per block of the products: each product reads its `U_e` (out channels x
    /// channels) once per block, so blocks must be wide for the weights to be worth their
    /// reading; F(4x4, 3x3)'s tiles cover four times the outputs.
    fn block_tiles(self) -> usize {
        match self {
            Variant::F2x2 => 512,
            Variant::F4x4 => 128,
        }
    }

    fn packing(self, layout: Layout) -> Packing {
        match (self, layout) {
            (Variant::F2x2, Layout::Rows) => Packing::Winograd2x2,
            (Variant::F2x2, Layout::ByChannel) => Packing::Winograd2x2ByChannel,
            (Variant::F2x2, Layout::Panels) => Packing::Winograd2x2Panels,
            (Variant::F4x4, Layout::Panels) => Packing::Winograd4x4Panels,
            (Variant::F4x4, _) => Packing::Winograd4x4,
        }
    }
}

/// How the transformed weight's matrices `U_e` are stored for the products.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Layout {
    /// `[e][k][c]`, for gemm.
    Rows,
    /// `[e][c][k]`, for gemm's transposed products of narrow maps ([`NARROW_TILES`]).
    ByChannel,
    /// Each `U_e` in [`pack_rows`]' panels, for [`matmul_packed`] (any width: its register
    /// tile is 16 columns wide).
    Panels,
}

/// Tiles of an image below which its products run transposed, `M_e^T = V_e^T U_e^T`, and
/// `M_e^T` is transposed back: gemm lays the 64 rows of its AVX-512 kernel along our
/// products' columns, so a block of 16 tiles (ResNet-50's layer4 at batch 1) takes its 16-row
/// kernel at half the speed; transposed, the rows run along the output channels (512 x 512 x
/// 16: 0.069 ms against 0.040). At 49 tiles (layer3) the products gain less than the transpose
/// costs (docs/benchmarks.md, section 14).
const NARROW_TILES: usize = 32;

/// `u`'s `out_channels x channels` matrices, one after the other, each transposed.
fn transpose_each(u: &[f32], out_channels: usize, channels: usize) -> Vec<f32> {
    let mut t = vec![0.0; u.len()];
    for (u_e, t_e) in u
        .chunks_exact(out_channels * channels)
        .zip(t.chunks_exact_mut(out_channels * channels))
    {
        transpose_into(u_e, channels, t_e);
    }
    t
}

/// `dst` = the transpose of `src`, a row-major matrix of `columns` columns filling `dst`.
fn transpose_into(src: &[f32], columns: usize, dst: &mut [f32]) {
    let rows = dst.len() / columns;
    // Row by row of `dst`: the column of `src` it reads stays in a few cache lines.
    for (c, dst_row) in dst.chunks_exact_mut(rows).enumerate() {
        for (d, s) in dst_row.iter_mut().zip(src[c..].iter().step_by(columns)) {
            *d = *s;
        }
    }
}

/// The output tiles of an image and how many rows of them one block takes.
#[derive(Clone, Copy)]
struct Tiles {
    height: usize,
    width: usize,
    /// Tile rows per block: about [`Variant::block_tiles`] tiles (at least one row).
    rows_per_block: usize,
}

impl Tiles {
    fn of(g: &ConvGeometry, variant: Variant) -> Self {
        let [oh, ow] = g.out_size;
        let tile = variant.tile();
        let (height, width) = (oh.div_ceil(tile), ow.div_ceil(tile));
        let rows_per_block = variant
            .block_tiles()
            .div_ceil(width.max(1))
            .clamp(1, height.max(1));
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
    variant: Variant,
    g: &ConvGeometry,
    tiles: &Tiles,
    plane: &[f32],
    v: &mut [f32],
    rows: std::ops::Range<usize>,
) {
    let alpha = variant.tile() + 2;
    let padded = variant.tile() * tiles.width + 2;
    let phases = match variant {
        Variant::F2x2 => 0,
        Variant::F4x4 => 36 * rows.len() * tiles.width,
    };
    with_lines(2 * alpha * padded + phases, |lines| {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU has AVX2, checked just above.
            return unsafe {
                match variant {
                    Variant::F2x2 => transform_input_avx2(g, tiles, plane, v, rows, lines),
                    Variant::F4x4 => transform_input_4x4_avx2(g, tiles, plane, v, rows, lines),
                }
            };
        }
        match variant {
            Variant::F2x2 => transform_input_rows(g, tiles, plane, v, rows, lines),
            Variant::F4x4 => transform_input_4x4_rows(g, tiles, plane, v, rows, lines),
        }
    })
}

/// The input rows from padded row `first` on into `lines` (rows of `padded` floats, as many
/// as it holds), each row's input at column `left` and zeros around it: a tile row's input
/// block, zero outside the plane (the padding).
#[inline(always)]
fn input_lines(g: &ConvGeometry, plane: &[f32], lines: &mut [f32], padded: usize, first: usize) {
    let [top, left] = g.padding;
    for (i, line) in lines.chunks_exact_mut(padded).enumerate() {
        line.fill(0.0);
        let Some(y) = (first + i).checked_sub(top).filter(|&y| y < g.height) else {
            continue;
        };
        let source = &plane[y * g.width..][..g.width];
        if left < padded {
            let len = (padded - left).min(g.width);
            line[left..left + len].copy_from_slice(&source[..len]);
        }
    }
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
    let (d, bd) = lines.split_at_mut(4 * padded);
    for (row_in_block, ty) in rows.enumerate() {
        // The block's 4 input rows, zero-padded to whole tiles.
        input_lines(g, plane, d, padded, 2 * ty);
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
    /// `row[P x + r] = phases[r][x]` through the epilogue (the row's `P` column phases, the
    /// last group of an uneven row cut short); the choices made once for the row, so that
    /// each loop is one straight sequence.
    #[inline(always)]
    fn write_row<const P: usize>(self, row: &mut [f32], phases: [&[f32]; P]) {
        #[inline(always)]
        fn each<const P: usize>(row: &mut [f32], phases: [&[f32]; P], f: impl Fn(&mut f32, f32)) {
            let whole = row.len() / P;
            let mut groups = row.chunks_exact_mut(P);
            if P == 2 {
                for ((pair, &e), &o) in (&mut groups).zip(phases[0]).zip(phases[1]) {
                    f(&mut pair[0], e);
                    f(&mut pair[1], o);
                }
            } else {
                let phases = phases.map(|p| &p[..whole]);
                for (x, group) in (&mut groups).enumerate() {
                    for (value, phase) in group.iter_mut().zip(phases) {
                        f(value, phase[x]);
                    }
                }
            }
            for (last, phase) in groups.into_remainder().iter_mut().zip(phases) {
                f(last, phase[whole]);
            }
        }
        let Epilogue { bias, act, .. } = self;
        match (self.add_residual, act) {
            (false, Activation::Identity) => each(row, phases, |o, v| *o = v + bias),
            (false, Activation::Relu) => each(row, phases, |o, v| *o = act.on(v + bias)),
            (false, Activation::Relu6) => each(row, phases, |o, v| *o = act.on(v + bias)),
            (true, Activation::Identity) => each(row, phases, |o, v| *o += v + bias),
            (true, Activation::Relu) => each(row, phases, |o, v| *o = act.on(v + bias + *o)),
            (true, Activation::Relu6) => each(row, phases, |o, v| *o = act.on(v + bias + *o)),
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
        epilogue.write_row(top_row, [top_even, top_odd]);
        if 2 * ty + 1 < oh {
            epilogue.write_row(&mut rest[..ow], [bottom_even, bottom_odd]);
        }
    }
}

/// `U = G g G^T` of every 3x3 weight for F(4x4, 3x3), stored as [`transform_weight`] stores
/// its 16 (36 positions `[e][k][c]`), with `G = [[1/4, 0, 0], [-1/6, -1/6, -1/6], [-1/6, 1/6,
/// -1/6], [1/24, 1/12, 1/6], [1/24, -1/12, 1/6], [0, 0, 1]]`, computed in double precision:
/// its fractions would round at every step in single.
fn transform_weight_4x4(weight: &[f32], out_channels: usize, channels: usize) -> Vec<f32> {
    let g_times = |[a, b, c]: [f64; 3]| {
        [
            a / 4.0,
            -(a + b + c) / 6.0,
            -(a - b + c) / 6.0,
            a / 24.0 + b / 12.0 + c / 6.0,
            a / 24.0 - b / 12.0 + c / 6.0,
            c,
        ]
    };
    let mut u = vec![0.0; 36 * channels * out_channels];
    for (kc, w) in weight.chunks_exact(9).enumerate() {
        let (k, c) = (kc / channels, kc % channels);
        let w = |i: usize| f64::from(w[i]);
        let columns = [0, 1, 2].map(|j| g_times([w(j), w(3 + j), w(6 + j)]));
        for i in 0..6 {
            let row = g_times([columns[0][i], columns[1][i], columns[2][i]]);
            for (j, value) in row.into_iter().enumerate() {
                u[((i * 6 + j) * out_channels + k) * channels + c] = value as f32;
            }
        }
    }
    u
}

/// `B^T x` of F(4x4, 3x3) on six values (or six rows of them, one lane at a time), with `B^T
/// = [[4, 0, -5, 0, 1, 0], [0, -4, -4, 1, 1, 0], [0, 4, -4, -1, 1, 0], [0, -2, -1, 2, 1, 0],
/// [0, 2, -1, -2, 1, 0], [0, 4, 0, -5, 0, 1]]`.
#[inline(always)]
fn input_4x4<T: Value>([x0, x1, x2, x3, x4, x5]: [T; 6]) -> [T; 6] {
    [
        x0 * 4.0 - x2 * 5.0 + x4,
        (x3 + x4) - (x1 + x2) * 4.0,
        (x1 - x2) * 4.0 + (x4 - x3),
        (x3 - x1) * 2.0 + (x4 - x2),
        (x1 - x3) * 2.0 + (x4 - x2),
        x1 * 4.0 - x3 * 5.0 + x5,
    ]
}

/// [`transform_input_4x4_rows`] compiled for AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn transform_input_4x4_avx2(
    g: &ConvGeometry,
    tiles: &Tiles,
    plane: &[f32],
    v: &mut [f32],
    rows: std::ops::Range<usize>,
    lines: &mut [f32],
) {
    transform_input_4x4_rows(g, tiles, plane, v, rows, lines)
}

/// `V = B^T d B` of F(4x4, 3x3) for the 6x6 input block `d` of each tile in the tile rows
/// `rows` of one input channel `plane`, into `v` as `[e][tile]`; `lines` has room for 12 rows
/// of `4 * tiles.width + 2` floats and 36 of the block's tiles. Per tile row, `B^T` down the
/// columns of its six input rows, and each result's six values for every tile (its column
/// phases); then `B` along them, for the whole block at once (tile rows are short: 14 tiles
/// for a map 56 wide).
#[inline(always)]
fn transform_input_4x4_rows(
    g: &ConvGeometry,
    tiles: &Tiles,
    plane: &[f32],
    v: &mut [f32],
    rows: std::ops::Range<usize>,
    lines: &mut [f32],
) {
    let n = rows.len() * tiles.width;
    let (w, padded) = (tiles.width, 4 * tiles.width + 2);
    let (d, rest) = lines.split_at_mut(6 * padded);
    let (bd, phases) = rest.split_at_mut(6 * padded);
    for (row_in_block, ty) in rows.enumerate() {
        input_lines(g, plane, d, padded, 4 * ty);
        let mut b = bd.chunks_exact_mut(padded);
        lanes::<InputTransform, 6, 6>(
            std::array::from_fn(|i| &d[i * padded..][..padded]),
            std::array::from_fn(|_| b.next().unwrap()),
            padded,
        );
        // Tile `tx` reads `line[4 tx..4 tx + 6]`: `phases[6 i + k]` holds value `k` of each
        // tile of line `i`.
        let first = row_in_block * w;
        for (line, phases) in bd.chunks_exact(padded).zip(phases.chunks_exact_mut(6 * n)) {
            let mut phase = phases.chunks_exact_mut(n).map(|p| &mut p[first..first + w]);
            let [q0, q1, q2, q3, q4, q5] = std::array::from_fn(|_| phase.next().unwrap());
            let starts = line.chunks_exact(4).zip(line[4..].chunks(4));
            let tiles = q0
                .iter_mut()
                .zip(q1.iter_mut())
                .zip(q2.iter_mut().zip(q3.iter_mut()));
            let next = q4.iter_mut().zip(q5.iter_mut());
            for ((((a, b), (c, d)), (e, f)), (group, after)) in tiles.zip(next).zip(starts) {
                (*a, *b, *c, *d) = (group[0], group[1], group[2], group[3]);
                (*e, *f) = (after[0], after[1]);
            }
        }
    }
    for (i, phases) in phases.chunks_exact(6 * n).take(6).enumerate() {
        let mut out = v[i * 6 * n..].chunks_mut(n);
        lanes::<InputTransform, 6, 6>(
            std::array::from_fn(|k| &phases[k * n..][..n]),
            std::array::from_fn(|_| out.next().unwrap()),
            n,
        );
    }
}

/// `out[o][t] = F(the inputs' values at t)[o]` for `t` in `0..len`: a transform on whole rows
/// of tiles, eight tiles at a time as [`Lanes8`] (which compile to vector operations, where
/// the same loop on slices stays scalar), the rest one by one, with the same operations in
/// the same order.
#[inline(always)]
fn lanes<F: Transform<I, O>, const I: usize, const O: usize>(
    inputs: [&[f32]; I],
    mut outputs: [&mut [f32]; O],
    len: usize,
) {
    let mut t = 0;
    while t + 8 <= len {
        let x = std::array::from_fn(|i| Lanes8(inputs[i][t..t + 8].try_into().unwrap()));
        for (out, value) in outputs.iter_mut().zip(F::apply(x)) {
            out[t..t + 8].copy_from_slice(&value.0);
        }
        t += 8;
    }
    for t in t..len {
        for (out, value) in outputs.iter_mut().zip(F::apply(inputs.map(|s| s[t]))) {
            out[t] = value;
        }
    }
}

/// One of F(4x4, 3x3)'s one-dimensional transforms, for [`lanes`] (a type rather than a
/// function value, so that it is inlined into the loop's instruction set).
trait Transform<const I: usize, const O: usize> {
    fn apply<T: Value>(x: [T; I]) -> [T; O];
}

/// [`input_4x4`].
struct InputTransform;

impl Transform<6, 6> for InputTransform {
    #[inline(always)]
    fn apply<T: Value>(x: [T; 6]) -> [T; 6] {
        input_4x4(x)
    }
}

/// [`output_4x4`].
struct OutputTransform;

impl Transform<6, 4> for OutputTransform {
    #[inline(always)]
    fn apply<T: Value>(x: [T; 6]) -> [T; 4] {
        output_4x4(x)
    }
}

/// Eight tiles' values of one transformed position, operated on lane by lane.
#[derive(Clone, Copy)]
struct Lanes8([f32; 8]);

/// What the F(4x4, 3x3) transforms compute with: one value or [`Lanes8`].
trait Value:
    Copy
    + std::ops::Add<Output = Self>
    + std::ops::Sub<Output = Self>
    + std::ops::Mul<f32, Output = Self>
{
}

impl Value for f32 {}
impl Value for Lanes8 {}

impl std::ops::Add for Lanes8 {
    type Output = Self;
    #[inline(always)]
    fn add(self, other: Self) -> Self {
        Lanes8(std::array::from_fn(|k| self.0[k] + other.0[k]))
    }
}

impl std::ops::Sub for Lanes8 {
    type Output = Self;
    #[inline(always)]
    fn sub(self, other: Self) -> Self {
        Lanes8(std::array::from_fn(|k| self.0[k] - other.0[k]))
    }
}

impl std::ops::Mul<f32> for Lanes8 {
    type Output = Self;
    #[inline(always)]
    fn mul(self, factor: f32) -> Self {
        Lanes8(self.0.map(|v| v * factor))
    }
}

/// `A^T x` of F(4x4, 3x3) on six values, with `A^T = [[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2,
/// 0], [0, 1, 1, 4, 4, 0], [0, 1, -1, 8, -8, 1]]`.
#[inline(always)]
fn output_4x4<T: Value>([x0, x1, x2, x3, x4, x5]: [T; 6]) -> [T; 4] {
    let (sum12, diff12, sum34, diff34) = (x1 + x2, x1 - x2, x3 + x4, x3 - x4);
    [
        x0 + sum12 + sum34,
        diff12 + diff34 * 2.0,
        sum12 + sum34 * 4.0,
        diff12 + diff34 * 8.0 + x5,
    ]
}

/// The [`Epilogue`] of `A^T M A` of F(4x4, 3x3) of each tile in the tile rows `rows` into one
/// output channel's `plane`, `m(e)` the channel's row of `M_e`; the right and bottom tiles
/// drop what falls outside the output.
fn transform_output_4x4<'m>(
    g: &ConvGeometry,
    tiles: &Tiles,
    m: impl Fn(usize) -> &'m [f32],
    epilogue: Epilogue,
    plane: &mut [f32],
    rows: std::ops::Range<usize>,
) {
    let m: [&[f32]; 36] = std::array::from_fn(m);
    with_lines(40 * rows.len() * tiles.width, |lines| {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU has AVX2, checked just above.
            return unsafe {
                transform_output_4x4_avx2(g, tiles, &m, epilogue, plane, rows, lines)
            };
        }
        transform_output_4x4_rows(g, tiles, &m, epilogue, plane, rows, lines)
    })
}

/// [`transform_output_4x4_rows`] compiled for AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn transform_output_4x4_avx2(
    g: &ConvGeometry,
    tiles: &Tiles,
    m: &[&[f32]; 36],
    epilogue: Epilogue,
    plane: &mut [f32],
    rows: std::ops::Range<usize>,
    lines: &mut [f32],
) {
    transform_output_4x4_rows(g, tiles, m, epilogue, plane, rows, lines)
}

/// [`transform_output_4x4`] with `lines`, room for 40 rows of the block's tiles: `A^T` down
/// each of the six columns of every tile's `M` (four rows of six values a tile), then `A`
/// along each of the four rows into the four column phases of the tile's output row, each
/// step one loop over the whole block; then each output row written from its phases.
#[inline(always)]
fn transform_output_4x4_rows(
    g: &ConvGeometry,
    tiles: &Tiles,
    m: &[&[f32]; 36],
    epilogue: Epilogue,
    plane: &mut [f32],
    rows: std::ops::Range<usize>,
    lines: &mut [f32],
) {
    let [oh, ow] = g.out_size;
    let (w, n) = (tiles.width, rows.len() * tiles.width);
    let (s, phases) = lines.split_at_mut(24 * n);
    // `s[a * 6 + j]`: row a, column j of A^T M.
    for j in 0..6 {
        let mut rows = s.chunks_exact_mut(n).skip(j).step_by(6);
        lanes::<OutputTransform, 6, 4>(
            std::array::from_fn(|i| &m[i * 6 + j][..n]),
            std::array::from_fn(|_| rows.next().unwrap()),
            n,
        );
    }
    // `phases[a * 4 + b]`: column phase b of output row a of each tile.
    for (s, phases) in s.chunks_exact(6 * n).zip(phases.chunks_exact_mut(4 * n)) {
        let mut phase = phases.chunks_exact_mut(n);
        lanes::<OutputTransform, 6, 4>(
            std::array::from_fn(|j| &s[j * n..][..n]),
            std::array::from_fn(|_| phase.next().unwrap()),
            n,
        );
    }
    for (row_in_block, ty) in rows.enumerate() {
        let t = row_in_block * w;
        for a in 0..4.min(oh - 4 * ty) {
            let row: [&[f32]; 4] = std::array::from_fn(|b| &phases[(a * 4 + b) * n + t..][..w]);
            epilogue.write_row(&mut plane[(4 * ty + a) * ow..][..ow], row);
        }
    }
}
