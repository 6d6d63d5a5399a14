//! Elementwise arithmetic, comparisons, `Where`, `Cast`: on host integers when every input is
//! one (shape arithmetic), else on float tensors with numpy broadcasting.

use super::{Op, float_map, host, input, scalar};
use crate::onnx::attrs::Attributes;
use crate::onnx::error::{OpResult, op_bail};
use crate::onnx::value::{Float, Ints, MAX_RANK, Value, broadcast_shape};
use burn::tensor::Tensor;

/// A binary operator with an integer and a float form.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Binary {
    Add,
    Sub,
    Mul,
    Div,
    Pow,
    Max,
    Min,
    /// `Mod`: with `fmod` the sign of the dividend (C's fmod), else of the divisor (Python's %).
    Mod {
        fmod: bool,
    },
}

impl Binary {
    fn ints(self, a: i64, b: i64) -> OpResult<i64> {
        Ok(match self {
            Binary::Add => a.wrapping_add(b),
            Binary::Sub => a.wrapping_sub(b),
            Binary::Mul => a.wrapping_mul(b),
            Binary::Div if b == 0 => op_bail!("integer division by zero"),
            Binary::Div => a / b,
            Binary::Pow => a.pow(u32::try_from(b).map_err(|_| {
                crate::onnx::error::OpError::new(format!("negative integer exponent {b}"))
            })?),
            Binary::Max => a.max(b),
            Binary::Min => a.min(b),
            Binary::Mod { .. } if b == 0 => op_bail!("integer modulo by zero"),
            Binary::Mod { fmod: true } => a % b,
            Binary::Mod { fmod: false } => match a % b {
                r if r != 0 && (r < 0) != (b < 0) => r + b,
                r => r,
            },
        })
    }

    fn floats(self, a: Float, b: Float) -> OpResult<Float> {
        let shape = broadcast_shape(a.shape(), b.shape())?;
        let (x, y) = (a.into_padded(), b.clone().into_padded());
        let t: Tensor<MAX_RANK> = match self {
            Binary::Add => x + y,
            Binary::Sub => x - y,
            Binary::Mul => x * y,
            Binary::Div => x / y,
            // A constant scalar exponent (x ** 2 in LayerNorm's decomposition) as powf_scalar.
            Binary::Pow if b.len() == 1 => {
                let e = scalar(&Value::Float(b))?;
                let full = x.powf_scalar(e);
                return Ok(Float::wrap(full, shape));
            }
            Binary::Pow => x.powf(y),
            Binary::Max => x.max_pair(y),
            Binary::Min => x.min_pair(y),
            Binary::Mod { fmod } => {
                let q = x.clone() / y.clone();
                let whole = if fmod {
                    q.clone().sign() * q.abs().floor()
                } else {
                    q.floor()
                };
                x - whole * y
            }
        };
        // Broadcasting may give the padded result a shape whose leading 1s differ only.
        Ok(Float::wrap(t, shape))
    }
}

#[derive(Debug)]
struct Variadic(Binary);

impl Op for Variadic {
    fn run(&self, inputs: &[Option<&Value>]) -> OpResult<Vec<Value>> {
        let mut acc = input(inputs, 0)?.clone();
        for i in 1..inputs.len() {
            let next = input(inputs, i)?;
            acc = match (&acc, next) {
                (Value::Int(a), Value::Int(b)) => {
                    Value::Int(host::binary(a, b, |x, y| self.0.ints(x, y))?)
                }
                _ => Value::Float(self.0.floats(acc.to_float()?, next.to_float()?)?),
            };
        }
        Ok(vec![acc])
    }
}

fn binary(op: Binary) -> OpResult<Box<dyn Op>> {
    Ok(Box::new(Variadic(op)))
}

pub(super) fn add(_: &Attributes) -> OpResult<Box<dyn Op>> {
    binary(Binary::Add)
}
pub(super) fn sub(_: &Attributes) -> OpResult<Box<dyn Op>> {
    binary(Binary::Sub)
}
pub(super) fn mul(_: &Attributes) -> OpResult<Box<dyn Op>> {
    binary(Binary::Mul)
}
pub(super) fn div(_: &Attributes) -> OpResult<Box<dyn Op>> {
    binary(Binary::Div)
}
pub(super) fn pow(_: &Attributes) -> OpResult<Box<dyn Op>> {
    binary(Binary::Pow)
}
pub(super) fn max(_: &Attributes) -> OpResult<Box<dyn Op>> {
    binary(Binary::Max)
}
pub(super) fn min(_: &Attributes) -> OpResult<Box<dyn Op>> {
    binary(Binary::Min)
}
pub(super) fn modulo(a: &Attributes) -> OpResult<Box<dyn Op>> {
    binary(Binary::Mod {
        fmod: a.int_or("fmod", 0)? != 0,
    })
}
pub(super) fn sum(_: &Attributes) -> OpResult<Box<dyn Op>> {
    binary(Binary::Add)
}

