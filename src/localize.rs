//! Weakly-supervised localization from a class activation map (Grad-CAM paper, section 4.1).
//!
//! The paper binarizes the map with a threshold of 15% of its maximum
//! ([`PAPER_THRESHOLD`]), takes the single largest connected segment and draws the bounding box
//! around it. Boxes use the ILSVRC convention: inclusive pixel coordinates, so a box with
//! `x1 == x2` is one pixel wide, and areas and intersections count with `+1`.
//!
//! ```
//! use gradcam::localize::{localize, BBox, PAPER_THRESHOLD};
//!
//! // A 4x3 map with one bright 2x2 blob at columns 1..=2, rows 0..=1.
//! let map = [
//!     0.0, 0.9, 1.0, 0.0, //
//!     0.0, 0.5, 0.3, 0.0, //
//!     0.1, 0.0, 0.0, 0.0,
//! ];
//! let b = localize(&map, 4, 3, PAPER_THRESHOLD).unwrap();
//! assert_eq!(b, BBox { x1: 1, y1: 0, x2: 2, y2: 1 });
//! assert_eq!(b.area(), 4);
//! ```

use serde::{Deserialize, Serialize};

/// The threshold of the Grad-CAM paper: a pixel belongs to the foreground when its value is at
/// least 15% of the map's maximum.
pub const PAPER_THRESHOLD: f32 = 0.15;

/// An axis-aligned box in inclusive pixel coordinates (ILSVRC convention): it covers the columns
/// `x1..=x2` and the rows `y1..=y2`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BBox {
    /// First column.
    pub x1: u32,
    /// First row.
    pub y1: u32,
    /// Last column (inclusive).
    pub x2: u32,
    /// Last row (inclusive).
    pub y2: u32,
}

impl BBox {
    /// Number of columns, `x2 - x1 + 1` (0 for a box with `x2 < x1`).
    pub fn width(&self) -> u32 {
        (self.x2 as u64 + 1).saturating_sub(self.x1 as u64) as u32
    }

    /// Number of rows, `y2 - y1 + 1` (0 for a box with `y2 < y1`).
    pub fn height(&self) -> u32 {
        (self.y2 as u64 + 1).saturating_sub(self.y1 as u64) as u32
    }

    /// Number of pixels, `width() * height()`.
    pub fn area(&self) -> u64 {
        self.width() as u64 * self.height() as u64
    }

    /// Intersection over union as the ILSVRC devkit computes it: with inclusive coordinates
    /// (`+1` on every width and height), 0 when the boxes do not overlap.
    ///
    /// ```
    /// use gradcam::localize::BBox;
    /// let a = BBox { x1: 0, y1: 0, x2: 9, y2: 9 };
    /// let b = BBox { x1: 5, y1: 0, x2: 14, y2: 9 };
    /// // intersection 5x10 = 50, union 100 + 100 - 50 = 150
    /// assert!((a.iou(&b) - 1.0 / 3.0).abs() < 1e-7);
    /// ```
    pub fn iou(&self, other: &BBox) -> f32 {
        let ix1 = self.x1.max(other.x1) as i64;
        let iy1 = self.y1.max(other.y1) as i64;
        let ix2 = self.x2.min(other.x2) as i64;
        let iy2 = self.y2.min(other.y2) as i64;
        let iw = ix2 - ix1 + 1;
        let ih = iy2 - iy1 + 1;
        if iw <= 0 || ih <= 0 {
            return 0.0;
        }
        let inter = (iw * ih) as f64;
        let union = self.area() as f64 + other.area() as f64 - inter;
        if union <= 0.0 {
            return 0.0;
        }
        (inter / union) as f32
    }

