//! Running a list of nodes: inputs from the environment or the constants, each intermediate
//! freed after its last use.

use super::error::{OnnxError, Result};
use super::graph::Graph;
use super::shape_cache::{self, ShapeCache};
use super::value::Value;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

/// What [`Plan::run_observed`] calls after each node: its index and the environment.
pub(crate) type Observer<'a> = dyn FnMut(usize, &mut [Option<Value>]) -> Result<()> + 'a;

/// Nodes to run, and after each the tensors no later node (nor the caller) needs.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    pub(crate) nodes: Vec<usize>,
    frees: Vec<Vec<usize>>,
    /// Outputs of shape-only nodes that other nodes (or the caller) read: all a run needs
    /// from the shape cache.
    frontier: Vec<usize>,
    cache: Arc<ShapeCache>,
}

impl Plan {
    /// A plan for `nodes` (in graph order) that keeps the tensors in `keep`.
    pub(crate) fn new(graph: &Graph, nodes: Vec<usize>, keep: &HashSet<usize>) -> Plan {
        let mut last_use = vec![None; graph.names.len()];
        for (step, &n) in nodes.iter().enumerate() {
            let node = &graph.nodes[n];
            for &id in node
                .inputs
                .iter()
                .flatten()
                .chain(node.outputs.iter().flatten())
            {
                last_use[id] = Some(step);
            }
        }
        let mut frees = vec![vec![]; nodes.len()];
        for (id, step) in last_use.into_iter().enumerate() {
            if let Some(step) = step
                && !keep.contains(&id)
                && graph.constants[id].is_none()
            {
                frees[step].push(id);
            }
        }
        let mut frontier = HashSet::new();
        for &n in &nodes {
            let node = &graph.nodes[n];
            if !graph.shape_only[n] {
                frontier.extend(
                    node.inputs
                        .iter()
                        .flatten()
                        .filter(|&&id| is_shape_only(graph, id)),
                );
            }
        }
        frontier.extend(keep.iter().filter(|&&id| is_shape_only(graph, id)));
        Plan {
            nodes,
            frees,
            frontier: frontier.into_iter().collect(),
            cache: Arc::default(),
        }
    }

    /// Runs the plan over `env` (one slot per tensor id).
    pub(crate) fn run(&self, graph: &Graph, env: &mut [Option<Value>]) -> Result<()> {
        self.run_observed(graph, env, &mut |_, _| Ok(()))
    }

    /// [`Plan::run`], calling `after(node, env)` once each node's outputs are stored (before
    /// the tensors it last read are freed), so a caller can read or replace them (LeGrad's
    /// attention leaves).
    pub(crate) fn run_observed(
        &self,
        graph: &Graph,
        env: &mut [Option<Value>],
        after: &mut Observer,
    ) -> Result<()> {
        let key = shape_cache::key(env);
        let cached = self.cache.get(&key);
        if let Some(c) = &cached {
            for &id in &self.frontier {
                env[id] = c.get(&id).cloned();
            }
        }
        let mut fresh = HashMap::new();
        for (step, &n) in self.nodes.iter().enumerate() {
            let node = &graph.nodes[n];
            let shape_only = graph.shape_only[n];
            // With the cache, shape-only nodes do not run: their values that matter are seeded.
            if shape_only && cached.is_some() {
                for &id in &self.frees[step] {
                    env[id] = None;
                }
                continue;
            }
            let outputs = {
                let inputs: Vec<Option<&Value>> = node
                    .inputs
                    .iter()
                    .map(|id| {
                        id.map(|id| {
                            graph.constants[id]
                                .as_ref()
                                .or(env[id].as_ref())
                                .ok_or_else(|| OnnxError::Node {
                                    node: node.name.clone(),
                                    op_type: node.op_type.clone(),
                                    message: format!(
                                        "input `{}` has no value here",
                                        graph.name(id)
                                    ),
                                })
                        })
                        .transpose()
                    })
                    .collect::<Result<_>>()?;
                node.op.run(&inputs).map_err(|e| OnnxError::Node {
                    node: node.name.clone(),
                    op_type: node.op_type.clone(),
                    message: e.0,
                })?
            };
            store(&graph.names, node, outputs, env)?;
            after(n, env)?;
            if shape_only {
                for &id in node.outputs.iter().flatten() {
                    if self.frontier.contains(&id) {
                        fresh.insert(id, env[id].clone().expect("stored"));
                    }
                }
            }
            for &id in &self.frees[step] {
                env[id] = None;
            }
        }
        if cached.is_none() && !fresh.is_empty() {
            self.cache.insert(key, fresh);
        }
        Ok(())
    }
}

/// Whether tensor `id` is computed by a shape-only runtime node.
fn is_shape_only(graph: &Graph, id: usize) -> bool {
    graph.producer[id].is_some_and(|p| graph.shape_only[p])
}

/// Puts a node's outputs into `env`; an output the operator does not produce must be unused.
pub(crate) fn store(
    names: &[String],
    node: &super::graph::Node,
    outputs: Vec<Value>,
    env: &mut [Option<Value>],
) -> Result<()> {
    let produced = outputs.len();
    for (slot, value) in node.outputs.iter().zip(outputs) {
        if let Some(id) = slot {
            env[*id] = Some(value);
        }
    }
    if let Some(Some(id)) = node.outputs.get(produced) {
        return Err(OnnxError::Node {
            node: node.name.clone(),
            op_type: node.op_type.clone(),
            message: format!(
                "output `{}` (number {produced}) is not supported",
                names[*id]
            ),
        });
    }
    Ok(())
}