/// `Mean`: the sum divided by the number of inputs.
#[derive(Debug)]
struct MeanOp;

impl Op for MeanOp {
    fn run(&self, inputs: &[Option<&Value>]) -> OpResult<Vec<Value>> {
        let total = Variadic(Binary::Add).run(inputs)?.remove(0).to_float()?;
        let n = inputs.len() as f32;
        Ok(vec![Value::Float(total.map(|t| t / n))])
    }
}

pub(super) fn mean(_: &Attributes) -> OpResult<Box<dyn Op>> {
    Ok(Box::new(MeanOp))
}

/// A comparison; its result is a boolean tensor, kept on the host as 0 / 1.
#[derive(Debug, Clone, Copy)]
enum Compare {
    Equal,
    Less,
    Greater,
}

impl Op for Compare {
    fn run(&self, inputs: &[Option<&Value>]) -> OpResult<Vec<Value>> {
        let (a, b) = (input(inputs, 0)?, input(inputs, 1)?);
        let as_host = |v: &Value| -> OpResult<(Vec<f64>, Vec<usize>)> {
            Ok(match v {
                Value::Int(i) => (i.data.iter().map(|&x| x as f64).collect(), i.shape.clone()),
                Value::Float(f) => (
                    f.to_vec().into_iter().map(f64::from).collect(),
                    f.shape().to_vec(),
                ),
            })
        };
        // Compare through indices into host copies, so one broadcasting routine serves both.
        let ((da, sa), (db, sb)) = (as_host(a)?, as_host(b)?);
        let ia = Ints::new((0..da.len() as i64).collect(), sa)?;
        let ib = Ints::new((0..db.len() as i64).collect(), sb)?;
        let op = *self;
        let out = host::binary(&ia, &ib, |x, y| {
            let (x, y) = (da[x as usize], db[y as usize]);
            Ok(i64::from(match op {
                Compare::Equal => x == y,
                Compare::Less => x < y,
                Compare::Greater => x > y,
            }))
        })?;
        Ok(vec![Value::Int(out)])
    }
}

pub(super) fn equal(_: &Attributes) -> OpResult<Box<dyn Op>> {
    Ok(Box::new(Compare::Equal))
}
pub(super) fn less(_: &Attributes) -> OpResult<Box<dyn Op>> {
    Ok(Box::new(Compare::Less))
}
pub(super) fn greater(_: &Attributes) -> OpResult<Box<dyn Op>> {
    Ok(Box::new(Compare::Greater))
}

#[derive(Debug)]
struct NotOp;

impl Op for NotOp {
    fn run(&self, inputs: &[Option<&Value>]) -> OpResult<Vec<Value>> {
        let x = super::ints_input(inputs, 0)?;
        let data = x.data.iter().map(|&v| i64::from(v == 0)).collect();
        Ok(vec![Value::Int(Ints::new(data, x.shape.clone())?)])
    }
}

pub(super) fn not(_: &Attributes) -> OpResult<Box<dyn Op>> {
    Ok(Box::new(NotOp))
}

/// `Where(cond, x, y)`: the condition is a host boolean tensor.
#[derive(Debug)]
struct WhereOp;

impl Op for WhereOp {
    fn run(&self, inputs: &[Option<&Value>]) -> OpResult<Vec<Value>> {
        let cond = super::ints_input(inputs, 0)?;
        let (x, y) = (input(inputs, 1)?, input(inputs, 2)?);
        if let (Value::Int(x), Value::Int(y)) = (x, y) {
            let xy = host::binary(x, y, |_, _| Ok(0))?;
            let shape = broadcast_shape(&cond.shape, &xy.shape)?;
            let (c, x, y) = (
                host::expand(cond, &shape)?,
                host::expand(x, &shape)?,
                host::expand(y, &shape)?,
            );
            let data = (0..c.data.len())
                .map(|i| if c.data[i] != 0 { x.data[i] } else { y.data[i] })
                .collect();
            return Ok(vec![Value::Int(Ints::new(data, shape)?)]);
        }
        let (x, y) = (x.to_float()?, y.to_float()?);
        let shape = broadcast_shape(&broadcast_shape(&cond.shape, x.shape())?, y.shape())?;
        let mask = cond.to_float()?;
        // x * mask + y * (1 - mask): differentiable in x and y, exact for a 0 / 1 mask.
        let m = Float::wrap(
            mask.padded()
                .clone()
                .expand(crate::onnx::value::padded(&shape)?),
            shape.clone(),
        );
        let t = x.into_padded() * m.padded().clone()
            + y.into_padded() * (m.padded().clone().neg() + 1.0);
        Ok(vec![Value::Float(Float::wrap(t, shape))])
    }
}

