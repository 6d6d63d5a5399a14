//! Batch normalisation (inference) and layer normalisation.

use super::{Op, float_input, optional};
use crate::onnx::attrs::Attributes;
use crate::onnx::error::{OpResult, op_bail};
use crate::onnx::value::{Float, Value};

/// `(x - mean) / sqrt(var + eps) * scale + bias` per channel (axis 1), with running statistics.
#[derive(Debug)]
struct BatchNormOp {
    epsilon: f32,
}

impl Op for BatchNormOp {
    fn run(&self, inputs: &[Option<&Value>]) -> OpResult<Vec<Value>> {
        let x = float_input(inputs, 0)?;
        if x.rank() < 2 {
            op_bail!("BatchNormalization needs (N, C, ...), got {:?}", x.shape());
        }
        let c = x.shape()[1];
        // Per-channel values shaped (C, 1, ...) so that they broadcast against (N, C, ...).
        let mut shape = vec![c];
        shape.resize(x.rank() - 1, 1);
        let per_channel = |i: usize| -> OpResult<Float> {
            let v = float_input(inputs, i)?;
            if v.len() != c {
                op_bail!("input {i} has {} values for {c} channels", v.len());
            }
            v.reshape(shape.clone())
        };
        let (scale, bias, mean, var) = (
            per_channel(1)?,
            per_channel(2)?,
            per_channel(3)?,
            per_channel(4)?,
        );
        let a = scale.into_padded() / (var.into_padded() + self.epsilon).sqrt();
        let b = bias.into_padded() - mean.into_padded() * a.clone();
        let y = x.padded().clone() * a + b;
        Ok(vec![Value::Float(Float::wrap(y, x.shape().to_vec()))])
    }
}

pub(super) fn batch_norm(a: &Attributes) -> OpResult<Box<dyn Op>> {
    if a.int_or("training_mode", 0)? != 0 {
        op_bail!("BatchNormalization in training mode is not supported");
    }
    Ok(Box::new(BatchNormOp {
        epsilon: a.float_or("epsilon", 1e-5)?,
    }))
}

/// Normalises over the axes from `axis` to the last, then scales and shifts.
#[derive(Debug)]
struct LayerNormOp {
    axis: i64,
    epsilon: f32,
}

impl Op for LayerNormOp {
    fn run(&self, inputs: &[Option<&Value>]) -> OpResult<Vec<Value>> {
        let x = float_input(inputs, 0)?;
        let axis = x.axis(self.axis)?;
        let outer = x.shape()[..axis].to_vec();
        let inner: usize = x.shape()[axis..].iter().product();
        let mut flat_shape = outer.clone();
        flat_shape.push(inner);
        let flat = x.reshape(flat_shape.clone())?;
        let last = flat.padded_axis(flat.rank() - 1);
        let t = flat.into_padded();
        let centered = t.clone() - t.mean_dim(last);
        let var = (centered.clone() * centered.clone()).mean_dim(last);
        let normed = Float::wrap(centered / (var + self.epsilon).sqrt(), flat_shape)
            .reshape(x.shape().to_vec())?;
        let mut y = normed.into_padded() * float_input(inputs, 1)?.into_padded();
        if let Some(b) = optional(inputs, 2) {
            y = y + b.to_float()?.into_padded();
        }
        Ok(vec![Value::Float(Float::wrap(y, x.shape().to_vec()))])
    }
}

pub(super) fn layer_norm(a: &Attributes) -> OpResult<Box<dyn Op>> {
    Ok(Box::new(LayerNormOp {
        axis: a.int_or("axis", -1)?,
        epsilon: a.float_or("epsilon", 1e-5)?,
    }))
}
