//! Cutting the graph at tensors: the body runs up to the cut tensors (without autodiff) and
//! also returns the context, the tensors that cross the cut without depending on it; the head
//! runs only the nodes that depend on the cut, from cut values the caller may make autodiff
//! leaves, with the context as constants.

use super::error::{OnnxError, Result};
use super::exec::Plan;
use super::graph::Graph;
use super::value::{Float, Ints, Value};
use std::collections::HashSet;
use std::sync::Arc;

/// A graph cut at some tensors (see the module doc).
#[derive(Debug, Clone)]
pub struct Split {
    graph: Arc<Graph>,
    cuts: Vec<usize>,
    context: Vec<usize>,
    body: Plan,
    head: Plan,
}

/// The tensors the head needs besides the cut ones, from one body run.
#[derive(Debug, Clone)]
pub struct Context {
    values: Vec<Value>,
    batch: usize,
}

impl Context {
    /// The number of images the body ran on.
    pub fn batch(&self) -> usize {
        self.batch
    }
}

/// The runtime nodes needed to compute `targets`, not looking past the tensors in `stop`.
pub(crate) fn ancestors(graph: &Graph, targets: &[usize], stop: &HashSet<usize>) -> Vec<usize> {
    let mut seen = vec![false; graph.nodes.len()];
    let mut stack: Vec<usize> = targets
        .iter()
        .filter(|t| !stop.contains(t))
        .filter_map(|&t| graph.producer[t])
        .collect();
    while let Some(n) = stack.pop() {
        if std::mem::replace(&mut seen[n], true) {
            continue;
        }
        for &id in graph.nodes[n].inputs.iter().flatten() {
            if !stop.contains(&id)
                && let Some(p) = graph.producer[id]
            {
                stack.push(p);
            }
        }
    }
    (0..graph.nodes.len()).filter(|&n| seen[n]).collect()
}

impl Split {
    /// Cuts `graph` at the tensors named in `cuts`.
    pub fn new(graph: Arc<Graph>, cuts: &[&str]) -> Result<Split> {
        single_input(&graph)?;
        let cut_ids: Vec<usize> = cuts.iter().map(|c| graph.id(c)).collect::<Result<_>>()?;
        let cut_set: HashSet<usize> = cut_ids.iter().copied().collect();
        for &c in &cut_ids {
            if graph.constants[c].is_some() {
                return Err(OnnxError::Invalid(format!(
                    "tensor `{}` is a constant, not an activation",
                    graph.name(c)
                )));
            }
        }
        // Nodes downstream of a cut (the cut tensors' own producers excluded: their values are given).
        let mut dependent = vec![false; graph.nodes.len()];
        let mut tainted = cut_set.clone();
        for (i, n) in graph.nodes.iter().enumerate() {
            let produces_cut = n.outputs.iter().flatten().any(|o| cut_set.contains(o));
            if !produces_cut && n.inputs.iter().flatten().any(|id| tainted.contains(id)) {
                dependent[i] = true;
                tainted.extend(n.outputs.iter().flatten());
            }
        }
        let head_nodes: Vec<usize> = ancestors(&graph, &graph.outputs, &cut_set)
            .into_iter()
            .filter(|&n| dependent[n])
            .collect();
        let head_outputs: HashSet<usize> = head_nodes
            .iter()
            .flat_map(|&n| graph.nodes[n].outputs.iter().flatten().copied())
            .collect();
        for &c in &cut_ids {
            let read = head_nodes
                .iter()
                .any(|&n| graph.nodes[n].inputs.contains(&Some(c)));
            if !read && !graph.outputs.contains(&c) {
                return Err(OnnxError::Invalid(format!(
                    "the outputs do not depend on tensor `{}`",
                    graph.name(c)
                )));
            }
        }
        let mut context = vec![];
        let needed = head_nodes
            .iter()
            .flat_map(|&n| graph.nodes[n].inputs.iter().flatten().copied())
            .chain(graph.outputs.iter().copied());
        for id in needed {
            if !cut_set.contains(&id)
                && !head_outputs.contains(&id)
                && graph.constants[id].is_none()
                && !context.contains(&id)
            {
                context.push(id);
            }
        }
        let body_targets: Vec<usize> = cut_ids.iter().chain(&context).copied().collect();
        let body_nodes = ancestors(&graph, &body_targets, &HashSet::new());
        let body = Plan::new(&graph, body_nodes, &body_targets.iter().copied().collect());
        let head = Plan::new(&graph, head_nodes, &graph.outputs.iter().copied().collect());
        Ok(Split {
            graph,
            cuts: cut_ids,
            context,
            body,
            head,
        })
    }

    /// The cut tensors' names.
    pub fn cut_names(&self) -> Vec<&str> {
        self.cuts.iter().map(|&c| self.graph.name(c)).collect()
    }

    /// The names of the tensors that cross the cut without depending on it.
    pub fn context_names(&self) -> Vec<&str> {
        self.context.iter().map(|&c| self.graph.name(c)).collect()
    }

    /// The context of a batch of `batch` for a split whose head reads nothing but the cut
    /// tensors and constants (`None` for any other).
    pub(crate) fn empty_context(&self, batch: usize) -> Option<Context> {
        self.context.is_empty().then_some(Context {
            values: vec![],
            batch,
        })
    }

    /// How many nodes the head runs.
    pub fn head_len(&self) -> usize {
        self.head.nodes.len()
    }

