//! Shape and layout operators. Each works on host integers (shape arithmetic) and on float
//! tensors, so the legacy exporter's Shape / Gather / Slice / Concat chains stay on the host.

use super::{Op, float_input, host, input, ints_input, optional, scalar};
use crate::onnx::attrs::{Attr, Attributes};
use crate::onnx::error::{OpError, OpResult, op_bail};
use crate::onnx::value::{Float, Ints, MAX_RANK, Value, normalize_axis, padded};
use burn::tensor::Tensor;

/// Non-negative dimensions from host integers.
fn dims(v: &Ints) -> OpResult<Vec<usize>> {
    v.data
        .iter()
        .map(|&d| usize::try_from(d).map_err(|_| OpError::new(format!("negative dimension {d}"))))
        .collect()
}

/// Reshapes either kind of value.
fn reshaped(v: &Value, shape: Vec<usize>) -> OpResult<Value> {
    Ok(match v {
        Value::Float(f) => Value::Float(f.reshape(shape)?),
        Value::Int(i) => Value::Int(Ints::new(i.data.clone(), shape)?),
    })
}

#[derive(Debug)]
struct ConstantOp(Value);

impl Op for ConstantOp {
    fn run(&self, _: &[Option<&Value>]) -> OpResult<Vec<Value>> {
        Ok(vec![self.0.clone()])
    }
}

pub(super) fn constant(a: &Attributes) -> OpResult<Box<dyn Op>> {
    let value = match (
        a.get("value"),
        a.get("value_float"),
        a.get("value_floats"),
        a.get("value_int"),
        a.get("value_ints"),
    ) {
        (Some(Attr::Tensor(t)), ..) => (**t).clone(),
        (_, Some(Attr::Float(f)), ..) => Value::Float(Float::from_vec(vec![*f], vec![])?),
        (_, _, Some(Attr::Floats(f)), ..) => {
            Value::Float(Float::from_vec(f.clone(), vec![f.len()])?)
        }
        (_, _, _, Some(Attr::Int(i)), _) => Value::Int(Ints::scalar(*i)),
        (_, _, _, _, Some(Attr::Ints(i))) => Value::Int(Ints::vector(i.clone())),
        _ => op_bail!(
            "Constant without a supported value attribute ({:?})",
            a.names().collect::<Vec<_>>()
        ),
    };
    Ok(Box::new(ConstantOp(value)))
}

#[derive(Debug)]
struct ShapeOp {
    start: i64,
    end: Option<i64>,
}

impl Op for ShapeOp {
    fn run(&self, inputs: &[Option<&Value>]) -> OpResult<Vec<Value>> {
        let shape = input(inputs, 0)?.shape();
        let r = shape.len() as i64;
        let clamp = |v: i64| (if v < 0 { v + r } else { v }).clamp(0, r) as usize;
        let (s, e) = (clamp(self.start), clamp(self.end.unwrap_or(r)));
        let dims = shape[s..e.max(s)].iter().map(|&d| d as i64).collect();
        Ok(vec![Value::Int(Ints::vector(dims))])
    }
}

pub(super) fn shape(a: &Attributes) -> OpResult<Box<dyn Op>> {
    Ok(Box::new(ShapeOp {
        start: a.int_or("start", 0)?,
        end: a.int("end")?,
    }))
}

#[derive(Debug)]
struct SizeOp;

impl Op for SizeOp {
    fn run(&self, inputs: &[Option<&Value>]) -> OpResult<Vec<Value>> {
        let n: usize = input(inputs, 0)?.shape().iter().product();
        Ok(vec![Value::Int(Ints::scalar(n as i64))])
    }
}

pub(super) fn size(_: &Attributes) -> OpResult<Box<dyn Op>> {
    Ok(Box::new(SizeOp))
}

#[derive(Debug)]
struct ReshapeOp {
    allowzero: bool,
}

impl Op for ReshapeOp {
    fn run(&self, inputs: &[Option<&Value>]) -> OpResult<Vec<Value>> {
        let x = input(inputs, 0)?;
        let target = ints_input(inputs, 1)?;
        let from = x.shape();
        let mut shape = Vec::with_capacity(target.data.len());
        let mut infer = None;
        for (i, &d) in target.data.iter().enumerate() {
            shape.push(match d {
                0 if !self.allowzero => *from
                    .get(i)
                    .ok_or_else(|| OpError::new(format!("Reshape: 0 at axis {i} of {from:?}")))?,
                -1 if infer.is_none() => {
                    infer = Some(i);
                    1
                }
                d if d >= 0 => d as usize,
                _ => op_bail!("Reshape to {:?}", target.data),
            });
        }
        let total: usize = from.iter().product();
        if let Some(i) = infer {
            let known: usize = shape.iter().product();
            if known == 0 || !total.is_multiple_of(known) {
                op_bail!("cannot reshape {from:?} to {:?}", target.data);
            }
            shape[i] = total / known;
        }
        Ok(vec![reshaped(x, shape)?])
    }
}

