//! `load(path) -> Graph`: the only code that sees protobuf. It decodes the model, resolves
//! initializers, `Constant` nodes and external data, checks the opset and every operator at
//! once, and folds every node whose inputs are all constant.

use super::attrs::{Attr, Attributes};
use super::error::{OnnxError, Result};
use super::exec::store;
use super::external::ExternalData;
use super::fuse;
use super::graph::{Graph, Input, Node};
use super::ops::{self, OPSETS};
use super::proto::{self, AttributeProto, ModelProto, attribute_proto::AttributeType};
use super::shape_cache;
use super::tensor_proto::decode;
use super::value::Value;
use prost::Message;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};

/// Loads and checks an ONNX model.
pub fn load(path: impl AsRef<Path>) -> Result<Graph> {
    let path = path.as_ref().to_path_buf();
    let bytes = std::fs::read(&path).map_err(|source| OnnxError::Io {
        path: path.clone(),
        source,
    })?;
    let model = ModelProto::decode(&bytes[..]).map_err(|e| OnnxError::NotOnnx {
        path: path.clone(),
        message: e.to_string(),
    })?;
    let Some(graph) = model.graph.as_ref().filter(|_| model.ir_version > 0) else {
        return Err(OnnxError::NotOnnx {
            path,
            message: "no graph or IR version".into(),
        });
    };
    let opsets = opsets(&path, &model)?;
    let opset = opsets["ai.onnx"];
    let malformed = |message: String| OnnxError::Malformed {
        path: path.clone(),
        message,
    };

    let mut b = Builder::default();
    let mut external = ExternalData::new(&path);
    for t in &graph.initializer {
        let value =
            decode(t, &mut external).map_err(|message| external_error(&path, &t.name, message))?;
        let id = b.id(&t.name);
        b.constants[id] = Some(value);
    }
    let mut inputs: Vec<Input> = vec![];
    for i in &graph.input {
        if !b.is_constant(&i.name) {
            inputs.push(Input {
                name: i.name.clone(),
                dims: dims(i),
                id: b.id(&i.name),
            });
        }
    }

    // Every output a node has that nothing reads is dropped (Dropout's mask, ...).
    let mut used: HashSet<&str> = graph
        .node
        .iter()
        .flat_map(|n| n.input.iter().map(String::as_str))
        .collect();
    used.extend(graph.output.iter().map(|o| o.name.as_str()));

    let order = topological(graph).map_err(malformed)?;
    let mut problems = vec![];
    let mut missing: BTreeMap<(String, i64), (String, usize)> = BTreeMap::new();
    let mut nodes = vec![];
    for &k in &order {
        let n = &graph.node[k];
        let name = if n.name.is_empty() {
            format!("#{k}")
        } else {
            n.name.clone()
        };
        let known_domain = n.domain.is_empty() || n.domain == "ai.onnx";
        let spec = known_domain
            .then(|| ops::lookup(&n.op_type, opset))
            .flatten();
        let Some(spec) = spec else {
            let op = if known_domain {
                n.op_type.clone()
            } else {
                format!("{}::{}", n.domain, n.op_type)
            };
            missing.entry((op, opset)).or_insert((name, 0)).1 += 1;
            continue;
        };
        let attrs = match attributes(&n.attribute, n.output.len(), &mut external) {
            Ok(a) => a,
            Err(e) => {
                problems.push(format!("node `{name}` ({}): {e}", n.op_type));
                continue;
            }
        };
        match (spec.build)(&attrs) {
            Ok(op) => nodes.push(Node {
                // A Constant's value is its output: not kept twice.
                attrs: if n.op_type == "Constant" {
                    Attributes::default()
                } else {
                    attrs
                },
                name,
                op_type: n.op_type.clone(),
                inputs: n
                    .input
                    .iter()
                    .map(|s| (!s.is_empty()).then(|| b.id(s)))
                    .collect(),
                outputs: n
                    .output
                    .iter()
                    .map(|s| (!s.is_empty() && used.contains(s.as_str())).then(|| b.id(s)))
                    .collect(),
                metadata: n
                    .metadata_props
                    .iter()
                    .map(|p| (p.key.clone(), p.value.clone()))
                    .collect(),
                op,
            }),
            Err(e) => problems.push(format!("node `{name}` ({}): {e}", n.op_type)),
        }
    }
    for ((op, opset), (first, count)) in &missing {
        problems.insert(
            0,
            format!("unsupported operator {op} (opset {opset}): {count} node(s), first `{first}`"),
        );
    }
    if !problems.is_empty() {
        return Err(OnnxError::Unsupported {
            path,
            problems,
            supported: ops::supported(),
        });
    }

    let outputs: Vec<usize> = graph.output.iter().map(|o| b.id(&o.name)).collect();
    let (runtime, folded) = fold(nodes, &mut b.constants, &b.names)?;
    let mut runtime = fuse::pads_into_convs(runtime, &outputs, b.names.len());
    for node in &mut runtime {
        let constants: Vec<Option<&Value>> = node
            .inputs
            .iter()
            .map(|id| id.and_then(|id| b.constants[id].as_ref()))
            .collect();
        if let Some(op) = node.op.specialize(&constants) {
            node.op = op;
        }
    }
    let constant: Vec<bool> = b.constants.iter().map(Option::is_some).collect();
    let shape_only = shape_cache::shape_only_nodes(&runtime, &constant);
    let mut producer = vec![None; b.names.len()];
    for (i, n) in runtime.iter().enumerate() {
        for &id in n.outputs.iter().flatten() {
            producer[id] = Some(i);
        }
    }
    let fed: HashSet<usize> = inputs.iter().map(|i| i.id).collect();
    for &o in &outputs {
        if producer[o].is_none() && b.constants[o].is_none() && !fed.contains(&o) {
            return Err(malformed(format!(
                "output `{}` is produced by no node",
                b.names[o]
            )));
        }
    }
    Ok(Graph {
        path,
        ids: b.ids,
        names: b.names,
        constants: b.constants,
        nodes: runtime,
        producer,
        inputs,
        outputs,
        opsets,
        folded,
        shape_only,
        full_plan: Default::default(),
        metadata: model
            .metadata_props
            .iter()
            .map(|p| (p.key.clone(), p.value.clone()))
            .collect(),
    })
}

