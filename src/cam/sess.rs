//! SESS (Tyagi et al., "SESS: Saliency Enhancing with Scaling and Sliding", ECCV 2022), as
//! pytorch-grad-cam's `SESS` with its defaults and its default base method, Grad-CAM.

use std::sync::Arc;

use burn::tensor::activation::softmax;
use burn::tensor::{Tensor, TensorData};

use super::normalize::min_max;
use super::{
    Cam, CamInput, CamOptions, CamOutput, GradCam, Method, Target, Targets, batch_scores, flat,
};
use crate::error::Result;
use crate::eval::perturb::gaussian_kernel;
use crate::image::resize_map;

/// SESS: the input is enlarged to `num_scales` sizes (shorter side `w, w + s, w + 2s, ...`,
/// `w` the input's shorter side, `s = round(w * 2/7)`), a `w x w` window slides over each
/// (stride `w`, the last window shifted back inside), and the base method (Grad-CAM) explains
/// every window on its own. Each window's map is weighted by its softmax target score over
/// the best window's (`max(score, 0) / max`), pasted back where it was taken, shrunk to the
/// input, and the maps are fused by a spatial mean over the windows that are positive at each
/// position; an 11x11 Gaussian (sigma 5) smooths the result, which is min-max scaled.
///
/// Costs one forward pass per window and one base explanation per window: 122 windows for a
/// 224x224 input with the 12 default scales. The runner's layers, `eigen_smooth` and targets
/// go to the base method (the target is resolved on the whole image: its top-1 by default);
/// the output's logits and raw per-layer maps are the base method's on the whole input.
/// Sign: as the base method's; a window whose target probability is 0 adds nothing.
#[derive(Debug, Clone, Copy)]
pub struct Sess {
    /// The per-window method.
    pub base: GradCam,
    /// How many sizes the input is enlarged to (upstream's default: 12).
    pub num_scales: usize,
    /// The growth of the shorter side per scale, relative to the window (default 2/7).
    pub scale_step_ratio: f64,
    /// Windows per forward pass (default 32): speed and memory only.
    pub batch_size: usize,
}

impl Default for Sess {
    fn default() -> Self {
        Sess {
            base: GradCam,
            num_scales: 12,
            scale_step_ratio: 2.0 / 7.0,
            batch_size: 32,
        }
    }
}

/// Where a window was taken: its top-left corner in an enlarged copy of the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Window {
    x: usize,
    y: usize,
    /// The enlarged copy's (height, width).
    scaled: (usize, usize),
}

impl Method for Sess {
    fn name(&self) -> &'static str {
        "sess"
    }

    fn uses_gradients(&self) -> bool {
        Method::uses_gradients(&self.base)
    }

    fn raw_map(&self, cam: &CamInput, eigen_smooth: bool) -> Result<Tensor<3>> {
        self.base.raw_map(cam, eigen_smooth)
    }

    fn run_whole(
        &self,
        runner: &Cam,
        input: Tensor<4>,
        sets: &[Targets],
    ) -> Option<Result<Vec<CamOutput>>> {
        Some(self.run(runner, input, sets))
    }
}

impl Sess {
    fn run(&self, runner: &Cam, input: Tensor<4>, sets: &[Targets]) -> Result<Vec<CamOutput>> {
        let whole = Cam {
            model: runner.model,
            method: &self.base,
            layers: runner.layers.clone(),
            options: CamOptions {
                aug_smooth: false,
                ..runner.options
            },
            cancel: runner.cancel.clone(),
        };
        // The windows' targets come resolved (and negated for a counterfactual) already.
        let windows = Cam {
            options: CamOptions {
                counterfactual: false,
                ..whole.options
            },
            layers: runner.layers.clone(),
            cancel: runner.cancel.clone(),
            ..whole
        };
        let mut outputs = whole.run_plain(input.clone(), sets)?;
        let start = std::time::Instant::now();
        let [_, _, height, width] = input.dims();
        let scales = self.scales(height.min(width));
        for (set, out) in sets.iter().zip(outputs.iter_mut()) {
            let targets = set.resolve(&out.logits, runner.options.counterfactual)?;
            for (b, target) in targets.iter().enumerate() {
                let image = input.clone().narrow(0, b, 1);
                out.maps[b] = self.enhance(&windows, image, target, &scales, (height, width))?;
            }
        }
        // The windows' passes, shared among the target sets.
        let elapsed = crate::timefmt::ms(start) / outputs.len() as f64;
        outputs
            .iter_mut()
            .for_each(|o| o.timings.backward += elapsed);
        Ok(outputs)
    }

