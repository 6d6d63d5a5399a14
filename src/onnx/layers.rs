//! The layers a user can cut at: every float tensor the graph computes, with its shape (from a
//! run on a zero input) and the PyTorch modules whose output it is (a module's output is the
//! last tensor produced inside its scope).

use super::error::{OnnxError, Result};
use super::graph::{Graph, close_matches};
use super::scopes;
use super::value::{Float, Value};
use std::collections::{HashMap, HashSet};

/// One tensor of the graph that a cut can be made at.
#[derive(Debug, Clone, PartialEq)]
pub struct Layer {
    /// The ONNX tensor name.
    pub tensor: String,
    /// The operator that produces it.
    pub op_type: String,
    /// The PyTorch modules whose output this tensor is, outermost first (may be empty).
    pub modules: Vec<String>,
    /// Its shape for one image.
    pub shape: Vec<usize>,
}

/// Every float tensor the graph computes per pass, in execution order. Shapes come from a run
/// on one zero image of the input's static size (`input_size` = (height, width) overrides or
/// fills in symbolic spatial dimensions).
pub fn layers(graph: &Graph, input_size: Option<[usize; 2]>) -> Result<Vec<Layer>> {
    super::split::single_input(graph)?;
    let input = &graph.inputs()[0];
    let mut dims: Vec<usize> = Vec::with_capacity(input.dims.len());
    for (i, d) in input.dims.iter().enumerate() {
        let spatial = input.dims.len() == 4 && i >= 2;
        dims.push(match (d, input_size) {
            (_, Some(size)) if spatial => size[i - 2],
            (Some(d), _) => *d,
            (None, _) if i == 0 => 1,
            (None, _) => {
                return Err(OnnxError::Invalid(format!(
                    "input `{}` has a symbolic dimension {i}; give an input size",
                    input.name
                )));
            }
        });
    }
    if let Some(first) = dims.first_mut() {
        *first = 1;
    }
    layers_at(graph, &dims)
}

/// [`layers`] with shapes from a run on one zero input of shape `dims` (batch first).
pub fn layers_at(graph: &Graph, dims: &[usize]) -> Result<Vec<Layer>> {
    super::split::single_input(graph)?;
    let input = &graph.inputs()[0];
    let zeros = Float::from_vec(vec![0.0; dims.iter().product()], dims.to_vec())
        .map_err(|e| OnnxError::Invalid(e.0))?;

    let owners = module_outputs(graph);
    let mut names = vec![];
    let mut kinds = vec![];
    for node in graph.nodes() {
        for name in graph.node_outputs(node) {
            names.push(name.to_string());
            kinds.push(node.op_type.clone());
        }
    }
    let fetch: Vec<&str> = names.iter().map(String::as_str).collect();
    let values = graph.run_with(vec![(input.name.as_str(), Value::Float(zeros))], &fetch)?;
    Ok(names
        .into_iter()
        .zip(kinds)
        .zip(values)
        .filter(|(_, v)| matches!(v, Value::Float(_)))
        .map(|((tensor, op_type), v)| Layer {
            modules: owners.get(&tensor).cloned().unwrap_or_default(),
            shape: v.shape().to_vec(),
            tensor,
            op_type,
        })
        .collect())
}

/// The tensor each module's scope produced last, inverted: tensor -> modules.
fn module_outputs(graph: &Graph) -> HashMap<String, Vec<String>> {
    let mut last: Vec<(String, String)> = vec![]; // (module, tensor), first-seen order
    let mut index: HashMap<String, usize> = HashMap::new();
    let mut seen = HashSet::new();
    for node in graph.nodes() {
        let Some(&out) = graph.node_outputs(node).first() else {
            continue;
        };
        let modules = scopes::from_metadata(node)
            .unwrap_or_else(|| scopes::from_legacy_name(&node.name, &mut seen));
        for m in modules {
            match index.get(&m) {
                Some(&i) => last[i].1 = out.to_string(),
                None => {
                    index.insert(m.clone(), last.len());
                    last.push((m, out.to_string()));
                }
            }
        }
    }
    let mut owners: HashMap<String, Vec<String>> = HashMap::new();
    for (module, tensor) in last {
        owners.entry(tensor).or_default().push(module);
    }
    owners
}

/// The tensor a user's `--layer` names: a tensor name, or a PyTorch module path.
pub fn resolve_layer<'a>(layers: &'a [Layer], name: &str) -> Result<&'a Layer> {
    layers
        .iter()
        .find(|l| l.tensor == name)
        .or_else(|| layers.iter().find(|l| l.modules.iter().any(|m| m == name)))
        .ok_or_else(|| OnnxError::UnknownTensor {
            name: name.to_string(),
            close: close_matches(
                name,
                layers.iter().flat_map(|l| {
                    l.modules
                        .iter()
                        .map(String::as_str)
                        .chain([l.tensor.as_str()])
                }),
            ),
        })
}