/// Tensor names to ids, with a constant slot per id.
#[derive(Default)]
struct Builder {
    names: Vec<String>,
    ids: HashMap<String, usize>,
    constants: Vec<Option<Value>>,
}

impl Builder {
    fn id(&mut self, name: &str) -> usize {
        if let Some(&id) = self.ids.get(name) {
            return id;
        }
        self.names.push(name.to_string());
        self.constants.push(None);
        self.ids.insert(name.to_string(), self.names.len() - 1);
        self.names.len() - 1
    }

    fn is_constant(&self, name: &str) -> bool {
        self.ids
            .get(name)
            .is_some_and(|&i| self.constants[i].is_some())
    }
}

/// The opset per domain; the default domain's must be in [`OPSETS`].
fn opsets(path: &Path, model: &ModelProto) -> Result<BTreeMap<String, i64>> {
    let mut out = BTreeMap::new();
    for o in &model.opset_import {
        let domain = if o.domain.is_empty() {
            "ai.onnx"
        } else {
            &o.domain
        };
        out.insert(domain.to_string(), o.version);
    }
    let version = *out.get("ai.onnx").unwrap_or(&0);
    if !OPSETS.contains(&version) {
        return Err(OnnxError::Opset {
            path: path.to_path_buf(),
            domain: "ai.onnx".into(),
            version,
            supported: format!("{} to {}", OPSETS.start(), OPSETS.end()),
        });
    }
    Ok(out)
}

fn external_error(path: &Path, tensor: &str, message: String) -> OnnxError {
    OnnxError::ExternalData {
        path: PathBuf::from(path),
        tensor: tensor.to_string(),
        message,
    }
}

/// An input's dimensions (`None` for a symbolic one).
fn dims(info: &proto::ValueInfoProto) -> Vec<Option<usize>> {
    use proto::tensor_shape_proto::dimension::Value as D;
    use proto::type_proto::Value as T;
    match info.r#type.as_ref().and_then(|t| t.value.as_ref()) {
        Some(T::TensorType(t)) => t
            .shape
            .as_ref()
            .map(|s| {
                s.dim
                    .iter()
                    .map(|d| match d.value {
                        Some(D::DimValue(v)) if v >= 0 => Some(v as usize),
                        _ => None,
                    })
                    .collect()
            })
            .unwrap_or_default(),
        _ => vec![],
    }
}

