//! Reductions over axes (an attribute before opset 18, ReduceSum 13; an input from then on).

use super::{Op, float_input, optional};
use crate::onnx::attrs::Attributes;
use crate::onnx::error::OpResult;
use crate::onnx::value::{Float, Value};

#[derive(Debug, Clone, Copy)]
enum Kind {
    Mean,
    Sum,
    Max,
    Min,
}

#[derive(Debug)]
struct ReduceOp {
    kind: Kind,
    /// `Some` when the axes are an attribute.
    attr_axes: Option<Vec<i64>>,
    keepdims: bool,
    noop_with_empty_axes: bool,
}

impl Op for ReduceOp {
    fn run(&self, inputs: &[Option<&Value>]) -> OpResult<Vec<Value>> {
        let x = float_input(inputs, 0)?;
        let axes = match (&self.attr_axes, optional(inputs, 1)) {
            (Some(a), _) => a.clone(),
            (None, Some(v)) => v.ints()?.data.clone(),
            (None, None) => vec![],
        };
        if axes.is_empty() && self.noop_with_empty_axes {
            return Ok(vec![Value::Float(x)]);
        }
        let mut axes: Vec<usize> = if axes.is_empty() {
            (0..x.rank()).collect()
        } else {
            axes.iter().map(|&a| x.axis(a)).collect::<OpResult<_>>()?
        };
        axes.sort_unstable();
        axes.dedup();
        let mut t = x.padded().clone();
        let mut shape = x.shape().to_vec();
        for &a in &axes {
            let d = x.padded_axis(a);
            t = match self.kind {
                Kind::Mean => t.mean_dim(d),
                Kind::Sum => t.sum_dim(d),
                Kind::Max => t.max_dim(d),
                Kind::Min => t.min_dim(d),
            };
            shape[a] = 1;
        }
        let kept = Float::wrap(t, shape.clone());
        Ok(vec![Value::Float(if self.keepdims {
            kept
        } else {
            let squeezed = shape
                .iter()
                .enumerate()
                .filter(|(i, _)| !axes.contains(i))
                .map(|(_, &d)| d)
                .collect();
            kept.reshape(squeezed)?
        })])
    }
}

fn build(a: &Attributes, kind: Kind, axes_attr: bool) -> OpResult<Box<dyn Op>> {
    Ok(Box::new(ReduceOp {
        kind,
        attr_axes: if axes_attr {
            Some(a.ints("axes")?.unwrap_or_default())
        } else {
            None
        },
        keepdims: a.int_or("keepdims", 1)? != 0,
        noop_with_empty_axes: a.int_or("noop_with_empty_axes", 0)? != 0,
    }))
}

pub(super) fn mean_attr(a: &Attributes) -> OpResult<Box<dyn Op>> {
    build(a, Kind::Mean, true)
}
pub(super) fn mean_input(a: &Attributes) -> OpResult<Box<dyn Op>> {
    build(a, Kind::Mean, false)
}
pub(super) fn sum_attr(a: &Attributes) -> OpResult<Box<dyn Op>> {
    build(a, Kind::Sum, true)
}
pub(super) fn sum_input(a: &Attributes) -> OpResult<Box<dyn Op>> {
    build(a, Kind::Sum, false)
}
pub(super) fn max_attr(a: &Attributes) -> OpResult<Box<dyn Op>> {
    build(a, Kind::Max, true)
}
pub(super) fn max_input(a: &Attributes) -> OpResult<Box<dyn Op>> {
    build(a, Kind::Max, false)
}
pub(super) fn min_attr(a: &Attributes) -> OpResult<Box<dyn Op>> {
    build(a, Kind::Min, true)
}
pub(super) fn min_input(a: &Attributes) -> OpResult<Box<dyn Op>> {
    build(a, Kind::Min, false)
}
