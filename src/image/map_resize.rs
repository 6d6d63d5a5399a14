//! Resizing float maps bit-exact with OpenCV's `cv2.resize` ([`resize_map`]), whole or one
//! output row at a time ([`MapResizer`]), so that a map enlarged to a 24-megapixel photo never
//! has to be held at that size.

/// Resizes a float map like OpenCV's `cv2.resize(map, (out_w, out_h))` with the default
/// `INTER_LINEAR` on a `float32` array: the map is `h x w`, row-major, and so is the result.
///
/// Bilinear interpolation with half-pixel centres (output `d` samples source coordinate
/// `(d + 0.5) * in / out - 0.5`), the edge pixel repeated beyond the edges, no antialiasing when
/// shrinking; the horizontal pass runs first, on every source row, then the vertical one on its
/// float32 result. This is also PyTorch's `F.interpolate(mode="bilinear", align_corners=False)`
/// when enlarging.
///
/// The float32 rounding is OpenCV 5.0's (opencv-python 5.0.0, checked bit for bit on a few
/// hundred random shapes):
/// for maps of at least 2x2 each pass computes `x0 + (x1 - x0) * f` with a fused multiply-add,
/// the coordinate in double precision and its fraction `f` rounded to float32; single-row or
/// single-column maps take OpenCV's generic path ([`resize_map_generic`]), `x0 * (1 - f) + x1 * f`
/// with the coordinate rounded to float32 before its fraction is taken. OpenCV 4 (whose source
/// runs the generic path for all sizes unless inexact IPP code is enabled) may differ from this
/// by float32 rounding: 1.2e-7 at most for a 7x7 map in `[0, 1]` enlarged to 224x224, ~1e-5
/// when enlarging a 224x224 map.
///
/// [`MapResizer`] gives the same values a row at a time.
///
/// # Panics
///
/// If `map.len() != h * w`, or if the map is empty but the output is not.
///
/// ```
/// use gradcam::image::resize_map;
/// let out = resize_map(&[0.0, 1.0, 2.0, 3.0], (2, 2), (2, 4));
/// assert_eq!(out, [0.0, 0.25, 0.75, 1.0, 2.0, 2.25, 2.75, 3.0]);
/// ```
pub fn resize_map(map: &[f32], size: (usize, usize), to: (usize, usize)) -> Vec<f32> {
    MapResizer::new(map, size, to).to_vec()
}

/// OpenCV's generic `INTER_LINEAR` resize of a `float32` map (`resizeGeneric_` with
/// `HResizeLinear` / `VResizeLinear`), which [`resize_map`] uses for single-row and
/// single-column maps and OpenCV 4 uses for all sizes.
///
/// Output `d` samples `f = (float)((d + 0.5) * scale - 0.5)` with `scale = 1 / (out / in)` in
/// double, `s = floor(f)`, weights `(1 - frac, frac)` in float32: `x0 * (1 - frac) + x1 * frac`.
/// Horizontally, positions left of the first pixel or right of the last use that pixel alone
/// (OpenCV clamps `s` and sets the fraction to 0); vertically OpenCV keeps the fraction and
/// clamps the row indices instead, which this reproduces too. As OpenCV does, an exact 2x
/// reduction in both directions averages each 2x2 block (`INTER_AREA`). Results agree with
/// OpenCV's generic path to the last bit, up to its use of fused multiply-add where its build
/// has it.
///
/// # Panics
///
/// If `map.len() != h * w`, or if the map is empty but the output is not.
pub fn resize_map_generic(map: &[f32], size: (usize, usize), to: (usize, usize)) -> Vec<f32> {
    MapResizer::generic(map, size, to).to_vec()
}

