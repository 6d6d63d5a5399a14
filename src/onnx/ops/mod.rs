//! The operator registry: one table of (op_type, first opset, builder), like onnx's reference
//! evaluator; a node gets the implementation with the highest first opset at or below the
//! model's. Builders parse a node's attributes once into the operator's own struct.
//!
//! Operators by family, one small file each; `kernels` is the one place that names the crate's
//! fast convolution / pooling kernels.

mod activation;
mod conv;
mod conv_transpose;
mod einsum;
mod elementwise;
pub(crate) mod host;
mod kernels;
mod matmul;
mod norm;
mod pool;
mod reduce;
mod resize;
mod scatter;
mod shape;

use super::attrs::Attributes;
use super::error::{OpResult, op_bail};
use super::value::{Float, Ints, MAX_RANK, Value};
use burn::tensor::Tensor;

pub(crate) use crate::kernels::Activation;

/// A built operator: runs on its node's input values (`None` for an absent optional input).
pub(crate) trait Op: Send + Sync + std::fmt::Debug {
    /// The node's outputs.
    fn run(&self, inputs: &[Option<&Value>]) -> OpResult<Vec<Value>>;

    /// A faster equivalent built once at load from the node's constant inputs (`None` for
    /// those computed per pass); `None` when there is nothing to gain.
    fn specialize(&self, _constants: &[Option<&Value>]) -> Option<Box<dyn Op>> {
        None
    }

    /// This operator with a constant-mode `Pad` in front of its first input taken in (the
    /// node's inputs become `[pad input, own inputs 1..3, pad inputs 1..]`); `Err` if it
    /// cannot (the `Pad` handed back).
    fn absorb_pad(&self, pad: Box<dyn Op>) -> Result<Box<dyn Op>, Box<dyn Op>> {
        Err(pad)
    }

    /// Whether this is a constant-mode `Pad`.
    fn is_constant_pad(&self) -> bool {
        false
    }

    /// `act(output + residual)` in one kernel, the add and the rectifier in its epilogue
    /// (`Conv`, with the `Add` and `Relu` / ReLU6 `Clip` nodes that alone read its output);
    /// `None` for an operator without such an epilogue.
    fn run_with_epilogue(
        &self,
        _inputs: &[Option<&Value>],
        _residual: Option<Tensor<4>>,
        _act: Activation,
    ) -> Option<OpResult<Vec<Value>>> {
        None
    }
}

/// Builds an operator from a node's attributes; an error names an unsupported attribute value.
pub(crate) type Builder = fn(&Attributes) -> OpResult<Box<dyn Op>>;

/// One row of the registry.
pub(crate) struct OpSpec {
    /// The ONNX operator name.
    pub op_type: &'static str,
    /// The first opset whose semantics this implementation follows.
    pub since: i64,
    /// Its builder.
    pub build: Builder,
}

const fn op(op_type: &'static str, since: i64, build: Builder) -> OpSpec {
    OpSpec {
        op_type,
        since,
        build,
    }
}

/// Every operator of the default domain (`ai.onnx`) the interpreter runs.
#[rustfmt::skip]
static OPS: &[OpSpec] = &[
    // elementwise.rs
    op("Add", 7, elementwise::add), op("Sub", 7, elementwise::sub), op("Mul", 7, elementwise::mul),
    op("Div", 7, elementwise::div), op("Mod", 13, elementwise::modulo), op("Pow", 7, elementwise::pow), op("Max", 8, elementwise::max),
    op("Min", 8, elementwise::min), op("Sum", 8, elementwise::sum), op("Mean", 8, elementwise::mean),
    op("Equal", 11, elementwise::equal), op("Less", 9, elementwise::less),
    op("Greater", 9, elementwise::greater), op("Not", 1, elementwise::not),
    op("Where", 9, elementwise::where_),
    op("Sqrt", 6, elementwise::sqrt), op("Exp", 6, elementwise::exp), op("Log", 6, elementwise::log),
    op("Neg", 6, elementwise::neg), op("Abs", 6, elementwise::abs), op("Reciprocal", 6, elementwise::reciprocal),
    op("Erf", 9, elementwise::erf), op("Floor", 6, elementwise::floor), op("Ceil", 6, elementwise::ceil),
    op("Cast", 6, elementwise::cast), op("Identity", 1, elementwise::identity),
    op("Dropout", 12, elementwise::identity),
    // activation.rs
    op("Relu", 6, activation::relu), op("Sigmoid", 6, activation::sigmoid), op("Tanh", 6, activation::tanh),
    op("LeakyRelu", 6, activation::leaky_relu), op("HardSigmoid", 6, activation::hard_sigmoid),
    op("HardSwish", 14, activation::hard_swish), op("Clip", 11, activation::clip),
    op("Gelu", 20, activation::gelu), op("Elu", 6, activation::elu), op("Softplus", 1, activation::softplus),
    op("Mish", 18, activation::mish), op("PRelu", 9, activation::prelu),
    op("Softmax", 13, activation::softmax), op("LogSoftmax", 13, activation::log_softmax),
    // matmul.rs
    op("MatMul", 9, matmul::matmul), op("Gemm", 11, matmul::gemm),
    // einsum.rs
    op("Einsum", 12, einsum::einsum),
    // conv.rs
    op("Conv", 11, conv::conv),
    // conv_transpose.rs
    op("ConvTranspose", 11, conv_transpose::conv_transpose),
    // pool.rs
    op("MaxPool", 12, pool::max_pool), op("AveragePool", 11, pool::average_pool),
    op("GlobalAveragePool", 1, pool::global_average_pool), op("GlobalMaxPool", 1, pool::global_max_pool),
    // norm.rs
    op("BatchNormalization", 9, norm::batch_norm), op("LayerNormalization", 17, norm::layer_norm),
    // reduce.rs: axes are an attribute before opset 18 (ReduceSum: 13), an input from then on.
    op("ReduceMean", 1, reduce::mean_attr), op("ReduceMean", 18, reduce::mean_input),
    op("ReduceSum", 1, reduce::sum_attr), op("ReduceSum", 13, reduce::sum_input),
    op("ReduceMax", 1, reduce::max_attr), op("ReduceMax", 18, reduce::max_input),
    op("ReduceMin", 1, reduce::min_attr), op("ReduceMin", 18, reduce::min_input),
    // shape.rs
    op("Constant", 13, shape::constant), op("Shape", 1, shape::shape), op("Size", 1, shape::size),
    op("Reshape", 5, shape::reshape), op("Flatten", 11, shape::flatten),
    op("Transpose", 1, shape::transpose), op("Squeeze", 13, shape::squeeze),
    op("Unsqueeze", 13, shape::unsqueeze), op("Concat", 11, shape::concat),
    op("Gather", 11, shape::gather), op("Slice", 10, shape::slice), op("Expand", 8, shape::expand),
    op("ConstantOfShape", 9, shape::constant_of_shape), op("Range", 11, shape::range),
    op("Split", 13, shape::split_13), op("Split", 18, shape::split_18),
    op("Pad", 13, shape::pad), op("Tile", 6, shape::tile),
    // resize.rs: one implementation of versions 11 to 19 (axes, antialias: 18).
    op("Resize", 11, resize::resize),
    // scatter.rs
    op("ScatterND", 11, scatter::scatter_nd),
];