pub(super) fn reshape(a: &Attributes) -> OpResult<Box<dyn Op>> {
    Ok(Box::new(ReshapeOp {
        allowzero: a.int_or("allowzero", 0)? != 0,
    }))
}

#[derive(Debug)]
struct FlattenOp {
    axis: i64,
}

impl Op for FlattenOp {
    fn run(&self, inputs: &[Option<&Value>]) -> OpResult<Vec<Value>> {
        let x = input(inputs, 0)?;
        let s = x.shape();
        let axis = if self.axis == s.len() as i64 {
            s.len()
        } else {
            normalize_axis(self.axis, s.len())?
        };
        let shape = vec![s[..axis].iter().product(), s[axis..].iter().product()];
        Ok(vec![reshaped(x, shape)?])
    }
}

pub(super) fn flatten(a: &Attributes) -> OpResult<Box<dyn Op>> {
    Ok(Box::new(FlattenOp {
        axis: a.int_or("axis", 1)?,
    }))
}

#[derive(Debug)]
struct TransposeOp {
    perm: Option<Vec<i64>>,
}

impl Op for TransposeOp {
    fn run(&self, inputs: &[Option<&Value>]) -> OpResult<Vec<Value>> {
        let x = input(inputs, 0)?;
        let rank = x.shape().len();
        let perm: Vec<usize> = match &self.perm {
            Some(p) => p
                .iter()
                .map(|&a| normalize_axis(a, rank))
                .collect::<OpResult<_>>()?,
            None => (0..rank).rev().collect(),
        };
        let mut sorted = perm.clone();
        sorted.sort_unstable();
        if sorted != (0..rank).collect::<Vec<_>>() {
            op_bail!("perm {perm:?} is not a permutation of {rank} axes");
        }
        Ok(vec![match x {
            Value::Int(i) => Value::Int(host::transpose(i, &perm)?),
            Value::Float(f) => {
                let off = MAX_RANK - rank;
                let mut axes: [usize; MAX_RANK] = std::array::from_fn(|i| i);
                for (i, &p) in perm.iter().enumerate() {
                    axes[off + i] = off + p;
                }
                let shape = perm.iter().map(|&p| f.shape()[p]).collect();
                Value::Float(Float::wrap(f.padded().clone().permute(axes), shape))
            }
        }])
    }
}

pub(super) fn transpose(a: &Attributes) -> OpResult<Box<dyn Op>> {
    Ok(Box::new(TransposeOp {
        perm: a.ints("perm")?,
    }))
}

/// `Squeeze` (axes an optional input, opset 13).
#[derive(Debug)]
struct SqueezeOp;

impl Op for SqueezeOp {
    fn run(&self, inputs: &[Option<&Value>]) -> OpResult<Vec<Value>> {
        let x = input(inputs, 0)?;
        let s = x.shape();
        let axes: Vec<usize> = match optional(inputs, 1) {
            Some(a) => a
                .ints()?
                .data
                .iter()
                .map(|&v| normalize_axis(v, s.len()))
                .collect::<OpResult<_>>()?,
            None => (0..s.len()).filter(|&i| s[i] == 1).collect(),
        };
        if let Some(&a) = axes.iter().find(|&&a| s[a] != 1) {
            op_bail!("cannot squeeze axis {a} of {s:?}");
        }
        let shape = (0..s.len())
            .filter(|i| !axes.contains(i))
            .map(|i| s[i])
            .collect();
        Ok(vec![reshaped(x, shape)?])
    }
}

pub(super) fn squeeze(_: &Attributes) -> OpResult<Box<dyn Op>> {
    Ok(Box::new(SqueezeOp))
}

/// `Unsqueeze` (axes an input, opset 13).
#[derive(Debug)]
struct UnsqueezeOp;

