//! One image with one method: the maps, the boxes, the pointing game and the perturbation
//! measures, as one [`ImageResult`].

use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::config::Settings;
use super::dataset::Sample;
use super::metrics::{argmax, best_iou, pointing_hit, softmax};
use super::perturb::{Normal, blur, impute, path_images, relevance_order, road_keep, step_counts};
use crate::cam::{Cam, Method, Targets, flat, ranked};
use crate::error::Result;
use crate::explain::preprocess_with;
use crate::image::{RgbImage, resize_map};
use crate::localize::{BBox, PAPER_THRESHOLD, localize};
use crate::model::CamModel;
use crate::timefmt::ms;

/// What one map of one ground-truth class gives.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassResult {
    pub class: usize,
    /// Best IoU of the map's box with the class's boxes, at each of the settings' thresholds.
    pub iou: Vec<f32>,
    /// The box at the paper's threshold (15%), in the image's pixels.
    #[serde(rename = "box")]
    pub bbox: Option<BBox>,
    /// The map's maximum `(x, y)` in the image's pixels.
    pub point: Option<(u32, u32)>,
    /// Whether the maximum is within the tolerance of a box of the class.
    pub hit: bool,
}

/// The perturbation measures of the top-1 class's map.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Faithfulness {
    /// The class probability as pixels are deleted (most relevant first), one value per step
    /// from the image (x = 0) to the baseline (x = 1).
    pub deletion: Vec<f32>,
    /// The class probability as pixels are inserted into the blurred image.
    pub insertion: Vec<f32>,
    /// ROAD, most relevant first: the probability after removing each fraction.
    pub road_morf: Vec<f32>,
    /// ROAD, least relevant first.
    pub road_lerf: Vec<f32>,
}

/// Everything measured on one image with one method: one line of `results.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageResult {
    pub image: String,
    pub method: String,
    /// The image's ground-truth classes.
    pub classes: Vec<usize>,
    /// (width, height) of the evaluated image.
    pub size: (u32, u32),
    /// The model's five best classes, best first, and their softmax probabilities.
    pub top5: Vec<usize>,
    pub top5_prob: Vec<f32>,
    /// One entry per ground-truth class.
    pub maps: Vec<ClassResult>,
    /// The top-1 class, whose map the confidence measures use.
    pub class: usize,
    /// Its probability on the image (`Y`) and on the image times its map (`O`).
    pub y: f64,
    pub o: f64,
    /// Deletion, Insertion and ROAD, for the images within the faithfulness limit.
    pub faithfulness: Option<Faithfulness>,
    /// Milliseconds to make one map (body forward, head and method), as `explain` would.
    pub map_ms: f64,
    /// Milliseconds for all of this record's work.
    pub total_ms: f64,
}

/// An image ready for the methods: decoded, resized, normalised, classified.
pub struct Prepared {
    pub image: RgbImage,
    /// The network input, `3 x H x W`.
    pub input: Vec<f32>,
    /// The softmax probabilities of the input, and its five best classes, best first.
    probs: Vec<f64>,
    top5: Vec<usize>,
    /// For the faithfulness measures: the blurred input, and the ends of the curves (the
    /// top-1 class's probability on the blurred input and on the baseline), which are the same
    /// for every method.
    faithfulness: Option<FaithfulnessInputs>,
}

struct FaithfulnessInputs {
    blurred: Vec<f32>,
    p_blur: f64,
    p_zero: f64,
}

/// Runs the measures of one image and one method.
pub struct Evaluator<'a> {
    pub model: &'a dyn CamModel,
    pub settings: &'a Settings,
    /// Perturbed inputs per forward pass.
    pub batch_size: usize,
}