    /// Maps the box from an image of size `from = (width, height)` to one of size `to`.
    ///
    /// Each pixel `x` covers the interval `[x, x + 1)`; the box covers `[x1, x2 + 1)`, which is
    /// scaled and then widened to whole pixels (`floor` of the start, `ceil` of the end), so the
    /// result always contains the scaled box, and a box over the whole image maps to the whole
    /// target image. The result is clamped to the target image. Sizes of 0 count as 1.
    ///
    /// ```
    /// use gradcam::localize::BBox;
    /// let b = BBox { x1: 0, y1: 112, x2: 111, y2: 223 };
    /// assert_eq!(b.scale((224, 224), (448, 112)), BBox { x1: 0, y1: 56, x2: 223, y2: 111 });
    /// ```
    pub fn scale(&self, from: (u32, u32), to: (u32, u32)) -> BBox {
        let (x1, x2) = scale_span(self.x1, self.x2, from.0, to.0);
        let (y1, y2) = scale_span(self.y1, self.y2, from.1, to.1);
        BBox { x1, y1, x2, y2 }
    }
}

/// Scales the inclusive span `a..=b` from a length of `from` pixels to `to` pixels.
fn scale_span(a: u32, b: u32, from: u32, to: u32) -> (u32, u32) {
    let (from, to) = (from.max(1) as u64, to.max(1) as u64);
    let start = a as u64 * to / from;
    let end = ((b as u64 + 1) * to).div_ceil(from); // exclusive
    let last = to - 1;
    let s = start.min(last);
    let e = end.saturating_sub(1).clamp(s, last);
    (s as u32, e as u32)
}

/// Binarizes a `w x h` map (row-major): a pixel is kept when its value is at least
/// `threshold * max(map)` and the maximum is positive. NaN values are never kept; an all-zero
/// or all-negative map gives an all-false mask.
///
/// # Panics
///
/// If `map.len() != w * h`.
pub fn segment_mask(map: &[f32], w: usize, h: usize, threshold: f32) -> Vec<bool> {
    assert_eq!(
        map.len(),
        w * h,
        "segment_mask: map has {} values, not {w}x{h}",
        map.len()
    );
    let max = map
        .iter()
        .copied()
        .filter(|v| !v.is_nan())
        .fold(f32::NEG_INFINITY, f32::max);
    if max.is_nan() || max <= 0.0 {
        return vec![false; map.len()];
    }
    let cut = threshold * max;
    map.iter().map(|&v| v >= cut).collect()
}

/// The largest 8-connected segment of a `w x h` mask (row-major): its bounding box and its
/// number of pixels, or `None` when the mask has no `true` pixel.
///
/// Ties: of several segments with the same number of pixels, the one whose first pixel in
/// raster order (top to bottom, then left to right) comes first wins.
///
/// Segments are followed row by row as runs of `true` pixels ([`Segments`]), so the memory
/// needed is that of the runs of two rows and one record per segment, not of the mask.
///
/// # Panics
///
/// If `mask.len() != w * h`.
pub fn largest_segment(mask: &[bool], w: usize, h: usize) -> Option<(BBox, usize)> {
    assert_eq!(
        mask.len(),
        w * h,
        "largest_segment: mask has {} values, not {w}x{h}",
        mask.len()
    );
    let mut segments = Segments::default();
    if w > 0 {
        for row in mask.chunks_exact(w) {
            segments.push_row(row);
        }
    }
    segments.largest()
}

/// Grad-CAM localization: the bounding box of the largest 8-connected segment of the pixels
/// whose value is at least `threshold * max(map)` ([`segment_mask`] then [`largest_segment`]).
/// `None` when no pixel is kept (a map whose maximum is not positive).
///
/// # Panics
///
/// If `map.len() != w * h`.
pub fn localize(map: &[f32], w: usize, h: usize, threshold: f32) -> Option<BBox> {
    assert_eq!(
        map.len(),
        w * h,
        "localize: map has {} values, not {w}x{h}",
        map.len()
    );
    localize_rows(w, h, threshold, |y, row| {
        row.copy_from_slice(&map[y * w..][..w])
    })
}

