//! Rewrites that save work per pass: at load, a constant `Pad` whose only reader is a
//! convolution becomes the convolution's own padding (the legacy exporter's TF "SAME" padding
//! puts one before each of Lite0's convolutions); per plan, a convolution and the `Add` and
//! rectifier after it run as one kernel ([`epilogues`]).

use std::collections::HashSet;

use super::graph::{Graph, Node};
use super::ops::Activation;

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

/// A `Conv` and the nodes that alone read its output, run as one kernel with the add and the
/// rectifier in its epilogue (as the built-in models do): an `Add` (`residual` is its other
/// input), a `Relu` or a ReLU6 `Clip`, or an `Add` and then one of those.
#[derive(Debug, Clone)]
pub(crate) struct Epilogue {
    /// The plan steps of the group's nodes, the `Conv` first; the group runs at the last one.
    pub(crate) steps: Vec<usize>,
    /// The `Add`'s other input.
    pub(crate) residual: Option<usize>,
    pub(crate) act: Activation,
    /// The tensor the group's last node writes.
    pub(crate) output: usize,
}

/// The epilogue groups among a plan's `nodes` (graph node indices, in order) that keeps the
/// tensors in `keep`. A group forms only where each tensor inside it has that one reader in
/// the plan and is not kept, so no caller, cut layer or graph output loses a tensor.
pub(crate) fn epilogues(graph: &Graph, nodes: &[usize], keep: &HashSet<usize>) -> Vec<Epilogue> {
    let mut readers = vec![(0usize, 0usize); graph.names.len()];
    for (step, &n) in nodes.iter().enumerate() {
        for &id in graph.nodes[n].inputs.iter().flatten() {
            readers[id] = (readers[id].0 + 1, step);
        }
    }
    // The step of the one node that reads `id` (and then the node), if nothing else needs it.
    let only_reader = |id: usize, claimed: &[bool]| {
        let (count, step) = readers[id];
        (count == 1 && !keep.contains(&id) && !graph.shape_only[nodes[step]] && !claimed[step])
            .then(|| (step, &graph.nodes[nodes[step]]))
    };
    let output = |node: &Node| match node.outputs[..] {
        [Some(id)] => Some(id),
        _ => None,
    };
    let mut groups = Vec::new();
    // A node joins one group at most (an `Add` of two convolutions goes with the first).
    let mut claimed = vec![false; nodes.len()];
    for (step, &n) in nodes.iter().enumerate() {
        let conv = &graph.nodes[n];
        let Some(mut out) = output(conv).filter(|_| conv.op_type == "Conv") else {
            continue;
        };
        let mut group = Epilogue {
            steps: vec![step],
            residual: None,
            act: Activation::Identity,
            output: out,
        };
        let mut next = only_reader(out, &claimed);
        if let Some((s, add)) = next
            && add.op_type == "Add"
            && let [Some(a), Some(b)] = add.inputs[..]
            && a != b
            && let Some(add_out) = output(add)
        {
            group.steps.push(s);
            group.residual = Some(if a == out { b } else { a });
            out = add_out;
            next = only_reader(out, &claimed);
        }
        if let Some((s, node)) = next
            && let Some(act) = rectifier(graph, node)
            && let Some(act_out) = output(node)
        {
            group.steps.push(s);
            group.act = act;
            out = act_out;
        }
        if group.steps.len() > 1 {
            group.output = out;
            for &s in &group.steps {
                claimed[s] = true;
            }
            groups.push(group);
        }
    }
    groups
}

