//! pytorch-grad-cam's normalisation: per layer `max(cam, 0)`, min-max scaling with a 1e-7
//! guard and a bilinear resize to the input; across layers a clamp at 0, the mean, and the
//! scaling again.

use crate::image::resize_map;

/// `max(map, 0)`, then `map -= min; map /= 1e-7 + max`, then (when `to` is given) an
/// OpenCV-exact bilinear resize from `size` to `to` (both (height, width)).
pub fn scale_map(map: &[f32], size: (usize, usize), to: Option<(usize, usize)>) -> Vec<f32> {
    let mut out: Vec<f32> = map.iter().map(|&v| v.max(0.0)).collect();
    min_max(&mut out);
    match to {
        Some(to) if to != size => resize_map(&out, size, to),
        _ => out,
    }
}

/// Fuses per-layer maps of the same size: clamp at 0, mean over layers, min-max scale.
pub fn fuse_layers<'a>(maps: impl Iterator<Item = &'a [f32]>) -> Vec<f32> {
    let mut sum: Vec<f32> = Vec::new();
    let mut n = 0usize;
    for map in maps {
        if sum.is_empty() {
            sum = vec![0.0; map.len()];
        }
        for (s, &v) in sum.iter_mut().zip(map) {
            *s += v.max(0.0);
        }
        n += 1;
    }
    for s in &mut sum {
        *s /= n as f32;
    }
    min_max(&mut sum);
    sum
}

/// `map -= min; map /= 1e-7 + max` (pytorch-grad-cam's `scale_cam_image` without a resize).
pub(crate) fn min_max(map: &mut [f32]) {
    let min = map.iter().copied().fold(f32::INFINITY, f32::min);
    for v in map.iter_mut() {
        *v -= min;
    }
    let max = map.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    for v in map.iter_mut() {
        *v /= 1e-7 + max;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scaling_clamps_then_stretches_to_unit_range() {
        let out = scale_map(&[-1.0, 0.0, 2.0, 4.0], (2, 2), None);
        let expected = [0.0, 0.0, 2.0 / (4.0 + 1e-7), 4.0 / (4.0 + 1e-7)];
        for (a, b) in out.iter().zip(expected) {
            assert!((a - b).abs() < 1e-7, "{out:?}");
        }
    }

    #[test]
    fn fusion_averages_clamped_layers_and_rescales() {
        // mean of [0, 1, 2, 3] and [2, 1, 0, -1] clamped: [1, 1, 1, 1.5] -> [0, 0, 0, 1].
        let a = [0.0, 1.0, 2.0, 3.0];
        let b = [2.0, 1.0, 0.0, -1.0];
        let out = fuse_layers([a.as_slice(), b.as_slice()].into_iter());
        assert_eq!(out[..3], [0.0, 0.0, 0.0]);
        assert!((out[3] - 1.0).abs() < 1e-6);
    }
}