/// A map resized as [`resize_map`] (or [`resize_map_generic`]) does, one output row at a time:
/// it keeps the horizontal pass (`h x out_w` values) and computes each output row from two of
/// its rows when asked.
///
/// ```
/// use gradcam::image::{resize_map, MapResizer};
/// let map = [0.0, 1.0, 2.0, 3.0];
/// let rows = MapResizer::new(&map, (2, 2), (3, 5));
/// let mut row = vec![0.0; 5];
/// rows.row(1, &mut row);
/// assert_eq!(row, resize_map(&map, (2, 2), (3, 5))[5..10]);
/// ```
pub struct MapResizer<'a> {
    out_h: usize,
    out_w: usize,
    kind: Kind<'a>,
}

enum Kind<'a> {
    /// Same size (or an empty output): the map's own rows.
    Copy(&'a [f32]),
    /// The generic path's exact 2x reduction: 2x2 block sums of the map (`w` wide), times 0.25.
    Area(&'a [f32], usize),
    /// The horizontal pass of every source row (`out_w` wide) and what each output row takes.
    Rows(Vec<f32>, Vec<Vertical>),
}

/// How an output row comes from the horizontal pass.
#[derive(Clone, Copy)]
enum Vertical {
    /// A copy of row `s` (beyond the first or last centre).
    Copy(usize),
    /// `r0 + (r1 - r0) * f` with a fused multiply-add, rows `s` and `s + 1` (OpenCV 5).
    Lerp(usize, f32),
    /// `r0 * b0 + r1 * b1`, rows `s0` and `s1` (the generic path).
    Mix(usize, usize, f32, f32),
}

impl<'a> MapResizer<'a> {
    /// The rows of [`resize_map`]`(map, (h, w), (out_h, out_w))`.
    ///
    /// # Panics
    ///
    /// If `map.len() != h * w`, or if the map is empty but the output is not.
    pub fn new(map: &'a [f32], (h, w): (usize, usize), (out_h, out_w): (usize, usize)) -> Self {
        if let Some(kind) = trivial(map, (h, w), (out_h, out_w)) {
            return MapResizer { out_h, out_w, kind };
        }
        if h < 2 || w < 2 {
            return Self::generic(map, (h, w), (out_h, out_w));
        }
        let lerp = |x0: f32, x1: f32, f: f32| (x1 - x0).mul_add(f, x0);
        let xs = coords(w, out_w);
        let mut rows = Vec::with_capacity(h * out_w);
        for row in map.chunks_exact(w) {
            rows.extend(xs.iter().map(|&c| match c {
                Ok((s, f)) => lerp(row[s], row[s + 1], f),
                Err(s) => row[s],
            }));
        }
        let ys = coords(h, out_h)
            .into_iter()
            .map(|c| match c {
                Ok((s, f)) => Vertical::Lerp(s, f),
                Err(s) => Vertical::Copy(s),
            })
            .collect();
        MapResizer {
            out_h,
            out_w,
            kind: Kind::Rows(rows, ys),
        }
    }

    /// The rows of [`resize_map_generic`]`(map, (h, w), (out_h, out_w))`.
    ///
    /// # Panics
    ///
    /// If `map.len() != h * w`, or if the map is empty but the output is not.
    pub fn generic(map: &'a [f32], (h, w): (usize, usize), (out_h, out_w): (usize, usize)) -> Self {
        if let Some(kind) = trivial(map, (h, w), (out_h, out_w)) {
            return MapResizer { out_h, out_w, kind };
        }
        if h == 2 * out_h && w == 2 * out_w {
            // cv::resize turns INTER_LINEAR into INTER_AREA for an exact 2x reduction
            // (resizeAreaFast_: sum of the 2x2 block in raster order, times 0.25).
            return MapResizer {
                out_h,
                out_w,
                kind: Kind::Area(map, w),
            };
        }
        // Horizontal coefficients, clamped at both ends as OpenCV does for INTER_LINEAR.
        let xs: Vec<(usize, f32, f32, bool)> = generic_coords(w, out_w)
            .map(|(mut sx, mut fx)| {
                if sx < 0 {
                    sx = 0;
                    fx = 0.0;
                }
                // Past the last pair of pixels OpenCV copies the source pixel (HResizeLinear's
                // `dx >= xmax` loop) instead of weighting it.
                let copy = sx + 1 >= w as i64;
                if sx >= w as i64 - 1 {
                    sx = w as i64 - 1;
                    fx = 0.0;
                }
                (sx as usize, 1.0 - fx, fx, copy)
            })
            .collect();
        let rows: Vec<f32> = map
            .chunks_exact(w)
            .flat_map(|row| {
                xs.iter().map(move |&(sx, a0, a1, copy)| {
                    if copy {
                        row[sx]
                    } else {
                        row[sx] * a0 + row[sx + 1] * a1
                    }
                })
            })
            .collect();
        // Vertically: rows sy and sy + 1, each clamped into the map, weights (1 - fy, fy).
        let clip = |y: i64| y.clamp(0, h as i64 - 1) as usize;
        let ys = generic_coords(h, out_h)
            .map(|(sy, fy)| Vertical::Mix(clip(sy), clip(sy + 1), 1.0 - fy, fy))
            .collect();
        MapResizer {
            out_h,
            out_w,
            kind: Kind::Rows(rows, ys),
        }
    }

    /// The output's `(height, width)`.
    pub fn size(&self) -> (usize, usize) {
        (self.out_h, self.out_w)
    }

    /// Writes output row `y` into `out`.
    ///
    /// # Panics
    ///
    /// If `y` is not below the output height or `out` is not as long as the output is wide.
    pub fn row(&self, y: usize, out: &mut [f32]) {
        let w = self.out_w;
        assert!(
            y < self.out_h && out.len() == w,
            "MapResizer::row: row {y} of {} into {} values, not {w}",
            self.out_h,
            out.len()
        );
        match &self.kind {
            Kind::Copy(map) => out.copy_from_slice(&map[y * w..][..w]),
            Kind::Area(map, in_w) => {
                let (r0, r1) = (
                    &map[2 * y * in_w..][..*in_w],
                    &map[(2 * y + 1) * in_w..][..*in_w],
                );
                for (dx, o) in out.iter_mut().enumerate() {
                    let sum = r0[2 * dx] + r0[2 * dx + 1] + r1[2 * dx] + r1[2 * dx + 1];
                    *o = sum * 0.25;
                }
            }
            Kind::Rows(rows, ys) => {
                let row = |s: usize| &rows[s * w..][..w];
                match ys[y] {
                    Vertical::Copy(s) => out.copy_from_slice(row(s)),
                    Vertical::Lerp(s, f) => {
                        for ((o, &a), &b) in out.iter_mut().zip(row(s)).zip(row(s + 1)) {
                            *o = (b - a).mul_add(f, a);
                        }
                    }
                    Vertical::Mix(s0, s1, b0, b1) => {
                        for ((o, &a), &b) in out.iter_mut().zip(row(s0)).zip(row(s1)) {
                            *o = a * b0 + b * b1;
                        }
                    }
                }
            }
        }
    }

    /// The whole resized map, row-major.
    pub fn to_vec(&self) -> Vec<f32> {
        if let Kind::Copy(map) = self.kind {
            return map[..self.out_h * self.out_w].to_vec();
        }
        let mut out = vec![0.0; self.out_h * self.out_w];
        if self.out_w > 0 {
            for (y, row) in out.chunks_exact_mut(self.out_w).enumerate() {
                self.row(y, row);
            }
        }
        out
    }
}

/// The checks both paths make, and their shared answers: an empty output (no values) or the
/// same size (the map itself).
fn trivial<'a>(
    map: &'a [f32],
    (h, w): (usize, usize),
    (out_h, out_w): (usize, usize),
) -> Option<Kind<'a>> {
    assert_eq!(
        map.len(),
        h * w,
        "resize_map: map has {} values, not {h}x{w}",
        map.len()
    );
    if out_h == 0 || out_w == 0 {
        return Some(Kind::Copy(&[]));
    }
    assert!(
        h > 0 && w > 0,
        "resize_map: cannot resize an empty {h}x{w} map to {out_h}x{out_w}"
    );
    ((h, w) == (out_h, out_w)).then_some(Kind::Copy(map))
}

