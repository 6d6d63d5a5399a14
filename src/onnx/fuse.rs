//! Rewrites at load that save work per pass without changing results: a constant `Pad` whose
//! only reader is a convolution becomes the convolution's own padding (the legacy exporter's
//! TF "SAME" padding puts one before each of Lite0's convolutions), and an `Add` of a
//! convolution's output and another tensor, with the `Relu` after it, goes into the
//! convolution's epilogue (a ResNet block's sum). The tensors fused away (the padded input,
//! the convolution's output and the sum before its ReLU) are no longer layers to cut at.

use super::error::{OpResult, op_bail};
use super::graph::Node;
use super::ops::{Op, ResidualAdd};
use super::value::Value;

/// Fuses `Pad -> Conv` pairs in `nodes`; `outputs` are the graph's output tensor ids.
pub(crate) fn pads_into_convs(nodes: Vec<Node>, outputs: &[usize], tensors: usize) -> Vec<Node> {
    let mut readers = vec![0usize; tensors];
    for n in &nodes {
        for &id in n.inputs.iter().flatten() {
            readers[id] += 1;
        }
    }
    for &o in outputs {
        readers[o] += 1;
    }
    let mut producer = vec![None; tensors];
    for (i, n) in nodes.iter().enumerate() {
        for &id in n.outputs.iter().flatten() {
            producer[id] = Some(i);
        }
    }
    let mut slots: Vec<Option<Node>> = nodes.into_iter().map(Some).collect();
    for c in 0..slots.len() {
        let Some(Some(x)) = slots[c]
            .as_ref()
            .filter(|n| n.op_type == "Conv")
            .map(|n| n.inputs[0])
        else {
            continue;
        };
        let Some(p) = producer[x] else { continue };
        let fusable = slots[p]
            .as_ref()
            .is_some_and(|pad| pad.op_type == "Pad" && pad.op.is_constant_pad() && readers[x] == 1);
        if !fusable {
            continue;
        }
        let mut pad = slots[p].take().expect("checked");
        let conv = slots[c].as_mut().expect("checked");
        match conv.op.absorb_pad(pad.op) {
            Ok(op) => {
                conv.op = op;
                conv.inputs.resize(3, None);
                conv.inputs[0] = pad.inputs[0];
                conv.inputs.extend(pad.inputs.into_iter().skip(1));
            }
            Err(op) => {
                pad.op = op;
                slots[p] = Some(pad);
            }
        }
    }
    slots.into_iter().flatten().collect()
}

/// Fuses `Conv -> Add [-> Relu]` chains in `nodes` where the convolution's output is read by
/// the `Add` alone (and the sum by the `Relu` alone); the fused node takes the place, name and
/// metadata of the chain's last node, so that its output keeps its module scope and the other
/// operand is computed before it. `outputs` are the graph's output tensor ids.
pub(crate) fn residual_adds_into_convs(
    nodes: Vec<Node>,
    outputs: &[usize],
    tensors: usize,
) -> Vec<Node> {
    // Each tensor's reader when it has exactly one (a graph output counts as a second reader).
    let mut readers = vec![0usize; tensors];
    let mut reader = vec![None; tensors];
    for (i, n) in nodes.iter().enumerate() {
        for &id in n.inputs.iter().flatten() {
            readers[id] += 1;
            reader[id] = Some(i);
        }
    }
    for &o in outputs {
        readers[o] += 1;
    }
    let sole_reader = |id: usize| (readers[id] == 1).then_some(reader[id]).flatten();
    let mut producer = vec![None; tensors];
    for (i, n) in nodes.iter().enumerate() {
        for &id in n.outputs.iter().flatten() {
            producer[id] = Some(i);
        }
    }
    let mut slots: Vec<Option<Node>> = nodes.into_iter().map(Some).collect();
    for a in 0..slots.len() {
        let Some(add) = slots[a].as_ref().filter(|n| n.op_type == "Add") else {
            continue;
        };
        let (&[Some(first), Some(second)], &[Some(sum)]) = (&add.inputs[..], &add.outputs[..])
        else {
            continue;
        };
        let conv_of = |y: usize| {
            producer[y].filter(|&c| {
                sole_reader(y) == Some(a)
                    && slots[c].as_ref().is_some_and(|n| {
                        n.op_type == "Conv" && n.outputs.len() == 1 && n.outputs[0] == Some(y)
                    })
            })
        };
        let (c, conv_first, other) = match (conv_of(first), conv_of(second)) {
            (Some(c), _) if first != second => (c, true, second),
            (_, Some(c)) if first != second => (c, false, first),
            _ => continue,
        };
        let relu = sole_reader(sum).filter(|&r| {
            slots[r]
                .as_ref()
                .is_some_and(|n| n.op_type == "Relu" && n.inputs[..] == [Some(sum)])
        });
        // After an absorbed Pad's inputs (3 to 5), which it reads by position.
        let input = slots[c].as_ref().map_or(0, |n| n.inputs.len().max(6));
        let mut op_of = |i: usize| {
            let node = slots[i].as_mut().expect("checked");
            std::mem::replace(&mut node.op, Box::new(Placeholder))
        };
        let residual = ResidualAdd {
            input,
            conv_first,
            add: op_of(a),
            relu: relu.map(&mut op_of),
        };
        let absorbed = slots[c]
            .as_ref()
            .expect("checked")
            .op
            .absorb_residual(residual);
        let op = match absorbed {
            Ok(op) => op,
            Err(residual) => {
                slots[a].as_mut().expect("checked").op = residual.add;
                if let (Some(r), Some(op)) = (relu, residual.relu) {
                    slots[r].as_mut().expect("checked").op = op;
                }
                continue;
            }
        };
        let mut inputs = slots[c].take().expect("checked").inputs;
        inputs.resize(input, None);
        inputs.push(Some(other));
        let last = relu.unwrap_or(a);
        if relu.is_some() {
            slots[a] = None;
        }
        let fused = slots[last].as_mut().expect("checked");
        fused.op = op;
        fused.inputs = inputs;
    }
    slots.into_iter().flatten().collect()
}

/// The operator of a node being fused, for the moment it is out of its node.
#[derive(Debug)]
struct Placeholder;

impl Op for Placeholder {
    fn run(&self, _: &[Option<&Value>]) -> OpResult<Vec<Value>> {
        op_bail!("a node left half fused at load")
    }
}
