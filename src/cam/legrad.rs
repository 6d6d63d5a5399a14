//! LeGrad (Bousselham et al., "LeGrad: An Explainability Method for Vision Transformers via
//! Feature Formation Sensitivity", 2024, <https://arxiv.org/abs/2404.03214>), as torchcam
//! 0.5.0's `LeGrad`.

use std::time::Instant;

use burn::tensor::Tensor;

use super::{Cam, CamInput, CamOutput, LayerMap, Method, Targets, Timings, batch_scores, flat};
use crate::error::{Error, Result};
use crate::image::resize_map;
use crate::model::CamModel;
use crate::timefmt::ms;

/// Blocks explained when the user names none: torchcam's example uses the last four.
pub const DEFAULT_BLOCKS: usize = 4;

/// LeGrad: for each selected transformer block `l`, its own class score
/// `s^l = head(norm(mean_t tokens_l))[c]` (the graph's final norm and head applied to the mean
/// of the block's output tokens, all of them, class token included), differentiated with
/// respect to the block's post-softmax attention probabilities `A^l` `(heads, Q, K)`:
/// `R^l = mean_{heads, Q} relu(d s^l / d A^l)`, the leading `prefix` keys (the class token)
/// dropped, the rest laid on the patch grid; the map is `mean_l R^l`, min-max normalised
/// torchcam's way (`(R - min) / (max(R - min) + 1e-8)`) and resized bilinearly to the input.
/// The sign: positive gradients only, attention values not multiplied in. The score is the
/// target's (a class logit by default, as torchcam; negated for counterfactuals).
///
/// The runner's layers select the blocks (`--layer encoder.layers.encoder_layer_1`, a block's
/// module path or its output tensor); by default the last [`DEFAULT_BLOCKS`] (all when fewer).
/// One forward and one backward for all blocks: the model makes each block's tokens reach the
/// next block detached, so the sum of the `s^l` has `d s^l / d A^l` as its gradient at each
/// `A^l` (see [`CamModel::forward_with_attention`]). Needs an ONNX vision transformer; the
/// output's raw per-layer maps are the blocks' `R^l` on the patch grid. `eigen_smooth` is not
/// supported.
#[derive(Debug, Clone, Copy, Default)]
pub struct LeGrad;

impl Method for LeGrad {
    fn name(&self) -> &'static str {
        "legrad"
    }

    fn raw_map(&self, _cam: &CamInput, _eigen_smooth: bool) -> Result<Tensor<3>> {
        Err(Error::Invalid(
            "LeGrad makes its map from transformer blocks' attention, not from one layer"
                .to_string(),
        ))
    }

    fn default_layers(&self, model: &dyn CamModel) -> Option<Result<Vec<String>>> {
        Some(model.attention_blocks().map(|blocks| {
            let skip = blocks.len().saturating_sub(DEFAULT_BLOCKS);
            blocks.into_iter().skip(skip).collect()
        }))
    }

    fn check(&self, model: &dyn CamModel, layers: &[String]) -> Result<()> {
        let indices: Vec<usize> = layers
            .iter()
            .map(|l| model.layer_index(l))
            .collect::<Result<_>>()?;
        blocks_of(model, &indices).map(drop)
    }

    fn run_whole(
        &self,
        runner: &Cam,
        input: Tensor<4>,
        sets: &[Targets],
    ) -> Option<Result<Vec<CamOutput>>> {
        Some(selected_blocks(runner).and_then(|blocks| {
            sets.iter()
                .map(|set| explain(runner, input.clone(), set, &blocks))
                .collect()
        }))
    }
}

/// The blocks to explain: the runner's layers as indices into the model's attention blocks,
/// with their names.
fn selected_blocks(runner: &Cam) -> Result<Vec<(usize, String)>> {
    if runner.options.eigen_smooth {
        return Err(Error::Invalid(
            "LeGrad does not support eigen_smooth".to_string(),
        ));
    }
    blocks_of(runner.model, &runner.layers)
}

