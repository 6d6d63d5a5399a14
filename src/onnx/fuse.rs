//! Rewrites at load that save work per pass without changing results: a constant `Pad` whose
//! only reader is a convolution becomes the convolution's own padding (the legacy exporter's
//! TF "SAME" padding puts one before each of Lite0's convolutions).

use super::graph::Node;

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