impl Op for UnsqueezeOp {
    fn run(&self, inputs: &[Option<&Value>]) -> OpResult<Vec<Value>> {
        let x = input(inputs, 0)?;
        let axes = &ints_input(inputs, 1)?.data;
        let rank = x.shape().len() + axes.len();
        let mut axes: Vec<usize> = axes
            .iter()
            .map(|&a| normalize_axis(a, rank))
            .collect::<OpResult<_>>()?;
        axes.sort_unstable();
        let mut shape = x.shape().to_vec();
        for a in axes {
            shape.insert(a, 1);
        }
        Ok(vec![reshaped(x, shape)?])
    }
}

pub(super) fn unsqueeze(_: &Attributes) -> OpResult<Box<dyn Op>> {
    Ok(Box::new(UnsqueezeOp))
}

/// Concatenation of floats along a logical axis.
fn cat_floats(parts: Vec<Float>, axis: usize) -> OpResult<Float> {
    let first = parts[0].shape().to_vec();
    let mut shape = first.clone();
    shape[axis] = 0;
    for p in &parts {
        if p.rank() != first.len()
            || (0..first.len()).any(|i| i != axis && p.shape()[i] != first[i])
        {
            op_bail!(
                "cannot concatenate {first:?} and {:?} on axis {axis}",
                p.shape()
            );
        }
        shape[axis] += p.shape()[axis];
    }
    let d = parts[0].padded_axis(axis);
    let t = Tensor::cat(parts.into_iter().map(Float::into_padded).collect(), d);
    Ok(Float::wrap(t, shape))
}

#[derive(Debug)]
struct ConcatOp {
    axis: i64,
}

impl Op for ConcatOp {
    fn run(&self, inputs: &[Option<&Value>]) -> OpResult<Vec<Value>> {
        let parts: Vec<&Value> = (0..inputs.len())
            .map(|i| input(inputs, i))
            .collect::<OpResult<_>>()?;
        let rank = parts[0].shape().len();
        let axis = normalize_axis(self.axis, rank)?;
        if parts.iter().all(|p| matches!(p, Value::Int(_))) {
            let ints: Vec<&Ints> = parts.iter().map(|p| p.ints()).collect::<OpResult<_>>()?;
            return Ok(vec![Value::Int(host::concat(&ints, axis)?)]);
        }
        // Empty parts (a shape with no elements) are skipped, as numpy does.
        let floats: Vec<Float> = parts
            .iter()
            .map(|p| p.to_float())
            .collect::<OpResult<Vec<_>>>()?;
        let floats: Vec<Float> = floats.into_iter().filter(|f| !f.is_empty()).collect();
        if floats.is_empty() {
            op_bail!("Concat of empty tensors");
        }
        Ok(vec![Value::Float(cat_floats(floats, axis)?)])
    }
}

pub(super) fn concat(a: &Attributes) -> OpResult<Box<dyn Op>> {
    Ok(Box::new(ConcatOp {
        axis: a
            .int("axis")?
            .ok_or_else(|| OpError::new("Concat without axis"))?,
    }))
}

#[derive(Debug)]
struct GatherOp {
    axis: i64,
}

impl Op for GatherOp {
    fn run(&self, inputs: &[Option<&Value>]) -> OpResult<Vec<Value>> {
        let x = input(inputs, 0)?;
        let indices = ints_input(inputs, 1)?;
        let s = x.shape();
        let axis = normalize_axis(self.axis, s.len())?;
        let n = s[axis] as i64;
        let idx: Vec<usize> = indices
            .data
            .iter()
            .map(|&i| {
                let j = if i < 0 { i + n } else { i };
                if (0..n).contains(&j) {
                    Ok(j as usize)
                } else {
                    op_bail!("index {i} out of range for {n}")
                }
            })
            .collect::<OpResult<_>>()?;
        Ok(vec![match x {
            Value::Int(i) => Value::Int(host::gather(i, axis, &idx, &indices.shape)?),
            Value::Float(f) => {
                let picked = Ints::vector(idx.iter().map(|&i| i as i64).collect());
                let t = f
                    .padded()
                    .clone()
                    .select(f.padded_axis(axis), picked.to_index_tensor());
                let mut flat = s.to_vec();
                flat[axis] = idx.len();
                let shape = [&s[..axis], &indices.shape[..], &s[axis + 1..]].concat();
                Value::Float(Float::wrap(t, flat).reshape(shape)?)
            }
        }])
    }
}

pub(super) fn gather(a: &Attributes) -> OpResult<Box<dyn Op>> {
    Ok(Box::new(GatherOp {
        axis: a.int_or("axis", 0)?,
    }))
}