    /// Runs the body on `input`: the cut tensors (in the order given) and the context.
    pub fn body(&self, input: Float) -> Result<(Vec<Float>, Context)> {
        let g = &self.graph;
        let batch = input.shape().first().copied().unwrap_or(1);
        let mut env = vec![None; g.names.len()];
        env[g.inputs[0].id] = Some(Value::Float(input));
        self.body.run(g, &mut env)?;
        let take = |env: &mut Vec<Option<Value>>, id: usize| -> Result<Value> {
            env[id].take().ok_or_else(|| {
                OnnxError::Invalid(format!("tensor `{}` was not computed", g.name(id)))
            })
        };
        let mut cuts = vec![];
        for &c in &self.cuts {
            let v = env[c].clone().ok_or_else(|| {
                OnnxError::Invalid(format!("tensor `{}` was not computed", g.name(c)))
            })?;
            cuts.push(
                v.float()
                    .map_err(|e| OnnxError::Invalid(format!("cut tensor `{}`: {e}", g.name(c))))?
                    .clone(),
            );
        }
        let values = self
            .context
            .iter()
            .map(|&id| take(&mut env, id))
            .collect::<Result<_>>()?;
        Ok((cuts, Context { values, batch }))
    }

    /// Runs the head from the cut tensors' values (autodiff leaves or not) and the context,
    /// returning the graph's outputs. Row `i` of the cut values belongs to image `rows[i]` of
    /// the body's batch (`None`: row `i` to image `i`), so the head can run on several
    /// modified copies of one image (Ablation-CAM).
    pub fn head(
        &self,
        cuts: Vec<Float>,
        context: &Context,
        rows: Option<&[usize]>,
    ) -> Result<Vec<Float>> {
        let g = &self.graph;
        let mut env = self.head_env(cuts, context, rows)?;
        self.head.run(g, &mut env)?;
        g.outputs.iter().map(|&o| output(g, &mut env, o)).collect()
    }

    /// Runs the part of the head that computes the inner tensor `name` (which must depend on
    /// the cut), from the cut tensors' values and the context, and returns it: an embedding
    /// read inside the graph.
    pub fn head_to(&self, cuts: Vec<Float>, context: &Context, name: &str) -> Result<Float> {
        let g = &self.graph;
        let id = g.id(name)?;
        let head: HashSet<usize> = self.head.nodes.iter().copied().collect();
        let in_head = |n: &usize| head.contains(n);
        if !g.producer[id].is_some_and(|p| in_head(&p)) {
            return Err(OnnxError::Invalid(format!(
                "tensor `{name}` is not computed from the cut at `{}`",
                self.cut_names().join("`, `")
            )));
        }
        let stop: HashSet<usize> = self.cuts.iter().copied().collect();
        let nodes: Vec<usize> = ancestors(g, &[id], &stop)
            .into_iter()
            .filter(in_head)
            .collect();
        let mut env = self.head_env(cuts, context, None)?;
        Plan::new(g, nodes, &HashSet::from([id])).run(g, &mut env)?;
        output(g, &mut env, id)
    }

    /// The environment a head run starts from: the cut values, and the context's rows.
    fn head_env(
        &self,
        cuts: Vec<Float>,
        context: &Context,
        rows: Option<&[usize]>,
    ) -> Result<Vec<Option<Value>>> {
        let g = &self.graph;
        if cuts.len() != self.cuts.len() {
            return Err(OnnxError::Invalid(format!(
                "{} cut values for {} cut tensors",
                cuts.len(),
                self.cuts.len()
            )));
        }
        if let Some(rows) = rows {
            if let Some(&r) = rows.iter().find(|&&r| r >= context.batch) {
                return Err(OnnxError::Invalid(format!(
                    "row {r} is beyond the body's batch of {}",
                    context.batch
                )));
            }
            if let Some(c) = cuts.iter().find(|c| c.shape().first() != Some(&rows.len())) {
                return Err(OnnxError::Invalid(format!(
                    "a cut value of shape {:?} for {} rows",
                    c.shape(),
                    rows.len()
                )));
            }
        }
        let mut env = vec![None; g.names.len()];
        for (&id, value) in self.cuts.iter().zip(cuts) {
            env[id] = Some(Value::Float(value));
        }
        for (&id, value) in self.context.iter().zip(&context.values) {
            env[id] = Some(match (value, rows) {
                // Per-image tensors follow the rows; batch-free ones (shapes, ...) stay.
                (Value::Float(f), Some(rows)) if f.shape().first() == Some(&context.batch) => {
                    let index =
                        Ints::vector(rows.iter().map(|&r| r as i64).collect()).to_index_tensor();
                    let mut shape = f.shape().to_vec();
                    shape[0] = rows.len();
                    Value::Float(Float::wrap(
                        f.padded().clone().select(f.padded_axis(0), index),
                        shape,
                    ))
                }
                (v, _) => v.clone(),
            });
        }
        Ok(env)
    }
}

/// The graph must have exactly one input (the image batch).
pub(crate) fn single_input(graph: &Graph) -> Result<()> {
    match graph.inputs.len() {
        1 => Ok(()),
        n => Err(OnnxError::Invalid(format!(
            "the model has {n} inputs ({}); one image input is supported",
            graph
                .inputs
                .iter()
                .map(|i| i.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

/// Output `id` as a float tensor, from the run's environment or the constants.
pub(crate) fn output(graph: &Graph, env: &mut [Option<Value>], id: usize) -> Result<Float> {
    let value = env[id].take().or_else(|| graph.constants[id].clone());
    match value {
        Some(Value::Float(f)) => Ok(f),
        Some(Value::Int(i)) => i.to_float().map_err(|e| OnnxError::Invalid(e.0)),
        None => Err(OnnxError::Invalid(format!(
            "output `{}` was not computed",
            graph.name(id)
        ))),
    }
}
