//! Shape arithmetic that depends on the input (the legacy exporter's `Shape(x)` -> Gather ->
//! ... -> Pad chains, with a dynamic batch) cannot be folded at load; it depends only on the
//! shapes of the values a run starts from, so its results are kept per starting shapes and
//! reused: the second pass at a given input size runs none of it.

use super::graph::Node;
use super::value::Value;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// What a run starts from: each seeded tensor's id and shape (and values, for integers).
pub(crate) type Key = Vec<(usize, Vec<usize>, Option<Vec<i64>>)>;

/// Values of shape-only nodes, per starting key.
#[derive(Debug, Default)]
pub(crate) struct ShapeCache {
    entries: Mutex<HashMap<Key, Arc<HashMap<usize, Value>>>>,
}

/// Distinct starting shapes kept before the cache starts over.
const CAPACITY: usize = 32;

impl ShapeCache {
    /// The cached values for `key`, if a run from it has completed.
    pub(crate) fn get(&self, key: &Key) -> Option<Arc<HashMap<usize, Value>>> {
        self.entries.lock().ok()?.get(key).cloned()
    }

    /// Keeps the shape-only values of a completed run.
    pub(crate) fn insert(&self, key: Key, values: HashMap<usize, Value>) {
        if let Ok(mut entries) = self.entries.lock() {
            if entries.len() >= CAPACITY {
                entries.clear();
            }
            entries.insert(key, Arc::new(values));
        }
    }
}

/// The key of an environment about to run.
pub(crate) fn key(env: &[Option<Value>]) -> Key {
    env.iter()
        .enumerate()
        .filter_map(|(id, v)| {
            v.as_ref().map(|v| {
                let ints = match v {
                    Value::Int(i) => Some(i.data.clone()),
                    Value::Float(_) => None,
                };
                (id, v.shape().to_vec(), ints)
            })
        })
        .collect()
}

/// Which runtime nodes compute only from shapes: `Shape` and `Size`, and nodes whose inputs
/// are all constants or outputs of such nodes.
pub(crate) fn shape_only_nodes(nodes: &[Node], constant: &[bool]) -> Vec<bool> {
    let mut shape_only_tensor = constant.to_vec();
    nodes
        .iter()
        .map(|n| {
            let only = matches!(n.op_type.as_str(), "Shape" | "Size")
                || n.inputs.iter().flatten().all(|&id| shape_only_tensor[id]);
            if only {
                for &id in n.outputs.iter().flatten() {
                    shape_only_tensor[id] = true;
                }
            }
            only
        })
        .collect()
}