impl Evaluator<'_> {
    /// Decodes, preprocesses and classifies an image (and blurs it when `faithfulness`).
    pub fn prepare(&self, sample: &Sample, faithfulness: bool) -> Result<Prepared> {
        let image = crate::image::load(&sample.path, crate::image::MAX_PIXELS)?;
        let p = self.model.preprocess();
        let input = preprocess_with(&p, &image);
        let (h, w) = p.size;
        let logits: Vec<f32> = flat(self.model.forward(p.tensor(input.clone()))?);
        let probs = softmax(&logits);
        let top5: Vec<usize> = ranked(&logits).into_iter().take(5).collect();
        let faithfulness = if faithfulness {
            let blurred = blur(&input, 3, h, w);
            let baseline = vec![self.settings.deletion_baseline; input.len()];
            let ends = self.probabilities(&[blurred.as_slice(), &baseline].concat(), top5[0])?;
            Some(FaithfulnessInputs {
                blurred,
                p_blur: ends[0],
                p_zero: ends[1],
            })
        } else {
            None
        };
        Ok(Prepared {
            image,
            input,
            probs,
            top5,
            faithfulness,
        })
    }

    /// Softmax probabilities of `class` for `count` inputs laid end to end in `data`, in
    /// forward passes of at most `batch_size` inputs.
    pub fn probabilities(&self, data: &[f32], class: usize) -> Result<Vec<f64>> {
        let p = self.model.preprocess();
        let one = 3 * p.size.0 * p.size.1;
        let classes = self.model.num_classes();
        let mut out = Vec::with_capacity(data.len() / one);
        for chunk in data.chunks(one * self.batch_size.max(1)) {
            let logits = flat(self.model.forward(p.tensor(chunk.to_vec()))?);
            out.extend(logits.chunks(classes).map(|row| softmax(row)[class]));
        }
        Ok(out)
    }

    /// Measures one image with one method.
    pub fn evaluate(
        &self,
        sample: &Sample,
        prepared: &Prepared,
        method: &dyn Method,
    ) -> Result<ImageResult> {
        let start = Instant::now();
        let s = self.settings;
        let p = self.model.preprocess();
        let (h, w) = p.size;
        let x = p.tensor(prepared.input.clone());
        // One map per ground-truth class (localization, pointing), and the top-1 class's map
        // (confidence measures): one more only when the top-1 is not a ground-truth class.
        let (probs, top5) = (&prepared.probs, &prepared.top5);
        let class = top5[0];
        let mut sets: Vec<Targets> = sample.classes.iter().map(|&c| Targets::class(c)).collect();
        let top1_set = match sample.classes.iter().position(|&c| c == class) {
            Some(i) => i,
            None => {
                sets.push(Targets::class(class));
                sets.len() - 1
            }
        };
        let cam = Cam::new(self.model, method, &s.layers)?;
        let outputs = cam.run_many(x, &sets)?;
        let map_ms = outputs.iter().map(|o| o.timings.forward).sum::<f64>()
            + outputs[0].timings.backward
            + outputs[0].timings.postprocess;

        let size = (prepared.image.width(), prepared.image.height());
        let (iw, ih) = (size.0 as usize, size.1 as usize);

        let mut maps = Vec::with_capacity(sample.classes.len());
        for (&class, out) in sample.classes.iter().zip(&outputs) {
            let gt = sample.boxes_of(class, size);
            let full = resize_map(&out.maps[0], out.size, (ih, iw));
            let boxes: Vec<Option<BBox>> = s
                .thresholds
                .iter()
                .map(|&t| localize(&full, iw, ih, t))
                .collect();
            let iou = boxes.iter().map(|b| best_iou(b.as_ref(), &gt)).collect();
            // The paper's box is usually one of the curve's.
            let bbox = match s.thresholds.iter().position(|&t| t == PAPER_THRESHOLD) {
                Some(i) => boxes[i],
                None => localize(&full, iw, ih, PAPER_THRESHOLD),
            };
            let point = argmax(&full, iw);
            maps.push(ClassResult {
                class,
                iou,
                bbox,
                point,
                hit: point.is_some_and(|p| pointing_hit(p, &gt, s.pointing_tolerance)),
            });
        }

        // The top-1 map: confidence measures, and the perturbation curves when asked.
        let map = &outputs[top1_set].maps[0];
        let y = probs[class];
        let masked: Vec<f32> = prepared
            .input
            .chunks(h * w)
            .flat_map(|channel| channel.iter().zip(map).map(|(v, m)| v * m))
            .collect();
        let mut inputs = masked;
        let mut faith_layout = None;
        if let Some(FaithfulnessInputs { blurred, .. }) = &prepared.faithfulness {
            let order = relevance_order(map);
            let counts = step_counts(h * w, s.steps);
            let inner = &counts[1..counts.len() - 1];
            let zeros = vec![s.deletion_baseline; prepared.input.len()];
            inputs.extend(path_images(&prepared.input, &zeros, &order, inner));
            inputs.extend(path_images(blurred, &prepared.input, &order, inner));
            // ROAD: every removal is imputed independently, in parallel.
            // pytorch-grad-cam's percentile is the share of pixels kept: 100 - removed.
            let jobs: Vec<(f64, bool)> = s
                .road_removed
                .iter()
                .flat_map(|&r| [(100.0 - r, true), (100.0 - r, false)])
                .collect();
            let input = prepared.input.as_slice();
            let imputed: Vec<Vec<f32>> = {
                use rayon::prelude::*;
                jobs.par_iter()
                    .map(|&(percentile, morf)| {
                        let keep = road_keep(map, percentile, morf);
                        let seed = s.seed
                            ^ hash(&[&sample.name, method.name(), &format!("{percentile}{morf}")]);
                        impute(input, &keep, h, w, s.road_noise, &mut Normal::new(seed))
                    })
                    .collect::<Result<_>>()?
            };
            inputs.extend(imputed.into_iter().flatten());
            faith_layout = Some(inner.len());
        }
        let p = self.probabilities(&inputs, class)?;
        let o = p[0];
        let faithfulness = faith_layout
            .zip(prepared.faithfulness.as_ref())
            .map(|(steps, f)| {
                // The curve ends: the image, the baseline, the blur.
                let (p_blur, p_zero) = (f.p_blur, f.p_zero);
                let del = &p[1..1 + steps];
                let ins = &p[1 + steps..1 + 2 * steps];
                let road = &p[1 + 2 * steps..];
                let f = |v: f64| v as f32;
                Faithfulness {
                    deletion: std::iter::once(y)
                        .chain(del.iter().copied())
                        .chain([p_zero])
                        .map(f)
                        .collect(),
                    insertion: std::iter::once(p_blur)
                        .chain(ins.iter().copied())
                        .chain([y])
                        .map(f)
                        .collect(),
                    road_morf: road.iter().step_by(2).copied().map(f).collect(),
                    road_lerf: road.iter().skip(1).step_by(2).copied().map(f).collect(),
                }
            });
        Ok(ImageResult {
            image: sample.name.clone(),
            method: method.name().to_string(),
            classes: sample.classes.clone(),
            size,
            top5_prob: top5.iter().map(|&c| probs[c] as f32).collect(),
            top5: top5.clone(),
            maps,
            class,
            y,
            o,
            faithfulness,
            map_ms,
            total_ms: ms(start),
        })
    }
}

/// FNV-1a over the parts, for seeds that depend on the image and the method only.
fn hash(parts: &[&str]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for b in part.bytes().chain([0xff]) {
            h ^= b as u64;
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    h
}