pub(super) fn where_(_: &Attributes) -> OpResult<Box<dyn Op>> {
    Ok(Box::new(WhereOp))
}

pub(super) fn sqrt(_: &Attributes) -> OpResult<Box<dyn Op>> {
    float_map("Sqrt", |t| t.sqrt())
}
pub(super) fn exp(_: &Attributes) -> OpResult<Box<dyn Op>> {
    float_map("Exp", |t| t.exp())
}
pub(super) fn log(_: &Attributes) -> OpResult<Box<dyn Op>> {
    float_map("Log", |t| t.log())
}
pub(super) fn abs(_: &Attributes) -> OpResult<Box<dyn Op>> {
    float_map("Abs", |t| t.abs())
}
pub(super) fn reciprocal(_: &Attributes) -> OpResult<Box<dyn Op>> {
    float_map("Reciprocal", |t| t.recip())
}
pub(super) fn erf(_: &Attributes) -> OpResult<Box<dyn Op>> {
    float_map("Erf", |t| t.erf())
}
pub(super) fn floor(_: &Attributes) -> OpResult<Box<dyn Op>> {
    float_map("Floor", |t| t.floor())
}
pub(super) fn ceil(_: &Attributes) -> OpResult<Box<dyn Op>> {
    float_map("Ceil", |t| t.ceil())
}

/// `Neg`, also of host integers.
#[derive(Debug)]
struct NegOp;

impl Op for NegOp {
    fn run(&self, inputs: &[Option<&Value>]) -> OpResult<Vec<Value>> {
        Ok(vec![match input(inputs, 0)? {
            Value::Int(i) => Value::Int(Ints::new(
                i.data.iter().map(|v| -v).collect(),
                i.shape.clone(),
            )?),
            Value::Float(f) => Value::Float(f.map(|t| t.neg())),
        }])
    }
}

pub(super) fn neg(_: &Attributes) -> OpResult<Box<dyn Op>> {
    Ok(Box::new(NegOp))
}

/// `Cast` to a float type (a float tensor) or an integer / boolean type (host integers).
#[derive(Debug)]
struct CastOp {
    to_float: bool,
    to_bool: bool,
}

impl Op for CastOp {
    fn run(&self, inputs: &[Option<&Value>]) -> OpResult<Vec<Value>> {
        let x = input(inputs, 0)?;
        Ok(vec![match (x, self.to_float) {
            (_, true) => Value::Float(x.to_float()?),
            (Value::Int(i), false) if self.to_bool => Value::Int(Ints::new(
                i.data.iter().map(|&v| i64::from(v != 0)).collect(),
                i.shape.clone(),
            )?),
            (Value::Int(i), false) => Value::Int(i.clone()),
            (Value::Float(f), false) => {
                // Float to integer truncates toward zero, as onnxruntime's static_cast.
                let data = f
                    .to_vec()
                    .into_iter()
                    .map(|v| {
                        if self.to_bool {
                            i64::from(v != 0.0)
                        } else {
                            v as i64
                        }
                    })
                    .collect();
                Value::Int(Ints::new(data, f.shape().to_vec())?)
            }
        }])
    }
}

pub(super) fn cast(a: &Attributes) -> OpResult<Box<dyn Op>> {
    use crate::onnx::proto::tensor_proto::DataType;
    let to = a
        .int("to")?
        .ok_or_else(|| crate::onnx::error::OpError::new("Cast without `to`"))?;
    let dt = DataType::try_from(to as i32)
        .map_err(|_| crate::onnx::error::OpError::new(format!("Cast to unknown type {to}")))?;
    let (to_float, to_bool) = match dt {
        DataType::Float | DataType::Double | DataType::Float16 | DataType::Bfloat16 => {
            (true, false)
        }
        DataType::Bool => (false, true),
        DataType::Int64
        | DataType::Int32
        | DataType::Int16
        | DataType::Int8
        | DataType::Uint8
        | DataType::Uint16
        | DataType::Uint32
        | DataType::Uint64 => (false, false),
        other => op_bail!("Cast to {} is not supported", other.as_str_name()),
    };
    Ok(Box::new(CastOp { to_float, to_bool }))
}

#[derive(Debug)]
struct IdentityOp;

impl Op for IdentityOp {
    fn run(&self, inputs: &[Option<&Value>]) -> OpResult<Vec<Value>> {
        Ok(vec![input(inputs, 0)?.clone()])
    }
}

/// `Identity`, and `Dropout` in inference (its optional mask output is not produced).
pub(super) fn identity(_: &Attributes) -> OpResult<Box<dyn Op>> {
    Ok(Box::new(IdentityOp))
}
