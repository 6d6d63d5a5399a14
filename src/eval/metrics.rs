//! The measures, as pure functions on plain numbers, and their accumulators: small structs with
//! `update` (one image) and `summary` (the mean so far), as torch-cam's `ClassificationMetric`.

use serde::{Deserialize, Serialize};

use crate::localize::BBox;

/// The Grad-CAM paper's criterion: a box localizes an object when its IoU with a ground-truth
/// box is at least 0.5.
pub const IOU_THRESHOLD: f32 = 0.5;

/// The pointing game's tolerance in pixels (Zhang et al., "Top-down Neural Attention by
/// Excitation Backprop", ECCV 2016).
pub const POINTING_TOLERANCE: f32 = 15.0;

/// The best IoU of `b` with any of `gt` (0 without ground truth or without a box).
pub fn best_iou(b: Option<&BBox>, gt: &[BBox]) -> f32 {
    b.map_or(0.0, |b| gt.iter().map(|g| b.iou(g)).fold(0.0, f32::max))
}

/// The first position of the maximum of a `w`-wide row-major map, as `(x, y)`; NaN values
/// are ignored. `None` for an empty (or all-NaN) map.
pub fn argmax(map: &[f32], w: usize) -> Option<(u32, u32)> {
    let mut best: Option<(usize, f32)> = None;
    for (i, &v) in map.iter().enumerate() {
        if !v.is_nan() && best.is_none_or(|(_, b)| v > b) {
            best = Some((i, v));
        }
    }
    best.map(|(i, _)| ((i % w) as u32, (i / w) as u32))
}

/// Euclidean distance in pixels from pixel `(x, y)` to the nearest pixel of box `b` (0 inside).
pub fn distance_to_box((x, y): (u32, u32), b: &BBox) -> f32 {
    let gap = |v: u32, lo: u32, hi: u32| {
        if v < lo {
            (lo - v) as f32
        } else if v > hi {
            (v - hi) as f32
        } else {
            0.0
        }
    };
    gap(x, b.x1, b.x2).hypot(gap(y, b.y1, b.y2))
}

/// The pointing game: a hit when `point` lies within `tolerance` pixels of a ground-truth box
/// (Zhang et al. dilate the boxes' mask by a disc of radius `tolerance`, which is the same).
pub fn pointing_hit(point: (u32, u32), gt: &[BBox], tolerance: f32) -> bool {
    gt.iter().any(|b| distance_to_box(point, b) <= tolerance)
}

/// The area under the curve `(xs[i], ys[i])` by the trapezoid rule.
///
/// # Panics
///
/// If `xs` and `ys` differ in length.
pub fn auc(xs: &[f64], ys: &[f64]) -> f64 {
    assert_eq!(
        xs.len(),
        ys.len(),
        "auc: {} x values for {} y values",
        xs.len(),
        ys.len()
    );
    xs.windows(2)
        .zip(ys.windows(2))
        .map(|(x, y)| (x[1] - x[0]) * (y[0] + y[1]) / 2.0)
        .sum()
}

/// The area under `ys` sampled at evenly spaced points of [0, 1] (trapezoid rule), as RISE's
/// `auc`: `(sum - (first + last) / 2) / (n - 1)`. 0 for fewer than two points.
pub fn auc_uniform(ys: &[f64]) -> f64 {
    if ys.len() < 2 {
        return 0.0;
    }
    let sum: f64 = ys.iter().sum();
    (sum - (ys[0] + ys[ys.len() - 1]) / 2.0) / (ys.len() - 1) as f64
}

pub use crate::cam::softmax;

/// One image's term of the Average Drop, in percent: `max(0, y - o) / y * 100`, with `y` the
/// class probability on the image and `o` on the image multiplied by the map (Chattopadhyay
/// et al., Grad-CAM++, WACV 2018). 0 when `y <= 0`.
pub fn drop_in_confidence(y: f64, o: f64) -> f64 {
    if y <= 0.0 {
        0.0
    } else {
        (y - o).max(0.0) / y * 100.0
    }
}

/// Whether the map raised the confidence (the Increase in Confidence counts these): `o > y`.
pub fn increase_in_confidence(y: f64, o: f64) -> bool {
    o > y
}

/// ILSVRC classification: top-1 and top-5 error.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ClassificationMetric {
    pub images: usize,
    pub top1_correct: usize,
    pub top5_correct: usize,
}

/// Errors in percent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct TopErrors {
    pub top1: f64,
    pub top5: f64,
}

fn percent(part: usize, whole: usize) -> f64 {
    if whole == 0 {
        f64::NAN
    } else {
        100.0 * part as f64 / whole as f64
    }
}