/// [`localize`] of a `w x h` map given a row at a time: `row(y, out)` writes row `y` into `out`
/// (`w` values), and is called twice per row (once for the maximum, once for the segments), so
/// that a map the size of a large photo need never be held whole (see
/// [`crate::image::MapResizer`]).
///
/// ```
/// use gradcam::localize::{localize, localize_rows, PAPER_THRESHOLD};
/// let map = [0.0, 0.9, 1.0, 0.0, 0.0, 0.5, 0.3, 0.0, 0.1, 0.0, 0.0, 0.0];
/// let by_rows = localize_rows(4, 3, PAPER_THRESHOLD, |y, out| {
///     out.copy_from_slice(&map[y * 4..][..4])
/// });
/// assert_eq!(by_rows, localize(&map, 4, 3, PAPER_THRESHOLD));
/// ```
pub fn localize_rows(
    w: usize,
    h: usize,
    threshold: f32,
    mut row: impl FnMut(usize, &mut [f32]),
) -> Option<BBox> {
    let mut values = vec![0.0f32; w];
    let mut max = f32::NEG_INFINITY;
    for y in 0..h {
        row(y, &mut values);
        max = values
            .iter()
            .copied()
            .filter(|v| !v.is_nan())
            .fold(max, f32::max);
    }
    if max.is_nan() || max <= 0.0 {
        return None;
    }
    let cut = threshold * max;
    let mut kept = vec![false; w];
    let mut segments = Segments::default();
    for y in 0..h {
        row(y, &mut values);
        for (k, &v) in kept.iter_mut().zip(&values) {
            *k = v >= cut;
        }
        segments.push_row(&kept);
    }
    segments.largest().map(|(b, _)| b)
}

/// The 8-connected segments of a mask given a row at a time: the runs of `true` pixels of the
/// last row, and per segment (merged with a union-find as rows join them) its pixel count and
/// bounding box. Segments are numbered in the raster order of their first pixel, and a merge
/// keeps the lower number, so a segment's number orders it as [`largest_segment`]'s ties need.
#[derive(Debug, Default)]
pub struct Segments {
    /// Rows pushed so far.
    rows: usize,
    /// Runs of the previous row: first and last column, segment.
    above: Vec<(usize, usize, usize)>,
    /// The current row's runs, being built.
    runs: Vec<(usize, usize, usize)>,
    /// Union-find parent of each segment number (a root is its own parent).
    parent: Vec<usize>,
    /// Pixel count and bounding box (x1, y1, x2, y2) of each root.
    stats: Vec<(usize, [usize; 4])>,
}

impl Segments {
    /// Adds the next row of the mask (all rows must have the same length).
    pub fn push_row(&mut self, row: &[bool]) {
        let y = self.rows;
        self.rows += 1;
        self.runs.clear();
        let mut j = 0;
        let mut x = 0;
        while x < row.len() {
            if !row[x] {
                x += 1;
                continue;
            }
            let a = x;
            while x < row.len() && row[x] {
                x += 1;
            }
            let b = x - 1;
            // Runs above that end before column a - 1 touch neither this run nor later ones.
            while j < self.above.len() && self.above[j].1 + 1 < a {
                j += 1;
            }
            let mut segment: Option<usize> = None;
            let mut k = j;
            while k < self.above.len() && self.above[k].0 <= b + 1 {
                let other = self.find(self.above[k].2);
                segment = Some(match segment {
                    Some(s) => self.union(s, other),
                    None => other,
                });
                k += 1;
            }
            let s = segment.unwrap_or_else(|| {
                self.parent.push(self.parent.len());
                self.stats.push((0, [a, y, b, y]));
                self.parent.len() - 1
            });
            let (count, bbox) = &mut self.stats[s];
            *count += b - a + 1;
            *bbox = [
                bbox[0].min(a),
                bbox[1].min(y),
                bbox[2].max(b),
                bbox[3].max(y),
            ];
            self.runs.push((a, b, s));
        }
        std::mem::swap(&mut self.above, &mut self.runs);
    }

    /// The largest segment so far: its bounding box and pixel count (ties: the first in
    /// raster order), or `None` when no pixel was `true`.
    pub fn largest(&self) -> Option<(BBox, usize)> {
        let mut best: Option<(usize, usize)> = None;
        for s in 0..self.parent.len() {
            let count = self.stats[s].0;
            if self.parent[s] == s && best.is_none_or(|(_, n)| count > n) {
                best = Some((s, count));
            }
        }
        best.map(|(s, count)| {
            let [x1, y1, x2, y2] = self.stats[s].1;
            let b = BBox {
                x1: x1 as u32,
                y1: y1 as u32,
                x2: x2 as u32,
                y2: y2 as u32,
            };
            (b, count)
        })
    }

