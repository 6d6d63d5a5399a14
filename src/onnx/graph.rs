//! The loaded graph: tensors by id, constants (initializers and everything folded from them),
//! and the nodes left to run, in topological order.

use super::attrs::Attributes;
use super::error::{OnnxError, Result};
use super::ops::Op;
use super::value::Value;
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

/// A graph input that is not an initializer.
#[derive(Clone, Debug)]
pub struct Input {
    /// Its name.
    pub name: String,
    /// Its dimensions; `None` for a symbolic one (a dynamic batch).
    pub dims: Vec<Option<usize>>,
    pub(crate) id: usize,
}

/// One node that runs per pass (nodes whose inputs are all constant are folded at load).
#[derive(Debug)]
pub struct Node {
    /// The node's name in the file.
    pub name: String,
    /// Its operator.
    pub op_type: String,
    /// Input tensor ids (`None`: an absent optional input).
    pub(crate) inputs: Vec<Option<usize>>,
    /// Output tensor ids (`None`: an unused optional output).
    pub(crate) outputs: Vec<Option<usize>>,
    /// The node's `metadata_props` (the dynamo exporter's `pkg.torch.onnx.name_scopes`, ...).
    pub metadata: Vec<(String, String)>,
    /// Its attributes, as read (a Constant's are dropped: its value is a constant tensor).
    pub(crate) attrs: Attributes,
    pub(crate) op: Box<dyn Op>,
}

/// An ONNX model ready to run.
#[derive(Debug)]
pub struct Graph {
    pub(crate) path: PathBuf,
    pub(crate) names: Vec<String>,
    pub(crate) ids: HashMap<String, usize>,
    /// Constant value per tensor id.
    pub(crate) constants: Vec<Option<Value>>,
    pub(crate) nodes: Vec<Node>,
    /// The node producing each tensor id, if a runtime node does.
    pub(crate) producer: Vec<Option<usize>>,
    pub(crate) inputs: Vec<Input>,
    pub(crate) outputs: Vec<usize>,
    pub(crate) opsets: BTreeMap<String, i64>,
    pub(crate) folded: usize,
    /// Per runtime node: whether it computes only from shapes (see `shape_cache`).
    pub(crate) shape_only: Vec<bool>,
    /// The plan of [`Graph::run`], made on first use (its shape cache then lasts).
    pub(crate) full_plan: std::sync::OnceLock<super::exec::Plan>,
    pub(crate) metadata: Vec<(String, String)>,
}

impl Graph {
    /// The inputs to feed (initializers excluded).
    pub fn inputs(&self) -> &[Input] {
        &self.inputs
    }

    /// The output tensors' names.
    pub fn output_names(&self) -> Vec<&str> {
        self.outputs
            .iter()
            .map(|&i| self.names[i].as_str())
            .collect()
    }

    /// The nodes that run per pass, in order.
    pub fn nodes(&self) -> &[Node] {
        &self.nodes
    }

    /// How many nodes were folded into constants at load.
    pub fn folded_nodes(&self) -> usize {
        self.folded
    }

    /// The imported opset per domain (`ai.onnx` for the default one).
    pub fn opsets(&self) -> &BTreeMap<String, i64> {
        &self.opsets
    }

    /// The model's `metadata_props`.
    pub fn metadata(&self) -> &[(String, String)] {
        &self.metadata
    }

    /// The file the graph was loaded from.
    pub fn path(&self) -> &std::path::Path {
        &self.path
    }

    /// The name of tensor `id`.
    pub(crate) fn name(&self, id: usize) -> &str {
        &self.names[id]
    }

    /// The names of a node's outputs (absent ones skipped).
    pub fn node_outputs(&self, node: &Node) -> Vec<&str> {
        node.outputs
            .iter()
            .flatten()
            .map(|&i| self.name(i))
            .collect()
    }

    /// The names of a node's inputs (absent ones skipped).
    pub fn node_inputs(&self, node: &Node) -> Vec<&str> {
        node.inputs
            .iter()
            .flatten()
            .map(|&i| self.name(i))
            .collect()
    }

    /// Whether tensor `name` is a constant (an initializer or folded from them).
    pub fn is_constant(&self, name: &str) -> bool {
        self.ids
            .get(name)
            .is_some_and(|&i| self.constants[i].is_some())
    }

    /// The shape of constant tensor `name` (an initializer or folded), if it is one.
    pub fn constant_shape(&self, name: &str) -> Option<&[usize]> {
        let id = *self.ids.get(name)?;
        self.constants[id].as_ref().map(|v| v.shape())
    }

    /// The id of tensor `name`, or an error listing close matches.
    pub(crate) fn id(&self, name: &str) -> Result<usize> {
        self.ids
            .get(name)
            .copied()
            .ok_or_else(|| OnnxError::UnknownTensor {
                name: name.to_string(),
                close: close_matches(name, self.names.iter().map(String::as_str)),
            })
    }
}

/// Up to five names that contain `name` or that `name` contains, else share its start.
pub(crate) fn close_matches<'a>(name: &str, names: impl Iterator<Item = &'a str>) -> Vec<String> {
    let lower = name.to_lowercase();
    let mut scored: Vec<(usize, &str)> = names
        .filter_map(|n| {
            let l = n.to_lowercase();
            let common = l
                .chars()
                .zip(lower.chars())
                .take_while(|(a, b)| a == b)
                .count();
            let score = if l.contains(&lower) || lower.contains(&l) {
                1000 + common
            } else {
                common
            };
            (score >= 3).then_some((score, n))
        })
        .collect();
    scored.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(b.1)));
    scored
        .into_iter()
        .take(5)
        .map(|(_, n)| n.to_string())
        .collect()
}