/// OpenCV 5's coordinates for each output index: `Ok` with the first source index and the
/// fraction, or, where the output lies beyond the first or last centre, `Err` with the edge
/// index it copies.
fn coords(n: usize, on: usize) -> Vec<Result<(usize, f32), usize>> {
    let scale = n as f64 / on as f64;
    (0..on)
        .map(|d| {
            let t = (d as f64 + 0.5) * scale - 0.5;
            let s = t.floor();
            if s < 0.0 {
                Err(0)
            } else if s >= (n - 1) as f64 {
                Err(n - 1)
            } else {
                Ok((s as usize, (t - s) as f32))
            }
        })
        .collect()
}

/// The generic path's coordinates: `inv_scale = dsize / ssize`, `scale = 1 / inv_scale`, both
/// in double, the coordinate rounded to float32 before its floor and fraction are taken.
fn generic_coords(n: usize, on: usize) -> impl Iterator<Item = (i64, f32)> {
    let scale = 1.0 / (on as f64 / n as f64);
    (0..on).map(move |d| {
        let f = ((d as f64 + 0.5) * scale - 0.5) as f32;
        let s = f.floor();
        (s as i64, f - s)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn map_enlarge_by_hand() {
        // 1x2 -> 1x4: scale 0.5, f = -0.25, 0.25, 0.75, 1.25: clamp, 0.25, 0.75, clamp.
        assert_eq!(
            resize_map(&[0.0, 1.0], (1, 2), (1, 4)),
            [0.0, 0.25, 0.75, 1.0]
        );
        // Vertically 2 -> 4, the same numbers (the clamped rows read row 0 twice).
        assert_eq!(
            resize_map(&[0.0, 1.0], (2, 1), (4, 1)),
            [0.0, 0.25, 0.75, 1.0]
        );
        // 2x2 -> 3x3: scale 2/3, f = -1/6 (clamp), 0.5, 7/6 (clamp).
        let out = resize_map(&[0.0, 1.0, 2.0, 3.0], (2, 2), (3, 3));
        assert_eq!(out, [0.0, 0.5, 1.0, 1.0, 1.5, 2.0, 2.0, 2.5, 3.0]);
    }

    #[test]
    fn map_vertical_edges_keep_the_fraction() {
        // 7 -> 224 vertically: dy = 0 gives f = 0.5/32 - 0.5 = -0.484375, sy = -1,
        // fy = 0.515625: the row is read twice, v * 0.484375 + v * 0.515625.
        let v = 0.1f32;
        let col: Vec<f32> = (0..7).map(|i| if i == 0 { v } else { 0.0 }).collect();
        let out = resize_map(&col, (7, 1), (224, 1));
        assert_eq!(out[0], v * 0.484375 + v * 0.515625);
        // dy = 16: f = 16.5/32 - 0.5 = 0.015625: rows 0 and 1.
        assert_eq!(out[16], v * (1.0 - 0.015625));
    }

    #[test]
    fn map_shrink_and_special_cases() {
        // Exact 2x reduction: 2x2 block averages.
        let map: Vec<f32> = (0..16).map(|v| v as f32).collect();
        let out = resize_map(&map, (4, 4), (2, 2));
        assert_eq!(out, [2.5, 4.5, 10.5, 12.5]);
        // 3 -> 1: f = 0.5 * 3 - 0.5 = 1, exactly the middle sample (no antialiasing in OpenCV).
        assert_eq!(resize_map(&[1.0, 5.0, 9.0], (1, 3), (1, 1)), [5.0]);
        // Same size copies, empty output is empty.
        assert_eq!(resize_map(&[1.0, 2.0], (1, 2), (1, 2)), [1.0, 2.0]);
        assert!(resize_map(&[1.0], (1, 1), (0, 5)).is_empty());
        assert!(resize_map(&[1.0], (1, 1), (5, 0)).is_empty());
        // A single pixel spreads everywhere.
        assert_eq!(resize_map(&[0.5], (1, 1), (2, 3)), [0.5; 6]);
    }

    #[test]
    fn map_coordinates_in_double_precision() {
        // 224 -> 300, output 298: t = 298.5 * 224 / 300 - 0.5 = 222.38. OpenCV 5 keeps the
        // fraction 0.38 exact to float32; the generic path rounds 222.38 to float32 first
        // (222.3800048828125) and so weighs the right pixel 0.3800048828125.
        let mut map = vec![0.0f32; 2 * 224];
        map[223] = 1.0;
        map[224 + 223] = 1.0;
        let out = resize_map(&map, (2, 224), (2, 300));
        assert_eq!(out[298], 0.38f32);
        assert_eq!(out[300 + 298], 0.38f32);
        let out = resize_map_generic(&map, (2, 224), (2, 300));
        assert_eq!(out[298], 222.38f32 - 222.0); // 0.3800048828125
    }

    #[test]
    fn map_generic_exact_halving_averages_blocks() {
        let map: Vec<f32> = (0..16).map(|v| v as f32).collect();
        assert_eq!(
            resize_map_generic(&map, (4, 4), (2, 2)),
            [2.5, 4.5, 10.5, 12.5]
        );
        // (0.1 + 0.2) + 0.3 + 0.4 in float32, times 0.25
        let out = resize_map_generic(&[0.1, 0.2, 0.3, 0.4], (2, 2), (1, 1));
        assert_eq!(out, [(0.1f32 + 0.2 + 0.3 + 0.4) * 0.25]);
        // the default path interpolates at the centre instead: lerp of the two row lerps
        let lerp = |a: f32, b: f32| (b - a).mul_add(0.5, a);
        let out = resize_map(&[0.1, 0.2, 0.3, 0.4], (2, 2), (1, 1));
        assert_eq!(out, [lerp(lerp(0.1, 0.2), lerp(0.3, 0.4))]);
    }

    #[test]
    fn rows_one_at_a_time_equal_the_whole_map() {
        // A map with every kind of value the rows must carry bit for bit (a NaN, infinities,
        // negative zero), through both paths and each of their cases.
        let map: Vec<f32> = (0..7 * 5)
            .map(|i| match i {
                3 => f32::NAN,
                11 => f32::INFINITY,
                17 => -0.0,
                _ => ((i * 37 % 11) as f32 - 4.0) / 3.0,
            })
            .collect();
        let cases = [(7, 5, 224, 160), (7, 5, 3, 2), (7, 5, 7, 5), (7, 5, 1, 9)];
        for (h, w, oh, ow) in cases {
            for generic in [false, true] {
                let rows = if generic {
                    MapResizer::generic(&map, (h, w), (oh, ow))
                } else {
                    MapResizer::new(&map, (h, w), (oh, ow))
                };
                assert_eq!(rows.size(), (oh, ow));
                let whole = rows.to_vec();
                let mut row = vec![0.0; ow];
                for y in 0..oh {
                    rows.row(y, &mut row);
                    let want = &whole[y * ow..][..ow];
                    let same = row
                        .iter()
                        .zip(want)
                        .all(|(a, b)| a.to_bits() == b.to_bits());
                    assert!(same, "{h}x{w} -> {oh}x{ow} generic={generic} row {y}");
                }
            }
        }
        // The 2x2 area case of the generic path, by rows.
        let map: Vec<f32> = (0..24).map(|v| v as f32).collect();
        let rows = MapResizer::generic(&map, (4, 6), (2, 3));
        let mut row = vec![0.0; 3];
        rows.row(1, &mut row);
        assert_eq!(row, [(12.0 + 13.0 + 18.0 + 19.0) * 0.25, 17.5, 19.5]);
    }

    #[test]
    #[should_panic(expected = "map has 3 values")]
    fn map_wrong_length_panics() {
        resize_map(&[0.0; 3], (2, 2), (4, 4));
    }

    #[test]
    #[should_panic(expected = "MapResizer::row: row 2 of 2")]
    fn a_row_past_the_end_panics() {
        MapResizer::new(&[0.0; 4], (2, 2), (2, 3)).row(2, &mut [0.0; 3]);
    }
}