    /// The shorter sides of the enlarged copies: `window + round(window * ratio) * i`.
    fn scales(&self, window: usize) -> Vec<usize> {
        let step = (window as f64 * self.scale_step_ratio).round() as usize;
        (0..self.num_scales.max(1))
            .map(|i| window + step * i)
            .collect()
    }

    /// One image's SESS map, min-max scaled.
    fn enhance(
        &self,
        base: &Cam,
        image: Tensor<4>,
        target: &Arc<dyn Target>,
        scales: &[usize],
        (height, width): (usize, usize),
    ) -> Result<Vec<f32>> {
        let window = height.min(width);
        let (patches, windows) = collect_patches(image, window, scales);
        let step = self.batch_size.max(1);
        let targets = std::slice::from_ref(target);
        let mut scores = Vec::with_capacity(patches.len());
        for chunk in patches.chunks(step) {
            base.cancel.check()?;
            let logits = base.model.forward(Tensor::cat(chunk.to_vec(), 0))?;
            let probabilities = softmax(logits, 1);
            scores.extend(
                flat(batch_scores(targets, probabilities, |_| 0))
                    .into_iter()
                    .map(|s| s.max(0.0)),
            );
        }
        // Ascending, as upstream's argsort (which keeps them all: pre_filter_ratio 0).
        let mut order: Vec<usize> = (0..scores.len()).collect();
        order.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
        let best = scores[*order.last().expect("at least one window")];
        let mut total = vec![0.0f32; height * width];
        let mut counts = vec![0.0f32; height * width];
        for chunk in order.chunks(step) {
            base.cancel.check()?;
            let batch = Tensor::cat(chunk.iter().map(|&i| patches[i].clone()).collect(), 0);
            let targets = Targets::PerImage(vec![target.clone(); chunk.len()]);
            let maps = base
                .run_plain(batch, std::slice::from_ref(&targets))?
                .remove(0)
                .maps;
            for (&i, map) in chunk.iter().zip(&maps) {
                let weight = if best > 0.0 { scores[i] / best } else { 1.0 };
                let pasted = paste(map, weight, window, windows[i], (height, width));
                for ((t, c), &v) in total.iter_mut().zip(counts.iter_mut()).zip(&pasted) {
                    if v > 0.0 {
                        *t += v;
                        *c += 1.0;
                    }
                }
            }
        }
        let fused: Vec<f32> = total
            .iter()
            .zip(&counts)
            .map(|(&t, &c)| if c > 0.0 { t / c } else { 0.0 })
            .collect();
        let mut map = gaussian_blur(&fused, (height, width));
        min_max(&mut map);
        Ok(map)
    }
}

/// The input enlarged to each scale (its shorter side), and every window of each.
fn collect_patches(
    image: Tensor<4>,
    window: usize,
    scales: &[usize],
) -> (Vec<Tensor<4>>, Vec<Window>) {
    let [_, channels, height, width] = image.dims();
    let device = image.device();
    let pixels = flat(image);
    let (mut patches, mut windows) = (Vec::new(), Vec::new());
    for &scale in scales {
        let scaled = scaled_size((height, width), scale);
        let enlarged: Vec<f32> = pixels
            .chunks(height * width)
            .flat_map(|plane| resize_map(plane, (height, width), scaled))
            .collect();
        let enlarged = Tensor::<4>::from_data(
            TensorData::new(enlarged, [1, channels, scaled.0, scaled.1]),
            &device,
        );
        for y in window_starts(scaled.0, window, window) {
            for x in window_starts(scaled.1, window, window) {
                patches.push(enlarged.clone().slice([
                    0..1,
                    0..channels,
                    y..y + window,
                    x..x + window,
                ]));
                windows.push(Window { x, y, scaled });
            }
        }
    }
    (patches, windows)
}