impl ClassificationMetric {
    /// One image: its ground-truth classes and the model's five best classes, best first.
    pub fn update(&mut self, gt: &[usize], top5: &[usize]) {
        self.images += 1;
        if top5.first().is_some_and(|c| gt.contains(c)) {
            self.top1_correct += 1;
        }
        if top5.iter().take(5).any(|c| gt.contains(c)) {
            self.top5_correct += 1;
        }
    }

    pub fn summary(&self) -> TopErrors {
        TopErrors {
            top1: 100.0 - percent(self.top1_correct, self.images),
            top5: 100.0 - percent(self.top5_correct, self.images),
        }
    }
}

/// ILSVRC localization error at several thresholds of the map (Grad-CAM paper, section 4.1):
/// an image is correct at top-1 when the best class is one of the image's and its map's box
/// has IoU >= 0.5 with a ground-truth box of that class; at top-5 when any of the five best
/// classes is (with its own map's box).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LocalizationMetric {
    pub thresholds: Vec<f32>,
    pub images: usize,
    pub top1_correct: Vec<usize>,
    pub top5_correct: Vec<usize>,
}

impl LocalizationMetric {
    pub fn new(thresholds: &[f32]) -> Self {
        LocalizationMetric {
            thresholds: thresholds.to_vec(),
            images: 0,
            top1_correct: vec![0; thresholds.len()],
            top5_correct: vec![0; thresholds.len()],
        }
    }

    /// One image: the five best classes (best first), and `iou(class, t)`, the best IoU of the
    /// box of `class`'s map at threshold `t` with that class's ground-truth boxes (`None` when
    /// the class is not one of the image's).
    pub fn update(&mut self, top5: &[usize], iou: impl Fn(usize, usize) -> Option<f32>) {
        self.images += 1;
        for t in 0..self.thresholds.len() {
            let ok = |c: usize| iou(c, t).is_some_and(|v| v >= IOU_THRESHOLD);
            if top5.first().is_some_and(|&c| ok(c)) {
                self.top1_correct[t] += 1;
            }
            if top5.iter().take(5).any(|&c| ok(c)) {
                self.top5_correct[t] += 1;
            }
        }
    }

    /// Errors in percent at each threshold.
    pub fn summary(&self) -> Vec<TopErrors> {
        (0..self.thresholds.len())
            .map(|t| TopErrors {
                top1: 100.0 - percent(self.top1_correct[t], self.images),
                top5: 100.0 - percent(self.top5_correct[t], self.images),
            })
            .collect()
    }

    /// The errors at the threshold closest to `threshold`.
    pub fn at(&self, threshold: f32) -> Option<TopErrors> {
        let t = (0..self.thresholds.len()).min_by(|&a, &b| {
            (self.thresholds[a] - threshold)
                .abs()
                .total_cmp(&(self.thresholds[b] - threshold).abs())
        })?;
        Some(self.summary()[t])
    }
}

/// The pointing game: the share of (image, class) pairs whose map's maximum hits a box of the
/// class, in percent.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PointingGame {
    pub hits: usize,
    pub total: usize,
}

impl PointingGame {
    pub fn update(&mut self, hit: bool) {
        self.total += 1;
        self.hits += hit as usize;
    }

    pub fn summary(&self) -> f64 {
        percent(self.hits, self.total)
    }
}

/// Average Drop and Increase in Confidence (Grad-CAM++), as torch-cam's `ClassificationMetric`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ConfidenceMetric {
    pub images: usize,
    pub drop_sum: f64,
    pub increases: usize,
}

/// Average Drop and Increase in Confidence, in percent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Confidence {
    /// `mean(max(0, Y - O) / Y) * 100`: lower is better.
    pub average_drop: f64,
    /// `% of images with O > Y`: higher is better.
    pub increase: f64,
}

impl ConfidenceMetric {
    /// One image: the class probability `y` on the image and `o` on the image times the map.
    pub fn update(&mut self, y: f64, o: f64) {
        self.images += 1;
        self.drop_sum += drop_in_confidence(y, o);
        self.increases += increase_in_confidence(y, o) as usize;
    }

    pub fn summary(&self) -> Confidence {
        Confidence {
            average_drop: if self.images == 0 {
                f64::NAN
            } else {
                self.drop_sum / self.images as f64
            },
            increase: percent(self.increases, self.images),
        }
    }
}

/// A perturbation curve averaged over images (Deletion or Insertion, RISE): the class
/// probability after each step, and the mean area under the per-image curves.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CurveMetric {
    /// The fraction of pixels changed at each point, from 0 to 1.
    pub xs: Vec<f64>,
    pub images: usize,
    pub sum: Vec<f64>,
    pub auc_sum: f64,
}

