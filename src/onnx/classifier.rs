//! Recognising a global-average-pooling + linear head in a graph, for Zhou et al.'s CAM: the
//! layer's only reader averages it over the spatial axes, reshapes that to `(B, C)`, and one
//! `Gemm` or `MatMul` (with an optional constant bias `Add`) gives the logits.

use super::graph::{Graph, Node};
use super::value::Float;

/// `TensorProto.DataType.FLOAT`.
const FLOAT: i64 = 1;

impl Graph {
    /// The weights `[classes, channels]` of the head from 4-D tensor `layer` to output
    /// `output` when it is global average pooling (GlobalAveragePool, or ReduceMean over the
    /// spatial axes: 2 and 3, or 1 and 2 when `channel_last`), then Flatten / Reshape /
    /// Squeeze, then one linear layer with constant weights; `None` for any other head.
    pub fn linear_head(&self, layer: &str, output: &str, channel_last: bool) -> Option<Float> {
        let (mut t, end) = (*self.ids.get(layer)?, *self.ids.get(output)?);
        let mut pool = self.only_reader(t)?;
        // A float-to-float Cast or an Identity in front (the legacy exporter writes one).
        while pool.op_type == "Identity"
            || pool.op_type == "Cast" && pool.attrs.int("to").ok()? == Some(FLOAT)
        {
            t = (*pool.outputs.first()?)?;
            pool = self.only_reader(t)?;
        }
        let spatial: [i64; 2] = if channel_last { [1, 2] } else { [2, 3] };
        let pooled = match pool.op_type.as_str() {
            "GlobalAveragePool" => !channel_last,
            "ReduceMean" => {
                let axes = match pool.attrs.ints("axes").ok()? {
                    Some(a) => a,
                    None => self.constant_ints(*pool.inputs.get(1)?.as_ref()?)?,
                };
                let mut axes: Vec<i64> = axes.iter().map(|&a| (a + 4) % 4).collect();
                axes.sort_unstable();
                axes == spatial
            }
            _ => false,
        };
        if !pooled {
            return None;
        }
        t = (*pool.outputs.first()?)?;
        let weights = loop {
            let node = self.only_reader(t)?;
            let linear = match node.op_type.as_str() {
                "Flatten" if node.attrs.int_or("axis", 1).ok()? == 1 => None,
                "Reshape" | "Squeeze" | "Identity" | "Dropout" => None,
                "Gemm" | "MatMul" => Some(self.linear_weights(node, t)?),
                _ => return None,
            };
            t = (*node.outputs.first()?)?;
            if let Some(w) = linear {
                break w;
            }
        };
        // After the linear layer: a constant bias at most, up to the logits.
        while t != end {
            let node = self.only_reader(t)?;
            let other_constant = node
                .inputs
                .iter()
                .flatten()
                .all(|&i| i == t || self.constants[i].is_some());
            if !(node.op_type == "Add" && other_constant || node.op_type == "Identity") {
                return None;
            }
            t = (*node.outputs.first()?)?;
        }
        Some(weights)
    }

    /// The one runtime node that reads tensor `id`; `None` when several do, or none, or when
    /// it is also a graph output.
    fn only_reader(&self, id: usize) -> Option<&Node> {
        if self.outputs.contains(&id) {
            return None;
        }
        let mut readers = self
            .nodes
            .iter()
            .filter(|n| n.inputs.iter().flatten().any(|&i| i == id));
        let first = readers.next()?;
        readers.next().is_none().then_some(first)
    }

    /// A constant integer tensor's values.
    fn constant_ints(&self, id: usize) -> Option<Vec<i64>> {
        Some(self.constants[id].as_ref()?.ints().ok()?.data.clone())
    }

    /// `[classes, channels]` from a `Gemm` (`alpha * x @ op(B)`, `transA` unset) or a `MatMul`
    /// (`x @ B`) that reads `x` as its first input and a constant 2-D `B`.
    fn linear_weights(&self, node: &Node, x: usize) -> Option<Float> {
        if node.inputs.first().copied().flatten() != Some(x) {
            return None;
        }
        let b = self.constants[(*node.inputs.get(1)?)?]
            .as_ref()?
            .to_float()
            .ok()?;
        let &[rows, cols] = b.shape() else {
            return None;
        };
        let gemm = node.op_type == "Gemm";
        if gemm && node.attrs.int_or("transA", 0).ok()? != 0 {
            return None;
        }
        let trans_b = gemm && node.attrs.int_or("transB", 0).ok()? != 0;
        let alpha = if gemm {
            node.attrs.float_or("alpha", 1.0).ok()?
        } else {
            1.0
        };
        let values = b.to_vec();
        // B is [channels, classes] unless transB, when it is already [classes, channels].
        let (classes, channels) = if trans_b { (rows, cols) } else { (cols, rows) };
        let w: Vec<f32> = (0..classes * channels)
            .map(|i| {
                let (k, c) = (i / channels, i % channels);
                alpha
                    * if trans_b {
                        values[i]
                    } else {
                        values[c * cols + k]
                    }
            })
            .collect();
        Float::from_vec(w, vec![classes, channels]).ok()
    }
}