    fn find(&mut self, mut s: usize) -> usize {
        while self.parent[s] != s {
            self.parent[s] = self.parent[self.parent[s]];
            s = self.parent[s];
        }
        s
    }

    /// Joins two roots under the lower number (the earlier first pixel); returns it.
    fn union(&mut self, a: usize, b: usize) -> usize {
        if a == b {
            return a;
        }
        let (keep, gone) = (a.min(b), a.max(b));
        self.parent[gone] = keep;
        let (count, bbox) = self.stats[gone];
        let (kept, kbox) = &mut self.stats[keep];
        *kept += count;
        *kbox = [
            kbox[0].min(bbox[0]),
            kbox[1].min(bbox[1]),
            kbox[2].max(bbox[2]),
            kbox[3].max(bbox[3]),
        ];
        keep
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bb(x1: u32, y1: u32, x2: u32, y2: u32) -> BBox {
        BBox { x1, y1, x2, y2 }
    }

    /// Parses a picture: `#` is true, anything else false; rows separated by whitespace.
    fn mask(rows: &str) -> (Vec<bool>, usize, usize) {
        let rows: Vec<&str> = rows.split_whitespace().collect();
        let w = rows[0].len();
        let m = rows
            .iter()
            .flat_map(|r| r.chars().map(|c| c == '#'))
            .collect();
        (m, w, rows.len())
    }

    #[test]
    fn box_size_and_area() {
        let b = bb(2, 3, 5, 3);
        assert_eq!((b.width(), b.height(), b.area()), (4, 1, 4));
        assert_eq!(bb(7, 7, 7, 7).area(), 1);
        assert_eq!(bb(5, 0, 4, 0).width(), 0);
        assert_eq!(bb(5, 0, 4, 0).area(), 0);
    }

    #[test]
    fn iou_known_boxes() {
        let a = bb(10, 20, 29, 39);
        assert_eq!(a.iou(&a), 1.0);
        assert_eq!(a.iou(&bb(30, 20, 40, 39)), 0.0); // touching edge, no shared pixel
        assert_eq!(a.iou(&bb(100, 100, 110, 110)), 0.0);
        // a: 20x20 = 400; b = (20,30)-(39,49): 20x20 = 400; intersection (20..=29, 30..=39): 10x10.
        let b = bb(20, 30, 39, 49);
        let want = 100.0 / 700.0;
        assert_eq!(a.iou(&b), want as f32);
        assert_eq!(b.iou(&a), a.iou(&b));
        // one shared pixel with +1 convention: 1 / (4 + 4 - 1)
        assert_eq!(bb(0, 0, 1, 1).iou(&bb(1, 1, 2, 2)), (1.0f64 / 7.0) as f32);
        // containment: 4 / 16
        assert_eq!(bb(0, 0, 3, 3).iou(&bb(1, 1, 2, 2)), 0.25);
    }

    #[test]
    fn scale_between_resolutions() {
        // whole image to whole image
        assert_eq!(bb(0, 0, 6, 6).scale((7, 7), (224, 224)), bb(0, 0, 223, 223));
        assert_eq!(
            bb(0, 0, 223, 223).scale((224, 224), (500, 375)),
            bb(0, 0, 499, 374)
        );
        // one cell of a 7x7 grid covers 32x32 pixels of 224x224
        assert_eq!(bb(1, 2, 1, 2).scale((7, 7), (224, 224)), bb(32, 64, 63, 95));
        // shrinking widens to whole pixels: [3, 5) * 1/2 = [1.5, 2.5) -> 1..=2
        assert_eq!(bb(3, 3, 4, 4).scale((10, 10), (5, 5)), bb(1, 1, 2, 2));
        // identity
        assert_eq!(bb(3, 4, 8, 9).scale((20, 30), (20, 30)), bb(3, 4, 8, 9));
        // out of range boxes are clamped
        assert_eq!(bb(15, 0, 30, 3).scale((10, 10), (10, 10)), bb(9, 0, 9, 3));
    }

    #[test]
    fn segment_mask_thresholds_at_fraction_of_max() {
        let map = [0.0, 0.1, 0.15, 0.2, 1.0, f32::NAN];
        let m = segment_mask(&map, 3, 2, 0.15);
        assert_eq!(m, vec![false, false, true, true, true, false]);
        // max scales the cut: 0.15 * 2 = 0.3
        let m = segment_mask(&[0.29, 0.3, 2.0, -1.0], 2, 2, 0.15);
        assert_eq!(m, vec![false, true, true, false]);
        assert_eq!(segment_mask(&[0.0; 4], 2, 2, 0.15), vec![false; 4]);
        assert_eq!(segment_mask(&[-1.0, -0.5], 2, 1, 0.15), vec![false; 2]);
    }

    #[test]
    fn two_segments_of_different_sizes() {
        let (m, w, h) = mask(
            "##......
             ##......
             ....###.
             ....###.
             ........",
        );
        assert_eq!(largest_segment(&m, w, h), Some((bb(4, 2, 6, 3), 6)));
    }

    #[test]
    fn ties_go_to_first_in_raster_order() {
        // Both have 3 pixels; the right one starts on row 0, the left one on row 1.
        let (m, w, h) = mask(
            ".....#
             #....#
             #....#
             #.....",
        );
        assert_eq!(largest_segment(&m, w, h), Some((bb(5, 0, 5, 2), 3)));
        // Same row: the leftmost start wins.
        let (m, w, h) = mask("##.##");
        assert_eq!(largest_segment(&m, w, h), Some((bb(0, 0, 1, 0), 2)));
    }

    #[test]
    fn diagonal_connection_joins_segments() {
        // Two 2x2 blocks touching only at a corner form one 8-connected segment of 8 pixels,
        // larger than the 5-pixel bar.
        let (m, w, h) = mask(
            "##.....
             ##.....
             ..##...
             ..##...
             .......
             #####..",
        );
        assert_eq!(largest_segment(&m, w, h), Some((bb(0, 0, 3, 3), 8)));
        // An anti-diagonal line.
        let (m, w, h) = mask(
            "...#
             ..#.
             .#..
             #...",
        );
        assert_eq!(largest_segment(&m, w, h), Some((bb(0, 0, 3, 3), 4)));
    }

    #[test]
    fn segment_touching_the_border() {
        let (m, w, h) = mask(
            "....
             ...#
             ..##
             ..##",
        );
        assert_eq!(largest_segment(&m, w, h), Some((bb(2, 1, 3, 3), 5)));
        let (m, w, h) = mask("#");
        assert_eq!(largest_segment(&m, w, h), Some((bb(0, 0, 0, 0), 1)));
    }

    #[test]
    fn empty_and_full_masks() {
        assert_eq!(largest_segment(&[false; 6], 3, 2), None);
        assert_eq!(largest_segment(&[], 0, 0), None);
        assert_eq!(largest_segment(&[true; 6], 3, 2), Some((bb(0, 0, 2, 1), 6)));
    }

    #[test]
    fn localize_all_zero_map_is_none() {
        assert_eq!(localize(&[0.0; 49], 7, 7, PAPER_THRESHOLD), None);
    }

    #[test]
    fn localize_constant_map_is_whole_image() {
        assert_eq!(
            localize(&[0.4; 12], 4, 3, PAPER_THRESHOLD),
            Some(bb(0, 0, 3, 2))
        );
    }

    #[test]
    fn localize_picks_largest_bright_segment() {
        // 6x4 map: a small very bright spot (1 pixel) and a larger dimmer region (4 pixels)
        // above 15% of the maximum; the larger one wins even though it is dimmer.
        #[rustfmt::skip]
        let map = [
            1.0, 0.0, 0.0, 0.0, 0.0, 0.0,
            0.0, 0.0, 0.0, 0.2, 0.3, 0.0,
            0.1, 0.0, 0.0, 0.2, 0.16, 0.0,
            0.0, 0.0, 0.0, 0.0, 0.0, 0.0,
        ];
        assert_eq!(localize(&map, 6, 4, PAPER_THRESHOLD), Some(bb(3, 1, 4, 2)));
        // with a threshold of 50% only the bright spot survives
        assert_eq!(localize(&map, 6, 4, 0.5), Some(bb(0, 0, 0, 0)));
    }

    #[test]
    fn large_segment_does_not_overflow_the_stack() {
        let (w, h) = (1000, 1000);
        let b = localize(&vec![1.0; w * h], w, h, PAPER_THRESHOLD);
        assert_eq!(b, Some(bb(0, 0, 999, 999)));
    }

    /// The flood fill (explicit stack, raster-order starts) that `largest_segment` was before
    /// it followed runs: the reference the runs must agree with.
    fn flood_fill_largest(mask: &[bool], w: usize, h: usize) -> Option<(BBox, usize)> {
        let mut seen = vec![false; mask.len()];
        let mut best: Option<(BBox, usize)> = None;
        for start in 0..mask.len() {
            if !mask[start] || seen[start] {
                continue;
            }
            seen[start] = true;
            let mut stack = vec![start];
            let (mut x1, mut y1, mut x2, mut y2) = (w, h, 0, 0);
            let mut count = 0;
            while let Some(i) = stack.pop() {
                count += 1;
                let (x, y) = (i % w, i / w);
                (x1, y1, x2, y2) = (x1.min(x), y1.min(y), x2.max(x), y2.max(y));
                for ny in y.saturating_sub(1)..=(y + 1).min(h - 1) {
                    for nx in x.saturating_sub(1)..=(x + 1).min(w - 1) {
                        let j = ny * w + nx;
                        if mask[j] && !seen[j] {
                            seen[j] = true;
                            stack.push(j);
                        }
                    }
                }
            }
            if best.is_none_or(|(_, n)| count > n) {
                best = Some((bb(x1 as u32, y1 as u32, x2 as u32, y2 as u32), count));
            }
        }
        best
    }

    #[test]
    fn runs_agree_with_a_flood_fill() {
        // xorshift64: random masks of every density, and blobby ones (a few random discs)
        // whose segments merge in U and spiral shapes.
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let mut checked = 0;
        for case in 0..3000 {
            let w = 1 + (next() % 23) as usize;
            let h = 1 + (next() % 19) as usize;
            let mask: Vec<bool> = if case % 2 == 0 {
                let density = next() % 100;
                (0..w * h).map(|_| next() % 100 < density).collect()
            } else {
                let discs: Vec<(f64, f64, f64)> = (0..1 + next() % 5)
                    .map(|_| {
                        let cx = (next() % (w as u64 + 1)) as f64;
                        let cy = (next() % (h as u64 + 1)) as f64;
                        (cx, cy, 0.5 + (next() % 60) as f64 / 10.0)
                    })
                    .collect();
                (0..w * h)
                    .map(|i| {
                        let (x, y) = ((i % w) as f64, (i / w) as f64);
                        let inside = |&(cx, cy, r): &(f64, f64, f64)| {
                            let d = ((x - cx).powi(2) + (y - cy).powi(2)).sqrt();
                            d <= r && d >= r / 2.0
                        };
                        discs.iter().any(inside)
                    })
                    .collect()
            };
            let want = flood_fill_largest(&mask, w, h);
            assert_eq!(largest_segment(&mask, w, h), want, "case {case}: {w}x{h}");
            checked += usize::from(want.is_some());
        }
        assert!(checked > 2500, "only {checked} masks had a segment");
    }

    #[test]
    fn a_u_shape_keeps_the_number_of_its_first_pixel() {
        // The right arm starts on row 1 as a new segment, after the 8-pixel bar of row 0, and
        // joins the left arm on row 3. The U (8 pixels) ties with the bar and wins: its first
        // pixel, (0, 0), comes before the bar's.
        let (m, w, h) = mask(
            "#...########
             #.#.........
             #.#.........
             ###.........",
        );
        assert_eq!(largest_segment(&m, w, h), Some((bb(0, 0, 2, 3), 8)));
    }

    #[test]
    fn bbox_serde_roundtrip() {
        let b = bb(1, 2, 3, 4);
        let s = serde_json::to_string(&b).unwrap();
        assert_eq!(s, r#"{"x1":1,"y1":2,"x2":3,"y2":4}"#);
        assert_eq!(serde_json::from_str::<BBox>(&s).unwrap(), b);
    }
}