/// The rectifier a node applies: `Relu`, or `Clip` with the constant bounds 0 and 6.
fn rectifier(graph: &Graph, node: &Node) -> Option<Activation> {
    let constant = |i: usize| {
        let id = (*node.inputs.get(i)?)?;
        super::ops::scalar(graph.constants[id].as_ref()?).ok()
    };
    match node.op_type.as_str() {
        "Relu" => Some(Activation::Relu),
        "Clip"
            if node.inputs.len() == 3 && constant(1) == Some(0.0) && constant(2) == Some(6.0) =>
        {
            Some(Activation::Relu6)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::onnx::exec::Plan;
    use crate::onnx::value::{Float, Value};

    fn fixture(name: &str) -> (Graph, Float) {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/onnx");
        let graph = crate::onnx::load(dir.join(format!("{name}.legacy.onnx"))).unwrap();
        let (values, shape) = crate::io::read_npy(&dir.join(format!("{name}.input.npy"))).unwrap();
        (graph, Float::from_vec(values, shape).unwrap())
    }

    /// The op types of each group's nodes.
    fn kinds(graph: &Graph, plan_nodes: &[usize], groups: &[Epilogue]) -> Vec<Vec<String>> {
        let op = |s: &usize| graph.nodes[plan_nodes[*s]].op_type.clone();
        groups
            .iter()
            .map(|g| g.steps.iter().map(op).collect())
            .collect()
    }

    /// The graph's first output by the fused plan and node by node (as observers see it).
    fn both_runs(graph: &Graph, input: &Float, keep: &HashSet<usize>) -> [Vec<f32>; 2] {
        let nodes: Vec<usize> = (0..graph.nodes.len()).collect();
        let plan = Plan::new(graph, nodes, keep);
        let run = |observed: bool| {
            let mut env = vec![None; graph.names.len()];
            env[graph.inputs[0].id] = Some(Value::Float(input.clone()));
            match observed {
                false => plan.run(graph, &mut env).unwrap(),
                true => plan
                    .run_observed(graph, &mut env, &mut |_, _| Ok(()))
                    .unwrap(),
            }
            env[graph.outputs[0]]
                .as_ref()
                .unwrap()
                .float()
                .unwrap()
                .to_vec()
        };
        [run(false), run(true)]
    }

    fn relative_difference(a: &[f32], b: &[f32]) -> f32 {
        let scale = b.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        a.iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f32::max)
            / scale
    }

    /// ResNet's blocks (`Conv -> Relu`, `Conv -> Add -> Relu`, an `Add` of two convolutions
    /// going with the first) and a ReLU6 `Clip` form groups; the fused plan gives the logits
    /// of the node-by-node run up to the order of the bias and residual additions.
    #[test]
    fn epilogue_groups_run_as_their_nodes_do() {
        let relu = ["Conv", "Relu"].map(String::from).to_vec();
        let add_relu = ["Conv", "Add", "Relu"].map(String::from).to_vec();
        let clip = ["Conv", "Clip"].map(String::from).to_vec();
        for (name, want) in [
            (
                "resnet_like",
                vec![
                    relu.clone(),
                    relu.clone(),
                    add_relu.clone(),
                    relu.clone(),
                    add_relu,
                ],
            ),
            ("depthwise_se", vec![clip, relu]),
        ] {
            let (graph, input) = fixture(name);
            let outputs: HashSet<usize> = graph.outputs.iter().copied().collect();
            let nodes: Vec<usize> = (0..graph.nodes.len()).collect();
            assert_eq!(
                kinds(&graph, &nodes, &epilogues(&graph, &nodes, &outputs)),
                want,
                "{name}"
            );
            let [fused, unfused] = both_runs(&graph, &input, &outputs);
            let d = relative_difference(&fused, &unfused);
            println!("{name}: fused logits within {d:.1e} of the node-by-node run");
            assert!(d < 5e-7, "{name}: {d}");
        }
    }

    /// A tensor the caller keeps (a cut layer) is never fused away: the group stops at the
    /// node that writes it.
    #[test]
    fn a_kept_tensor_stays_out_of_every_group() {
        let (graph, _) = fixture("resnet_like");
        let nodes: Vec<usize> = (0..graph.nodes.len()).collect();
        let add = nodes
            .iter()
            .position(|&n| graph.nodes[n].op_type == "Add")
            .unwrap();
        let add_out = graph.nodes[add].outputs[0].unwrap();
        let mut keep: HashSet<usize> = graph.outputs.iter().copied().collect();
        keep.insert(add_out);
        let groups = epilogues(&graph, &nodes, &keep);
        assert!(groups.iter().all(|g| !g.steps.contains(&(add + 1))));
        // The Conv before it still takes the Add in, without the Relu after it.
        let with_add = groups.iter().find(|g| g.steps.contains(&add)).unwrap();
        assert_eq!(
            (with_add.output, with_add.act),
            (add_out, Activation::Identity)
        );
    }
}