/// A mean curve and its area.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CurveSummary {
    pub xs: Vec<f64>,
    pub mean: Vec<f64>,
    /// The mean of the per-image areas (equal to the area of the mean curve).
    pub auc: f64,
}

impl CurveMetric {
    pub fn new(xs: Vec<f64>) -> Self {
        let n = xs.len();
        CurveMetric {
            xs,
            images: 0,
            sum: vec![0.0; n],
            auc_sum: 0.0,
        }
    }

    /// One image's curve (one value per point of `xs`). Curves of another length are ignored
    /// and return `false`.
    pub fn update(&mut self, ys: &[f64]) -> bool {
        if ys.len() != self.xs.len() {
            return false;
        }
        self.images += 1;
        self.sum.iter_mut().zip(ys).for_each(|(s, y)| *s += y);
        self.auc_sum += auc(&self.xs, ys);
        true
    }

    pub fn summary(&self) -> CurveSummary {
        let n = self.images.max(1) as f64;
        CurveSummary {
            xs: self.xs.clone(),
            mean: self.sum.iter().map(|s| s / n).collect(),
            auc: if self.images == 0 {
                f64::NAN
            } else {
                self.auc_sum / n
            },
        }
    }
}

/// ROAD (Rong et al., "A Consistent and Efficient Evaluation Strategy for Attribution Methods",
/// ICML 2022), as pytorch-grad-cam's `ROADMostRelevantFirstAverage`,
/// `ROADLeastRelevantFirstAverage` and `ROADCombined`: the change of the class probability when
/// pixels are removed (imputed), averaged over the removal fractions.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RoadMetric {
    /// Fractions of pixels removed, in percent.
    pub removed: Vec<f64>,
    pub images: usize,
    /// Sums of `p(after) - p(before)`, per fraction.
    pub morf_sum: Vec<f64>,
    pub lerf_sum: Vec<f64>,
}

/// ROAD's scores (probability changes).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RoadSummary {
    pub removed: Vec<f64>,
    /// Mean change per fraction, most relevant first (more negative: better map).
    pub morf: Vec<f64>,
    /// Mean change per fraction, least relevant first (closer to 0: better map).
    pub lerf: Vec<f64>,
    /// The mean of `morf` over the fractions: lower is better.
    pub morf_mean: f64,
    /// The mean of `lerf`: higher is better.
    pub lerf_mean: f64,
    /// `(lerf_mean - morf_mean) / 2`, pytorch-grad-cam's `ROADCombined`: higher is better.
    pub combined: f64,
}

impl RoadMetric {
    pub fn new(removed: Vec<f64>) -> Self {
        let n = removed.len();
        RoadMetric {
            removed,
            images: 0,
            morf_sum: vec![0.0; n],
            lerf_sum: vec![0.0; n],
        }
    }

    /// One image: the probability `before`, and after each removal, most and least relevant
    /// first. Other lengths are ignored and return `false`.
    pub fn update(&mut self, before: f64, morf: &[f64], lerf: &[f64]) -> bool {
        if morf.len() != self.removed.len() || lerf.len() != self.removed.len() {
            return false;
        }
        self.images += 1;
        self.morf_sum
            .iter_mut()
            .zip(morf)
            .for_each(|(s, p)| *s += p - before);
        self.lerf_sum
            .iter_mut()
            .zip(lerf)
            .for_each(|(s, p)| *s += p - before);
        true
    }

    pub fn summary(&self) -> RoadSummary {
        let n = self.images as f64;
        let mean = |v: &[f64]| v.iter().map(|s| s / n).collect::<Vec<_>>();
        let (morf, lerf) = (mean(&self.morf_sum), mean(&self.lerf_sum));
        let avg = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
        let (morf_mean, lerf_mean) = (avg(&morf), avg(&lerf));
        RoadSummary {
            removed: self.removed.clone(),
            morf,
            lerf,
            morf_mean,
            lerf_mean,
            combined: (lerf_mean - morf_mean) / 2.0,
        }
    }
}

/// Mean time per image.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TimeMetric {
    pub images: usize,
    pub sum_ms: f64,
}

impl TimeMetric {
    pub fn update(&mut self, ms: f64) {
        self.images += 1;
        self.sum_ms += ms;
    }

    /// Milliseconds per image.
    pub fn summary(&self) -> f64 {
        if self.images == 0 {
            f64::NAN
        } else {
            self.sum_ms / self.images as f64
        }
    }
}