/// The positions `Slice` picks along an axis of length `n`.
fn slice_positions(n: usize, start: i64, end: i64, step: i64) -> OpResult<Vec<usize>> {
    if step == 0 {
        op_bail!("Slice step 0");
    }
    let n = n as i64;
    let norm = |v: i64| if v < 0 { v + n } else { v };
    let (s, e) = (norm(start), norm(end));
    Ok(if step > 0 {
        let (s, e) = (s.clamp(0, n), e.clamp(0, n));
        (s..e).step_by(step as usize).map(|v| v as usize).collect()
    } else {
        let (s, e) = (s.clamp(-1, n - 1), e.clamp(-1, n - 1));
        let mut out = vec![];
        let mut v = s;
        while v > e {
            out.push(v as usize);
            v += step;
        }
        out
    })
}

#[derive(Debug)]
struct SliceOp;

impl Op for SliceOp {
    fn run(&self, inputs: &[Option<&Value>]) -> OpResult<Vec<Value>> {
        let x = input(inputs, 0)?;
        let s = x.shape().to_vec();
        let starts = &ints_input(inputs, 1)?.data;
        let ends = &ints_input(inputs, 2)?.data;
        let axes: Vec<usize> = match optional(inputs, 3) {
            Some(a) => a
                .ints()?
                .data
                .iter()
                .map(|&v| normalize_axis(v, s.len()))
                .collect::<OpResult<_>>()?,
            None => (0..starts.len()).collect(),
        };
        let steps = match optional(inputs, 4) {
            Some(v) => v.ints()?.data.clone(),
            None => vec![1; starts.len()],
        };
        if ends.len() != starts.len() || axes.len() != starts.len() || steps.len() != starts.len() {
            op_bail!("Slice: starts, ends, axes and steps differ in length");
        }
        let ranges: Vec<(usize, Vec<usize>)> = (0..axes.len())
            .map(|i| {
                Ok((
                    axes[i],
                    slice_positions(s[axes[i]], starts[i], ends[i], steps[i])?,
                ))
            })
            .collect::<OpResult<_>>()?;
        Ok(vec![match x {
            Value::Int(i) => Value::Int(host::slice(i, &ranges)?),
            Value::Float(f) => {
                let mut t = f.padded().clone();
                let mut shape = s.clone();
                for (axis, pos) in &ranges {
                    let d = f.padded_axis(*axis);
                    let contiguous = pos.windows(2).all(|w| w[1] == w[0] + 1);
                    t = match (pos.first(), contiguous) {
                        (Some(&first), true) => t.narrow(d, first, pos.len()),
                        _ if pos.is_empty() => {
                            op_bail!("Slice to an empty tensor is not supported")
                        }
                        _ => t.select(
                            d,
                            Ints::vector(pos.iter().map(|&p| p as i64).collect()).to_index_tensor(),
                        ),
                    };
                    shape[*axis] = pos.len();
                }
                Value::Float(Float::wrap(t, shape))
            }
        }])
    }
}

pub(super) fn slice(_: &Attributes) -> OpResult<Box<dyn Op>> {
    Ok(Box::new(SliceOp))
}

#[derive(Debug)]
struct ExpandOp;

impl Op for ExpandOp {
    fn run(&self, inputs: &[Option<&Value>]) -> OpResult<Vec<Value>> {
        let x = input(inputs, 0)?;
        let target = dims(ints_input(inputs, 1)?)?;
        Ok(vec![match x {
            Value::Int(i) => Value::Int(host::expand(i, &target)?),
            Value::Float(f) => {
                let shape = crate::onnx::value::broadcast_shape(f.shape(), &target)?;
                Value::Float(Float::wrap(
                    f.padded().clone().expand(padded(&shape)?),
                    shape,
                ))
            }
        }])
    }
}

pub(super) fn expand(_: &Attributes) -> OpResult<Box<dyn Op>> {
    Ok(Box::new(ExpandOp))
}

#[derive(Debug)]
struct ConstantOfShapeOp(Value);

impl Op for ConstantOfShapeOp {
    fn run(&self, inputs: &[Option<&Value>]) -> OpResult<Vec<Value>> {
        let shape = dims(ints_input(inputs, 0)?)?;
        let n: usize = shape.iter().product();
        Ok(vec![match &self.0 {
            Value::Int(i) => Value::Int(Ints::new(vec![i.data[0]; n], shape)?),
            Value::Float(f) => Value::Float(Float::from_vec(vec![f.to_vec()[0]; n], shape)?),
        }])
    }
}

