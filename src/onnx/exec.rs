//! Running a list of nodes: inputs from the environment or the constants, each intermediate
//! freed after its last use.

use super::error::{OnnxError, Result};
use super::fuse::{self, Epilogue};
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
    /// Convolutions run with the nodes after them in their epilogue (in [`Plan::run`]).
    epilogues: Vec<Epilogue>,
    /// For each step, the epilogue group it belongs to, if any.
    group_of: Vec<Option<usize>>,
    /// Outputs of shape-only nodes that other nodes (or the caller) read: all a run needs
    /// from the shape cache.
    frontier: Vec<usize>,
    cache: Arc<ShapeCache>,
}

impl Plan {
    /// A plan for `nodes` (in graph order) that keeps the tensors in `keep`.
    pub(crate) fn new(graph: &Graph, nodes: Vec<usize>, keep: &HashSet<usize>) -> Plan {
        let epilogues = fuse::epilogues(graph, &nodes, keep);
        let mut group_of = vec![None; nodes.len()];
        for (g, group) in epilogues.iter().enumerate() {
            for &step in &group.steps {
                group_of[step] = Some(g);
            }
        }
        // A group's nodes read their inputs when its last node runs.
        let runs_at = |step: usize| group_of[step].map_or(step, |g: usize| last(&epilogues[g]));
        let mut last_use = vec![None; graph.names.len()];
        for (step, &n) in nodes.iter().enumerate() {
            let node = &graph.nodes[n];
            for &id in node
                .inputs
                .iter()
                .flatten()
                .chain(node.outputs.iter().flatten())
            {
                last_use[id] = last_use[id].max(Some(runs_at(step)));
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
            epilogues,
            group_of,
            frontier: frontier.into_iter().collect(),
            cache: Arc::default(),
        }
    }

    /// Runs the plan over `env` (one slot per tensor id), each epilogue group as one kernel.
    pub(crate) fn run(&self, graph: &Graph, env: &mut [Option<Value>]) -> Result<()> {
        self.run_steps(graph, env, None)
    }

    /// [`Plan::run`] node by node, calling `after(node, env)` once each node's outputs are
    /// stored (before the tensors it last read are freed), so a caller can read or replace
    /// them (LeGrad's attention leaves, FullGrad's bias probes).
    pub(crate) fn run_observed(
        &self,
        graph: &Graph,
        env: &mut [Option<Value>],
        after: &mut Observer,
    ) -> Result<()> {
        self.run_steps(graph, env, Some(after))
    }

    fn run_steps(
        &self,
        graph: &Graph,
        env: &mut [Option<Value>],
        mut after: Option<&mut Observer>,
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
            let group = self.group_of[step].map(|g| &self.epilogues[g]);
            match (&mut after, group) {
                (Some(after), _) => {
                    run_node(graph, node, env)?;
                    after(n, env)?;
                }
                // Its group runs at its last node.
                (None, Some(group)) if last(group) != step => {}
                (None, Some(group)) => {
                    if !self.run_fused(graph, group, step, env)? {
                        for &s in &group.steps {
                            run_node(graph, &graph.nodes[self.nodes[s]], env)?;
                        }
                    }
                }
                (None, None) => run_node(graph, node, env)?,
            }
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

    /// Runs an epilogue group as one kernel at its last step; `false` (nothing done) when its
    /// residual is not a 4-D float tensor, and the nodes then run one by one.
    fn run_fused(
        &self,
        graph: &Graph,
        group: &Epilogue,
        step: usize,
        env: &mut [Option<Value>],
    ) -> Result<bool> {
        let conv = &graph.nodes[self.nodes[group.steps[0]]];
        let residual = match group.residual {
            None => None,
            Some(id) => {
                let value = graph.constants[id].as_ref().or(env[id].as_ref());
                if !matches!(value, Some(Value::Float(f)) if f.rank() == 4) {
                    return Ok(false);
                }
                // Moved out when this is its last use, so the kernel can add into its buffer.
                let movable = graph.constants[id].is_none()
                    && self.frees[step].contains(&id)
                    && !conv.inputs.contains(&Some(id));
                let value = match movable {
                    true => env[id].take(),
                    false => value.cloned(),
                };
                let Some(Value::Float(f)) = value else {
                    unreachable!("checked above")
                };
                Some(f.into_tensor::<4>().map_err(|e| node_error(conv, e.0))?)
            }
        };
        let inputs = node_inputs(graph, conv, env)?;
        let outputs = conv
            .op
            .run_with_epilogue(&inputs, residual, group.act)
            .expect("epilogue groups start with a Conv")
            .map_err(|e| node_error(conv, e.0))?;
        let [value] = <[Value; 1]>::try_from(outputs)
            .map_err(|_| node_error(conv, "a fused convolution gives one output".to_string()))?;
        env[group.output] = Some(value);
        Ok(true)
    }
}

/// The last step of an epilogue group, where it runs.
fn last(group: &Epilogue) -> usize {
    *group.steps.last().expect("a group has nodes")
}

/// Runs one node on its inputs in `env` and stores its outputs there.
fn run_node(graph: &Graph, node: &super::graph::Node, env: &mut [Option<Value>]) -> Result<()> {
    let outputs = {
        let inputs = node_inputs(graph, node, env)?;
        node.op.run(&inputs).map_err(|e| node_error(node, e.0))?
    };
    store(&graph.names, node, outputs, env)
}

/// A node's input values: constants, or tensors computed earlier in `env`.
fn node_inputs<'a>(
    graph: &'a Graph,
    node: &super::graph::Node,
    env: &'a [Option<Value>],
) -> Result<Vec<Option<&'a Value>>> {
    node.inputs
        .iter()
        .map(|id| {
            id.map(|id| {
                graph.constants[id]
                    .as_ref()
                    .or(env[id].as_ref())
                    .ok_or_else(|| {
                        node_error(
                            node,
                            format!("input `{}` has no value here", graph.name(id)),
                        )
                    })
            })
            .transpose()
        })
        .collect()
}

/// An error of `node`.
fn node_error(node: &super::graph::Node, message: String) -> OnnxError {
    OnnxError::Node {
        node: node.name.clone(),
        op_type: node.op_type.clone(),
        message,
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