/// torchvision's `resize(img, scale)`: the shorter side becomes `scale`, the longer
/// `int(scale * long / short)`.
fn scaled_size((height, width): (usize, usize), scale: usize) -> (usize, usize) {
    let long = |l: usize, s: usize| (scale as f64 * l as f64 / s as f64) as usize;
    if height <= width {
        (scale, long(width, height))
    } else {
        (long(height, width), scale)
    }
}

/// Upstream's `window_starts`: every `step` until a window would reach the end, then the last
/// window shifted back inside.
fn window_starts(length: usize, step: usize, window: usize) -> Vec<usize> {
    let mut starts = Vec::new();
    let mut start = 0;
    while start < length {
        if start + window >= length {
            starts.push(length.saturating_sub(window));
            break;
        }
        starts.push(start);
        start += step.max(1);
    }
    starts
}

/// A window's map times its weight, placed in a zero map of its enlarged copy and shrunk to
/// the input with OpenCV's bilinear resize.
fn paste(map: &[f32], weight: f32, window: usize, at: Window, to: (usize, usize)) -> Vec<f32> {
    let (sh, sw) = at.scaled;
    let mut full = vec![0.0f32; sh * sw];
    for (r, row) in map.chunks(window).enumerate() {
        let start = (at.y + r) * sw + at.x;
        full[start..start + window]
            .iter_mut()
            .zip(row)
            .for_each(|(f, &v)| *f = v * weight);
    }
    resize_map(&full, at.scaled, to)
}

/// `cv2.GaussianBlur(map, (11, 11), 5.0)`: separable, float32, borders reflected without
/// repeating the edge (`BORDER_REFLECT_101`).
fn gaussian_blur(map: &[f32], (h, w): (usize, usize)) -> Vec<f32> {
    let k = gaussian_kernel(11, 5.0);
    let r = (k.len() / 2) as isize;
    let reflect = reflect_101;
    let mut mid = vec![0.0f32; h * w];
    for y in 0..h {
        for x in 0..w {
            mid[y * w + x] = k
                .iter()
                .enumerate()
                .map(|(t, kv)| kv * map[y * w + reflect(x as isize + t as isize - r, w)])
                .sum();
        }
    }
    let mut out = vec![0.0f32; h * w];
    for y in 0..h {
        for x in 0..w {
            out[y * w + x] = k
                .iter()
                .enumerate()
                .map(|(t, kv)| kv * mid[reflect(y as isize + t as isize - r, h) * w + x])
                .sum();
        }
    }
    out
}

/// Index `i` of a row of `n` reflected into it without repeating the edge: `dcb|abcd|cba`.
fn reflect_101(i: isize, n: usize) -> usize {
    if n == 1 {
        return 0;
    }
    let period = 2 * (n as isize - 1);
    let i = i.rem_euclid(period);
    (if i < n as isize { i } else { period - i }) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_cover_the_image_and_the_last_is_shifted_back() {
        assert_eq!(window_starts(224, 224, 224), [0]);
        assert_eq!(window_starts(288, 224, 224), [0, 64]);
        assert_eq!(window_starts(262, 64, 64), [0, 64, 128, 192, 198]);
        assert_eq!(window_starts(50, 64, 64), [0]);
    }

    #[test]
    fn scales_grow_by_two_sevenths_of_the_window() {
        let s = Sess::default().scales(224);
        assert_eq!((s.len(), s[0], s[1], s[11]), (12, 224, 288, 928));
        assert_eq!(scaled_size((224, 300), 288), (288, 385));
    }

    #[test]
    fn blur_keeps_a_constant_map_and_reflects_at_the_border() {
        let out = gaussian_blur(&[2.0; 12 * 7], (12, 7));
        assert!(out.iter().all(|v| (v - 2.0).abs() < 1e-5), "{out:?}");
        let reflected: Vec<usize> = [-3, -1, 0, 3, 4, 6].map(|i| reflect_101(i, 4)).to_vec();
        assert_eq!(reflected, [3, 1, 0, 3, 2, 0]);
    }
}
