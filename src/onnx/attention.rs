//! The transformer blocks of a vision transformer's graph, for LeGrad: per block its attention
//! probabilities (the output of the Softmax inside its attention module) and its output
//! tokens, and the score projection (the nodes after the last block: final norm and head).
//!
//! Blocks are found from the exporters' scopes (see [`super::scopes`]): a Softmax whose scope
//! holds a module named like attention (`self_attention`, `attn`, `attention`: the outermost
//! such) belongs to the block that module is a child of (`encoder.layers.encoder_layer_0` for
//! torchvision's `VisionTransformer`, `blocks.0` for timm's).

use super::error::{OnnxError, Result};
use super::exec::Plan;
use super::graph::Graph;
use super::layers::Layer;
use super::scopes;
use super::split::Split;
use super::value::{Float, Value};
use burn::tensor::Tensor;
use std::collections::HashSet;
use std::sync::Arc;

/// One transformer block.
#[derive(Debug, Clone)]
pub struct AttentionBlock {
    /// The block's module path, e.g. `encoder.layers.encoder_layer_0`.
    pub module: String,
    /// The tensor holding its output tokens `(B, tokens, channels)`.
    pub output: String,
    softmax: usize,
    output_id: usize,
}

/// A graph's transformer blocks and its score projection (see the module doc).
#[derive(Debug, Clone)]
pub struct Attention {
    graph: Arc<Graph>,
    blocks: Vec<AttentionBlock>,
    /// The graph cut at the last block's output: its head is the score projection.
    projection: Split,
}

/// One pass with the attention of some blocks as autodiff leaves (see [`Attention::run`]).
pub struct AttentionPass {
    /// The graph's outputs, without autodiff.
    pub outputs: Vec<Float>,
    /// Per selected block: the graph's outputs from the mean of its output tokens, with
    /// autodiff; each depends on that block's attention leaf only.
    pub scores: Vec<Vec<Float>>,
    /// Per selected block: its attention probabilities `[batch, heads, queries, keys]`, a leaf
    /// that requires grad.
    pub attention: Vec<Tensor<4>>,
}

impl Attention {
    /// Finds the blocks of `graph`, whose float tensors (with shapes for one image) are
    /// `tensors`; an error says what is missing for a graph that is not a vision transformer.
    pub fn find(graph: &Arc<Graph>, tensors: &[Layer]) -> Result<Attention> {
        let shape_of = |id: usize| {
            let name = graph.name(id);
            tensors.iter().find(|t| t.tensor == name).map(|t| &t.shape)
        };
        let mut seen = HashSet::new();
        let mut blocks: Vec<AttentionBlock> = vec![];
        let mut softmaxes = 0;
        let mut rejected = None;
        for node in graph.nodes() {
            // Every node's legacy scope, in order, so that call counts (`_1`) resolve.
            let scope = scopes::from_metadata(node)
                .unwrap_or_else(|| scopes::from_legacy_name(&node.name, &mut seen));
            if node.op_type != "Softmax" {
                continue;
            }
            softmaxes += 1;
            let Some(at) = scope.iter().position(|m| is_attention(m)) else {
                continue;
            };
            let Some(module) = at.checked_sub(1).map(|p| scope[p].clone()) else {
                continue;
            };
            let Some(softmax) = node.outputs.first().copied().flatten() else {
                continue;
            };
            if let Some(b) = blocks.iter().find(|b| b.module == module) {
                return Err(OnnxError::Invalid(format!(
                    "block `{}` has two Softmax nodes in its attention; LeGrad needs one",
                    b.module
                )));
            }
            let keys = shape_of(softmax).and_then(|s| s.last().copied());
            let output = tensors
                .iter()
                .find(|t| t.modules.contains(&module))
                .filter(|t| matches!(t.shape[..], [1, n, _] if Some(n) == keys));
            // Attention over some of the tokens only (Swin's windows, a pooling head's
            // queries) is no block; said when no block is found.
            let Some(output) = output else {
                rejected.get_or_insert(format!(
                    "block `{module}` attends over {} keys but has no output of shape (batch, \
                     {0}, channels): LeGrad needs global attention over all the tokens \
                     (windowed attention, as Swin's, is not supported)",
                    keys.map_or("?".into(), |k| k.to_string())
                ));
                continue;
            };
            blocks.push(AttentionBlock {
                module,
                output: output.tensor.clone(),
                softmax,
                output_id: graph.id(&output.tensor)?,
            });
        }
        let Some(last) = blocks.last() else {
            return Err(OnnxError::Invalid(rejected.unwrap_or_else(|| {
                format!(
                    "LeGrad needs a vision transformer: the graph has {softmaxes} Softmax \
                     node(s), none inside an attention module (a module named \
                     `self_attention`, `attn` or `attention` in the exporter's scopes)"
                )
            })));
        };
        let projection = graph.split(&[last.output.as_str()])?;
        if !projection.context_names().is_empty() {
            return Err(OnnxError::Invalid(format!(
                "the nodes after the last block `{}` read other tensors ({}); LeGrad needs a head \
                 that reads the tokens only",
                last.module,
                projection.context_names().join(", ")
            )));
        }
        Ok(Attention {
            graph: Arc::clone(graph),
            blocks,
            projection,
        })
    }

    /// The blocks, in graph order.
    pub fn blocks(&self) -> &[AttentionBlock] {
        &self.blocks
    }