/// The lowest and highest default-domain opsets a model may import.
pub const OPSETS: std::ops::RangeInclusive<i64> = 13..=21;

/// The implementation of `op_type` for a model of opset `opset`, if any.
pub(crate) fn lookup(op_type: &str, opset: i64) -> Option<&'static OpSpec> {
    OPS.iter()
        .filter(|s| s.op_type == op_type && s.since <= opset)
        .max_by_key(|s| s.since)
}

/// The names of every supported operator, sorted, with the first opset of each version
/// where there are several (`ReduceMean (1, 18)`).
pub fn supported() -> Vec<String> {
    let mut names: Vec<&str> = OPS.iter().map(|s| s.op_type).collect();
    names.sort_unstable();
    names.dedup();
    names
        .into_iter()
        .map(|name| {
            let versions: Vec<String> = OPS
                .iter()
                .filter(|s| s.op_type == name)
                .map(|s| s.since.to_string())
                .collect();
            if versions.len() > 1 {
                format!("{name} ({})", versions.join(", "))
            } else {
                name.to_string()
            }
        })
        .collect()
}

/// Input `i`, which must be present.
pub(crate) fn input<'a>(inputs: &[Option<&'a Value>], i: usize) -> OpResult<&'a Value> {
    match inputs.get(i).copied().flatten() {
        Some(v) => Ok(v),
        None => op_bail!("input {i} is missing"),
    }
}

/// Input `i` if present.
pub(crate) fn optional<'a>(inputs: &[Option<&'a Value>], i: usize) -> Option<&'a Value> {
    inputs.get(i).copied().flatten()
}

/// Input `i` as a float tensor (integers converted).
pub(crate) fn float_input(inputs: &[Option<&Value>], i: usize) -> OpResult<Float> {
    input(inputs, i)?.to_float()
}

/// Input `i` as host integers.
pub(crate) fn ints_input<'a>(inputs: &[Option<&'a Value>], i: usize) -> OpResult<&'a Ints> {
    input(inputs, i)?.ints()
}

/// A float tensor's single value (a scalar input such as Clip's bounds).
pub(crate) fn scalar(v: &Value) -> OpResult<f32> {
    let values = match v {
        Value::Float(f) => f.to_vec(),
        Value::Int(i) => i.data.iter().map(|&x| x as f32).collect(),
    };
    match values[..] {
        [x] => Ok(x),
        _ => op_bail!("expected one value, got shape {:?}", v.shape()),
    }
}

/// A shape-preserving function of one float tensor.
pub(crate) struct FloatMap {
    name: &'static str,
    f: Box<dyn Fn(Tensor<MAX_RANK>) -> Tensor<MAX_RANK> + Send + Sync>,
}

impl std::fmt::Debug for FloatMap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name)
    }
}

impl Op for FloatMap {
    fn run(&self, inputs: &[Option<&Value>]) -> OpResult<Vec<Value>> {
        Ok(vec![Value::Float(float_input(inputs, 0)?.map(&self.f))])
    }
}

/// A boxed [`FloatMap`].
pub(crate) fn float_map(
    name: &'static str,
    f: impl Fn(Tensor<MAX_RANK>) -> Tensor<MAX_RANK> + Send + Sync + 'static,
) -> OpResult<Box<dyn Op>> {
    Ok(Box::new(FloatMap {
        name,
        f: Box::new(f),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_picks_the_highest_version_at_or_below_the_opset() {
        assert_eq!(lookup("ReduceMean", 13).unwrap().since, 1);
        assert_eq!(lookup("ReduceMean", 18).unwrap().since, 18);
        assert_eq!(lookup("ReduceMean", 21).unwrap().since, 18);
        assert!(lookup("Gelu", 19).is_none());
        assert!(lookup("NoSuchOp", 21).is_none());
        assert!(supported().contains(&"Split (13, 18)".to_string()));
    }
}