/// Decodes a node's attributes.
fn attributes(
    attrs: &[AttributeProto],
    outputs: usize,
    external: &mut ExternalData,
) -> std::result::Result<Attributes, String> {
    let text = |s: &[u8]| String::from_utf8_lossy(s).into_owned();
    let mut pairs = vec![];
    for a in attrs {
        let kind = AttributeType::try_from(a.r#type).unwrap_or(AttributeType::Undefined);
        let value = match kind {
            AttributeType::Float => Attr::Float(a.f),
            AttributeType::Int => Attr::Int(a.i),
            AttributeType::String => Attr::String(text(&a.s)),
            AttributeType::Tensor => {
                let t =
                    a.t.as_ref()
                        .ok_or_else(|| format!("attribute `{}` has no tensor", a.name))?;
                Attr::Tensor(Box::new(
                    decode(t, external).map_err(|e| format!("attribute `{}`: {e}", a.name))?,
                ))
            }
            AttributeType::Floats => Attr::Floats(a.floats.clone()),
            AttributeType::Ints => Attr::Ints(a.ints.clone()),
            AttributeType::Strings => Attr::Strings(a.strings.iter().map(|s| text(s)).collect()),
            other => Attr::Other(other.as_str_name()),
        };
        pairs.push((a.name.clone(), value));
    }
    Ok(Attributes::new(pairs, outputs))
}

/// Node indices in an order where every tensor is produced before it is read.
fn topological(graph: &proto::GraphProto) -> std::result::Result<Vec<usize>, String> {
    let mut producer: HashMap<&str, usize> = HashMap::new();
    for (i, n) in graph.node.iter().enumerate() {
        for o in n.output.iter().filter(|o| !o.is_empty()) {
            if producer.insert(o, i).is_some() {
                return Err(format!("tensor `{o}` is produced twice"));
            }
        }
    }
    let mut order = Vec::with_capacity(graph.node.len());
    let mut state = vec![0u8; graph.node.len()]; // 0 new, 1 on the stack, 2 done
    for start in 0..graph.node.len() {
        // Iterative depth-first search: inputs' producers before the node.
        let mut stack = vec![(start, false)];
        while let Some((i, expanded)) = stack.pop() {
            if expanded {
                state[i] = 2;
                order.push(i);
                continue;
            }
            match state[i] {
                2 => continue,
                1 => {
                    return Err(format!(
                        "the graph has a cycle through node `{}`",
                        graph.node[i].name
                    ));
                }
                _ => {}
            }
            state[i] = 1;
            stack.push((i, true));
            for inp in graph.node[i].input.iter().rev() {
                if let Some(&p) = producer.get(inp.as_str())
                    && state[p] != 2
                {
                    if state[p] == 1 {
                        return Err(format!(
                            "the graph has a cycle through node `{}`",
                            graph.node[p].name
                        ));
                    }
                    stack.push((p, false));
                }
            }
        }
    }
    Ok(order)
}

/// Runs every node whose inputs are all constant, turning its outputs into constants; returns
/// the nodes left and how many were folded.
fn fold(
    nodes: Vec<Node>,
    constants: &mut [Option<Value>],
    names: &[String],
) -> Result<(Vec<Node>, usize)> {
    let mut runtime = vec![];
    let mut folded = 0;
    for node in nodes {
        let constant = node
            .inputs
            .iter()
            .flatten()
            .all(|&id| constants[id].is_some());
        if !constant {
            runtime.push(node);
            continue;
        }
        let outputs = {
            let inputs: Vec<Option<&Value>> = node
                .inputs
                .iter()
                .map(|id| id.map(|id| constants[id].as_ref().expect("checked")))
                .collect();
            node.op.run(&inputs).map_err(|e| OnnxError::Node {
                node: node.name.clone(),
                op_type: node.op_type.clone(),
                message: e.0,
            })?
        };
        store(names, &node, outputs, constants)?;
        folded += 1;
    }
    Ok((runtime, folded))
}