    /// Runs the graph on `input` with the attention probabilities of blocks `selected`
    /// (indices into [`blocks`](Self::blocks)) as autodiff leaves. At each selected block's
    /// output the score projection runs on the mean of its tokens, kept as a one-token
    /// sequence (so a head that reads the class token reads the mean: torchcam's
    /// `heads(encoder.ln(tokens.mean(1)))`), and the tokens go on to the next block detached:
    /// a block's scores then depend on its own attention only, so one backward of their sum
    /// gives every block's `d s^l / d A^l`. Within the block every path counts, as in
    /// torchcam's `autograd.grad(s^l, A^l)`.
    pub fn run(&self, input: Float, selected: &[usize]) -> Result<AttentionPass> {
        let graph = &self.graph;
        let batch = input.shape().first().copied().unwrap_or(1);
        let context = self.projection.empty_context(batch).ok_or_else(|| {
            OnnxError::Invalid("the score projection needs other tensors".to_string())
        })?;
        let chosen: Vec<&AttentionBlock> = selected
            .iter()
            .map(|&b| {
                self.blocks.get(b).ok_or_else(|| {
                    OnnxError::Invalid(format!(
                        "block {b} of a graph with {} blocks",
                        self.blocks.len()
                    ))
                })
            })
            .collect::<Result<_>>()?;
        let mut leaves: Vec<Option<Tensor<4>>> = vec![None; chosen.len()];
        let mut scores: Vec<Option<Vec<Float>>> = vec![None; chosen.len()];
        let mut after = |n: usize, env: &mut [Option<Value>]| -> Result<()> {
            for (k, block) in chosen.iter().enumerate() {
                if graph.producer[block.softmax] == Some(n) {
                    let probabilities = float(env, block.softmax, graph)?;
                    let leaf = attention_leaf(&probabilities, batch)?;
                    let value = Float::from_tensor(leaf.clone())
                        .reshape(probabilities.shape().to_vec())
                        .map_err(|e| OnnxError::Invalid(e.0))?;
                    env[block.softmax] = Some(Value::Float(value));
                    leaves[k] = Some(leaf);
                }
                if graph.producer[block.output_id] == Some(n) {
                    let tokens = float(env, block.output_id, graph)?;
                    let t = tokens
                        .to_tensor::<3>()
                        .map_err(|e| OnnxError::Invalid(e.0))?;
                    let mean = Float::from_tensor(t.mean_dim(1));
                    scores[k] = Some(self.projection.head(vec![mean], &context, None)?);
                    env[block.output_id] = Some(Value::Float(tokens.detach()));
                }
            }
            Ok(())
        };
        let mut env = vec![None; graph.names.len()];
        env[graph.inputs[0].id] = Some(Value::Float(input));
        graph
            .full_plan()
            .run_observed(graph, &mut env, &mut after)?;
        let outputs = graph
            .outputs
            .iter()
            .map(|&o| super::split::output(graph, &mut env, o))
            .collect::<Result<_>>()?;
        let missing = || OnnxError::Invalid("a selected block did not run".to_string());
        Ok(AttentionPass {
            outputs,
            scores: scores
                .into_iter()
                .map(|s| s.ok_or_else(missing))
                .collect::<Result<_>>()?,
            attention: leaves
                .into_iter()
                .map(|l| l.ok_or_else(missing))
                .collect::<Result<_>>()?,
        })
    }
}

/// Whether a module path's last part names an attention module.
fn is_attention(module: &str) -> bool {
    let last = module
        .rsplit('.')
        .next()
        .unwrap_or(module)
        .to_ascii_lowercase();
    last.contains("attention") || last.contains("attn")
}

/// The float value of tensor `id` in `env`.
fn float(env: &[Option<Value>], id: usize, graph: &Graph) -> Result<Float> {
    match env[id].as_ref() {
        Some(Value::Float(f)) => Ok(f.clone()),
        _ => Err(OnnxError::Invalid(format!(
            "tensor `{}` is not a computed float tensor",
            graph.name(id)
        ))),
    }
}

/// Attention probabilities `(B, heads, Q, K)` or `(B * heads, Q, K)` (the batch outermost) as
/// a `[B, heads, Q, K]` leaf that requires grad.
fn attention_leaf(probabilities: &Float, batch: usize) -> Result<Tensor<4>> {
    let shape = probabilities.shape();
    let (q, k) = match shape {
        [.., q, k] if shape.len() >= 3 => (*q, *k),
        _ => {
            return Err(OnnxError::Invalid(format!(
                "attention probabilities of shape {shape:?}; (batch, heads, queries, keys) \
                 expected"
            )));
        }
    };
    let heads = probabilities.len() / (batch * q * k).max(1);
    if heads * batch * q * k != probabilities.len() || !shape[0].is_multiple_of(batch) {
        return Err(OnnxError::Invalid(format!(
            "attention probabilities of shape {shape:?} for a batch of {batch}"
        )));
    }
    Ok(probabilities
        .padded()
        .clone()
        .without_autodiff()
        .reshape([batch, heads, q, k])
        .autodiff()
        .require_grad())
}

impl Graph {
    /// The plan of [`Graph::run`] (all the nodes the outputs need).
    pub(crate) fn full_plan(&self) -> &Plan {
        self.full_plan.get_or_init(|| {
            let nodes = super::split::ancestors(self, &self.outputs, &HashSet::new());
            Plan::new(self, nodes, &self.outputs.iter().copied().collect())
        })
    }
}
