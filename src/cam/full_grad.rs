//! FullGrad (Srinivas & Fleuret, "Full-Gradient Representation for Neural Network
//! Visualization", NeurIPS 2019), as pytorch-grad-cam's `FullGrad`.

use std::time::Instant;

use burn::tensor::Tensor;

use super::normalize::min_max;
use super::{Cam, CamInput, CamOutput, Method, Targets, Timings, batch_scores, flat};
use crate::error::{Error, Result};
use crate::image::resize_map;
use crate::timefmt::ms;

/// FullGrad: `M = scale(sum_c s(|x * dS/dx|_c) + sum_l sum_c s(|b_l,c * dS/dz_l,c|))`, the
/// input gradient times the input, plus, for every layer `l` that adds a bias `b_l` (each
/// convolution with a bias and each batch norm, whose bias is `beta - mean * gamma /
/// sqrt(var + eps)`), its bias times the gradient at its output `z_l`; `s` min-max scales each
/// channel of each image (`(v - min) / (1e-7 + max)`) and resizes it to the input
/// (bilinear), and the final `scale` is a min-max over the image. Absolute values, so the map
/// is unsigned.
///
/// It ignores the runner's layers: one backward pass runs through the whole network (not only
/// the head, as the other gradient methods do), and the model must expose its biases
/// ([`CamModel::forward_with_bias_probes`](crate::model::CamModel::forward_with_bias_probes):
/// the built-in models and ONNX graphs do). `eigen_smooth` is not supported. The output has no
/// raw per-layer maps.
#[derive(Debug, Clone, Copy, Default)]
pub struct FullGrad;

impl Method for FullGrad {
    fn name(&self) -> &'static str {
        "fullgrad"
    }

    fn raw_map(&self, _cam: &CamInput, _eigen_smooth: bool) -> Result<Tensor<3>> {
        Err(Error::Invalid(
            "FullGrad makes its map from the whole network, not from one layer".to_string(),
        ))
    }

    fn run_whole(
        &self,
        runner: &Cam,
        input: Tensor<4>,
        sets: &[Targets],
    ) -> Option<Result<Vec<CamOutput>>> {
        Some(
            sets.iter()
                .map(|set| self.explain(runner, input.clone(), set))
                .collect(),
        )
    }
}

impl FullGrad {
    fn explain(&self, runner: &Cam, input: Tensor<4>, set: &Targets) -> Result<CamOutput> {
        if runner.options.eigen_smooth {
            return Err(Error::Invalid(
                "FullGrad does not support eigen_smooth".to_string(),
            ));
        }
        runner.cancel.check()?;
        let start = Instant::now();
        let [batch, channels, height, width] = input.dims();
        let leaf = input.clone().autodiff().require_grad();
        let (logits, probes) = runner.model.forward_with_bias_probes(leaf.clone())?;
        let rows = super::rows(logits.clone().detach());
        let targets = set.resolve(&rows, runner.options.counterfactual)?;
        let scores = batch_scores(&targets, logits, |i| i);
        let values = flat(scores.clone().detach());
        let grads = scores.sum().backward();
        let no_gradient =
            || Error::Invalid("the target score does not depend on the input".to_string());
        let input_grad = leaf.grad(&grads).ok_or_else(no_gradient)?;
        let backward = ms(start);

        let start = Instant::now();
        let plane = height * width;
        let mut maps = vec![vec![0.0f32; plane]; batch];
        let term = flat((input_grad * input).abs());
        add_scaled_channels(&mut maps, &term, channels, (height, width), (height, width));
        for p in &probes {
            let gradient = p.probe.grad(&grads).ok_or_else(no_gradient)?;
            let [_, c, h, w] = gradient.dims();
            let term = flat((gradient * p.bias.clone().reshape([1, c, 1, 1])).abs());
            add_scaled_channels(&mut maps, &term, c, (h, w), (height, width));
        }
        maps.iter_mut().for_each(|m| min_max(m));
        Ok(CamOutput {
            size: (height, width),
            classes: targets.iter().map(|t| t.class()).collect(),
            logits: rows,
            scores: values,
            layers: Vec::new(),
            maps,
            timings: Timings {
                forward: 0.0,
                backward,
                postprocess: ms(start),
            },
        })
    }
}

/// `maps[b] += sum_c resize(min_max(term[b, c]))`: pytorch-grad-cam's
/// `scale_accross_batch_and_channels` then the sum over channels. The bilinear resize is
/// linear, so the channels are summed first and resized once (upstream resizes each channel:
/// 20,000 resizes to 224x224 on Lite0, most of its time), which changes only the rounding.
fn add_scaled_channels(
    maps: &mut [Vec<f32>],
    term: &[f32],
    channels: usize,
    size: (usize, usize),
    to: (usize, usize),
) {
    let plane = size.0 * size.1;
    for (b, map) in maps.iter_mut().enumerate() {
        let mut sum = vec![0.0f32; plane];
        for c in 0..channels {
            let start = (b * channels + c) * plane;
            let mut channel = term[start..start + plane].to_vec();
            min_max(&mut channel);
            sum.iter_mut().zip(&channel).for_each(|(s, v)| *s += v);
        }
        let sum = if size == to {
            sum
        } else {
            resize_map(&sum, size, to)
        };
        map.iter_mut().zip(&sum).for_each(|(m, v)| *m += v);
    }
}