pub(super) fn constant_of_shape(a: &Attributes) -> OpResult<Box<dyn Op>> {
    let value = match a.get("value") {
        Some(Attr::Tensor(v)) if v.shape().iter().product::<usize>() == 1 => (**v).clone(),
        None => Value::Float(Float::from_vec(vec![0.0], vec![1])?),
        Some(other) => op_bail!("ConstantOfShape value {other:?}"),
    };
    Ok(Box::new(ConstantOfShapeOp(value)))
}

#[derive(Debug)]
struct RangeOp;

impl Op for RangeOp {
    fn run(&self, inputs: &[Option<&Value>]) -> OpResult<Vec<Value>> {
        let (s, l, d) = (input(inputs, 0)?, input(inputs, 1)?, input(inputs, 2)?);
        if let (Value::Int(s), Value::Int(l), Value::Int(d)) = (s, l, d) {
            let (s, l, d) = (s.data[0], l.data[0], d.data[0]);
            if d == 0 {
                op_bail!("Range delta 0");
            }
            let n = ((l - s) as f64 / d as f64).ceil().max(0.0) as i64;
            return Ok(vec![Value::Int(Ints::vector(
                (0..n).map(|i| s + i * d).collect(),
            ))]);
        }
        let (s, l, d) = (scalar(s)?, scalar(l)?, scalar(d)?);
        let n = ((l - s) / d).ceil().max(0.0) as usize;
        Ok(vec![Value::Float(Float::from_vec(
            (0..n).map(|i| s + i as f32 * d).collect(),
            vec![n],
        )?)])
    }
}

pub(super) fn range(_: &Attributes) -> OpResult<Box<dyn Op>> {
    Ok(Box::new(RangeOp))
}

#[derive(Debug)]
struct SplitOp {
    axis: i64,
    outputs: usize,
    /// Sizes from the `split` attribute (opset 13 has it as an input instead).
    sizes: Option<Vec<i64>>,
}

impl Op for SplitOp {
    fn run(&self, inputs: &[Option<&Value>]) -> OpResult<Vec<Value>> {
        let x = float_input(inputs, 0)?;
        let axis = x.axis(self.axis)?;
        let n = x.shape()[axis];
        let sizes: Vec<usize> = match (optional(inputs, 1), &self.sizes) {
            (Some(v), _) => dims(v.ints()?)?,
            (None, Some(s)) => s.iter().map(|&v| v as usize).collect(),
            // Equal parts, the last one smaller when they do not divide (opset 18).
            (None, None) => {
                let part = n.div_ceil(self.outputs.max(1));
                (0..self.outputs)
                    .map(|i| part.min(n.saturating_sub(i * part)))
                    .collect()
            }
        };
        if sizes.iter().sum::<usize>() != n {
            op_bail!("Split sizes {sizes:?} do not add up to {n}");
        }
        let d = x.padded_axis(axis);
        let mut start = 0;
        let mut out = vec![];
        for len in sizes {
            let mut shape = x.shape().to_vec();
            shape[axis] = len;
            out.push(Value::Float(Float::wrap(
                x.padded().clone().narrow(d, start, len),
                shape,
            )));
            start += len;
        }
        Ok(out)
    }
}

pub(super) fn split_13(a: &Attributes) -> OpResult<Box<dyn Op>> {
    Ok(Box::new(SplitOp {
        axis: a.int_or("axis", 0)?,
        outputs: a.outputs(),
        sizes: a.ints("split")?,
    }))
}

pub(super) fn split_18(a: &Attributes) -> OpResult<Box<dyn Op>> {
    let outputs = a.int("num_outputs")?.map_or(a.outputs(), |n| n as usize);
    Ok(Box::new(SplitOp {
        axis: a.int_or("axis", 0)?,
        outputs,
        sizes: None,
    }))
}

/// `Pad` of a float tensor: constant, reflect or edge; negative pads crop.
#[derive(Debug)]
struct PadOp {
    mode: PadMode,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum PadMode {
    Constant,
    Reflect,
    Edge,
}

impl Op for PadOp {
    fn is_constant_pad(&self) -> bool {
        self.mode == PadMode::Constant
    }