/// Layers `layers` (indices into the model's layers) as blocks: each must be one.
fn blocks_of(model: &dyn CamModel, layers: &[usize]) -> Result<Vec<(usize, String)>> {
    let blocks = model.attention_blocks()?;
    layers
        .iter()
        .map(|&l| {
            let layer = &model.layers()[l];
            let names = || std::iter::once(&layer.name).chain(&layer.aliases);
            blocks
                .iter()
                .position(|b| names().any(|n| n == b))
                .map(|b| (b, blocks[b].clone()))
                .ok_or_else(|| {
                    Error::Invalid(format!(
                        "LeGrad explains transformer blocks; layer `{}` is none of {}'s: {}",
                        layer.name,
                        model.name(),
                        blocks.join(", ")
                    ))
                })
        })
        .collect()
}

fn explain(
    runner: &Cam,
    input: Tensor<4>,
    set: &Targets,
    blocks: &[(usize, String)],
) -> Result<CamOutput> {
    runner.cancel.check()?;
    let model: &dyn CamModel = runner.model;
    let [batch, _, height, width] = input.dims();
    let start = Instant::now();
    let indices: Vec<usize> = blocks.iter().map(|(b, _)| *b).collect();
    let pass = model.forward_with_attention(input, &indices)?;
    let rows = super::rows(pass.logits.clone());
    let targets = set.resolve(&rows, runner.options.counterfactual)?;
    let values = flat(batch_scores(&targets, pass.logits, |i| i));
    let total = pass
        .block_logits
        .into_iter()
        .map(|logits| batch_scores(&targets, logits, |i| i).sum())
        .reduce(|a, b| a + b)
        .ok_or_else(|| Error::Invalid("LeGrad needs at least one block".to_string()))?;
    let grads = total.backward();
    let (grid_h, grid_w) = pass.grid;
    let mut layers = vec![];
    for ((_, name), leaves) in blocks.iter().zip(pass.attention) {
        let parts = leaves
            .iter()
            .map(|leaf| {
                leaf.grad(&grads).ok_or_else(|| {
                    Error::Invalid(format!(
                        "the score of block `{name}` does not depend on its attention"
                    ))
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let gradient = Tensor::cat(parts, 0);
        let [_, _, _, keys] = gradient.dims();
        if keys != pass.prefix + grid_h * grid_w {
            return Err(Error::Invalid(format!(
                "block `{name}` attends over {keys} keys, not {} prefix tokens and a {grid_h}x{grid_w} grid",
                pass.prefix
            )));
        }
        // relu, then the mean over heads and queries: [batch, keys].
        let relevance = gradient
            .clamp_min(0.0)
            .mean_dims(&[1, 2])
            .flatten::<2>(1, 3);
        let grid = relevance.narrow(1, pass.prefix, grid_h * grid_w);
        layers.push(LayerMap {
            layer: name.clone(),
            height: grid_h,
            width: grid_w,
            maps: flat(grid)
                .chunks(grid_h * grid_w)
                .map(<[f32]>::to_vec)
                .collect(),
        });
    }
    let backward = ms(start);

    let start = Instant::now();
    let maps = (0..batch)
        .map(|b| {
            let mut mean = vec![0.0f32; grid_h * grid_w];
            for layer in &layers {
                mean.iter_mut()
                    .zip(&layer.maps[b])
                    .for_each(|(m, v)| *m += v);
            }
            mean.iter_mut().for_each(|m| *m /= layers.len() as f32);
            resize_map(&normalized(&mean), (grid_h, grid_w), (height, width))
        })
        .collect();
    Ok(CamOutput {
        size: (height, width),
        classes: targets.iter().map(|t| t.class()).collect(),
        logits: rows,
        scores: values,
        layers,
        maps,
        timings: Timings {
            forward: 0.0,
            backward,
            postprocess: ms(start),
        },
    })
}

/// torchcam's `_normalize`: `map -= min; map /= max + 1e-8`.
fn normalized(map: &[f32]) -> Vec<f32> {
    let min = map.iter().copied().fold(f32::INFINITY, f32::min);
    let shifted: Vec<f32> = map.iter().map(|v| v - min).collect();
    let max = shifted.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    shifted.into_iter().map(|v| v / (max + 1e-8)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalisation_is_torchcams() {
        // (v - 1) / (3 + 1e-8)
        let out = normalized(&[1.0, 2.5, 4.0]);
        assert_eq!(out[0], 0.0);
        assert!(
            (out[1] - 0.5).abs() < 1e-7 && (out[2] - 1.0).abs() < 1e-7,
            "{out:?}"
        );
        // A flat map stays at zero (no division by zero).
        assert_eq!(normalized(&[2.0, 2.0]), [0.0, 0.0]);
    }
}
