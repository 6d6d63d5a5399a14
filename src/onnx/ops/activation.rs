//! Activations and softmax. `Relu` and `Clip(0, 6)` (ReLU6) go through the crate's kernels,
//! which turn guided (guided backpropagation) while a `GuidedReluGuard` is on.

use super::{Op, float_input, float_map, optional, scalar};
use crate::kernels::guided_relu;
use crate::onnx::attrs::Attributes;
use crate::onnx::error::{OpResult, op_bail};
use crate::onnx::value::{Float, Value};
use burn::tensor::activation;

pub(super) fn relu(_: &Attributes) -> OpResult<Box<dyn Op>> {
    float_map("Relu", guided_relu::relu)
}
pub(super) fn sigmoid(_: &Attributes) -> OpResult<Box<dyn Op>> {
    float_map("Sigmoid", activation::sigmoid)
}
pub(super) fn tanh(_: &Attributes) -> OpResult<Box<dyn Op>> {
    float_map("Tanh", |t| t.tanh())
}
pub(super) fn leaky_relu(a: &Attributes) -> OpResult<Box<dyn Op>> {
    let alpha = f64::from(a.float_or("alpha", 0.01)?);
    float_map("LeakyRelu", move |t| activation::leaky_relu(t, alpha))
}
pub(super) fn hard_sigmoid(a: &Attributes) -> OpResult<Box<dyn Op>> {
    let (alpha, beta) = (
        f64::from(a.float_or("alpha", 0.2)?),
        f64::from(a.float_or("beta", 0.5)?),
    );
    float_map("HardSigmoid", move |t| {
        activation::hard_sigmoid(t, alpha, beta)
    })
}
pub(super) fn hard_swish(_: &Attributes) -> OpResult<Box<dyn Op>> {
    // ONNX: x * max(0, min(1, x / 6 + 1 / 2)).
    float_map("HardSwish", |t| {
        t.clone() * activation::hard_sigmoid(t, 1.0 / 6.0, 0.5)
    })
}
pub(super) fn elu(a: &Attributes) -> OpResult<Box<dyn Op>> {
    let alpha = a.float_or("alpha", 1.0)?;
    float_map("Elu", move |t| {
        let neg = (t.clone().clamp_max(0.0).exp() - 1.0) * alpha;
        t.clamp_min(0.0) + neg
    })
}
pub(super) fn softplus(_: &Attributes) -> OpResult<Box<dyn Op>> {
    float_map("Softplus", |t| activation::softplus(t, 1.0))
}
pub(super) fn mish(_: &Attributes) -> OpResult<Box<dyn Op>> {
    float_map("Mish", activation::mish)
}

pub(super) fn gelu(a: &Attributes) -> OpResult<Box<dyn Op>> {
    match a.string_or("approximate", "none")?.as_str() {
        "none" => float_map("Gelu", activation::gelu),
        "tanh" => float_map("Gelu(tanh)", activation::gelu_approximate),
        other => op_bail!("Gelu approximate=`{other}` is not supported"),
    }
}

/// `Clip(x, min, max)` with optional scalar bounds (inputs since opset 11).
#[derive(Debug)]
struct ClipOp;

impl Op for ClipOp {
    fn run(&self, inputs: &[Option<&Value>]) -> OpResult<Vec<Value>> {
        let x = float_input(inputs, 0)?;
        let lo = optional(inputs, 1).map(scalar).transpose()?;
        let hi = optional(inputs, 2).map(scalar).transpose()?;
        Ok(vec![Value::Float(match (lo, hi) {
            (Some(0.0), Some(6.0)) => x.map(guided_relu::relu6),
            (Some(lo), Some(hi)) => x.map(|t| t.clamp(lo, hi)),
            (Some(lo), None) => x.map(|t| t.clamp_min(lo)),
            (None, Some(hi)) => x.map(|t| t.clamp_max(hi)),
            (None, None) => x,
        })])
    }
}

pub(super) fn clip(_: &Attributes) -> OpResult<Box<dyn Op>> {
    Ok(Box::new(ClipOp))
}

/// `PRelu(x, slope)`: slope broadcast against x.
#[derive(Debug)]
struct PReluOp;

impl Op for PReluOp {
    fn run(&self, inputs: &[Option<&Value>]) -> OpResult<Vec<Value>> {
        let (x, slope) = (float_input(inputs, 0)?, float_input(inputs, 1)?);
        let shape = crate::onnx::value::broadcast_shape(x.shape(), slope.shape())?;
        let t = x.padded().clone();
        let out = t.clone().clamp_min(0.0) + t.clamp_max(0.0) * slope.into_padded();
        Ok(vec![Value::Float(Float::wrap(out, shape))])
    }
}

pub(super) fn prelu(_: &Attributes) -> OpResult<Box<dyn Op>> {
    Ok(Box::new(PReluOp))
}

/// `Softmax` / `LogSoftmax` along one axis (opset 13 semantics).
#[derive(Debug)]
struct SoftmaxOp {
    axis: i64,
    log: bool,
}

impl Op for SoftmaxOp {
    fn run(&self, inputs: &[Option<&Value>]) -> OpResult<Vec<Value>> {
        let x = float_input(inputs, 0)?;
        let dim = x.padded_axis(x.axis(self.axis)?);
        Ok(vec![Value::Float(if self.log {
            x.map(|t| activation::log_softmax(t, dim))
        } else {
            x.map(|t| activation::softmax(t, dim))
        })])
    }
}

pub(super) fn softmax(a: &Attributes) -> OpResult<Box<dyn Op>> {
    Ok(Box::new(SoftmaxOp {
        axis: a.int_or("axis", -1)?,
        log: false,
    }))
}
pub(super) fn log_softmax(a: &Attributes) -> OpResult<Box<dyn Op>> {
    Ok(Box::new(SoftmaxOp {
        axis: a.int_or("axis", -1)?,
        log: true,
    }))
}