    fn run(&self, inputs: &[Option<&Value>]) -> OpResult<Vec<Value>> {
        let x = float_input(inputs, 0)?;
        let rank = x.rank();
        let pads = &ints_input(inputs, 1)?.data;
        let value = optional(inputs, 2).map(scalar).transpose()?.unwrap_or(0.0);
        let axes: Vec<usize> = match optional(inputs, 3) {
            Some(a) => a
                .ints()?
                .data
                .iter()
                .map(|&v| normalize_axis(v, rank))
                .collect::<OpResult<_>>()?,
            None => (0..rank).collect(),
        };
        if pads.len() != 2 * axes.len() {
            op_bail!("Pad: {} pads for {} axes", pads.len(), axes.len());
        }
        let mut t = x.padded().clone();
        let mut shape = x.shape().to_vec();
        for (k, &axis) in axes.iter().enumerate() {
            let (begin, end) = (pads[k], pads[k + axes.len()]);
            if begin == 0 && end == 0 {
                continue;
            }
            let d = x.padded_axis(axis);
            let n = shape[axis] as i64;
            if n + begin + end < 0 {
                op_bail!("Pad crops axis {axis} of {:?} below zero", x.shape());
            }
            // Crop first (negative pads), then add.
            let (cb, ce) = ((-begin).max(0), (-end).max(0));
            if cb + ce > 0 {
                t = t.narrow(d, cb as usize, (n - cb - ce) as usize);
            }
            let n = (n - cb - ce) as usize;
            let (b, e) = (begin.max(0) as usize, end.max(0) as usize);
            t = match self.mode {
                PadMode::Constant => {
                    let mut parts = vec![];
                    let side = |len: usize| {
                        let mut dims = t.dims();
                        dims[d] = len;
                        Tensor::<MAX_RANK>::full(dims, value, &t.device())
                    };
                    if b > 0 {
                        parts.push(side(b));
                    }
                    let after = (e > 0).then(|| side(e));
                    parts.push(t.clone());
                    parts.extend(after);
                    Tensor::cat(parts, d)
                }
                mode => {
                    let index = |i: i64| -> OpResult<i64> {
                        let last = n as i64 - 1;
                        Ok(match mode {
                            PadMode::Edge => i.clamp(0, last),
                            _ if n < 2 || i < -last || i > 2 * last => {
                                op_bail!("reflect padding wider than the axis")
                            }
                            _ if i < 0 => -i,
                            _ if i > last => 2 * last - i,
                            _ => i,
                        })
                    };
                    let idx = (-(b as i64)..(n + e) as i64)
                        .map(index)
                        .collect::<OpResult<Vec<_>>>()?;
                    t.select(d, Ints::vector(idx).to_index_tensor())
                }
            };
            shape[axis] = n + b + e;
        }
        Ok(vec![Value::Float(Float::wrap(t, shape))])
    }
}

pub(super) fn pad(a: &Attributes) -> OpResult<Box<dyn Op>> {
    let mode = match a.string_or("mode", "constant")?.as_str() {
        "constant" => PadMode::Constant,
        "reflect" => PadMode::Reflect,
        "edge" => PadMode::Edge,
        other => op_bail!("Pad mode `{other}` is not supported"),
    };
    Ok(Box::new(PadOp { mode }))
}

#[derive(Debug)]
struct TileOp;

impl Op for TileOp {
    fn run(&self, inputs: &[Option<&Value>]) -> OpResult<Vec<Value>> {
        let x = float_input(inputs, 0)?;
        let repeats = dims(ints_input(inputs, 1)?)?;
        if repeats.len() != x.rank() {
            op_bail!("Tile: {} repeats for rank {}", repeats.len(), x.rank());
        }
        let mut t = x.padded().clone();
        let mut shape = x.shape().to_vec();
        for (axis, &r) in repeats.iter().enumerate() {
            if r != 1 {
                t = t.repeat_dim(x.padded_axis(axis), r);
                shape[axis] *= r;
            }
        }
        Ok(vec![Value::Float(Float::wrap(t, shape))])
    }
}

pub(super) fn tile(_: &Attributes) -> OpResult<Box<dyn Op>> {
    Ok(Box::new(TileOp))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slice_positions_follow_onnx() {
        assert_eq!(slice_positions(5, 1, 100, 1).unwrap(), [1, 2, 3, 4]);
        assert_eq!(slice_positions(5, -2, i64::MAX, 1).unwrap(), [3, 4]);
        assert_eq!(slice_positions(5, -1, i64::MIN, -2).unwrap(), [4, 2, 0]);
        assert_eq!(slice_positions(5, 0, 5, 2).unwrap(), [0, 2, 4]);
        assert!(slice_positions(5, 0, 5, 0).is_err());
    }
}
